//! What the per-client maps cost at their shipped bounds: filled (and pushed past them) with as
//! many distinct clients as they hold, measured as the growth of this process's resident memory.
//! The figures behind `k8s/api.yaml`'s memory limit; see BENCHMARKS.md for the command.

use std::net::{IpAddr, Ipv6Addr};
use std::time::{Duration, Instant};

use api::anti_bot::difficulty::{ClientKey, Difficulty};
use api::anti_bot::rate_limit::RateLimiter;
use api::client::ClientIds;

fn resident_bytes() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("Linux");
    let pages: usize = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

/// The longest addresses as text (39 characters): the limiters' keys at their largest.
fn address(i: usize) -> IpAddr {
    IpAddr::V6(Ipv6Addr::from(0x2001_db81_1111_2222_3333_4444_0000_0000u128 + 0x1000_1000 + i as u128))
}

struct Measured {
    what: &'static str,
    entries: usize,
    bytes: usize,
}

impl Measured {
    fn report(&self) {
        eprintln!(
            "{:<28} {:>8} entries  {:>6.1} MiB  {:>4} bytes/entry",
            self.what,
            self.entries,
            self.bytes as f64 / (1024.0 * 1024.0),
            self.bytes / self.entries.max(1)
        );
    }
}

#[test]
fn the_per_client_maps_at_their_shipped_bounds_fit_the_pods_memory() {
    let mut settings = voting::configuration::get_configuration().expect("the configuration parses");
    settings.rate_limit.enabled = true;
    let now = Instant::now();
    let mut measured = Vec::new();

    // Each client is two keys: its address and its cookie.
    let before = resident_bytes();
    let difficulty = Difficulty::new(settings.captcha.difficulty.clone());
    let ids = ClientIds::new("key");
    let bound = settings.captcha.difficulty.max_clients.get();
    for i in 0..bound * 6 / 10 {
        let at = now + Duration::from_micros(i as u64);
        difficulty.next(&[ClientKey::Address(address(i)), ClientKey::Cookie(ids.issue().0)], at);
    }
    assert!(difficulty.len() <= bound);
    measured.push(Measured {
        what: "difficulty (addr + cookie)",
        entries: difficulty.len(),
        bytes: resident_bytes() - before,
    });

    for (what, limiter) in [
        ("votes limiter", RateLimiter::votes(&settings.rate_limit)),
        ("challenges limiter", RateLimiter::challenges(&settings.rate_limit)),
    ] {
        let before = resident_bytes();
        let bound = settings.rate_limit.max_clients.get();
        for i in 0..bound * 12 / 10 {
            let _ = limiter.check(&address(i).to_string(), now);
        }
        assert!(limiter.len() <= bound);
        measured.push(Measured { what, entries: limiter.len(), bytes: resident_bytes() - before });
        // Kept alive to the end, as in the API.
        std::mem::forget(limiter);
    }

    // The spent challenges: every vote's, for a challenge's lifetime (pushed past the bound).
    let before = resident_bytes();
    let (spent, outbox) =
        api::anti_bot::spent_challenges::SpentChallenges::new(settings.captcha.spent_remembered_max.get());
    drop(outbox);
    let bound = settings.captcha.spent_remembered_max.get();
    let expires = chrono::Utc::now().timestamp() + 300;
    for i in 0..bound * 12 / 10 {
        if let Some(spend) = spent.spend(voting::challenge_key::ChallengeKey::issued(0x5eed, i as u64 * 7919), expires)
        {
            spend.keep();
        }
    }
    assert!(spent.len() <= bound);
    measured.push(Measured { what: "spent challenges", entries: spent.len(), bytes: resident_bytes() - before });

    let total: usize = measured.iter().map(|m| m.bytes).sum();
    eprintln!("per-client maps at their bounds (resident memory growth):");
    measured.iter().for_each(Measured::report);
    eprintln!("{:<28} {:>8}          {:>6.1} MiB", "total", "", total as f64 / (1024.0 * 1024.0));

    // Only a process of its own measures itself (nextest runs one per test; `cargo test` runs
    // the others on threads beside it).
    if std::env::var_os("NEXTEST").is_some() {
        // k8s/api.yaml's 192 MiB limit: ~31 MiB idle, these ~90 MiB, and the surge's work in
        // flight (batcher queue, connections) with room to spare.
        assert!(total < 120 * 1024 * 1024, "the maps at their bounds take {total} bytes");
    }
}
