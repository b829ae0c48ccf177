//! The chaos suite's load: votes due at a steady rate until told to stop, each one carried to an
//! answer the way a careful client would, and every outcome tallied for the exactness check.
//!
//! - A vote is due every 1/rate seconds, whatever the answers (open loop); a worker that is free
//!   claims the next due vote. A vote no worker could claim within a second of its time is
//!   `skipped` (not sent at all: the client's own limit while its workers wait out refusals).
//! - **A 429, any 5xx, or no answer at all is retried with the same solved challenge** after
//!   `Retry-After` (1 s when absent), at most `max_retries` times: that is the contract under
//!   test (README, *Under overload*: resending the same vote with the same solution is safe and
//!   counted at most once). A resend answered 403 `captcha_already_used` means an earlier copy
//!   was accepted: the vote counts as accepted (`accepted_on_resend`). Any other answer ends the
//!   vote; the next vote starts from a freshly solved challenge.
//! - `Mode::BothReplicas` sends every vote to both API replicas at once (directly, not through
//!   nginx), with the same solution: a replay faster than the replicas can tell each other.
//! - `replay_every = n`: every n-th due vote is instead an old, already accepted solution sent to
//!   both replicas at once (a replay attack); every answer but 403 is noted, a 202 as
//!   `replays_accepted`.
//! - `accepted` is the number of distinct solutions that got at least one 202, or a 403
//!   `captcha_already_used` to a resend after a retryable answer.

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, HashSet, VecDeque};
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::http1::Connection;
use crate::voter::{Answer, Split, Target};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Mode {
    /// Every vote through nginx, as the page sends it.
    Nginx,
    /// Every vote to both API replicas at once, with the same solution.
    BothReplicas,
}

#[derive(Clone, Debug)]
pub struct Plan {
    pub rate: u64,
    pub connections: usize,
    pub mode: Mode,
    pub replay_every: Option<u64>,
    pub max_retries: u32,
}

/// Accepted votes per this slice of time, from the start of the load.
pub const BUCKET: Duration = Duration::from_millis(100);

/// A vote due more than this long ago is skipped rather than sent late.
const MAX_CLIENT_LAG: Duration = Duration::from_secs(1);

/// How many accepted solutions are kept to be replayed later.
const REPLAY_POOL: usize = 4096;

/// Everything the load saw, shared by its workers and read by the scenario while it runs.
pub struct Tally {
    pub started: Instant,
    stop: AtomicBool,
    accepted: Mutex<HashSet<u64>>,
    accepted_n: AtomicU64,
    buckets: Mutex<Vec<u64>>,
    errors: Mutex<BTreeMap<String, u64>>,
    pub sent: AtomicU64,
    pub retried: AtomicU64,
    pub skipped: AtomicU64,
    pub replays_sent: AtomicU64,
    pub replays_accepted: AtomicU64,
    pub accepted_on_resend: AtomicU64,
    pool: Mutex<VecDeque<String>>,
}

impl Tally {
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            started: Instant::now(),
            stop: AtomicBool::new(false),
            accepted: Mutex::new(HashSet::new()),
            accepted_n: AtomicU64::new(0),
            buckets: Mutex::new(Vec::new()),
            errors: Mutex::new(BTreeMap::new()),
            sent: AtomicU64::new(0),
            retried: AtomicU64::new(0),
            skipped: AtomicU64::new(0),
            replays_sent: AtomicU64::new(0),
            replays_accepted: AtomicU64::new(0),
            accepted_on_resend: AtomicU64::new(0),
            pool: Mutex::new(VecDeque::new()),
        })
    }

    /// No new votes after this; votes in their retries are carried to an answer.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Distinct solutions with at least one 202 so far.
    pub fn accepted(&self) -> u64 {
        self.accepted_n.load(Ordering::Relaxed)
    }

    pub fn errors(&self) -> BTreeMap<String, u64> {
        self.errors.lock().unwrap().clone()
    }

    pub fn buckets(&self) -> Vec<u64> {
        self.buckets.lock().unwrap().clone()
    }

    fn error(&self, kind: String) {
        *self.errors.lock().unwrap().entry(kind).or_default() += 1;
    }

    /// A 202 for `solution`; false when that solution had one already.
    fn accept(&self, solution: &str) -> bool {
        let mut h = DefaultHasher::new();
        solution.hash(&mut h);
        let fresh = self.accepted.lock().unwrap().insert(h.finish());
        if fresh {
            self.accepted_n.fetch_add(1, Ordering::Relaxed);
            let i = (self.started.elapsed().as_millis() / BUCKET.as_millis()) as usize;
            let mut b = self.buckets.lock().unwrap();
            if b.len() <= i {
                b.resize(i + 1, 0);
            }
            b[i] += 1;
            drop(b);
            let mut pool = self.pool.lock().unwrap();
            if pool.len() == REPLAY_POOL {
                pool.pop_front();
            }
            pool.push_back(solution.to_string());
        }
        fresh
    }

    fn old_solution(&self, k: u64) -> Option<String> {
        let pool = self.pool.lock().unwrap();
        if pool.is_empty() {
            return None;
        }
        pool.get((k as usize).wrapping_mul(7919) % pool.len()).cloned()
    }
}

/// One worker's connections: to nginx, and to each replica directly.
struct Conns {
    nginx: Connection,
    replicas: Vec<Connection>,
}

/// The answer that decides a vote sent to several places at once: a 202 if any, else a
/// retryable refusal if any, else the first.
fn decisive(answers: Vec<Answer>) -> Answer {
    let mut answers = answers;
    let pick = answers.iter().position(|a| a.status == 202).or_else(|| answers.iter().position(retryable)).unwrap_or(0);
    answers.swap_remove(pick)
}

/// Safe to resend with the same solution: a refusal (429, 503 `overloaded`), any other 5xx (the
/// vote may have been counted, and a resend is counted at most once), or no answer at all.
fn retryable(a: &Answer) -> bool {
    a.status == 0 || a.status == 429 || (500..600).contains(&a.status)
}

async fn send(target: &Target, conns: &mut Conns, mode: Mode, participant: &str, solution: &str) -> Answer {
    match mode {
        Mode::Nginx => target.vote(&mut conns.nginx, participant, solution).await,
        Mode::BothReplicas => {
            let sends = conns.replicas.iter_mut().map(|c| target.vote(c, participant, solution));
            decisive(join_all(sends).await)
        }
    }
}

/// Runs the futures at once on this task and returns their outputs in order.
async fn join_all<F: std::future::Future>(futures: impl Iterator<Item = F>) -> Vec<F::Output> {
    let mut pinned: Vec<_> = futures.map(Box::pin).collect();
    let mut out: Vec<Option<F::Output>> = (0..pinned.len()).map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (f, slot) in pinned.iter_mut().zip(out.iter_mut()) {
            if slot.is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => *slot = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending { std::task::Poll::Pending } else { std::task::Poll::Ready(()) }
    })
    .await;
    out.into_iter().map(|o| o.expect("every future finished")).collect()
}

/// The load, until `tally.stop()` and every vote in its retries has an answer.
pub async fn run(target: Target, replicas: Vec<String>, split: Split, plan: Plan, tally: Arc<Tally>) {
    let interval = Duration::from_secs_f64(1.0 / plan.rate.max(1) as f64);
    let claimed = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..plan.connections)
        .map(|_| {
            let (target, split, plan, tally, claimed) =
                (target.clone(), split.clone(), plan.clone(), tally.clone(), claimed.clone());
            let replicas: Vec<Connection> = replicas.iter().map(|r| Connection::new(r)).collect();
            tokio::spawn(async move {
                let mut conns = Conns { nginx: target.connect(), replicas };
                let mut in_hand: Option<String> = None;
                while !tally.stopped() {
                    let k = claimed.fetch_add(1, Ordering::Relaxed);
                    let due = started + interval.mul_f64(k as f64);
                    let now = Instant::now();
                    if now < due {
                        tokio::time::sleep_until(due.into()).await;
                    } else if now - due > MAX_CLIENT_LAG {
                        tally.skipped.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    let participant = split.pick(k);
                    if plan.replay_every.is_some_and(|n| k % n == n - 1)
                        && let Some(old) = tally.old_solution(k)
                    {
                        replay(&target, &mut conns, &tally, participant, &old).await;
                        continue;
                    }
                    let solution = match target.solution(&mut conns.nginx, in_hand.take()).await {
                        Ok(s) => s,
                        Err(e) => {
                            tally.error(format!("challenge: {}", short(&e.to_string())));
                            // A stack that is down answers no challenge either: do not spin.
                            tokio::time::sleep(Duration::from_millis(100)).await;
                            continue;
                        }
                    };
                    in_hand = vote(&target, &mut conns, &plan, &tally, k, participant, &solution).await;
                }
            })
        })
        .collect();
    for w in workers {
        let _ = w.await;
    }
}

/// One vote carried to its answer; the solved next challenge when it was accepted.
async fn vote(
    target: &Target,
    conns: &mut Conns,
    plan: &Plan,
    tally: &Tally,
    k: u64,
    participant: &str,
    solution: &str,
) -> Option<String> {
    let mut retries = 0;
    loop {
        tally.sent.fetch_add(1, Ordering::Relaxed);
        let answer = send(target, conns, plan.mode, participant, solution).await;
        if answer.status == 202 {
            tally.accept(solution);
            return answer.next.as_ref().and_then(voting::altcha::try_solve);
        }
        if retries > 0 && answer.status == 403 && answer.code.as_deref() == Some("captcha_already_used") {
            // An earlier copy of this very vote was accepted (and is durable).
            tally.accept(solution);
            tally.accepted_on_resend.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        if retryable(&answer) && retries < plan.max_retries {
            retries += 1;
            tally.retried.fetch_add(1, Ordering::Relaxed);
            // Retry-After, plus up to 250 ms of spread so that the retries do not arrive at once.
            let wait = Duration::from_secs(answer.retry_after.unwrap_or(1)) + Duration::from_millis(k % 250);
            tokio::time::sleep(wait).await;
            continue;
        }
        let after = if retries > 0 { " (after a resend)" } else { "" };
        let gave_up = if retryable(&answer) { " (retries exhausted)" } else { "" };
        tally.error(format!("{}{after}{gave_up}", answer.kind()));
        return None;
    }
}

/// An old accepted solution to both replicas at once: each should answer 403.
async fn replay(target: &Target, conns: &mut Conns, tally: &Tally, participant: &str, old: &str) {
    tally.replays_sent.fetch_add(1, Ordering::Relaxed);
    let sends = conns.replicas.iter_mut().map(|c| target.vote(c, participant, old));
    for answer in join_all(sends).await {
        match answer.status {
            403 => {}
            202 => {
                tally.replays_accepted.fetch_add(1, Ordering::Relaxed);
            }
            _ => tally.error(format!("replay: {}", answer.kind())),
        }
    }
}

fn short(s: &str) -> String {
    s.chars().take(60).collect()
}

/// Seconds from `since` (an offset from the load's start) to the start of the first one-second
/// window whose accepted votes reach `share` of `rate`; None if there is none.
pub fn back_at_rate(buckets: &[u64], since: Duration, rate: u64, share: f64) -> Option<f64> {
    let per_window = (1.0 / BUCKET.as_secs_f64()) as usize;
    let first = (since.as_millis() / BUCKET.as_millis()) as usize;
    let needed = rate as f64 * share;
    (first..buckets.len().saturating_sub(per_window - 1))
        .find(|&i| buckets[i..i + per_window].iter().sum::<u64>() as f64 >= needed)
        .map(|i| ((i as f64 * BUCKET.as_secs_f64()) - since.as_secs_f64()).max(0.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16) -> Answer {
        Answer { status, code: None, failure: None, retry_after: None, next: None }
    }

    #[test]
    fn a_pair_is_decided_by_its_202_else_by_its_retryable_refusal() {
        assert_eq!(decisive(vec![answer(403), answer(202)]).status, 202);
        assert_eq!(decisive(vec![answer(403), answer(503)]).status, 503);
        assert_eq!(decisive(vec![answer(403), answer(400)]).status, 403);
    }

    #[test]
    fn the_rate_is_back_at_the_first_full_window_after_the_fault() {
        // 10 buckets of 100 ms per window; 1,000 votes/s needs all 1,000 in a window.
        let mut buckets = vec![100; 20];
        buckets.extend(vec![0; 30]);
        buckets.extend(vec![100; 20]);
        assert_eq!(back_at_rate(&buckets, Duration::from_secs(3), 1000, 1.0), Some(2.0));
        assert_eq!(back_at_rate(&buckets, Duration::ZERO, 1000, 1.0), Some(0.0));
        assert_eq!(back_at_rate(&buckets[..55], Duration::from_secs(3), 1000, 1.0), None);
    }

    #[test]
    fn a_solution_is_accepted_once_however_many_202s_it_gets() {
        let t = Tally::new();
        assert!(t.accept("a"));
        assert!(!t.accept("a"));
        assert!(t.accept("b"));
        assert_eq!(t.accepted(), 2);
        assert!(t.old_solution(3).is_some());
    }
}
