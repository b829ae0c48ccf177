//! The consume loop: take many messages, fold them into one transaction, ack after the commit.
//!
//! RabbitMQ hands over up to `prefetch` unacked messages. The worker gathers up to
//! `max_messages_per_write` of them (waiting at most `max_wait_ms` after the first), decodes
//! and checks them, and applies all their votes in one MongoDB transaction that also records
//! each batch id and each captcha challenge spent. Only after the commit does it ack them. If it
//! dies before the ack, RabbitMQ redelivers and the store skips the batches whose ids it already
//! holds; a vote whose challenge the store already holds (a replay accepted by two API replicas,
//! a retry after a 503) is not counted again, whichever consumer applies it: every vote counts
//! exactly once, with any number of consumers.
//!
//! Poison never stops the counting. A message that does not decode, or whose votes our API could
//! not have sent (an unknown paredão or participant, a cast time outside the opening, a forged
//! challenge key), is published to the dead-letter queue with its reason in the
//! `x-paredao-reason` header, logged at ERROR and counted, then acked. So is a batch the store
//! itself refuses (a permanent error): a write that fails for good is retried one batch at a
//! time, so that only the batch at fault leaves. A store that is down holds the messages
//! (unacked) and is retried with backoff for as long as it takes; a broker that goes away is
//! reconnected with backoff.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use futures::StreamExt;
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicNackOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions,
};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{Channel, Confirmation, Connection};
use tokio_util::sync::CancellationToken;
use voting::backoff::Backoff;
use voting::broker::{self, Topology};
use voting::configuration::{BrokerSettings, ConsumerSettings};
use voting::health::Dependency;
use voting::paredao::{Paredao, ParedaoId};
use voting::reconnect::{self, Session};
use voting::store::{Applied, Store, StoreError};
use voting::vote::VoteBatch;

use crate::spent_janitor::QueuePosition;
use crate::status::Status;

pub struct Worker {
    consumer: ConsumerSettings,
    broker: BrokerSettings,
    topology: Topology,
    store: Store,
    status: Arc<Status>,
    /// Where in the queue this consumer is (when the store may forget counted challenges).
    position: Arc<QueuePosition>,
    paredoes: tokio::sync::Mutex<Known>,
}

/// The paredões the store holds, as last loaded.
#[derive(Default)]
struct Known {
    by_id: HashMap<ParedaoId, Paredao>,
    loaded_at: Option<Instant>,
}

/// A vote naming a paredão we do not know (or cast outside its opening as we know it) reloads
/// the paredões first, in case it was created or rescheduled since; at most this often, so a
/// flood of poison cannot turn into a flood of reads.
const RELOAD_PAREDOES_AFTER: Duration = Duration::from_secs(1);

/// A write that keeps failing, with an error that does not say "away" or "busy", while the store
/// answers pings is not the store being away: after this many attempts (about 15 s of backoff)
/// its batches are tried one by one, and the one that fails alone is dead-lettered rather than
/// retried forever. An error the store marks as refusing the data itself gives up at once.
const ATTEMPTS_WHILE_REACHABLE: u32 = 8;

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("RabbitMQ: {0}")]
    Broker(#[from] lapin::Error),
    #[error("the broker closed the consumer")]
    ConsumerClosed,
}

/// How one attempt to write a set of batches ended.
enum Written {
    Applied(Applied),
    /// The store refused them for good.
    Refused(StoreError),
    /// Told to stop while the store was down: nothing acked, the broker redelivers.
    Stopped,
}

impl Worker {
    pub fn new(
        consumer: ConsumerSettings,
        broker: BrokerSettings,
        store: Store,
        status: Arc<Status>,
        position: Arc<QueuePosition>,
    ) -> Self {
        Self {
            topology: Topology::new(&broker),
            consumer,
            broker,
            store,
            status,
            position,
            paredoes: tokio::sync::Mutex::new(Known::default()),
        }
    }

    /// Consumes until `stop` is cancelled, reconnecting whenever the broker goes away. On stop
    /// it finishes (writes and acks) the messages it holds, then closes.
    pub async fn run(&self, stop: CancellationToken) {
        reconnect::supervise(self, &stop).await;
        tracing::info!("consumer stopped");
    }

    /// A connection consuming the queue, with a channel for dead letters.
    async fn open(&self) -> Result<Consuming, SessionError> {
        let connection = broker::connect(&self.broker, "paredao-consumer").await?;
        let channel = connection.create_channel().await?;
        channel.basic_qos(self.consumer.prefetch, BasicQosOptions::default()).await?;
        self.topology.declare(&channel).await?;
        let dead_letters = connection.create_channel().await?;
        dead_letters.confirm_select(ConfirmSelectOptions::default()).await?;
        let tag = format!("paredao-consumer-{}", uuid::Uuid::new_v4());
        let deliveries = channel
            .basic_consume(
                self.topology.queue.as_str().into(),
                tag.as_str().into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        if let Err(e) = self.store.ensure_indexes().await {
            tracing::warn!(error = %e, "could not create the store's indexes yet");
        }
        Ok(Consuming { connection, channel, dead_letters, tag, deliveries })
    }

    /// Takes messages `max_messages_per_write` at a time (waiting at most `max_wait_ms` after
    /// the first) and counts them, until `stop`; then stops taking them and closes.
    async fn consume(&self, session: Consuming, stop: &CancellationToken) -> Result<(), SessionError> {
        let Consuming { connection, channel, dead_letters, tag, mut deliveries } = session;
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
            self.handle(held, &dead_letters, stop).await?;
        }
        // Stop taking messages; those prefetched and not acked go back to the queue on close.
        let _ = channel.basic_cancel(tag.as_str().into(), BasicCancelOptions::default()).await;
        let _ = channel.close(200, "consumer stopping".into()).await;
        let _ = connection.close(200, "consumer stopping".into()).await;
        Ok(())
    }

    /// Counts the votes of `held` and acks them; dead-letters what cannot be counted. Returns
    /// without acking if told to stop while the store is down (the broker redelivers).
    async fn handle(
        &self,
        held: Vec<Delivery>,
        dead_letters: &Channel,
        stop: &CancellationToken,
    ) -> Result<(), lapin::Error> {
        let mut good: Vec<(VoteBatch, Delivery)> = Vec::with_capacity(held.len());
        for delivery in held {
            if delivery.redelivered {
                metrics::counter!("paredao_consumer_redeliveries_total").increment(1);
            }
            match self.decode(&delivery).await {
                Ok(batch) => good.push((batch, delivery)),
                Err((reason, detail)) => self.dead_letter(dead_letters, delivery, reason, &detail).await?,
            }
        }
        if good.is_empty() {
            return Ok(());
        }

        let started = Instant::now();
        let batches: Vec<VoteBatch> = good.iter().map(|(b, _)| b.clone()).collect();
        match self.write(&batches, stop).await {
            Written::Stopped => return Ok(()),
            Written::Applied(applied) => {
                self.counted(&applied, &batches, started);
                for (_, delivery) in good {
                    delivery.ack(BasicAckOptions::default()).await?;
                }
            }
            Written::Refused(e) => {
                tracing::warn!(error = %e, messages = good.len(), "the store refuses this write; trying its batches one by one");
                for (batch, delivery) in good {
                    let one = std::slice::from_ref(&batch);
                    match self.write(one, stop).await {
                        Written::Stopped => return Ok(()),
                        Written::Applied(applied) => {
                            self.counted(&applied, one, started);
                            delivery.ack(BasicAckOptions::default()).await?;
                        }
                        Written::Refused(e) => {
                            self.dead_letter(dead_letters, delivery, "store_refused", &e.to_string()).await?
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Decodes a message and checks it against the paredões the store holds; on failure, the
    /// reason (a short code) and the detail.
    async fn decode(&self, delivery: &Delivery) -> Result<VoteBatch, (&'static str, String)> {
        let batch = VoteBatch::decode(&delivery.data).map_err(|e| (e.reason(), e.to_string()))?;
        let mut known = self.paredoes.lock().await;
        let mut checked = batch.check(|id| known.by_id.get(id));
        let stale = known.loaded_at.is_none_or(|at| at.elapsed() >= RELOAD_PAREDOES_AFTER);
        if checked.is_err() && stale {
            match self.store.load_paredoes().await {
                Ok(all) => {
                    known.by_id = all.into_iter().map(|p| (p.id.clone(), p)).collect();
                    known.loaded_at = Some(Instant::now());
                    checked = batch.check(|id| known.by_id.get(id));
                }
                // Not knowing is not proof of poison: keep the message for the write, which
                // waits for the store like any other.
                Err(e) => {
                    tracing::warn!(error = %e, "could not load the paredões to check a batch; counting it unchecked");
                    return Ok(batch);
                }
            }
        }
        checked.map(|()| batch).map_err(|e| (e.reason(), e.to_string()))
    }

    /// Applies `batches`, retrying for as long as the store is away; gives up only when the
    /// store answers and still refuses them.
    async fn write(&self, batches: &[VoteBatch], stop: &CancellationToken) -> Written {
        let mut backoff = Backoff::default();
        let mut attempts_while_reachable = 0;
        loop {
            let e = match self.store.apply(batches).await {
                Ok(applied) => {
                    self.status.store.record(true);
                    return Written::Applied(applied);
                }
                Err(e) => e,
            };
            let reachable = self.store.ping().await.is_ok();
            self.status.store.record(reachable);
            if reachable && !e.is_transient() {
                attempts_while_reachable += 1;
                if e.is_permanent() || attempts_while_reachable >= ATTEMPTS_WHILE_REACHABLE {
                    return Written::Refused(e);
                }
            }
            tracing::warn!(error = %e, messages = batches.len(), reachable, "writing the counters failed; retrying");
            tokio::select! {
                _ = stop.cancelled() => return Written::Stopped,
                _ = tokio::time::sleep(backoff.next_delay()) => {}
            }
        }
    }

    fn counted(&self, applied: &Applied, batches: &[VoteBatch], started: Instant) {
        self.position.finished(batches);
        metrics::histogram!("paredao_consumer_write_seconds").record(started.elapsed().as_secs_f64());
        metrics::counter!("paredao_consumer_votes_persisted_total").increment(applied.votes);
        metrics::counter!("paredao_consumer_messages_total", "outcome" => "applied").increment(applied.batches as u64);
        if applied.duplicates > 0 {
            metrics::counter!("paredao_consumer_messages_total", "outcome" => "duplicate")
                .increment(applied.duplicates as u64);
            tracing::info!(duplicates = applied.duplicates, "skipped batches already counted (redeliveries)");
        }
        if applied.replays > 0 {
            metrics::counter!("paredao_consumer_votes_discarded_total", "reason" => "captcha_already_used")
                .increment(applied.replays);
            tracing::warn!(
                votes = applied.replays,
                "discarded votes whose captcha challenge was already counted (a replay accepted by two replicas at once, or a retry after a 503)"
            );
        }
        let now_ms = Utc::now().timestamp_millis();
        for b in batches {
            metrics::histogram!("paredao_consumer_lag_seconds")
                .record((now_ms - b.sealed_at_ms).max(0) as f64 / 1000.0);
        }
        tracing::debug!(messages = batches.len(), votes = applied.votes, "counted");
    }

    /// Moves `delivery` to the dead-letter queue with why: a copy with the reason in its
    /// headers, confirmed by the broker, then the original acked. Should the copy fail, the
    /// original is rejected, which dead-letters it through the queue's exchange (without the
    /// reason, which the log line still has).
    async fn dead_letter(
        &self,
        channel: &Channel,
        delivery: Delivery,
        reason: &'static str,
        detail: &str,
    ) -> Result<(), lapin::Error> {
        tracing::error!(
            reason,
            error = detail,
            bytes = delivery.data.len(),
            message_id = ?delivery.properties.message_id(),
            "a message that cannot be counted was sent to the dead-letter queue '{}'", self.topology.dead_letter_queue
        );
        metrics::counter!("paredao_consumer_messages_total", "outcome" => "dead_lettered").increment(1);
        metrics::counter!("paredao_consumer_dead_lettered_total", "reason" => reason).increment(1);

        let mut headers = delivery.properties.headers().clone().unwrap_or_default();
        headers.insert(ShortString::from("x-paredao-reason"), AMQPValue::LongString(reason.into()));
        // Bounded: a detail quotes ids from the message, which may be long.
        let detail: String = detail.chars().take(512).collect();
        headers.insert(ShortString::from("x-paredao-detail"), AMQPValue::LongString(detail.as_str().into()));
        headers
            .insert(ShortString::from("x-paredao-queue"), AMQPValue::LongString(self.topology.queue.as_str().into()));
        let properties = delivery.properties.clone().with_headers(headers).with_delivery_mode(2);
        let copied = async {
            channel
                .basic_publish(
                    self.topology.dead_letter_exchange.as_str().into(),
                    "".into(),
                    BasicPublishOptions { mandatory: true, ..Default::default() },
                    &delivery.data,
                    properties,
                )
                .await?
                .await
        };
        match tokio::time::timeout(Duration::from_secs(5), copied).await {
            Ok(Ok(Confirmation::Ack(None))) => delivery.ack(BasicAckOptions::default()).await.map(drop),
            other => {
                tracing::warn!(outcome = ?other.map(|r| r.map(|_| ())), "could not copy a dead letter with its reason; rejecting it instead");
                delivery.nack(BasicNackOptions { requeue: false, ..Default::default() }).await.map(drop)
            }
        }
    }
}

/// A connection consuming the vote queue.
pub struct Consuming {
    connection: Connection,
    channel: Channel,
    /// Dead letters are published (with their reason) on a confirm-mode channel of their own,
    /// and the original is acked only once the broker holds the copy.
    dead_letters: Channel,
    /// This consumer's tag, to cancel it by.
    tag: String,
    deliveries: lapin::Consumer,
}

impl Session for &Worker {
    type Connection = Consuming;
    type Error = SessionError;
    const CANNOT_CONNECT: &'static str = "consuming from RabbitMQ failed; reconnecting";
    const LOST: &'static str = "consuming from RabbitMQ failed; reconnecting";

    fn health(&self) -> &Dependency {
        &self.status.broker
    }

    async fn connect(&mut self) -> Result<Consuming, SessionError> {
        self.open().await
    }

    async fn serve(&mut self, session: Consuming, stop: &CancellationToken) -> Result<(), SessionError> {
        self.consume(session, stop).await
    }
}
