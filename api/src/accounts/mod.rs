//! The production team's accounts: login, sessions and their CSRF tokens, the login limits, and
//! the admins' management of accounts. The extractors that use the sessions are in
//! `crate::identity`; what is stored, and how, is `voting::accounts`.
//!
//! Login limits, two of them:
//! - per client address, per replica (`auth.login_rate`, a GCRA like the vote limiter): a
//!   guesser trying many names from one address is slowed whatever the names;
//! - per account, in the store so that every replica agrees: after `auth.max_failed_logins`
//!   failures in a row the account is locked for `auth.lockout_secs` (429 `login_rate_limited`
//!   with Retry-After), even for the right password.
//!
//! An unknown name and a wrong password get the same answer, after the same work (see
//! `password`).

pub mod admin;
pub mod cli;
pub mod password;
pub mod routes;
pub mod session;

use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use tokio_util::sync::CancellationToken;
use voting::accounts::Session;
use voting::configuration::AuthSettings;
use voting::store::{Store, StoreError};

use crate::anti_bot::rate_limit::RateLimiter;
use password::Passwords;
use session::SessionCache;

/// Addresses the login limiter remembers at most.
const LOGIN_LIMITER_KEYS: usize = 10_000;

pub struct Accounts {
    pub passwords: Passwords,
    pub sessions: SessionCache,
    pub login_limiter: RateLimiter,
    pub settings: AuthSettings,
}

impl Accounts {
    pub fn new(settings: &AuthSettings) -> Self {
        let keys = NonZeroUsize::new(LOGIN_LIMITER_KEYS).unwrap_or(NonZeroUsize::MIN);
        Self {
            passwords: Passwords::new(settings.max_concurrent_hashes),
            sessions: SessionCache::new(Duration::from_millis(settings.session_cache_ms)),
            login_limiter: RateLimiter::new("logins", true, settings.login_rate, keys),
            settings: settings.clone(),
        }
    }

    pub fn session_ttl(&self) -> Duration {
        Duration::from_secs(self.settings.session_ttl_secs)
    }

    /// The live session behind `token_hash`: from the cache while fresh, else from the store.
    pub async fn session(&self, store: &Store, token_hash: &str) -> Result<Option<Session>, StoreError> {
        let (now, wall) = (Instant::now(), Utc::now());
        if let Some(session) = self.sessions.get(token_hash, now, wall) {
            return Ok(Some(session));
        }
        let found = store.find_session(token_hash, wall).await?;
        if let Some(session) = &found {
            self.sessions.put(token_hash.to_string(), session.clone(), now);
        }
        Ok(found)
    }

    /// Every minute: deletes the expired sessions from the store and the idle addresses from
    /// the login limiter. (Every replica runs it; the delete is the same for all.)
    pub fn spawn_janitor(self: Arc<Self>, store: Store, stop: CancellationToken) -> tokio::task::JoinHandle<()> {
        voting::periodic::spawn_every(Duration::from_secs(60), stop, move || {
            let (accounts, store) = (self.clone(), store.clone());
            async move {
                accounts.login_limiter.purge(Instant::now());
                // Idempotent, cheap once made; here because connecting at start-up is lazy.
                if let Err(e) = store.ensure_account_indexes().await.and(store.ensure_audit_indexes().await) {
                    tracing::warn!(error = %e, "could not make the sessions' and audit's indexes");
                }
                match store.forget_expired_sessions(Utc::now()).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(sessions = n, "deleted expired sessions"),
                    Err(e) => tracing::warn!(error = %e, "could not delete expired sessions; trying again in a minute"),
                }
            }
        })
    }
}

/// Declares the `session` scheme (the `paredao_session` cookie) the team's endpoints name.
pub struct SessionAuth;

impl utoipa::Modify for SessionAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                session::SESSION_COOKIE,
                "The session cookie set by POST /api/auth/login. State-changing requests also send \
                 X-CSRF-Token with the session's csrf_token.",
            ))),
        );
        // A scheme of its own so that Swagger UI can send it: after signing in, paste the
        // csrf_token of GET /api/auth/session into "Authorize".
        components.add_security_scheme(
            "csrf",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-CSRF-Token",
                "The csrf_token of the session (GET /api/auth/session); required with the session \
                 cookie on every state-changing request.",
            ))),
        );
    }
}
