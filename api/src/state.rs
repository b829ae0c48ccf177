//! The application state every handler receives.

use std::sync::Arc;

use metrics_exporter_prometheus::PrometheusHandle;

use crate::anti_bot::AntiBot;
use crate::batcher::Batcher;
use crate::broker_link::BrokerLink;
use crate::health::StoreHealth;
use crate::paredao_cache::ParedaoCache;
use crate::results_cache::ResultsCache;

#[derive(Clone)]
pub struct AppState {
    pub paredoes: Arc<ParedaoCache>,
    pub results: Arc<ResultsCache>,
    pub batcher: Batcher,
    pub broker: Arc<BrokerLink>,
    pub store_health: Arc<StoreHealth>,
    pub anti_bot: AntiBot,
    pub metrics: PrometheusHandle,
}
