//! The HTTP routes, one module per resource.

pub mod admin;
pub mod challenge;
pub mod health;
pub mod paredao;
pub mod results;
pub mod stats;
pub mod votes;

use std::sync::Arc;

use chrono::Utc;
use voting::paredao::{Paredao, ParedaoState};

use crate::error::ApiError;
use crate::state::AppState;

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
