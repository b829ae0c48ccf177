//! Freezing the final result of each closed paredão once its votes have all been counted, and
//! rolling its per-minute counters up.
//!
//! A paredão has *drained* when every vote accepted before its closing is in its counters:
//! - `consumer.freeze.grace_ms` have passed since `closes_at` (never less than the API's batch
//!   linger plus its confirm timeout: a vote accepted at the last moment is in the queue by
//!   then, or was answered 503 and not counted);
//! - the vote queue has no ready message (a passive declare; any message in it may be a vote
//!   for this paredão, so any backlog delays every freeze);
//! - the paredão's counters, hourly and per minute, read twice at least `settle_ms` apart with
//!   the queue empty both times, have not changed: a vote some consumer has taken and not yet
//!   counted (its transaction under way, or retried) shows up as a change.
//!
//! Then the freezer writes the final result (`voting::final_results`) with an insert, so that
//! with several consumers only the first wins (a duplicate key means another froze it: fine),
//! and deletes the paredão's per-minute counters (the frozen document keeps the series; the
//! hourly counters stay). A consumer that stops between the two deletes them on its next start:
//! every frozen paredão is rolled up once per process.
//!
//! What it assumes: no consumer holds a vote of the paredão for longer than `settle_ms` without
//! counting it, while the queue is empty. A consumer whose store writes fail for longer keeps
//! retrying; its votes would then be counted after the freeze (in the hourly counters, not in the
//! frozen result), and the freezer logs no warning for it: raise `settle_ms` where stores stall.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use chrono::Utc;
use lapin::options::QueueDeclareOptions;
use lapin::types::FieldTable;
use lapin::{Channel, Connection};
use tokio::time::Instant;
use voting::configuration::{BrokerSettings, Settings};
use voting::final_results::{FinalResult, ResultSeries};
use voting::paredao::{Paredao, ParedaoId, ParedaoState};
use voting::store::Store;

/// What a round found for one closed paredão.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Closed less than the grace ago: votes accepted before the close may still be on their way.
    InGrace,
    /// This many votes batches wait in the queue.
    Backlog(u32),
    /// Counters read; waiting to see them unchanged `settle_ms` later.
    Settling,
    /// This round froze it, with this digest.
    Frozen(String),
    /// Another consumer froze it first (this round's insert found its document).
    FrozenByAnother,
    /// It had a final result before this round.
    AlreadyFinal,
}

pub struct Freezer {
    store: Store,
    broker: BrokerSettings,
    queue: String,
    grace: chrono::Duration,
    settle: Duration,
    link: Option<(Connection, Channel)>,
    /// The counters last read of each paredão being watched, and since when they have not changed.
    watching: HashMap<ParedaoId, (ResultSeries, Instant)>,
    /// Frozen paredões whose minute counters this process has deleted.
    rolled_up: HashSet<ParedaoId>,
}

impl Freezer {
    pub fn new(settings: &Settings, store: Store) -> Self {
        let freeze = &settings.consumer.freeze;
        let in_flight = settings.batcher.max_wait_ms.saturating_add(settings.batcher.confirm_timeout_ms);
        let grace_ms = freeze.grace_ms.max(in_flight).min(i64::MAX as u64) as i64;
        Self {
            store,
            broker: settings.broker.clone(),
            queue: settings.broker.queue.clone(),
            grace: chrono::Duration::milliseconds(grace_ms),
            settle: Duration::from_millis(freeze.settle_ms),
            link: None,
            watching: HashMap::new(),
            rolled_up: HashSet::new(),
        }
    }

    /// One look at every closed paredão; freezes those that have drained.
    pub async fn round(&mut self) -> anyhow::Result<HashMap<ParedaoId, Verdict>> {
        let now = Utc::now();
        let paredoes = self.store.load_paredoes().await?;
        let finals = self.store.load_final_summaries().await?;
        let mut verdicts = HashMap::new();
        let mut backlog: Option<u32> = None;
        for p in paredoes.iter().filter(|p| p.state_at(now) == ParedaoState::Closed) {
            if finals.contains_key(&p.id) {
                self.watching.remove(&p.id);
                self.roll_up(&p.id).await;
                verdicts.insert(p.id.clone(), Verdict::AlreadyFinal);
                continue;
            }
            if now < p.closes_at + self.grace {
                verdicts.insert(p.id.clone(), Verdict::InGrace);
                continue;
            }
            // Once per round: the queue is the same for every paredão.
            let ready = match backlog {
                Some(n) => n,
                None => *backlog.insert(self.ready_votes().await?),
            };
            if ready > 0 {
                self.watching.remove(&p.id);
                verdicts.insert(p.id.clone(), Verdict::Backlog(ready));
                continue;
            }
            let verdict = self.watch(p).await?;
            verdicts.insert(p.id.clone(), verdict);
        }
        Ok(verdicts)
    }

    async fn watch(&mut self, p: &Paredao) -> anyhow::Result<Verdict> {
        let series = ResultSeries {
            participants: p.participants.iter().map(|x| x.id.clone()).collect(),
            by_hour: self.store.load_counts_of(&p.id).await?.by_hour,
            by_minute: self.store.load_minutes_of(&p.id).await?,
        };
        match self.watching.get(&p.id) {
            Some((seen, since)) if *seen == series => {
                if since.elapsed() < self.settle {
                    return Ok(Verdict::Settling);
                }
            }
            _ => {
                self.watching.insert(p.id.clone(), (series, Instant::now()));
                return Ok(Verdict::Settling);
            }
        }
        self.watching.remove(&p.id);
        let result = FinalResult::freeze(p, &series, Utc::now());
        let inserted = self.store.insert_final(&result).await?;
        if inserted {
            metrics::counter!("paredao_consumer_results_frozen_total").increment(1);
            tracing::info!(
                paredao = %p.id,
                total_votes = result.total_votes,
                digest = %result.digest,
                "froze the final result of a drained paredão"
            );
        }
        self.roll_up(&p.id).await;
        Ok(if inserted { Verdict::Frozen(result.digest) } else { Verdict::FrozenByAnother })
    }

    /// Deletes a frozen paredão's minute counters, once per process (tried again next round
    /// if the store refuses).
    async fn roll_up(&mut self, paredao: &ParedaoId) {
        if self.rolled_up.contains(paredao) {
            return;
        }
        match self.store.delete_minutes_of(paredao).await {
            Ok(n) => {
                if n > 0 {
                    tracing::info!(paredao = %paredao, documents = n, "rolled the per-minute counters up");
                }
                self.rolled_up.insert(paredao.clone());
            }
            Err(e) => tracing::warn!(paredao = %paredao, error = %e, "could not roll the minute counters up yet"),
        }
    }

    /// Messages ready in the vote queue, by a passive declare on a connection of our own (made
    /// when first needed, made again after an error).
    async fn ready_votes(&mut self) -> anyhow::Result<u32> {
        if self.link.as_ref().is_none_or(|(c, ch)| !c.status().connected() || !ch.status().connected()) {
            let connection = voting::broker::connect(&self.broker, "paredao-freezer").await?;
            let channel = connection.create_channel().await?;
            self.link = Some((connection, channel));
        }
        let Some((_, channel)) = &self.link else { anyhow::bail!("no broker channel") };
        let declared = channel
            .queue_declare(
                self.queue.as_str().into(),
                QueueDeclareOptions { passive: true, ..Default::default() },
                FieldTable::default(),
            )
            .await;
        match declared {
            Ok(q) => Ok(q.message_count()),
            Err(e) => {
                // A failed passive declare closes the channel: start afresh next time.
                self.link = None;
                Err(e.into())
            }
        }
    }

    /// Closes the broker connection, if one was made.
    pub async fn close(&mut self) {
        if let Some((connection, _)) = self.link.take() {
            let _ = connection.close(200, "freezer stopping".into()).await;
        }
    }
}

/// One periodic step: a round, its failures logged (the next round tries again).
pub async fn step(freezer: &mut Freezer) {
    if let Err(e) = freezer.round().await {
        tracing::warn!(error = %e, "could not check the closed paredões for a final result; trying again later");
    }
}

/// How often the freezer looks, from the settings.
pub fn every(settings: &Settings) -> Duration {
    Duration::from_millis(settings.consumer.freeze.every_ms.max(1))
}
