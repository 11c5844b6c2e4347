//! `keel bench failover`: on a fresh local cluster, kill (SIGKILL) and pause (SIGSTOP)
//! the Primary of the `default` set N times each, and report from the event log how
//! long detection, the decision and the takeover took after the fault (p50/p99/max).
//!
//! A benchmark measures and reports; it never passes or fails on time.

use anyhow::{bail, Context, Result};
use keel_client::Client;
use keel_core::{EventKind, MemberRef};
use keel_node::admin_api::{AdminRequest, StatusView};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

#[derive(Serialize, Clone, Copy, Debug, PartialEq)]
enum Fault {
    Kill,
    Pause,
}

#[derive(Serialize, Debug)]
struct Trial {
    fault: Fault,
    primary: u64,
    primary_was_leader: bool,
    detected_ms: i64,
    decided_ms: i64,
    taken_over_ms: i64,
}

pub async fn failover(trials: u32, nodes: u8, dir: Option<PathBuf>, base_port: u16) -> Result<()> {
    if trials == 0 || nodes < 2 {
        bail!("--trials must be at least 1 and --nodes at least 2");
    }
    let tmp;
    let dir = match dir {
        Some(d) => d,
        None => {
            tmp = std::env::temp_dir().join(format!("keel-bench-{}", std::process::id()));
            tmp.clone()
        }
    };
    std::fs::create_dir_all(&dir)?;
    let log = std::fs::File::create(dir.join("dev-up.log"))?;
    let exe = std::env::current_exe()?;
    let mut dev = tokio::process::Command::new(exe)
        .args([
            "dev",
            "up",
            "--nodes",
            &nodes.to_string(),
            "--restart-delay-ms",
            "300",
            "--base-port",
            &base_port.to_string(),
            "--dir",
        ])
        .arg(&dir)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .context("starting keel dev up")?;
    println!(
        "bench failover: {nodes} nodes, {trials} trials per fault, cluster in {}",
        dir.display()
    );
    let result = run_trials(&dir, trials).await;
    if let Some(pid) = dev.id() {
        unsafe { libc::kill(pid as i32, libc::SIGTERM) };
    }
    let _ = tokio::time::timeout(Duration::from_secs(20), dev.wait()).await;
    let results = result?;
    report(&results, &dir)
}

async fn run_trials(dir: &Path, trials: u32) -> Result<Vec<Trial>> {
    let client = wait_for(dir, Duration::from_secs(90)).await?;
    let mut out = vec![];
    for i in 0..trials {
        for fault in [Fault::Kill, Fault::Pause] {
            let t = trial(&client, fault)
                .await
                .with_context(|| format!("trial {} ({fault:?})", i + 1))?;
            println!(
                "  trial {:>3} {:<5} primary {} {}: detected {:>4} ms, decided {:>4} ms, taken over {:>4} ms",
                i + 1,
                format!("{fault:?}").to_lowercase(),
                t.primary,
                if t.primary_was_leader { "(leader)" } else { "        " },
                t.detected_ms,
                t.decided_ms,
                t.taken_over_ms
            );
            out.push(t);
        }
    }
    Ok(out)
}

async fn wait_for(dir: &Path, limit: Duration) -> Result<Client> {
    let deadline = Instant::now() + limit;
    loop {
        if let Ok(c) = Client::open(dir) {
            if let Ok(s) = c.status().await {
                if stable(&s).is_some() {
                    return Ok(c);
                }
            }
        }
        if Instant::now() > deadline {
            bail!(
                "the benchmark cluster did not become stable; see {}/dev-up.log",
                dir.display()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The default set's Primary, if the cluster is settled: every node up, and the
/// Primary holding its lease.
fn stable(s: &StatusView) -> Option<(u64, keel_core::Epoch)> {
    let set = s.sets.iter().find(|x| x.id == "default")?;
    let Some(MemberRef::Node(p)) = set.primary else {
        return None;
    };
    let all_up = s.nodes.iter().all(|n| n.state == "up");
    (all_up && set.secondary.is_some() && set.lease_holder == Some(p)).then_some((p, set.epoch))
}

async fn trial(client: &Client, fault: Fault) -> Result<Trial> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let (status, primary, epoch) = loop {
        let s = client.status().await?;
        for n in s.nodes.iter().filter(|n| n.state == "quarantined") {
            client.admin(&AdminRequest::Clear { node: n.id }).await?;
        }
        if let Some((p, e)) = stable(&s) {
            break (s, p, e);
        }
        if Instant::now() > deadline {
            bail!(
                "cluster did not settle before the trial:\n{}",
                crate::output::status_table(&s)
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let pid = status
        .nodes
        .iter()
        .find(|n| n.id == primary)
        .map(|n| n.pid)
        .unwrap_or(0);
    if pid == 0 {
        bail!("no pid for node {primary}");
    }
    let mut since = client.events(0, Duration::ZERO).await?.next;
    loop {
        let page = client.events(since, Duration::ZERO).await?;
        if page.events.is_empty() {
            break;
        }
        since = page.next;
    }
    let t0 = chrono_now_ms();
    let sig = if fault == Fault::Kill {
        libc::SIGKILL
    } else {
        libc::SIGSTOP
    };
    unsafe { libc::kill(pid as i32, sig) };
    let (mut detected, mut decided, mut taken) = (None, None, None);
    let mut seen = vec![];
    while taken.is_none() {
        if Instant::now() > deadline {
            bail!("no takeover within 60 s");
        }
        // A member may be restarting: any answer will do, errors are retried.
        let Ok(page) = client.events(since, Duration::from_secs(2)).await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        since = page.next.max(since);
        for e in page.events {
            seen.push(crate::output::event_line(&e));
            let newer = e.epoch.is_some_and(|x| x > epoch);
            match e.kind {
                EventKind::FailureDetected if e.node == Some(primary) => {
                    detected = detected.or(Some(e.time))
                }
                EventKind::FailoverDecided if newer && e.set.as_deref() == Some("default") => {
                    decided = decided.or(Some(e.time))
                }
                EventKind::TakenOver if newer && e.set.as_deref() == Some("default") => {
                    taken = taken.or(Some(e.time))
                }
                _ => {}
            }
        }
    }
    if fault == Fault::Pause {
        unsafe { libc::kill(pid as i32, libc::SIGCONT) };
    }
    if detected.is_none() {
        eprintln!(
            "  (no failure_detected for node {primary} in:\n    {})",
            seen.join("\n    ")
        );
    }
    let ms = |t: Option<i64>| t.map(|t| t - t0).unwrap_or(-1);
    Ok(Trial {
        fault,
        primary,
        primary_was_leader: status.leader == Some(primary),
        detected_ms: ms(detected),
        decided_ms: ms(decided),
        taken_over_ms: ms(taken),
    })
}

fn chrono_now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

pub fn percentile(sorted: &[i64], p: f64) -> i64 {
    if sorted.is_empty() {
        return -1;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Reads one duration of a trial.
type Measure = fn(&Trial) -> i64;
/// Selects the trials of a group.
type Select = fn(&Trial) -> bool;

fn report(trials: &[Trial], dir: &Path) -> Result<()> {
    let floor = keel_config::TimingsConfig::default().fail_after_ms as f64;
    println!();
    println!(
        "{:<6} {:<11} {:<12} {:>4} {:>7} {:>7} {:>7}  {:>13}",
        "FAULT", "PRIMARY WAS", "MEASURE", "N", "P50", "P99", "MAX", "P99/fail_after"
    );
    let rows: [(&str, Measure); 3] = [
        ("detected", |t| t.detected_ms),
        ("decided", |t| t.decided_ms),
        ("taken over", |t| t.taken_over_ms),
    ];
    // All trials of a fault, then split by whether the Primary was also the Raft leader
    // (its loss then needs an election first).
    let groups: [(&str, Select); 3] = [
        ("any", |_| true),
        ("leader", |t| t.primary_was_leader),
        ("not leader", |t| !t.primary_was_leader),
    ];
    for fault in [Fault::Kill, Fault::Pause] {
        for (group, keep) in groups {
            for (name, f) in rows {
                let mut v: Vec<i64> = trials
                    .iter()
                    .filter(|t| t.fault == fault && keep(t))
                    .map(f)
                    .filter(|x| *x >= 0)
                    .collect();
                if v.is_empty() {
                    continue;
                }
                v.sort_unstable();
                let p99 = percentile(&v, 99.0);
                println!(
                    "{:<6} {:<11} {:<12} {:>4} {:>5}ms {:>5}ms {:>5}ms  {:>13.2}",
                    format!("{fault:?}").to_lowercase(),
                    group,
                    name,
                    v.len(),
                    percentile(&v, 50.0),
                    p99,
                    v.last().copied().unwrap_or(-1),
                    p99 as f64 / floor
                );
            }
        }
    }
    println!("(fail_after_ms = {floor} is the configured floor for detection; times are from the fault to the event)");
    let path = dir.join("bench-failover.json");
    std::fs::write(&path, serde_json::to_string_pretty(trials)?)?;
    println!("raw trials: {}", path.display());
    Ok(())
}
