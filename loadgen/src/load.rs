//! The two ways of loading the stack.
//!
//! Closed loop: N connections, each voting again as soon as its last vote was answered; it
//! measures the most the stack carries, but a slow answer also delays the next request, which
//! hides latency (coordinated omission). The open loop, where votes arrive at a fixed rate
//! whatever the answers do, is `surge.rs`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::voter::{Split, Target};

/// What one phase measured.
pub struct Outcome {
    pub elapsed: Duration,
    pub by_status: BTreeMap<u16, u64>,
    /// Latency in microseconds.
    pub latency: Histogram<u64>,
}

impl Outcome {
    fn new() -> Self {
        Self { elapsed: Duration::ZERO, by_status: BTreeMap::new(), latency: histogram() }
    }

    fn merge(&mut self, other: Outcome) {
        for (s, n) in other.by_status {
            *self.by_status.entry(s).or_default() += n;
        }
        self.latency.add(&other.latency).expect("same bounds");
    }

    pub fn count(&self, status: u16) -> u64 {
        self.by_status.get(&status).copied().unwrap_or(0)
    }

    pub fn total(&self) -> u64 {
        self.by_status.values().sum()
    }

    /// Requests answered otherwise than `ok`.
    pub fn errors(&self, ok: u16) -> u64 {
        self.total() - self.count(ok)
    }

    pub fn per_second(&self, status: u16) -> f64 {
        self.count(status) as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    pub fn ms(&self, quantile: f64) -> f64 {
        self.latency.value_at_quantile(quantile) as f64 / 1000.0
    }

    pub fn max_ms(&self) -> f64 {
        self.latency.max() as f64 / 1000.0
    }
}

pub(crate) fn histogram() -> Histogram<u64> {
    // 1 µs to 60 s, three significant digits.
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid bounds")
}

pub(crate) fn record(h: &mut Histogram<u64>, d: Duration) {
    let _ = h.record((d.as_micros() as u64).clamp(1, 60_000_000));
}

/// Votes over `connections` connections for `duration`, or until `max_votes` were sent.
pub async fn closed_loop_votes(
    target: &Target,
    split: &Split,
    connections: usize,
    duration: Duration,
    max_votes: u64,
) -> Outcome {
    let sent = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + duration;
    let workers: Vec<_> = (0..connections)
        .map(|_| {
            let (target, split, sent) = (target.clone(), split.clone(), sent.clone());
            tokio::spawn(async move {
                let mut outcome = Outcome::new();
                let mut conn = target.connect();
                let mut next: Option<String> = None;
                while Instant::now() < deadline {
                    let k = sent.fetch_add(1, Ordering::Relaxed);
                    if k >= max_votes {
                        break;
                    }
                    let Ok(captcha) = target.solution(&mut conn, next.take()).await else {
                        *outcome.by_status.entry(0).or_default() += 1;
                        continue;
                    };
                    let t = Instant::now();
                    let answer = target.vote(&mut conn, split.pick(k), &captcha).await;
                    record(&mut outcome.latency, t.elapsed());
                    *outcome.by_status.entry(answer.status).or_default() += 1;
                    next = answer.next.as_ref().and_then(voting::altcha::try_solve);
                }
                outcome
            })
        })
        .collect();
    join(workers, started).await
}

/// GETs of `path` over `connections` connections for `duration`.
pub async fn closed_loop_gets(target: &Target, path: &str, connections: usize, duration: Duration) -> Outcome {
    let started = Instant::now();
    let deadline = started + duration;
    let workers: Vec<_> = (0..connections)
        .map(|_| {
            let (target, path) = (target.clone(), path.to_string());
            tokio::spawn(async move {
                let mut outcome = Outcome::new();
                let mut conn = target.connect();
                while Instant::now() < deadline {
                    let t = Instant::now();
                    let status = target.get(&mut conn, &path).await;
                    record(&mut outcome.latency, t.elapsed());
                    *outcome.by_status.entry(status).or_default() += 1;
                }
                outcome
            })
        })
        .collect();
    join(workers, started).await
}

/// Every worker's outcome in one, timed from `started`.
async fn join(workers: Vec<tokio::task::JoinHandle<Outcome>>, started: Instant) -> Outcome {
    let mut total = Outcome::new();
    for w in workers {
        total.merge(w.await.expect("a worker"));
    }
    total.elapsed = started.elapsed();
    total
}
