//! The audit trail of the production team's actions: who did what, to what, when and from
//! where. Every state-changing admin handler calls `record` once it has succeeded.
//!
//! Each entry is a structured INFO line (`audit: true`, so Graylog finds them with
//! `audit:true`); keeping them in the store for the producers' page plugs in here.

use serde_json::Value;

use crate::identity::Identity;
use crate::state::AppState;

/// Records that `who` did `action` (e.g. `paredao.open`) to `target` (e.g. the paredão id),
/// with `detail` (a JSON object, or `Value::Null`).
pub async fn record(_state: &AppState, who: &Identity, action: &str, target: &str, detail: Value) {
    tracing::info!(
        audit = true,
        actor = %who.name,
        role = who.role.as_str(),
        address = %who.address,
        action,
        target,
        detail = %detail,
        "admin action"
    );
}
