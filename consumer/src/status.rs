//! What the consumer's readiness is made of, shared by the worker and the HTTP endpoints.

use voting::health::Dependency;

pub struct Status {
    /// Consuming the vote queue (the reconnect supervisor keeps it).
    pub broker: Dependency,
    /// The last write or ping answered.
    pub store: Dependency,
}

impl Default for Status {
    fn default() -> Self {
        Self {
            broker: Dependency::new().metered("paredao_consumer_broker_connected"),
            store: Dependency::new()
                .metered("paredao_consumer_store_reachable")
                .logged("the store is unreachable; votes wait in the queue until it is back", None),
        }
    }
}
