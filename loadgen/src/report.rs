//! The benchmark's figures, as JSON (for others to quote) and as a markdown table.

use std::collections::BTreeMap;

use serde::Serialize;

/// One open-loop step of the surge.
#[derive(Debug, Serialize)]
pub struct OverloadRow {
    /// The offered rate as a multiple of the closed loop's capacity; None for a fixed rate.
    pub multiple: Option<f64>,
    /// Votes offered per second.
    pub offered: f64,
    /// Client connections the votes were spread over.
    pub connections: usize,
    /// Votes accepted (202) per second.
    pub goodput: f64,
    /// `goodput` over the same run's closed-loop capacity.
    pub goodput_share_of_capacity: f64,
    /// Refusals per second by kind (`503 overloaded`, `429 rate_limited`).
    pub refused: BTreeMap<String, f64>,
    /// p99 of all refusals, and of each kind.
    pub refused_p99_ms: f64,
    pub refused_p99_ms_by_kind: BTreeMap<String, f64>,
    /// Every other outcome, by kind, counted over the step (`503 unavailable` is nginx's answer
    /// for a 502/504 from a replica; `connection_reset`, `client_timeout`, ...).
    pub failed: BTreeMap<String, u64>,
    pub accepted_p50_ms: f64,
    pub accepted_p99_ms: f64,
    pub accepted_max_ms: f64,
    /// Votes the load generator could not send within 1 s of their due time (every one of its
    /// connections busy, or its own CPU short): its own limit, not an answer of the server.
    pub skipped: u64,
    /// p99 of the delay between a vote's due time and its sending: the load generator's own
    /// share of every latency above (it shares the two cores with the stack).
    pub client_lag_p99_ms: f64,
    /// A request every 20 ms from outside the load generator's queue (a vote without captcha:
    /// 400 when admitted, 503 when shed): what a viewer's phone would see of the stack itself.
    pub bystander: BTreeMap<String, u64>,
    pub bystander_p50_ms: f64,
    pub bystander_p99_ms: f64,
}

impl OverloadRow {
    pub fn new(step: &crate::surge::Step, multiple: Option<f64>, capacity: f64) -> Self {
        let ms = |h: &hdrhistogram::Histogram<u64>, q: f64| h.value_at_quantile(q) as f64 / 1000.0;
        let mut all_refused = crate::load::histogram();
        for h in step.refused.values() {
            let _ = all_refused.add(h);
        }
        Self {
            multiple,
            offered: step.rate as f64,
            connections: step.connections,
            goodput: step.goodput(),
            goodput_share_of_capacity: step.goodput() / capacity.max(1e-9),
            refused: step.refused.iter().map(|(k, h)| (k.clone(), step.per_second(h.len()))).collect(),
            refused_p99_ms: ms(&all_refused, 0.99),
            refused_p99_ms_by_kind: step.refused.iter().map(|(k, h)| (k.clone(), ms(h, 0.99))).collect(),
            failed: step.failed.clone(),
            accepted_p50_ms: ms(&step.accepted, 0.5),
            accepted_p99_ms: ms(&step.accepted, 0.99),
            accepted_max_ms: step.accepted.max() as f64 / 1000.0,
            skipped: step.skipped,
            client_lag_p99_ms: ms(&step.client_lag, 0.99),
            bystander: step.bystander.clone(),
            bystander_p50_ms: ms(&step.bystander_latency, 0.5),
            bystander_p99_ms: ms(&step.bystander_latency, 0.99),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct Report {
    /// Votes accepted (202) per second in the closed-loop phase.
    pub votes_per_second: f64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// Every vote of every phase not answered 202 (or never sent).
    pub errors: u64,
    /// The closed loop's non-202 answers by status (0: no answer).
    pub closed_loop_errors_by_status: BTreeMap<String, u64>,
    /// Votes answered 202, all phases.
    pub accepted: u64,
    /// Votes the statistics count at the end (minus those counted before the run).
    pub counted: u64,
    pub exact: bool,
    /// After the closed loop stopped: until every accepted vote was counted.
    pub drain_seconds: Option<f64>,
    pub baseline_204_per_second: f64,
    pub vote_share_of_baseline: f64,
    pub results_reads_per_second: f64,
    pub results_share_of_baseline: f64,
    pub results_p99_ms: f64,
    /// The surge: open-loop steps at multiples of the closed-loop capacity, then fixed rates.
    pub overload: Vec<OverloadRow>,
    /// From the end of the largest multiple's step until votes flow at 90% of capacity again.
    pub recovery_seconds: Option<f64>,
    /// After the last surge step: until every vote accepted so far was counted.
    pub drain_after_surge_seconds: Option<f64>,
    pub viewers: Option<crate::viewers::ViewersReport>,
    /// Peak RSS over the whole run, overloaded open-loop steps included.
    pub rss_mb: BTreeMap<String, f64>,
    /// Peak RSS up to the end of the closed loop (the stack at its own pace).
    pub rss_mb_after_closed_loop: BTreeMap<String, f64>,
    pub cpu_seconds_per_1000_votes: BTreeMap<String, f64>,
    pub connections: usize,
    pub vote_seconds: u64,
}

impl Report {
    pub fn markdown(&self) -> String {
        let mut s = String::new();
        let drain = self.drain_seconds.map_or("not within 120 s".to_string(), |d| format!("{d:.2} s"));
        s += "| figure | value |\n|---|---|\n";
        s += &format!("| nginx `204` baseline | {:.0} requests/s |\n", self.baseline_204_per_second);
        s += &format!(
            "| votes, closed loop ({} connections, {} s) | **{:.0} votes/s** ({:.0}% of the baseline) |\n",
            self.connections,
            self.vote_seconds,
            self.votes_per_second,
            self.vote_share_of_baseline * 100.0
        );
        s += &format!(
            "| vote latency p50 / p95 / p99 / max | {:.2} / {:.2} / {:.2} / {:.2} ms |\n",
            self.p50_ms, self.p95_ms, self.p99_ms, self.max_ms
        );
        s += &format!(
            "| results reads through nginx | {:.0} reads/s ({:.0}% of the baseline), p99 {:.2} ms |\n",
            self.results_reads_per_second,
            self.results_share_of_baseline * 100.0,
            self.results_p99_ms
        );
        s += &format!(
            "| accepted / counted | {} / {} ({}) |\n",
            self.accepted,
            self.counted,
            if self.exact { "exact" } else { "MISMATCH" }
        );
        let closed: u64 = self.closed_loop_errors_by_status.values().sum();
        s += &format!(
            "| errors | closed loop: {closed} {:?}; all phases: {} (open-loop steps beyond capacity included) |\n",
            self.closed_loop_errors_by_status, self.errors
        );
        s += &format!("| drained after the closed loop | {drain} |\n");
        s += "\n| surge step | offered | connections | goodput (share of capacity) | refused /s | refused p99 | failed | accepted p50 / p99 | skipped | client lag p99 | bystander p50 / p99 |\n";
        s += "|---|---|---|---|---|---|---|---|---|---|---|\n";
        for o in &self.overload {
            let step = o.multiple.map_or("fixed".to_string(), |m| format!("{m}×"));
            let refused: f64 = o.refused.values().sum();
            let failed: u64 = o.failed.values().sum();
            s += &format!(
                "| {step} | {:.0}/s | {} | {:.0}/s ({:.0}%) | {refused:.0} {:?} | {:.2} ms | {failed} {:?} | {:.2} / {:.2} ms | {} | {:.2} ms | {:.2} / {:.2} ms {:?} |\n",
                o.offered,
                o.connections,
                o.goodput,
                o.goodput_share_of_capacity * 100.0,
                o.refused.iter().map(|(k, v)| (k.as_str(), v.round() as u64)).collect::<BTreeMap<_, _>>(),
                o.refused_p99_ms,
                o.failed,
                o.accepted_p50_ms,
                o.accepted_p99_ms,
                o.skipped,
                o.client_lag_p99_ms,
                o.bystander_p50_ms,
                o.bystander_p99_ms,
                o.bystander
            );
        }
        s += &format!(
            "\n| after the surge | value |\n|---|---|\n| votes at full rate again | {} |\n",
            self.recovery_seconds
                .map_or("not within the limit".to_string(), |r| format!("{r:.1} s after the largest step ended"))
        );
        s += &format!(
            "| backlog counted after the surge | {} |\n",
            self.drain_after_surge_seconds.map_or("not within 120 s".to_string(), |d| format!("{d:.2} s"))
        );
        if let Some(v) = &self.viewers {
            let errors: u64 = v.errors.values().sum();
            s += &format!(
                "| viewers ({} connections, a read every {} ms, {} s) | {:.0} reads/s, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms, errors {errors} {:?} |\n",
                v.viewers, v.period_ms, v.seconds, v.reads_per_second, v.p50_ms, v.p99_ms, v.max_ms, v.errors
            );
        }
        s += "\n| process | CPU s per 1,000 votes | peak RSS, closed loop | peak RSS, whole run |\n|---|---|---|---|\n";
        for (name, rss) in &self.rss_mb {
            let cpu = self.cpu_seconds_per_1000_votes.get(name).map_or("-".to_string(), |c| format!("{c:.3}"));
            let closed = self.rss_mb_after_closed_loop.get(name).map_or("-".to_string(), |r| format!("{r:.0} MB"));
            s += &format!("| {name} | {cpu} | {closed} | {rss:.0} MB |\n");
        }
        s
    }
}
