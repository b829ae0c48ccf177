use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use voting::paredao::{ParedaoId, ParedaoState, ParticipantId, ResultsVisibility};
use voting::tally::percentages;

use super::{NamedParedao, ReadRefusals, state_now, votes_for};
use crate::admission::ReadSlot;
use crate::state::AppState;

#[derive(Debug, Serialize, ToSchema)]
pub struct ResultsView {
    pub paredao_id: ParedaoId,
    pub state: ParedaoState,
    /// The paredão's policy: `live`, `after_close` or `never`.
    pub results_visibility: ResultsVisibility,
    /// False when the policy hides the counts now (`after_close` before the close, `never`
    /// always): the participants then carry no percentage.
    pub visible: bool,
    /// Why the counts are hidden: `after_close` ("shown once the vote has ended") or `never`;
    /// absent when visible.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "after_close")]
    pub hidden_reason: Option<&'static str>,
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
    /// Absent while the paredão's policy hides the counts.
    #[schema(example = 52.31)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub percentage: Option<f64>,
}

/// The viewers' results: the share of the votes of each participant, from the in-memory
/// snapshot (refreshed about every half second; cacheable for one second). The paredão's
/// `results_visibility` decides whether the shares are given: with `after_close` before the
/// close, and with `never` always, the answer has the paredão, its state and its participants,
/// `visible: false` and the `hidden_reason`, and no percentages.
#[utoipa::path(
    get, path = "/api/paredoes/{paredao_id}/results", tag = "results",
    params(("paredao_id" = String, Path, description = "The paredão id, or `current`")),
    responses(
        (status = 200, description = "Percentages per participant, or `visible: false` when the policy hides them", body = ResultsView),
        ReadRefusals,
    )
)]
pub async fn get_results(
    _slot: ReadSlot,
    State(state): State<AppState>,
    NamedParedao(paredao): NamedParedao,
) -> impl IntoResponse {
    let snapshot = state.results.snapshot();
    let now_state = state_now(&paredao);
    let policy = paredao.results_visibility;
    let visible = policy.shows_counts(now_state);
    let participants = if visible {
        let counts = snapshot.counts.get(&paredao.id);
        let votes: Vec<u64> = paredao.participants.iter().map(|p| votes_for(counts, &p.id)).collect();
        paredao
            .participants
            .iter()
            .zip(percentages(&votes))
            .map(|(p, percentage)| ParticipantShare {
                id: p.id.clone(),
                name: p.name.clone(),
                percentage: Some(percentage),
            })
            .collect()
    } else {
        paredao
            .participants
            .iter()
            .map(|p| ParticipantShare { id: p.id.clone(), name: p.name.clone(), percentage: None })
            .collect()
    };
    let view = ResultsView {
        paredao_id: paredao.id.clone(),
        state: now_state,
        results_visibility: policy,
        visible,
        hidden_reason: (!visible).then_some(policy.as_str()),
        participants,
        // When hidden, not even when the counts were read.
        updated_at: if visible { snapshot.taken_at } else { None },
    };
    ([(header::CACHE_CONTROL, "public, max-age=1")], Json(view))
}
