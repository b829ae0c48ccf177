//! What readiness is made of: the broker link's state and whether the last contact with the
//! store succeeded (the background refreshers are the probes, so `/health/ready` costs nothing).

use voting::health::Dependency;

/// The store, as the refreshers last found it.
pub type StoreHealth = Dependency;

pub fn store_health() -> StoreHealth {
    Dependency::new()
        .metered("paredao_store_reachable")
        .logged("the store is unreachable; results go stale and readiness fails", Some("the store is reachable"))
}
