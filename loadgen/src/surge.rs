//! The opening minute: votes offered at a fixed rate over thousands of connections, whatever the
//! answers do (open loop), and how soon votes flow at full rate once the surge ends.
//!
//! Each vote's latency runs from when it was due, so a stack that stalls shows it. Outcomes are
//! kept apart: accepted (202), refused before any work (503 `overloaded`, 429: the captcha goes
//! back into the pool, as a page would resend it), failed (any other status, or no HTTP answer,
//! by kind), and skipped (due while every connection of the load generator was busy: the
//! client's own limit, not the server's answer).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::http1::Connection;
use crate::load::{histogram, record};
use crate::voter::{Split, Target};

/// What one open-loop step measured.
pub struct Step {
    pub rate: u64,
    pub connections: usize,
    pub elapsed: Duration,
    pub accepted: Histogram<u64>,
    /// Refusals by kind (`503 overloaded`, `429 rate_limited`), each with its latencies.
    pub refused: BTreeMap<String, Histogram<u64>>,
    /// Everything else by kind (`503 unavailable`, `502`, `connection_reset`, ...).
    pub failed: BTreeMap<String, u64>,
    pub skipped: u64,
    /// From when a vote was due to when it was sent: the load generator's own delay.
    pub client_lag: Histogram<u64>,
    /// When the last vote was due: the end of the surge.
    pub offered_until: Instant,
    /// The bystander's answers by status, and their latency (see `Bystander`).
    pub bystander: BTreeMap<String, u64>,
    pub bystander_latency: Histogram<u64>,
}

impl Step {
    fn new(rate: u64, connections: usize) -> Self {
        Self {
            rate,
            connections,
            elapsed: Duration::ZERO,
            accepted: histogram(),
            refused: BTreeMap::new(),
            failed: BTreeMap::new(),
            skipped: 0,
            client_lag: histogram(),
            offered_until: Instant::now(),
            bystander: BTreeMap::new(),
            bystander_latency: histogram(),
        }
    }

    pub fn per_second(&self, n: u64) -> f64 {
        n as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    pub fn goodput(&self) -> f64 {
        self.per_second(self.accepted.len())
    }

    pub fn failed_total(&self) -> u64 {
        self.failed.values().sum()
    }
}

/// Connections opened before the step, all at once, as a crowd's would be.
async fn open_connections(target: &Target, n: usize) -> (Vec<Connection>, BTreeMap<String, u64>) {
    let opened = futures_join(
        (0..n)
            .map(|_| {
                let mut c = target.connect();
                async move { c.open().await.map(|_| c) }
            })
            .collect(),
    )
    .await;
    let mut failed = BTreeMap::new();
    let mut ready = Vec::with_capacity(n);
    for o in opened {
        match o {
            Ok(c) => ready.push(c),
            Err(e) => *failed.entry(format!("connect: {}", crate::http1::failure_kind(&e))).or_default() += 1,
        }
    }
    (ready, failed)
}

/// Runs the futures concurrently, a few hundred at a time (a connect storm of thousands at once
/// would only measure the kernel's SYN queue).
async fn futures_join<T: Send + 'static>(
    futures: Vec<impl std::future::Future<Output = T> + Send + 'static>,
) -> Vec<T> {
    let mut out = Vec::with_capacity(futures.len());
    let mut iter = futures.into_iter();
    loop {
        let wave: Vec<_> = iter.by_ref().take(256).map(tokio::spawn).collect();
        if wave.is_empty() {
            return out;
        }
        for h in wave {
            if let Ok(v) = h.await {
                out.push(v);
            }
        }
    }
}

/// Solved challenges, fetched ahead so that the step measures votes, not challenge fetches.
async fn prefill(target: &Target, n: usize) -> Vec<String> {
    let per = n / 16 + 1;
    let fetched = futures_join(
        (0..16)
            .map(|_| {
                let target = target.clone();
                async move {
                    let mut conn = target.connect();
                    let mut got = Vec::with_capacity(per);
                    for _ in 0..per {
                        if let Ok(c) = target.solved(&mut conn).await {
                            got.push(c);
                        }
                    }
                    got
                }
            })
            .collect(),
    )
    .await;
    fetched.into_iter().flatten().collect()
}

/// A vote claimed more than this after it was due is dropped (counted as skipped): the load
/// generator itself could not keep up, and a crowd does not wait for it.
const MAX_CLIENT_LAG: Duration = Duration::from_secs(1);

/// Votes due at `rate` per second for `duration`, over `connections` connections.
///
/// Each connection is a worker that, when free, claims the next due vote, waits for its time
/// and sends it; a vote is due whatever the answers to earlier ones were (open loop), and its
/// latency runs from when it was due. A vote no worker could claim in time is skipped.
pub async fn step(target: &Target, split: &Split, rate: u64, duration: Duration, connections: usize) -> Step {
    let (ready, connect_failures) = open_connections(target, connections).await;
    let mut captchas = prefill(target, ready.len()).await;
    let interval = Duration::from_secs_f64(1.0 / rate as f64);
    let total = (rate as f64 * duration.as_secs_f64()) as u64;
    let claimed = Arc::new(AtomicU64::new(0));
    // One outcome for every worker: a histogram is a few hundred KB, too much to keep one per
    // connection of thousands; the lock is taken once per vote.
    let mut outcome = Step::new(rate, ready.len());
    outcome.failed = connect_failures;
    let outcome = Arc::new(std::sync::Mutex::new(outcome));
    let started = Instant::now() + Duration::from_millis(20);
    let bystander = Bystander::start(&target.base, &target.paredao);
    let workers: Vec<_> = ready
        .into_iter()
        .map(|mut conn| {
            let (target, split, claimed, outcome) = (target.clone(), split.clone(), claimed.clone(), outcome.clone());
            let mut captcha = captchas.pop();
            tokio::spawn(async move {
                loop {
                    let k = claimed.fetch_add(1, Ordering::Relaxed);
                    if k >= total {
                        return;
                    }
                    let due = started + interval.mul_f64(k as f64);
                    let now = Instant::now();
                    if now < due {
                        tokio::time::sleep_until(due.into()).await;
                    } else if now - due > MAX_CLIENT_LAG {
                        outcome.lock().unwrap().skipped += 1;
                        continue;
                    }
                    let lag = due.elapsed();
                    let solution = match target.solution(&mut conn, captcha.take()).await {
                        Ok(c) => c,
                        Err(e) => {
                            *outcome.lock().unwrap().failed.entry(format!("challenge: {e}")).or_default() += 1;
                            continue;
                        }
                    };
                    let answer = target.vote(&mut conn, split.pick(k), &solution).await;
                    let latency = due.elapsed();
                    let mut out = outcome.lock().unwrap();
                    record(&mut out.client_lag, lag);
                    if answer.status == 202 {
                        record(&mut out.accepted, latency);
                        captcha = answer.next.as_ref().and_then(voting::altcha::try_solve);
                    } else if answer.is_refusal() {
                        record(out.refused.entry(answer.kind()).or_insert_with(histogram), latency);
                        // Nothing was spent: a page sends the same solution again.
                        captcha = Some(solution);
                    } else {
                        *out.failed.entry(answer.kind()).or_default() += 1;
                    }
                }
            })
        })
        .collect();
    for w in workers {
        let _ = w.await;
    }
    let mut result = Arc::try_unwrap(outcome).ok().expect("every worker finished").into_inner().unwrap();
    (result.bystander, result.bystander_latency) = bystander.finish();
    result.offered_until = started + duration;
    result.elapsed = duration;
    result
}

/// After a surge that ended at `since`: a closed loop of `connections` voters, timing when each
/// 202 arrives. Returns the seconds from `since` to the first half-second window whose goodput
/// reaches `full_rate` (None if none did within `limit`).
pub async fn recovery(
    target: &Target,
    split: &Split,
    connections: usize,
    full_rate: f64,
    since: Instant,
    limit: Duration,
) -> (Option<f64>, u64) {
    const BUCKET: Duration = Duration::from_millis(100);
    const WINDOW: usize = 5;
    let buckets: Arc<Vec<AtomicU64>> =
        Arc::new((0..(limit.as_millis() / BUCKET.as_millis()) as usize + 1).map(|_| AtomicU64::new(0)).collect());
    let started = since;
    let deadline = started + limit;
    let sent = Arc::new(AtomicU64::new(0));
    let accepted = Arc::new(AtomicU64::new(0));
    let workers: Vec<_> = (0..connections)
        .map(|_| {
            let (target, split, buckets, sent, accepted) =
                (target.clone(), split.clone(), buckets.clone(), sent.clone(), accepted.clone());
            tokio::spawn(async move {
                let mut conn = target.connect();
                let mut next: Option<String> = None;
                while Instant::now() < deadline {
                    let Ok(captcha) = target.solution(&mut conn, next.take()).await else {
                        continue;
                    };
                    let answer =
                        target.vote(&mut conn, split.pick(sent.fetch_add(1, Ordering::Relaxed)), &captcha).await;
                    if answer.status == 202 {
                        accepted.fetch_add(1, Ordering::Relaxed);
                        let i = (started.elapsed().as_millis() / BUCKET.as_millis()) as usize;
                        if let Some(b) = buckets.get(i) {
                            b.fetch_add(1, Ordering::Relaxed);
                        }
                    } else if answer.is_refusal() {
                        next = Some(captcha);
                    }
                    if let Some(c) = answer.next {
                        next = voting::altcha::try_solve(&c);
                    }
                }
            })
        })
        .collect();
    for w in workers {
        let _ = w.await;
    }
    let counts: Vec<u64> = buckets.iter().map(|b| b.load(Ordering::Relaxed)).collect();
    let needed = full_rate * BUCKET.as_secs_f64() * WINDOW as f64;
    let recovered = counts
        .windows(WINDOW)
        .position(|w| w.iter().sum::<u64>() as f64 >= needed)
        .map(|i| i as f64 * BUCKET.as_secs_f64());
    // Every 202, even one that arrived after the limit, is a vote the stack must count.
    (recovered, accepted.load(Ordering::Relaxed))
}

/// What a viewer outside the load generator sees during a step: one vote request every 20 ms on
/// a thread and a connection of its own, blocking I/O, never queued behind the generator's
/// thousands of connections. Its vote carries no captcha, so the API answers 400 at once when
/// nginx and the replica admit it, and 503 `overloaded` when they shed it: the latency is the
/// front door's and the replica's, without the load generator's own lag.
pub struct Bystander {
    stop: Arc<std::sync::atomic::AtomicBool>,
    handle: std::thread::JoinHandle<(BTreeMap<String, u64>, Histogram<u64>)>,
}

impl Bystander {
    pub fn start(base: &str, paredao: &str) -> Self {
        use std::io::{BufRead, BufReader, Read, Write};
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let address = base.trim_start_matches("http://").trim_end_matches('/').to_string();
        let body = r#"{"participant_id":"ana"}"#;
        let request = format!(
            "POST /api/paredoes/{paredao}/votes HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        let flag = stop.clone();
        let handle = std::thread::spawn(move || {
            let mut outcomes = BTreeMap::new();
            let mut latency = histogram();
            let mut conn: Option<BufReader<std::net::TcpStream>> = None;
            while !flag.load(Ordering::Relaxed) {
                let started = Instant::now();
                let answer = (|| -> std::io::Result<u16> {
                    if conn.is_none() {
                        let s = std::net::TcpStream::connect(&address)?;
                        s.set_nodelay(true)?;
                        s.set_read_timeout(Some(Duration::from_secs(10)))?;
                        conn = Some(BufReader::new(s));
                    }
                    let c = conn.as_mut().expect("connected above");
                    c.get_mut().write_all(request.as_bytes())?;
                    let mut line = String::new();
                    c.read_line(&mut line)?;
                    let status = line.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
                    let mut length = 0;
                    loop {
                        line.clear();
                        if c.read_line(&mut line)? == 0 || line == "\r\n" {
                            break;
                        }
                        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                            length = v.trim().parse().unwrap_or(0);
                        }
                    }
                    let mut body = vec![0; length];
                    c.read_exact(&mut body)?;
                    Ok(status)
                })();
                let kind = match answer {
                    Ok(status) => {
                        record(&mut latency, started.elapsed());
                        status.to_string()
                    }
                    Err(e) => {
                        conn = None;
                        crate::http1::failure_kind(&e).to_string()
                    }
                };
                *outcomes.entry(kind).or_default() += 1;
                std::thread::sleep(Duration::from_millis(20).saturating_sub(started.elapsed()));
            }
            (outcomes, latency)
        });
        Self { stop, handle }
    }

    /// Answers by status (`400` admitted, `503` shed) and the latency of all answers.
    pub fn finish(self) -> (BTreeMap<String, u64>, Histogram<u64>) {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().unwrap_or_else(|_| (BTreeMap::new(), histogram()))
    }
}
