//! Session cookies: the token, its hash (the store's key), the `Set-Cookie`s, the request's
//! origin (address and TLS), and the short in-memory cache of sessions read from the store.
//!
//! The cookie holds 32 random bytes (base64url); the store holds only their SHA-256, so
//! whoever reads the store or its backups cannot sign in with what they find. The cookie is
//! `HttpOnly` (out of scripts' reach), `SameSite=Strict` (not sent by other sites' pages, the
//! first guard against CSRF; the `X-CSRF-Token` header is the second), `Path=/`, with the
//! session's lifetime as `Max-Age`, and `Secure` when the browser reached nginx over TLS.

use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use argon2::password_hash::rand_core::{OsRng, RngCore};
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum_extra::extract::cookie::CookieJar;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use hashlink::LruCache;
use sha2::{Digest, Sha256};
use voting::accounts::Session;

use crate::state::AppState;

/// The cookie's name.
pub const SESSION_COOKIE: &str = "paredao_session";

/// Sessions a replica keeps in memory at most (the team is a few dozen people).
const CACHE_ENTRIES: usize = 1024;

/// 32 random bytes from the OS, base64url without padding (43 characters).
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// What the store keys a session by: SHA-256 of the cookie's token, hex.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// The `Set-Cookie` value that hands a session over.
pub fn session_cookie(token: &str, ttl: Duration, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{SESSION_COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}{secure}", ttl.as_secs())
}

/// The `Set-Cookie` value that makes the browser forget its session.
pub fn cleared_cookie(secure: bool) -> String {
    session_cookie("", Duration::ZERO, secure)
}

/// The session token the request's cookie carries, if any.
pub fn presented_token(parts: &Parts) -> Option<String> {
    CookieJar::from_headers(&parts.headers).get(SESSION_COOKIE).map(|c| c.value().to_string()).filter(|v| !v.is_empty())
}

/// Where a request came from: the client's address (as the rate limiters and the audit see it)
/// and whether the browser reached nginx over TLS (`X-Forwarded-Proto: https` from a trusted
/// proxy; from anybody else the header means nothing).
pub struct RequestOrigin {
    pub address: String,
    pub over_tls: bool,
}

impl FromRequestParts<AppState> for RequestOrigin {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        Ok(origin_of(parts, state))
    }
}

pub fn origin_of(parts: &Parts, state: &AppState) -> RequestOrigin {
    let address = crate::identity::request_address(parts, state);
    let from_proxy = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .is_some_and(|ConnectInfo(peer)| state.trusted_proxies.iter().any(|n| n.contains(peer.ip().to_canonical())));
    let over_tls = from_proxy
        && parts
            .headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("https"));
    RequestOrigin { address, over_tls }
}

/// Sessions read from the store in the last `ttl`, by token hash. A logout or a deleted account
/// on another replica takes effect here once the entry is older than `ttl`; on this replica at
/// once (`forget`).
pub struct SessionCache {
    entries: Mutex<LruCache<String, (Session, Instant)>>,
    ttl: Duration,
}

impl SessionCache {
    pub fn new(ttl: Duration) -> Self {
        let capacity = NonZeroUsize::new(CACHE_ENTRIES).map_or(1, NonZeroUsize::get);
        Self { entries: Mutex::new(LruCache::new(capacity)), ttl }
    }

    /// The cached session, while it is fresh and has not expired.
    pub fn get(&self, hash: &str, now: Instant, wall: DateTime<Utc>) -> Option<Session> {
        if self.ttl.is_zero() {
            return None;
        }
        let mut entries = crate::bounded_map::lock(&self.entries);
        match entries.get(hash) {
            Some((session, read_at)) if now.duration_since(*read_at) < self.ttl && session.expires_at > wall => {
                Some(session.clone())
            }
            Some(_) => {
                entries.remove(hash);
                None
            }
            None => None,
        }
    }

    pub fn put(&self, hash: String, session: Session, now: Instant) {
        if !self.ttl.is_zero() {
            crate::bounded_map::lock(&self.entries).insert(hash, (session, now));
        }
    }

    pub fn forget(&self, hash: &str) {
        crate::bounded_map::lock(&self.entries).remove(hash);
    }

    /// Forgets every session of `name` (deleted, or its password changed).
    pub fn forget_account(&self, name: &str) {
        crate::bounded_map::lock(&self.entries).retain(|_, (s, _)| s.name.as_str() != name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_43_url_safe_characters_and_differ() {
        let (a, b) = (random_token(), random_token());
        assert_eq!(a.len(), 43);
        assert!(a.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'));
        assert_ne!(a, b);
        assert_eq!(token_hash(&a).len(), 64);
    }

    #[test]
    fn the_cookie_is_http_only_strict_and_site_wide() {
        let text = session_cookie("t", Duration::from_secs(60), false);
        assert!(text.contains("HttpOnly") && text.contains("SameSite=Strict") && text.contains("Path=/"), "{text}");
        assert!(text.contains("Max-Age=60") && !text.contains("Secure"), "{text}");
        assert!(session_cookie("t", Duration::from_secs(60), true).contains("Secure"));
    }
}
