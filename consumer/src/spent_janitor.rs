//! When the store may forget counted challenges: a block of the spent bitmaps (`voting::store`)
//! is deleted once no vote still to be counted can spend one of its challenges.
//!
//! Every copy of a vote spending a challenge was accepted before the challenge expired, and its
//! batch sealed then (by an API replica's clock, within `CAST_SKEW_SECS` of the others) and
//! published within seconds. The vote queue hands messages out in the order they arrived, so once
//! this consumer has finished a batch sealed at `s`, every batch sealed before `s - SEAL_SLACK`
//! has been handed to some consumer. Those another consumer holds are counted within seconds; we
//! wait `MARGIN` more before relying on it. So a block whose challenges
//! all expired before `sealed(MARGIN ago) - CAST_SKEW_SECS - SEAL_SLACK` is done with. This follows the queue, not the
//! clock: while a backlog of any age drains, its blocks are kept until the drain has passed them.
//! (What it assumes: no consumer holds a message for longer than `MARGIN` without counting it.
//! A consumer whose store writes fail retries them; were the store away for it alone for that
//! long while another counts, a replay in its hands could be counted again.)

use std::collections::VecDeque;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use tokio::time::Instant;
use voting::store::Store;
use voting::vote::{CAST_SKEW_SECS, VoteBatch};

/// How long after this consumer finished a batch its position in the queue is relied on.
pub const MARGIN: Duration = Duration::from_secs(180);

/// How long after sealing a batch may reach the queue (a publish waits at most seconds).
pub const SEAL_SLACK_SECS: i64 = 30;

/// How often the blocks the queue has passed are forgotten.
pub const EVERY: Duration = Duration::from_secs(10);

/// The newest seal time among the batches this consumer has finished (counted, skipped as
/// redeliveries, or dead-lettered), in ms; 0 before the first.
#[derive(Default)]
pub struct QueuePosition {
    newest_sealed_ms: AtomicI64,
}

impl QueuePosition {
    pub fn finished(&self, batches: &[VoteBatch]) {
        if let Some(newest) = batches.iter().map(|b| b.sealed_at_ms).max() {
            self.newest_sealed_ms.fetch_max(newest, Ordering::Relaxed);
        }
    }

    pub fn newest_sealed_ms(&self) -> i64 {
        self.newest_sealed_ms.load(Ordering::Relaxed)
    }
}

/// Samples of the queue position over time, to know where it was `MARGIN` ago.
pub struct ForgetBound {
    samples: VecDeque<(Instant, i64)>,
    margin: Duration,
}

impl ForgetBound {
    pub fn new(margin: Duration) -> Self {
        Self { samples: VecDeque::new(), margin }
    }

    /// Records the position now; returns the unix second before which expiries may be forgotten,
    /// once there is a position at least `margin` old.
    pub fn observe(&mut self, now: Instant, newest_sealed_ms: i64) -> Option<i64> {
        self.samples.push_back((now, newest_sealed_ms));
        // Keep the newest sample that is at least `margin` old, and those after it.
        while self.samples.len() >= 2 && now.duration_since(self.samples[1].0) >= self.margin {
            self.samples.pop_front();
        }
        let &(at, sealed_ms) = self.samples.front()?;
        (now.duration_since(at) >= self.margin && sealed_ms > 0)
            .then(|| sealed_ms.div_euclid(1000) - CAST_SKEW_SECS - SEAL_SLACK_SECS)
    }
}

/// A command of a round that holds the store for longer than this is logged: the local
/// stand-in deletes under its global lock, so counting waits meanwhile.
const SLOW_COMMAND: Duration = Duration::from_millis(200);

/// Batch ids are forgotten a slice of `applied_at` at a time, with a pause between slices, so
/// that counting runs between the deletes instead of waiting for all of them (see
/// `Store::forget_applied_batches_between`).
pub const BATCH_ID_SLICE_MS: i64 = 1_000;
const BATCH_ID_PAUSE: Duration = Duration::from_millis(20);

/// The janitor's memory between rounds: where the queue was (`ForgetBound`) and how far the
/// batch ids have been forgotten.
pub struct Janitor {
    bound: ForgetBound,
    /// Every batch id counted before this (unix ms) has been forgotten; `None` until the first
    /// round of this process, which forgets in one command whatever an earlier run left.
    batch_ids_forgotten_to_ms: Option<i64>,
}

impl Janitor {
    pub fn new(margin: Duration) -> Self {
        Self { bound: ForgetBound::new(margin), batch_ids_forgotten_to_ms: None }
    }

    /// Forgets the batch ids counted before `to_ms`, a slice at a time; adds to `round` how
    /// many went and its longest command. On an error it keeps what was done, and the next round
    /// goes on from there.
    async fn forget_batch_ids(
        &mut self,
        store: &Store,
        to_ms: i64,
        round: &mut Round,
    ) -> Result<(), voting::store::StoreError> {
        let from = match self.batch_ids_forgotten_to_ms {
            Some(from) => from,
            None => {
                // What an earlier run of the consumer left: one command, once per start.
                let sliced_from = (to_ms - BATCH_ID_SLICE_MS * 10).div_euclid(1000);
                let started = Instant::now();
                round.batches += store.forget_applied_batches_before(sliced_from).await?;
                round.command_took(started);
                self.batch_ids_forgotten_to_ms = Some(sliced_from * 1000);
                sliced_from * 1000
            }
        };
        for (lo, hi) in slices(from, to_ms, BATCH_ID_SLICE_MS) {
            let started = Instant::now();
            round.batches += store.forget_applied_batches_between(lo, hi).await?;
            round.command_took(started);
            self.batch_ids_forgotten_to_ms = Some(hi);
            tokio::time::sleep(BATCH_ID_PAUSE).await;
        }
        Ok(())
    }
}

/// What one round did.
#[derive(Default)]
struct Round {
    batches: u64,
    blocks: u64,
    longest_command: Duration,
}

impl Round {
    fn command_took(&mut self, started: Instant) {
        self.longest_command = self.longest_command.max(started.elapsed());
    }
}

/// `[from, to)` cut into consecutive pieces of at most `slice` (none when `to <= from`).
fn slices(from: i64, to: i64, slice: i64) -> impl Iterator<Item = (i64, i64)> {
    let step = slice.max(1) as usize;
    (from..to).step_by(step).map(move |lo| (lo, lo.saturating_add(slice).min(to)))
}

/// One round: forgets the blocks and the batch ids the queue has passed.
pub async fn tidy(store: &Store, janitor: &mut Janitor, position: &QueuePosition) {
    let Some(before) = janitor.bound.observe(Instant::now(), position.newest_sealed_ms()) else { return };
    let started = Instant::now();
    let mut round = Round::default();
    if let Err(e) = janitor.forget_batch_ids(store, before.saturating_mul(1000), &mut round).await {
        tracing::warn!(error = %e, "could not forget old batch ids; trying again later");
    }
    let blocks_started = Instant::now();
    match store.forget_spent_expiring_before(before).await {
        Ok(n) => round.blocks = n,
        Err(e) => tracing::warn!(error = %e, "could not forget old counted challenges; trying again later"),
    }
    round.command_took(blocks_started);
    metrics::counter!("paredao_consumer_spent_blocks_forgotten_total").increment(round.blocks);
    metrics::counter!("paredao_consumer_batch_ids_forgotten_total").increment(round.batches);
    let (took_ms, longest_ms) = (started.elapsed().as_millis() as u64, round.longest_command.as_millis() as u64);
    let (batches, blocks) = (round.batches, round.blocks);
    if round.longest_command > SLOW_COMMAND {
        tracing::info!(took_ms, longest_ms, batches, blocks, before, "forgetting what the queue has passed was slow");
    } else {
        tracing::debug!(took_ms, longest_ms, batches, blocks, before, "forgot what the queue has passed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges_are_forgotten_only_behind_where_the_queue_was_a_margin_ago() {
        let margin = Duration::from_secs(180);
        let mut bound = ForgetBound::new(margin);
        let start = Instant::now();
        let sealed = 1_764_000_000_000;
        assert_eq!(bound.observe(start, sealed), None, "no position old enough yet");
        assert_eq!(bound.observe(start + Duration::from_secs(179), sealed + 179_000), None);
        let expected = sealed / 1000 - CAST_SKEW_SECS - SEAL_SLACK_SECS;
        assert_eq!(bound.observe(start + margin, sealed + 180_000), Some(expected), "where it was 180 s ago");
        // A backlog draining fast: the bound follows the queue's position, a margin late.
        assert_eq!(bound.observe(start + Duration::from_secs(370), sealed + 3_600_000), Some(expected + 180));
    }

    #[test]
    fn batch_ids_are_forgotten_in_slices_that_cover_the_range_once() {
        let pieces: Vec<_> = slices(1_000, 3_500, 1_000).collect();
        assert_eq!(pieces, vec![(1_000, 2_000), (2_000, 3_000), (3_000, 3_500)]);
        assert_eq!(slices(5_000, 5_000, 1_000).count(), 0, "nothing when the bound has not moved");
        assert_eq!(slices(5_000, 4_000, 1_000).count(), 0, "nor when it is behind");
    }

    #[test]
    fn a_consumer_that_has_finished_nothing_drops_nothing() {
        let mut bound = ForgetBound::new(Duration::from_secs(1));
        let start = Instant::now();
        assert_eq!(bound.observe(start, 0), None);
        assert_eq!(bound.observe(start + Duration::from_secs(10), 0), None);
    }

    #[test]
    fn the_position_is_the_newest_batch_finished() {
        let position = QueuePosition::default();
        let batch = |ms| VoteBatch { sealed_at_ms: ms, ..VoteBatch::seal(Vec::new(), chrono::Utc::now()) };
        position.finished(&[batch(5), batch(9), batch(7)]);
        position.finished(&[batch(3)]);
        assert_eq!(position.newest_sealed_ms(), 9);
    }
}
