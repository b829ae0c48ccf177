//! `paredao-load`: the benchmark of `./run.sh bench`, in one run against a stack through nginx.
//!
//! 1. baseline: GETs of nginx's own `204` location (no proxying): the front door's ceiling;
//! 2. votes, closed loop, then open-loop steps at fixed rates, each vote with a solved captcha;
//! 3. reads of the viewers' results (nginx micro-cache in front of the API's memory);
//! 4. after the load: how long until every accepted vote is counted, accepted == counted, and
//!    the CPU seconds per 1,000 votes and peak RSS of every process given with `--pid`.
//!
//! It targets 127.0.0.1 only and is bounded in time and count. Writes `<out>/latest.json` and
//! `<out>/latest.md` and prints the table.

mod http1;
mod load;
mod procs;
mod report;
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
    rates: Vec<u64>,
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
        rates: vec![1000, 5000, 10000, 20000, 25000],
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
            "--rates" => a.rates = value()?.split(',').filter(|r| !r.is_empty()).map(str::parse).collect::<Result<_, _>>()?,
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
                println!("paredao-load --base http://127.0.0.1:PORT [--paredao ID] [--split ana=50,bruno=50] [--connections N] [--vote-secs S] [--step-secs S] [--rates 1000,5000] [--read-secs S] [--warmup-secs S] [--max-votes N] [--pid name=PID ...] [--out DIR]");
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
    let stats: serde_json::Value =
        target.client.get(format!("{}/api/paredoes/{}/stats", target.base, target.paredao)).send().await?.json().await?;
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

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    let split = Split::parse(&args.split)?;
    let target = Target::new(&args.base, &args.paredao)?;
    let before = counted(&target).await?;
    let mut accepted: u64 = 0;
    let mut errors: u64 = 0;

    println!("warming up for {} s", args.warmup_secs);
    let warm = load::closed_loop_votes(&target, &split, args.connections, Duration::from_secs(args.warmup_secs), args.max_votes).await;
    accepted += warm.count(202);
    errors += warm.errors(202);

    println!("baseline: nginx answering 204 itself, {} connections", args.connections);
    let baseline = load::closed_loop_gets(&target, "/__bench/204", args.connections, Duration::from_secs(args.step_secs)).await;
    line("nginx 204", &baseline, 204);

    println!("votes, closed loop, {} connections, {} s", args.connections, args.vote_secs);
    let cpu_before: Vec<f64> = args.pids.iter().map(|(_, p)| procs::cpu_seconds(*p)).collect();
    let me = std::process::id();
    let my_cpu_before = procs::cpu_seconds(me);
    let closed = load::closed_loop_votes(&target, &split, args.connections, Duration::from_secs(args.vote_secs), args.max_votes).await;
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
    let rss_closed_loop: BTreeMap<String, f64> = args.pids.iter().map(|(name, pid)| (name.clone(), procs::peak_rss_mb(*pid))).collect();
    match drain_seconds {
        Some(s) => println!("  every accepted vote counted {s:.2} s after the load stopped"),
        None => println!("  NOT every accepted vote was counted within 120 s"),
    }

    let mut open = Vec::new();
    for rate in &args.rates {
        println!("votes, open loop at {rate}/s for {} s", args.step_secs);
        let o = load::open_loop_votes(&target, &split, *rate, Duration::from_secs(args.step_secs), 2048).await;
        line(&format!("votes at {rate}/s"), &o, 202);
        accepted += o.count(202);
        errors += o.errors(202);
        open.push(report::OpenStep {
            rate: *rate,
            achieved_per_second: o.per_second(202),
            p50_ms: o.ms(0.5),
            p99_ms: o.ms(0.99),
            max_ms: o.max_ms(),
            errors: o.errors(202),
        });
    }

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
        closed_loop_errors_by_status: closed.by_status.iter().filter(|(s, _)| **s != 202).map(|(s, n)| (s.to_string(), *n)).collect(),
        accepted,
        counted: counted_now,
        exact: accepted == counted_now,
        drain_seconds,
        baseline_204_per_second: baseline.per_second(204),
        vote_share_of_baseline: closed.per_second(202) / baseline.per_second(204).max(1e-9),
        results_reads_per_second: reads.per_second(200),
        results_share_of_baseline: reads.per_second(200) / baseline.per_second(204).max(1e-9),
        results_p99_ms: reads.ms(0.99),
        open_loop: open,
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
