//! Real clients through a SIGKILL of the Active gateway (issue 10, "Done when" 2):
//! on a `keel dev up` cluster, both copies first run once undisturbed (a baseline,
//! printed, not asserted); then `nfs-cp` (libnfs-utils) copies a file of tens of MB into
//! the NFS export while boto3 (python3) uploads another, multipart, to the S3 bucket;
//! once both are seen in flight (the NFS file partly written, per `nfs-ls`; at least
//! one S3 part sent, per boto3's progress callback) the Active of set `gw` is
//! SIGKILLed. Each client may fail; it is then run again, as a user would, until it
//! succeeds within a deadline. Then both files are read back, through both protocols,
//! and compared byte for byte; no NFS client output anywhere says NFS3ERR_STALE.
//!
//! Retrying an NFS copy: `nfs-cp` creates its target exclusively, so a retry onto the
//! partial file gets NFS3ERR_EXIST, and libnfs-utils has no tool that removes a file.
//! Each retry therefore copies to a new name (`big-2.bin`, `big-3.bin`, ...); the
//! partial file stays, and its name is printed. A retried S3 upload reuses its key (a
//! PUT replaces the object).
//!
//! Skipped, with the reason printed, where `nfs-cp`/`nfs-ls`/`nfs-cat` or python3 with
//! boto3 are missing (`.ci/run` installs them).

mod support;

use serde_json::Value;
use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use support::gateway::*;
use support::*;

/// The size of each transferred file: tens of MB, so the copy is still running when
/// the Active is killed.
const SIZE: usize = 64 << 20;
/// An S3 part (and boto3's multipart threshold).
const PART: usize = 8 << 20;
/// Deadline for one client run (a copy or a read-back).
const RUN_DEADLINE: Duration = Duration::from_secs(180);
/// Deadline, from the kill, for a client to have succeeded (with its retries).
const RETRY_DEADLINE: Duration = Duration::from_secs(240);
/// At most this many runs of one client.
const MAX_ATTEMPTS: u32 = 30;
/// A client's pause between a failed run and the next.
const BACKOFF: Duration = Duration::from_millis(500);
/// Deadline for both transfers to be seen in flight.
const IN_FLIGHT_DEADLINE: Duration = Duration::from_secs(120);

/// boto3: `put PATH KEY` uploads (multipart, printing the bytes sent so far after each
/// chunk), `get KEY PATH` downloads. The endpoint, key and bucket come from the
/// environment (KEEL_S3_*), as cluster.json gives them.
const BOTO3: &str = r#"
import os, sys, threading
import boto3, botocore.config
from boto3.s3.transfer import TransferConfig
mode, a, b = sys.argv[1:4]
s3 = boto3.client(
    "s3",
    endpoint_url=os.environ["KEEL_S3_ENDPOINT"],
    aws_access_key_id=os.environ["KEEL_S3_KEY"],
    aws_secret_access_key=os.environ["KEEL_S3_SECRET"],
    region_name="us-east-1",
    config=botocore.config.Config(
        retries={"max_attempts": 3, "mode": "standard"},
        connect_timeout=5, read_timeout=60, s3={"addressing_style": "path"}),
)
part = int(os.environ["KEEL_S3_PART"])
cfg = TransferConfig(multipart_threshold=part, multipart_chunksize=part, max_concurrency=2)
bucket = os.environ["KEEL_S3_BUCKET"]
lock, sent = threading.Lock(), [0]
def progress(n):
    with lock:
        sent[0] += n
        print(sent[0], flush=True)
if mode == "put":
    s3.upload_file(a, bucket, b, Config=cfg, Callback=progress)
else:
    s3.download_file(bucket, a, b, Config=cfg)
"#;

fn tools_missing() -> Option<String> {
    for t in ["nfs-cp", "nfs-ls", "nfs-cat"] {
        let found = std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).any(|d| d.join(t).is_file()))
            .unwrap_or(false);
        if !found {
            return Some(format!(
                "{t} not found: install libnfs-utils (apt-get install -y libnfs-utils)"
            ));
        }
    }
    let boto3 = Command::new("python3")
        .args(["-c", "import boto3"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if !boto3.is_ok_and(|s| s.success()) {
        return Some("python3 with boto3 not found: pip install boto3".into());
    }
    None
}

/// A client process; killed when dropped if it is still running (also when the test
/// fails). Its output is drained by threads; stdout line by line into `lines`.
struct Run {
    what: String,
    child: Child,
    started: Instant,
    lines: Arc<Mutex<Vec<String>>>,
    out: Option<JoinHandle<Vec<u8>>>,
    err: Option<JoinHandle<Vec<u8>>>,
    exited: Option<(ExitStatus, Instant)>,
}

/// How a run ended.
struct Ended {
    ok: bool,
    at: Instant,
    took: Duration,
    status: String,
    stdout: Vec<u8>,
    stderr: String,
}

impl Run {
    fn spawn(what: &str, cmd: &mut Command, keep_lines: bool) -> Run {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        let lines = Arc::new(Mutex::new(Vec::new()));
        let stdout = child.stdout.take().expect("stdout");
        let out = if keep_lines {
            let lines = lines.clone();
            std::thread::spawn(move || {
                let mut all = Vec::new();
                for l in BufReader::new(stdout).lines().map_while(Result::ok) {
                    all.extend_from_slice(l.as_bytes());
                    all.push(b'\n');
                    lines.lock().unwrap().push(l);
                }
                all
            })
        } else {
            std::thread::spawn(move || {
                let mut all = Vec::new();
                let _ = { stdout }.read_to_end(&mut all);
                all
            })
        };
        let mut stderr = child.stderr.take().expect("stderr");
        let err = std::thread::spawn(move || {
            let mut all = Vec::new();
            let _ = stderr.read_to_end(&mut all);
            all
        });
        Run {
            what: what.to_string(),
            child,
            started: Instant::now(),
            lines,
            out: Some(out),
            err: Some(err),
            exited: None,
        }
    }

    /// Has it exited? (Records when it was first seen exited.)
    fn running(&mut self) -> bool {
        if self.exited.is_none() {
            if let Ok(Some(s)) = self.child.try_wait() {
                self.exited = Some((s, Instant::now()));
            }
        }
        self.exited.is_none()
    }

    /// Waits for the exit (killing the client after `deadline`: a failed run).
    fn finish(mut self, deadline: Duration) -> Ended {
        let mut timed_out = false;
        while self.running() {
            if self.started.elapsed() > deadline {
                let _ = self.child.kill();
                timed_out = true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let (status, at) = self.exited.expect("exited");
        let stdout = self
            .out
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default();
        let stderr = self
            .err
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default();
        Ended {
            ok: status.success() && !timed_out,
            at,
            took: at.duration_since(self.started),
            status: if timed_out {
                format!("killed after {deadline:?}")
            } else {
                status.to_string()
            },
            stdout,
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
        }
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        if self.running() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// What the test knows about the cluster's export.
struct Export {
    nfs: SocketAddr,
    export: String,
    s3_env: Vec<(&'static str, String)>,
    /// Every NFS client's stderr and stdout (not file contents), checked for STALE.
    nfs_output: Mutex<String>,
}

impl Export {
    fn new(c: &Cluster, nfs: SocketAddr) -> Export {
        let f = c.cluster_file();
        let s = |k: &str| {
            f["s3"][k]
                .as_str()
                .unwrap_or_else(|| panic!("s3.{k}"))
                .to_string()
        };
        Export {
            nfs,
            export: f["nfs"]["export"].as_str().expect("nfs.export").to_string(),
            s3_env: vec![
                ("KEEL_S3_ENDPOINT", s("endpoint")),
                ("KEEL_S3_KEY", s("access_key")),
                ("KEEL_S3_SECRET", s("secret_key")),
                ("KEEL_S3_BUCKET", s("bucket")),
                ("KEEL_S3_PART", PART.to_string()),
            ],
            nfs_output: Mutex::new(String::new()),
        }
    }

    /// `nfs://HOST/EXPORT/PATH?...` (PATH empty: the export's root).
    fn url(&self, path: &str) -> String {
        let port = self.nfs.port();
        format!(
            "nfs://{}/{}/{path}?nfsport={port}&mountport={port}&version=3",
            self.nfs.ip(),
            self.export
        )
    }

    fn nfs(&self, tool: &str, args: &[&str]) -> Run {
        Run::spawn(
            &format!("{tool} {args:?}"),
            Command::new(tool).args(args),
            false,
        )
    }

    fn boto3(&self, args: &[&str]) -> Run {
        let mut cmd = Command::new("python3");
        cmd.args(["-c", BOTO3]).args(args).envs(self.s3_env.clone());
        Run::spawn(&format!("boto3 {args:?}"), &mut cmd, true)
    }

    /// Keeps an NFS client's messages for the STALE check.
    fn note_nfs(&self, what: &str, e: &Ended, with_stdout: bool) {
        let mut all = self.nfs_output.lock().unwrap();
        all.push_str(&format!("{what}: {}\n{}", e.status, e.stderr));
        if with_stdout {
            all.push_str(&String::from_utf8_lossy(&e.stdout));
        }
    }

    /// The size of `name` in the export's root per `nfs-ls`, if it is listed.
    fn nfs_size(&self, name: &str) -> Option<u64> {
        let e = self
            .nfs("nfs-ls", &[&self.url("")])
            .finish(Duration::from_secs(30));
        self.note_nfs("nfs-ls", &e, true);
        let text = String::from_utf8_lossy(&e.stdout).into_owned();
        text.lines().find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() >= 6 && f[f.len() - 1] == name)
                .then(|| f[4].parse().ok())
                .flatten()
        })
    }
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Proto {
    Nfs,
    S3,
}

/// One client's story: its runs, and where its file is.
struct Outcome {
    proto: Proto,
    /// (what, how it ended, seconds from the kill to its end: negative before it)
    runs: Vec<(String, String, f64)>,
    /// The name (NFS) or key (S3) the successful run wrote.
    name: String,
    /// Whether the first run was seen in flight before the kill.
    in_flight: bool,
    /// From the first run's start to the successful run's end.
    took: Duration,
}

/// Runs `proto`'s copy of `src` until it succeeds: sets `flag` once the first run is
/// seen in flight (or has ended), and retries only after the kill (`killed`).
fn copy_with_retries(
    x: &Export,
    proto: Proto,
    src: &Path,
    flag: &AtomicBool,
    killed: &OnceLock<Instant>,
) -> Outcome {
    let src_arg = src.to_str().expect("utf-8 path").to_string();
    let mut out = Outcome {
        proto,
        runs: Vec::new(),
        name: String::new(),
        in_flight: false,
        took: Duration::ZERO,
    };
    let first = Instant::now();
    for attempt in 1..=MAX_ATTEMPTS {
        let name = match proto {
            Proto::Nfs => format!("big-{attempt}.bin"),
            Proto::S3 => "big-s3.bin".to_string(),
        };
        let mut run = match proto {
            Proto::Nfs => x.nfs("nfs-cp", &[&src_arg, &x.url(&name)]),
            Proto::S3 => x.boto3(&["put", &src_arg, &name]),
        };
        eprintln!("    {proto:?}: run {attempt}: {}", run.what);
        let what = run.what.clone();
        if attempt == 1 {
            // Seen in flight: the NFS file partly written; an S3 part acknowledged.
            let mut last = 0u64;
            while run.running() && run.started.elapsed() < IN_FLIGHT_DEADLINE {
                let done = match proto {
                    Proto::Nfs => x.nfs_size(&name).unwrap_or(0),
                    Proto::S3 => run
                        .lines
                        .lock()
                        .unwrap()
                        .last()
                        .and_then(|l| l.trim().parse().ok())
                        .unwrap_or(0),
                };
                last = done;
                let min = match proto {
                    Proto::Nfs => 1,
                    Proto::S3 => PART as u64,
                };
                if done >= min && done < SIZE as u64 {
                    eprintln!("    {proto:?}: in flight, {done} of {SIZE} bytes");
                    out.in_flight = run.running();
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            if !out.in_flight {
                eprintln!("    {proto:?}: NOT seen in flight ({last} bytes seen); checking the bytes anyway");
            }
            flag.store(true, Ordering::SeqCst);
        }
        let e = run.finish(RUN_DEADLINE);
        if proto == Proto::Nfs {
            x.note_nfs(&what, &e, true);
        }
        let since = match killed.get() {
            Some(k) if e.at >= *k => e.at.duration_since(*k).as_secs_f64(),
            Some(k) => -k.duration_since(e.at).as_secs_f64(),
            None => f64::NAN,
        };
        eprintln!(
            "    {proto:?}: run {attempt} ended {}: {since:.1} s after the kill{}",
            e.status,
            if e.ok {
                String::new()
            } else {
                format!("; stderr: {}", e.stderr.trim())
            }
        );
        out.runs.push((what, e.status.clone(), since));
        if e.ok {
            out.name = name;
            out.took = e.at.duration_since(first);
            return out;
        }
        // Nothing may fail before the kill; after it, a user retries.
        assert!(
            killed.get().is_some_and(|k| e.at >= *k),
            "{proto:?}: run {attempt} failed before the kill: {}: {}",
            e.status,
            e.stderr
        );
        let k = *killed.get().expect("killed");
        assert!(
            k.elapsed() < RETRY_DEADLINE,
            "{proto:?}: no successful run within {RETRY_DEADLINE:?} of the kill: {:?}",
            out.runs
        );
        std::thread::sleep(BACKOFF);
    }
    panic!(
        "{proto:?}: no successful run in {MAX_ATTEMPTS} runs: {:?}",
        out.runs
    );
}

/// Deterministic bytes that do not compress or repeat at any chunk size.
fn payload(seed: u64) -> Vec<u8> {
    let mut s = seed | 1;
    let mut v = Vec::with_capacity(SIZE);
    while v.len() < SIZE {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        v.extend_from_slice(&s.to_le_bytes());
    }
    v.truncate(SIZE);
    v
}

fn first_difference(a: &[u8], b: &[u8]) -> String {
    match a.iter().zip(b).position(|(x, y)| x != y) {
        Some(i) => format!("first difference at byte {i}"),
        None => format!("lengths {} and {}", a.len(), b.len()),
    }
}

/// Reads `name` back through NFS (`nfs-cat`) and through S3 (boto3), and compares.
fn read_back(x: &Export, scratch: &Path, name: &str, want: &[u8], wrote: Proto) {
    let e = x.nfs("nfs-cat", &[&x.url(name)]).finish(RUN_DEADLINE);
    x.note_nfs(&format!("nfs-cat {name}"), &e, false);
    assert!(e.ok, "nfs-cat {name}: {}: {}", e.status, e.stderr);
    assert!(
        e.stdout == want,
        "{name} (written over {wrote:?}) read over NFS differs: {}",
        first_difference(&e.stdout, want)
    );
    let local: PathBuf = scratch.join(format!("back-{name}"));
    let e = x
        .boto3(&["get", name, local.to_str().expect("utf-8 path")])
        .finish(RUN_DEADLINE);
    assert!(e.ok, "boto3 get {name}: {}: {}", e.status, e.stderr);
    let got = std::fs::read(&local).expect("the downloaded file");
    assert!(
        got == want,
        "{name} (written over {wrote:?}) read over S3 differs: {}",
        first_difference(&got, want)
    );
    eprintln!("    {name} (written over {wrote:?}): byte-exact over NFS and over S3");
}

#[test]
fn nfs_copy_and_s3_upload_finish_byte_exact_through_a_sigkill_of_the_active() {
    if let Some(why) = tools_missing() {
        eprintln!("SKIPPED: {why}");
        return;
    }
    let scratch = tempfile::tempdir().expect("temporary directory");
    let (nfs_data, s3_data) = (payload(0x6e6673), payload(0x5333));
    let nfs_src = scratch.path().join("nfs-src.bin");
    let s3_src = scratch.path().join("s3-src.bin");
    std::fs::write(&nfs_src, &nfs_data).expect("write the NFS source");
    std::fs::write(&s3_src, &s3_data).expect("write the S3 source");

    let (c, nfs, _s3, a) = start();
    let x = Export::new(&c, nfs);
    eprintln!("--- a baseline: both copies at once, no kill (measured, not asserted)");
    let (base_nfs, base_s3) = std::thread::scope(|scope| {
        let n = scope.spawn(|| {
            let src = nfs_src.to_str().expect("utf-8 path");
            let e = x
                .nfs("nfs-cp", &[src, &x.url("base.bin")])
                .finish(RUN_DEADLINE);
            x.note_nfs("nfs-cp base.bin", &e, true);
            assert!(e.ok, "nfs-cp base.bin: {}: {}", e.status, e.stderr);
            e.took
        });
        let s = scope.spawn(|| {
            let src = s3_src.to_str().expect("utf-8 path");
            let e = x.boto3(&["put", src, "base-s3.bin"]).finish(RUN_DEADLINE);
            assert!(e.ok, "boto3 put base-s3.bin: {}: {}", e.status, e.stderr);
            e.took
        });
        (n.join().expect("nfs-cp"), s.join().expect("boto3"))
    });
    eprintln!(
        "    without a kill: NFS {:.1} s, S3 {:.1} s",
        base_nfs.as_secs_f64(),
        base_s3.as_secs_f64()
    );

    let seq = c.next_event_seq();
    let killed = OnceLock::new();
    let kill_wall = OnceLock::new();
    let (nfs_flag, s3_flag) = (AtomicBool::new(false), AtomicBool::new(false));
    eprintln!("--- nfs-cp and a boto3 multipart upload of {SIZE} bytes each, both at once");
    let (n, s) = std::thread::scope(|scope| {
        let n = scope.spawn(|| copy_with_retries(&x, Proto::Nfs, &nfs_src, &nfs_flag, &killed));
        let s = scope.spawn(|| copy_with_retries(&x, Proto::S3, &s3_src, &s3_flag, &killed));
        // Both seen in flight (or ended, or a copy thread failed): then the kill.
        wait_for(
            "both copies to be in flight",
            IN_FLIGHT_DEADLINE * 2,
            |_| {
                let ready = |f: &AtomicBool, h: &std::thread::ScopedJoinHandle<'_, Outcome>| {
                    f.load(Ordering::SeqCst) || h.is_finished()
                };
                (ready(&nfs_flag, &n) && ready(&s3_flag, &s)).then_some(())
            },
        );
        eprintln!("--- SIGKILL the Active, node {a}");
        let at = Instant::now();
        killed.set(at).expect("killed once");
        kill_wall
            .set(std::time::SystemTime::now())
            .expect("killed once");
        let pid = c.signal(a, libc::SIGKILL);
        c.wait_gone(pid);
        (
            n.join().expect("the NFS copy"),
            s.join().expect("the S3 upload"),
        )
    });

    eprintln!("--- the timeline");
    let events: Vec<Value> = c.wait_events("the takeover's events", seq, FAILOVER, |ev| {
        ev.iter()
            .any(|e| kind(e) == "gateway_serving" && e["set"] == "gw" && e["node"] != a)
            .then(|| ev.to_vec())
    });
    print_timeline(&events);
    let kill_ms = kill_wall
        .get()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_millis() as i64)
        .expect("the kill's time");
    if let Some(t) = events
        .iter()
        .find(|e| kind(e) == "gateway_serving" && e["set"] == "gw" && e["node"] != a)
        .and_then(|e| rfc3339_millis(e["time"].as_str()?))
    {
        eprintln!(
            "    the new Active served the export {} ms after the kill",
            t - kill_ms
        );
    }

    eprintln!("--- the outcome");
    for o in [&n, &s] {
        for (what, status, since) in &o.runs {
            eprintln!(
                "    {:?}: {what}: {status}, {since:.1} s after the kill",
                o.proto
            );
        }
        eprintln!(
            "    {:?}: {} run(s), {:.1} s from the first start to success",
            o.proto,
            o.runs.len(),
            o.took.as_secs_f64()
        );
        if !o.in_flight {
            eprintln!(
                "    {:?}: the first run had finished before the kill (not in flight)",
                o.proto
            );
        }
    }

    eprintln!("--- read back, byte for byte, through both protocols");
    read_back(&x, scratch.path(), &n.name, &nfs_data, Proto::Nfs);
    read_back(&x, scratch.path(), &s.name, &s3_data, Proto::S3);
    let nfs_output = x.nfs_output.lock().unwrap().clone();
    assert!(
        !nfs_output.to_uppercase().contains("STALE"),
        "an NFS client saw a stale handle:\n{nfs_output}"
    );
    if n.runs.len() > 1 {
        eprintln!(
            "    partial NFS files left in the export: {}",
            (1..n.runs.len())
                .map(|i| format!("big-{i}.bin"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
}
