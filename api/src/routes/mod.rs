//! The HTTP routes, one module per resource.

pub mod admin;
pub mod challenge;
pub mod export;
pub mod final_result;
pub mod health;
pub mod history;
pub mod paredao;
pub mod paredoes_admin;
pub mod results;
pub mod stats;
pub mod votes;

use std::sync::Arc;

use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use voting::paredao::{Paredao, ParedaoState, ParticipantId};
use voting::tally::ParedaoCounts;

use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;

/// What a read of a named paredão (the paredão, its results, its statistics) answers besides its
/// 200, written once for the OpenAPI spec.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)] // only its derive is used: the handlers answer through `ApiError`
pub enum ReadRefusals {
    /// No such paredão
    #[response(status = 404)]
    NotFound(ErrorBody),
    /// `overloaded`: the replica is answering as many reads as it may; try again after Retry-After
    #[response(status = 503)]
    Overloaded(ErrorBody),
}

/// The paredão a read names in its path (`/api/paredoes/{paredao_id}…`), found: the paredão,
/// its results and its statistics take it as an argument, after their `ReadSlot`. The vote and
/// the challenge look theirs up by hand, after the checks that must come first.
pub struct NamedParedao(pub Arc<Paredao>);

impl FromRequestParts<AppState> for NamedParedao {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let Path(id) = Path::<String>::from_request_parts(parts, state).await.map_err(IntoResponse::into_response)?;
        find_paredao(state, &id).map(Self).map_err(IntoResponse::into_response)
    }
}

/// A participant's votes in `counts` (none before the first is counted).
pub(crate) fn votes_for(counts: Option<&ParedaoCounts>, participant: &ParticipantId) -> u64 {
    counts.and_then(|c| c.by_participant.get(participant)).copied().unwrap_or(0)
}

/// A paredão by id, or `current` for the one a viewer arriving now should see.
pub(crate) fn find_paredao(state: &AppState, id: &str) -> Result<Arc<Paredao>, ApiError> {
    if id == "current" {
        let all = state.paredoes.all();
        return voting::paredao::current(all.iter().map(|p| p.as_ref()), Utc::now())
            .and_then(|p| state.paredoes.get(p.id.as_str()))
            .ok_or(ApiError::NoParedao);
    }
    state.paredoes.get(id).ok_or_else(|| ApiError::UnknownParedao(id.to_string()))
}

pub(crate) fn state_now(p: &Paredao) -> ParedaoState {
    p.state_at(Utc::now())
}
