//! Admission control: a replica holds a bounded amount of work, and refuses the rest at once.
//!
//! The opening minute of a paredão offers many times what a replica can carry. Queueing the
//! excess would only make every answer late (and then nginx would time the replica out and take
//! it out of rotation); refusing it costs microseconds and keeps the answers that are given fast.
//! So each request class holds a permit while it is served, and a request that finds none left
//! is answered 503 `overloaded` with `Retry-After` before anything else happens: its body is not
//! read, its captcha is not checked or spent, nothing reaches the broker. Retrying is safe.
//!
//! Two classes, so that a flood of one cannot starve the other:
//! - `votes`: from the first byte of a vote to its broker confirm (the expensive path);
//! - `reads`: the challenge, the paredão, the results and the statistics (answered from memory).
//!
//! Health and metrics are never shed: a shed readiness probe would take a busy replica out of
//! rotation, which is exactly what must not happen.
//!
//! The permits are taken by extractors (`VoteSlot`, `ReadSlot`), listed first in a handler's
//! arguments so that they run before the body is read.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use voting::configuration::AdmissionSettings;

use crate::error::ApiError;
use crate::state::AppState;

/// One request class's bound.
struct Bound {
    permits: Arc<Semaphore>,
    limit: usize,
    class: &'static str,
}

impl Bound {
    fn new(limit: usize, class: &'static str) -> Self {
        Self { permits: Arc::new(Semaphore::new(limit)), limit, class }
    }

    fn try_enter(&self) -> Result<OwnedSemaphorePermit, ApiError> {
        self.permits.clone().try_acquire_owned().map_err(|_| {
            metrics::counter!("paredao_requests_shed_total", "class" => self.class).increment(1);
            ApiError::Overloaded
        })
    }

    fn in_flight(&self) -> usize {
        self.limit - self.permits.available_permits()
    }
}

pub struct Admission {
    votes: Bound,
    reads: Bound,
}

impl Admission {
    pub fn new(settings: &AdmissionSettings) -> Self {
        Self {
            votes: Bound::new(settings.max_votes_in_flight.get(), "votes"),
            reads: Bound::new(settings.max_reads_in_flight.get(), "reads"),
        }
    }

    /// Sets the in-flight gauges; called when Prometheus scrapes, so that the hot path pays
    /// nothing for them.
    pub fn publish_gauges(&self) {
        for bound in [&self.votes, &self.reads] {
            metrics::gauge!("paredao_requests_in_flight", "class" => bound.class).set(bound.in_flight() as f64);
            metrics::gauge!("paredao_requests_in_flight_limit", "class" => bound.class).set(bound.limit as f64);
        }
    }
}

/// A vote's place in the replica: held from the first byte until the answer.
pub struct VoteSlot {
    _permit: OwnedSemaphorePermit,
}

/// A read's place in the replica.
pub struct ReadSlot {
    _permit: OwnedSemaphorePermit,
}

impl FromRequestParts<AppState> for VoteSlot {
    type Rejection = ApiError;

    async fn from_request_parts(_parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        state.admission.votes.try_enter().map(|_permit| VoteSlot { _permit }).inspect_err(|e| {
            // The handler never runs for a shed vote; it is a refused vote all the same.
            metrics::counter!("paredao_votes_rejected_total", "reason" => e.code()).increment(1);
        })
    }
}

impl FromRequestParts<AppState> for ReadSlot {
    type Rejection = ApiError;

    async fn from_request_parts(_parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        state.admission.reads.try_enter().map(|_permit| ReadSlot { _permit })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::num::NonZeroUsize;

    fn admission(votes: usize, reads: usize) -> Admission {
        Admission::new(&AdmissionSettings {
            max_votes_in_flight: NonZeroUsize::new(votes).unwrap(),
            max_reads_in_flight: NonZeroUsize::new(reads).unwrap(),
        })
    }

    #[test]
    fn beyond_the_bound_a_request_is_refused_and_a_finished_one_makes_room() {
        let a = admission(2, 1);
        let first = a.votes.try_enter().unwrap();
        let _second = a.votes.try_enter().unwrap();
        assert!(matches!(a.votes.try_enter(), Err(ApiError::Overloaded)));
        assert_eq!(a.votes.in_flight(), 2);
        drop(first);
        assert!(a.votes.try_enter().is_ok());
    }

    #[test]
    fn a_flood_of_reads_does_not_take_the_votes_room() {
        let a = admission(1, 1);
        let _read = a.reads.try_enter().unwrap();
        assert!(a.reads.try_enter().is_err());
        assert!(a.votes.try_enter().is_ok());
    }
}
