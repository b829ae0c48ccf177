//! A paredão's frozen final result (the consumer freezes it once the paredão has drained: see
//! `consumer::freezer`).

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use voting::final_results::{FinalResult, MinuteVotes};
use voting::minute_counters::MinuteSeries;
use voting::paredao::Paredao;

use super::{NamedParedao, ReadRefusals};
use crate::admission::ReadSlot;
use crate::error::{ApiError, ErrorBody};
use crate::identity::Producer;
use crate::state::AppState;

/// The final result: totals, per participant, per hour and per minute, frozen once the paredão
/// closed and every vote accepted before the close was counted, with the SHA-256 digest of its
/// per-hour CSV export (`GET …/export?format=csv&granularity=hour | sha256sum` gives it back).
#[utoipa::path(
    get, path = "/api/paredoes/{paredao_id}/final", tag = "results",
    security(("session" = []), ("bearer" = [])),
    params(("paredao_id" = String, Path, description = "The paredão id, or `current`")),
    responses(
        (status = 200, description = "The frozen result", body = FinalResult),
        (status = 401, description = "Not signed in as a member of the production team", body = ErrorBody),
        (status = 409, description = "`not_final`: the paredão is open or scheduled, or its last votes are still being counted", body = ErrorBody),
        ReadRefusals,
    )
)]
pub async fn get_final(
    _who: Producer,
    _slot: ReadSlot,
    State(state): State<AppState>,
    NamedParedao(paredao): NamedParedao,
) -> Result<impl IntoResponse, ApiError> {
    let result = load_final(&state, &paredao).await?.ok_or_else(|| ApiError::NotFinal(paredao.id.to_string()))?;
    Ok(([(header::CACHE_CONTROL, "no-store")], Json(result)))
}

/// The frozen result of `paredao`, if it has one: read from the store (the snapshot holds no
/// series), and only by the production team, so seldom.
pub(crate) async fn load_final(state: &AppState, paredao: &Paredao) -> Result<Option<FinalResult>, ApiError> {
    state.store.load_final(&paredao.id).await.map_err(|e| {
        tracing::warn!(error = %e, paredao = %paredao.id, "could not read a final result");
        ApiError::Unavailable("the store cannot be read right now")
    })
}

/// A paredão's minutes as the statistics list them: every participant in each, oldest first.
pub(crate) fn recent_minutes(paredao: &Paredao, minutes: Option<&MinuteSeries>) -> Vec<MinuteVotes> {
    minutes
        .map(|series| {
            series
                .iter()
                .map(|(minute, by)| {
                    let votes: std::collections::BTreeMap<String, u64> = paredao
                        .participants
                        .iter()
                        .map(|p| (p.id.to_string(), by.get(&p.id).copied().unwrap_or(0)))
                        .collect();
                    MinuteVotes { minute: *minute, total: votes.values().sum(), votes }
                })
                .collect()
        })
        .unwrap_or_default()
}
