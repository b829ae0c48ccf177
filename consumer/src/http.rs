//! The consumer's small HTTP side: liveness, readiness and Prometheus metrics.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use metrics_exporter_prometheus::PrometheusHandle;

use crate::status::Status;

#[derive(Clone)]
struct HttpState {
    status: Arc<Status>,
    metrics: PrometheusHandle,
}

pub fn router(status: Arc<Status>, metrics: PrometheusHandle) -> Router {
    Router::new()
        .route("/health/live", get(|| async { axum::Json(serde_json::json!({ "status": "alive" })) }))
        .route("/health/ready", get(ready))
        .route("/metrics", get(render_metrics))
        .with_state(HttpState { status, metrics })
}

async fn ready(State(s): State<HttpState>) -> impl IntoResponse {
    let broker_connected = s.status.broker_connected();
    let store_reachable = s.status.store_reachable();
    let ready = broker_connected && store_reachable;
    let code = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (
        code,
        axum::Json(
            serde_json::json!({ "ready": ready, "broker_connected": broker_connected, "store_reachable": store_reachable }),
        ),
    )
}

async fn render_metrics(State(s): State<HttpState>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], s.metrics.render())
}
