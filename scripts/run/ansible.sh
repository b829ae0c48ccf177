# ./run.sh ansible PLAYBOOK [args]: ansible-playbook from ansible/ (native.yml, site.yml),
# installed into .venv-ansible on first use. Sourced by run.sh, which calls cmd_ansible.
# shellcheck shell=bash

# ansible-playbook from its own venv (made on first use), run from ansible/ so ansible.cfg applies.
cmd_ansible() {
    [[ $# -ge 1 ]] || die "usage: ./run.sh ansible native.yml|site.yml [-i inventories/example] [ansible-playbook args]"
    local venv="$REPO/.venv-ansible"
    if [[ ! -x "$venv/bin/ansible-playbook" ]]; then
        log "installing ansible into $venv"
        python3 -m venv "$venv"
        "$venv/bin/pip" install --quiet --disable-pip-version-check ansible ansible-lint || die "pip install ansible failed"
    fi
    cd "$REPO/ansible" && exec "$venv/bin/ansible-playbook" "$@"
}
