//! Per-minute counters: the live panel's chart while a paredão runs.
//!
//! Collection `minute_counters`: like the hourly `counters` (see `store`), one document per
//! (paredão, participant, minute) and copy (`_id` = `<paredão>|<participant>|<YYYY-MM-DDTHH:MM>|
//! <shard>`, fields `paredao`, `participant`, `minute`, `votes`), incremented in the same counting
//! transaction as the hourly ones and into the same shard: one more upsert per (participant,
//! minute) a transaction touches, not per vote. Readers sum the copies.
//!
//! They are the only read model that grows with the length of the vote (a paredão of three
//! days writes about 4,300 minutes per participant, times the shards), so once a paredão's final
//! result is frozen (which keeps the per-minute series, see `final_results`) its minute counters
//! are deleted: the rollup. The hourly counters stay.

use std::collections::BTreeMap;

use bson::{DateTime as BsonDateTime, Document, doc};
use chrono::{DateTime, TimeZone, Utc};
use futures::TryStreamExt;
use mongodb::{Collection, IndexModel};
use serde::Deserialize;

use crate::paredao::{ParedaoId, ParticipantId};
use crate::store::{Store, StoreError};
use crate::vote::Vote;

const MINUTE_COUNTERS: &str = "minute_counters";

/// Votes per minute (its start, UTC) and participant.
pub type MinuteSeries = BTreeMap<DateTime<Utc>, BTreeMap<ParticipantId, u64>>;

/// The start of the minute `at` falls in (milliseconds arithmetic, like `tally::hour_of`: a time
/// read from a message must never be able to panic the consumer).
pub fn minute_of(at: DateTime<Utc>) -> DateTime<Utc> {
    const MINUTE_MS: i64 = 60_000;
    let ms = at.timestamp_millis();
    Utc.timestamp_millis_opt(ms - ms.rem_euclid(MINUTE_MS)).single().unwrap_or(at)
}

/// One transaction's votes folded per (paredão, participant, minute).
#[derive(Debug, Default)]
pub struct MinuteTally {
    counts: BTreeMap<(ParedaoId, ParticipantId, DateTime<Utc>), u64>,
}

impl MinuteTally {
    pub fn add(&mut self, vote: &Vote) {
        *self.counts.entry((vote.paredao.clone(), vote.participant.clone(), minute_of(vote.cast_at()))).or_default() +=
            1;
    }
}

#[derive(Debug, Deserialize)]
struct MinuteDoc {
    paredao: String,
    participant: String,
    minute: BsonDateTime,
    votes: i64,
}

impl Store {
    fn minute_counters(&self) -> Collection<Document> {
        self.db.collection(MINUTE_COUNTERS)
    }

    pub(crate) async fn ensure_minute_indexes(&self) -> Result<(), StoreError> {
        let c = self.minute_counters();
        c.create_index(IndexModel::builder().keys(doc! { "paredao": 1, "minute": 1 }).build()).await?;
        c.create_index(IndexModel::builder().keys(doc! { "minute": 1 }).build()).await?;
        Ok(())
    }

    /// Adds `tally` to copy `shard` of the minute counters, inside the counting transaction.
    pub(crate) async fn add_minute_counts(
        &self,
        tally: &MinuteTally,
        shard: u8,
        session: &mut mongodb::ClientSession,
    ) -> mongodb::error::Result<()> {
        for ((paredao, participant, minute), n) in &tally.counts {
            self.minute_counters()
                .update_one(
                    doc! { "_id": format!("{paredao}|{participant}|{}|{shard}", minute.format("%Y-%m-%dT%H:%M")) },
                    doc! {
                        "$inc": { "votes": *n as i64 },
                        "$setOnInsert": {
                            "paredao": paredao.as_str(),
                            "participant": participant.as_str(),
                            "minute": BsonDateTime::from_chrono(*minute),
                        },
                    },
                )
                .upsert(true)
                .session(&mut *session)
                .await?;
        }
        Ok(())
    }

    /// The minutes since `since` (inclusive), of every paredão that has some: the live panel's
    /// chart. Bounded by time, not by how long the paredão has run.
    pub async fn load_recent_minutes(
        &self,
        since: DateTime<Utc>,
    ) -> Result<std::collections::HashMap<ParedaoId, MinuteSeries>, StoreError> {
        self.fold_minutes(doc! { "minute": { "$gte": BsonDateTime::from_chrono(since) } }).await
    }

    /// Every minute counted for `paredao` (empty once rolled up).
    pub async fn load_minutes_of(&self, paredao: &ParedaoId) -> Result<MinuteSeries, StoreError> {
        Ok(self.fold_minutes(doc! { "paredao": paredao.as_str() }).await?.remove(paredao).unwrap_or_default())
    }

    /// The rollup: forgets `paredao`'s minute counters (its frozen result keeps the series).
    /// Returns how many documents went.
    pub async fn delete_minutes_of(&self, paredao: &ParedaoId) -> Result<u64, StoreError> {
        Ok(self.minute_counters().delete_many(doc! { "paredao": paredao.as_str() }).await?.deleted_count)
    }

    async fn fold_minutes(
        &self,
        filter: Document,
    ) -> Result<std::collections::HashMap<ParedaoId, MinuteSeries>, StoreError> {
        let mut out: std::collections::HashMap<ParedaoId, MinuteSeries> = Default::default();
        let mut cursor = self.minute_counters().clone_with_type::<MinuteDoc>().find(filter).await?;
        while let Some(d) = cursor.try_next().await? {
            let corrupt = |e: crate::slug::SlugError| StoreError::Corrupt(e.to_string());
            let paredao = ParedaoId::parse(d.paredao).map_err(corrupt)?;
            let participant = ParticipantId::parse(d.participant).map_err(corrupt)?;
            *out.entry(paredao)
                .or_default()
                .entry(d.minute.to_chrono())
                .or_default()
                .entry(participant)
                .or_default() += d.votes.max(0) as u64;
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_minute_is_truncated_not_rounded() {
        let at = Utc.with_ymd_and_hms(2026, 11, 22, 17, 59, 59).unwrap();
        assert_eq!(minute_of(at), Utc.with_ymd_and_hms(2026, 11, 22, 17, 59, 0).unwrap());
    }
}
