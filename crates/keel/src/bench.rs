//! `keel bench failover`: on a fresh local cluster, inject single faults one at a time
//! (SIGKILL or SIGSTOP of a storage Primary that is not the Raft leader, of the Raft
//! leader; both links of a node, or of the leader, cut) while clients keep putting
//! small files, and report from the event log how long detection, the decision and
//! the takeover took after the fault, and from the clients how long their puts
//! stalled (the longest time one client went without an acknowledged put), each as
//! p50/p99/max and as a ratio to the configured detection floor (`fail_after_ms`).
//!
//! A benchmark measures and reports; it never passes or fails on time.

use anyhow::{bail, Context, Result};
use keel_client::Client;
use keel_core::{EventKind, MemberRef};
use keel_node::admin_api::{AdminRequest, StatusView};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One kind of fault a trial injects.
#[derive(Serialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Fault {
    /// SIGKILL of a storage Primary that is not the Raft leader.
    KillPrimary,
    /// SIGSTOP of a storage Primary that is not the Raft leader.
    PausePrimary,
    /// SIGKILL of the Raft leader.
    KillLeader,
    /// SIGSTOP of the Raft leader.
    PauseLeader,
    /// Both links of a node that is not the leader cut (it keeps running).
    PartitionNode,
    /// Both links of the Raft leader cut.
    PartitionLeader,
}

impl Fault {
    pub const ALL: [Fault; 6] = [
        Fault::KillPrimary,
        Fault::PausePrimary,
        Fault::KillLeader,
        Fault::PauseLeader,
        Fault::PartitionNode,
        Fault::PartitionLeader,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Fault::KillPrimary => "kill-primary",
            Fault::PausePrimary => "pause-primary",
            Fault::KillLeader => "kill-leader",
            Fault::PauseLeader => "pause-leader",
            Fault::PartitionNode => "partition-node",
            Fault::PartitionLeader => "partition-leader",
        }
    }

    pub fn parse(s: &str) -> Option<Fault> {
        Fault::ALL.into_iter().find(|f| f.name() == s)
    }

    fn on_leader(self) -> bool {
        matches!(
            self,
            Fault::KillLeader | Fault::PauseLeader | Fault::PartitionLeader
        )
    }
}

/// What the benchmark runs.
pub struct Options {
    pub trials: u32,
    pub nodes: u8,
    pub dir: Option<PathBuf>,
    pub base_port: u16,
    pub faults: Vec<Fault>,
    /// How long a pause or a partition lasts (a kill: until `dev up` restarts it).
    pub hold: Duration,
    /// Clients putting files during the trials (0: none, no stall measured).
    pub clients: usize,
    /// Size of each put.
    pub put_size: usize,
}

#[derive(Serialize, Debug)]
struct Trial {
    fault: Fault,
    target: u64,
    target_was_leader: bool,
    /// Sets the target was Primary of when the fault began.
    primary_of: Vec<String>,
    detected_ms: i64,
    decided_ms: i64,
    taken_over_ms: i64,
    /// A new Raft leader (a leader fault), from the fault.
    new_leader_ms: i64,
    /// Per client: the longest time without an acknowledged put, counted from the
    /// last acknowledgement before the fault to the first after it was healed.
    stalls_ms: Vec<i64>,
    /// The same measure over the same length of time just before the fault.
    baseline_ms: Vec<i64>,
    puts_ok: usize,
    puts_failed: usize,
    errors: Vec<String>,
}

/// One put of the workload: which client, when it ended (ms since the Unix epoch),
/// whether it was acknowledged, and the error if not.
#[derive(Clone, Debug)]
struct Put {
    client: usize,
    end: i64,
    error: Option<String>,
}

type Log = Arc<Mutex<Vec<Put>>>;

pub async fn failover(opts: Options) -> Result<()> {
    if opts.trials == 0 || opts.nodes < 2 || opts.faults.is_empty() {
        bail!("--trials must be at least 1, --nodes at least 2, and --faults name one");
    }
    let tmp;
    let dir = match &opts.dir {
        Some(d) => d.clone(),
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
            &opts.nodes.to_string(),
            "--restart-delay-ms",
            "300",
            "--base-port",
            &opts.base_port.to_string(),
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
        "bench failover: {} nodes, {} trials per fault ({}), faults held {} ms, {} clients putting {} bytes, cluster in {}",
        opts.nodes,
        opts.trials,
        opts.faults.iter().map(|f| f.name()).collect::<Vec<_>>().join(", "),
        opts.hold.as_millis(),
        opts.clients,
        opts.put_size,
        dir.display()
    );
    let result = run_trials(&dir, &opts).await;
    if let Some(pid) = dev.id() {
        unsafe { libc::kill(pid as i32, libc::SIGTERM) };
    }
    let _ = tokio::time::timeout(Duration::from_secs(20), dev.wait()).await;
    let results = result?;
    report(&results, &dir)
}

async fn run_trials(dir: &Path, opts: &Options) -> Result<Vec<Trial>> {
    let client = wait_for(dir, Duration::from_secs(90)).await?;
    let puts: Log = Default::default();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let workers: Vec<_> = (0..opts.clients)
        .map(|i| {
            tokio::spawn(workload(
                dir.to_path_buf(),
                i,
                opts.put_size,
                puts.clone(),
                stop.clone(),
            ))
        })
        .collect();
    let mut out = vec![];
    let mut result = Ok(());
    // A trial before which the cluster did not settle is reported and skipped; so
    // many in a row end the run.
    let mut unsettled = 0;
    'outer: for i in 0..opts.trials {
        for fault in opts.faults.iter().copied() {
            match trial(&client, fault, opts, &puts)
                .await
                .with_context(|| format!("trial {} ({})", i + 1, fault.name()))
            {
                Ok(Some(t)) => {
                    unsettled = 0;
                    print_trial(i + 1, &t);
                    out.push(t);
                }
                Ok(None) => println!(
                    "  trial {:>3} {:<16} skipped: no node fits (a Primary that is not the leader)",
                    i + 1,
                    fault.name()
                ),
                Err(e) if unsettled < 2 => {
                    unsettled += 1;
                    println!("  trial {:>3} {:<16} skipped: {e:#}", i + 1, fault.name());
                    continue;
                }
                Err(e) => {
                    result = Err(e);
                    break 'outer;
                }
            }
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for w in workers {
        let _ = tokio::time::timeout(Duration::from_secs(30), w).await;
    }
    result.map(|_| out)
}

fn print_trial(i: u32, t: &Trial) {
    println!(
        "  trial {:>3} {:<16} node {} {:<8}: detected {:>5} ms, taken over {:>5} ms, new leader {:>5} ms, put stall max {:>5} ms (baseline {:>4} ms), {} puts failed",
        i,
        t.fault.name(),
        t.target,
        if t.target_was_leader { "(leader)" } else { "" },
        t.detected_ms,
        t.taken_over_ms,
        t.new_leader_ms,
        t.stalls_ms.iter().max().copied().unwrap_or(-1),
        t.baseline_ms.iter().max().copied().unwrap_or(-1),
        t.puts_failed
    );
    for e in t.errors.iter().take(3) {
        println!("      put failed: {e}");
    }
}

/// One client putting files in a loop until told to stop, recording each outcome.
/// Client 0 opens the cluster afresh for every put, as a new CLI process would (it
/// starts with the first member of `cluster.json`); the others keep one client.
async fn workload(
    dir: PathBuf,
    me: usize,
    size: usize,
    log: Log,
    stop: Arc<std::sync::atomic::AtomicBool>,
) {
    let data: Vec<u8> = (0..size).map(|i| (i * 31 + me) as u8).collect();
    let mut kept: Option<Client> = None;
    let mut n = 0u64;
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        n += 1;
        let client = match &kept {
            Some(c) if me != 0 => c.clone(),
            _ => match Client::open(&dir) {
                Ok(c) => {
                    kept = Some(c.clone());
                    c
                }
                Err(e) => {
                    log_put(&log, me, Some(e.to_string()));
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let path = format!("/bench/c{me}/f{}", n % 200);
        let r = client.put_bytes(&path, data.clone(), None).await;
        if let Err(e) = r {
            log_put(&log, me, Some(e.to_string()));
            // Open the cluster afresh next time, and do not spin on a refusal.
            kept = None;
            tokio::time::sleep(Duration::from_millis(50)).await;
        } else {
            log_put(&log, me, None);
        }
    }
}

fn log_put(log: &Log, client: usize, error: Option<String>) {
    log.lock().unwrap_or_else(|e| e.into_inner()).push(Put {
        client,
        end: chrono_now_ms(),
        error,
    });
}

async fn wait_for(dir: &Path, limit: Duration) -> Result<Client> {
    let deadline = Instant::now() + limit;
    loop {
        if let Ok(c) = Client::open(dir) {
            if let Ok(s) = c.status().await {
                // `dev up` writes the data key into cluster.json once it is up.
                if stable(&s) && c.file.key.is_some() {
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

/// Is the cluster settled: every node up, a leader that reaches a quorum, and every
/// storage set with a Primary holding its lease, a Secondary, and every member in
/// sync (a set left with one in-sync member by the previous fault, its catch-up not
/// done, would have no Primary to fail over to: the next trial would measure that).
fn stable(s: &StatusView) -> bool {
    let all_up = s.nodes.iter().all(|n| n.state == "up");
    let sets = s.sets.iter().filter(|x| x.kind == "storage").all(|set| {
        matches!(set.primary, Some(MemberRef::Node(p)) if set.lease_holder == Some(p))
            && set.secondary.is_some()
            && set.in_sync.len() >= set.members.len()
    });
    all_up && sets && s.quorum && s.leader.is_some() && !s.stale
}

/// Sets whose Primary is `node`, with their epochs.
fn primary_of(s: &StatusView, node: u64) -> Vec<(String, keel_core::Epoch)> {
    s.sets
        .iter()
        .filter(|x| x.kind == "storage" && x.primary_node() == Some(node))
        .map(|x| (x.id.clone(), x.epoch))
        .collect()
}

/// The storage Primaries that are not the Raft leader.
fn primaries_not_leader(s: &StatusView) -> Vec<u64> {
    let mut v: Vec<u64> = s
        .sets
        .iter()
        .filter(|x| x.kind == "storage")
        .filter_map(|x| x.primary_node())
        .filter(|p| Some(*p) != s.leader)
        .collect();
    v.sort_unstable();
    v.dedup();
    v
}

async fn trial(client: &Client, fault: Fault, opts: &Options, puts: &Log) -> Result<Option<Trial>> {
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut moved = false;
    let status =
        loop {
            let s = client.status().await;
            if let Ok(s) = &s {
                for n in s.nodes.iter().filter(|n| n.state == "quarantined") {
                    let _ = client.admin(&AdminRequest::Clear { node: n.id }).await;
                }
                if stable(s) && !fault.on_leader() && primaries_not_leader(s).is_empty() && !moved {
                    // Every Primary is the leader: hand one set over (a graceful
                    // takeover) to its Secondary, so that a Primary is not the leader.
                    let set = s.sets.iter().filter(|x| x.kind == "storage").find_map(|x| {
                        match x.secondary {
                            Some(MemberRef::Node(n)) if Some(n) != s.leader => {
                                Some((x.id.clone(), n, x.epoch))
                            }
                            _ => None,
                        }
                    });
                    if let Some((set, to, epoch)) = set {
                        let req = AdminRequest::Takeover {
                            set,
                            to: MemberRef::Node(to),
                            epoch: Some(epoch),
                        };
                        moved = client.admin(&req).await.is_ok();
                    }
                } else if stable(s) && (fault.on_leader() || !primaries_not_leader(s).is_empty()) {
                    break s.clone();
                }
            }
            if Instant::now() > deadline {
                let table = s
                    .map(|s| crate::output::status_table(&s))
                    .unwrap_or_default();
                bail!("cluster did not settle before the trial:\n{table}");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
    // Let the workload run undisturbed for as long as the fault will last: its
    // longest gap then is the baseline the stall compares to.
    tokio::time::sleep(opts.hold).await;
    let leader = status.leader.unwrap_or(0);
    let target = if fault.on_leader() {
        Some(leader)
    } else {
        primaries_not_leader(&status).first().copied()
    };
    let Some(target) = target else {
        return Ok(None);
    };
    let pid = status
        .nodes
        .iter()
        .find(|n| n.id == target)
        .map(|n| n.pid)
        .filter(|p| *p != 0)
        .with_context(|| format!("no pid for node {target}"))?;
    let sets = primary_of(&status, target);
    let mut since = client.events(0, Duration::ZERO).await?.next;
    loop {
        let page = client.events(since, Duration::ZERO).await?;
        if page.events.is_empty() {
            break;
        }
        since = page.next;
    }
    let t0 = chrono_now_ms();
    match fault {
        Fault::KillPrimary | Fault::KillLeader => unsafe {
            libc::kill(pid as i32, libc::SIGKILL);
        },
        Fault::PausePrimary | Fault::PauseLeader => unsafe {
            libc::kill(pid as i32, libc::SIGSTOP);
        },
        Fault::PartitionNode | Fault::PartitionLeader => {
            for link in ["a", "b"] {
                client.fault_link(target, link, false).await?;
            }
        }
    }
    let fault_started = Instant::now();
    let (mut detected, mut decided, mut new_leader) = (None, None, None);
    let mut taken: std::collections::BTreeMap<String, i64> = Default::default();
    let mut healed: Option<i64> = None;
    let done = |taken: &std::collections::BTreeMap<String, i64>, new_leader: Option<i64>| {
        taken.len() == sets.len() && (!fault.on_leader() || new_leader.is_some())
    };
    loop {
        if healed.is_none() && fault_started.elapsed() >= opts.hold {
            heal(client, fault, target, pid).await;
            healed = Some(chrono_now_ms());
        }
        if healed.is_some() && done(&taken, new_leader) {
            break;
        }
        if Instant::now() > deadline {
            if healed.is_none() {
                heal(client, fault, target, pid).await;
            }
            eprintln!(
                "  ({}: not every takeover was seen within the trial's deadline)",
                fault.name()
            );
            break;
        }
        // A member may be paused or restarting: any answer will do, errors are retried.
        let Ok(page) = client.events(since, Duration::from_millis(300)).await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        since = page.next.max(since);
        for e in page.events {
            let newer = |set: &str| {
                sets.iter()
                    .any(|(s, ep)| s == set && e.epoch.is_some_and(|x| x > *ep))
            };
            match e.kind {
                EventKind::FailureDetected if e.node == Some(target) => {
                    detected = detected.or(Some(e.time))
                }
                EventKind::FailoverDecided if e.set.as_deref().is_some_and(newer) => {
                    decided = decided.or(Some(e.time))
                }
                EventKind::TakenOver if e.set.as_deref().is_some_and(newer) => {
                    if let Some(s) = &e.set {
                        taken.entry(s.clone()).or_insert(e.time);
                    }
                }
                EventKind::LeaderElected if e.node.is_some_and(|n| n != target) => {
                    new_leader = new_leader.or(Some(e.time))
                }
                _ => {}
            }
        }
    }
    let healed = healed.unwrap_or_else(chrono_now_ms);
    // The clients' first acknowledgement after the heal closes the stall: wait for
    // it (bounded), so that a stall lasting the whole fault shows in full.
    let wait_until = Instant::now() + Duration::from_secs(40);
    while Instant::now() < wait_until {
        let log = puts.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let clients: std::collections::BTreeSet<usize> = log.iter().map(|p| p.client).collect();
        let all_acked = clients.iter().all(|c| {
            log.iter()
                .any(|p| p.client == *c && p.error.is_none() && p.end > healed)
        });
        if all_acked {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let log = puts.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let hold_ms = opts.hold.as_millis() as i64;
    let clients: std::collections::BTreeSet<usize> = log.iter().map(|p| p.client).collect();
    let stalls_ms = clients
        .iter()
        .map(|c| longest_gap(&log, *c, t0, healed))
        .collect();
    let baseline_ms = clients
        .iter()
        .map(|c| {
            longest_gap(&log, *c, t0 - hold_ms, t0).min(longest_gap_within(
                &log,
                *c,
                t0 - hold_ms,
                t0,
            ))
        })
        .collect();
    let during: Vec<&Put> = log
        .iter()
        .filter(|p| p.end > t0 && p.end <= healed + 1000)
        .collect();
    let ms = |t: Option<i64>| t.map(|t| t - t0).unwrap_or(-1);
    Ok(Some(Trial {
        fault,
        target,
        target_was_leader: leader == target,
        primary_of: sets.iter().map(|(s, _)| s.clone()).collect(),
        detected_ms: ms(detected),
        decided_ms: ms(decided),
        taken_over_ms: ms(taken.values().max().copied()),
        new_leader_ms: ms(new_leader),
        stalls_ms,
        baseline_ms,
        puts_ok: during.iter().filter(|p| p.error.is_none()).count(),
        puts_failed: during.iter().filter(|p| p.error.is_some()).count(),
        errors: during
            .iter()
            .filter_map(|p| p.error.clone())
            .take(5)
            .collect(),
    }))
}

/// Ends the fault: SIGCONT a paused node, restore a partitioned node's links (a
/// killed node is restarted by `dev up`).
async fn heal(client: &Client, fault: Fault, target: u64, pid: u32) {
    match fault {
        Fault::PausePrimary | Fault::PauseLeader => unsafe {
            libc::kill(pid as i32, libc::SIGCONT);
        },
        Fault::PartitionNode | Fault::PartitionLeader => {
            for link in ["a", "b"] {
                for _ in 0..40 {
                    if client.fault_link(target, link, true).await.is_ok() {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
            }
        }
        Fault::KillPrimary | Fault::KillLeader => {}
    }
}

/// The longest time client `c` went without an acknowledged put around `[from, to]`:
/// from its last acknowledgement at or before `from`, through every acknowledgement
/// in the window, to its first after `to`.
fn longest_gap(log: &[Put], c: usize, from: i64, to: i64) -> i64 {
    let acks: Vec<i64> = log
        .iter()
        .filter(|p| p.client == c && p.error.is_none())
        .map(|p| p.end)
        .collect();
    let before = acks
        .iter()
        .copied()
        .filter(|t| *t <= from)
        .max()
        .unwrap_or(from);
    let after = acks
        .iter()
        .copied()
        .filter(|t| *t > to)
        .min()
        .unwrap_or_else(chrono_now_ms);
    let mut points: Vec<i64> = acks
        .iter()
        .copied()
        .filter(|t| *t > from && *t <= to)
        .collect();
    points.push(before);
    points.push(after);
    points.sort_unstable();
    points.windows(2).map(|w| w[1] - w[0]).max().unwrap_or(0)
}

/// Like [`longest_gap`], closed at `to` (a window with no fault in it: the gap
/// running past its end belongs to what comes after).
fn longest_gap_within(log: &[Put], c: usize, from: i64, to: i64) -> i64 {
    let mut points: Vec<i64> = log
        .iter()
        .filter(|p| p.client == c && p.error.is_none() && p.end > from && p.end <= to)
        .map(|p| p.end)
        .collect();
    let before = log
        .iter()
        .filter(|p| p.client == c && p.error.is_none() && p.end <= from)
        .map(|p| p.end)
        .max()
        .unwrap_or(from);
    points.push(before);
    points.push(to);
    points.sort_unstable();
    points.windows(2).map(|w| w[1] - w[0]).max().unwrap_or(0)
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

/// Reads the samples of one measure from a trial.
type Measure = fn(&Trial) -> Vec<i64>;

fn report(trials: &[Trial], dir: &Path) -> Result<()> {
    let floor = keel_config::TimingsConfig::default().fail_after_ms as f64;
    println!();
    println!(
        "{:<17} {:<16} {:>4} {:>7} {:>7} {:>7}  {:>5} {:>5} {:>5}  (÷ fail_after)",
        "FAULT", "MEASURE", "N", "P50", "P99", "MAX", "P50", "P99", "MAX"
    );
    let rows: [(&str, Measure); 6] = [
        ("detected", |t| vec![t.detected_ms]),
        ("decided", |t| vec![t.decided_ms]),
        ("taken over", |t| vec![t.taken_over_ms]),
        ("new leader", |t| vec![t.new_leader_ms]),
        ("put stall", |t| t.stalls_ms.clone()),
        ("(no fault)", |t| t.baseline_ms.clone()),
    ];
    for fault in Fault::ALL {
        for (name, f) in rows {
            let mut v: Vec<i64> = trials
                .iter()
                .filter(|t| t.fault == fault)
                .flat_map(f)
                .filter(|x| *x >= 0)
                .collect();
            if v.is_empty() {
                continue;
            }
            v.sort_unstable();
            let (p50, p99, max) = (
                percentile(&v, 50.0),
                percentile(&v, 99.0),
                v.last().copied().unwrap_or(-1),
            );
            println!(
                "{:<17} {:<16} {:>4} {:>5}ms {:>5}ms {:>5}ms  {:>5.2} {:>5.2} {:>5.2}",
                fault.name(),
                name,
                v.len(),
                p50,
                p99,
                max,
                p50 as f64 / floor,
                p99 as f64 / floor,
                max as f64 / floor
            );
        }
        let failed: usize = trials
            .iter()
            .filter(|t| t.fault == fault)
            .map(|t| t.puts_failed)
            .sum();
        let ok: usize = trials
            .iter()
            .filter(|t| t.fault == fault)
            .map(|t| t.puts_ok)
            .sum();
        if ok + failed > 0 {
            println!(
                "{:<17} puts during the faults: {ok} acknowledged, {failed} failed",
                fault.name()
            );
        }
    }
    println!(
        "(fail_after_ms = {floor} is the configured floor for detection; times are from the fault; a put stall is the longest time one client went without an acknowledged put, from its last acknowledgement before the fault to its first after the fault ended; \"no fault\" is the same measure over as long a window just before)"
    );
    let path = dir.join("bench-failover.json");
    std::fs::write(&path, serde_json::to_string_pretty(trials)?)?;
    println!("raw trials: {}", path.display());
    Ok(())
}
