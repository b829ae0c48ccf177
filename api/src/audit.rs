//! The audit trail of the production team's actions: who did what, to what, when and from
//! where. Every state-changing team handler calls `record` once it has succeeded; logins,
//! failed logins and logouts are recorded by the accounts module.
//!
//! Each entry is a structured INFO line (`audit: true`, so Graylog finds them with
//! `audit:true`) and a document in the store's `audit` collection, which the producers' page
//! (`auditoria.html`, through `GET /api/admin/audit`) reads. The line is written first and a
//! store that cannot be written only costs a WARN: the action has happened already, and
//! failing its answer would not undo it.

use std::time::Duration;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::IntoResponse;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use voting::audit_log::AuditEntry;

use crate::error::{ApiError, ErrorBody};
use crate::identity::{Identity, Producer};
use crate::state::AppState;

/// How long an audit write may hold up the answer of the action it records.
const STORE_WRITE_TIMEOUT: Duration = Duration::from_secs(2);

/// Records that `who` did `action` (e.g. `paredao.open`) to `target` (e.g. the paredão id),
/// with `detail` (a JSON object, or `Value::Null`).
pub async fn record(state: &AppState, who: &Identity, action: &str, target: &str, detail: Value) {
    record_entry(state, &who.name, Some(who.role.as_str()), &who.address, action, target, detail).await
}

/// `record` for an actor who is not signed in (a failed login: `who` is the name tried).
pub async fn record_entry(
    state: &AppState,
    who: &str,
    role: Option<&str>,
    address: &str,
    action: &str,
    target: &str,
    detail: Value,
) {
    tracing::info!(
        audit = true,
        actor = %who,
        role = role.unwrap_or(""),
        address = %address,
        action,
        target,
        detail = %detail,
        "admin action"
    );
    let entry = AuditEntry {
        who: who.to_string(),
        role: role.map(str::to_string),
        address: address.to_string(),
        action: action.to_string(),
        target: target.to_string(),
        detail,
        at: Utc::now(),
    };
    match tokio::time::timeout(STORE_WRITE_TIMEOUT, state.store.insert_audit(&entry)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!(error = %e, action, "the audit entry was not stored (it is in the log)"),
        Err(_) => tracing::warn!(action, "the audit entry was not stored in time (it is in the log)"),
    }
}

/// An entry of the audit trail.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditView {
    /// The account (or `sre-token`; for a failed login, the name that was tried).
    pub who: String,
    /// `admin` or `producer`; `null` when nobody was signed in (a failed login).
    pub role: Option<String>,
    /// The client's address as the API saw it.
    pub address: String,
    /// E.g. `auth.login`, `paredao.open`.
    pub action: String,
    /// What it was done to (a paredão id, an account name), or empty.
    pub target: String,
    /// Details, a JSON object, or null.
    #[schema(value_type = Object)]
    pub detail: Value,
    pub at: DateTime<Utc>,
}

impl From<AuditEntry> for AuditView {
    fn from(e: AuditEntry) -> Self {
        Self {
            who: e.who,
            role: e.role,
            address: e.address,
            action: e.action,
            target: e.target,
            detail: e.detail,
            at: e.at,
        }
    }
}

/// Entries answered when `limit` is not given, and at most.
const DEFAULT_LIMIT: i64 = 100;
const MAX_LIMIT: i64 = 1000;

#[derive(Debug, Deserialize, IntoParams)]
pub struct AuditQuery {
    /// How many entries, newest first (default 100, at most 1000).
    pub limit: Option<i64>,
}

/// The production team's actions, newest first.
#[utoipa::path(
    get, path = "/api/admin/audit", tag = "audit",
    security(("session" = []), ("bearer" = [])),
    params(AuditQuery),
    responses(
        (status = 200, description = "The newest entries, newest first", body = [AuditView]),
        (status = 400, description = "`invalid_query`: limit is not a number", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 503, description = "The store cannot be read", body = ErrorBody),
    )
)]
pub async fn get_audit(
    _who: Producer,
    State(state): State<AppState>,
    query: Result<Query<AuditQuery>, QueryRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::BadRequest {
        status: axum::http::StatusCode::BAD_REQUEST,
        code: "invalid_query",
        message: e.body_text(),
    })?;
    let limit = query.limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT);
    let entries = state.store.recent_audit(limit).await.map_err(|e| {
        tracing::warn!(error = %e, "could not read the audit trail");
        ApiError::Unavailable("the store cannot be read; try again")
    })?;
    let entries: Vec<AuditView> = entries.into_iter().map(AuditView::from).collect();
    Ok(([(header::CACHE_CONTROL, "no-store")], Json(entries)))
}
