//! What both services say about their health: the routes that are the same in each
//! (`/health/live`, `/metrics`) and the state of one dependency as readiness sees it.
//! `/health/ready` stays with each service: what makes it ready differs.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use metrics_exporter_prometheus::PrometheusHandle;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// One dependency (the broker, the store, a subscription) as readiness sees it: up or down,
/// mirrored in a gauge (1 or 0) where it has one, logged when it changes where it says so.
/// Starts down.
pub struct Dependency {
    up: AtomicBool,
    gauge: Option<&'static str>,
    /// Logged at ERROR when it goes down.
    lost: Option<&'static str>,
    /// Logged at INFO when it comes up.
    back: Option<&'static str>,
}

impl Dependency {
    /// Neither metered nor logged: a flag readiness reads.
    pub const fn new() -> Self {
        Self { up: AtomicBool::new(false), gauge: None, lost: None, back: None }
    }

    /// Sets gauge `name` on every record (dashboards and alerts read it: never rename one).
    pub const fn metered(mut self, name: &'static str) -> Self {
        self.gauge = Some(name);
        self
    }

    /// Logs `lost` (ERROR) when it goes down and `back` (INFO), if any, when it comes up again.
    pub const fn logged(mut self, lost: &'static str, back: Option<&'static str>) -> Self {
        self.lost = Some(lost);
        self.back = back;
        self
    }

    /// What the last contact with it said.
    pub fn record(&self, up: bool) {
        let was = self.up.swap(up, Ordering::Relaxed);
        match (was, up, self.lost, self.back) {
            (true, false, Some(lost), _) => tracing::error!("{lost}"),
            (false, true, _, Some(back)) => tracing::info!("{back}"),
            _ => {}
        }
        if let Some(gauge) = self.gauge {
            metrics::gauge!(gauge).set(if up { 1.0 } else { 0.0 });
        }
    }

    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }
}

impl Default for Dependency {
    fn default() -> Self {
        Self::new()
    }
}

/// `/health/live` (documented in the API's spec) and `/metrics`. `before_scrape` runs before
/// each rendering, for gauges only read at scrape time.
pub fn router<S>(metrics: PrometheusHandle, before_scrape: impl Fn() + Send + Sync + 'static) -> OpenApiRouter<S>
where
    S: Clone + Send + Sync + 'static,
{
    // Empty, not `new()`: merged into the API's spec, it adds its paths and nothing else.
    OpenApiRouter::default()
        .routes(routes!(live))
        .route("/metrics", axum::routing::get(render_metrics))
        .with_state(Scrape { metrics, before: Arc::new(before_scrape) })
}

#[derive(Clone)]
struct Scrape {
    metrics: PrometheusHandle,
    before: Arc<dyn Fn() + Send + Sync>,
}

/// The process is up. Says nothing about its dependencies.
#[utoipa::path(get, path = "/health/live", tag = "health", responses((status = 200, description = "Alive")))]
pub async fn live() -> impl IntoResponse {
    axum::Json(serde_json::json!({ "status": "alive" }))
}

/// Prometheus metrics, text exposition format.
async fn render_metrics(State(scrape): State<Scrape>) -> impl IntoResponse {
    (scrape.before)();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], scrape.metrics.render())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dependency_starts_down_and_keeps_what_it_was_last_told() {
        let store = Dependency::new().metered("paredao_test_reachable").logged("lost", Some("back"));
        assert!(!store.is_up());
        store.record(true);
        assert!(store.is_up());
        store.record(false);
        assert!(!store.is_up());
    }
}
