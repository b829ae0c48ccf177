use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use voting::paredao::{ParedaoId, ParedaoState, ParticipantId};

use super::{NamedParedao, ReadRefusals, state_now, votes_for};
use crate::admission::ReadSlot;
use crate::identity::Producer;
use crate::state::AppState;

#[derive(Debug, Serialize, ToSchema)]
pub struct StatsView {
    pub paredao_id: ParedaoId,
    pub title: String,
    pub state: ParedaoState,
    /// Every vote counted so far.
    pub total_votes: u64,
    /// In the paredão's order.
    pub participants: Vec<ParticipantVotes>,
    /// One entry per hour (UTC) that has votes, oldest first.
    pub hourly: Vec<HourVotes>,
    /// When the counters were read; `null` before the first read.
    pub updated_at: Option<DateTime<Utc>>,
    /// The recent minutes that have votes (up to the last three hours), oldest first: the live
    /// chart. Empty once the paredão's minutes are rolled up into its final result.
    pub per_minute: Vec<voting::final_results::MinuteVotes>,
    /// `null` while the votes are still being counted; once the paredão has closed and drained,
    /// its frozen result's digest.
    #[serde(rename = "final")]
    pub final_result: Option<FinalMark>,
}

/// A final result's mark, in the statistics.
#[derive(Debug, Serialize, ToSchema)]
pub struct FinalMark {
    /// SHA-256 (hex) of the per-hour CSV export.
    pub digest: String,
    pub frozen_at: DateTime<Utc>,
    /// Always true: the backlog had drained when it was frozen.
    pub drained: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ParticipantVotes {
    pub id: ParticipantId,
    pub name: String,
    pub votes: u64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct HourVotes {
    /// The start of the hour, UTC.
    pub hour: DateTime<Utc>,
    pub total: u64,
    /// Votes per participant id in that hour (every participant present, 0 included).
    pub votes: BTreeMap<String, u64>,
}

/// The production team's statistics: exact totals, per participant and per hour, as of
/// `updated_at` (counters are read about every half second).
#[utoipa::path(
    get, path = "/api/paredoes/{paredao_id}/stats", tag = "results",
    params(("paredao_id" = String, Path, description = "The paredão id, or `current`")),
    responses(
        (status = 200, description = "Exact vote counts", body = StatsView),
        (status = 401, description = "Not signed in", body = crate::error::ErrorBody),
        ReadRefusals,
    ),
    security(("session" = []), ("bearer" = [])),
)]
pub async fn get_stats(
    _who: Producer,
    _slot: ReadSlot,
    State(state): State<AppState>,
    NamedParedao(paredao): NamedParedao,
) -> impl IntoResponse {
    let snapshot = state.results.snapshot();
    let counts = snapshot.counts.get(&paredao.id);
    let participants: Vec<ParticipantVotes> = paredao
        .participants
        .iter()
        .map(|p| ParticipantVotes { id: p.id.clone(), name: p.name.clone(), votes: votes_for(counts, &p.id) })
        .collect();
    let hourly = counts
        .map(|c| {
            c.by_hour
                .iter()
                .map(|(hour, by)| HourVotes {
                    hour: *hour,
                    total: by.values().sum(),
                    votes: paredao
                        .participants
                        .iter()
                        .map(|p| (p.id.to_string(), by.get(&p.id).copied().unwrap_or(0)))
                        .collect(),
                })
                .collect()
        })
        .unwrap_or_default();
    let view = StatsView {
        paredao_id: paredao.id.clone(),
        title: paredao.title.clone(),
        state: state_now(&paredao),
        total_votes: counts.map(|c| c.total).unwrap_or(0),
        participants,
        hourly,
        updated_at: snapshot.taken_at,
        per_minute: super::final_result::recent_minutes(&paredao, snapshot.per_minute.get(&paredao.id)),
        final_result: snapshot.finals.get(&paredao.id).map(|f| FinalMark {
            digest: f.digest.clone(),
            frozen_at: f.frozen_at,
            drained: true,
        }),
    };
    ([(header::CACHE_CONTROL, "no-store")], Json(view))
}
