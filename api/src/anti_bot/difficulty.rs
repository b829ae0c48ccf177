//! Adaptive difficulty: the work a client must do grows with how fast it has been voting.
//!
//! Each client is known by its address and by its browser cookie; each key keeps a count of
//! challenges taken that decays exponentially (time constant `window_secs`). The harder of the
//! two keys' difficulties applies, so a script rotating cookies is caught by its address and
//! one behind a shared address (a household, a mobile carrier) by its cookie... only as far as
//! it keeps its cookie; a person voting at human speed stays at `base`.

use std::net::IpAddr;
use std::time::Instant;

use voting::configuration::DifficultySettings;

use crate::bounded_map::BoundedMap;
use crate::client::ClientId;

/// What a client is known by. Fixed size (an address, or an id we issued), so an entry costs the
/// same whatever the client sent: ~120 bytes with the map's own share, measured at the bound by
/// `api/tests/api/memory.rs`, so `max_clients` 200,000 is ~23 MiB per replica.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClientKey {
    Address(IpAddr),
    Cookie(ClientId),
}

/// A key's count of recent challenges (decayed), as of `at`.
#[derive(Debug, Clone, Copy)]
struct Recent {
    count: f64,
    at: Instant,
}

pub struct Difficulty {
    settings: DifficultySettings,
    /// At most `max_clients` keys; beyond it the least recently seen one is forgotten. That
    /// client starts again at `base`: what a script with that many addresses or cookies gets
    /// for each of them anyway, so the bound costs nothing in protection.
    clients: BoundedMap<ClientKey, Recent>,
}

impl Difficulty {
    pub fn new(settings: DifficultySettings) -> Self {
        let clients = BoundedMap::new(settings.max_clients);
        Self { settings, clients }
    }

    /// Counts one challenge for `key` and returns its recent count (decayed).
    fn touch(&self, key: ClientKey, now: Instant) -> f64 {
        let tau = self.settings.window_secs.max(1) as f64;
        let mut shard = self.clients.shard(&key);
        // `get_mut` marks the key as recently used: a client that keeps asking is never the one
        // forgotten.
        if let Some(recent) = shard.get_mut(&key) {
            let elapsed = now.saturating_duration_since(recent.at).as_secs_f64();
            recent.count = recent.count * (-elapsed / tau).exp() + 1.0;
            recent.at = now;
            return recent.count;
        }
        shard.insert(key, Recent { count: 1.0, at: now });
        1.0
    }

    /// The `maxnumber` of the next challenge for a client known by `keys`, counting this one.
    pub fn next(&self, keys: &[ClientKey], now: Instant) -> u64 {
        let recent = keys.iter().map(|k| self.touch(*k, now)).fold(0.0, f64::max);
        let n = self.for_recent(recent);
        metrics::histogram!("paredao_captcha_max_number").record(n as f64);
        n
    }

    /// How many keys are remembered.
    pub fn len(&self) -> usize {
        self.clients.len()
    }

    pub fn is_empty(&self) -> bool {
        self.clients.is_empty()
    }

    /// The curve itself: `base` up to `free_per_window` recent challenges, then ×`growth` each.
    pub fn for_recent(&self, recent: f64) -> u64 {
        let s = &self.settings;
        let over = (recent - s.free_per_window as f64).max(0.0);
        let n = s.base as f64 * s.growth.powf(over);
        (n.min(s.max as f64) as u64).max(s.base.min(s.max))
    }

    /// Drops clients whose count has decayed to nothing.
    pub fn purge(&self, now: Instant) {
        let horizon = self.settings.window_secs.max(1) as f64 * 10.0;
        self.clients.retain(|_, recent| now.saturating_duration_since(recent.at).as_secs_f64() < horizon);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::num::NonZeroUsize;
    use std::time::Duration;

    fn settings(max_clients: usize) -> DifficultySettings {
        DifficultySettings {
            base: 1000,
            max: 1_000_000,
            window_secs: 60,
            free_per_window: 5,
            growth: 2.0,
            max_clients: NonZeroUsize::new(max_clients).unwrap(),
        }
    }

    fn difficulty() -> Difficulty {
        Difficulty::new(settings(10_000))
    }

    fn ip(i: u32) -> ClientKey {
        ClientKey::Address(IpAddr::V4(i.into()))
    }

    fn cookie(i: u8) -> ClientKey {
        ClientKey::Cookie(crate::client::ClientIds::new(&format!("k{i}")).issue().0)
    }

    #[test]
    fn a_person_at_human_speed_stays_at_the_base() {
        let d = difficulty();
        let t0 = Instant::now();
        for i in 0..30 {
            // One vote every 20 s: about 3 per minute.
            assert_eq!(d.next(&[ip(1), cookie(1)], t0 + Duration::from_secs(20 * i)), 1000);
        }
    }

    #[test]
    fn a_fast_client_pays_more_and_more_then_it_falls_back_when_it_slows_down() {
        let d = difficulty();
        let t0 = Instant::now();
        let mut last = 0;
        let mut rising = Vec::new();
        for i in 0..20 {
            last = d.next(&[ip(1)], t0 + Duration::from_millis(100 * i));
            rising.push(last);
        }
        assert!(rising.windows(2).all(|w| w[1] >= w[0]), "{rising:?}");
        assert_eq!(last, 1_000_000, "capped at max");
        // Ten minutes later it is back near the base.
        assert!(d.next(&[ip(1)], t0 + Duration::from_secs(600)) <= 2000);
    }

    #[test]
    fn the_harder_of_address_and_cookie_applies() {
        let d = difficulty();
        let t0 = Instant::now();
        for i in 0..15 {
            d.next(&[ip(1), cookie(i)], t0);
        }
        assert!(d.next(&[ip(1), cookie(100)], t0) > 1000, "a script rotating cookies is known by its address");
    }

    #[test]
    fn the_map_bound_holds_after_many_distinct_clients_and_a_busy_one_is_kept() {
        let d = Difficulty::new(settings(1_000));
        let t0 = Instant::now();
        for _ in 0..20 {
            d.next(&[ip(1)], t0);
        }
        let busy = d.next(&[ip(1)], t0);
        assert!(busy > 1000);
        for i in 0..100_000 {
            let at = t0 + Duration::from_micros(u64::from(i));
            d.next(&[ip(1_000 + i)], at);
            if i % 50 == 0 {
                // The busy client keeps asking, so it is never the least recently seen.
                d.next(&[ip(1)], at);
            }
        }
        assert!(d.len() <= 1_000, "{} keys", d.len());
        assert!(d.next(&[ip(1)], t0 + Duration::from_millis(100)) >= busy, "the busy client still pays");
    }

    #[test]
    fn purge_forgets_clients_idle_for_ten_time_constants() {
        let d = difficulty();
        let t0 = Instant::now();
        d.next(&[ip(1)], t0);
        d.next(&[ip(2)], t0 + Duration::from_secs(300));
        d.purge(t0 + Duration::from_secs(601));
        assert_eq!(d.len(), 1);
    }
}
