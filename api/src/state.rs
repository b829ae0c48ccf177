//! The application state every handler receives.

use std::sync::Arc;

use metrics_exporter_prometheus::PrometheusHandle;

use crate::admission::Admission;
use crate::anti_bot::AntiBot;
use crate::anti_bot::rate_limit::RateLimiter;
use crate::batcher::Batcher;
use crate::broker_link::BrokerLink;
use crate::client::ClientIds;
use crate::fault::FaultInjector;
use crate::health::StoreHealth;
use crate::paredao_cache::ParedaoCache;
use crate::results_cache::ResultsCache;

#[derive(Clone)]
pub struct AppState {
    /// The bounds on work in flight; beyond them requests are refused at once.
    pub admission: Arc<Admission>,
    pub paredoes: Arc<ParedaoCache>,
    pub results: Arc<ResultsCache>,
    pub batcher: Batcher,
    pub broker: Arc<BrokerLink>,
    pub store_health: Arc<StoreHealth>,
    pub store: voting::store::Store,
    pub fault: Arc<FaultInjector>,
    /// `None`: the admin endpoints are disabled.
    pub admin_token: Option<Arc<str>>,
    pub anti_bot: Arc<AntiBot>,
    /// Votes per client address.
    pub rate_limiter: Arc<RateLimiter>,
    /// Challenge requests per client address.
    pub challenge_rate_limiter: Arc<RateLimiter>,
    /// Issues and recognises the `paredao_cid` cookies.
    pub client_ids: Arc<ClientIds>,
    /// Peers whose X-Real-IP / X-Forwarded-For are believed (nginx).
    pub trusted_proxies: Arc<Vec<voting::ip_net::IpNet>>,
    pub metrics: PrometheusHandle,
    /// Where the participants' photos go (served by nginx at /fotos/).
    pub uploads: Arc<voting::configuration::UploadsSettings>,
    /// The production team's logins, sessions and their limits.
    pub accounts: Arc<crate::accounts::Accounts>,
}
