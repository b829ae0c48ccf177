//! The counters, held in memory and reloaded every ~0.5 s. Results and statistics are served
//! from this snapshot: no request ever sums votes, and a flood of result requests costs the
//! store nothing.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;
use voting::paredao::ParedaoId;
use voting::store::Store;
use voting::tally::ParedaoCounts;

use crate::health::StoreHealth;

#[derive(Default)]
pub struct Snapshot {
    pub counts: HashMap<ParedaoId, ParedaoCounts>,
    /// When the counters were read; `None` until the first read succeeds.
    pub taken_at: Option<DateTime<Utc>>,
}

#[derive(Default)]
pub struct ResultsCache {
    snapshot: ArcSwap<Snapshot>,
}

impl ResultsCache {
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot.load_full()
    }

    pub fn spawn_refresher(
        self: Arc<Self>,
        store: Store,
        every: Duration,
        health: Arc<StoreHealth>,
        stop: CancellationToken,
    ) -> tokio::task::JoinHandle<()> {
        voting::periodic::spawn_every(every, stop, move || {
            let (cache, store, health) = (self.clone(), store.clone(), health.clone());
            async move {
                let taken_at = Utc::now();
                match store.load_counters().await {
                    Ok(tally) => {
                        cache
                            .snapshot
                            .store(Arc::new(Snapshot { counts: tally.by_paredao(), taken_at: Some(taken_at) }));
                        health.record(true);
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "reloading the counters failed; serving the last snapshot");
                        health.record(false);
                    }
                }
                if let Some(at) = cache.snapshot.load().taken_at {
                    let age = (Utc::now() - at).num_milliseconds() as f64 / 1000.0;
                    metrics::gauge!("paredao_results_snapshot_age_seconds").set(age);
                }
            }
        })
    }
}
