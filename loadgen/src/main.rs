//! `paredao-load`: the benchmark of `./run.sh bench`, in one run against a stack through nginx.
//!
//! 1. baseline: GETs of nginx's own `204` location (no proxying): the front door's ceiling;
//! 2. votes, closed loop: the stack's capacity, each vote with a solved captcha;
//! 3. the surge: open-loop steps at multiples of that capacity (0.5×, 1×, 2×, 4×) over thousands
//!    of connections, then how soon votes flow at full rate after the largest, then fixed rates
//!    (25,000/s, the record's peak);
//! 4. the viewers: 20,000 connections each reading the results every 2 s;
//! 5. reads of the viewers' results in closed loop (nginx micro-cache in front of the API's memory);
//! 6. after the load: how long until every accepted vote is counted, accepted == counted, and
//!    the CPU seconds per 1,000 votes and peak RSS of every process given with `--pid`.
//!
//! `paredao-load chaos ...` is the fault suite of `./run.sh chaos` instead (chaos.rs).
//!
//! It targets 127.0.0.1 only and is bounded in time and count. Writes `<out>/latest.json` and
//! `<out>/latest.md` and prints the table.

mod chaos;
mod http1;
mod load;
mod procs;
mod report;
mod steady;
mod surge;
mod viewers;
mod voter;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use voter::{Split, Target};

struct Args {
    base: String,
    paredao: String,
    split: String,
    connections: usize,
    vote_secs: u64,
    step_secs: u64,
    multiples: Vec<f64>,
    rates: Vec<u64>,
    recovery_secs: u64,
    viewers: usize,
    viewers_secs: u64,
    read_secs: u64,
    warmup_secs: u64,
    max_votes: u64,
    pids: Vec<(String, u32)>,
    out: String,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut a = Args {
        base: "http://127.0.0.1:8080".into(),
        paredao: "paredao-1".into(),
        split: "ana=45,bruno=35,carla=20".into(),
        connections: 64,
        vote_secs: 60,
        step_secs: 10,
        multiples: vec![0.5, 1.0, 2.0, 4.0],
        rates: vec![25000],
        recovery_secs: 5,
        viewers: 20_000,
        viewers_secs: 30,
        read_secs: 10,
        warmup_secs: 5,
        max_votes: 5_000_000,
        pids: Vec::new(),
        out: "target/bench".into(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| anyhow::anyhow!("{flag} needs a value"));
        match flag.as_str() {
            "--base" => a.base = value()?,
            "--paredao" => a.paredao = value()?,
            "--split" => a.split = value()?,
            "--connections" => a.connections = value()?.parse()?,
            "--vote-secs" => a.vote_secs = value()?.parse()?,
            "--step-secs" => a.step_secs = value()?.parse()?,
            "--multiples" => {
                a.multiples = value()?.split(',').filter(|r| !r.is_empty()).map(str::parse).collect::<Result<_, _>>()?
            }
            "--rates" => {
                a.rates = value()?.split(',').filter(|r| !r.is_empty()).map(str::parse).collect::<Result<_, _>>()?
            }
            "--recovery-secs" => a.recovery_secs = value()?.parse()?,
            "--viewers" => a.viewers = value()?.parse()?,
            "--viewers-secs" => a.viewers_secs = value()?.parse()?,
            "--read-secs" => a.read_secs = value()?.parse()?,
            "--warmup-secs" => a.warmup_secs = value()?.parse()?,
            "--max-votes" => a.max_votes = value()?.parse()?,
            "--pid" => {
                let v = value()?;
                let (name, pid) = v.split_once('=').ok_or_else(|| anyhow::anyhow!("--pid takes name=pid"))?;
                a.pids.push((name.to_string(), pid.parse()?));
            }
            "--out" => a.out = value()?,
            "-h" | "--help" => {
                println!(
                    "paredao-load --base http://127.0.0.1:PORT [--paredao ID] [--split ana=50,bruno=50] [--connections N] [--vote-secs S] [--step-secs S] [--multiples 0.5,1,2,4] [--rates 25000] [--recovery-secs S] [--viewers N] [--viewers-secs S] [--read-secs S] [--warmup-secs S] [--max-votes N] [--pid name=PID ...] [--out DIR]"
                );
                std::process::exit(0);
            }
            other => anyhow::bail!("unknown flag {other}"),
        }
    }
    // Load is only ever aimed at this machine.
    anyhow::ensure!(
        a.base.starts_with("http://127.") || a.base.starts_with("http://localhost"),
        "--base must be a loopback address (http://127.0.0.1:PORT)"
    );
    Ok(a)
}

/// Total votes counted for the paredão, as the production panel reads them.
async fn counted(target: &Target) -> anyhow::Result<u64> {
    let stats: serde_json::Value = target
        .client
        .get(format!("{}/api/paredoes/{}/stats", target.base, target.paredao))
        .send()
        .await?
        .json()
        .await?;
    stats["total_votes"].as_u64().ok_or_else(|| anyhow::anyhow!("stats without total_votes: {stats}"))
}

/// Waits until `expected` votes are counted; the time it took, or None after `limit`.
async fn drain(target: &Target, expected: u64, limit: Duration) -> (Option<f64>, u64) {
    let started = Instant::now();
    loop {
        let now = counted(target).await.unwrap_or(0);
        if now >= expected {
            return (Some(started.elapsed().as_secs_f64()), now);
        }
        if started.elapsed() > limit {
            return (None, now);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn line(name: &str, o: &load::Outcome, ok: u16) {
    println!(
        "  {name:<28} {:>9.0}/s ok  p50 {:>7.2} ms  p99 {:>7.2} ms  max {:>8.2} ms  errors {} {:?}",
        o.per_second(ok),
        o.ms(0.50),
        o.ms(0.99),
        o.max_ms(),
        o.errors(ok),
        o.by_status.iter().filter(|(s, _)| **s != ok).collect::<BTreeMap<_, _>>()
    );
}

/// A connection per this many votes/s offered: a crowd voting again and again, each person every
/// few seconds (4,000 connections at 24,000 votes/s).
const VOTES_PER_SECOND_PER_CONNECTION: u64 = 6;

fn main() -> anyhow::Result<()> {
    // One thread: at tens of thousands of requests a second the load generator's cost is the
    // kernel's (wake-ups, context switches); a second worker thread doubled those hand-offs and
    // its own lag behind the due times (measured: client lag p99 ~500 ms -> ~200 ms at 4x), while
    // one thread stays under half a core.
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let mut argv = std::env::args().skip(1);
    let first = argv.next();
    if first.as_deref() == Some("chaos") {
        // The fault suite of `run.sh chaos` (see chaos.rs).
        return runtime.block_on(chaos::main(argv));
    }
    if first.as_deref() == Some("viewers-child") {
        // A share of the viewers phase, in a process of its own (see viewers.rs).
        let a: Vec<String> = argv.collect();
        anyhow::ensure!(a.len() == 6, "viewers-child BASE PATH VIEWERS SECONDS PERIOD_MS SOURCE_IP");
        let crowd = runtime.block_on(viewers::child(
            &a[0],
            &a[1],
            a[2].parse()?,
            a[3].parse()?,
            Duration::from_millis(a[4].parse()?),
            a[5].parse()?,
        ));
        println!("{}", serde_json::to_string(&crowd)?);
        return Ok(());
    }
    runtime.block_on(bench())
}

async fn bench() -> anyhow::Result<()> {
    let args = parse_args()?;
    let split = Split::parse(&args.split)?;
    let target = Target::new(&args.base, &args.paredao)?;
    let before = counted(&target).await?;
    let mut accepted: u64 = 0;
    let mut errors: u64 = 0;

    println!("warming up for {} s", args.warmup_secs);
    let warm = load::closed_loop_votes(
        &target,
        &split,
        args.connections,
        Duration::from_secs(args.warmup_secs),
        args.max_votes,
    )
    .await;
    accepted += warm.count(202);
    errors += warm.errors(202);

    println!("baseline: nginx answering 204 itself, {} connections", args.connections);
    let baseline =
        load::closed_loop_gets(&target, "/__bench/204", args.connections, Duration::from_secs(args.step_secs)).await;
    line("nginx 204", &baseline, 204);

    println!("votes, closed loop, {} connections, {} s", args.connections, args.vote_secs);
    let cpu_before: Vec<f64> = args.pids.iter().map(|(_, p)| procs::cpu_seconds(*p)).collect();
    let me = std::process::id();
    let my_cpu_before = procs::cpu_seconds(me);
    let closed =
        load::closed_loop_votes(&target, &split, args.connections, Duration::from_secs(args.vote_secs), args.max_votes)
            .await;
    line("votes (closed loop)", &closed, 202);
    accepted += closed.count(202);
    errors += closed.errors(202);
    let (drain_seconds, _) = drain(&target, before + accepted, Duration::from_secs(120)).await;
    let votes = closed.count(202).max(1) as f64;
    let mut cpu_per_1000: BTreeMap<String, f64> = args
        .pids
        .iter()
        .zip(&cpu_before)
        .map(|((name, pid), b)| (name.clone(), (procs::cpu_seconds(*pid) - b) / votes * 1000.0))
        .collect();
    cpu_per_1000.insert("load generator".into(), (procs::cpu_seconds(me) - my_cpu_before) / votes * 1000.0);
    // Peak memory up to here: the closed loop at the stack's own pace, before the open-loop
    // steps push it past its capacity (thousands of connections).
    let rss_closed_loop: BTreeMap<String, f64> =
        args.pids.iter().map(|(name, pid)| (name.clone(), procs::peak_rss_mb(*pid))).collect();
    match drain_seconds {
        Some(s) => println!("  every accepted vote counted {s:.2} s after the load stopped"),
        None => println!("  NOT every accepted vote was counted within 120 s"),
    }

    // The surge, relative to the capacity just measured, then the fixed rates.
    let capacity = closed.per_second(202);
    let largest = args.multiples.iter().copied().fold(f64::NAN, f64::max);
    let mut overload = Vec::new();
    let mut recovery_seconds = None;
    let steps = args
        .multiples
        .iter()
        .map(|m| (Some(*m), (capacity * m).round().max(1.0) as u64))
        .chain(args.rates.iter().map(|r| (None, *r)));
    for (multiple, rate) in steps.collect::<Vec<_>>() {
        let connections = ((rate / VOTES_PER_SECOND_PER_CONNECTION) as usize).clamp(256, 8_000);
        println!(
            "votes, open loop at {rate}/s ({}) over {connections} connections for {} s",
            multiple.map_or("fixed".into(), |m| format!("{m}× capacity")),
            args.step_secs
        );
        let step = surge::step(&target, &split, rate, Duration::from_secs(args.step_secs), connections).await;
        let row = report::OverloadRow::new(&step, multiple, capacity);
        println!(
            "  goodput {:.0}/s ({:.0}% of capacity)  refused {:?} p99 {:.2} ms  failed {:?}  accepted p50 {:.2} ms p99 {:.2} ms  skipped {}  client lag p99 {:.2} ms  bystander p50 {:.2} p99 {:.2} ms {:?}",
            row.goodput,
            row.goodput_share_of_capacity * 100.0,
            row.refused.iter().map(|(k, v)| (k.as_str(), v.round() as u64)).collect::<BTreeMap<_, _>>(),
            row.refused_p99_ms,
            row.failed,
            row.accepted_p50_ms,
            row.accepted_p99_ms,
            row.skipped,
            row.client_lag_p99_ms,
            row.bystander_p50_ms,
            row.bystander_p99_ms,
            row.bystander
        );
        accepted += step.accepted.len();
        errors += step.failed_total() + step.skipped;
        if multiple == Some(largest) {
            let (r, recovery_accepted) = surge::recovery(
                &target,
                &split,
                args.connections,
                capacity * 0.9,
                step.offered_until,
                Duration::from_secs(args.recovery_secs),
            )
            .await;
            accepted += recovery_accepted;
            match r {
                Some(s) => println!("  votes at full rate again {s:.1} s after the surge ended"),
                None => println!("  votes NOT at full rate again within {} s of the surge's end", args.recovery_secs),
            }
            recovery_seconds = r;
        }
        overload.push(row);
    }

    // The surge leaves a backlog in the queue; the viewers are measured once it is counted, so
    // that their figures are the read path's, not the consumer's catching up.
    let (drain_after_surge_seconds, _) = drain(&target, before + accepted, Duration::from_secs(120)).await;
    match drain_after_surge_seconds {
        Some(s) => println!("  every vote accepted during the surge counted {s:.2} s after it ended"),
        None => println!("  NOT every vote accepted during the surge was counted within 120 s"),
    }

    let viewers = if args.viewers > 0 {
        println!(
            "viewers: {} connections, each reading the results every 2 s, for {} s",
            args.viewers, args.viewers_secs
        );
        let (base, path, n, secs) =
            (args.base.clone(), format!("/api/paredoes/{}/results", args.paredao), args.viewers, args.viewers_secs);
        let v =
            tokio::task::spawn_blocking(move || viewers::run(&base, &path, n, secs, Duration::from_secs(2))).await??;
        println!(
            "  {:.0} reads/s  p50 {:.2} ms  p99 {:.2} ms  max {:.2} ms  errors {:?}",
            v.reads_per_second, v.p50_ms, v.p99_ms, v.max_ms, v.errors
        );
        Some(v)
    } else {
        None
    };

    println!("results reads, closed loop, {} connections, {} s", args.connections, args.read_secs);
    let reads = load::closed_loop_gets(
        &target,
        &format!("/api/paredoes/{}/results", args.paredao),
        args.connections,
        Duration::from_secs(args.read_secs),
    )
    .await;
    line("results reads", &reads, 200);

    let (_, final_count) = drain(&target, before + accepted, Duration::from_secs(120)).await;
    let counted_now = final_count - before;
    let rss: BTreeMap<String, f64> = args
        .pids
        .iter()
        .map(|(name, pid)| (name.clone(), procs::peak_rss_mb(*pid)))
        .chain([("load generator".to_string(), procs::peak_rss_mb(me))])
        .collect();

    let r = report::Report {
        votes_per_second: closed.per_second(202),
        p50_ms: closed.ms(0.5),
        p95_ms: closed.ms(0.95),
        p99_ms: closed.ms(0.99),
        max_ms: closed.max_ms(),
        errors,
        closed_loop_errors_by_status: closed
            .by_status
            .iter()
            .filter(|(s, _)| **s != 202)
            .map(|(s, n)| (s.to_string(), *n))
            .collect(),
        accepted,
        counted: counted_now,
        exact: accepted == counted_now,
        drain_seconds,
        baseline_204_per_second: baseline.per_second(204),
        vote_share_of_baseline: closed.per_second(202) / baseline.per_second(204).max(1e-9),
        results_reads_per_second: reads.per_second(200),
        results_share_of_baseline: reads.per_second(200) / baseline.per_second(204).max(1e-9),
        results_p99_ms: reads.ms(0.99),
        overload,
        recovery_seconds,
        drain_after_surge_seconds,
        viewers,
        rss_mb: rss,
        rss_mb_after_closed_loop: rss_closed_loop,
        cpu_seconds_per_1000_votes: cpu_per_1000,
        connections: args.connections,
        vote_seconds: args.vote_secs,
    };
    std::fs::create_dir_all(&args.out)?;
    std::fs::write(format!("{}/latest.json", args.out), serde_json::to_string_pretty(&r)?)?;
    let md = r.markdown();
    std::fs::write(format!("{}/latest.md", args.out), &md)?;
    println!("\n{md}");
    println!("written: {0}/latest.json, {0}/latest.md", args.out);
    anyhow::ensure!(r.exact, "accepted {} != counted {}", r.accepted, r.counted);
    Ok(())
}
