//! MongoDB: the paredões, the vote counters, and the record of applied batches.
//!
//! Collections:
//! - `paredoes`: one document per paredão (`_id` = its id).
//! - `counters`: one document per (paredão, participant, hour) with a `votes` count; the only
//!   thing the read side ever loads, a few documents per paredão-hour.
//! - `applied_batches`: the id of every vote batch already counted. It is written in the same
//!   transaction as the increments, so a batch's votes are counted together with its id or not
//!   at all; a redelivered batch finds its id and is skipped. That is "exactly once". Each
//!   record also lists the captcha challenges its votes spent (`k`), so that a restarted
//!   consumer knows which ones were already counted (see `spent_ledger`).

use std::collections::HashSet;
use std::time::Duration;

use bson::{DateTime as BsonDateTime, Document, doc};
use chrono::{DateTime, Utc};
use mongodb::options::{Acknowledgment, ClientOptions, WriteConcern};
use mongodb::{Client, Collection, Database, IndexModel};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::configuration::StoreSettings;
use crate::spent_ledger::{SpentLedger, key_of};
use crate::paredao::{Paredao, ParedaoId, ParedaoSpec, Participant, ParticipantId};
use crate::tally::{CounterKey, Tally};
use crate::vote::VoteBatch;

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("MongoDB: {0}")]
    Mongo(#[from] mongodb::error::Error),
    #[error("a stored document is invalid: {0}")]
    Corrupt(String),
}

#[derive(Clone)]
pub struct Store {
    client: Client,
    db: Database,
}

/// What one `apply` did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Applied {
    /// Batches counted now.
    pub batches: usize,
    /// Batches skipped because they had been counted before (redeliveries).
    pub duplicates: usize,
    /// Votes counted now.
    pub votes: u64,
    /// Votes not counted because their captcha challenge had been counted already (a replay
    /// that reached two API replicas at once).
    pub replays: u64,
    /// The challenge keys counted now, with when they may be forgotten: for the ledger, once
    /// the transaction has committed.
    pub spent: Vec<(u128, i64)>,
}

#[derive(Debug, Serialize, Deserialize)]
struct ParedaoDoc {
    #[serde(rename = "_id")]
    id: String,
    title: String,
    participants: Vec<Participant>,
    opens_at: BsonDateTime,
    closes_at: BsonDateTime,
}

#[derive(Debug, Deserialize)]
struct CounterDoc {
    paredao: String,
    participant: String,
    hour: BsonDateTime,
    votes: i64,
}

/// Transactions can fail for reasons that go away when retried (write conflicts with another
/// consumer, a commit whose outcome is unknown); everything else is returned.
const MAX_TRANSACTION_ATTEMPTS: u32 = 5;

impl Store {
    pub async fn connect(settings: &StoreSettings) -> Result<Self, StoreError> {
        let mut options = ClientOptions::parse(settings.url()).await?;
        // Fail fast while the server is away: readiness must turn red in seconds, and callers
        // retry on their own schedule.
        options.server_selection_timeout = Some(Duration::from_secs(2));
        options.connect_timeout = Some(Duration::from_secs(2));
        options.app_name.get_or_insert_with(|| "paredao".into());
        let client = Client::with_options(options)?;
        let db = client.database(&settings.database);
        Ok(Self { client, db })
    }

    fn paredoes(&self) -> Collection<ParedaoDoc> {
        self.db.collection("paredoes")
    }
    fn counters(&self) -> Collection<Document> {
        self.db.collection("counters")
    }
    fn applied_batches(&self) -> Collection<Document> {
        self.db.collection("applied_batches")
    }
    /// Operational switches shared by every replica (one document each).
    fn switches(&self) -> Collection<Document> {
        self.db.collection("switches")
    }

    /// The share of votes to fail on purpose (0 when never set).
    pub async fn load_fault_ratio(&self) -> Result<f64, StoreError> {
        let found = self.switches().find_one(doc! { "_id": "fault" }).await?;
        Ok(found.and_then(|d| d.get_f64("vote_error_ratio").ok()).unwrap_or(0.0))
    }

    pub async fn set_fault_ratio(&self, ratio: f64) -> Result<(), StoreError> {
        self.switches()
            .update_one(doc! { "_id": "fault" }, doc! { "$set": { "vote_error_ratio": ratio, "updated_at": BsonDateTime::now() } })
            .upsert(true)
            .await?;
        Ok(())
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        self.db.run_command(doc! { "ping": 1 }).await?;
        Ok(())
    }

    pub async fn ensure_indexes(&self) -> Result<(), StoreError> {
        self.counters()
            .create_index(IndexModel::builder().keys(doc! { "paredao": 1, "hour": 1 }).build())
            .await?;
        // A restarting consumer reads the last minutes of applied batches, not all of them.
        self.applied_batches()
            .create_index(IndexModel::builder().keys(doc! { "applied_at": 1 }).build())
            .await?;
        Ok(())
    }

    /// The challenge keys of the batches applied since `since`: what a starting consumer must
    /// know to go on refusing replays of challenges that may still be spent.
    pub async fn load_spent(&self, since: DateTime<Utc>) -> Result<Vec<u128>, StoreError> {
        let mut cursor = self
            .applied_batches()
            .find(doc! { "applied_at": { "$gte": BsonDateTime::from_chrono(since) }, "k.0": { "$exists": true } })
            .projection(doc! { "k": 1 })
            .await?;
        use futures::TryStreamExt;
        let mut keys = Vec::new();
        while let Some(d) = cursor.try_next().await? {
            if let Ok(k) = d.get_array("k") {
                keys.extend(k.iter().filter_map(|v| v.as_str().map(key_of)));
            }
        }
        Ok(keys)
    }

    /// Creates or replaces a paredão by id.
    pub async fn upsert_paredao(&self, p: &Paredao) -> Result<(), StoreError> {
        let doc = ParedaoDoc {
            id: p.id.to_string(),
            title: p.title.clone(),
            participants: p.participants.clone(),
            opens_at: BsonDateTime::from_chrono(p.opens_at),
            closes_at: BsonDateTime::from_chrono(p.closes_at),
        };
        self.paredoes().replace_one(doc! { "_id": &doc.id }, &doc).upsert(true).await?;
        Ok(())
    }

    pub async fn load_paredoes(&self) -> Result<Vec<Paredao>, StoreError> {
        use futures::TryStreamExt;
        let docs: Vec<ParedaoDoc> = self.paredoes().find(doc! {}).await?.try_collect().await?;
        docs.into_iter()
            .map(|d| {
                let spec = ParedaoSpec {
                    id: ParedaoId::parse(d.id).map_err(|e| StoreError::Corrupt(e.to_string()))?,
                    title: d.title,
                    participants: d.participants,
                    opens_at: d.opens_at.to_chrono(),
                    closes_at: d.closes_at.to_chrono(),
                };
                Paredao::new(spec).map_err(|e| StoreError::Corrupt(e.to_string()))
            })
            .collect()
    }

    /// Every counter, folded into one tally. Cheap: a few documents per paredão-hour.
    pub async fn load_counters(&self) -> Result<Tally, StoreError> {
        use futures::TryStreamExt;
        let mut tally = Tally::default();
        let mut cursor = self.counters().clone_with_type::<CounterDoc>().find(doc! {}).await?;
        while let Some(c) = cursor.try_next().await? {
            let corrupt = |e: crate::slug::SlugError| StoreError::Corrupt(e.to_string());
            let key = CounterKey {
                paredao: ParedaoId::parse(c.paredao).map_err(corrupt)?,
                participant: ParticipantId::parse(c.participant).map_err(corrupt)?,
                hour: c.hour.to_chrono(),
            };
            tally.add_count(key, c.votes.max(0) as u64);
        }
        Ok(tally)
    }

    /// Counts the votes of the batches not counted before, in one transaction with the record
    /// of their ids. Safe to call again with the same batches: they are then skipped. A vote
    /// whose challenge is in `spent` (or spent by an earlier vote of this call) is not counted;
    /// the challenges counted now are returned, to be kept for `keep_secs` after their vote.
    pub async fn apply(&self, batches: &[VoteBatch], spent: &SpentLedger, keep_secs: i64) -> Result<Applied, StoreError> {
        let mut attempt = 1;
        loop {
            match self.try_apply(batches, spent, keep_secs).await {
                Ok(applied) => return Ok(applied),
                Err(e) if attempt < MAX_TRANSACTION_ATTEMPTS && is_retryable(&e) => {
                    tracing::debug!(error = %e, attempt, "retrying the counters transaction");
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(20 * u64::from(attempt))).await;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    async fn try_apply(&self, batches: &[VoteBatch], spent: &SpentLedger, keep_secs: i64) -> mongodb::error::Result<Applied> {
        let ids: Vec<String> = batches.iter().map(|b| b.id.to_string()).collect();
        let mut session = self.client.start_session().await?;
        // The consumer acks once this commit returns, so it must be on disk on a majority of the
        // replica set by then: acknowledged by the majority and journaled. (The local stand-in
        // also needs `--sync-on-commit`, which run.sh passes: it does not fsync otherwise.)
        let durable = WriteConcern::builder().w(Acknowledgment::Majority).journal(true).build();
        session.start_transaction().write_concern(durable).await?;

        let mut counted: HashSet<String> = HashSet::new();
        let mut cursor = self
            .applied_batches()
            .find(doc! { "_id": { "$in": &ids } })
            .projection(doc! { "_id": 1 })
            .session(&mut session)
            .await?;
        while let Some(d) = cursor.next(&mut session).await {
            if let Ok(id) = d?.get_str("_id") {
                counted.insert(id.to_owned());
            }
        }
        drop(cursor);

        // The same batch may also arrive twice within one call (a redelivery next to the
        // original); `counted` grows as we go so only its first copy is taken.
        let mut fresh = Vec::new();
        for (batch, id) in batches.iter().zip(&ids) {
            if counted.insert(id.clone()) {
                fresh.push((batch, id));
            }
        }
        let duplicates = batches.len() - fresh.len();
        if fresh.is_empty() {
            session.abort_transaction().await?;
            return Ok(Applied { batches: 0, duplicates, ..Default::default() });
        }

        // Fold the fresh batches' votes, leaving out replayed challenges; each batch record
        // lists the challenges it counted.
        let mut tally = Tally::default();
        let mut counted_now: HashSet<u128> = HashSet::new();
        let mut new_spent = Vec::new();
        let mut replays = 0;
        let now = BsonDateTime::from_chrono(Utc::now());
        let mut records = Vec::with_capacity(fresh.len());
        for (batch, id) in &fresh {
            let mut keys = Vec::new();
            for vote in &batch.votes {
                if let Some(k) = vote.challenge.as_deref() {
                    let key = key_of(k);
                    if spent.contains(key) || !counted_now.insert(key) {
                        replays += 1;
                        continue;
                    }
                    keys.push(k);
                    new_spent.push((key, vote.cast_at_ms / 1000 + keep_secs));
                }
                tally.add(vote);
            }
            records.push(if keys.is_empty() {
                doc! { "_id": *id, "applied_at": now }
            } else {
                doc! { "_id": *id, "applied_at": now, "k": keys }
            });
        }
        self.applied_batches().insert_many(records).session(&mut session).await?;

        for (key, n) in tally.iter() {
            self.counters()
                .update_one(
                    doc! { "_id": key.document_id() },
                    doc! {
                        "$inc": { "votes": n as i64 },
                        "$setOnInsert": {
                            "paredao": key.paredao.as_str(),
                            "participant": key.participant.as_str(),
                            "hour": BsonDateTime::from_chrono(key.hour),
                        },
                    },
                )
                .upsert(true)
                .session(&mut session)
                .await?;
        }
        commit(&mut session).await?;
        Ok(Applied { batches: fresh.len(), duplicates, votes: tally.total(), replays, spent: new_spent })
    }

    /// Drops the database: for tests, which each own one.
    pub async fn drop_database(&self) -> Result<(), StoreError> {
        self.db.drop().await?;
        Ok(())
    }
}

/// A commit whose outcome is unknown may be retried as is; MongoDB makes that safe.
async fn commit(session: &mut mongodb::ClientSession) -> mongodb::error::Result<()> {
    let mut attempt = 1;
    loop {
        match session.commit_transaction().await {
            Err(e) if attempt < MAX_TRANSACTION_ATTEMPTS && e.contains_label(mongodb::error::UNKNOWN_TRANSACTION_COMMIT_RESULT) => {
                attempt += 1;
            }
            other => return other,
        }
    }
}

fn is_retryable(e: &mongodb::error::Error) -> bool {
    use mongodb::error::{ErrorKind, WriteFailure};
    if e.contains_label(mongodb::error::TRANSIENT_TRANSACTION_ERROR) {
        return true;
    }
    // Another consumer recorded the same batch id between our read and our insert: the next
    // attempt reads it and skips the batch.
    match e.kind.as_ref() {
        ErrorKind::Write(WriteFailure::WriteError(w)) => w.code == 11000,
        ErrorKind::InsertMany(m) => m.write_errors.as_ref().is_some_and(|ws| ws.iter().any(|w| w.code == 11000)),
        ErrorKind::Command(c) => c.code == 11000 || c.code == 112, // duplicate key, write conflict
        _ => false,
    }
}

/// The hour a counter document belongs to, for callers building keys by hand.
pub fn bson_hour(at: DateTime<Utc>) -> BsonDateTime {
    BsonDateTime::from_chrono(crate::tally::hour_of(at))
}
