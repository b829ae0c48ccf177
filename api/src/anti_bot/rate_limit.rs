//! How often one client may vote, or ask for a challenge: governor's GCRA (generic cell rate
//! algorithm) limiter per key, its state in our bounded map.
//!
//! GCRA keeps a single instant per key (the "theoretical arrival time": when the key's allowance
//! would be used up if requests kept arriving at the steady rate), so a check is one hash lookup
//! and a comparison, and a key's state is a few dozen bytes. governor makes the decision and the
//! wait; we only hold the instants.
//!
//! Why not governor's own keyed store: its default, a DashMap, keeps every key it is asked about
//! until something calls `retain_recent`, so between two purges an attacker with many addresses
//! (one IPv6 /64 holds 2^64) grows it without limit. The keys live instead in a `BoundedMap`
//! (sharded, each shard behind its own mutex, randomly seeded), behind governor's `StateStore`
//! trait: no number of addresses grows it past `max_clients`, and beyond it the least recently
//! seen key is forgotten, which only gives that client its burst back. `api/tests/api/memory.rs`
//! measures it at the bound.
//!
//! Why a governor limiter per check: governor reads the time from its limiter's clock and counts
//! it from the limiter's start, while our callers pass the request's instant (and the tests step
//! time through it). So each check builds governor's limiter (its quota and that instant, no
//! allocation) over a view of the map anchored at the instant; the map keeps absolute instants.
//!
//! Each API replica limits on its own; with N replicas behind nginx a client may get up to N
//! times the rate. nginx's own limit (per address, across replicas) is the coarse guard; this one
//! is the finer, per-client one.

use std::num::{NonZeroU32, NonZeroUsize};
use std::sync::Arc;
use std::time::{Duration, Instant};

use governor::Quota;
use governor::clock::Clock;
use governor::middleware::NoOpMiddleware;
use governor::nanos::Nanos;
use governor::state::StateStore;
use tokio_util::sync::CancellationToken;

use crate::bounded_map::BoundedMap;

pub use voting::configuration::{Rate, RateLimitSettings};

pub struct RateLimiter {
    /// `None` when disabled.
    quota: Option<Quota>,
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

    /// An enabled limiter needs a `per_second` that is a positive number; the configuration
    /// refuses any other when it is parsed. Should one get here all the same, debug builds panic
    /// and release builds log it and limit nothing (nginx's limit still holds) rather than refuse
    /// every request.
    pub fn new(name: &'static str, enabled: bool, rate: Rate, max_clients: NonZeroUsize) -> Self {
        let quota = if enabled { quota(rate) } else { None };
        if enabled && quota.is_none() {
            debug_assert!(false, "rate limit per_second must be a positive number, got {}", rate.per_second);
            tracing::error!(limiter = name, per_second = rate.per_second, "rate limit without a rate: not limiting");
        }
        Self { quota, keys: BoundedMap::new(max_clients), name }
    }

    /// Ok when allowed; Err(retry_after) with how long until the next request would be allowed.
    pub fn check(&self, key: &str, now: Instant) -> Result<(), Duration> {
        let Some(quota) = self.quota else {
            return Ok(());
        };
        let limiter: governor::RateLimiter<&str, KeysAt, At, NoOpMiddleware<Instant>> =
            governor::RateLimiter::new(quota, KeysAt { keys: &self.keys, now }, At(now));
        // Refused requests don't move the arrival time (governor stores nothing then): a client
        // that keeps hammering is allowed again as soon as it slows down to the rate.
        limiter.check_key(&key).map_err(|not_until| not_until.wait_time_from(now))
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

/// The quota for `rate`, or `None` when it means nothing: a `per_second` that is not a positive
/// number, or so small that the burst's window does not fit governor's arithmetic (nanoseconds
/// in 64 bits, ~584 years).
fn quota(rate: Rate) -> Option<Quota> {
    // A burst of 0 would refuse every request, forever: read it as "no burst beyond one".
    let burst = NonZeroU32::new(rate.burst).unwrap_or(NonZeroU32::MIN);
    let period = Duration::try_from_secs_f64(1.0 / rate.per_second).ok()?;
    // One interval past the window: the furthest a key's arrival time is ever reckoned.
    let reach = period.as_nanos().checked_mul(u128::from(burst.get()) + 1)?;
    u64::try_from(reach).ok()?;
    Some(Quota::with_period(period)?.allow_burst(burst))
}

/// The request's instant, as governor's clock: the limiter built for one check starts there and
/// reads it as its now.
#[derive(Clone, Copy)]
struct At(Instant);

impl Clock for At {
    type Instant = Instant;

    fn now(&self) -> Instant {
        self.0
    }
}

/// The map seen from `now`, as governor wants a key's state: nanoseconds after its limiter's
/// start, which is `now` (see `At`).
struct KeysAt<'a> {
    keys: &'a BoundedMap<String, Instant>,
    now: Instant,
}

impl<'a> StateStore for KeysAt<'a> {
    type Key = &'a str;

    fn measure_and_replace<T, F, E>(&self, key: &&'a str, f: F) -> Result<T, E>
    where
        F: Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
    {
        // The shard stays locked from the read to the write: concurrent checks of one key are
        // decided one after the other, none on a stale arrival time.
        let mut shard = self.keys.shard(*key);
        // `get` marks the key as recently used, refused or not: a client hammering away is the
        // last one the bound would forget. An arrival time already past reads as now, which
        // governor treats as a fresh key: the full burst again. It never lies further ahead than
        // one interval past the window, which `quota` makes sure fits in `Nanos`.
        let ahead = shard.get(*key).map(|tat| Nanos::from(tat.saturating_duration_since(self.now)));
        let (outcome, next) = f(ahead)?;
        let tat = self.now + Duration::from_nanos(next.as_u64());
        match shard.get_mut(*key) {
            Some(stored) => *stored = tat,
            // Allocated only for a key seen for the first time (or again after it was
            // forgotten); beyond the bound, this evicts the shard's least recently used key.
            None => {
                shard.insert((*key).to_owned(), tat);
            }
        }
        Ok(outcome)
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
    #[cfg(debug_assertions)]
    #[should_panic(expected = "per_second must be a positive number")]
    fn an_enabled_limiter_without_a_rate_is_a_configuration_error() {
        limiter(0.0, 10);
    }

    #[test]
    fn a_rate_that_means_nothing_has_no_quota() {
        for per_second in [0.0, -1.0, f64::NAN, f64::INFINITY, f64::MIN_POSITIVE, 1e-12] {
            assert!(quota(Rate { per_second, burst: 20 }).is_none(), "per_second {per_second}");
        }
        let quota = quota(Rate { per_second: 5.0, burst: 20 }).expect("the shipped rate");
        assert_eq!((quota.replenish_interval(), quota.burst_size().get()), (Duration::from_millis(200), 20));
    }

    #[test]
    fn concurrent_checks_of_one_key_allow_exactly_its_burst() {
        let limiter = limiter(1.0, 20);
        let now = Instant::now();
        let allowed: usize = std::thread::scope(|scope| {
            let threads: Vec<_> =
                (0..8).map(|_| scope.spawn(|| (0..50).filter(|_| limiter.check("k", now).is_ok()).count())).collect();
            threads.into_iter().map(|t| t.join().unwrap()).sum()
        });
        assert_eq!(allowed, 20);
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
