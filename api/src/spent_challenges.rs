//! Challenges already spent, so each one buys a single vote across the whole deployment.
//!
//! Each replica keeps the ids it has seen in memory until they expire (a challenge is worthless
//! after that anyway), and tells every other replica through a RabbitMQ fanout exchange
//! (`<queue>.spent`): a replay sent to another replica is refused there as soon as the news
//! has arrived, a few milliseconds later. No database call per vote. A replay that beats the
//! news (or reaches a replica that restarted and forgot) is accepted here but not counted: the
//! vote carries its challenge, and the consumer counts each challenge once (`spent_ledger`).
//!
//! Ids are held as 128-bit numbers (the first 32 hex digits of the challenge digest, the same
//! key the consumer uses): at the record peak a replica holds millions of them.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use lapin::options::{
    BasicConsumeOptions, BasicPublishOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, ExchangeKind};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use voting::backoff::Backoff;
use voting::configuration::BrokerSettings;
use voting::spent_ledger::key_of;
use voting::vote::CHALLENGE_KEY_CHARS;

const SHARDS: usize = 16;

/// The least time between two announcements of spends: a spend is announced at once after a
/// quiet spell, at most this much later under load.
const GOSSIP_LINGER: Duration = Duration::from_millis(20);

/// Ids with the unix second they expire at.
pub struct SpentChallenges {
    shards: Vec<Mutex<HashMap<u128, i64>>>,
    news: mpsc::UnboundedSender<(String, i64)>,
    /// Subscribed to the other replicas' news (readiness waits for it).
    listening: AtomicBool,
}

#[derive(Debug, Serialize, Deserialize)]
struct SpentNews {
    ids: Vec<(String, i64)>,
}

impl SpentChallenges {
    /// The set alone; what it learns to tell others comes out of the returned receiver.
    pub fn new() -> (Arc<Self>, mpsc::UnboundedReceiver<(String, i64)>) {
        let (news, outbox) = mpsc::unbounded_channel();
        let shards = (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect();
        (Arc::new(Self { shards, news, listening: AtomicBool::new(false) }), outbox)
    }

    fn shard(&self, key: u128) -> &Mutex<HashMap<u128, i64>> {
        // The keys are digests: their low bits are already uniformly spread.
        &self.shards[(key % SHARDS as u128) as usize]
    }

    /// Spends challenge `id` (its hex digest): true the first time, false if it was spent
    /// before (here or, once the news arrived, on another replica).
    pub fn spend(&self, id: &str, expires_at: i64) -> bool {
        let id = id.get(..CHALLENGE_KEY_CHARS).unwrap_or(id);
        let key = key_of(id);
        let fresh = self.shard(key).lock().expect("lock").insert(key, expires_at).is_none();
        if fresh {
            let _ = self.news.send((id.to_string(), expires_at));
        }
        fresh
    }

    /// Records a spend another replica announced.
    fn learn(&self, id: &str, expires_at: i64) {
        let key = key_of(id.get(..CHALLENGE_KEY_CHARS).unwrap_or(id));
        self.shard(key).lock().expect("lock").insert(key, expires_at);
    }

    pub fn purge(&self, now_unix: i64) {
        let mut total = 0;
        for shard in &self.shards {
            let mut s = shard.lock().expect("lock");
            s.retain(|_, exp| *exp >= now_unix);
            total += s.len();
        }
        metrics::gauge!("paredao_captcha_spent_challenges").set(total as f64);
    }

    pub fn is_listening(&self) -> bool {
        self.listening.load(Ordering::Relaxed)
    }

    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().expect("lock").len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Publishes this replica's spends and learns the others', reconnecting with backoff; purges
/// expired ids every few seconds. Runs until `stop`.
pub fn spawn_gossip(
    spent: Arc<SpentChallenges>,
    mut outbox: mpsc::UnboundedReceiver<(String, i64)>,
    broker: BrokerSettings,
    stop: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let exchange = format!("{}.spent", broker.queue);
        let mut backoff = Backoff::default();
        let mut purge = tokio::time::interval(Duration::from_secs(5));
        let mut pending: Vec<(String, i64)> = Vec::new();
        while !stop.is_cancelled() {
            let session = async {
                let connection = voting::broker::connect(&broker, "paredao-api-spent").await?;
                let channel = connection.create_channel().await?;
                channel
                    .exchange_declare(exchange.as_str().into(), ExchangeKind::Fanout, ExchangeDeclareOptions::default(), FieldTable::default())
                    .await?;
                // A queue of this replica's own: exclusive, gone when it disconnects.
                let queue = channel
                    .queue_declare("".into(), QueueDeclareOptions { exclusive: true, auto_delete: true, ..Default::default() }, FieldTable::default())
                    .await?;
                channel
                    .queue_bind(queue.name().clone(), exchange.as_str().into(), "".into(), QueueBindOptions::default(), FieldTable::default())
                    .await?;
                let mut incoming = channel
                    .basic_consume(queue.name().clone(), "".into(), BasicConsumeOptions { no_ack: true, ..Default::default() }, FieldTable::default())
                    .await?;
                backoff.reset();
                spent.listening.store(true, Ordering::Relaxed);
                let mut last_sent = tokio::time::Instant::now() - GOSSIP_LINGER;
                loop {
                    tokio::select! {
                        _ = stop.cancelled() => return Ok::<(), lapin::Error>(()),
                        _ = purge.tick() => spent.purge(chrono::Utc::now().timestamp()),
                        n = outbox.recv_many(&mut pending, 1000) => {
                            if n == 0 { return Ok(()); }
                            // At most one message per GOSSIP_LINGER: the first spend after a quiet
                            // spell goes out at once (a replay right after a vote is refused by
                            // every replica), and under load one message carries many spends (a
                            // message per vote cost RabbitMQ and lapin's threads more than the
                            // votes themselves). A replay that beats the news is caught by the
                            // consumer.
                            let next_slot = last_sent + GOSSIP_LINGER;
                            if tokio::time::Instant::now() < next_slot {
                                tokio::time::sleep_until(next_slot).await;
                            }
                            while let Ok(more) = outbox.try_recv() { pending.push(more); }
                            last_sent = tokio::time::Instant::now();
                            let body = serde_json::to_vec(&SpentNews { ids: std::mem::take(&mut pending) }).expect("serializes");
                            channel.basic_publish(exchange.as_str().into(), "".into(), BasicPublishOptions::default(), &body, BasicProperties::default()).await?;
                        }
                        delivery = incoming.next() => {
                            let Some(delivery) = delivery else { return Err(lapin::Error::from(lapin::ErrorKind::InvalidConnectionState(lapin::ConnectionState::Closed))) };
                            if let Ok(news) = serde_json::from_slice::<SpentNews>(&delivery?.data) {
                                for (id, exp) in news.ids { spent.learn(&id, exp); }
                            }
                        }
                    }
                }
            };
            let ended = session.await;
            spent.listening.store(false, Ordering::Relaxed);
            match ended {
                Ok(()) => return,
                Err(e) => tracing::warn!(error = %e, "spent-challenge gossip lost its broker connection; reconnecting"),
            }
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(backoff.next_delay()) => {}
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_challenge_is_spent_once_and_forgotten_after_it_expires() {
        let (spent, mut outbox) = SpentChallenges::new();
        assert!(spent.spend("ab12", 100));
        assert!(!spent.spend("ab12", 100));
        assert_eq!(outbox.try_recv().unwrap(), ("ab12".to_string(), 100), "the first spend is announced");
        assert!(outbox.try_recv().is_err(), "a refused replay is not");
        spent.learn("cd34", 50);
        assert!(!spent.spend("cd34", 50), "a spend learned from another replica counts");
        spent.purge(60);
        assert_eq!(spent.len(), 1);
        assert!(spent.spend("cd34", 50));
    }
}
