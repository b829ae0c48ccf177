use std::time::Instant;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::IntoResponse;
use axum_extra::extract::CookieJar;

use super::find_paredao;
use crate::admission::ReadSlot;
use crate::anti_bot::altcha::ChallengeView;
use crate::client::Client;
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;

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
    client: Client,
) -> Result<impl IntoResponse, ApiError> {
    // First, before any work (the cookie's signature, the challenge's hash and HMAC, the
    // difficulty map): a flood of challenge requests is refused at the cost of one map lookup.
    state.challenge_rate_limiter.check(&client.address, Instant::now()).map_err(ApiError::ChallengesRateLimited)?;
    let paredao = find_paredao(&state, &paredao_id)?;
    // Only what changes is sent: a `Set-Cookie` when the browser has no id of ours, else none.
    let jar = client.cookie_to_set().map(|cookie| CookieJar::new().add(cookie));
    let challenge = state.anti_bot.challenge(&paredao.id, &client).ok_or(ApiError::CaptchaOff)?;
    Ok((jar, [(header::CACHE_CONTROL, "no-store")], Json(challenge)))
}
