use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde::Serialize;
use utoipa::ToSchema;

use crate::state::AppState;

#[derive(Debug, Serialize, ToSchema)]
pub struct Readiness {
    pub ready: bool,
    pub broker_connected: bool,
    /// The broker has blocked publishing (a memory or disk alarm): votes are refused meanwhile.
    pub broker_blocked: bool,
    pub store_reachable: bool,
    pub paredoes_loaded: bool,
    /// Subscribed to the other replicas' news of spent challenges (always true unless the
    /// policy is `altcha`): until then a replay they refused could be accepted here.
    pub spent_news_subscribed: bool,
    /// The anti-bot policy in force.
    pub anti_bot: &'static str,
    /// Spent captcha challenges this replica knows of, its own and those other replicas told it.
    pub spent_challenges_known: usize,
}

/// The process is up. Says nothing about its dependencies.
#[utoipa::path(get, path = "/health/live", tag = "health", responses((status = 200, description = "Alive")))]
pub async fn live() -> impl IntoResponse {
    Json(serde_json::json!({ "status": "alive" }))
}

/// Ready to accept votes: connected to the broker and not blocked by it, the store answering, the paredões loaded,
/// hearing of the challenges other replicas spend.
#[utoipa::path(
    get, path = "/health/ready", tag = "health",
    responses((status = 200, description = "Ready", body = Readiness), (status = 503, description = "Not ready", body = Readiness))
)]
pub async fn ready(State(state): State<AppState>) -> impl IntoResponse {
    let broker_connected = state.broker.is_connected();
    let broker_blocked = state.broker.is_blocked();
    let store_reachable = state.store_health.is_reachable();
    let paredoes_loaded = state.paredoes.is_loaded();
    let spent_news_subscribed = state.anti_bot.hears_spends();
    let ready = broker_connected && !broker_blocked && store_reachable && paredoes_loaded && spent_news_subscribed;
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (
        status,
        Json(Readiness {
            ready,
            broker_connected,
            broker_blocked,
            store_reachable,
            paredoes_loaded,
            spent_news_subscribed,
            anti_bot: state.anti_bot.name(),
            spent_challenges_known: state.anti_bot.spent_known(),
        }),
    )
}

/// Prometheus metrics, text exposition format.
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    state.admission.publish_gauges();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], state.metrics.render())
}
