//! What the consumer's readiness is made of, shared by the worker and the HTTP endpoints.

use std::sync::atomic::{AtomicBool, Ordering};

#[derive(Default)]
pub struct Status {
    broker_connected: AtomicBool,
    store_reachable: AtomicBool,
}

impl Status {
    pub fn set_broker(&self, ok: bool) {
        self.broker_connected.store(ok, Ordering::Relaxed);
        metrics::gauge!("paredao_consumer_broker_connected").set(if ok { 1.0 } else { 0.0 });
    }

    pub fn set_store(&self, ok: bool) {
        let was = self.store_reachable.swap(ok, Ordering::Relaxed);
        if was && !ok {
            tracing::error!("the store is unreachable; votes wait in the queue until it is back");
        }
        metrics::gauge!("paredao_consumer_store_reachable").set(if ok { 1.0 } else { 0.0 });
    }

    pub fn broker_connected(&self) -> bool {
        self.broker_connected.load(Ordering::Relaxed)
    }

    pub fn store_reachable(&self) -> bool {
        self.store_reachable.load(Ordering::Relaxed)
    }
}
