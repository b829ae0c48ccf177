//! The consume loop: take many messages, fold them into one transaction, ack after the commit.
//!
//! RabbitMQ hands over up to `prefetch` unacked messages. The worker gathers up to
//! `max_messages_per_write` of them (waiting at most `max_wait_ms` after the first), decodes
//! them, and applies all their votes in one MongoDB transaction that also records each batch
//! id. Only after the commit does it ack them. If it dies before the ack, RabbitMQ redelivers
//! and the store skips the batches whose ids it already holds: every vote counts exactly once.
//!
//! Votes carry the captcha challenge they spent; the worker keeps the challenges it counted
//! (`SpentLedger`, reloaded from the store when it starts) and does not count a challenge twice,
//! which catches a replay that reached two API replicas before they could tell each other.
//!
//! A message that is not a vote batch is rejected without requeue, so it goes to the
//! dead-letter queue instead of coming back forever. A store that is down holds the messages
//! (unacked) and is retried with backoff; a broker that goes away is reconnected with backoff.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use futures::StreamExt;
use lapin::message::Delivery;
use lapin::options::{BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions};
use lapin::types::FieldTable;
use tokio_util::sync::CancellationToken;
use voting::backoff::Backoff;
use voting::broker::{self, Topology};
use voting::configuration::{BrokerSettings, ConsumerSettings};
use voting::spent_ledger::SpentLedger;
use voting::store::Store;
use voting::vote::VoteBatch;

use crate::status::Status;

pub struct Worker {
    consumer: ConsumerSettings,
    broker: BrokerSettings,
    topology: Topology,
    store: Store,
    status: Arc<Status>,
    /// `None` until loaded from the store (which may be down when the worker starts).
    ledger: tokio::sync::Mutex<Option<SpentLedger>>,
    /// How long a counted challenge is remembered after its vote: longer than any challenge
    /// lives, with room for the replicas' clocks to disagree.
    keep_spent_secs: i64,
}

/// Clock skew allowed between the API replicas and the consumer when forgetting challenges.
const CLOCK_SKEW_SECS: i64 = 60;

#[derive(Debug, thiserror::Error)]
enum SessionError {
    #[error("RabbitMQ: {0}")]
    Broker(#[from] lapin::Error),
    #[error("the broker closed the consumer")]
    ConsumerClosed,
}

impl Worker {
    /// `challenge_lifetime_secs`: how long a captcha challenge may be spent after it is issued.
    pub fn new(
        consumer: ConsumerSettings,
        broker: BrokerSettings,
        store: Store,
        status: Arc<Status>,
        challenge_lifetime_secs: u64,
    ) -> Self {
        Self {
            topology: Topology::new(&broker),
            consumer,
            broker,
            store,
            status,
            ledger: tokio::sync::Mutex::new(None),
            keep_spent_secs: challenge_lifetime_secs as i64 + CLOCK_SKEW_SECS,
        }
    }

    /// Counts `batches` against the ledger, loading it first if this is the first write.
    async fn apply(&self, batches: &[VoteBatch]) -> Result<voting::store::Applied, voting::store::StoreError> {
        let mut ledger = self.ledger.lock().await;
        let now = Utc::now();
        if ledger.is_none() {
            let since = now - chrono::TimeDelta::seconds(self.keep_spent_secs);
            let mut loaded = SpentLedger::default();
            for key in self.store.load_spent(since).await? {
                loaded.insert(key, now.timestamp() + self.keep_spent_secs);
            }
            tracing::info!(challenges = loaded.len(), "loaded the captcha challenges counted recently");
            *ledger = Some(loaded);
        }
        let ledger = ledger.as_mut().expect("loaded above");
        let applied = self.store.apply(batches, ledger, self.keep_spent_secs).await?;
        for (key, forget_at) in &applied.spent {
            ledger.insert(*key, *forget_at);
        }
        ledger.purge(now.timestamp());
        metrics::gauge!("paredao_consumer_spent_challenges").set(ledger.len() as f64);
        Ok(applied)
    }

    /// Consumes until `stop` is cancelled, reconnecting whenever the broker goes away. On stop
    /// it finishes (writes and acks) the messages it holds, then closes.
    pub async fn run(&self, stop: CancellationToken) {
        let mut backoff = Backoff::default();
        let mut failures: u64 = 0;
        while !stop.is_cancelled() {
            match self.session(&stop, &mut backoff).await {
                Ok(()) => break,
                Err(e) => {
                    self.status.set_broker(false);
                    failures += 1;
                    if failures == 1 || failures % 12 == 0 {
                        tracing::error!(error = %e, failures, "consuming from RabbitMQ failed; reconnecting");
                    }
                }
            }
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tokio::time::sleep(backoff.next_delay()) => {}
            }
        }
        self.status.set_broker(false);
        tracing::info!("consumer stopped");
    }

    async fn session(&self, stop: &CancellationToken, backoff: &mut Backoff) -> Result<(), SessionError> {
        let connection = broker::connect(&self.broker, "paredao-consumer").await?;
        let channel = connection.create_channel().await?;
        channel.basic_qos(self.consumer.prefetch, BasicQosOptions::default()).await?;
        self.topology.declare(&channel).await?;
        let tag = format!("paredao-consumer-{}", uuid::Uuid::new_v4());
        let mut deliveries = channel
            .basic_consume(self.topology.queue.as_str().into(), tag.as_str().into(), BasicConsumeOptions::default(), FieldTable::default())
            .await?;
        if let Err(e) = self.store.ensure_indexes().await {
            tracing::warn!(error = %e, "could not create the counters index yet");
        }
        self.status.set_broker(true);
        backoff.reset();
        tracing::info!(queue = %self.topology.queue, prefetch = self.consumer.prefetch, "consuming votes");

        let max_messages = self.consumer.max_messages_per_write.max(1);
        let max_wait = Duration::from_millis(self.consumer.max_wait_ms);
        loop {
            let first = tokio::select! {
                _ = stop.cancelled() => break,
                next = deliveries.next() => next,
            };
            let mut held = vec![first.ok_or(SessionError::ConsumerClosed)??];
            let deadline = tokio::time::Instant::now() + max_wait;
            while held.len() < max_messages {
                match tokio::time::timeout_at(deadline, deliveries.next()).await {
                    Ok(Some(d)) => held.push(d?),
                    Ok(None) => return Err(SessionError::ConsumerClosed),
                    Err(_) => break,
                }
            }
            self.handle(held, stop).await?;
        }
        // Stop taking messages; those prefetched and not acked go back to the queue on close.
        let _ = channel.basic_cancel(tag.as_str().into(), BasicCancelOptions::default()).await;
        let _ = channel.close(200, "consumer stopping".into()).await;
        let _ = connection.close(200, "consumer stopping".into()).await;
        Ok(())
    }

    /// Writes the votes of `held` and acks them; dead-letters what does not decode. Returns
    /// without acking if told to stop while the store is down (the broker redelivers).
    async fn handle(&self, held: Vec<Delivery>, stop: &CancellationToken) -> Result<(), lapin::Error> {
        let mut batches = Vec::with_capacity(held.len());
        let mut to_ack = Vec::with_capacity(held.len());
        for delivery in held {
            if delivery.redelivered {
                metrics::counter!("paredao_consumer_redeliveries_total").increment(1);
            }
            match VoteBatch::decode(&delivery.data) {
                Ok(batch) => {
                    batches.push(batch);
                    to_ack.push(delivery);
                }
                Err(e) => {
                    tracing::error!(
                        error = %e,
                        bytes = delivery.data.len(),
                        message_id = ?delivery.properties.message_id(),
                        "undecodable message sent to the dead-letter queue '{}'", self.topology.dead_letter_queue
                    );
                    metrics::counter!("paredao_consumer_messages_total", "outcome" => "dead_lettered").increment(1);
                    delivery.nack(BasicNackOptions { requeue: false, ..Default::default() }).await?;
                }
            }
        }
        if batches.is_empty() {
            return Ok(());
        }

        let mut backoff = Backoff::default();
        let started = std::time::Instant::now();
        let applied = loop {
            match self.apply(&batches).await {
                Ok(applied) => {
                    self.status.set_store(true);
                    break applied;
                }
                Err(e) => {
                    self.status.set_store(false);
                    tracing::warn!(error = %e, messages = batches.len(), "writing the counters failed; retrying");
                    tokio::select! {
                        _ = stop.cancelled() => return Ok(()),
                        _ = tokio::time::sleep(backoff.next_delay()) => {}
                    }
                }
            }
        };
        metrics::histogram!("paredao_consumer_write_seconds").record(started.elapsed().as_secs_f64());
        metrics::counter!("paredao_consumer_votes_persisted_total").increment(applied.votes);
        metrics::counter!("paredao_consumer_messages_total", "outcome" => "applied").increment(applied.batches as u64);
        if applied.duplicates > 0 {
            metrics::counter!("paredao_consumer_messages_total", "outcome" => "duplicate").increment(applied.duplicates as u64);
            tracing::info!(duplicates = applied.duplicates, "skipped batches already counted (redeliveries)");
        }
        if applied.replays > 0 {
            metrics::counter!("paredao_consumer_votes_discarded_total", "reason" => "captcha_already_used").increment(applied.replays);
            tracing::warn!(votes = applied.replays, "discarded votes whose captcha challenge was already counted (a replay accepted by two replicas at once)");
        }
        let now_ms = Utc::now().timestamp_millis();
        for b in &batches {
            metrics::histogram!("paredao_consumer_lag_seconds").record((now_ms - b.sealed_at_ms).max(0) as f64 / 1000.0);
        }
        tracing::debug!(messages = batches.len(), votes = applied.votes, "counted");

        for delivery in to_ack {
            delivery.ack(BasicAckOptions::default()).await?;
        }
        Ok(())
    }
}
