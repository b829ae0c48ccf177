//! The closed paredões, newest first, with their final results (or `counting` while their last
//! votes are still being counted).

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use voting::final_results::FinalParticipant;
use voting::paredao::{ParedaoId, ParedaoState};

use crate::admission::ReadSlot;
use crate::error::ErrorBody;
use crate::identity::Producer;
use crate::state::AppState;

#[derive(Debug, Serialize, ToSchema)]
pub struct HistoryEntry {
    pub paredao_id: ParedaoId,
    pub title: String,
    pub opens_at: DateTime<Utc>,
    pub closes_at: DateTime<Utc>,
    /// `final` once frozen; `counting` while the votes accepted before the close drain.
    #[schema(example = "final")]
    pub status: &'static str,
    /// The final total (while counting: the votes counted so far).
    pub total_votes: u64,
    /// In the paredão's order, final (while counting: so far).
    pub participants: Vec<FinalParticipant>,
    /// SHA-256 (hex) of the per-hour CSV export; `null` while counting.
    pub digest: Option<String>,
    pub frozen_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct History {
    /// Closed paredões, the last to close first.
    pub paredoes: Vec<HistoryEntry>,
}

/// The past paredões with their final results and digests.
#[utoipa::path(
    get, path = "/api/history", tag = "results",
    security(("session" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "Closed paredões, newest first", body = History),
        (status = 401, description = "Not signed in as a member of the production team", body = ErrorBody),
        (status = 503, description = "`overloaded`: try again after Retry-After", body = ErrorBody),
    )
)]
pub async fn get_history(_who: Producer, _slot: ReadSlot, State(state): State<AppState>) -> impl IntoResponse {
    let snapshot = state.results.snapshot();
    let now = Utc::now();
    let mut closed: Vec<_> =
        state.paredoes.all().into_iter().filter(|p| p.state_at(now) == ParedaoState::Closed).collect();
    closed.sort_by(|a, b| b.closes_at.cmp(&a.closes_at).then_with(|| a.id.cmp(&b.id)));
    let paredoes = closed
        .iter()
        .map(|p| match snapshot.finals.get(&p.id) {
            Some(f) => HistoryEntry {
                paredao_id: p.id.clone(),
                title: p.title.clone(),
                opens_at: p.opens_at,
                closes_at: p.closes_at,
                status: "final",
                total_votes: f.total_votes,
                participants: f.participants.clone(),
                digest: Some(f.digest.clone()),
                frozen_at: Some(f.frozen_at),
            },
            None => {
                let counts = snapshot.counts.get(&p.id);
                HistoryEntry {
                    paredao_id: p.id.clone(),
                    title: p.title.clone(),
                    opens_at: p.opens_at,
                    closes_at: p.closes_at,
                    status: "counting",
                    total_votes: counts.map(|c| c.total).unwrap_or(0),
                    participants: p
                        .participants
                        .iter()
                        .map(|x| FinalParticipant {
                            id: x.id.clone(),
                            name: x.name.clone(),
                            votes: super::votes_for(counts, &x.id),
                        })
                        .collect(),
                    digest: None,
                    frozen_at: None,
                }
            }
        })
        .collect();
    ([(header::CACHE_CONTROL, "no-store")], Json(History { paredoes }))
}
