//! `paredao-load chaos`: the fault suite of `./run.sh chaos` (issue #11).
//!
//! For each scenario, on the chaos stack that `run.sh` started (run/chaos, free ports):
//!
//! 1. bring the stack back to whole (`run.sh chaos-fault up`, the scenario's consumer count) and
//!    wait until it is quiet (the vote queue empty, the count still for a few seconds);
//! 2. read the paredão's total (`before`) and start the steady load (`steady.rs`: `--rate`
//!    votes/s, every 503/429 retried with the same solution);
//! 3. after `--lead-secs`, inject the one fault through `run.sh chaos-fault ACTION` (kills and
//!    restarts only the chaos stack's processes, by the pids in run/chaos/pids); the fault ends
//!    when its last action returns (the restart, the alarm cleared, the poison published);
//! 4. keep the load on for `--secs` more, stop it, carry the votes in their retries to an answer,
//!    wait for the backlog to drain, and compare.
//!
//! What each figure means (also written under the table):
//!
//! - `accepted`: distinct solved challenges that got a 202 (a challenge sent to both replicas
//!   counts once if either accepted it), or a 403 `captcha_already_used` to a resend (an earlier
//!   copy was accepted: README, *Under overload*);
//! - `counted`: the store's total for the paredão (`GET /api/paredoes/<id>/stats` through nginx)
//!   once drained, minus its total before the scenario; drained means: the vote queue holds no
//!   message (ready or unacked) and the total has not moved for 6 s (longer than the management
//!   API's 5 s statistics interval), or `--drain-limit-secs` passed;
//! - `duplicates` = counted − accepted when positive, `lost` = accepted − counted when positive;
//! - `client_errors`: votes whose final answer was neither a 202 nor a retryable one that was
//!   resent with the same challenge (429, any 5xx, no answer: `steady.rs`), counting a
//!   retryable answer still given after `--max-retries` resends, and answers other than 403 to
//!   an injected replay;
//! - `recovery_seconds`: from the fault's end, the later of (a) `accepting_after_seconds`, the
//!   start of the first one-second window with 202s for at least 90% of the steady rate, and
//!   (b) `drained_after_seconds`, when the store's total first covers every vote accepted up to
//!   the fault's end. `null` when either never happened within the run.
//!
//! A row is `ok` when counted == accepted, recovery happened, and the scenario's own check (the
//! poison scenario: each of its messages went to the dead-letter queue) held. The process exits
//! non-zero when any row is not.
//!
//! `soak` (issue #11: a benchmark, not a test, so only with `--scenario soak`) injects no fault:
//! the steady load for `--soak-secs`, and from the end of `--soak-warmup-secs` every process of
//! the stack (by its pid file) has its RSS read every 5 s with the vote queue's depth. Its row is
//! `ok` when exact, with no client error, every process's RSS at the end under 10% above its RSS
//! after the warm-up, and the queue never deeper than 2 s of what is published to it (a
//! consumer keeping up holds a batch or two; one falling behind soon passes any such bound).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::steady::{self, Mode, Plan, Tally};
use crate::voter::{Split, Target};

struct Args {
    base: String,
    api_ports: Vec<u16>,
    mgmt: String,
    run_sh: String,
    paredao: String,
    split: String,
    rate: u64,
    connections: usize,
    lead_secs: u64,
    secs: u64,
    down_secs: u64,
    restart_delay_secs: u64,
    alarm_secs: u64,
    backlog_secs: u64,
    replay_every: u64,
    max_retries: u32,
    drain_limit_secs: u64,
    soak_secs: u64,
    soak_warmup_secs: u64,
    /// Where the chaos stack keeps its pid files (`run/chaos/pids`, next to `run.sh`).
    pid_dir: String,
    scenarios: Vec<String>,
    out: String,
    command: String,
}

const USAGE: &str = "paredao-load chaos --base http://127.0.0.1:PORT --api-ports 'P1 P2' --mgmt http://127.0.0.1:PORT --run-sh PATH \
[--scenario NAME[,NAME...]] [--rate 3500] [--connections 256] [--lead-secs 10] [--secs 30] [--down-secs 5] \
[--restart-delay-secs 1] [--alarm-secs 30] [--backlog-secs 480] [--replay-every 50] [--max-retries 60] \
[--drain-limit-secs 900] [--soak-secs 1020] [--soak-warmup-secs 420] [--pid-dir run/chaos/pids] [--paredao paredao-1] [--split ana=45,bruno=35,carla=20] [--out target/chaos] [--list]";

fn parse_args(argv: impl Iterator<Item = String>) -> anyhow::Result<Args> {
    let mut a = Args {
        base: String::new(),
        api_ports: Vec::new(),
        mgmt: String::new(),
        run_sh: "./run.sh".into(),
        paredao: "paredao-1".into(),
        split: "ana=45,bruno=35,carla=20".into(),
        rate: 3500,
        connections: 256,
        lead_secs: 10,
        secs: 30,
        down_secs: 5,
        restart_delay_secs: 1,
        alarm_secs: 30,
        backlog_secs: 480,
        replay_every: 50,
        max_retries: 60,
        drain_limit_secs: 900,
        // Ten minutes measured after seven of warm-up: each replica's spent-challenge set fills
        // its bound at ~260 s and its RSS is flat from ~360 s, and by ~330 s the consumer has
        // begun forgetting the blocks and batch ids the queue has passed (its bound trails the
        // queue by a margin of 180 s, skew and slack).
        soak_secs: 1020,
        soak_warmup_secs: 420,
        pid_dir: String::new(),
        scenarios: Vec::new(),
        out: "target/chaos".into(),
        command: String::new(),
    };
    let mut it = argv;
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| anyhow::anyhow!("{flag} needs a value"));
        match flag.as_str() {
            "--base" => a.base = value()?,
            "--api-ports" => a.api_ports = value()?.split_whitespace().map(str::parse).collect::<Result<_, _>>()?,
            "--mgmt" => a.mgmt = value()?.trim_end_matches('/').to_string(),
            "--run-sh" => a.run_sh = value()?,
            "--paredao" => a.paredao = value()?,
            "--split" => a.split = value()?,
            "--rate" => a.rate = value()?.parse()?,
            "--connections" => a.connections = value()?.parse()?,
            "--lead-secs" => a.lead_secs = value()?.parse()?,
            "--secs" => a.secs = value()?.parse()?,
            "--down-secs" => a.down_secs = value()?.parse()?,
            "--restart-delay-secs" => a.restart_delay_secs = value()?.parse()?,
            "--alarm-secs" => a.alarm_secs = value()?.parse()?,
            "--backlog-secs" => a.backlog_secs = value()?.parse()?,
            "--replay-every" => a.replay_every = value()?.parse()?,
            "--max-retries" => a.max_retries = value()?.parse()?,
            "--drain-limit-secs" => a.drain_limit_secs = value()?.parse()?,
            "--soak-secs" => a.soak_secs = value()?.parse()?,
            "--soak-warmup-secs" => a.soak_warmup_secs = value()?.parse()?,
            "--pid-dir" => a.pid_dir = value()?,
            "--scenario" => a.scenarios.extend(value()?.split(',').filter(|s| !s.is_empty()).map(str::to_string)),
            "--out" => a.out = value()?,
            "--command" => a.command = value()?,
            "--list" => {
                for s in Scenario::ALL {
                    println!("{:<24} {}", s.name(), s.what());
                }
                for s in Scenario::ON_REQUEST {
                    println!("{:<24} {} (only with --scenario {})", s.name(), s.what(), s.name());
                }
                std::process::exit(0);
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => anyhow::bail!("unknown flag {other}\n{USAGE}"),
        }
    }
    anyhow::ensure!(
        a.base.starts_with("http://127.") || a.base.starts_with("http://localhost"),
        "--base must be a loopback address (http://127.0.0.1:PORT)"
    );
    anyhow::ensure!(a.api_ports.len() >= 2, "--api-ports needs both replicas' ports");
    anyhow::ensure!(!a.mgmt.is_empty(), "--mgmt (the RabbitMQ management URL) is required");
    anyhow::ensure!(a.rate > 0 && a.connections > 0, "--rate and --connections must be positive");
    anyhow::ensure!(a.soak_warmup_secs < a.soak_secs, "--soak-warmup-secs must be shorter than --soak-secs");
    if a.pid_dir.is_empty() {
        // run.sh keeps every stack under run/ beside itself (RUN_ROOT).
        let root = std::path::Path::new(&a.run_sh).parent().unwrap_or(std::path::Path::new("."));
        a.pid_dir = root.join("run/chaos/pids").display().to_string();
    }
    Ok(a)
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Scenario {
    ConsumerKill,
    StoreKill,
    BrokerKill,
    ApiKill,
    MemoryAlarm,
    ConsumerStopped,
    ReplayThreeConsumers,
    SigtermAll,
    Poison,
    Soak,
}

impl Scenario {
    const ALL: [Scenario; 9] = [
        Scenario::ConsumerKill,
        Scenario::StoreKill,
        Scenario::BrokerKill,
        Scenario::ApiKill,
        Scenario::MemoryAlarm,
        Scenario::ConsumerStopped,
        Scenario::ReplayThreeConsumers,
        Scenario::SigtermAll,
        Scenario::Poison,
    ];

    /// Run only when named: the soak is a benchmark (ten minutes), not a fault (issue #11).
    const ON_REQUEST: [Scenario; 1] = [Scenario::Soak];

    fn name(self) -> &'static str {
        match self {
            Scenario::ConsumerKill => "consumer-kill",
            Scenario::StoreKill => "store-kill",
            Scenario::BrokerKill => "broker-kill",
            Scenario::ApiKill => "api-kill",
            Scenario::MemoryAlarm => "memory-alarm",
            Scenario::ConsumerStopped => "consumer-stopped",
            Scenario::ReplayThreeConsumers => "replay-three-consumers",
            Scenario::SigtermAll => "sigterm-all",
            Scenario::Poison => "poison",
            Scenario::Soak => "soak",
        }
    }

    fn what(self) -> &'static str {
        match self {
            Scenario::ConsumerKill => {
                "consumer SIGKILL mid-batch (deliveries unacked), started again after --restart-delay-secs as a supervisor would"
            }
            Scenario::StoreKill => "store SIGKILL, restarted after --down-secs",
            Scenario::BrokerKill => "broker SIGKILL, restarted after --down-secs",
            Scenario::ApiKill => "API replica 2 SIGKILL, not restarted during the scenario (nginx routes around it)",
            Scenario::MemoryAlarm => {
                "broker memory alarm (vm_memory_high_watermark absolute 1) for --alarm-secs, then back to 0.4"
            }
            Scenario::ConsumerStopped => {
                "consumer stopped (SIGTERM) for --backlog-secs while votes keep coming and old accepted challenges are replayed to both replicas, then started"
            }
            Scenario::ReplayThreeConsumers => {
                "three consumers, every vote sent to both API replicas at once with the same challenge (no other fault)"
            }
            Scenario::SigtermAll => {
                "SIGTERM to every process of the stack at once during load, then `up` (all restarted)"
            }
            Scenario::Poison => "one poison message of each kind published straight to the vote queue",
            Scenario::Soak => {
                "no fault: the steady load for --soak-secs; each process's RSS and the vote queue's depth sampled every 5 s after --soak-warmup-secs"
            }
        }
    }

    fn parse(name: &str) -> anyhow::Result<Self> {
        Self::ALL.into_iter().chain(Self::ON_REQUEST).find(|s| s.name() == name).ok_or_else(|| {
            let names: Vec<&str> = Self::ALL.into_iter().chain(Self::ON_REQUEST).map(|s| s.name()).collect();
            anyhow::anyhow!("unknown scenario '{name}'; there are: {}", names.join(", "))
        })
    }

    fn consumers(self) -> u32 {
        if self == Scenario::ReplayThreeConsumers { 3 } else { 1 }
    }

    fn mode(self) -> Mode {
        if self == Scenario::ReplayThreeConsumers { Mode::BothReplicas } else { Mode::Nginx }
    }
}

/// One line of the table (and of latest.json).
#[derive(Serialize)]
struct Row {
    scenario: String,
    accepted: u64,
    counted: u64,
    duplicates: u64,
    lost: u64,
    client_errors: u64,
    recovery_seconds: Option<f64>,
    accepting_after_seconds: Option<f64>,
    drained_after_seconds: Option<f64>,
    /// Retryable answers (429, 5xx, none) followed by a resend with the same solution.
    retried: u64,
    /// Votes whose resend was answered 403 `captcha_already_used`: an earlier copy was accepted.
    accepted_on_resend: u64,
    /// Votes due while every worker was busy (mostly waiting out refusals): never sent.
    skipped: u64,
    replays_sent: u64,
    /// 202s to an injected replay of an already accepted challenge.
    replays_accepted: u64,
    /// Messages that reached the dead-letter queue during the scenario.
    dead_lettered: Option<u64>,
    client_errors_by_kind: BTreeMap<String, u64>,
    fault_seconds: f64,
    load_seconds: f64,
    exact: bool,
    ok: bool,
    notes: Vec<String>,
    /// The soak's memory and queue figures; only on its row.
    #[serde(skip_serializing_if = "Option::is_none")]
    soak: Option<Soak>,
}

impl Row {
    /// The line every scenario prints first: what was accepted and counted, and what went wrong.
    fn counts(&self) -> String {
        format!(
            "{}: accepted {} counted {} duplicates {} lost {} client errors {} {:?}",
            self.scenario,
            self.accepted,
            self.counted,
            self.duplicates,
            self.lost,
            self.client_errors,
            self.client_errors_by_kind
        )
    }

    fn verdict(&self) -> &'static str {
        if self.ok { "  OK" } else { "  NOT OK" }
    }

    /// A row that measured nothing yet, for the fields a scenario does not fill.
    fn empty(scenario: &str) -> Self {
        Row {
            scenario: scenario.into(),
            accepted: 0,
            counted: 0,
            duplicates: 0,
            lost: 0,
            client_errors: 0,
            recovery_seconds: None,
            accepting_after_seconds: None,
            drained_after_seconds: None,
            retried: 0,
            accepted_on_resend: 0,
            skipped: 0,
            replays_sent: 0,
            replays_accepted: 0,
            dead_lettered: None,
            client_errors_by_kind: BTreeMap::new(),
            fault_seconds: 0.0,
            load_seconds: 0.0,
            exact: false,
            ok: false,
            notes: Vec::new(),
            soak: None,
        }
    }
}

/// How often the soak reads every process's RSS and the vote queue's depth: the management
/// API refreshes its queue figures every 5 s, so a shorter period would read the same numbers.
const SOAK_SAMPLE: Duration = Duration::from_secs(5);

/// A process passes the soak when its RSS at the end is less than this much above its RSS
/// right after the warm-up (issue #11).
const MAX_RSS_GROWTH_PERCENT: f64 = 10.0;

/// The vote queue is bounded when it never held more than this many seconds of what is
/// published to it: a consumer keeping up holds a batch or two, one falling behind piles up a
/// backlog that soon passes any fixed number of seconds. In messages (batches), measured against
/// the queue's own publish rate, so that the bound does not depend on the batch size.
const QUEUE_BOUND_SECONDS: f64 = 2.0;

/// What the soak measured, in latest.json on its row.
#[derive(Serialize)]
struct Soak {
    warmup_seconds: u64,
    soak_seconds: u64,
    sample_seconds: u64,
    processes: Vec<ProcessRss>,
    /// Vote queue depth (`messages`: ready + unacked) over the samples, in messages.
    max_queue_depth: u64,
    end_queue_depth: Option<u64>,
    /// The mean publish rate to the vote queue over the samples, messages/s.
    publish_rate: Option<f64>,
    /// `QUEUE_BOUND_SECONDS` of `publish_rate`, in messages.
    queue_bound: u64,
    queue_bounded: bool,
    samples: Vec<Sample>,
}

/// One process of the stack (with its descendants: nginx's workers, RabbitMQ's helpers).
#[derive(Serialize)]
struct ProcessRss {
    name: String,
    pid: u32,
    after_warmup_mb: f64,
    end_mb: f64,
    max_mb: f64,
    /// End against after warm-up.
    growth_percent: f64,
    /// The process was gone at some sample (its figures stop there).
    exited: bool,
}

#[derive(Serialize)]
struct Sample {
    /// From the start of the load.
    seconds: f64,
    queue_depth: Option<u64>,
    rss_mb: BTreeMap<String, f64>,
}

struct Ctx {
    args: Args,
    target: Target,
    replicas: Vec<String>,
    split: Split,
    http: reqwest::Client,
}

/// Depth of a queue as the management API tells it (refreshed every 5 s).
struct Depth {
    messages: u64,
    unacked: u64,
    /// Messages/s published to the queue, as the management API averages it.
    publish_rate: Option<f64>,
}

impl Ctx {
    /// `run.sh chaos-fault ACTION...`, which acts on the chaos stack only.
    async fn fault(&self, action: &[&str]) -> anyhow::Result<()> {
        let (run_sh, action): (String, Vec<String>) =
            (self.args.run_sh.clone(), action.iter().map(|s| s.to_string()).collect());
        println!("  [{}] run.sh chaos-fault {}", clock(), action.join(" "));
        let status = tokio::task::spawn_blocking(move || {
            std::process::Command::new(&run_sh).arg("chaos-fault").args(&action).status()
        })
        .await??;
        anyhow::ensure!(status.success(), "run.sh chaos-fault failed ({status})");
        Ok(())
    }

    async fn depth(&self, queue: &str) -> anyhow::Result<Depth> {
        let v: serde_json::Value = self
            .http
            .get(format!("{}/api/queues/%2f/{queue}", self.args.mgmt))
            .basic_auth("guest", Some("guest"))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        Ok(Depth {
            messages: v["messages"].as_u64().unwrap_or(0),
            unacked: v["messages_unacknowledged"].as_u64().unwrap_or(0),
            publish_rate: v["message_stats"]["publish_details"]["rate"].as_f64(),
        })
    }

    async fn publish(&self, payload: &str) -> anyhow::Result<()> {
        let body = serde_json::json!({
            "properties": {"delivery_mode": 2, "content_type": "application/json"},
            "routing_key": "votes",
            "payload": payload,
            "payload_encoding": "string",
        });
        let v: serde_json::Value = self
            .http
            .post(format!("{}/api/exchanges/%2f/amq.default/publish", self.args.mgmt))
            .basic_auth("guest", Some("guest"))
            .json(&body)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        anyhow::ensure!(v["routed"] == true, "the broker did not route the message to the vote queue: {v}");
        Ok(())
    }

    async fn counted(&self) -> Option<u64> {
        crate::counted(&self.target).await.ok()
    }

    /// Waits until the vote queue is empty and the total has not moved for `still`; the last
    /// total read. Gives up after `limit` (with what it has).
    async fn settle(&self, expected: Option<u64>, still: Duration, limit: Duration) -> Option<u64> {
        let started = Instant::now();
        let mut last: Option<(u64, Instant)> = None;
        loop {
            let now = self.counted().await;
            let empty = matches!(self.depth("votes").await, Ok(Depth { messages: 0, .. }));
            if let Some(n) = now {
                if last.is_none_or(|(m, _)| m != n) {
                    last = Some((n, Instant::now()));
                }
                let (_, since) = last.expect("set above");
                // Below what was accepted, keep waiting while anything may still move.
                let covered = expected.is_none_or(|e| n >= e);
                let hopeless = since.elapsed() > Duration::from_secs(30);
                if empty && since.elapsed() >= still && (covered || hopeless) {
                    return Some(n);
                }
            }
            if started.elapsed() > limit {
                println!("  gave up waiting for the backlog after {} s", limit.as_secs());
                return last.map(|(n, _)| n);
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// The fault itself; what it did, in words, for the notes.
    async fn inject(&self, s: Scenario) -> anyhow::Result<Vec<String>> {
        let a = &self.args;
        let mut notes = Vec::new();
        match s {
            Scenario::ConsumerKill => {
                // Mid-batch: the consumer holds deliveries it has not acked yet.
                let deadline = Instant::now() + Duration::from_secs(6);
                let mut unacked = 0;
                while Instant::now() < deadline {
                    unacked = self.depth("votes").await.map(|d| d.unacked).unwrap_or(0);
                    if unacked > 0 {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                notes.push(format!("killed with {unacked} deliveries unacked (management API, up to 5 s old)"));
                self.fault(&["kill", "consumer"]).await?;
                tokio::time::sleep(Duration::from_secs(a.restart_delay_secs)).await;
                self.fault(&["start", "consumer"]).await?;
            }
            Scenario::StoreKill | Scenario::BrokerKill => {
                let name = if s == Scenario::StoreKill { "mongo" } else { "rabbitmq" };
                self.fault(&["kill", name]).await?;
                tokio::time::sleep(Duration::from_secs(a.down_secs)).await;
                self.fault(&["start", name]).await?;
            }
            Scenario::ApiKill => self.fault(&["kill", "api-2"]).await?,
            Scenario::MemoryAlarm => {
                self.fault(&["alarm", "on"]).await?;
                tokio::time::sleep(Duration::from_secs(a.alarm_secs)).await;
                self.fault(&["alarm", "off"]).await?;
            }
            Scenario::ConsumerStopped => {
                self.fault(&["stop", "consumer"]).await?;
                let deadline = Instant::now() + Duration::from_secs(a.backlog_secs);
                while Instant::now() < deadline {
                    tokio::time::sleep(Duration::from_secs(30).min(deadline - Instant::now())).await;
                    if let Ok(d) = self.depth("votes").await {
                        println!("  [{}] backlog: {} messages in the vote queue", clock(), d.messages);
                    }
                }
                self.fault(&["start", "consumer"]).await?;
            }
            Scenario::ReplayThreeConsumers => notes.push(
                "no fault beyond the replays: recovery is the time to count what was accepted in the lead".into(),
            ),
            Scenario::SigtermAll => {
                self.fault(&["term-all"]).await?;
                self.fault(&["up"]).await?;
            }
            Scenario::Poison => {
                for (kind, payload) in poison(&a.paredao) {
                    self.publish(&payload).await?;
                    println!("  published poison: {kind}");
                }
            }
            Scenario::Soak => anyhow::bail!("the soak injects no fault (Ctx::soak runs it)"),
        }
        Ok(notes)
    }

    /// Brings the stack back to whole with the scenario's consumers and waits until it is
    /// quiet; the paredão's total then.
    async fn prepare(&self, s: Scenario) -> anyhow::Result<u64> {
        self.fault(&["up"]).await?;
        self.fault(&["consumers", &s.consumers().to_string()]).await?;
        self.settle(None, Duration::from_secs(3), Duration::from_secs(self.args.drain_limit_secs))
            .await
            .ok_or_else(|| anyhow::anyhow!("the stack answers no statistics"))
    }

    fn plan(&self, s: Scenario) -> Plan {
        let a = &self.args;
        Plan {
            rate: a.rate,
            connections: a.connections,
            mode: s.mode(),
            replay_every: (s == Scenario::ConsumerStopped).then_some(a.replay_every.max(2)),
            max_retries: a.max_retries,
        }
    }

    /// Starts the scenario's steady load; its tally, and the task to hand to `stop_and_drain`.
    fn start_load(&self, s: Scenario) -> (Arc<Tally>, tokio::task::JoinHandle<()>) {
        let tally = Tally::new();
        let load = tokio::spawn(steady::run(
            self.target.clone(),
            self.replicas.clone(),
            self.split.clone(),
            self.plan(s),
            tally.clone(),
        ));
        (tally, load)
    }

    /// Stops the load, carries the votes in their retries to an answer and waits for the
    /// backlog to drain; how long the load ran, and the total then (`before` if none answered).
    async fn stop_and_drain(&self, tally: &Tally, load: tokio::task::JoinHandle<()>, before: u64) -> (f64, u64) {
        tally.stop();
        println!("  [{}] load stopped; carrying the votes in their retries to an answer", clock());
        let _ = load.await;
        let load_seconds = tally.started.elapsed().as_secs_f64();
        let accepted = tally.accepted();
        println!("  [{}] {} accepted; waiting for the backlog to drain", clock(), accepted);
        let limit = Duration::from_secs(self.args.drain_limit_secs);
        let after = self.settle(Some(before + accepted), Duration::from_secs(6), limit).await.unwrap_or(before);
        (load_seconds, after)
    }

    /// The soak (issue #11): the steady load for `--soak-secs` with no fault. After
    /// `--soak-warmup-secs` (caches filled, pools grown), every process's RSS is the baseline;
    /// then RSS and the vote queue's depth are read every `SOAK_SAMPLE` until the end. A leak
    /// shows as growth over the baseline, a consumer that cannot keep up as a queue past its
    /// bound; an exactness or client-error failure means the load was beyond what is sustained.
    async fn soak(&self) -> anyhow::Result<Row> {
        let (a, s) = (&self.args, Scenario::Soak);
        println!("\n== {}: {}", s.name(), s.what());
        let before = self.prepare(s).await?;
        let (tally, load) = self.start_load(s);
        println!(
            "  [{}] load at {} votes/s over {} connections for {} s ({} s warm-up)",
            clock(),
            a.rate,
            a.connections,
            a.soak_secs,
            a.soak_warmup_secs
        );
        tokio::time::sleep(Duration::from_secs(a.soak_warmup_secs)).await;
        let pids = match stack_pids(&a.pid_dir) {
            Ok(p) => p,
            Err(e) => {
                // Stop the load before giving up, or it would run into the next scenario.
                self.stop_and_drain(&tally, load, before).await;
                return Err(e);
            }
        };
        println!("  [{}] warm-up over; sampling {} processes from {}", clock(), pids.len(), a.pid_dir);
        let (samples, publish_rate) = self.sample(&tally, &pids).await;
        let (load_seconds, after) = self.stop_and_drain(&tally, load, before).await;

        let figures = soak_figures(a, &pids, samples, publish_rate);
        let counted = after.saturating_sub(before);
        let accepted = tally.accepted();
        let errors = tally.errors();
        let client_errors: u64 = errors.values().sum();
        let exact = counted == accepted;
        let mut notes = Vec::new();
        for p in &figures.processes {
            if p.exited {
                notes.push(format!("{} (pid {}) exited during the soak", p.name, p.pid));
            } else if p.growth_percent >= MAX_RSS_GROWTH_PERCENT {
                notes.push(format!("{} RSS grew {:.1}% (limit {MAX_RSS_GROWTH_PERCENT}%)", p.name, p.growth_percent));
            }
        }
        if !figures.queue_bounded {
            notes.push(format!(
                "vote queue reached {} messages (bound {})",
                figures.max_queue_depth, figures.queue_bound
            ));
        }
        let ok = exact && client_errors == 0 && notes.is_empty();
        let row = Row {
            accepted,
            counted,
            duplicates: counted.saturating_sub(accepted),
            lost: accepted.saturating_sub(counted),
            client_errors,
            retried: tally.retried.load(std::sync::atomic::Ordering::Relaxed),
            accepted_on_resend: tally.accepted_on_resend.load(std::sync::atomic::Ordering::Relaxed),
            skipped: tally.skipped.load(std::sync::atomic::Ordering::Relaxed),
            client_errors_by_kind: errors,
            load_seconds,
            exact,
            ok,
            notes,
            soak: Some(figures),
            ..Row::empty(s.name())
        };
        println!("  {} retried {} skipped {}{}", row.counts(), row.retried, row.skipped, row.verdict());
        Ok(row)
    }

    /// Reads the processes' RSS and the vote queue every `SOAK_SAMPLE` until `--soak-secs` of
    /// load; the first sample is the one right after the warm-up. Also the mean publish rate to
    /// the vote queue over the samples, for its bound.
    async fn sample(&self, tally: &Tally, pids: &[(String, u32)]) -> (Vec<Sample>, Option<f64>) {
        let end = tally.started + Duration::from_secs(self.args.soak_secs);
        let mut samples = Vec::new();
        loop {
            let depth = self.depth("votes").await.ok();
            let rss_mb = pids.iter().filter_map(|(name, pid)| Some((name.clone(), rss_mb(*pid)?))).collect();
            let sample = Sample {
                seconds: tally.started.elapsed().as_secs_f64(),
                queue_depth: depth.as_ref().map(|d| d.messages),
                rss_mb,
            };
            // Once a minute on the console, so that a long soak shows it is alive.
            if samples.len() % 12 == 0 {
                let rss: Vec<String> = sample.rss_mb.iter().map(|(n, m)| format!("{n} {m:.0}")).collect();
                println!(
                    "  [{}] t={:.0} s queue {:?} RSS MB: {}",
                    clock(),
                    sample.seconds,
                    sample.queue_depth,
                    rss.join(", ")
                );
            }
            samples.push((sample, depth.and_then(|d| d.publish_rate)));
            let now = Instant::now();
            if now >= end {
                break;
            }
            tokio::time::sleep(SOAK_SAMPLE.min(end - now)).await;
        }
        let rates: Vec<f64> = samples.iter().filter_map(|(_, r)| *r).collect();
        let mean = (!rates.is_empty()).then(|| rates.iter().sum::<f64>() / rates.len() as f64);
        (samples.into_iter().map(|(s, _)| s).collect(), mean)
    }

    async fn run(&self, s: Scenario) -> anyhow::Result<Row> {
        if s == Scenario::Soak {
            return self.soak().await;
        }
        let a = &self.args;
        println!("\n== {}: {}", s.name(), s.what());
        let before = self.prepare(s).await?;
        let dead_before = self.depth("votes.dead").await.ok().map(|d| d.messages);
        let (tally, load) = self.start_load(s);
        println!("  [{}] load at {} votes/s over {} connections ({:?})", clock(), a.rate, a.connections, s.mode());
        tokio::time::sleep(Duration::from_secs(a.lead_secs)).await;

        let fault_started = tally.started.elapsed();
        let injected = self.inject(s).await;
        let fault_end = tally.started.elapsed();
        let accepted_at_end = tally.accepted();
        println!(
            "  [{}] fault over after {:.1} s; {} accepted so far",
            clock(),
            (fault_end - fault_started).as_secs_f64(),
            accepted_at_end
        );
        // (b) of recovery: when the total first covers every vote accepted by the fault's end.
        let watcher = {
            let (target, expected, limit) =
                (self.target.clone(), before + accepted_at_end, Duration::from_secs(a.drain_limit_secs));
            tokio::spawn(async move {
                let started = Instant::now();
                while started.elapsed() < limit {
                    if crate::counted(&target).await.is_ok_and(|n| n >= expected) {
                        return Some(started.elapsed().as_secs_f64());
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                None
            })
        };
        tokio::time::sleep(Duration::from_secs(a.secs)).await;
        let (load_seconds, after) = self.stop_and_drain(&tally, load, before).await;
        let accepted = tally.accepted();
        let drained = watcher.await.ok().flatten();
        let accepting = steady::back_at_rate(&tally.buckets(), fault_end, a.rate, 0.9);
        let dead_lettered = match (dead_before, self.depth("votes.dead").await) {
            (Some(b), Ok(d)) => Some(d.messages.saturating_sub(b)),
            _ => None,
        };

        let counted = after.saturating_sub(before);
        let errors = tally.errors();
        let mut notes = Vec::new();
        let mut own_check = true;
        match injected {
            Ok(n) => notes.extend(n),
            Err(e) => {
                own_check = false;
                notes.push(format!("the fault could not be injected: {e:#}"));
            }
        }
        if s == Scenario::Poison {
            let expected = poison(&a.paredao).len() as u64;
            if dead_lettered != Some(expected) {
                own_check = false;
                notes.push(format!(
                    "{expected} poison messages published, {dead_lettered:?} reached the dead-letter queue"
                ));
            }
        }
        let replays_accepted = tally.replays_accepted.load(std::sync::atomic::Ordering::Relaxed);
        if replays_accepted > 0 {
            notes.push(format!("{replays_accepted} replays of already accepted challenges got a 202"));
        }
        let exact = counted == accepted;
        let recovery_seconds = match (accepting, drained) {
            (Some(x), Some(y)) => Some(x.max(y)),
            _ => None,
        };
        let row = Row {
            scenario: s.name().into(),
            accepted,
            counted,
            duplicates: counted.saturating_sub(accepted),
            lost: accepted.saturating_sub(counted),
            client_errors: errors.values().sum(),
            recovery_seconds,
            accepting_after_seconds: accepting,
            drained_after_seconds: drained,
            retried: tally.retried.load(std::sync::atomic::Ordering::Relaxed),
            accepted_on_resend: tally.accepted_on_resend.load(std::sync::atomic::Ordering::Relaxed),
            skipped: tally.skipped.load(std::sync::atomic::Ordering::Relaxed),
            replays_sent: tally.replays_sent.load(std::sync::atomic::Ordering::Relaxed),
            replays_accepted,
            dead_lettered,
            client_errors_by_kind: errors,
            fault_seconds: (fault_end - fault_started).as_secs_f64(),
            load_seconds,
            exact,
            ok: exact && recovery_seconds.is_some() && own_check,
            notes,
            soak: None,
        };
        println!(
            "  {} recovery {:?} s (accepting {:?}, drained {:?}) retried {} skipped {} dead-lettered {:?}{}",
            row.counts(),
            row.recovery_seconds.map(|r| (r * 10.0).round() / 10.0),
            row.accepting_after_seconds,
            row.drained_after_seconds,
            row.retried,
            row.skipped,
            row.dead_lettered,
            row.verdict()
        );
        Ok(row)
    }

    /// Puts the stack back after a scenario, whatever happened in it.
    async fn restore(&self, s: Scenario) {
        if s == Scenario::MemoryAlarm
            && let Err(e) = self.fault(&["alarm", "off"]).await
        {
            println!("  could not clear the memory alarm: {e:#}");
        }
    }
}

/// One message of each kind a consumer must refuse rather than count (or choke on).
fn poison(paredao: &str) -> Vec<(&'static str, String)> {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_millis() as i64;
    let batch = |i: u64, votes: &str| format!(r#"{{"id":"{}","sealed_at_ms":{now},"votes":[{votes}]}}"#, uuid_like(i));
    let vote = |i: u64, p: &str, c: &str, t: i64| format!(r#"{{"p":"{p}","c":"{c}","t":{t},"k":"{:032x}"}}"#, key(i));
    vec![
        ("not JSON", "this is not a vote batch {".to_string()),
        ("empty batch", batch(1, "")),
        ("out-of-range timestamp", batch(2, &vote(2, paredao, "ana", 9_300_000_000_000))),
        ("unknown paredão id", batch(3, &vote(3, "paredao-chaos-unknown", "ana", now))),
        ("unknown participant id", batch(4, &vote(4, paredao, "zeca-chaos-unknown", now))),
        ("ill-formed id", batch(5, &vote(5, paredao, "Ana Clara!", now))),
    ]
}

/// A key no real vote has: a hash of the time and `i`.
fn key(i: u64) -> u128 {
    use std::hash::{BuildHasher, RandomState};
    let s = RandomState::new();
    (u128::from(s.hash_one((i, 1u8))) << 64) | u128::from(s.hash_one((i, 2u8)))
}

fn uuid_like(i: u64) -> String {
    let k = key(i).to_be_bytes();
    let h: String = k.iter().map(|b| format!("{b:02x}")).collect();
    format!("{}-{}-4{}-8{}-{}", &h[0..8], &h[8..12], &h[13..16], &h[17..20], &h[20..32])
}

fn clock() -> String {
    let s = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_secs();
    format!("{:02}:{:02}:{:02}", (s / 3600) % 24, (s / 60) % 60, s % 60)
}

/// Every process of the chaos stack, by its pid file (`NAME.pid`), sorted by name; those whose
/// pid is not running are left out (a stopped consumer's stale file).
fn stack_pids(dir: &str) -> anyhow::Result<Vec<(String, u32)>> {
    let mut pids = Vec::new();
    for entry in
        std::fs::read_dir(dir).map_err(|e| anyhow::anyhow!("cannot read the chaos stack's pid files in {dir}: {e}"))?
    {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "pid")
            && let Some(name) = path.file_stem().and_then(|n| n.to_str())
            && let Ok(pid) = std::fs::read_to_string(&path)?.trim().parse::<u32>()
            && rss_mb(pid).is_some()
        {
            pids.push((name.to_string(), pid));
        }
    }
    anyhow::ensure!(!pids.is_empty(), "no running process in {dir}");
    pids.sort();
    Ok(pids)
}

/// Resident memory (VmRSS) of a process and its descendants in MB, as `procs::peak_rss_mb`
/// sums peaks; `None` once the process is gone.
fn rss_mb(pid: u32) -> Option<f64> {
    let own = |p: u32| -> Option<f64> {
        let status = std::fs::read_to_string(format!("/proc/{p}/status")).ok()?;
        status.lines().find(|l| l.starts_with("VmRSS:"))?.split_whitespace().nth(1)?.parse().ok()
    };
    let first = own(pid)?;
    Some((first + crate::procs::tree(pid).into_iter().skip(1).filter_map(own).sum::<f64>()) / 1024.0)
}

fn growth_percent(from: f64, to: f64) -> f64 {
    if from > 0.0 { (to - from) / from * 100.0 } else { 0.0 }
}

/// `QUEUE_BOUND_SECONDS` of the measured publish rate; without one, of `--rate` as if every
/// message held one vote (the loosest reading).
fn queue_bound(publish_rate: Option<f64>, rate: u64) -> u64 {
    (publish_rate.unwrap_or(rate as f64) * QUEUE_BOUND_SECONDS).ceil() as u64
}

/// The soak's per-process and queue figures from its samples.
fn soak_figures(a: &Args, pids: &[(String, u32)], samples: Vec<Sample>, publish_rate: Option<f64>) -> Soak {
    let processes = pids
        .iter()
        .map(|(name, pid)| {
            let seen: Vec<f64> = samples.iter().map_while(|s| s.rss_mb.get(name).copied()).collect();
            let (first, last) = (seen.first().copied().unwrap_or(0.0), seen.last().copied().unwrap_or(0.0));
            ProcessRss {
                name: name.clone(),
                pid: *pid,
                after_warmup_mb: first,
                end_mb: last,
                max_mb: seen.iter().copied().fold(0.0, f64::max),
                growth_percent: growth_percent(first, last),
                exited: seen.len() < samples.len(),
            }
        })
        .collect();
    let depths: Vec<u64> = samples.iter().filter_map(|s| s.queue_depth).collect();
    let max_queue_depth = depths.iter().copied().max().unwrap_or(0);
    let bound = queue_bound(publish_rate, a.rate);
    Soak {
        warmup_seconds: a.soak_warmup_secs,
        soak_seconds: a.soak_secs,
        sample_seconds: SOAK_SAMPLE.as_secs(),
        processes,
        max_queue_depth,
        end_queue_depth: samples.last().and_then(|s| s.queue_depth),
        publish_rate,
        queue_bound: bound,
        // No depth read at all is no evidence of a bounded queue.
        queue_bounded: !depths.is_empty() && max_queue_depth <= bound,
        samples,
    }
}

/// The soak's RSS table and queue line, under the scenario table.
fn soak_markdown(s: &Soak) -> String {
    let mut md = format!(
        "\n**Soak**: {} s of steady load, no fault; RSS (VmRSS of each process and its descendants) and the vote queue read every {} s from the end of a {} s warm-up.\n\n",
        s.soak_seconds, s.sample_seconds, s.warmup_seconds
    );
    md.push_str("| process | RSS after warm-up MB | RSS at end MB | max MB | growth % |\n|---|---:|---:|---:|---:|\n");
    for p in &s.processes {
        md.push_str(&format!(
            "| {} | {:.1} | {:.1} | {:.1} | {:+.1}{} |\n",
            p.name,
            p.after_warmup_mb,
            p.end_mb,
            p.max_mb,
            p.growth_percent,
            if p.exited {
                " (exited)"
            } else if p.growth_percent >= MAX_RSS_GROWTH_PERCENT {
                " **over**"
            } else {
                ""
            }
        ));
    }
    md.push_str(&format!(
        "\nVote queue (ready + unacked): max {} messages, {} at the end; bound {} messages = {QUEUE_BOUND_SECONDS} s of its publish rate ({}): {}.\nA process passes under {MAX_RSS_GROWTH_PERCENT}% growth (end against after warm-up); the row passes when exact, with no client error, every process under that growth and the queue within its bound.\n",
        s.max_queue_depth,
        s.end_queue_depth.map_or("—".into(), |d| d.to_string()),
        s.queue_bound,
        s.publish_rate.map_or("none measured: --rate, one vote per message".into(), |r| format!("{r:.1} messages/s")),
        if s.queue_bounded { "bounded" } else { "**not bounded**" }
    ));
    md
}

fn markdown(rows: &[Row], a: &Args) -> String {
    let mut md = String::new();
    md.push_str(&format!(
        "Command: `{}` (steady load {} votes/s over {} connections through nginx; lead {} s, then the fault, then {} s; down {} s, alarm {} s, backlog {} s{})\n\n",
        if a.command.is_empty() { "./run.sh chaos" } else { &a.command },
        a.rate,
        a.connections,
        a.lead_secs,
        a.secs,
        a.down_secs,
        a.alarm_secs,
        a.backlog_secs,
        std::env::var("APP_CAPTCHA__EXPIRES_SECS").map(|e| format!(", challenges expire after {e} s")).unwrap_or_default()
    ));
    md.push_str(
        "| scenario | accepted | counted | duplicates | lost | client errors | recovery s | resent | result |\n",
    );
    md.push_str("|---|---:|---:|---:|---:|---:|---:|---:|---|\n");
    for r in rows {
        let errors = if r.client_errors == 0 {
            "0".to_string()
        } else {
            format!(
                "{} ({})",
                r.client_errors,
                r.client_errors_by_kind.iter().map(|(k, v)| format!("{v}× {k}")).collect::<Vec<_>>().join(", ")
            )
        };
        md.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {}{} |\n",
            r.scenario,
            r.accepted,
            r.counted,
            r.duplicates,
            r.lost,
            errors,
            r.recovery_seconds.map_or("—".into(), |s| format!("{s:.1}")),
            r.retried,
            if r.ok { "exact" } else { "**FAILED**" },
            if r.notes.is_empty() { String::new() } else { format!(": {}", r.notes.join("; ")) }
        ));
    }
    md.push_str(
        "\naccepted: distinct solved challenges that got a 202 (one sent to both replicas counts once), or a 403 captcha_already_used to a resend of the same vote. \
counted: the paredão's total in the store after the backlog drained (vote queue empty, total still for 6 s), minus its total before. \
duplicates = counted − accepted, lost = accepted − counted (when positive). \
client errors: votes whose last answer was neither a 202 nor a retryable one (429, 5xx, no answer) resent with the same challenge, and non-403 answers to injected replays; resent: retryable answers followed by a resend. \
recovery s: from the fault's end (the restart, the alarm cleared, the poison published), the later of the first one-second window with 202s for ≥ 90% of the steady rate \
and the moment the store's total covered every vote accepted up to the fault's end; — when either never happened.\n",
    );
    for s in rows.iter().filter_map(|r| r.soak.as_ref()) {
        md.push_str(&soak_markdown(s));
    }
    md
}

pub async fn main(argv: impl Iterator<Item = String>) -> anyhow::Result<()> {
    let args = parse_args(argv)?;
    let scenarios: Vec<Scenario> = if args.scenarios.is_empty() {
        Scenario::ALL.to_vec()
    } else {
        args.scenarios.iter().map(|n| Scenario::parse(n)).collect::<Result<_, _>>()?
    };
    let ctx = Ctx {
        target: Target::new(&args.base, &args.paredao)?,
        replicas: args.api_ports.iter().map(|p| format!("http://127.0.0.1:{p}")).collect(),
        split: Split::parse(&args.split)?,
        http: reqwest::Client::builder().timeout(Duration::from_secs(10)).build()?,
        args,
    };
    let mut rows = Vec::new();
    for s in scenarios {
        let row = ctx.run(s).await;
        ctx.restore(s).await;
        match row {
            Ok(r) => rows.push(r),
            Err(e) => {
                println!("  {} could not run: {e:#}", s.name());
                rows.push(Row { notes: vec![format!("did not run: {e:#}")], ..Row::empty(s.name()) });
            }
        }
        // Written after every scenario, so that an interrupted run keeps what it measured.
        write(&ctx.args, &rows)?;
    }
    let md = markdown(&rows, &ctx.args);
    println!("\n{md}");
    println!("written: {0}/latest.json, {0}/latest.md", ctx.args.out);
    let failed: Vec<&str> = rows.iter().filter(|r| !r.ok).map(|r| r.scenario.as_str()).collect();
    anyhow::ensure!(failed.is_empty(), "not exact or not recovered: {}", failed.join(", "));
    Ok(())
}

fn write(a: &Args, rows: &[Row]) -> anyhow::Result<()> {
    std::fs::create_dir_all(&a.out)?;
    std::fs::write(format!("{}/latest.json", a.out), serde_json::to_string_pretty(rows)?)?;
    std::fs::write(format!("{}/latest.md", a.out), markdown(rows, a))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_scenario_is_found_by_its_name() {
        for s in Scenario::ALL.into_iter().chain(Scenario::ON_REQUEST) {
            assert_eq!(Scenario::parse(s.name()).unwrap(), s);
        }
        assert!(Scenario::parse("nope").is_err());
        assert!(!Scenario::ALL.contains(&Scenario::Soak), "the soak runs only when named");
    }

    fn sample(seconds: f64, depth: u64, rss: &[(&str, f64)]) -> Sample {
        Sample { seconds, queue_depth: Some(depth), rss_mb: rss.iter().map(|(n, m)| (n.to_string(), *m)).collect() }
    }

    #[test]
    fn the_soak_figures_compare_the_end_with_the_warm_up() {
        let a = parse_args(
            ["--base", "http://127.0.0.1:1", "--api-ports", "2 3", "--mgmt", "http://127.0.0.1:4"]
                .map(String::from)
                .into_iter(),
        )
        .unwrap();
        let pids = [("api-1".to_string(), 10), ("consumer".to_string(), 11)];
        let samples = vec![
            sample(60.0, 3, &[("api-1", 100.0), ("consumer", 50.0)]),
            sample(65.0, 9, &[("api-1", 130.0), ("consumer", 55.0)]),
            sample(70.0, 2, &[("api-1", 105.0)]),
        ];
        let f = soak_figures(&a, &pids, samples, Some(20.0));
        let (api, consumer) = (&f.processes[0], &f.processes[1]);
        assert_eq!((api.after_warmup_mb, api.end_mb, api.max_mb), (100.0, 105.0, 130.0));
        assert!((api.growth_percent - 5.0).abs() < 1e-9 && !api.exited);
        assert!(consumer.exited && consumer.end_mb == 55.0);
        assert_eq!((f.max_queue_depth, f.end_queue_depth, f.queue_bound), (9, Some(2), 40));
        assert!(f.queue_bounded);
        assert_eq!(queue_bound(None, 3500), 7000);
        assert!(soak_markdown(&f).contains("| api-1 | 100.0 | 105.0 | 130.0 | +5.0 |"));
    }

    #[test]
    fn this_process_has_a_resident_size() {
        assert!(rss_mb(std::process::id()).is_some_and(|m| m > 1.0));
        assert!(rss_mb(u32::MAX).is_none());
    }

    #[test]
    fn the_poison_is_one_message_of_each_kind() {
        let p = poison("paredao-1");
        assert_eq!(p.len(), 6);
        assert!(serde_json::from_str::<serde_json::Value>(&p[0].1).is_err());
        for (_, payload) in &p[1..] {
            let v: serde_json::Value = serde_json::from_str(payload).unwrap();
            assert_eq!(v["id"].as_str().unwrap().len(), 36);
        }
        assert!(p[2].1.contains("9300000000000"));
    }
}
