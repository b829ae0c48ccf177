//! Who on the production team is asking, as extractors: `Producer` (watch, export) and
//! `AdminUser` (also create, open, close, manage accounts, the error switch). A handler that
//! takes one cannot run for anybody else; nothing else decides who may do what.
//!
//! Two ways to prove who one is:
//! - the session cookie (`paredao_session`, from `POST /api/auth/login`): the session is read
//!   from the store (through a cache of `auth.session_cache_ms`), so a logout or a deleted
//!   account ends it on every replica. A request that changes something (anything but GET and
//!   HEAD) must also send the session's CSRF token in `X-CSRF-Token`, else 403 `csrf_failed`:
//!   another site can make a browser send the cookie (SameSite aside), not read the token;
//! - the SRE bearer token (`admin.token`), which counts as an admin named `sre-token` and needs
//!   no CSRF token (a browser never sends it by itself).

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::Method;
use axum::http::request::Parts;
use subtle::ConstantTimeEq;
use voting::accounts::Session;

use crate::error::ApiError;
use crate::state::AppState;

pub use voting::accounts::Role;

/// The member of the production team behind a request, and where it came from (for the audit).
#[derive(Debug, Clone)]
pub struct Identity {
    pub name: String,
    pub role: Role,
    /// The client's address as the API sees it (behind nginx, the one nginx forwards).
    pub address: String,
}

/// Any signed-in member of the production team (a producer or an admin).
pub struct Producer(pub Identity);

/// A member of the production team with the admin role.
pub struct AdminUser(pub Identity);

impl FromRequestParts<AppState> for Producer {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        identify(parts, state).await.map(Producer)
    }
}

impl FromRequestParts<AppState> for AdminUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let who = identify(parts, state).await?;
        if who.role != Role::Admin {
            return Err(ApiError::Forbidden("this needs the admin role"));
        }
        Ok(AdminUser(who))
    }
}

/// The identity a request proves, or 401 (403 `csrf_failed` for a session without its token).
async fn identify(parts: &mut Parts, state: &AppState) -> Result<Identity, ApiError> {
    let address = request_address(parts, state);
    let given = parts
        .headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    // Compared in constant time: the token must not leak through response timing.
    if let (Some(token), Some(given)) = (state.admin_token.as_deref(), given)
        && bool::from(given.as_bytes().ct_eq(token.as_bytes()))
    {
        return Ok(Identity { name: "sre-token".into(), role: Role::Admin, address });
    }
    let Some((_, session)) = session_of(parts, state).await? else {
        return Err(ApiError::Unauthorized);
    };
    check_csrf(parts, &session)?;
    Ok(Identity { name: session.name.to_string(), role: session.role, address })
}

/// The live session the request's cookie names, with the hash it is stored under; `None`
/// without a cookie, or for one whose session has ended.
pub(crate) async fn session_of(parts: &Parts, state: &AppState) -> Result<Option<(String, Session)>, ApiError> {
    let Some(token) = crate::accounts::session::presented_token(parts) else {
        return Ok(None);
    };
    let hash = crate::accounts::session::token_hash(&token);
    match state.accounts.session(&state.store, &hash).await {
        Ok(found) => Ok(found.map(|s| (hash, s))),
        Err(e) => {
            tracing::warn!(error = %e, "could not read a session from the store");
            Err(ApiError::Unavailable("the store cannot be read; try again"))
        }
    }
}

/// A request that changes something, signed in by cookie, carries the session's CSRF token.
pub(crate) fn check_csrf(parts: &Parts, session: &Session) -> Result<(), ApiError> {
    if parts.method == Method::GET || parts.method == Method::HEAD {
        return Ok(());
    }
    let given = parts.headers.get("x-csrf-token").map(|v| v.as_bytes()).unwrap_or_default();
    if bool::from(given.ct_eq(session.csrf_token.as_bytes())) { Ok(()) } else { Err(ApiError::CsrfFailed) }
}

/// The client's address, as the rate limiters see it.
pub(crate) fn request_address(parts: &Parts, state: &AppState) -> String {
    match parts.extensions.get::<ConnectInfo<SocketAddr>>() {
        Some(ConnectInfo(peer)) => {
            crate::client::address::client_ip(&parts.headers, *peer, &state.trusted_proxies).to_string()
        }
        None => "unknown".into(),
    }
}
