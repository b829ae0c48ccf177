//! The paredões, held in memory and reloaded in the background: a vote checks that its paredão
//! exists and is open without a database round trip.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio_util::sync::CancellationToken;
use voting::paredao::{Paredao, ParedaoId};
use voting::store::Store;

use crate::health::StoreHealth;

#[derive(Default)]
pub struct ParedaoCache {
    by_id: ArcSwap<HashMap<ParedaoId, Arc<Paredao>>>,
    loaded: AtomicBool,
}

impl ParedaoCache {
    pub fn get(&self, id: &str) -> Option<Arc<Paredao>> {
        let id = ParedaoId::parse(id).ok()?;
        self.by_id.load().get(&id).cloned()
    }

    pub fn all(&self) -> Vec<Arc<Paredao>> {
        self.by_id.load().values().cloned().collect()
    }

    /// True once the paredões have been read from the store at least once.
    pub fn is_loaded(&self) -> bool {
        self.loaded.load(Ordering::Relaxed)
    }

    /// Puts one paredão, just changed by this replica, in place at once (the others follow on
    /// their next reload).
    pub fn put(&self, paredao: Paredao) {
        self.by_id.rcu(|current| {
            let mut map = HashMap::clone(current);
            map.insert(paredao.id.clone(), Arc::new(paredao.clone()));
            map
        });
    }

    fn replace(&self, paredoes: Vec<Paredao>) {
        let map = paredoes.into_iter().map(|p| (p.id.clone(), Arc::new(p))).collect();
        self.by_id.store(Arc::new(map));
        self.loaded.store(true, Ordering::Relaxed);
    }

    /// Seeds the configured paredões (once the store answers; only those absent, so the team's
    /// edits to a seeded one stay), then reloads every `every`.
    pub fn spawn_refresher(
        self: Arc<Self>,
        store: Store,
        seed: Vec<Paredao>,
        every: Duration,
        health: Arc<StoreHealth>,
        stop: CancellationToken,
    ) -> tokio::task::JoinHandle<()> {
        let seeded = Arc::new(AtomicBool::new(seed.is_empty()));
        let seed = Arc::new(seed);
        voting::periodic::spawn_every(every, stop, move || {
            let (cache, store, seed, health, seeded) =
                (self.clone(), store.clone(), seed.clone(), health.clone(), seeded.clone());
            async move {
                if !seeded.load(Ordering::Relaxed) && seed_all(&store, &seed).await {
                    seeded.store(true, Ordering::Relaxed);
                }
                match store.load_paredoes().await {
                    Ok(paredoes) => {
                        cache.replace(paredoes);
                        health.record(true);
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "reloading the paredões failed; serving the last ones loaded");
                        health.record(false);
                    }
                }
            }
        })
    }
}

async fn seed_all(store: &Store, seed: &[Paredao]) -> bool {
    for p in seed {
        match store.insert_paredao_if_absent(p).await {
            Ok(true) => tracing::info!(paredao = %p.id, "paredão seeded from configuration"),
            Ok(false) => tracing::info!(paredao = %p.id, "paredão of the configuration already stored; left as it is"),
            Err(e) => {
                tracing::warn!(error = %e, paredao = %p.id, "seeding the paredão failed; will retry");
                return false;
            }
        }
    }
    true
}
