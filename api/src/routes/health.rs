//! `/health/ready`: what the API needs to take votes. `/health/live` and `/metrics` are the
//! same in both services (`voting::health`).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
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

/// Ready to accept votes: connected to the broker and not blocked by it, the store answering, the paredões loaded,
/// hearing of the challenges other replicas spend.
#[utoipa::path(
    get, path = "/health/ready", tag = "health",
    responses((status = 200, description = "Ready", body = Readiness), (status = 503, description = "Not ready", body = Readiness))
)]
pub async fn ready(State(state): State<AppState>) -> impl IntoResponse {
    let broker_connected = state.broker.is_connected();
    let broker_blocked = state.broker.is_blocked();
    let store_reachable = state.store_health.is_up();
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
