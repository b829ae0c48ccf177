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
//! - `spent_blocks`: which captcha challenges have been counted, as bitmaps. The API numbers the
//!   challenges it issues (`<issuer><sequence>`, 16 hex digits each: see the API's `captcha`), so
//!   the challenges one replica issues in a row fall in the same block of `SPENT_BLOCK_BITS`:
//!   one document (`_id` = `<issuer>-<sequence / SPENT_BLOCK_BITS>`, a bitmap `w`, and `x`, the
//!   latest expiry of the challenges counted in it), read and rewritten inside the counting
//!   transaction. A second vote spending the same challenge (a replay accepted by two API
//!   replicas at once, or a viewer's resend after a 503) finds its bit set, whichever consumer
//!   applies it: the store, not any one consumer's memory, is the judge. Two consumers setting
//!   bits of one block at once conflict, and the loser's retry reads the winner's bits. A block
//!   is deleted once the queue has moved past every vote that could spend one of its challenges
//!   (`forget_spent_expiring_before`, driven by the consumer).
//!
//! Why bitmaps: a document per challenge (`_id` = its key, the insert being the check) cost the
//! local stand-in an insert and, later, a delete per vote; at 3,500 votes/s it kept up with the
//! inserts but fell behind once it also had to forget (the soak in BENCHMARKS.md). A block costs
//! one read and one write per transaction for hundreds of votes, and forgetting is a delete per
//! few thousand challenges. The price is conflicts: consumers counting at once touch the same
//! recent blocks, so their transactions take turns where they used to pass each other (the
//! counters are spread over copies for the same reason; a block cannot be, its bits must be in
//! one place). One consumer keeps up with the vote here, so that is the right trade.
//!
//! Why the store and not a queue partitioned by challenge (a consistent-hash exchange with one
//! active consumer per partition, so that one consumer's memory is authoritative): the API would
//! have to split each group commit into one message per partition, multiplying the messages and
//! confirms per vote by the partition count (the broker's cost is per message, #16), and
//! consumers could never outnumber partitions.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use futures::TryStreamExt;

use bson::{DateTime as BsonDateTime, Document, doc};
use chrono::{DateTime, Utc};
use mongodb::options::{Acknowledgment, ClientOptions, WriteConcern};
use mongodb::{Client, Collection, Database, IndexModel};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::challenge_key::ChallengeKey;
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
    pub(crate) client: Client,
    pub(crate) db: Database,
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

/// Challenges per block of the spent bitmaps (see the module doc): 512 bytes a document. At
/// 3,500 votes/s two replicas fill about one block a second between them.
pub const SPENT_BLOCK_BITS: u64 = 4096;

const SPENT_BLOCKS: &str = "spent_blocks";

/// Where a challenge's bit lives: its block's `_id` and the bit's index in it.
fn spent_bit_of(key: ChallengeKey) -> (String, usize) {
    let sequence = key.sequence();
    (format!("{:016x}-{:x}", key.issuer(), sequence / SPENT_BLOCK_BITS), (sequence % SPENT_BLOCK_BITS) as usize)
}

/// Collections an earlier version recorded counted challenges in, one document each: emptied
/// and dropped by `forget_spent_expiring_before` like the blocks (`spent_expiring_<unix
/// second>` a slot of 120 s of expiries each, `spent_challenges` with a TTL index).
const LEGACY_SLOT_PREFIX: &str = "spent_expiring_";
const LEGACY_SLOT_SECS: i64 = 120;
const LEGACY_TTL_COLLECTION: &str = "spent_challenges";

/// Records deleted per command when a legacy collection is forgotten, and the pause between two
/// commands: the local stand-in drops a collection by deleting its rows under its global lock,
/// and dropping half a million records at once stopped every transaction for half a minute.
const LEGACY_FORGET_CHUNK: i64 = 2_000;
const LEGACY_FORGET_PAUSE: Duration = Duration::from_millis(50);

/// Blocks read per query: a full write (hundreds of batches of hundreds of votes, spending
/// challenges from many issuers, some old) must not make one query document of megabytes.
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
    fn spent_blocks(&self) -> Collection<Document> {
        self.db.collection(SPENT_BLOCKS)
    }

    /// Forgets the counted challenges of every block whose challenges all expired before
    /// `bound` (unix seconds): no vote still to be counted can spend one of them. Returns how
    /// many blocks went. (A block's `x` is the latest expiry among its counted challenges; one
    /// of its challenges not counted yet has no bit to lose, and gets a fresh block when it is.)
    pub async fn forget_spent_expiring_before(&self, bound: i64) -> Result<u64, StoreError> {
        self.forget_legacy_spent_records(bound).await?;
        Ok(self.spent_blocks().delete_many(doc! { "x": { "$lt": bound } }).await?.deleted_count)
    }

    /// Forgets the ids of the batches counted before `bound` (unix seconds): a batch is counted
    /// after it was sealed, so the queue has passed them too, and none of them can be delivered
    /// again (a message whose consumer dies goes back to the head of the queue and is taken again
    /// within seconds). Without this the record grows by a document per batch for as long as
    /// the store lives. By `applied_at`, which has an index: the local stand-in answers a range
    /// of `_id`s by reading the whole collection (0.3 s for 24,000 ids, under its global lock).
    /// Returns how many went.
    pub async fn forget_applied_batches_before(&self, bound: i64) -> Result<u64, StoreError> {
        let bound = BsonDateTime::from_millis(bound.saturating_mul(1000));
        Ok(self.applied_batches().delete_many(doc! { "applied_at": { "$lt": bound } }).await?.deleted_count)
    }

    /// Empties and drops what an earlier version recorded: the slots that ended before `bound`,
    /// and the TTL collection (its records lived five minutes; it has not been written since).
    async fn forget_legacy_spent_records(&self, bound: i64) -> Result<(), StoreError> {
        for name in self.db.list_collection_names().await? {
            let done_with = match name.strip_prefix(LEGACY_SLOT_PREFIX) {
                Some(slot) => slot.parse::<i64>().is_ok_and(|s| s + LEGACY_SLOT_SECS <= bound),
                None => name == LEGACY_TTL_COLLECTION,
            };
            if !done_with {
                continue;
            }
            let records = self.db.collection::<Document>(&name);
            loop {
                let ids: Vec<bson::Bson> = records
                    .find(doc! {})
                    .projection(doc! { "_id": 1 })
                    .limit(LEGACY_FORGET_CHUNK)
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
                tokio::time::sleep(LEGACY_FORGET_PAUSE).await;
            }
            records.drop().await?;
            tracing::info!(collection = %name, "dropped a collection of counted challenges an earlier version kept");
        }
        Ok(())
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
        self.spent_blocks().create_index(IndexModel::builder().keys(doc! { "x": 1 }).build()).await?;
        self.applied_batches().create_index(IndexModel::builder().keys(doc! { "applied_at": 1 }).build()).await?;
        Ok(())
    }

    /// How many counted challenges the store remembers, and in how many documents (for tests).
    pub async fn spent_challenges_known(&self) -> Result<(u64, u64), StoreError> {
        let (mut known, mut documents) = (0, 0);
        let mut cursor = self.spent_blocks().find(doc! {}).await?;
        while let Some(block) = cursor.try_next().await? {
            documents += 1;
            known += bitmap_of(&block).iter().map(|w| u64::from(w.count_ones())).sum::<u64>();
        }
        Ok((known, documents))
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
        loop {
            match self.try_apply(batches).await {
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

    async fn try_apply(&self, batches: &[VoteBatch]) -> mongodb::error::Result<Applied> {
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

        // The blocks of the challenges these votes spent, as committed before this transaction
        // began: a consumer setting bits in one of them concurrently makes one of the two
        // transactions conflict, and the retry reads what the other committed.
        let mut blocks: BTreeMap<String, SpentBlock> = BTreeMap::new();
        for vote in fresh.iter().flat_map(|(b, _)| &b.votes) {
            if let Some((block, _)) = vote.challenge_key().map(spent_bit_of) {
                blocks.entry(block).or_default();
            }
        }
        let wanted: Vec<String> = blocks.keys().cloned().collect();
        for chunk in wanted.chunks(SPENT_LOOKUP_CHUNK) {
            let mut cursor = self.spent_blocks().find(doc! { "_id": { "$in": chunk } }).session(&mut session).await?;
            let mut stored = Vec::new();
            while let Some(d) = cursor.next(&mut session).await {
                stored.push(d?);
            }
            for d in stored {
                if let Some(block) = d.get_str("_id").ok().and_then(|id| blocks.get_mut(id)) {
                    block.bits = bitmap_of(&d);
                    block.latest_expiry = d.get_i64("x").unwrap_or(i64::MIN);
                }
            }
        }

        // Fold the fresh batches' votes, leaving out replayed challenges (the bits are set as
        // we go, so a replay inside this call is caught too).
        let mut tally = Tally::default();
        let mut replays = 0;
        let applied_at = BsonDateTime::from_chrono(Utc::now());
        let mut records = Vec::with_capacity(fresh.len());
        for (batch, id) in &fresh {
            for vote in &batch.votes {
                if let Some((block, bit)) = vote.challenge_key().map(spent_bit_of)
                    && let Some(block) = blocks.get_mut(&block)
                    && !block.spend(bit, vote.challenge_filed_at())
                {
                    replays += 1;
                    continue;
                }
                tally.add(vote);
            }
            records.push(doc! { "_id": *id, "applied_at": applied_at });
        }
        // The blocks first: a transaction that conflicts with another consumer's stops here,
        // before it has written anything else.
        for (id, block) in blocks.iter().filter(|(_, b)| b.changed) {
            self.spent_blocks()
                .replace_one(doc! { "_id": id }, block.to_document(id))
                .upsert(true)
                .session(&mut session)
                .await?;
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

/// One block of the spent bitmaps, as read and then changed by a transaction.
#[derive(Default)]
struct SpentBlock {
    bits: Vec<u64>,
    latest_expiry: i64,
    changed: bool,
}

impl SpentBlock {
    /// Spends the challenge at `bit`, expiring at `expires`: false if it was spent before.
    fn spend(&mut self, bit: usize, expires: i64) -> bool {
        self.bits.resize(SPENT_BLOCK_BITS as usize / 64, 0);
        let (word, mask) = (bit / 64, 1u64 << (bit % 64));
        if self.bits[word] & mask != 0 {
            return false;
        }
        self.bits[word] |= mask;
        self.latest_expiry = self.latest_expiry.max(expires);
        self.changed = true;
        true
    }

    fn to_document(&self, id: &str) -> Document {
        let bytes: Vec<u8> = self.bits.iter().flat_map(|w| w.to_le_bytes()).collect();
        doc! {
            "_id": id,
            "w": bson::Binary { subtype: bson::spec::BinarySubtype::Generic, bytes },
            "x": self.latest_expiry,
        }
    }
}

/// A stored block's bits (none if its bitmap is missing or not whole words).
fn bitmap_of(block: &Document) -> Vec<u64> {
    let bytes = block.get_binary_generic("w").map(Vec::as_slice).unwrap_or_default();
    bytes.chunks_exact(8).map(|w| u64::from_le_bytes(w.try_into().unwrap_or_default())).collect()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_challenge_keys_bit_is_its_sequence_within_its_issuers_block() {
        let key = ChallengeKey::issued(0xabc, 3 * SPENT_BLOCK_BITS + 17);
        assert_eq!(spent_bit_of(key), ("0000000000000abc-3".to_string(), 17));
        let mut block = SpentBlock::default();
        assert!(block.spend(17, 10));
        assert!(!block.spend(17, 20), "the second spend is a replay");
        assert_eq!(block.latest_expiry, 10);
        assert!(block.spend(4095, 30));
        assert_eq!(bitmap_of(&block.to_document("b")), block.bits);
        assert_eq!(block.latest_expiry, 30);
    }
}
