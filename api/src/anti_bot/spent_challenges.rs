//! Challenges already spent, so each one buys a single vote across the whole deployment.
//!
//! Each replica keeps the ids it has seen in memory until they expire (a challenge is worthless
//! after that anyway), and tells every other replica through a RabbitMQ fanout exchange
//! (`<queue>.spent`): a replay sent to another replica is refused there as soon as the news
//! has arrived, a few milliseconds later. No database call per vote. A replay that beats the
//! news (or reaches a replica that restarted or forgot) is accepted here but not counted: the
//! vote carries its challenge, and the store counts each challenge once (`voting::store`).
//!
//! That backstop is what lets this set be a cache rather than the judge:
//! - A spend is a `Spend` guard. Only once its vote is durable (`Spend::keep`, after the
//!   broker's confirm) is it announced to the other replicas; a vote that ends any other way
//!   (a 503, a client gone before the answer) releases its challenge here when the guard drops,
//!   and no other replica ever heard of it, so the viewer's retry with the same solved
//!   challenge is accepted anywhere. Should both copies have reached the queue, the store
//!   counts one. (Announcing the spend before the confirm let other replicas refuse a replay
//!   sent right after the 202, but when the broker died between the announcement and the
//!   release, they refused the retry of a vote never counted: the chaos suite lost 10 votes.)
//! - So a replay sent to another replica right after its 202 may beat the news and be
//!   accepted, and not counted. The news leaves at most `GOSSIP_LINGER` after the confirm: one
//!   message per few milliseconds carries every spend kept meanwhile (a message per vote cost
//!   RabbitMQ and lapin's threads more than the votes themselves).
//! - The set is bounded (`captcha.spent_remembered_max`): at the record peak every replica would otherwise
//!   hold every spend of the deployment for a challenge's lifetime (25,000/s × 300 s = 7.5 M
//!   ids, ~300 MB). Past the bound the ids nearest their expiry are forgotten first; a replay
//!   of one of them is accepted and then not counted.
//!
//! Ids are held as 128-bit numbers (the challenge's number, `captcha`, the same key the store
//! uses).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use lapin::options::{BasicConsumeOptions, BasicPublishOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::Level;
use voting::broker::Topology;
use voting::challenge_key::ChallengeKey;
use voting::configuration::BrokerSettings;
use voting::health::Dependency;
use voting::reconnect::{self, Session};

use crate::bounded_map::lock;

const SHARDS: usize = 16;

/// The least time between two announcements: a spend is announced at once after a quiet spell,
/// at most this much later under load.
const GOSSIP_LINGER: Duration = Duration::from_millis(5);

/// Ids with the unix second they expire at.
pub struct SpentChallenges {
    shards: Vec<Mutex<HashMap<Key, u32>>>,
    per_shard: usize,
    news: mpsc::UnboundedSender<(ChallengeKey, i64)>,
    /// This replica's id in its news.
    me: u64,
    /// Subscribed to the other replicas' news (readiness waits for it).
    listening: Dependency,
}

/// One announcement: challenges spent, with the unix second each expires at.
#[derive(Debug, Default, Serialize, Deserialize)]
struct SpentNews {
    /// The replica that sent it: the fanout hands a replica its own news too, which it skips.
    #[serde(default)]
    from: u64,
    ids: Vec<(ChallengeKey, i64)>,
}

/// A challenge spent by a vote still in progress. Dropped without `keep`, it is released.
#[must_use = "a spend not kept is released when dropped"]
pub struct Spend {
    spent: Arc<SpentChallenges>,
    id: ChallengeKey,
    expires_at: i64,
    kept: bool,
}

impl Spend {
    /// The challenge's id (its number), which the vote carries.
    pub fn id(&self) -> ChallengeKey {
        self.id
    }

    /// When the challenge expires (unix seconds), which the vote carries too.
    pub fn expires_at(&self) -> i64 {
        self.expires_at
    }

    /// The vote is durable: the challenge stays spent, and the other replicas are told.
    pub fn keep(mut self) {
        self.kept = true;
        let _ = self.spent.news.send((self.id, self.expires_at));
    }
}

impl Drop for Spend {
    fn drop(&mut self) {
        if !self.kept {
            self.spent.release(self.id);
        }
    }
}

impl SpentChallenges {
    /// The set alone, remembering at most `max_remembered` ids; what it learns to tell others
    /// comes out of the returned receiver.
    pub fn new(max_remembered: usize) -> (Arc<Self>, mpsc::UnboundedReceiver<(ChallengeKey, i64)>) {
        let (news, outbox) = mpsc::unbounded_channel();
        let shards = (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect();
        // A hash map holds at most 7/8 of its (power of two) buckets before it doubles: a
        // bound just under such a size wastes no half-empty table (20 bytes a bucket).
        let wanted = (max_remembered / SHARDS).max(1);
        let buckets = (wanted * 8 / 7).next_power_of_two();
        let per_shard = if buckets / 8 * 7 <= wanted { buckets / 8 * 7 } else { buckets / 16 * 7 }.max(1);
        let me = u64::from_le_bytes(uuid::Uuid::new_v4().as_bytes()[..8].try_into().unwrap_or_default()) | 1;
        (Arc::new(Self { shards, per_shard, news, me, listening: Dependency::new() }), outbox)
    }

    fn shard(&self, key: Key) -> &Mutex<HashMap<Key, u32>> {
        // The low byte of a challenge's sequence (or of a digest): challenges issued in a row go
        // to shards in turn.
        &self.shards[usize::from(key[0]) % SHARDS]
    }

    /// Spends challenge `id`: a guard the first time, `None` if it was spent before (here or,
    /// once the news arrived, on another replica).
    pub fn spend(self: &Arc<Self>, id: ChallengeKey, expires_at: i64) -> Option<Spend> {
        if !self.insert(id.to_le_bytes(), expires_at) {
            return None;
        }
        Some(Spend { spent: self.clone(), id, expires_at, kept: false })
    }

    /// Records a spend another replica announced.
    fn learn(&self, id: ChallengeKey, expires_at: i64) {
        self.insert(id.to_le_bytes(), expires_at);
    }

    /// Inserts `key`; true if it was not there. Keeps the shard within its bound.
    fn insert(&self, key: Key, expires_at: i64) -> bool {
        let mut shard = lock(self.shard(key));
        if shard.len() >= self.per_shard && !shard.contains_key(&key) {
            make_room(&mut shard, unix_u32(chrono::Utc::now().timestamp()), self.per_shard);
        }
        shard.insert(key, unix_u32(expires_at)).is_none()
    }

    fn release(&self, id: ChallengeKey) {
        let key = id.to_le_bytes();
        lock(self.shard(key)).remove(&key);
    }

    pub fn purge(&self, now_unix: i64) {
        let now_unix = unix_u32(now_unix);
        let mut total = 0;
        for shard in &self.shards {
            let mut s = lock(shard);
            s.retain(|_, exp| *exp >= now_unix);
            total += s.len();
        }
        metrics::gauge!("paredao_captcha_spent_challenges").set(total as f64);
    }

    pub fn is_listening(&self) -> bool {
        self.listening.is_up()
    }

    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| lock(s).len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A challenge's 128 bits as bytes (`ChallengeKey::to_le_bytes`): 1-aligned, so an entry with
/// its expiry takes 20 bytes (a `u128` key is 16-aligned and pads every entry to 32).
type Key = [u8; 16];

/// A unix second as 4 bytes (good until 2106), which keeps an entry at 20 bytes.
fn unix_u32(t: i64) -> u32 {
    t.clamp(0, i64::from(u32::MAX)) as u32
}

/// Frees room in a full shard: the expired ids, and if that is not enough, half of them, those
/// nearest their expiry (a walk of the shard, once per `bound / 2` inserts at most).
fn make_room(shard: &mut HashMap<Key, u32>, now_unix: u32, bound: usize) {
    shard.retain(|_, exp| *exp >= now_unix);
    if shard.len() < bound {
        return;
    }
    let mut expiries: Vec<u32> = shard.values().copied().collect();
    let middle = expiries.len() / 2;
    let (_, cut, _) = expiries.select_nth_unstable(middle);
    let cut = *cut;
    // Ids at or before the median, until half are gone: many share one expiry second.
    let mut to_forget = shard.len() - bound / 2;
    shard.retain(|_, exp| {
        let forget = to_forget > 0 && *exp <= cut;
        to_forget -= usize::from(forget);
        !forget
    });
    metrics::counter!("paredao_captcha_spent_forgotten_early_total").increment((bound - bound / 2) as u64);
}

/// How often expired ids are purged.
const PURGE_EVERY: Duration = Duration::from_secs(5);

/// Publishes this replica's spends and learns the others', reconnecting with backoff; purges
/// expired ids every few seconds. Runs until `stop`.
pub fn spawn_gossip(
    spent: Arc<SpentChallenges>,
    outbox: mpsc::UnboundedReceiver<(ChallengeKey, i64)>,
    broker: BrokerSettings,
    stop: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    let purger = {
        let spent = spent.clone();
        voting::periodic::spawn_every(PURGE_EVERY, stop.clone(), move || {
            spent.purge(chrono::Utc::now().timestamp());
            std::future::ready(())
        })
    };
    let gossip = Gossip { topology: Topology::new(&broker), broker, spent, outbox, pending: Vec::new() };
    tokio::spawn(async move {
        reconnect::supervise(gossip, &stop).await;
        let _ = purger.await;
    })
}

/// The news of spent challenges, both ways, on a connection of its own.
struct Gossip {
    broker: BrokerSettings,
    topology: Topology,
    spent: Arc<SpentChallenges>,
    outbox: mpsc::UnboundedReceiver<(ChallengeKey, i64)>,
    /// Spends received from the outbox and not yet announced.
    pending: Vec<(ChallengeKey, i64)>,
}

impl Session for Gossip {
    type Connection = (Connection, Channel, lapin::Consumer);
    type Error = lapin::Error;
    const CANNOT_CONNECT: &'static str = "spent-challenge gossip lost its broker connection; reconnecting";
    const LOST: &'static str = "spent-challenge gossip lost its broker connection; reconnecting";
    // The publishing link logs the same outage at ERROR.
    const LEVEL: Level = Level::WARN;

    fn health(&self) -> &Dependency {
        &self.spent.listening
    }

    async fn connect(&mut self) -> lapin::Result<(Connection, Channel, lapin::Consumer)> {
        let connection = voting::broker::connect(&self.broker, "paredao-api-spent").await?;
        let channel = connection.create_channel().await?;
        let queue = self.topology.listen_to_spent(&channel).await?;
        let incoming = channel
            .basic_consume(
                queue,
                "".into(),
                BasicConsumeOptions { no_ack: true, ..Default::default() },
                FieldTable::default(),
            )
            .await?;
        Ok((connection, channel, incoming))
    }

    async fn serve(
        &mut self,
        // The connection is held for as long as the session runs.
        (_connection, channel, mut incoming): (Connection, Channel, lapin::Consumer),
        stop: &CancellationToken,
    ) -> lapin::Result<()> {
        let spent = &self.spent;
        let mut last_sent = tokio::time::Instant::now() - GOSSIP_LINGER;
        // Set while spends wait for the next slot to be announced in.
        let mut deadline: Option<tokio::time::Instant> = None;
        loop {
            let publish_now = tokio::select! {
                _ = stop.cancelled() => return Ok(()),
                n = self.outbox.recv_many(&mut self.pending, 1000) => {
                    if n == 0 { return Ok(()); }
                    // After a quiet spell at once; under load at most once per linger.
                    let slot = last_sent + GOSSIP_LINGER;
                    if tokio::time::Instant::now() >= slot { true } else { deadline = Some(slot); false }
                }
                _ = async { if let Some(d) = deadline { tokio::time::sleep_until(d).await } }, if deadline.is_some() => true,
                delivery = incoming.next() => {
                    let Some(delivery) = delivery else { return Err(lapin::Error::from(lapin::ErrorKind::InvalidConnectionState(lapin::ConnectionState::Closed))) };
                    if let Ok(news) = serde_json::from_slice::<SpentNews>(&delivery?.data)
                        && news.from != spent.me
                    {
                        for (id, exp) in news.ids { spent.learn(id, exp); }
                    }
                    false
                }
            };
            if publish_now {
                while let Ok(more) = self.outbox.try_recv() {
                    self.pending.push(more);
                }
                deadline = None;
                if !self.pending.is_empty() {
                    last_sent = tokio::time::Instant::now();
                    let body =
                        serde_json::to_vec(&SpentNews { from: spent.me, ids: std::mem::take(&mut self.pending) })
                            .expect("serializes");
                    channel
                        .basic_publish(
                            self.topology.spent_exchange.as_str().into(),
                            "".into(),
                            BasicPublishOptions::default(),
                            &body,
                            BasicProperties::default(),
                        )
                        .await?;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(n: u64) -> ChallengeKey {
        ChallengeKey::issued(1, n)
    }

    #[test]
    fn a_challenge_is_spent_once_and_forgotten_after_it_expires() {
        let (spent, mut outbox) = SpentChallenges::new(1_000_000);
        let kept = spent.spend(k(0xab12), 100).expect("fresh");
        assert!(spent.spend(k(0xab12), 100).is_none(), "spent, even before its vote is durable");
        assert!(outbox.try_recv().is_err(), "not announced before its vote is durable");
        kept.keep();
        assert_eq!(outbox.try_recv().unwrap(), (k(0xab12), 100), "announced once kept");
        assert!(spent.spend(k(0xab12), 100).is_none());
        assert!(outbox.try_recv().is_err(), "a refused replay is not announced");
        spent.learn(k(0xcd34), 50);
        assert!(spent.spend(k(0xcd34), 50).is_none(), "a spend learned from another replica counts");
        spent.purge(60);
        assert_eq!(spent.len(), 1);
        assert!(spent.spend(k(0xcd34), 50).is_some());
    }

    #[test]
    fn a_spend_whose_vote_failed_is_released_for_the_retry_and_never_announced() {
        let (spent, mut outbox) = SpentChallenges::new(1_000_000);
        let first = spent.spend(k(0xef56), 100).expect("fresh");
        assert_eq!((first.id(), first.expires_at()), (k(0xef56), 100));
        drop(first); // a 503, or the client gone
        assert!(outbox.try_recv().is_err(), "no other replica hears of it, so none refuses the retry");
        let retry = spent.spend(k(0xef56), 100).expect("the same solved challenge may be sent again");
        retry.keep();
        assert_eq!(outbox.try_recv().unwrap().0, k(0xef56));
        assert!(outbox.try_recv().is_err(), "announced once, for the copy that was kept");
    }

    #[test]
    fn the_set_never_holds_more_than_its_bound() {
        let bound = 1_600;
        let (spent, _outbox) = SpentChallenges::new(bound);
        let far = chrono::Utc::now().timestamp() + 3_600;
        for i in 0..20_000u64 {
            spent.learn(k(i), far + i as i64);
        }
        // Many spends expire in the same second: eviction still keeps half, not none.
        for i in 0..20_000u64 {
            spent.learn(k(1_000_000 + i), far);
        }
        assert!(spent.len() >= bound / 4, "{} ids held", spent.len());
        for i in 20_000..40_000u64 {
            spent.learn(k(i), far + i as i64);
        }
        assert!(spent.len() <= bound, "{} ids held", spent.len());
        assert!(spent.len() >= bound / 4, "evicts in halves, not all at once: {}", spent.len());
        // The most recent ids are the ones kept.
        assert!(spent.spend(k(39_999), far + 39_999).is_none());
    }
}
