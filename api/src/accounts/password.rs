//! Password hashing: argon2id with the crate's defaults (19 MiB, two passes, one lane: OWASP's
//! first choice), off the async threads and a few at a time.
//!
//! Each hash or check takes ~19 MiB and tens of milliseconds of a core. Run on the runtime's
//! threads it would stall every other request on them; run unbounded, a burst of logins would
//! take the memory and every core. So each runs in `spawn_blocking`, behind a semaphore of
//! `auth.max_concurrent_hashes` permits; a login waits for its turn (the per-address limit keeps
//! that queue short).
//!
//! A login for a name that does not exist checks the password against a throwaway hash all the
//! same, so the answer takes as long as for a wrong password and does not tell which names exist.

use std::sync::{Arc, OnceLock};

use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString};
use tokio::sync::Semaphore;
use voting::accounts::Password;

pub struct Passwords {
    permits: Arc<Semaphore>,
}

/// A hash of a random password, for names that have no account.
fn throwaway_hash() -> &'static str {
    static HASH: OnceLock<String> = OnceLock::new();
    HASH.get_or_init(|| {
        let random = crate::accounts::session::random_token();
        hash_now(&random).unwrap_or_default()
    })
}

/// argon2id, as a PHC string.
pub fn hash_now(password: &str) -> Result<String, argon2::password_hash::Error> {
    let salt = SaltString::generate(&mut OsRng);
    Ok(Argon2::default().hash_password(password.as_bytes(), &salt)?.to_string())
}

fn verify_now(hash: &str, password: &str) -> bool {
    match PasswordHash::new(hash) {
        Ok(parsed) => Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok(),
        Err(_) => false,
    }
}

impl Passwords {
    pub fn new(max_concurrent: usize) -> Self {
        Self { permits: Arc::new(Semaphore::new(max_concurrent.max(1))) }
    }

    /// The argon2id hash of `password`, to store.
    pub async fn hash(&self, password: Password) -> anyhow::Result<String> {
        let _permit = self.permits.acquire().await?;
        let hashed = tokio::task::spawn_blocking(move || hash_now(password.expose())).await?;
        hashed.map_err(|e| anyhow::anyhow!("argon2 could not hash a password: {e}"))
    }

    /// Whether `password` matches `hash`; with no hash (no such account), checks against a
    /// throwaway one and answers false, in the same time.
    pub async fn verify(&self, hash: Option<String>, password: String) -> anyhow::Result<bool> {
        let _permit = self.permits.acquire().await?;
        let matched = tokio::task::spawn_blocking(move || match hash {
            Some(hash) => verify_now(&hash, &password),
            None => {
                let _ = verify_now(throwaway_hash(), &password);
                false
            }
        })
        .await?;
        Ok(matched)
    }

    /// Computes the throwaway hash now (at start-up, off the first unknown name's login).
    pub fn warm_up(&self) {
        tokio::task::spawn_blocking(|| {
            throwaway_hash();
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_argon2id_phc_strings_that_verify() {
        let hash = hash_now("uma senha comprida").unwrap();
        assert!(hash.starts_with("$argon2id$v=19$"), "{hash}");
        assert!(verify_now(&hash, "uma senha comprida"));
        assert!(!verify_now(&hash, "outra senha comprida"));
        assert!(!verify_now("not a hash", "uma senha comprida"));
    }
}
