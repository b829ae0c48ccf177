//! The deliberate error path: on demand, a chosen share of votes fails with a 500, so that an
//! SRE can show (or rehearse) how errors look in the logs, the dashboards and the alerts.
//!
//! The share is set through `PUT /api/admin/fault` and kept in the store, so every replica picks
//! it up within a second whichever one was asked. It is off (0) unless someone turns it on, and
//! its value is always visible as the `paredao_fault_vote_error_ratio` gauge (an alert fires
//! while it is on, so nobody forgets it).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use voting::store::Store;

#[derive(Default)]
pub struct FaultInjector {
    /// The ratio's f64 bits.
    ratio: AtomicU64,
}

impl FaultInjector {
    pub fn ratio(&self) -> f64 {
        f64::from_bits(self.ratio.load(Ordering::Relaxed))
    }

    pub fn set(&self, ratio: f64) {
        self.ratio.store(ratio.clamp(0.0, 1.0).to_bits(), Ordering::Relaxed);
        metrics::gauge!("paredao_fault_vote_error_ratio").set(self.ratio());
    }

    /// Whether this vote is one of the share that fails on purpose.
    pub fn strikes(&self) -> bool {
        let ratio = self.ratio();
        // Off costs one atomic load: no randomness drawn on the normal path.
        ratio > 0.0 && uniform() < ratio
    }

    /// Follows the store's switch every `every` until `stop`.
    pub fn spawn_refresher(
        self: Arc<Self>,
        store: Store,
        every: Duration,
        stop: CancellationToken,
    ) -> tokio::task::JoinHandle<()> {
        self.set(0.0);
        voting::periodic::spawn_every(every, stop, move || {
            let (injector, store) = (self.clone(), store.clone());
            async move {
                match store.load_fault_ratio().await {
                    Ok(ratio) => {
                        if ratio != injector.ratio() {
                            tracing::warn!(vote_error_ratio = ratio, "fault injection changed");
                        }
                        injector.set(ratio);
                    }
                    // The paredão refresher already reports the store; keep the last value.
                    Err(e) => tracing::debug!(error = %e, "reading the fault switch failed"),
                }
            }
        })
    }
}

/// A uniform number in [0, 1). Each `RandomState` has fresh keys (random per thread, then
/// stepped), and SipHash spreads them evenly: good enough to pick a share of requests, with no
/// extra dependency. (A UUIDv4's bits are not all random: its version and variant are fixed.)
fn uniform() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    let bits = std::collections::hash_map::RandomState::new().build_hasher().finish();
    (bits >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn off_never_strikes_on_always_does_and_a_share_strikes_about_that_often() {
        let f = FaultInjector::default();
        assert!((0..1000).all(|_| !f.strikes()));
        f.set(1.0);
        assert!((0..1000).all(|_| f.strikes()));
        f.set(0.25);
        let struck = (0..10_000).filter(|_| f.strikes()).count();
        assert!((2000..3000).contains(&struck), "{struck}");
        f.set(7.0);
        assert_eq!(f.ratio(), 1.0, "clamped");
    }
}
