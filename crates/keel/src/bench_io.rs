//! `keel bench io`: on fresh local clusters with replication factor 2 and then 3,
//! write N files of S bytes through the native API (several clients at once), read
//! them back byte-exact, then write again while SIGSTOP pauses one storage set's
//! Primary, and again while SIGKILL takes one down (every acknowledged put must read
//! back; the longest put measures the stall).
//! In the same run it measures the raw disk under the clusters (write + fsync, then
//! read, of the same bytes) and prints each figure as a ratio to it.
//!
//! A benchmark measures and reports; it never passes or fails on time. It fails only
//! if an acknowledged write does not read back.

use crate::bench::percentile;
use anyhow::{bail, Context, Result};
use keel_client::Client;
use rand::RngCore;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub fn parse_size(s: &str) -> Result<u64> {
    let s = s.trim().to_lowercase();
    let (num, mult) = match s.chars().last() {
        Some('k') => (&s[..s.len() - 1], 1024),
        Some('m') => (&s[..s.len() - 1], 1024 * 1024),
        Some('g') => (&s[..s.len() - 1], 1024 * 1024 * 1024),
        _ => (&s[..], 1),
    };
    let n: u64 = num
        .parse()
        .with_context(|| format!("--size {s:?}: a number of bytes, optionally with k, m or g"))?;
    if n == 0 {
        bail!("--size must be positive");
    }
    Ok(n * mult)
}

/// One phase's figures.
pub(crate) struct Phase {
    pub name: String,
    pub bytes: u64,
    pub ops: usize,
    pub elapsed: Duration,
    pub latencies_ms: Vec<i64>,
}

impl Phase {
    pub fn mb_s(&self) -> f64 {
        self.bytes as f64 / (1024.0 * 1024.0) / self.elapsed.as_secs_f64().max(1e-9)
    }
    pub fn ops_s(&self) -> f64 {
        self.ops as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

pub async fn run(
    files: u32,
    size: &str,
    parallel: usize,
    nodes: u8,
    dir: Option<PathBuf>,
    base_port: u16,
) -> Result<()> {
    let size = parse_size(size)?;
    if files == 0 || parallel == 0 || nodes < 2 {
        bail!("--files and --parallel must be positive, --nodes at least 2");
    }
    let tmp;
    let dir = match dir {
        Some(d) => d,
        None => {
            tmp = std::env::temp_dir().join(format!("keel-bench-io-{}", std::process::id()));
            tmp.clone()
        }
    };
    std::fs::create_dir_all(&dir)?;
    println!(
        "bench io: {files} files of {size} bytes, {parallel} clients, {nodes} nodes, in {}",
        dir.display()
    );
    let payloads: Arc<Vec<Vec<u8>>> = Arc::new(
        (0..files)
            .map(|_| {
                let mut v = vec![0u8; size as usize];
                rand::thread_rng().fill_bytes(&mut v);
                v
            })
            .collect(),
    );
    let (raw_w, raw_r) = raw_disk(&dir.join("raw"), &payloads)?;
    let mut rows = vec![raw_w, raw_r];
    for rf in [2usize, 3] {
        if rf > nodes as usize {
            continue;
        }
        let cdir = dir.join(format!("rf{rf}"));
        let port = base_port + (rf as u16 - 2) * 200;
        let mut dev = start_cluster(&cdir, nodes, rf, port)?;
        let result = async {
            let client = wait_storage(&cdir).await?;
            let w = writes(
                &client,
                &payloads,
                parallel,
                &format!("rf{rf} write"),
                "/bench",
            )
            .await?;
            let r = reads(
                &client,
                &payloads,
                parallel,
                &format!("rf{rf} read"),
                "/bench",
            )
            .await?;
            let p =
                fault_during_writes(&client, &cdir, &payloads, parallel, rf, Fault::Pause).await?;
            // The paused node is back: wait until it is in sync again everywhere.
            wait_storage(&cdir).await?;
            let k =
                fault_during_writes(&client, &cdir, &payloads, parallel, rf, Fault::Kill).await?;
            Ok::<_, anyhow::Error>(vec![w, r, p, k])
        }
        .await;
        stop_cluster(&mut dev).await;
        rows.extend(result.with_context(|| format!("rf {rf}; logs in {}", cdir.display()))?);
    }
    report(&rows);
    Ok(())
}

/// The raw disk: write + fsync each payload to a file, then read them all back.
pub(crate) fn raw_disk(dir: &Path, payloads: &[Vec<u8>]) -> Result<(Phase, Phase)> {
    std::fs::create_dir_all(dir)?;
    let mut lat = vec![];
    let start = Instant::now();
    for (i, p) in payloads.iter().enumerate() {
        let t = Instant::now();
        let mut f = std::fs::File::create(dir.join(format!("f{i}")))?;
        f.write_all(p)?;
        f.sync_all()?;
        lat.push(t.elapsed().as_millis() as i64);
    }
    let bytes: u64 = payloads.iter().map(|p| p.len() as u64).sum();
    let w = Phase {
        name: "raw disk write+fsync".into(),
        bytes,
        ops: payloads.len(),
        elapsed: start.elapsed(),
        latencies_ms: lat,
    };
    let mut lat = vec![];
    let start = Instant::now();
    for (i, p) in payloads.iter().enumerate() {
        let t = Instant::now();
        let mut buf = Vec::with_capacity(p.len());
        std::fs::File::open(dir.join(format!("f{i}")))?.read_to_end(&mut buf)?;
        if buf != *p {
            bail!("the raw disk returned other bytes for file {i}");
        }
        lat.push(t.elapsed().as_millis() as i64);
    }
    let r = Phase {
        name: "raw disk read".into(),
        bytes,
        ops: payloads.len(),
        elapsed: start.elapsed(),
        latencies_ms: lat,
    };
    std::fs::remove_dir_all(dir)?;
    Ok((w, r))
}

pub(crate) fn start_cluster(
    dir: &Path,
    nodes: u8,
    rf: usize,
    port: u16,
) -> Result<tokio::process::Child> {
    std::fs::create_dir_all(dir)?;
    let log = std::fs::File::create(dir.join("dev-up.log"))?;
    let exe = std::env::current_exe()?;
    tokio::process::Command::new(exe)
        .args(["dev", "up", "--no-restart", "--nodes", &nodes.to_string()])
        .args([
            "--replicas",
            &rf.to_string(),
            "--base-port",
            &port.to_string(),
            "--dir",
        ])
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .context("starting keel dev up")
}

pub(crate) async fn stop_cluster(dev: &mut tokio::process::Child) {
    if let Some(pid) = dev.id() {
        unsafe { libc::kill(pid as i32, libc::SIGTERM) };
    }
    let _ = tokio::time::timeout(Duration::from_secs(20), dev.wait()).await;
}

/// Waits until every storage set's Primary holds its lease and every member is in
/// sync, with every node up.
pub(crate) async fn wait_storage(dir: &Path) -> Result<Client> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Ok(c) = Client::open(dir) {
            if let Ok(s) = c.status().await {
                let storage: Vec<_> = s.sets.iter().filter(|x| x.kind == "storage").collect();
                // Every Primary acts under its lease, every member is in sync, every
                // node is up (after a pause: the node is back and caught up).
                if !storage.is_empty()
                    && storage.iter().all(|x| {
                        x.lease_holder.is_some()
                            && x.lease_holder == x.primary_node()
                            && x.in_sync.len() == x.members.len()
                    })
                    && s.nodes.iter().all(|n| n.state == "up")
                {
                    return Ok(c);
                }
            }
        }
        if Instant::now() > deadline {
            bail!("the cluster in {} did not become ready", dir.display());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

pub(crate) async fn writes(
    client: &Client,
    payloads: &Arc<Vec<Vec<u8>>>,
    parallel: usize,
    name: &str,
    prefix: &str,
) -> Result<Phase> {
    timed_phase(name, payloads, parallel, |i| {
        let (c, p) = (client.clone(), payloads.clone());
        let path = format!("{prefix}/f{i}");
        async move {
            c.put_bytes(&path, p[i].clone(), None)
                .await
                .with_context(|| format!("put {path}"))
                .map(|_| ())
        }
    })
    .await
}

pub(crate) async fn reads(
    client: &Client,
    payloads: &Arc<Vec<Vec<u8>>>,
    parallel: usize,
    name: &str,
    prefix: &str,
) -> Result<Phase> {
    timed_phase(name, payloads, parallel, |i| {
        let (c, p) = (client.clone(), payloads.clone());
        let path = format!("{prefix}/f{i}");
        async move {
            let (got, _) = c
                .get_bytes(&path, None, None)
                .await
                .with_context(|| format!("get {path}"))?;
            if got != p[i] {
                bail!(
                    "{path}: read back {} bytes that differ from the {} written",
                    got.len(),
                    p[i].len()
                );
            }
            Ok(())
        }
    })
    .await
}

/// A fault for the phase that writes through it.
#[derive(Clone, Copy, PartialEq)]
enum Fault {
    /// SIGKILL (the node stays down: the cluster runs with `--no-restart`).
    Kill,
    /// SIGSTOP, then SIGCONT once the phase's puts are done.
    Pause,
}

/// Writes while `fault` strikes the Primary of one storage set (not the configuration
/// database leader, when there is a choice) a third of the way in; then checks that
/// every acknowledged put reads back. The longest put is the client's stall.
async fn fault_during_writes(
    client: &Client,
    dir: &Path,
    payloads: &Arc<Vec<Vec<u8>>>,
    parallel: usize,
    rf: usize,
    fault: Fault,
) -> Result<Phase> {
    let status = client.status().await?;
    let primaries: Vec<u64> = status
        .sets
        .iter()
        .filter(|x| x.kind == "storage")
        .filter_map(|x| x.primary_node())
        .collect();
    let victim = primaries
        .iter()
        .copied()
        .find(|p| Some(*p) != status.leader)
        .or_else(|| primaries.first().copied())
        .context("no storage Primary to fault")?;
    let pid = client.file.node(victim)?.pid as i32;
    let (signal, name, prefix) = match fault {
        Fault::Kill => (libc::SIGKILL, "SIGKILLed", "/kill"),
        Fault::Pause => (libc::SIGSTOP, "SIGSTOPped", "/pause"),
    };
    let n = payloads.len();
    let struck = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let phase = timed_phase(
        &format!("rf{rf} write, node {victim} {name}"),
        payloads,
        parallel,
        |i| {
            let (c, p, struck) = (client.clone(), payloads.clone(), struck.clone());
            let path = format!("{prefix}/f{i}");
            async move {
                if i == n / 3 && !struck.swap(true, std::sync::atomic::Ordering::SeqCst) {
                    // SAFETY: kill(2) on a node process of the benchmark's own cluster.
                    unsafe { libc::kill(pid, signal) };
                }
                c.put_bytes(&path, p[i].clone(), None)
                    .await
                    .with_context(|| format!("put {path} (node {victim} {name})"))
                    .map(|_| ())
            }
        },
    )
    .await;
    if fault == Fault::Pause {
        // SAFETY: as above.
        unsafe { libc::kill(pid, libc::SIGCONT) };
    }
    let phase = phase?;
    // Every put above was acknowledged: each must read back byte-exact.
    reads(client, payloads, parallel, "check", prefix)
        .await
        .with_context(|| {
            format!(
                "an acknowledged put was lost after node {victim} was {name}; see {}",
                dir.display()
            )
        })?;
    Ok(phase)
}

/// Runs `op(i)` for every payload, `parallel` at once, as one measured phase: its
/// throughput over the payloads' bytes and each operation's latency.
async fn timed_phase<F, Fut>(
    name: &str,
    payloads: &[Vec<u8>],
    parallel: usize,
    op: F,
) -> Result<Phase>
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    use futures::StreamExt;
    let start = Instant::now();
    let results: Vec<Result<i64>> = futures::stream::iter(0..payloads.len())
        .map(|i| {
            let fut = op(i);
            async move {
                let t = Instant::now();
                fut.await?;
                Ok(t.elapsed().as_millis() as i64)
            }
        })
        .buffer_unordered(parallel)
        .collect()
        .await;
    Ok(Phase {
        name: name.to_string(),
        bytes: payloads.iter().map(|p| p.len() as u64).sum(),
        ops: payloads.len(),
        elapsed: start.elapsed(),
        latencies_ms: results.into_iter().collect::<Result<_>>()?,
    })
}

fn report(rows: &[Phase]) {
    let raw_w = rows.first().map_or(1.0, |p| p.mb_s());
    let raw_r = rows.get(1).map_or(1.0, |p| p.mb_s());
    println!();
    println!(
        "{:<36} {:>9} {:>9} {:>7} {:>7} {:>7} {:>9}",
        "PHASE", "MB/s", "ops/s", "P50", "P99", "MAX", "vs raw"
    );
    for p in rows {
        let mut l = p.latencies_ms.clone();
        l.sort_unstable();
        let base = if p.name.contains("read") {
            raw_r
        } else {
            raw_w
        };
        println!(
            "{:<36} {:>9.1} {:>9.1} {:>5}ms {:>5}ms {:>5}ms {:>9.2}",
            p.name,
            p.mb_s(),
            p.ops_s(),
            percentile(&l, 50.0),
            percentile(&l, 99.0),
            l.last().copied().unwrap_or(-1),
            p.mb_s() / base
        );
    }
    println!("(vs raw: throughput as a ratio to the same disk's write+fsync or read of the same bytes, measured in this run; the MAX of a SIGSTOP or SIGKILL phase is the longest a client waited: the stall)");
}
