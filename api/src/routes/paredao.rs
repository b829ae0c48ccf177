use axum::Json;
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use voting::paredao::{Paredao, ParedaoId, ParedaoState, Participant, ResultsVisibility};

use super::{NamedParedao, ReadRefusals, state_now};
use crate::admission::ReadSlot;

#[derive(Debug, Serialize, ToSchema)]
pub struct ParedaoView {
    pub id: ParedaoId,
    pub title: String,
    pub state: ParedaoState,
    pub opens_at: DateTime<Utc>,
    pub closes_at: DateTime<Utc>,
    pub participants: Vec<Participant>,
    /// What the viewers' results show: `live` percentages, nothing until `after_close`, or `never`.
    pub results_visibility: ResultsVisibility,
}

impl From<&Paredao> for ParedaoView {
    fn from(p: &Paredao) -> Self {
        Self {
            id: p.id.clone(),
            title: p.title.clone(),
            state: state_now(p),
            opens_at: p.opens_at,
            closes_at: p.closes_at,
            participants: p.participants.clone(),
            results_visibility: p.results_visibility,
        }
    }
}

/// A paredão and its participants. `current` names the one open now (else the next to open,
/// else the last closed).
#[utoipa::path(
    get, path = "/api/paredoes/{paredao_id}", tag = "paredao",
    params(("paredao_id" = String, Path, description = "A paredão id, or `current`", example = "current")),
    responses(
        (status = 200, description = "The paredão", body = ParedaoView),
        ReadRefusals,
    )
)]
pub async fn get_paredao(_slot: ReadSlot, NamedParedao(paredao): NamedParedao) -> Json<ParedaoView> {
    Json(ParedaoView::from(paredao.as_ref()))
}
