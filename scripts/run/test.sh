# ./run.sh test: a private test stack on free ports (run/test), every test step
# (scripts/run/lib/test_steps.sh), the stack stopped, a summary; fails when a step failed.
# What CI runs (.ci/run). Sourced by run.sh, which calls cmd_test.
# shellcheck shell=bash

cmd_test() {
    preflight
    # Leftovers of an interrupted run, stopped by their pid files before the directory goes.
    (use_stack test && stop_stack)
    use_stack test
    rm -rf "$STACK_DIR"
    choose_test_ports
    trap cleanup_test_stack EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    log "starting the test stack in $STACK_DIR"
    local stack_start
    stack_start="$(now_ms)"
    start_test_stack compile_step
    log "test stack ready, tests compiled, in $(elapsed "$stack_start")"
    export_test_env

    if has_step_passed "compile tests"; then
        run_step "rust tests" run_rust_tests
    else
        skip_step "rust tests" "the tests did not compile"
    fi
    # The code's shape, kept by the tools: formatting (rustfmt.toml) and every clippy lint.
    run_step "format (cargo fmt --check)" cargo fmt --all --check
    run_step "lints (cargo clippy -D warnings)" cargo clippy --workspace --all-targets --locked -- -D warnings
    run_step "prometheus config" test_prometheus_config
    if [[ -n "$(prometheus_rule_files)" ]]; then
        run_step "prometheus rules" test_prometheus_rules
    else
        skip_step "prometheus rules" "no rules in observability/prometheus/rules/"
    fi
    run_step "nginx config" test_nginx_config
    run_step "grafana dashboards (structure)" python3 "$REPO/observability/grafana/check_dashboards.py"
    run_step "graylog content pack and provisioning" graylog_pack
    run_step "deployment files (compose, Dockerfiles, k8s)" bash "$REPO/deploy/validate.sh"
    if has_step_passed "compile tests"; then
        # The native play, for real, against this machine: the debug binaries of the test build.
        run_step "ansible (lint, native play on localhost)" bash "$REPO/ansible/test_native.sh" \
            "$STACK_DIR/ansible-native" "$REPO/target/debug"
    else
        skip_step "ansible (lint, native play on localhost)" "the services did not compile"
    fi
    run_browser_tests
    # On the browser tests' stack whenever it came up (a failed page test does not stop it), and
    # before the dashboard queries, which turn the deliberate error path on for a while.
    if [[ -f "$STACK_DIR/e2e-ports.env" ]] && is_running nginx; then
        run_step "schemathesis (OpenAPI)" schemathesis_tests
    else
        skip_step "schemathesis (OpenAPI)" "the browser tests' stack did not run"
    fi
    if has_step_passed "browser tests"; then
        run_step "grafana dashboard queries (live)" dashboard_queries
    else
        skip_step "grafana dashboard queries (live)" "the browser tests' stack did not run"
    fi

    # Stopped here rather than by the trap, so that the summary is the last thing printed.
    trap - EXIT
    stop_stack
    print_test_summary
    ((STEP_FAILED == 0))
}

# Compiles the tests while RabbitMQ boots (both take seconds; they overlap).
compile_step() {
    run_step "compile tests" compile_tests
}
