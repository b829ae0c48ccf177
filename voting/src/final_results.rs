//! The frozen final result of a paredão, and the export every result is served as.
//!
//! Collection `final_results`: one document per paredão (`_id` = its id), written once by the
//! consumer that first sees the paredão drained (`insert_final`: the insert is the lock, a
//! duplicate key means another consumer froze it first). It holds the totals, per participant,
//! per hour and per minute, when it was frozen, and the digest.
//!
//! # The digest's canonical form
//!
//! The digest is the SHA-256 (lowercase hex) of the per-hour CSV export of the frozen result,
//! byte for byte, so anyone can check a published figure:
//! `curl -H … '/api/paredoes/<id>/export?format=csv&granularity=hour' | sha256sum`.
//! `csv_lines` produces those bytes for the export and for the digest alike:
//!
//! ```text
//! hour,participant,votes
//! 2026-11-22T17:00:00Z,ana,1200
//! 2026-11-22T17:00:00Z,bia,800
//! ```
//!
//! - UTF-8 (in fact ASCII), every line ended by a single `\n` (the last one too), no BOM;
//! - the header line `hour,participant,votes` first;
//! - then one row per hour that has at least one vote, oldest first, and within an hour one row
//!   per participant of the paredão (0 included), by participant id in byte order;
//! - `hour` is the start of the hour in UTC as `YYYY-MM-DDTHH:00:00Z`, `participant` the
//!   participant's id, `votes` a decimal integer without sign, padding or separators.
//!
//! No field ever needs quoting: ids are slugs (lowercase letters, digits, `-`, `_`), times and
//! counts have no commas. That is also why a CSV crate would add nothing here. The per-minute
//! export (`minute,participant,votes`, `YYYY-MM-DDTHH:MM:00Z`) and the totals
//! (`participant,votes`, every participant) follow the same rules.

use std::collections::{BTreeMap, HashMap};

use bson::{Document, doc};
use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use mongodb::Collection;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

use crate::minute_counters::MinuteSeries;
use crate::paredao::{Paredao, ParedaoId, ParticipantId};
use crate::store::{Store, StoreError};
use crate::tally::ParedaoCounts;

const FINAL_RESULTS: &str = "final_results";

/// A paredão's final result, as frozen (and as `GET /api/paredoes/{id}/final` serves it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct FinalResult {
    pub paredao_id: ParedaoId,
    pub title: String,
    pub opens_at: DateTime<Utc>,
    pub closes_at: DateTime<Utc>,
    /// When the drained counters were frozen.
    pub frozen_at: DateTime<Utc>,
    /// SHA-256 (hex) of the per-hour CSV export (see the README for the canonical form).
    pub digest: String,
    pub total_votes: u64,
    /// In the paredão's order.
    pub participants: Vec<FinalParticipant>,
    /// One entry per hour (UTC) that has votes, oldest first.
    pub hourly: Vec<HourVotes>,
    /// One entry per minute (UTC) that has votes, oldest first.
    pub per_minute: Vec<MinuteVotes>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct FinalParticipant {
    pub id: ParticipantId,
    pub name: String,
    pub votes: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct HourVotes {
    /// The start of the hour, UTC.
    pub hour: DateTime<Utc>,
    pub total: u64,
    /// Votes per participant id in that hour (every participant present, 0 included).
    pub votes: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct MinuteVotes {
    /// The start of the minute, UTC.
    pub minute: DateTime<Utc>,
    pub total: u64,
    /// Votes per participant id in that minute (every participant present, 0 included).
    pub votes: BTreeMap<String, u64>,
}

/// What the history and the statistics need of a final result: no series.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct FinalSummary {
    pub paredao_id: ParedaoId,
    pub frozen_at: DateTime<Utc>,
    pub digest: String,
    pub total_votes: u64,
    pub participants: Vec<FinalParticipant>,
}

#[derive(Serialize, Deserialize)]
struct FinalDoc<T> {
    #[serde(rename = "_id")]
    id: String,
    #[serde(flatten)]
    result: T,
}

/// A paredão's counts in the shape every export is made from: from its frozen result, or from
/// the live counters while it has none.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResultSeries {
    /// Every participant of the paredão.
    pub participants: Vec<ParticipantId>,
    pub by_hour: BTreeMap<DateTime<Utc>, BTreeMap<ParticipantId, u64>>,
    pub by_minute: MinuteSeries,
}

/// What an export lists: the totals, or the votes per hour or per minute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Granularity {
    Total,
    Hour,
    Minute,
}

impl Granularity {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "total" => Some(Self::Total),
            "hour" => Some(Self::Hour),
            "minute" => Some(Self::Minute),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Total => "total",
            Self::Hour => "hour",
            Self::Minute => "minute",
        }
    }
}

/// One row of an export: a participant's votes, in a period (none for the totals).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportRow {
    pub period: Option<DateTime<Utc>>,
    pub participant: ParticipantId,
    pub votes: u64,
}

impl ResultSeries {
    /// The series of the live counters.
    pub fn live(paredao: &Paredao, counts: Option<&ParedaoCounts>, by_minute: MinuteSeries) -> Self {
        Self {
            participants: paredao.participants.iter().map(|p| p.id.clone()).collect(),
            by_hour: counts.map(|c| c.by_hour.clone()).unwrap_or_default(),
            by_minute,
        }
    }

    /// The rows of an export at `granularity`, in the canonical order (see the module doc).
    pub fn rows(&self, granularity: Granularity) -> Vec<ExportRow> {
        let mut ids: Vec<&ParticipantId> = self.participants.iter().collect();
        ids.sort();
        ids.dedup();
        let per_period = |series: &BTreeMap<DateTime<Utc>, BTreeMap<ParticipantId, u64>>| {
            series
                .iter()
                .filter(|(_, by)| by.values().any(|&n| n > 0))
                .flat_map(|(at, by)| {
                    ids.iter().map(move |&id| ExportRow {
                        period: Some(*at),
                        participant: id.clone(),
                        votes: by.get(id).copied().unwrap_or(0),
                    })
                })
                .collect::<Vec<_>>()
        };
        match granularity {
            Granularity::Total => ids
                .iter()
                .map(|&id| ExportRow {
                    period: None,
                    participant: id.clone(),
                    votes: self.by_hour.values().filter_map(|by| by.get(id)).sum(),
                })
                .collect(),
            Granularity::Hour => per_period(&self.by_hour),
            Granularity::Minute => per_period(&self.by_minute),
        }
    }

    /// The per-hour CSV export, whose SHA-256 is the digest.
    pub fn hourly_csv(&self) -> String {
        csv_lines(granularity_header(Granularity::Hour), self.rows(Granularity::Hour)).collect()
    }

    /// SHA-256 (lowercase hex) of `hourly_csv`.
    pub fn digest(&self) -> String {
        hex::encode(Sha256::digest(self.hourly_csv().as_bytes()))
    }
}

/// The CSV header of an export at `granularity`.
pub fn granularity_header(granularity: Granularity) -> &'static str {
    match granularity {
        Granularity::Total => "participant,votes",
        Granularity::Hour => "hour,participant,votes",
        Granularity::Minute => "minute,participant,votes",
    }
}

/// The lines of a CSV export, each ended by `\n`, the header first: exactly the bytes served
/// (and, for the per-hour export of a frozen result, hashed into its digest).
pub fn csv_lines(header: &'static str, rows: Vec<ExportRow>) -> impl Iterator<Item = String> {
    std::iter::once(format!("{header}\n")).chain(rows.into_iter().map(|r| match r.period {
        Some(at) => format!("{},{},{}\n", timestamp(at), r.participant, r.votes),
        None => format!("{},{}\n", r.participant, r.votes),
    }))
}

/// Times in exports: UTC, to the second, `Z`.
pub fn timestamp(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn period_votes(
    paredao: &Paredao,
    series: &BTreeMap<DateTime<Utc>, BTreeMap<ParticipantId, u64>>,
) -> Vec<(DateTime<Utc>, u64, BTreeMap<String, u64>)> {
    series
        .iter()
        .map(|(at, by)| {
            let votes = paredao
                .participants
                .iter()
                .map(|p| (p.id.to_string(), by.get(&p.id).copied().unwrap_or(0)))
                .collect::<BTreeMap<_, _>>();
            (*at, votes.values().sum(), votes)
        })
        .collect()
}

impl FinalResult {
    /// Freezes `paredao`'s drained counters: the hourly ones and the minute ones (both written
    /// by the same transactions, so they add up to the same totals).
    pub fn freeze(paredao: &Paredao, series: &ResultSeries, frozen_at: DateTime<Utc>) -> Self {
        let totals: HashMap<&ParticipantId, u64> = series
            .rows(Granularity::Total)
            .into_iter()
            .map(|r| (paredao.participant(r.participant.as_str()).map(|p| &p.id), r.votes))
            .filter_map(|(id, n)| id.map(|id| (id, n)))
            .collect();
        let participants: Vec<FinalParticipant> = paredao
            .participants
            .iter()
            .map(|p| FinalParticipant {
                id: p.id.clone(),
                name: p.name.clone(),
                votes: totals.get(&p.id).copied().unwrap_or(0),
            })
            .collect();
        Self {
            paredao_id: paredao.id.clone(),
            title: paredao.title.clone(),
            opens_at: paredao.opens_at,
            closes_at: paredao.closes_at,
            frozen_at,
            digest: series.digest(),
            total_votes: participants.iter().map(|p| p.votes).sum(),
            participants,
            hourly: period_votes(paredao, &series.by_hour)
                .into_iter()
                .map(|(hour, total, votes)| HourVotes { hour, total, votes })
                .collect(),
            per_minute: period_votes(paredao, &series.by_minute)
                .into_iter()
                .map(|(minute, total, votes)| MinuteVotes { minute, total, votes })
                .collect(),
        }
    }

    /// The series the exports of a frozen result are made from.
    pub fn series(&self) -> ResultSeries {
        let fold = |votes: &BTreeMap<String, u64>| {
            votes.iter().filter_map(|(id, n)| ParticipantId::parse(id.clone()).ok().map(|id| (id, *n))).collect()
        };
        ResultSeries {
            participants: self.participants.iter().map(|p| p.id.clone()).collect(),
            by_hour: self.hourly.iter().map(|h| (h.hour, fold(&h.votes))).collect(),
            by_minute: self.per_minute.iter().map(|m| (m.minute, fold(&m.votes))).collect(),
        }
    }
}

impl Store {
    fn final_results(&self) -> Collection<Document> {
        self.db.collection(FINAL_RESULTS)
    }

    /// Writes `result` unless the paredão has one already: true if this call wrote it, false
    /// if another consumer froze it first.
    pub async fn insert_final(&self, result: &FinalResult) -> Result<bool, StoreError> {
        let doc = bson::to_document(&FinalDoc { id: result.paredao_id.to_string(), result })
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        match self.final_results().insert_one(doc).await {
            Ok(_) => Ok(true),
            Err(e) if is_duplicate_key(&e) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// The frozen result of `paredao`, if it has one.
    pub async fn load_final(&self, paredao: &ParedaoId) -> Result<Option<FinalResult>, StoreError> {
        let Some(doc) = self.final_results().find_one(doc! { "_id": paredao.as_str() }).await? else {
            return Ok(None);
        };
        let stored: FinalDoc<FinalResult> = bson::from_document(doc).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        Ok(Some(stored.result))
    }

    /// Every frozen result, without its series.
    pub async fn load_final_summaries(&self) -> Result<HashMap<ParedaoId, FinalSummary>, StoreError> {
        let mut out = HashMap::new();
        let mut cursor = self
            .final_results()
            .find(doc! {})
            .projection(doc! { "paredao_id": 1, "frozen_at": 1, "digest": 1, "total_votes": 1, "participants": 1 })
            .await?;
        while let Some(doc) = cursor.try_next().await? {
            let stored: FinalDoc<FinalSummary> =
                bson::from_document(doc).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            out.insert(stored.result.paredao_id.clone(), stored.result);
        }
        Ok(out)
    }

    /// One paredão's hourly counters, folded (the live read of `load_counters`, for one).
    pub async fn load_counts_of(&self, paredao: &ParedaoId) -> Result<ParedaoCounts, StoreError> {
        let mut counts = ParedaoCounts::default();
        let mut cursor = self.db.collection::<Document>("counters").find(doc! { "paredao": paredao.as_str() }).await?;
        while let Some(d) = cursor.try_next().await? {
            let (Ok(participant), Ok(hour)) = (d.get_str("participant"), d.get_datetime("hour")) else {
                return Err(StoreError::Corrupt(format!("a counter of {paredao} without participant or hour")));
            };
            let participant = ParticipantId::parse(participant).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            let n = d.get_i64("votes").or_else(|_| d.get_i32("votes").map(i64::from)).unwrap_or(0).max(0) as u64;
            counts.total += n;
            *counts.by_participant.entry(participant.clone()).or_default() += n;
            *counts.by_hour.entry(hour.to_chrono()).or_default().entry(participant).or_default() += n;
        }
        Ok(counts)
    }
}

fn is_duplicate_key(e: &mongodb::error::Error) -> bool {
    use mongodb::error::{ErrorKind, WriteFailure};
    match e.kind.as_ref() {
        ErrorKind::Write(WriteFailure::WriteError(w)) => w.code == 11000,
        ErrorKind::Command(c) => c.code == 11000,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn id(s: &str) -> ParticipantId {
        ParticipantId::parse(s).unwrap()
    }

    fn series() -> ResultSeries {
        let h17 = Utc.with_ymd_and_hms(2026, 11, 22, 17, 0, 0).unwrap();
        let h18 = Utc.with_ymd_and_hms(2026, 11, 22, 18, 0, 0).unwrap();
        ResultSeries {
            participants: vec![id("bia"), id("ana")],
            by_hour: [(h17, [(id("ana"), 1200), (id("bia"), 800)].into()), (h18, [(id("bia"), 3)].into())].into(),
            by_minute: Default::default(),
        }
    }

    #[test]
    fn the_hourly_csv_is_the_canonical_form() {
        assert_eq!(
            series().hourly_csv(),
            "hour,participant,votes\n\
             2026-11-22T17:00:00Z,ana,1200\n\
             2026-11-22T17:00:00Z,bia,800\n\
             2026-11-22T18:00:00Z,ana,0\n\
             2026-11-22T18:00:00Z,bia,3\n"
        );
    }

    #[test]
    fn the_digest_is_the_sha256_of_the_hourly_csv() {
        let s = series();
        assert_eq!(s.digest(), hex::encode(Sha256::digest(s.hourly_csv())));
        assert_eq!(s.digest().len(), 64);
    }

    #[test]
    fn totals_list_every_participant() {
        let rows = series().rows(Granularity::Total);
        let got: Vec<(String, u64)> = rows.into_iter().map(|r| (r.participant.to_string(), r.votes)).collect();
        assert_eq!(got, vec![("ana".into(), 1200), ("bia".into(), 803)]);
    }
}
