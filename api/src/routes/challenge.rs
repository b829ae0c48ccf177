use std::net::SocketAddr;
use std::time::Instant;

use axum::Json;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, header};
use axum::response::IntoResponse;
use axum_extra::extract::CookieJar;
use axum_extra::extract::cookie::{Cookie, SameSite};

use super::find_paredao;
use crate::admission::ReadSlot;
use crate::anti_bot::Client;
use crate::anti_bot::altcha::ChallengeView;
use crate::client_address::client_ip;
use crate::client_id::ClientId;
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;

pub use crate::client_id::CLIENT_COOKIE;

/// Who sent a request: its address (the forwarded one when nginx sent it) and its id, when its
/// cookie is one we issued (anything else is as good as no cookie).
pub(crate) fn client_of(state: &AppState, headers: &HeaderMap, peer: SocketAddr, jar: &CookieJar) -> Client {
    Client::new(client_ip(headers, peer, &state.trusted_proxies), client_id(state, jar))
}

fn client_id(state: &AppState, jar: &CookieJar) -> Option<ClientId> {
    state.client_ids.verify(jar.get(CLIENT_COOKIE)?.value())
}

/// A fresh ALTCHA challenge for a vote in this paredão (what the `altcha` widget's
/// `challenge` attribute points at). Its difficulty grows with the client's recent vote rate. Sets
/// the `paredao_cid` cookie when the browser has none, or one the API did not issue.
#[utoipa::path(
    get, path = "/api/paredoes/{paredao_id}/challenge", tag = "votes",
    params(("paredao_id" = String, Path, description = "The paredão id, or `current`")),
    responses(
        (status = 200, description = "A challenge to solve", body = ChallengeView),
        (status = 404, description = "No such paredão, or captchas are off", body = ErrorBody),
        (status = 429, description = "Too many challenges asked for by this client; see Retry-After", body = ErrorBody),
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
    let ip = client_ip(&headers, peer, &state.trusted_proxies);
    let client = Client::new(ip, None);
    // First, before any work (the cookie's signature, the challenge's hash and HMAC, the
    // difficulty map): a flood of challenge requests is refused at the cost of one map lookup.
    state.challenge_rate_limiter.check(&client.address, Instant::now()).map_err(ApiError::ChallengesRateLimited)?;
    let paredao = find_paredao(&state, &paredao_id)?;
    let client = Client { cookie: client_id(&state, &jar), ..client };
    let jar = if client.cookie.is_none() {
        // Replaces whatever the browser sent. The fresh id is not counted for this challenge
        // (the address is): only an id that comes back signed becomes a key, so a script that
        // drops its cookies adds nothing to the difficulty map.
        let (_, value) = state.client_ids.issue();
        let mut cookie = Cookie::new(CLIENT_COOKIE, value);
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
