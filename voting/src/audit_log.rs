//! The audit trail in the store: collection `audit`, one document per action of the production
//! team (who, with what role, from where, what, to what, details, when), read newest first by
//! the producers' page. Written by the API's `audit::record`.

use bson::{Document, doc};
use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use mongodb::Collection;
use serde::{Deserialize, Serialize};

use crate::store::{Store, StoreError};

/// As stored (`at` a BSON date); the API answers `api::audit::AuditView`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuditEntry {
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
    /// Details, a JSON object (or null).
    pub detail: serde_json::Value,
    #[serde(with = "bson::serde_helpers::chrono_datetime_as_bson_datetime")]
    pub at: DateTime<Utc>,
}

impl Store {
    fn audit(&self) -> Collection<Document> {
        self.db.collection("audit")
    }

    pub async fn ensure_audit_indexes(&self) -> Result<(), StoreError> {
        self.audit().create_index(mongodb::IndexModel::builder().keys(doc! { "at": -1 }).build()).await?;
        Ok(())
    }

    pub async fn insert_audit(&self, entry: &AuditEntry) -> Result<(), StoreError> {
        let doc = bson::to_document(entry).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        self.audit().insert_one(doc).await?;
        Ok(())
    }

    /// The `limit` newest entries, newest first.
    pub async fn recent_audit(&self, limit: i64) -> Result<Vec<AuditEntry>, StoreError> {
        let docs: Vec<Document> =
            self.audit().find(doc! {}).sort(doc! { "at": -1, "_id": -1 }).limit(limit).await?.try_collect().await?;
        docs.into_iter()
            .map(|mut d| {
                d.remove("_id");
                bson::from_document(d).map_err(|e| StoreError::Corrupt(e.to_string()))
            })
            .collect()
    }
}
