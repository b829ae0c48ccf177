//! The admins' switches (a session with the admin role, or the SRE bearer token): the
//! deliberate error path.

use axum::Json;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::{ApiError, ErrorBody};
use crate::identity::AdminUser;
use crate::state::AppState;

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct FaultSetting {
    /// The share of vote requests answered 500 `injected_fault` on purpose, 0 (off) to 1.
    #[schema(example = 0.2)]
    pub vote_error_ratio: f64,
}

/// The fault injection in force (the same on every replica within a second).
#[utoipa::path(
    get, path = "/api/admin/fault", tag = "admin",
    security(("session" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "The current setting", body = FaultSetting),
        (status = 401, description = "Not signed in (no session, or a wrong bearer token)", body = ErrorBody),
        (status = 403, description = "Signed in, but not an admin", body = ErrorBody),
    )
)]
pub async fn get_fault(_admin: AdminUser, State(state): State<AppState>) -> Result<Json<FaultSetting>, ApiError> {
    Ok(Json(FaultSetting { vote_error_ratio: state.fault.ratio() }))
}

/// Makes a share of vote requests fail with 500 `injected_fault` (and an ERROR log line), on
/// every replica, until set back to 0. For showing errors in Graylog and Grafana on demand.
#[utoipa::path(
    put, path = "/api/admin/fault", tag = "admin",
    security(("session" = [], "csrf" = []), ("bearer" = [])),
    request_body = FaultSetting,
    responses(
        (status = 200, description = "Set; every replica follows within a second", body = FaultSetting),
        (status = 401, description = "Not signed in (no session, or a wrong bearer token)", body = ErrorBody),
        (status = 403, description = "Not an admin, or `csrf_failed`: a session without its X-CSRF-Token", body = ErrorBody),
        (status = 422, description = "The ratio is not between 0 and 1", body = ErrorBody),
        (status = 503, description = "The store could not be written", body = ErrorBody),
    )
)]
pub async fn put_fault(
    AdminUser(admin): AdminUser,
    State(state): State<AppState>,
    body: Result<Json<FaultSetting>, JsonRejection>,
) -> Result<Json<FaultSetting>, ApiError> {
    let Json(setting) = body?;
    if !(0.0..=1.0).contains(&setting.vote_error_ratio) {
        return Err(ApiError::BadRequest {
            status: axum::http::StatusCode::UNPROCESSABLE_ENTITY,
            code: "invalid_body",
            message: format!("vote_error_ratio must be between 0 and 1, got {}", setting.vote_error_ratio),
        });
    }
    state
        .store
        .set_fault_ratio(setting.vote_error_ratio)
        .await
        .map_err(|_| ApiError::Unavailable("the store cannot be written; the setting was not changed"))?;
    // This replica follows at once; the others on their next read.
    state.fault.set(setting.vote_error_ratio);
    tracing::warn!(vote_error_ratio = setting.vote_error_ratio, "fault injection set through the admin endpoint");
    crate::audit::record(
        &state,
        &admin,
        "fault.set",
        "vote_error_ratio",
        serde_json::json!({ "vote_error_ratio": setting.vote_error_ratio }),
    )
    .await;
    Ok(Json(setting))
}
