//! Adaptive difficulty: the work a client must do grows with how fast it has been voting.
//!
//! Each client is known by its address and by its browser cookie; each key keeps a count of
//! challenges taken that decays exponentially (time constant `window_secs`). The harder of the
//! two keys' difficulties applies, so a script rotating cookies is caught by its address and
//! one behind a shared address (a household, a mobile carrier) by its cookie... only as far as
//! it keeps its cookie; a person voting at human speed stays at `base`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use voting::configuration::DifficultySettings;

const SHARDS: usize = 16;

pub struct Difficulty {
    settings: DifficultySettings,
    shards: Vec<Mutex<HashMap<String, (f64, Instant)>>>,
}

impl Difficulty {
    pub fn new(settings: DifficultySettings) -> Self {
        Self { settings, shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect() }
    }

    fn shard(&self, key: &str) -> &Mutex<HashMap<String, (f64, Instant)>> {
        let h = key.bytes().fold(0usize, |h, b| h.wrapping_mul(31).wrapping_add(b as usize));
        &self.shards[h % SHARDS]
    }

    /// Counts one challenge for `key` and returns its recent count (decayed).
    fn touch(&self, key: &str, now: Instant) -> f64 {
        let tau = self.settings.window_secs.max(1) as f64;
        let mut shard = self.shard(key).lock().expect("lock");
        let entry = shard.entry(key.to_string()).or_insert((0.0, now));
        let elapsed = now.saturating_duration_since(entry.1).as_secs_f64();
        entry.0 = entry.0 * (-elapsed / tau).exp() + 1.0;
        entry.1 = now;
        entry.0
    }

    /// The `maxnumber` of the next challenge for a client known by `keys`, counting this one.
    pub fn next(&self, keys: &[&str], now: Instant) -> u64 {
        let recent = keys.iter().map(|k| self.touch(k, now)).fold(0.0, f64::max);
        let n = self.for_recent(recent);
        metrics::histogram!("paredao_captcha_max_number").record(n as f64);
        n
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
        for shard in &self.shards {
            shard.lock().expect("lock").retain(|_, (_, at)| now.saturating_duration_since(*at).as_secs_f64() < horizon);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn difficulty() -> Difficulty {
        Difficulty::new(DifficultySettings { base: 1000, max: 1_000_000, window_secs: 60, free_per_window: 5, growth: 2.0 })
    }

    #[test]
    fn a_person_at_human_speed_stays_at_the_base() {
        let d = difficulty();
        let t0 = Instant::now();
        for i in 0..30 {
            // One vote every 20 s: about 3 per minute.
            assert_eq!(d.next(&["ip", "cookie"], t0 + Duration::from_secs(20 * i)), 1000);
        }
    }

    #[test]
    fn a_fast_client_pays_more_and_more_then_it_falls_back_when_it_slows_down() {
        let d = difficulty();
        let t0 = Instant::now();
        let mut last = 0;
        let mut rising = Vec::new();
        for i in 0..20 {
            last = d.next(&["ip"], t0 + Duration::from_millis(100 * i));
            rising.push(last);
        }
        assert!(rising.windows(2).all(|w| w[1] >= w[0]), "{rising:?}");
        assert_eq!(last, 1_000_000, "capped at max");
        // Ten minutes later it is back near the base.
        assert!(d.next(&["ip"], t0 + Duration::from_secs(600)) <= 2000);
    }

    #[test]
    fn the_harder_of_address_and_cookie_applies() {
        let d = difficulty();
        let t0 = Instant::now();
        for i in 0..15 {
            d.next(&["ip-1", &format!("cookie-{i}")], t0);
        }
        assert!(d.next(&["ip-1", "cookie-new"], t0) > 1000, "a script rotating cookies is known by its address");
    }
}
