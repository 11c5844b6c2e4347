//! `keel dev chaos`: a fresh local cluster, a workload of several clients, a seeded
//! nemesis that stops by itself, then a heal, a catch-up and a check that re-reads
//! everything. Its report says how many acknowledged writes were lost.
//!
//! One concept per file: `cluster.rs` (the node processes and what can be done to
//! them), `workload.rs` (the clients) with `model.rs` (what each was acknowledged),
//! `nemesis.rs` (the faults), `checker.rs` (the final check), `report.rs` (the report).
//!
//! Owns: the order of a run. Must never: leave a node process behind (the cluster is
//! shut down on every path out, Ctrl-C included), or print anything but the report
//! on stdout (progress goes to stderr).

mod checker;
mod cluster;
mod model;
mod nemesis;
mod report;
mod workload;

use crate::cli::ChaosArgs;
use anyhow::{anyhow, bail, Context, Result};
use cluster::ChaosCluster;
use nemesis::{wait_rebalanced, wait_whole, Nemesis};
use report::{Ops, Report, Stalls};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use workload::Workload;

/// How long the cluster may take, after the last fault, to be whole and rebalanced.
const CATCH_UP_DEADLINE: Duration = Duration::from_secs(120);
/// How often a progress line is printed.
const PROGRESS_EVERY: Duration = Duration::from_secs(10);

/// Parses `60`, `90s`, `10m`, `1h`.
pub fn parse_duration(s: &str) -> Result<Duration> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: u64 = num
        .parse()
        .map_err(|_| anyhow!("--duration {s:?}: a number of seconds, or with s, m or h"))?;
    let secs = match unit {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        _ => bail!("--duration {s:?}: the unit is s, m or h"),
    };
    if secs == 0 || secs > 24 * 3600 {
        bail!("--duration must be 1 s to 24 h");
    }
    Ok(Duration::from_secs(secs))
}

pub async fn run(args: ChaosArgs) -> Result<()> {
    let duration = parse_duration(&args.duration)?;
    if !(2..=16).contains(&args.nodes) {
        bail!("--nodes must be 2 to 16");
    }
    if args.sites == 0 || args.sites > 4 || args.sites > args.nodes {
        bail!("--sites must be 1 to 4 and at most --nodes");
    }
    if !(1..=32).contains(&args.clients) {
        bail!("--clients must be 1 to 32");
    }
    if args.base_port < 1024 || args.base_port > 65000 {
        bail!("--base-port must be 1024 to 65000");
    }
    if std::fs::read_dir(&args.dir).is_ok_and(|mut d| d.next().is_some()) {
        bail!(
            "--dir {} is not empty: a chaos run starts a fresh cluster in a new or empty directory",
            args.dir.display()
        );
    }
    crate::dev::PROGRESS_ON_STDERR.store(true, Ordering::Relaxed);
    eprintln!(
        "[chaos] starting {} nodes in {} site(s) in {} (seed {}, {} s of faults)",
        args.nodes,
        args.sites,
        args.dir.display(),
        args.seed,
        duration.as_secs()
    );
    let mut cluster = ChaosCluster::start(&args.dir, args.nodes, args.sites, args.base_port)
        .await
        .context("starting the cluster")?;
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let outcome = tokio::select! {
        r = session(&mut cluster, &args, duration) => r,
        _ = tokio::signal::ctrl_c() => Err(anyhow!("interrupted")),
        _ = term.recv() => Err(anyhow!("terminated")),
    };
    eprintln!("[chaos] stopping every node");
    cluster.shutdown();
    let report = outcome?;
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print!("{}", report.summary());
    }
    let n = report.failures();
    if n > 0 {
        bail!("chaos found {n} problems (lost writes, wrong reads, unreadable files or in-sync violations)");
    }
    Ok(())
}

async fn session(c: &mut ChaosCluster, args: &ChaosArgs, duration: Duration) -> Result<Report> {
    let max_len = (args.max_file_kib.max(1) * 1024) as usize;
    let workload = Workload::start(&c.dir, args.clients, args.seed, max_len)?;
    let progress = workload.progress.clone();
    let started = Instant::now();
    let ticker = tokio::spawn(async move {
        loop {
            tokio::time::sleep(PROGRESS_EVERY).await;
            eprintln!(
                "[chaos] {} s: {} puts acknowledged, {} operations, {} anomalies",
                started.elapsed().as_secs(),
                progress.puts_acked.load(Ordering::Relaxed),
                progress.ops.load(Ordering::Relaxed),
                progress.anomalies.load(Ordering::Relaxed)
            );
        }
    });
    let warm = Instant::now() + Duration::from_secs(30);
    let want = 2 * args.clients as u64;
    while workload.progress.puts_acked.load(Ordering::Relaxed) < want && Instant::now() < warm {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut nemesis = Nemesis::new(args.seed);
    let ran = nemesis.run(c, started + duration).await;
    eprintln!("[chaos] nemesis done; stopping the workload");
    let logs = workload.stop().await;
    ticker.abort();
    ran?;

    eprintln!("[chaos] healing everything and waiting for catch-up");
    c.heal_processes()?;
    for n in c.ids() {
        for link in ["a", "b"] {
            let _ = c.client.fault_link(n, link, true).await;
        }
    }
    let mut heal_timeouts = nemesis.log.heal_timeouts.clone();
    if let Err(e) = wait_whole(c, CATCH_UP_DEADLINE).await {
        eprintln!("[chaos] {e:#}");
        heal_timeouts.push(format!("at the end: {e:#}"));
    }
    if let Err(e) = wait_rebalanced(c, CATCH_UP_DEADLINE).await {
        eprintln!("[chaos] {e:#}");
        heal_timeouts.push(format!("at the end: {e:#}"));
    }
    eprintln!("[chaos] checking");
    let found = checker::check(c, &logs).await;

    let mut ops = Ops::default();
    let mut report = Report {
        seed: args.seed,
        duration_s: duration.as_secs(),
        nodes: args.nodes,
        sites: args.sites,
        clients: args.clients,
        ..Default::default()
    };
    let mut stalls = vec![];
    for l in &logs {
        ops.puts += l.puts;
        ops.gets += l.gets;
        ops.gets_failed += l.gets_failed;
        ops.moves += l.moves;
        ops.moves_acknowledged += l.moves_acked;
        ops.removes += l.removes;
        ops.removes_acknowledged += l.removes_acked;
        report.acknowledged_writes += l.puts_acked;
        report.wrong_reads += l.wrong_reads;
        report.stale_reads += l.stale_reads;
        stalls.extend(l.stalls_ms.iter().copied());
        report.examples.extend(l.examples.iter().cloned());
    }
    report.ops = ops;
    report.stall_ms = Stalls::of(stalls);
    report.lost_writes = found.lost_writes;
    report.wrong_reads += found.wrong_reads;
    report.unreadable_after_heal = found.unreadable_after_heal;
    // Distinct violations seen between faults, and those still there at the end.
    let unchecked = found.in_sync_violations - found.in_sync_found.len() as u64;
    let mut distinct = nemesis.log.in_sync_violations.clone();
    distinct.extend(found.in_sync_found.iter().cloned());
    report.in_sync_violations = distinct.len() as u64 + unchecked;
    report
        .examples
        .extend(nemesis.log.in_sync_examples.iter().cloned());
    report.lost_objects = found.lost_objects;
    report.files_checked = found.files_checked;
    report.examples.extend(found.examples);
    report.faults = nemesis
        .log
        .injected
        .iter()
        .map(|(k, v)| (k.to_string(), *v))
        .collect();
    report.heal_timeouts = heal_timeouts;
    report.unexpected_exits = c.unexpected_exits.clone();
    report.fault_timeline = nemesis.log.timeline.clone();
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_or_without_a_unit() {
        assert_eq!(parse_duration("60").ok(), Some(Duration::from_secs(60)));
        assert_eq!(parse_duration("90s").ok(), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("10m").ok(), Some(Duration::from_secs(600)));
        assert!(parse_duration("0").is_err());
        assert!(parse_duration("5d").is_err());
        assert!(parse_duration("x").is_err());
    }
}
