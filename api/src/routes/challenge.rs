use std::net::SocketAddr;

use axum::Json;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, header};
use axum::response::IntoResponse;
use axum_extra::extract::CookieJar;
use axum_extra::extract::cookie::{Cookie, SameSite};

use super::find_paredao;
use crate::admission::ReadSlot;
use crate::anti_bot::Client;
use crate::captcha::ChallengeView;
use crate::client_address::client_ip;
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;

/// The browser's own id, so that the difficulty can follow a client behind a shared address.
pub const CLIENT_COOKIE: &str = "paredao_cid";

/// Who sent a request: its address (the forwarded one when nginx sent it) and its cookie.
pub(crate) fn client_of(state: &AppState, headers: &HeaderMap, peer: SocketAddr, jar: &CookieJar) -> Client {
    Client {
        address: client_ip(headers, peer, &state.trusted_proxies).to_string(),
        cookie: jar.get(CLIENT_COOKIE).map(|c| c.value().to_string()),
    }
}

/// A fresh ALTCHA challenge for a vote in this paredão (what the `altcha` widget's
/// `challenge` attribute points at). Its difficulty grows with the client's recent vote rate. Sets the
/// `paredao_cid` cookie when the browser has none.
#[utoipa::path(
    get, path = "/api/paredoes/{paredao_id}/challenge", tag = "votes",
    params(("paredao_id" = String, Path, description = "The paredão id, or `current`")),
    responses(
        (status = 200, description = "A challenge to solve", body = ChallengeView),
        (status = 404, description = "No such paredão, or captchas are off", body = ErrorBody),
        (status = 503, description = "`overloaded`: the replica is answering as many reads as it may; try again after Retry-After", body = ErrorBody),
    )
)]
pub async fn get_challenge(
    _slot: ReadSlot,
    State(state): State<AppState>,
    Path(paredao_id): Path<String>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    jar: CookieJar,
) -> Result<impl IntoResponse, ApiError> {
    let paredao = find_paredao(&state, &paredao_id)?;
    let client = client_of(&state, &headers, peer, &jar);
    let jar = if client.cookie.is_none() {
        let mut cookie = Cookie::new(CLIENT_COOKIE, uuid::Uuid::new_v4().simple().to_string());
        cookie.set_path("/");
        cookie.set_http_only(true);
        cookie.set_same_site(SameSite::Lax);
        cookie.make_permanent();
        jar.add(cookie)
    } else {
        jar
    };
    let challenge = state.anti_bot.challenge(&paredao.id, &client).ok_or(ApiError::CaptchaOff)?;
    Ok((jar, [(header::CACHE_CONTROL, "no-store")], Json(challenge)))
}
