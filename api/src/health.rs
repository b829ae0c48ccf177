//! What readiness is made of: the broker link's state and whether the last contact with the
//! store succeeded (the background refreshers are the probes, so `/health/ready` costs nothing).

use std::sync::atomic::{AtomicBool, Ordering};

#[derive(Default)]
pub struct StoreHealth {
    reachable: AtomicBool,
}

impl StoreHealth {
    pub fn record(&self, ok: bool) {
        let was = self.reachable.swap(ok, Ordering::Relaxed);
        if was && !ok {
            tracing::error!("the store is unreachable; results go stale and readiness fails");
        } else if !was && ok {
            tracing::info!("the store is reachable");
        }
        metrics::gauge!("paredao_store_reachable").set(if ok { 1.0 } else { 0.0 });
    }

    pub fn is_reachable(&self) -> bool {
        self.reachable.load(Ordering::Relaxed)
    }
}
