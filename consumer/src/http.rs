//! The consumer's small HTTP side: liveness and Prometheus metrics (`voting::health`, as in the
//! API) and its own readiness.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use metrics_exporter_prometheus::PrometheusHandle;

use crate::status::Status;

pub fn router(status: Arc<Status>, metrics: PrometheusHandle) -> Router {
    Router::new().route("/health/ready", get(ready)).with_state(status).merge(voting::health::router(metrics, || {}))
}

async fn ready(State(status): State<Arc<Status>>) -> impl IntoResponse {
    let broker_connected = status.broker.is_up();
    let store_reachable = status.store.is_up();
    let ready = broker_connected && store_reachable;
    let code = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (
        code,
        axum::Json(
            serde_json::json!({ "ready": ready, "broker_connected": broker_connected, "store_reachable": store_reachable }),
        ),
    )
}
