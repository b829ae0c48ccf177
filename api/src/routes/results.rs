use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use voting::paredao::{ParedaoId, ParedaoState, ParticipantId};
use voting::tally::percentages;

use super::{NamedParedao, ReadRefusals, state_now, votes_for};
use crate::admission::ReadSlot;
use crate::state::AppState;

#[derive(Debug, Serialize, ToSchema)]
pub struct ResultsView {
    pub paredao_id: ParedaoId,
    pub state: ParedaoState,
    /// In the paredão's order; percentages have two decimals and add up to 100 (all 0 before
    /// the first vote is counted).
    pub participants: Vec<ParticipantShare>,
    /// When the counts behind these numbers were read; `null` before the first read.
    pub updated_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ParticipantShare {
    pub id: ParticipantId,
    pub name: String,
    #[schema(example = 52.31)]
    pub percentage: f64,
}

/// The viewers' results: the share of the votes of each participant, from the in-memory
/// snapshot (refreshed about every half second; cacheable for one second).
#[utoipa::path(
    get, path = "/api/paredoes/{paredao_id}/results", tag = "results",
    params(("paredao_id" = String, Path, description = "The paredão id, or `current`")),
    responses(
        (status = 200, description = "Percentages per participant", body = ResultsView),
        ReadRefusals,
    )
)]
pub async fn get_results(
    _slot: ReadSlot,
    State(state): State<AppState>,
    NamedParedao(paredao): NamedParedao,
) -> impl IntoResponse {
    let snapshot = state.results.snapshot();
    let counts = snapshot.counts.get(&paredao.id);
    let votes: Vec<u64> = paredao.participants.iter().map(|p| votes_for(counts, &p.id)).collect();
    let participants = paredao
        .participants
        .iter()
        .zip(percentages(&votes))
        .map(|(p, percentage)| ParticipantShare { id: p.id.clone(), name: p.name.clone(), percentage })
        .collect();
    let view = ResultsView {
        paredao_id: paredao.id.clone(),
        state: state_now(&paredao),
        participants,
        updated_at: snapshot.taken_at,
    };
    ([(header::CACHE_CONTROL, "public, max-age=1")], Json(view))
}
