//! How often one client may vote, or ask for a challenge: a GCRA (generic cell rate algorithm)
//! limiter per key, in memory.
//!
//! GCRA keeps a single instant per key (the "theoretical arrival time": when the key's allowance
//! would be used up if requests kept arriving at the steady rate), so a check is one hash lookup
//! and a comparison, and a key's state is a few dozen bytes. The keys live in a `BoundedMap`
//! (sharded, each shard behind its own mutex), so that concurrent votes rarely wait for one
//! another and no number of addresses can grow it past `max_clients`.
//!
//! Each API replica limits on its own; with N replicas behind nginx a client may get up to N
//! times the rate. nginx's own limit (per address, across replicas) is the coarse guard; this one
//! is the finer, per-client one.

use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::bounded_map::BoundedMap;

pub use voting::configuration::{Rate, RateLimitSettings};

pub struct RateLimiter {
    enabled: bool,
    /// Time between two requests at the steady rate.
    interval: Duration,
    /// How far ahead of now a key's theoretical arrival time may run: `burst` intervals.
    window: Duration,
    /// Key (an address as text) → theoretical arrival time. A key absent has its full burst, so
    /// forgetting one (beyond the bound, or in a purge) only ever gives a client its burst back.
    /// An entry is ~140 bytes with the map's own share (an address of up to 45 characters on
    /// the heap, the instant, the LRU links; measured at the bound by `api/tests/api/memory.rs`).
    keys: BoundedMap<String, Instant>,
    /// What the gauge is called (`paredao_rate_limit_keys{limiter}`).
    name: &'static str,
}

impl RateLimiter {
    /// The limiter of votes.
    pub fn votes(settings: &RateLimitSettings) -> Self {
        Self::new("votes", settings.enabled, settings.votes(), settings.max_clients)
    }

    /// The limiter of challenge requests.
    pub fn challenges(settings: &RateLimitSettings) -> Self {
        Self::new("challenges", settings.enabled, settings.challenges, settings.max_clients)
    }

    /// # Panics
    /// When enabled with a `per_second` that is not a positive, finite number: a limiter that
    /// cannot mean anything is a configuration mistake that should stop start-up, not a silent
    /// "refuse everything" or "allow everything".
    pub fn new(name: &'static str, enabled: bool, rate: Rate, max_clients: NonZeroUsize) -> Self {
        let interval = if enabled {
            assert!(
                rate.per_second.is_finite() && rate.per_second > 0.0,
                "rate limit per_second must be a positive number, got {}",
                rate.per_second
            );
            Duration::from_secs_f64(1.0 / rate.per_second)
        } else {
            Duration::ZERO
        };
        // A burst of 0 would refuse every request, forever: read it as "no burst beyond one".
        let burst = rate.burst.max(1);
        Self { enabled, interval, window: interval * burst, keys: BoundedMap::new(max_clients), name }
    }

    /// Ok when allowed; Err(retry_after) with how long until the next request would be allowed.
    pub fn check(&self, key: &str, now: Instant) -> Result<(), Duration> {
        if !self.enabled {
            return Ok(());
        }
        let mut shard = self.keys.shard(key);
        // `get` marks the key as recently used, refused or not: a client hammering away is the
        // last one the bound would forget. A key whose arrival time is in the past has its full
        // burst again, as does a new one.
        let arrival = shard.get(key).map_or(now, |&tat| tat.max(now)) + self.interval;
        let ahead = arrival - now;
        if ahead > self.window {
            // Refused requests don't move the arrival time: a client that keeps hammering is
            // allowed again as soon as it slows down to the rate, not punished further.
            return Err(ahead - self.window);
        }
        match shard.get_mut(key) {
            Some(tat) => *tat = arrival,
            // Allocated only for a key seen for the first time (or again after it was
            // forgotten); beyond the bound, this evicts the shard's least recently used key.
            None => {
                shard.insert(key.to_owned(), arrival);
            }
        }
        Ok(())
    }

    /// Drops keys idle long enough that they are back to a full burst (call from a timer).
    pub fn purge(&self, now: Instant) {
        // Forgetting such a key changes nothing: an absent key also has its full burst.
        self.keys.retain(|_, tat| *tat > now);
    }

    /// How many keys are remembered (clients seen within their last burst window).
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Purges every `every` until `stop` is cancelled. The bound holds without it; purging
    /// keeps the map at the clients of the last few seconds, far below it.
    pub fn spawn_purger(self: Arc<Self>, every: Duration, stop: CancellationToken) -> tokio::task::JoinHandle<()> {
        voting::periodic::spawn_every(every, stop, move || {
            self.purge(Instant::now());
            metrics::gauge!("paredao_rate_limit_keys", "limiter" => self.name).set(self.len() as f64);
            std::future::ready(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bound(n: usize) -> NonZeroUsize {
        NonZeroUsize::new(n).unwrap()
    }

    fn limiter(per_second: f64, burst: u32) -> RateLimiter {
        RateLimiter::new("test", true, Rate { per_second, burst }, bound(100_000))
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
        let limiter = RateLimiter::new("test", false, Rate { per_second: 0.0, burst: 0 }, bound(10));
        let now = Instant::now();
        for _ in 0..10_000 {
            assert_eq!(limiter.check("k", now), Ok(()));
        }
        assert!(limiter.is_empty());
    }

    #[test]
    fn the_map_bound_holds_after_many_distinct_addresses_and_a_hammering_one_stays_limited() {
        let limiter = RateLimiter::new("test", true, Rate { per_second: 1.0, burst: 2 }, bound(1_000));
        let now = Instant::now();
        limiter.check("198.51.100.1", now).unwrap();
        limiter.check("198.51.100.1", now).unwrap();
        for i in 0..50_000u32 {
            limiter.check(&std::net::Ipv4Addr::from(i).to_string(), now).unwrap();
            if i % 50 == 0 {
                assert!(limiter.check("198.51.100.1", now).is_err(), "still limited after {i} other addresses");
            }
        }
        assert!(limiter.len() <= 1_000, "{} keys", limiter.len());
    }

    #[test]
    fn the_shipped_rates_limit_votes_and_challenges_apart() {
        let settings = voting::configuration::get_configuration().unwrap().rate_limit;
        let (votes, challenges) = (RateLimiter::votes(&settings), RateLimiter::challenges(&settings));
        let now = Instant::now();
        // One challenge per vote at the vote limit, and reloads on top, fit in the challenge rate.
        let mut refused = 0;
        for _ in 0..settings.burst {
            votes.check("k", now).unwrap();
            refused += usize::from(challenges.check("k", now).is_err());
        }
        assert_eq!(refused, 0);
        assert!(settings.challenges.per_second >= 2.0 * settings.per_second);
        assert!(settings.challenges.burst >= settings.burst + 10, "room for reloads");
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
