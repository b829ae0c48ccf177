//! `POST /api/auth/login`, `GET /api/auth/session`, `POST /api/auth/logout`.

use std::time::Duration;

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum_extra::extract::cookie::CookieJar;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use voting::accounts::{AccountName, MAX_PASSWORD_BYTES, Role, Session};

use super::session::{RequestOrigin, cleared_cookie, random_token, session_cookie, token_hash};
use crate::error::{ApiError, ErrorBody};
use crate::identity::Identity;
use crate::state::AppState;

#[derive(Deserialize, ToSchema)]
pub struct LoginRequest {
    #[schema(example = "ana")]
    pub name: String,
    #[schema(example = "uma senha comprida")]
    pub password: String,
}

/// A signed-in session, as the pages see it.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionView {
    pub name: AccountName,
    pub role: Role,
    /// Send it back as `X-CSRF-Token` on every request that changes something.
    pub csrf_token: String,
    pub expires_at: DateTime<Utc>,
}

impl From<&Session> for SessionView {
    fn from(s: &Session) -> Self {
        Self { name: s.name.clone(), role: s.role, csrf_token: s.csrf_token.clone(), expires_at: s.expires_at }
    }
}

fn store_unavailable(e: impl std::fmt::Display) -> ApiError {
    tracing::warn!(error = %e, "the store failed during a login");
    ApiError::Unavailable("the store cannot be reached; try again")
}

/// Signs a member of the production team in: sets the `paredao_session` cookie and answers the
/// session's CSRF token. A wrong name and a wrong password get the same answer.
#[utoipa::path(
    post, path = "/api/auth/login", tag = "auth",
    request_body = LoginRequest,
    responses(
        (status = 200, description = "Signed in; the cookie is set", body = SessionView,
         headers(("set-cookie" = String, description = "paredao_session=…; HttpOnly; SameSite=Strict; Path=/; Max-Age=…"))),
        (status = 400, description = "The body is not JSON", body = ErrorBody),
        (status = 401, description = "`invalid_credentials`: wrong name or password", body = ErrorBody),
        (status = 413, description = "The body is too large", body = ErrorBody),
        (status = 415, description = "The body is not sent as JSON", body = ErrorBody),
        (status = 422, description = "The body lacks `name` or `password`", body = ErrorBody),
        (status = 429, description = "`login_rate_limited`: too many attempts from this address or for this account; see Retry-After", body = ErrorBody),
        (status = 503, description = "The store cannot be reached", body = ErrorBody),
    )
)]
pub async fn login(
    State(state): State<AppState>,
    origin: RequestOrigin,
    jar: CookieJar,
    body: Result<Json<LoginRequest>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(request) = body?;
    let accounts = &state.accounts;
    if let Err(wait) = accounts.login_limiter.check(&origin.address, std::time::Instant::now()) {
        return Err(ApiError::LoginRateLimited(wait));
    }
    let name = AccountName::parse(request.name.trim().to_lowercase()).ok();
    let account = match &name {
        Some(name) => state.store.find_account(name).await.map_err(store_unavailable)?,
        None => None,
    };
    let now = Utc::now();
    if let Some(locked_until) = account.as_ref().and_then(|a| a.locked_until).filter(|until| *until > now) {
        failed(&state, &origin, &request.name, "locked").await;
        return Err(ApiError::LoginRateLimited(wait_until(locked_until, now)));
    }
    let password = if request.password.len() > MAX_PASSWORD_BYTES { String::new() } else { request.password };
    let hash = account.as_ref().map(|a| a.password_hash.clone()).filter(|_| !password.is_empty());
    let matched = accounts.passwords.verify(hash, password).await?;
    let (Some(account), true) = (account, matched) else {
        failed(&state, &origin, &request.name, "wrong name or password").await;
        if let Some(name) = &name {
            let lock_until = now + chrono::Duration::seconds(accounts.settings.lockout_secs as i64);
            let locked = state
                .store
                .record_login_failure(name, accounts.settings.max_failed_logins, lock_until)
                .await
                .map_err(store_unavailable)?;
            if let Some(until) = locked {
                tracing::warn!(account = %name, "account locked after repeated failed logins");
                return Err(ApiError::LoginRateLimited(wait_until(until, now)));
            }
        }
        return Err(ApiError::InvalidCredentials);
    };

    state.store.record_login_success(&account.name).await.map_err(store_unavailable)?;
    let token = random_token();
    let ttl = accounts.session_ttl();
    let session = Session {
        token_hash: token_hash(&token),
        name: account.name.clone(),
        role: account.role,
        csrf_token: random_token(),
        expires_at: now + chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::hours(8)),
    };
    state.store.insert_session(&session).await.map_err(store_unavailable)?;
    // A session the browser had before is ended: one browser, one session.
    if let Some(old) = jar.get(super::session::SESSION_COOKIE) {
        let _ = state.store.delete_session(&token_hash(old.value())).await;
        accounts.sessions.forget(&token_hash(old.value()));
    }
    let who = Identity { name: account.name.to_string(), role: account.role, address: origin.address.clone() };
    crate::audit::record(&state, &who, "auth.login", account.name.as_str(), serde_json::Value::Null).await;
    let cookie = session_cookie(&token, ttl, origin.over_tls);
    Ok(([(header::SET_COOKIE, cookie), (header::CACHE_CONTROL, "no-store".into())], Json(SessionView::from(&session)))
        .into_response())
}

async fn failed(state: &AppState, origin: &RequestOrigin, tried: &str, reason: &str) {
    // The name as typed, bounded: it is the client's text.
    let tried: String = tried.chars().take(64).collect();
    crate::audit::record_entry(
        state,
        &tried,
        None,
        &origin.address,
        "auth.login_failed",
        &tried,
        serde_json::json!({ "reason": reason }),
    )
    .await;
}

fn wait_until(until: DateTime<Utc>, now: DateTime<Utc>) -> Duration {
    (until - now).to_std().unwrap_or(Duration::from_secs(1))
}

/// The session the request's cookie names (any method: its own handler checks the CSRF token
/// where it must), or 401.
pub struct CurrentSession {
    pub token_hash: String,
    pub session: Session,
}

impl FromRequestParts<AppState> for CurrentSession {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        match crate::identity::session_of(parts, state).await? {
            Some((token_hash, session)) => Ok(Self { token_hash, session }),
            None => Err(ApiError::Unauthorized),
        }
    }
}

/// The session the cookie names, if any; for a request that changes something, only with its
/// CSRF token (else 403 `csrf_failed`).
pub struct SignedIn(pub Option<CurrentSession>);

impl FromRequestParts<AppState> for SignedIn {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let Some((token_hash, session)) = crate::identity::session_of(parts, state).await? else {
            return Ok(Self(None));
        };
        crate::identity::check_csrf(parts, &session)?;
        Ok(Self(Some(CurrentSession { token_hash, session })))
    }
}

/// The session this browser is signed in with (the pages learn their CSRF token here).
#[utoipa::path(
    get, path = "/api/auth/session", tag = "auth",
    security(("session" = [])),
    responses(
        (status = 200, description = "Signed in", body = SessionView),
        (status = 401, description = "Not signed in, or the session has ended", body = ErrorBody),
    )
)]
pub async fn get_session(current: CurrentSession) -> impl IntoResponse {
    ([(header::CACHE_CONTROL, "no-store")], Json(SessionView::from(&current.session)))
}

/// Signs out: the session is deleted (on every replica within `auth.session_cache_ms`) and the
/// cookie cleared. Without a session it only clears the cookie.
#[utoipa::path(
    post, path = "/api/auth/logout", tag = "auth",
    // Optional: without a session it only clears a stale cookie (204), which a page may always
    // ask for; with one, the CSRF token goes with it (403 otherwise).
    security((), ("session" = [], "csrf" = [])),
    responses(
        (status = 204, description = "Signed out; the cookie is cleared"),
        (status = 403, description = "`csrf_failed`: the X-CSRF-Token header is missing or wrong", body = ErrorBody),
        (status = 503, description = "The store cannot be reached", body = ErrorBody),
    )
)]
pub async fn logout(
    State(state): State<AppState>,
    origin: RequestOrigin,
    SignedIn(current): SignedIn,
) -> Result<Response, ApiError> {
    if let Some(CurrentSession { token_hash: hash, session }) = current {
        state.store.delete_session(&hash).await.map_err(store_unavailable)?;
        state.accounts.sessions.forget(&hash);
        let who = Identity { name: session.name.to_string(), role: session.role, address: origin.address.clone() };
        crate::audit::record(&state, &who, "auth.logout", session.name.as_str(), serde_json::Value::Null).await;
    }
    Ok((StatusCode::NO_CONTENT, [(header::SET_COOKIE, cleared_cookie(origin.over_tls))]).into_response())
}
