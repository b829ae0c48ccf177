//! How often one client may vote: a GCRA (generic cell rate algorithm) limiter per key, in memory.
//!
//! GCRA keeps a single instant per key (the "theoretical arrival time": when the key's allowance
//! would be used up if requests kept arriving at the steady rate), so a check is one hash lookup
//! and a comparison, and a key's state is a few dozen bytes. The keys are spread over shards,
//! each behind its own mutex, so that concurrent votes rarely wait for one another: at 25,000
//! checks per second a single lock would be the bottleneck.
//!
//! Each API replica limits on its own; with N replicas behind nginx a client may get up to N
//! times the rate. nginx's own limit (per address, across replicas) is the coarse guard; this one
//! is the finer, per-client one.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

/// Enough shards that 25,000 checks per second spread over a few cores seldom meet on one lock,
/// few enough that a purge pass stays cheap.
const SHARDS: usize = 16;

pub use voting::configuration::RateLimitSettings;

pub struct RateLimiter {
    enabled: bool,
    /// Time between two requests at the steady rate.
    interval: Duration,
    /// How far ahead of now a key's theoretical arrival time may run: `burst` intervals.
    window: Duration,
    hasher: RandomState,
    /// Key → theoretical arrival time. A key absent from its shard has its full burst.
    shards: Box<[Mutex<HashMap<String, Instant>>]>,
}

impl RateLimiter {
    /// # Panics
    /// When enabled with a `per_second` that is not a positive, finite number: a limiter that
    /// cannot mean anything is a configuration mistake that should stop start-up, not a silent
    /// "refuse everything" or "allow everything".
    pub fn new(settings: &RateLimitSettings) -> Self {
        let interval = if settings.enabled {
            assert!(
                settings.per_second.is_finite() && settings.per_second > 0.0,
                "rate limit per_second must be a positive number, got {}",
                settings.per_second
            );
            Duration::from_secs_f64(1.0 / settings.per_second)
        } else {
            Duration::ZERO
        };
        // A burst of 0 would refuse every request, forever: read it as "no burst beyond one".
        let burst = settings.burst.max(1);
        Self {
            enabled: settings.enabled,
            interval,
            window: interval * burst,
            // Randomly seeded, so that nobody can choose keys that all land on one shard.
            hasher: RandomState::new(),
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
        }
    }

    /// Ok when allowed; Err(retry_after) with how long until the next request would be allowed.
    pub fn check(&self, key: &str, now: Instant) -> Result<(), Duration> {
        if !self.enabled {
            return Ok(());
        }
        let mut shard = self.shard(key);
        // A key whose arrival time is in the past has its full burst again, as does a new one.
        let arrival = shard.get(key).map_or(now, |&tat| tat.max(now)) + self.interval;
        let ahead = arrival - now;
        if ahead > self.window {
            // Refused requests don't move the arrival time: a client that keeps hammering is
            // allowed again as soon as it slows down to the rate, not punished further.
            return Err(ahead - self.window);
        }
        match shard.get_mut(key) {
            Some(tat) => *tat = arrival,
            // Allocated only for a key seen for the first time (or again after a purge).
            None => {
                shard.insert(key.to_owned(), arrival);
            }
        }
        Ok(())
    }

    /// Drops keys idle long enough that they are back to a full burst (call from a timer).
    pub fn purge(&self, now: Instant) {
        for shard in self.shards.iter() {
            // Forgetting such a key changes nothing: an absent key also has its full burst.
            lock(shard).retain(|_, tat| *tat > now);
        }
    }

    /// How many keys are remembered (clients that voted within their last burst window).
    pub fn len(&self) -> usize {
        self.shards.iter().map(|shard| lock(shard).len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Purges every `every` until `stop` is cancelled. Without it the map would keep one entry
    /// for every client that ever voted.
    pub fn spawn_purger(self: Arc<Self>, every: Duration, stop: CancellationToken) -> tokio::task::JoinHandle<()> {
        voting::periodic::spawn_every(every, stop, move || {
            self.purge(Instant::now());
            metrics::gauge!("paredao_rate_limit_keys").set(self.len() as f64);
            std::future::ready(())
        })
    }

    fn shard(&self, key: &str) -> MutexGuard<'_, HashMap<String, Instant>> {
        let index = self.hasher.hash_one(key) as usize % self.shards.len();
        lock(&self.shards[index])
    }
}

/// A panic while a shard is held cannot leave its map half-updated (each change is one insert or
/// one assignment), so a poisoned shard is still sound: keep limiting rather than fail every vote.
fn lock(shard: &Mutex<HashMap<String, Instant>>) -> MutexGuard<'_, HashMap<String, Instant>> {
    shard.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(per_second: f64, burst: u32) -> RateLimiter {
        RateLimiter::new(&RateLimitSettings { per_second, burst, enabled: true })
    }

    #[test]
    fn a_burst_is_allowed_then_the_next_request_is_refused_for_one_interval() {
        let limiter = limiter(2.0, 3);
        let now = Instant::now();
        for _ in 0..3 {
            assert_eq!(limiter.check("1.2.3.4", now), Ok(()));
        }
        assert_eq!(limiter.check("1.2.3.4", now), Err(Duration::from_millis(500)));
    }

    #[test]
    fn after_waiting_retry_after_the_next_request_is_allowed() {
        let limiter = limiter(10.0, 2);
        let start = Instant::now();
        limiter.check("k", start).unwrap();
        limiter.check("k", start).unwrap();
        let retry_after = limiter.check("k", start).unwrap_err();

        let just_before = start + retry_after - Duration::from_nanos(1);
        assert!(limiter.check("k", just_before).is_err());
        assert_eq!(limiter.check("k", start + retry_after), Ok(()));
        // That one request used the interval that had been refilled, and no more.
        assert!(limiter.check("k", start + retry_after).is_err());
    }

    #[test]
    fn refused_requests_do_not_push_the_next_allowed_one_further_away() {
        let limiter = limiter(1.0, 1);
        let start = Instant::now();
        limiter.check("k", start).unwrap();
        for _ in 0..100 {
            assert_eq!(limiter.check("k", start), Err(Duration::from_secs(1)));
        }
        assert_eq!(limiter.check("k", start + Duration::from_secs(1)), Ok(()));
    }

    #[test]
    fn a_client_at_the_steady_rate_is_never_refused() {
        let limiter = limiter(4.0, 1);
        let start = Instant::now();
        for i in 0..100 {
            assert_eq!(limiter.check("k", start + Duration::from_millis(250) * i), Ok(()));
        }
    }

    #[test]
    fn an_idle_key_gets_its_full_burst_back() {
        let limiter = limiter(10.0, 5);
        let start = Instant::now();
        for _ in 0..5 {
            limiter.check("k", start).unwrap();
        }
        let later = start + Duration::from_millis(500);
        for _ in 0..5 {
            assert_eq!(limiter.check("k", later), Ok(()));
        }
        assert!(limiter.check("k", later).is_err());
    }

    #[test]
    fn keys_are_limited_independently() {
        let limiter = limiter(1.0, 1);
        let now = Instant::now();
        assert_eq!(limiter.check("10.0.0.1", now), Ok(()));
        assert!(limiter.check("10.0.0.1", now).is_err());
        assert_eq!(limiter.check("10.0.0.2", now), Ok(()));
    }

    #[test]
    fn purge_drops_keys_idle_long_enough_to_have_their_full_burst() {
        let limiter = limiter(1.0, 2);
        let start = Instant::now();
        limiter.check("idle", start).unwrap();
        limiter.check("busy", start + Duration::from_secs(2)).unwrap();
        limiter.check("busy", start + Duration::from_secs(2)).unwrap();
        assert_eq!(limiter.len(), 2);

        // "idle" recovered its burst at start + 1 s; "busy" needs until start + 4 s.
        let now = start + Duration::from_secs(3);
        limiter.purge(now);
        assert_eq!(limiter.len(), 1);
        // "busy" kept its state: one interval refilled, not a fresh burst of two.
        assert_eq!(limiter.check("busy", now), Ok(()));
        assert!(limiter.check("busy", now).is_err());

        limiter.purge(start + Duration::from_secs(5));
        assert!(limiter.is_empty());
    }

    #[test]
    fn a_burst_of_zero_still_allows_one_request() {
        let limiter = limiter(1.0, 0);
        let now = Instant::now();
        assert_eq!(limiter.check("k", now), Ok(()));
        assert_eq!(limiter.check("k", now), Err(Duration::from_secs(1)));
    }

    #[test]
    fn a_disabled_limiter_never_refuses_nor_remembers() {
        let limiter = RateLimiter::new(&RateLimitSettings { per_second: 0.0, burst: 0, enabled: false });
        let now = Instant::now();
        for _ in 0..10_000 {
            assert_eq!(limiter.check("k", now), Ok(()));
        }
        assert!(limiter.is_empty());
    }

    #[test]
    #[should_panic(expected = "per_second must be a positive number")]
    fn an_enabled_limiter_without_a_rate_is_a_configuration_error() {
        limiter(0.0, 10);
    }

    #[tokio::test]
    async fn the_purger_stops_when_told() {
        let limiter = Arc::new(limiter(1.0, 1));
        let stop = CancellationToken::new();
        let purger = limiter.clone().spawn_purger(Duration::from_secs(10), stop.clone());
        stop.cancel();
        tokio::time::timeout(Duration::from_secs(1), purger).await.expect("purger stopped").unwrap();
    }
}
