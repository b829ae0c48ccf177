//! The benchmark's figures, as JSON (for others to quote) and as a markdown table.

use std::collections::BTreeMap;

use serde::Serialize;

#[derive(Debug, Serialize)]
pub struct OpenStep {
    pub rate: u64,
    pub achieved_per_second: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub errors: u64,
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
    pub open_loop: Vec<OpenStep>,
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
        s += &format!("| vote latency p50 / p95 / p99 / max | {:.2} / {:.2} / {:.2} / {:.2} ms |\n", self.p50_ms, self.p95_ms, self.p99_ms, self.max_ms);
        s += &format!(
            "| results reads through nginx | {:.0} reads/s ({:.0}% of the baseline), p99 {:.2} ms |\n",
            self.results_reads_per_second,
            self.results_share_of_baseline * 100.0,
            self.results_p99_ms
        );
        s += &format!("| accepted / counted | {} / {} ({}) |\n", self.accepted, self.counted, if self.exact { "exact" } else { "MISMATCH" });
        let closed: u64 = self.closed_loop_errors_by_status.values().sum();
        s += &format!(
            "| errors | closed loop: {closed} {:?}; all phases: {} (open-loop steps beyond capacity included) |\n",
            self.closed_loop_errors_by_status, self.errors
        );
        s += &format!("| drained after the closed loop | {drain} |\n");
        s += "\n| open loop rate | achieved | p50 | p99 | max | errors |\n|---|---|---|---|---|---|\n";
        for o in &self.open_loop {
            s += &format!("| {}/s | {:.0}/s | {:.2} ms | {:.2} ms | {:.2} ms | {} |\n", o.rate, o.achieved_per_second, o.p50_ms, o.p99_ms, o.max_ms, o.errors);
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
