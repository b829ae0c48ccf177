//! The counters, held in memory and reloaded every ~0.5 s. Results and statistics are served
//! from this snapshot: no request ever sums votes, and a flood of result requests costs the
//! store nothing.
//!
//! Besides the hourly counters it holds the recent per-minute counters (the last
//! `RECENT_MINUTES`, of whatever paredão has some: the live one, and one that closed and has not
//! been rolled up yet), for the panel's chart, and the frozen final results without their
//! series, for the statistics and the history. Each read is bounded: by time for the minutes,
//! by the number of paredões for the finals.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;
use voting::final_results::FinalSummary;
use voting::minute_counters::MinuteSeries;
use voting::paredao::ParedaoId;
use voting::store::{Store, StoreError};
use voting::tally::ParedaoCounts;

use crate::health::StoreHealth;

#[derive(Default)]
pub struct Snapshot {
    pub counts: HashMap<ParedaoId, ParedaoCounts>,
    /// The last `RECENT_MINUTES` of per-minute counts, per paredão that has some.
    pub per_minute: HashMap<ParedaoId, MinuteSeries>,
    /// The frozen final results (without their series), per paredão.
    pub finals: HashMap<ParedaoId, FinalSummary>,
    /// When the counters were read; `None` until the first read succeeds.
    pub taken_at: Option<DateTime<Utc>>,
}

/// How many minutes back the per-minute counters are loaded: the panel charts the last hour;
/// three give it room without letting the read grow with the length of the vote.
pub const RECENT_MINUTES: i64 = 180;

async fn load(store: &Store, taken_at: DateTime<Utc>) -> Result<Snapshot, StoreError> {
    let counts = store.load_counters().await?.by_paredao();
    let per_minute = store.load_recent_minutes(taken_at - chrono::Duration::minutes(RECENT_MINUTES)).await?;
    let finals = store.load_final_summaries().await?;
    Ok(Snapshot { counts, per_minute, finals, taken_at: Some(taken_at) })
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
                match load(&store, taken_at).await {
                    Ok(snapshot) => {
                        cache.snapshot.store(Arc::new(snapshot));
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
