//! MongoDB: the paredões, the vote counters, and the record of applied batches.
//!
//! Collections:
//! - `paredoes`: one document per paredão (`_id` = its id).
//! - `counters`: up to 16 documents per (paredão, participant, hour), each with a `votes` count
//!   that the read side sums; the only thing it ever loads, a few dozen documents per
//!   paredão-hour. (Several copies so that consumers' transactions seldom write the same one.)
//! - `applied_batches`: the id of every vote batch already counted. It is written in the same
//!   transaction as the increments, so a batch's votes are counted together with its id or not
//!   at all; a redelivered batch finds its id and is skipped. That is "exactly once".
//! - `spent_expiring_<unix second>`: one document per captcha challenge counted (`_id` = its
//!   key), written in the same transaction, in the collection of the `SPENT_SLOT_SECS` slot its
//!   challenge expires in (every copy of a vote carries the same expiry, so every copy meets the
//!   same collection). A second vote spending the same challenge (a replay accepted by two API
//!   replicas at once, or a viewer's resend after a 503) cannot be recorded again, whichever
//!   consumer applies it: the unique `_id` makes the store, not any one consumer's memory, the
//!   judge. Two consumers racing on one challenge conflict, and the loser's retry sees the
//!   winner's document. A slot's collection is emptied and dropped once the queue has moved past
//!   every vote that could spend one of its challenges (`forget_spent_expiring_before`, driven
//!   by the consumer). (A TTL index expired them instead; the local stand-in's TTL sweeper
//!   decodes the whole collection every minute under its global lock, and with two million
//!   records counting stalled for most of each minute.)
//!
//! Why the store and not a queue partitioned by challenge (a consistent-hash exchange with one
//! active consumer per partition, so that one consumer's memory is authoritative): the API would
//! have to split each group commit into one message per partition, multiplying the messages and
//! confirms per vote by the partition count (the broker's cost is per message, #16), and
//! consumers could never outnumber partitions. Here the cost is one small document per vote inside
//! a transaction the consumer already makes (measured in BENCHMARKS.md). The documents are not
//! even read while there are no replays: the insert is the check, and only a transaction that
//! trips over a duplicate `_id` is retried with a lookup of the challenges it carries. (One
//! document per batch with a unique index on its array of keys costs about the same to write,
//! but the local stand-in answers a lookup in such an index 25 times slower than one by `_id`,
//! and a backlog full of replays stalled on it.)

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::TryStreamExt;

use bson::{DateTime as BsonDateTime, Document, doc};
use chrono::{DateTime, Utc};
use mongodb::options::{Acknowledgment, ClientOptions, WriteConcern};
use mongodb::{Client, Collection, Database, IndexModel};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::configuration::StoreSettings;
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

impl StoreError {
    /// True when the store refused the data itself, so that trying the same write again cannot
    /// succeed (a document too large, a value it does not accept). Anything else — the store
    /// away, a timeout, a conflict — may pass when retried.
    pub fn is_permanent(&self) -> bool {
        use mongodb::error::{ErrorKind, WriteFailure};
        // BadValue, FailedToParse, TypeMismatch, InvalidBSON, DollarPrefixedFieldName,
        // EmptyFieldName, DottedFieldName, DocumentValidationFailure, BSONObjectTooLarge, KeyTooLong.
        const DATA_REFUSED: [i32; 10] = [2, 9, 14, 22, 52, 56, 57, 121, 10334, 17280];
        match self {
            StoreError::Corrupt(_) => false,
            StoreError::Mongo(e) => match e.kind.as_ref() {
                ErrorKind::Write(WriteFailure::WriteError(w)) => DATA_REFUSED.contains(&w.code),
                ErrorKind::InsertMany(m) => {
                    m.write_errors.as_ref().is_some_and(|ws| ws.iter().any(|w| DATA_REFUSED.contains(&w.code)))
                }
                ErrorKind::Command(c) => DATA_REFUSED.contains(&c.code),
                ErrorKind::BsonSerialization(_) | ErrorKind::InvalidArgument { .. } => true,
                _ => false,
            },
        }
    }
}

impl StoreError {
    /// True when the error says the store is away or busy (a network error, no server to
    /// select, an error the server labels transient): retried for as long as it lasts.
    pub fn is_transient(&self) -> bool {
        use mongodb::error::ErrorKind;
        match self {
            StoreError::Corrupt(_) => false,
            StoreError::Mongo(e) => {
                e.contains_label(mongodb::error::TRANSIENT_TRANSACTION_ERROR)
                    || e.contains_label(mongodb::error::RETRYABLE_WRITE_ERROR)
                    || e.contains_label(mongodb::error::UNKNOWN_TRANSACTION_COMMIT_RESULT)
                    || matches!(
                        e.kind.as_ref(),
                        ErrorKind::Io(_) | ErrorKind::ServerSelection { .. } | ErrorKind::ConnectionPoolCleared { .. }
                    )
            }
        }
    }
}

#[derive(Clone)]
pub struct Store {
    client: Client,
    db: Database,
    /// The last transaction met a replay: look the next one's challenges up first.
    replays_seen: Arc<AtomicBool>,
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
    /// that reached two API replicas at once, or a retry after a 503 whose first copy got through).
    pub replays: u64,
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

/// Copies of each counter that transactions spread their increments over (see `try_apply`).
const COUNTER_SHARDS: u8 = 16;

/// Challenges are filed by the slot of this many seconds their expiry falls in; a slot's
/// records go together (see the module doc). Narrow enough that little is kept beyond need,
/// wide enough that a batch writes a handful of collections (a challenge lives 5 minutes).
pub const SPENT_SLOT_SECS: i64 = 120;

const SPENT_SLOT_PREFIX: &str = "spent_expiring_";

/// Records deleted per command when a slot is forgotten, and the pause between two commands
/// (see `forget_spent_expiring_before`).
const SPENT_FORGET_CHUNK: i64 = 2_000;
const SPENT_FORGET_PAUSE: Duration = Duration::from_millis(50);

/// The start of the slot a challenge expiring at `unix` (seconds) is filed in.
pub fn spent_slot_of(unix: i64) -> i64 {
    unix.div_euclid(SPENT_SLOT_SECS) * SPENT_SLOT_SECS
}

fn is_namespace_exists(e: &mongodb::error::Error) -> bool {
    matches!(e.kind.as_ref(), mongodb::error::ErrorKind::Command(c) if c.code == 48)
}

/// Challenge keys looked up per query: a full write (hundreds of batches of hundreds of votes)
/// would otherwise make one query document of megabytes.
const SPENT_LOOKUP_CHUNK: usize = 5_000;

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
        Ok(Self { client, db, replays_seen: Arc::default() })
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
    /// The records of the challenges expiring in the slot that starts at `slot_start`.
    fn spent_slot(&self, slot_start: i64) -> Collection<Document> {
        self.db.collection(&format!("{SPENT_SLOT_PREFIX}{slot_start}"))
    }

    /// The slots whose collections exist, by start.
    async fn spent_slots(&self) -> Result<Vec<i64>, StoreError> {
        let names = self.db.list_collection_names().await?;
        let mut slots: Vec<i64> =
            names.iter().filter_map(|n| n.strip_prefix(SPENT_SLOT_PREFIX)?.parse().ok()).collect();
        slots.sort_unstable();
        Ok(slots)
    }

    /// Creates the collections of the slots that challenges expiring between `from` and `to`
    /// (unix seconds) are filed in, ahead of the transactions that write them: two
    /// transactions creating one collection at once would conflict.
    pub async fn prepare_spent_slots(&self, from: i64, to: i64) -> Result<(), StoreError> {
        let existing = self.spent_slots().await?;
        let mut slot = spent_slot_of(from);
        while slot <= to {
            if !existing.contains(&slot)
                && let Err(e) = self.db.create_collection(format!("{SPENT_SLOT_PREFIX}{slot}")).await
                && !is_namespace_exists(&e)
            {
                return Err(e.into());
            }
            slot += SPENT_SLOT_SECS;
        }
        Ok(())
    }

    /// Forgets the records of every slot that ends at or before `bound` (unix seconds): no vote
    /// still to be counted can spend one of their challenges. Returns the slots forgotten.
    ///
    /// A slot's documents are deleted a few thousand at a time, with a pause between, and only
    /// then is the empty collection dropped: the local stand-in drops a collection by deleting
    /// its rows under its global lock, and dropping half a million records at once stopped
    /// every transaction for half a minute. (MongoDB drops in constant time; this costs it a
    /// little more and keeps the same code path.)
    pub async fn forget_spent_expiring_before(&self, bound: i64) -> Result<Vec<i64>, StoreError> {
        let mut forgotten = Vec::new();
        for slot in self.spent_slots().await? {
            if slot + SPENT_SLOT_SECS > bound {
                continue;
            }
            let records = self.spent_slot(slot);
            loop {
                let ids: Vec<bson::Bson> = records
                    .find(doc! {})
                    .projection(doc! { "_id": 1 })
                    .limit(SPENT_FORGET_CHUNK)
                    .await?
                    .try_collect::<Vec<Document>>()
                    .await?
                    .into_iter()
                    .filter_map(|mut d| d.remove("_id"))
                    .collect();
                if ids.is_empty() {
                    break;
                }
                records.delete_many(doc! { "_id": { "$in": ids } }).await?;
                tokio::time::sleep(SPENT_FORGET_PAUSE).await;
            }
            records.drop().await?;
            forgotten.push(slot);
        }
        Ok(forgotten)
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
            .update_one(
                doc! { "_id": "fault" },
                doc! { "$set": { "vote_error_ratio": ratio, "updated_at": BsonDateTime::now() } },
            )
            .upsert(true)
            .await?;
        Ok(())
    }

    /// A command against the `admin` database: for tests (failpoints) and operators' tools.
    pub async fn admin_command(&self, command: Document) -> Result<Document, StoreError> {
        Ok(self.client.database("admin").run_command(command).await?)
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        self.db.run_command(doc! { "ping": 1 }).await?;
        Ok(())
    }

    pub async fn ensure_indexes(&self) -> Result<(), StoreError> {
        self.counters().create_index(IndexModel::builder().keys(doc! { "paredao": 1, "hour": 1 }).build()).await?;
        Ok(())
    }

    /// How many counted challenges the store remembers (for tests).
    pub async fn spent_challenges_known(&self) -> Result<u64, StoreError> {
        let mut known = 0;
        for slot in self.spent_slots().await? {
            known += self.spent_slot(slot).count_documents(doc! {}).await?;
        }
        Ok(known)
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
    /// of their ids and of the challenges they spent. Safe to call again with the same batches:
    /// they are then skipped. A vote whose challenge was counted before (by any consumer, or
    /// earlier in this call) is not counted.
    ///
    pub async fn apply(&self, batches: &[VoteBatch]) -> Result<Applied, StoreError> {
        let mut attempt = 1;
        // Without replays (nearly always) the insert alone checks the challenges; after one, the
        // next transactions look them up first rather than trip and start again.
        let mut look_up = self.replays_seen.load(Ordering::Relaxed);
        loop {
            match self.try_apply(batches, look_up).await {
                Ok(applied) => {
                    self.replays_seen.store(applied.replays > 0, Ordering::Relaxed);
                    return Ok(applied);
                }
                Err(e) if attempt < MAX_TRANSACTION_ATTEMPTS && is_retryable(&e) => {
                    tracing::debug!(error = %e, attempt, "retrying the counters transaction");
                    attempt += 1;
                    look_up = true;
                    tokio::time::sleep(Duration::from_millis(20 * u64::from(attempt))).await;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    async fn try_apply(&self, batches: &[VoteBatch], look_up: bool) -> mongodb::error::Result<Applied> {
        let ids: Vec<String> = batches.iter().map(|b| b.id.to_string()).collect();
        let mut session = self.client.start_session().await?;
        // The consumer acks once this commit returns, so it must be on disk on a majority of the
        // replica set by then: acknowledged by the majority and journaled. (The local stand-in
        // also needs `--sync-on-commit`, which run.sh passes: it does not fsync otherwise.)
        let durable = WriteConcern::builder().w(Acknowledgment::Majority).journal(true).build();
        session.start_transaction().write_concern(durable).await?;

        let mut counted: HashSet<String> = HashSet::new();
        ids_present(&self.applied_batches(), &ids, &mut session, &mut counted).await?;

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

        // The challenges these votes spent that were counted before, read inside the
        // transaction when asked to (see `apply`): a consumer counting one of them concurrently
        // makes one of the two commits conflict, and the retry reads what the other committed.
        let mut spent: HashSet<String> = HashSet::new();
        if look_up {
            let mut by_slot: BTreeMap<i64, Vec<&str>> = BTreeMap::new();
            for vote in fresh.iter().flat_map(|(b, _)| &b.votes) {
                if let Some(k) = vote.challenge.as_deref() {
                    by_slot.entry(spent_slot_of(vote.challenge_filed_at())).or_default().push(k);
                }
            }
            for (slot, keys) in by_slot {
                for chunk in keys.chunks(SPENT_LOOKUP_CHUNK) {
                    ids_present(&self.spent_slot(slot), chunk, &mut session, &mut spent).await?;
                }
            }
        }

        // Fold the fresh batches' votes, leaving out replayed challenges (`spent` grows as we
        // go, so a replay inside this call is caught too).
        let mut tally = Tally::default();
        let mut spent_now: BTreeMap<i64, Vec<Document>> = BTreeMap::new();
        let mut replays = 0;
        let applied_at = BsonDateTime::from_chrono(Utc::now());
        let mut records = Vec::with_capacity(fresh.len());
        for (batch, id) in &fresh {
            for vote in &batch.votes {
                if let Some(k) = vote.challenge.as_deref() {
                    if !spent.insert(k.to_owned()) {
                        replays += 1;
                        continue;
                    }
                    spent_now.entry(spent_slot_of(vote.challenge_filed_at())).or_default().push(doc! { "_id": k });
                }
                tally.add(vote);
            }
            records.push(doc! { "_id": *id, "applied_at": applied_at });
        }
        for (slot, records) in spent_now {
            self.spent_slot(slot).insert_many(records).session(&mut session).await?;
        }
        self.applied_batches().insert_many(records).session(&mut session).await?;

        // Each transaction adds to one of COUNTER_SHARDS copies of a counter, chosen at random:
        // with one document per counter every consumer's transaction wrote the same documents,
        // so consumers conflicted on nearly every commit and took turns. Readers sum the copies.
        let shard = uuid::Uuid::new_v4().as_bytes()[0] % COUNTER_SHARDS;
        for (key, n) in tally.iter() {
            self.counters()
                .update_one(
                    doc! { "_id": format!("{}|{shard}", key.document_id()) },
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
        Ok(Applied { batches: fresh.len(), duplicates, votes: tally.total(), replays })
    }

    /// Drops the database: for tests, which each own one.
    pub async fn drop_database(&self) -> Result<(), StoreError> {
        self.db.drop().await?;
        Ok(())
    }
}

/// Adds to `found` which of `ids` the collection holds, read inside the session's transaction.
async fn ids_present<S: AsRef<str> + serde::Serialize>(
    collection: &Collection<Document>,
    ids: &[S],
    session: &mut mongodb::ClientSession,
    found: &mut HashSet<String>,
) -> mongodb::error::Result<()> {
    let wanted: Vec<&str> = ids.iter().map(AsRef::as_ref).collect();
    let mut cursor =
        collection.find(doc! { "_id": { "$in": wanted } }).projection(doc! { "_id": 1 }).session(&mut *session).await?;
    while let Some(d) = cursor.next(&mut *session).await {
        if let Ok(id) = d?.get_str("_id") {
            found.insert(id.to_owned());
        }
    }
    Ok(())
}

/// A commit whose outcome is unknown may be retried as is; MongoDB makes that safe.
async fn commit(session: &mut mongodb::ClientSession) -> mongodb::error::Result<()> {
    let mut attempt = 1;
    loop {
        match session.commit_transaction().await {
            Err(e)
                if attempt < MAX_TRANSACTION_ATTEMPTS
                    && e.contains_label(mongodb::error::UNKNOWN_TRANSACTION_COMMIT_RESULT) =>
            {
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
