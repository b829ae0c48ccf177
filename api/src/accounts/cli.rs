//! `api admin create NAME [--role admin|producer]`: makes an account straight in the store, for
//! the first admin (nobody can sign in to make one yet). `./run.sh admin create NAME` runs it
//! against the local stack's store.
//!
//! The password is read from the terminal without echo (twice, to catch a typo) when standard
//! input is one, else as one line from standard input (`printf '%s\n' "$PW" | api admin create
//! ana`). There is no default password, nor a flag that takes one (it would stay in the shell's
//! history and in `ps`).

use std::io::{BufRead, IsTerminal};

use anyhow::{Context, bail};
use chrono::Utc;
use voting::accounts::{Account, AccountError, AccountName, Password, Role};
use voting::configuration::Settings;
use voting::store::Store;

pub const USAGE: &str = "usage: api                                  serve the API\n       api admin create NAME [--role admin|producer]   make a team account (password from the terminal or stdin)";

/// Runs the command in `args` (without the program's name).
pub async fn run(settings: Settings, args: &[String]) -> anyhow::Result<()> {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (name, role) = match args.as_slice() {
        ["admin", "create", name] => (*name, Role::Admin),
        ["admin", "create", name, "--role", role] | ["admin", "create", "--role", role, name] => {
            (*name, role.parse::<Role>().map_err(anyhow::Error::msg)?)
        }
        _ => bail!("{USAGE}"),
    };
    let name = AccountName::parse(name).with_context(|| format!("'{name}' cannot be an account name"))?;
    let password = read_password(&name)?;
    let password_hash = tokio::task::spawn_blocking(move || super::password::hash_now(password.expose()))
        .await?
        .map_err(|e| anyhow::anyhow!("argon2 could not hash the password: {e}"))?;
    let store = Store::connect(&settings.store).await.context("connecting to the store")?;
    let account = Account {
        name: name.clone(),
        role,
        password_hash,
        created_at: Utc::now(),
        failed_logins: 0,
        locked_until: None,
    };
    match store.create_account(&account).await {
        Ok(()) => {
            println!("created the {} account '{name}'", role.as_str());
            Ok(())
        }
        Err(AccountError::Exists(_)) => bail!(
            "an account named '{name}' exists already; an admin can change its password on the accounts page \
             (PUT /api/admin/accounts/{name})"
        ),
        Err(e) => Err(anyhow::Error::new(e).context("writing the account to the store")),
    }
}

fn read_password(name: &AccountName) -> anyhow::Result<Password> {
    if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password(format!("password for {name} (at least 10 characters): "))?;
        let password = Password::parse(first.clone())?;
        let again = rpassword::prompt_password("the same password again: ")?;
        if again != first {
            bail!("the two passwords differ; nothing was created");
        }
        Ok(password)
    } else {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line).context("reading the password from stdin")?;
        let line = line.strip_suffix('\n').unwrap_or(&line);
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.is_empty() {
            bail!("no password on stdin (send it as one line); nothing was created");
        }
        Ok(Password::parse(line)?)
    }
}
