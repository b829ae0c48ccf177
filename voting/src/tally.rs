//! Folding votes into counters: one per (paredão, participant, hour).
//!
//! This is the whole read model. The consumer folds a few hundred messages (tens of thousands
//! of votes) into a handful of increments before touching MongoDB; the API folds the stored
//! counters into per-participant totals for the results and the production panel.

use std::collections::BTreeMap;

use chrono::{DateTime, TimeZone, Utc};

use crate::paredao::{ParedaoId, ParticipantId};
use crate::vote::Vote;

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CounterKey {
    pub paredao: ParedaoId,
    pub participant: ParticipantId,
    /// The start of the hour (UTC) the votes were cast in.
    pub hour: DateTime<Utc>,
}

impl CounterKey {
    /// The counter's document id: stable, readable, and unique per key.
    pub fn document_id(&self) -> String {
        format!("{}|{}|{}", self.paredao, self.participant, self.hour.format("%Y-%m-%dT%H"))
    }
}

/// The start of the hour `at` falls in. Plain arithmetic on milliseconds: chrono's
/// `duration_trunc` works in nanoseconds and fails past 2262, and a time read from a message must
/// never be able to panic the consumer.
pub fn hour_of(at: DateTime<Utc>) -> DateTime<Utc> {
    const HOUR_MS: i64 = 3_600_000;
    let ms = at.timestamp_millis();
    Utc.timestamp_millis_opt(ms - ms.rem_euclid(HOUR_MS)).single().unwrap_or(at)
}

/// Vote counts keyed by counter; ordered so that writes touch documents in a stable order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tally {
    counts: BTreeMap<CounterKey, u64>,
}

impl Tally {
    pub fn add(&mut self, vote: &Vote) {
        self.add_count(
            CounterKey {
                paredao: vote.paredao.clone(),
                participant: vote.participant.clone(),
                hour: hour_of(vote.cast_at()),
            },
            1,
        );
    }

    pub fn add_count(&mut self, key: CounterKey, n: u64) {
        *self.counts.entry(key).or_default() += n;
    }

    pub fn extend<'a>(&mut self, votes: impl IntoIterator<Item = &'a Vote>) {
        for v in votes {
            self.add(v);
        }
    }

    pub fn total(&self) -> u64 {
        self.counts.values().sum()
    }

    pub fn is_empty(&self) -> bool {
        self.counts.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&CounterKey, u64)> {
        self.counts.iter().map(|(k, n)| (k, *n))
    }
}

/// One paredão's counts, as the results and the production panel read them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ParedaoCounts {
    pub total: u64,
    pub by_participant: BTreeMap<ParticipantId, u64>,
    pub by_hour: BTreeMap<DateTime<Utc>, BTreeMap<ParticipantId, u64>>,
}

impl Tally {
    /// Splits the tally per paredão, with totals per participant and per hour.
    pub fn by_paredao(&self) -> std::collections::HashMap<ParedaoId, ParedaoCounts> {
        let mut out: std::collections::HashMap<ParedaoId, ParedaoCounts> = Default::default();
        for (key, n) in self.iter() {
            let counts = out.entry(key.paredao.clone()).or_default();
            counts.total += n;
            *counts.by_participant.entry(key.participant.clone()).or_default() += n;
            *counts.by_hour.entry(key.hour).or_default().entry(key.participant.clone()).or_default() += n;
        }
        out
    }
}

/// Percentages with two decimals that add up to exactly 100 (largest remainder), so the bars
/// a viewer sees never sum to 99.99 or 100.01. All zeros when there are no votes.
pub fn percentages(counts: &[u64]) -> Vec<f64> {
    let total: u64 = counts.iter().sum();
    if total == 0 {
        return vec![0.0; counts.len()];
    }
    // Work in hundredths of a percent: 10_000 units to hand out.
    const UNITS: u128 = 10_000;
    let exact: Vec<u128> = counts.iter().map(|&c| c as u128 * UNITS).collect();
    let mut units: Vec<u128> = exact.iter().map(|e| e / total as u128).collect();
    let mut left = UNITS - units.iter().sum::<u128>();
    let mut order: Vec<usize> = (0..counts.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(exact[i] % total as u128));
    for i in order {
        if left == 0 {
            break;
        }
        if counts[i] > 0 {
            units[i] += 1;
            left -= 1;
        }
    }
    units.into_iter().map(|u| u as f64 / 100.0).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn percentages_add_up_to_exactly_one_hundred() {
        assert_eq!(percentages(&[1, 1, 1]), vec![33.34, 33.33, 33.33]);
        assert_eq!(percentages(&[2, 1]), vec![66.67, 33.33]);
        assert_eq!(percentages(&[0, 0]), vec![0.0, 0.0]);
        assert_eq!(percentages(&[5, 0]), vec![100.0, 0.0]);
        let p = percentages(&[123_456_789, 987_654_321, 5]);
        assert!((p.iter().sum::<f64>() - 100.0).abs() < 1e-9, "{p:?}");
    }

    #[test]
    fn counts_split_per_paredao_participant_and_hour() {
        let mut tally = Tally::default();
        tally.extend(&[vote("ana", 17, 1), vote("bia", 17, 2), vote("ana", 18, 3)]);
        let by = tally.by_paredao();
        let c = &by[&ParedaoId::parse("p1").unwrap()];
        assert_eq!(c.total, 3);
        assert_eq!(c.by_participant[&ParticipantId::parse("ana").unwrap()], 2);
        assert_eq!(c.by_hour.len(), 2);
    }

    fn vote(c: &str, h: u32, m: u32) -> Vote {
        Vote::new(
            ParedaoId::parse("p1").unwrap(),
            ParticipantId::parse(c).unwrap(),
            Utc.with_ymd_and_hms(2026, 11, 22, h, m, 59).unwrap(),
        )
    }

    #[test]
    fn votes_fold_into_one_counter_per_participant_and_hour() {
        let votes = [vote("ana", 17, 0), vote("ana", 17, 59), vote("bia", 17, 30), vote("ana", 18, 0)];
        let mut tally = Tally::default();
        tally.extend(&votes);
        let got: Vec<(String, u64)> = tally.iter().map(|(k, n)| (k.document_id(), n)).collect();
        assert_eq!(
            got,
            vec![
                ("p1|ana|2026-11-22T17".to_string(), 2),
                ("p1|ana|2026-11-22T18".to_string(), 1),
                ("p1|bia|2026-11-22T17".to_string(), 1),
            ]
        );
        assert_eq!(tally.total(), 4);
    }

    #[test]
    fn the_hour_is_truncated_not_rounded() {
        let at = Utc.with_ymd_and_hms(2026, 11, 22, 17, 59, 59).unwrap();
        assert_eq!(hour_of(at), Utc.with_ymd_and_hms(2026, 11, 22, 17, 0, 0).unwrap());
    }
}
