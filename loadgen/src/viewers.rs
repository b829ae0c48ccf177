//! The viewers: tens of thousands of open pages, each reading the results every two seconds, as
//! `resultado.html` does during the show.
//!
//! One process may hold only so many file descriptors (the hard limit here is 20,000, and only a
//! privileged process may raise it), so the crowd is split over child processes of this same
//! binary (`paredao-load viewers-child ...`), each connecting from a source address of its own
//! (`127.0.1.N`: a port range each, so the crowd does not run out of local ports). Each child
//! prints its outcome as one JSON line; the parent adds them up, histograms included.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::http1::{Connection, failure_kind};
use crate::load::{histogram, record};

/// Viewers per child process: well under the per-process limit, with room for the runtime.
const PER_CHILD: usize = 7_000;

/// One child's (or the whole crowd's) outcome.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Crowd {
    pub viewers: usize,
    /// Reads by outcome: `200`, `503`, `connection_reset`, ...
    pub outcomes: BTreeMap<String, u64>,
    /// Latency of the answered reads, µs, as (value, count) pairs.
    pub latency_us: Vec<(u64, u64)>,
}

impl Crowd {
    fn histogram(&self) -> Histogram<u64> {
        let mut h = histogram();
        for (v, n) in &self.latency_us {
            let _ = h.record_n(*v, *n);
        }
        h
    }
}

/// What the report says of the viewers phase.
#[derive(Debug, Serialize)]
pub struct ViewersReport {
    pub viewers: usize,
    pub seconds: u64,
    pub period_ms: u64,
    pub reads: u64,
    pub reads_per_second: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// Reads not answered 200, by kind.
    pub errors: BTreeMap<String, u64>,
}

/// Runs `viewers` readers of `path` for `seconds` in child processes; adds up their outcomes.
pub fn run(base: &str, path: &str, viewers: usize, seconds: u64, period: Duration) -> anyhow::Result<ViewersReport> {
    let exe = std::env::current_exe()?;
    let children = viewers.div_ceil(PER_CHILD).max(1);
    let mut running = Vec::new();
    for i in 0..children {
        let share = viewers / children + usize::from(i < viewers % children);
        running.push(
            std::process::Command::new(&exe)
                .args([
                    "viewers-child",
                    base,
                    path,
                    &share.to_string(),
                    &seconds.to_string(),
                    &period.as_millis().to_string(),
                ])
                .arg(Ipv4Addr::new(127, 0, 1, (i + 1) as u8).to_string())
                .stdout(std::process::Stdio::piped())
                .spawn()?,
        );
    }
    let mut total = Crowd::default();
    let mut latency = histogram();
    for child in running {
        let out = child.wait_with_output()?;
        anyhow::ensure!(out.status.success(), "a viewers child failed: {}", out.status);
        let crowd: Crowd = serde_json::from_slice(&out.stdout)?;
        total.viewers += crowd.viewers;
        latency.add(crowd.histogram())?;
        for (k, n) in crowd.outcomes {
            *total.outcomes.entry(k).or_default() += n;
        }
    }
    let reads: u64 = total.outcomes.values().sum();
    Ok(ViewersReport {
        viewers: total.viewers,
        seconds,
        period_ms: period.as_millis() as u64,
        reads,
        reads_per_second: reads as f64 / seconds.max(1) as f64,
        p50_ms: latency.value_at_quantile(0.5) as f64 / 1000.0,
        p99_ms: latency.value_at_quantile(0.99) as f64 / 1000.0,
        max_ms: latency.max() as f64 / 1000.0,
        errors: total.outcomes.into_iter().filter(|(k, _)| k != "200").collect(),
    })
}

/// The child's side: `viewers` connections from `source`, each reading once per `period`, their
/// first reads spread evenly over the first period (pages opened over a couple of seconds).
pub async fn child(base: &str, path: &str, viewers: usize, seconds: u64, period: Duration, source: IpAddr) -> Crowd {
    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds);
    let outcome = Arc::new(Mutex::new((BTreeMap::<String, u64>::new(), histogram())));
    let tasks: Vec<_> = (0..viewers)
        .map(|i| {
            let (base, path, outcome) = (base.to_string(), path.to_string(), outcome.clone());
            tokio::spawn(async move {
                let mut conn = Connection::from_source(&base, source);
                let mut due = started + period.mul_f64(i as f64 / viewers.max(1) as f64);
                while due < deadline {
                    tokio::time::sleep_until(due.into()).await;
                    let kind = match conn.request("GET", &path, None).await {
                        Ok(r) => r.status.to_string(),
                        Err(e) => failure_kind(&e).to_string(),
                    };
                    let mut o = outcome.lock().unwrap();
                    if kind == "200" {
                        record(&mut o.1, due.elapsed());
                    }
                    *o.0.entry(kind).or_default() += 1;
                    drop(o);
                    due += period;
                }
            })
        })
        .collect();
    for t in tasks {
        let _ = t.await;
    }
    let (outcomes, latency) = Arc::into_inner(outcome).expect("every viewer finished").into_inner().unwrap();
    Crowd {
        viewers,
        outcomes,
        latency_us: latency.iter_recorded().map(|v| (v.value_iterated_to(), v.count_at_value())).collect(),
    }
}
