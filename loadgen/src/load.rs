//! The two ways of loading the stack.
//!
//! Closed loop: N connections, each voting again as soon as its last vote was answered; it
//! measures the most the stack carries, but a slow answer also delays the next request, which
//! hides latency (coordinated omission). Open loop: votes arrive at a fixed rate whatever the
//! answers do, and each latency is measured from when the vote was due, so a stall shows up.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::http1::Connection;
use crate::voter::{Split, Target};

/// What one phase measured.
pub struct Outcome {
    pub elapsed: Duration,
    pub by_status: BTreeMap<u16, u64>,
    /// Latency in microseconds.
    pub latency: Histogram<u64>,
    /// Open loop only: votes that could not even be sent because too many were in flight.
    pub skipped: u64,
}

impl Outcome {
    fn new() -> Self {
        Self { elapsed: Duration::ZERO, by_status: BTreeMap::new(), latency: histogram(), skipped: 0 }
    }

    fn merge(&mut self, other: Outcome) {
        for (s, n) in other.by_status {
            *self.by_status.entry(s).or_default() += n;
        }
        self.latency.add(&other.latency).expect("same bounds");
        self.skipped += other.skipped;
    }

    pub fn count(&self, status: u16) -> u64 {
        self.by_status.get(&status).copied().unwrap_or(0)
    }

    pub fn total(&self) -> u64 {
        self.by_status.values().sum()
    }

    /// Requests answered otherwise than `ok`, plus those never sent.
    pub fn errors(&self, ok: u16) -> u64 {
        self.total() - self.count(ok) + self.skipped
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

fn histogram() -> Histogram<u64> {
    // 1 µs to 60 s, three significant digits.
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid bounds")
}

fn record(h: &mut Histogram<u64>, d: Duration) {
    let _ = h.record((d.as_micros() as u64).clamp(1, 60_000_000));
}

/// Votes over `connections` connections for `duration`, or until `max_votes` were sent.
pub async fn closed_loop_votes(target: &Target, split: &Split, connections: usize, duration: Duration, max_votes: u64) -> Outcome {
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
                    let captcha = match next.take() {
                        Some(c) => c,
                        None => match target.solved(&mut conn).await {
                            Ok(c) => c,
                            Err(_) => {
                                *outcome.by_status.entry(0).or_default() += 1;
                                continue;
                            }
                        },
                    };
                    let t = Instant::now();
                    let answer = target.vote(&mut conn, split.pick(k), &captcha).await;
                    record(&mut outcome.latency, t.elapsed());
                    *outcome.by_status.entry(answer.status).or_default() += 1;
                    next = answer.next.map(|c| api::captcha::solve(&c));
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

/// Votes arriving at `rate` per second for `duration`; at most `max_in_flight` at once (beyond
/// that a due vote is skipped and counted as an error: the client itself could not keep up).
pub async fn open_loop_votes(target: &Target, split: &Split, rate: u64, duration: Duration, max_in_flight: usize) -> Outcome {
    // Solved challenges ready for use; every accepted vote brings the next one back.
    let pool: Arc<Mutex<Vec<String>>> = Arc::new(Mutex::new(Vec::new()));
    // Idle keep-alive connections; a vote takes one (or opens one) and gives it back.
    let connections: Arc<Mutex<Vec<Connection>>> = Arc::new(Mutex::new(Vec::new()));
    let prefill = (rate as usize / 5).clamp(100, 5000);
    let fetchers: Vec<_> = (0..16)
        .map(|_| {
            let (target, pool) = (target.clone(), pool.clone());
            tokio::spawn(async move {
                let mut conn = target.connect();
                for _ in 0..prefill / 16 + 1 {
                    if let Ok(c) = target.solved(&mut conn).await {
                        pool.lock().unwrap().push(c);
                    }
                }
            })
        })
        .collect();
    for f in fetchers {
        let _ = f.await;
    }

    let outcome = Arc::new(Mutex::new(Outcome::new()));
    let in_flight = Arc::new(AtomicUsize::new(0));
    let interval = Duration::from_secs_f64(1.0 / rate as f64);
    let total = (rate as f64 * duration.as_secs_f64()) as u64;
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(total as usize);
    for k in 0..total {
        let due = started + interval.mul_f64(k as f64);
        tokio::time::sleep_until(due.into()).await;
        if in_flight.load(Ordering::Relaxed) >= max_in_flight {
            outcome.lock().unwrap().skipped += 1;
            continue;
        }
        in_flight.fetch_add(1, Ordering::Relaxed);
        let (target, split, pool, outcome, in_flight, connections) =
            (target.clone(), split.clone(), pool.clone(), outcome.clone(), in_flight.clone(), connections.clone());
        tasks.push(tokio::spawn(async move {
            let idle = connections.lock().unwrap().pop();
            let mut conn = idle.unwrap_or_else(|| target.connect());
            let ready = pool.lock().unwrap().pop();
            let captcha = match ready {
                Some(c) => Some(c),
                None => target.solved(&mut conn).await.ok(),
            };
            let status = match captcha {
                Some(c) => {
                    let answer = target.vote(&mut conn, split.pick(k), &c).await;
                    if let Some(next) = answer.next {
                        pool.lock().unwrap().push(api::captcha::solve(&next));
                    }
                    answer.status
                }
                None => 0,
            };
            // From when the vote was due, not when it was sent.
            let latency = due.elapsed();
            let mut o = outcome.lock().unwrap();
            record(&mut o.latency, latency);
            *o.by_status.entry(status).or_default() += 1;
            drop(o);
            connections.lock().unwrap().push(conn);
            in_flight.fetch_sub(1, Ordering::Relaxed);
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let mut result = Arc::try_unwrap(outcome).ok().expect("every task finished").into_inner().unwrap();
    result.elapsed = started.elapsed();
    result
}
