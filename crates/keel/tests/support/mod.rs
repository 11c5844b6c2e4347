//! Test support: starts the real `keel dev up` as a child process and talks to the
//! cluster with the real CLI (`keel --cluster DIR ...`), as an operator would.
//!
//! Owns: port allocation (one block of 100 per cluster, so tests can run in parallel),
//! waiting for conditions with deadlines, and cleanup: dropping a [`Cluster`] stops
//! the supervisor with SIGTERM and SIGKILLs any node process of the cluster still
//! alive, even when the test failed. Must never: sleep in place of a condition, or
//! signal a process that does not belong to the cluster it started.

#![allow(dead_code)] // Each test binary uses a different part of this module.

pub mod gateway;

use serde_json::Value;
use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

/// The binary under test.
pub const KEEL: &str = env!("CARGO_BIN_EXE_keel");

/// How often conditions are polled.
const POLL: Duration = Duration::from_millis(100);

/// Deadline for a whole cluster to come up (leader, every node up, `default` set).
const START_DEADLINE: Duration = Duration::from_secs(60);

/// Deadline for one CLI command; each retries every member with its own timeouts.
const CLI_DEADLINE: Duration = Duration::from_secs(30);

/// Blocks of 100 ports, one per cluster: rpc = P, heartbeat = P+1, admin = P+80.
static NEXT_BLOCK: AtomicU16 = AtomicU16::new(0);
const FIRST_PORT: u16 = 7600;

/// What a command printed and how it ended.
#[derive(Debug)]
pub struct Output {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    pub fn ok(&self) -> bool {
        self.status.success()
    }
}

/// Runs `keel ARGS`; kills it if it has not finished by `deadline` and panics.
pub fn run_keel(args: &[&str], deadline: Duration) -> Output {
    let mut child = Command::new(KEEL)
        .args(args)
        .env_remove("KEEL_CLUSTER")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {KEEL}: {e}"));
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    let until = Instant::now() + deadline;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < until => std::thread::sleep(Duration::from_millis(10)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("`keel {}` did not finish in {deadline:?}", args.join(" "));
            }
        }
    };
    Output {
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    }
}

fn drain<R: Read + Send + 'static>(pipe: Option<R>) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut text = String::new();
        if let Some(mut p) = pipe {
            let _ = p.read_to_string(&mut text);
        }
        text
    })
}

/// Polls `check` until it returns `Some`, or panics after `timeout` naming `what` and
/// the last thing `check` reported through `last`.
pub fn wait_for<T>(
    what: &str,
    timeout: Duration,
    mut check: impl FnMut(&mut String) -> Option<T>,
) -> T {
    let start = Instant::now();
    let mut last = String::new();
    loop {
        if let Some(v) = check(&mut last) {
            eprintln!("    ({what}: {} ms)", start.elapsed().as_millis());
            return v;
        }
        if start.elapsed() > timeout {
            panic!("timed out after {timeout:?} waiting for {what}; last seen: {last}");
        }
        std::thread::sleep(POLL);
    }
}

/// How to start a dev cluster.
pub struct ClusterSpec {
    pub nodes: u8,
    pub sites: u8,
    pub restart_delay_ms: u64,
    /// Members per storage set (`--replicas`).
    pub replicas: usize,
    /// `--no-restart`: a node process that dies stays dead.
    pub no_restart: bool,
    /// Put the cluster directory (every node's data) on a tmpfs of this many MiB: a
    /// real, small file system that fills up.
    pub tmpfs_mib: Option<u64>,
}

impl Default for ClusterSpec {
    fn default() -> Self {
        ClusterSpec {
            nodes: 3,
            sites: 1,
            restart_delay_ms: 1000,
            replicas: 2,
            no_restart: false,
            tmpfs_mib: None,
        }
    }
}

/// A running `keel dev up`, stopped (with every node) when dropped.
pub struct Cluster {
    /// The tmpfs the cluster directory is on, if any: unmounted (after the nodes have
    /// stopped) before the temporary directory goes.
    mount: Option<TmpfsMount>,
    /// Holds the cluster directory and the supervisor's output.
    tmp: Option<tempfile::TempDir>,
    pub dir: PathBuf,
    pub base_port: u16,
    supervisor: Child,
    supervisor_log: PathBuf,
    stopped: bool,
}

impl Cluster {
    /// Starts a three-node, one-site cluster and waits until it is ready.
    pub fn start() -> Cluster {
        Cluster::start_with(ClusterSpec::default())
    }

    /// Starts a cluster and waits until `status` shows a leader, every node up and the
    /// `default` set with a Primary.
    pub fn start_with(spec: ClusterSpec) -> Cluster {
        let tmp = tempfile::Builder::new()
            .prefix("keel-test-")
            .tempdir()
            .expect("temporary directory");
        let dir = tmp.path().join("cluster");
        let mount = spec.tmpfs_mib.map(|mib| TmpfsMount::new(&dir, mib));
        let supervisor_log = tmp.path().join("supervisor.log");
        let base_port = free_port_block();
        eprintln!(
            "--- start `keel dev up` ({} nodes, {} sites) in {} on ports {base_port}+",
            spec.nodes,
            spec.sites,
            dir.display()
        );
        let log = std::fs::File::create(&supervisor_log).expect("supervisor log");
        let mut cmd = Command::new(KEEL);
        cmd.arg("dev")
            .arg("up")
            .arg("--dir")
            .arg(&dir)
            .args(["--nodes", &spec.nodes.to_string()])
            .args(["--sites", &spec.sites.to_string()])
            .args(["--restart-delay-ms", &spec.restart_delay_ms.to_string()])
            .args(["--base-port", &base_port.to_string()])
            .args(["--replicas", &spec.replicas.to_string()])
            .args(spec.no_restart.then_some("--no-restart"))
            .env_remove("KEEL_CLUSTER")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("supervisor log"))
            .stderr(log);
        // Should the test process die without unwinding, the supervisor gets SIGTERM
        // and stops its nodes (which in turn die with it).
        // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(&mut cmd, || {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                Ok(())
            });
        }
        let supervisor = cmd.spawn().expect("starting keel dev up");
        let mut cluster = Cluster {
            mount,
            tmp: Some(tmp),
            dir,
            base_port,
            supervisor,
            supervisor_log,
            stopped: false,
        };
        let want = spec.nodes as usize + usize::from(spec.sites >= 2);
        let ready = wait_for("the cluster to be ready", START_DEADLINE, |last| {
            if let Ok(Some(status)) = cluster.supervisor.try_wait() {
                panic!(
                    "keel dev up exited ({status}) before the cluster was ready:\n{}",
                    cluster.supervisor_output()
                );
            }
            let s = cluster.try_status().map_err(|e| *last = e).ok()?;
            *last = s.to_string();
            let all_up = nodes(&s).len() == want && nodes(&s).iter().all(|n| n["state"] == "up");
            let has_primary = s["sets"]
                .as_array()?
                .iter()
                .any(|set| set["id"] == "default" && !set["primary"].is_null());
            (!s["leader"].is_null() && all_up && has_primary).then_some(s)
        });
        eprintln!(
            "    ready: leader {}, default {}",
            ready["leader"],
            set(&ready, "default")
        );
        cluster
    }

    /// Starts a cluster (see [`Cluster::start_with`]) and waits until its storage
    /// layout is applied (a storage set per storage node, each with a Primary that holds
    /// its lease and every member on its in-sync list) and `dev up` has finished its
    /// startup.
    pub fn start_storage(spec: ClusterSpec) -> Cluster {
        let want = usize::from(spec.nodes);
        let cluster = Cluster::start_with(spec);
        let s = cluster.wait_status("the storage layout", START_DEADLINE, |s| {
            let sets = storage_sets(s);
            let acting = sets.iter().all(|x| {
                !x["primary"].is_null()
                    && x["lease_holder"] == x["primary"]
                    && in_sync(x).len() == x["members"].as_array().map_or(0, Vec::len)
            });
            (sets.len() == want && acting).then(|| s.clone())
        });
        // Startup ends with a demo put and get of /hello.txt: let it finish first.
        wait_for("the end of `dev up`'s startup", START_DEADLINE, |last| {
            let out = cluster.supervisor_output();
            *last = out.lines().last().unwrap_or("").to_string();
            out.contains("[dev] cluster is up").then_some(())
        });
        for x in storage_sets(&s) {
            eprintln!(
                "    {}: primary {}, in sync {:?}",
                x["id"],
                x["primary"],
                in_sync(&x)
            );
        }
        cluster
    }

    /// Runs `keel --cluster DIR ARGS`.
    pub fn keel(&self, args: &[&str]) -> Output {
        self.keel_within(args, CLI_DEADLINE)
    }

    /// Runs `keel --cluster DIR ARGS`, killing it (and panicking) after `deadline`.
    pub fn keel_within(&self, args: &[&str], deadline: Duration) -> Output {
        let dir = self.dir.to_str().expect("utf-8 path");
        let mut all = vec!["--cluster", dir];
        all.extend_from_slice(args);
        run_keel(&all, deadline)
    }

    /// `keel put LOCAL PATH`, which must succeed.
    pub fn put_ok(&self, local: &Path, path: &str) -> String {
        self.keel_ok(&["put", local.to_str().expect("utf-8 path"), path])
    }

    /// `keel get PATH LOCAL`, which must succeed; returns the bytes written to LOCAL
    /// and the command's output (a warning goes to stderr).
    pub fn get_ok(&self, path: &str, local: &Path) -> (Vec<u8>, Output) {
        let out = self.keel(&["get", path, local.to_str().expect("utf-8 path")]);
        assert!(
            out.ok(),
            "`keel get {path}` failed ({}): {}",
            out.status,
            out.stderr
        );
        let bytes = std::fs::read(local)
            .unwrap_or_else(|e| panic!("get {path} wrote no {}: {e}", local.display()));
        (bytes, out)
    }

    /// The access key `keel dev up` wrote into `cluster.json` (`ID:SECRET`): the bearer
    /// credential of the native data API.
    pub fn data_key(&self) -> String {
        self.cluster_file()["key"]
            .as_str()
            .expect("cluster.json carries the dev access key")
            .to_string()
    }

    /// The bearer token of the admin API, derived from the cluster secret as the
    /// client library derives it (until it is rotated).
    pub fn admin_token(&self) -> String {
        keel_net::ClusterSecret::load(&self.dir.join("secret.pem"))
            .expect("the cluster secret")
            .admin_token()
    }

    /// A node's admin (and native API) address, from `cluster.json`.
    pub fn admin_addr(&self, node: u64) -> String {
        let file = self.cluster_file();
        file["nodes"]
            .as_array()
            .and_then(|ns| ns.iter().find(|n| n["id"] == node))
            .and_then(|n| n["admin"].as_str())
            .unwrap_or_else(|| panic!("node {node} has no admin address in cluster.json"))
            .to_string()
    }

    /// Waits until the process `pid` of this cluster has exited.
    pub fn wait_gone(&self, pid: u32) {
        wait_for(&format!("process {pid} to exit"), CLI_DEADLINE, |last| {
            let alive = self.node_processes().contains(&pid);
            *last = format!("still running: {alive}");
            (!alive).then_some(())
        })
    }

    /// Runs `keel --cluster DIR ARGS` and panics unless it succeeds.
    pub fn keel_ok(&self, args: &[&str]) -> String {
        let out = self.keel(args);
        assert!(
            out.ok(),
            "`keel {}` failed ({}): {}",
            args.join(" "),
            out.status,
            out.stderr
        );
        out.stdout
    }

    /// `status --json`, parsed; an error's text if the command failed.
    pub fn try_status(&self) -> Result<Value, String> {
        let out = self.keel(&["status", "--json"]);
        if !out.ok() {
            return Err(out.stderr.trim().to_string());
        }
        serde_json::from_str(out.stdout.trim())
            .map_err(|e| format!("status --json is not one JSON object ({e}): {}", out.stdout))
    }

    /// `status --json`, parsed; panics if the command fails.
    pub fn status(&self) -> Value {
        self.try_status().unwrap_or_else(|e| panic!("status: {e}"))
    }

    /// `events --json`: every event in the log, one JSON object per line.
    pub fn events(&self) -> Vec<Value> {
        self.events_since(0)
    }

    /// `events --json --since SEQ`.
    pub fn events_since(&self, seq: u64) -> Vec<Value> {
        let out = self.keel_ok(&["events", "--json", "--since", &seq.to_string()]);
        out.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                serde_json::from_str(l)
                    .unwrap_or_else(|e| panic!("event line is not JSON ({e}): {l}"))
            })
            .collect()
    }

    /// The sequence number the next event will get.
    pub fn next_event_seq(&self) -> u64 {
        self.events()
            .last()
            .and_then(|e| e["seq"].as_u64())
            .map_or(0, |s| s + 1)
    }

    /// `cluster.json` as the supervisor last wrote it (it rewrites it after restarts).
    pub fn cluster_file(&self) -> Value {
        let text = std::fs::read_to_string(self.dir.join("cluster.json")).expect("cluster.json");
        serde_json::from_str(&text).expect("cluster.json is JSON")
    }

    /// The pid of a node's process, from `cluster.json`; 0 while the supervisor has
    /// not restarted a dead one yet.
    pub fn pid_of(&self, node: u64) -> u32 {
        let file = self.cluster_file();
        let entry = file["nodes"]
            .as_array()
            .and_then(|ns| ns.iter().find(|n| n["id"] == node))
            .unwrap_or_else(|| panic!("node {node} is not in cluster.json"));
        entry["pid"].as_u64().unwrap_or(0) as u32
    }

    /// Sends `signal` to a node's process.
    pub fn signal(&self, node: u64, signal: i32) -> u32 {
        let pid = self.pid_of(node);
        assert!(pid > 0, "node {node} has no process to signal");
        // SAFETY: kill(2) with a pid the supervisor of this cluster reported.
        let r = unsafe { libc::kill(pid as i32, signal) };
        assert_eq!(r, 0, "kill({pid}, {signal}) failed");
        pid
    }

    /// Waits until the supervisor has restarted `node` (a pid other than `old`).
    pub fn wait_restarted(&self, node: u64, old: u32, timeout: Duration) -> u32 {
        wait_for(
            &format!("the supervisor to restart node {node}"),
            timeout,
            |last| {
                let pid = self.pid_of(node);
                *last = format!("pid {pid}");
                (pid != 0 && pid != old).then_some(pid)
            },
        )
    }

    /// Waits until `status` satisfies `check`, which explains itself through `last`.
    pub fn wait_status<T>(
        &self,
        what: &str,
        timeout: Duration,
        mut check: impl FnMut(&Value) -> Option<T>,
    ) -> T {
        wait_for(what, timeout, |last| {
            let s = self.try_status().map_err(|e| *last = e).ok()?;
            let r = check(&s);
            if r.is_none() {
                *last = s.to_string();
            }
            r
        })
    }

    /// Waits until the event log holds events matching `check` (given every event with
    /// `seq >= since`).
    pub fn wait_events<T>(
        &self,
        what: &str,
        since: u64,
        timeout: Duration,
        mut check: impl FnMut(&[Value]) -> Option<T>,
    ) -> T {
        wait_for(what, timeout, |last| {
            let events = self.events_since(since);
            let r = check(&events);
            if r.is_none() {
                *last = events
                    .iter()
                    .map(|e| e.to_string())
                    .collect::<Vec<_>>()
                    .join("\n");
            }
            r
        })
    }

    /// Stops the supervisor with SIGTERM and waits for it; returns how it ended.
    pub fn stop(&mut self) -> ExitStatus {
        self.stopped = true;
        // A paused node ignores SIGTERM until it runs again.
        for pid in self.node_processes() {
            // SAFETY: kill(2) on a node process of this cluster's directory.
            unsafe { libc::kill(pid as i32, libc::SIGCONT) };
        }
        // Only while it runs: once reaped, its pid may belong to another process.
        if matches!(self.supervisor.try_wait(), Ok(None)) {
            // SAFETY: kill(2) on the child this struct started, not yet reaped.
            unsafe { libc::kill(self.supervisor.id() as i32, libc::SIGTERM) };
        }
        let until = Instant::now() + Duration::from_secs(20);
        let status = loop {
            match self.supervisor.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if Instant::now() < until => std::thread::sleep(Duration::from_millis(20)),
                _ => {
                    eprintln!("    supervisor ignored SIGTERM for 20 s: SIGKILL");
                    let _ = self.supervisor.kill();
                    break self.supervisor.wait().expect("waiting for the supervisor");
                }
            }
        };
        for pid in self.node_processes() {
            eprintln!("    node process {pid} outlived its supervisor: SIGKILL");
            // SAFETY: as above.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        }
        status
    }

    /// Live node processes of this cluster: every `keel node --config FILE` with FILE
    /// in this cluster's directory, found in /proc whoever started them.
    pub fn node_processes(&self) -> Vec<u32> {
        let mine = self.dir.to_string_lossy().into_owned();
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return vec![];
        };
        entries
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
            .filter(|pid| {
                let Ok(raw) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
                    return false;
                };
                let args: Vec<String> = raw
                    .split(|b| *b == 0)
                    .map(|a| String::from_utf8_lossy(a).into_owned())
                    .collect();
                let is_zombie = std::fs::read_to_string(format!("/proc/{pid}/stat"))
                    .map(|s| {
                        s.rsplit(')')
                            .next()
                            .unwrap_or("")
                            .trim_start()
                            .starts_with('Z')
                    })
                    .unwrap_or(true);
                !is_zombie
                    && args.iter().any(|a| a == "node")
                    && args.iter().any(|a| a.starts_with(&mine))
            })
            .collect()
    }

    /// The supervisor's output so far.
    pub fn supervisor_output(&self) -> String {
        std::fs::read_to_string(&self.supervisor_log).unwrap_or_default()
    }

    /// A node's log file.
    pub fn node_log(&self, node: u64) -> String {
        std::fs::read_to_string(self.dir.join(format!("n{node}/node.log"))).unwrap_or_default()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if !self.stopped {
            self.stop();
        }
        if std::thread::panicking() {
            let out = self.supervisor_output();
            let tail: Vec<&str> = out.lines().rev().take(40).collect();
            eprintln!("--- supervisor output (last 40 lines):");
            for line in tail.iter().rev() {
                eprintln!("    {line}");
            }
            if let Some(tmp) = self.tmp.take() {
                eprintln!("--- cluster directory kept: {}", tmp.keep().display());
            }
        }
    }
}

/// A tmpfs mounted for a test (needs root, as CI has), unmounted when dropped.
pub struct TmpfsMount {
    path: PathBuf,
}

impl TmpfsMount {
    pub fn new(path: &Path, mib: u64) -> TmpfsMount {
        std::fs::create_dir_all(path).expect("mount point");
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mib}m"), "tmpfs"])
            .arg(path)
            .output()
            .expect("running mount");
        assert!(
            out.status.success(),
            "mounting a {mib} MiB tmpfs at {} failed (this test needs root): {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        TmpfsMount {
            path: path.to_path_buf(),
        }
    }
}

impl Drop for TmpfsMount {
    fn drop(&mut self) {
        let out = Command::new("umount").arg(&self.path).output();
        if !out.as_ref().is_ok_and(|o| o.status.success()) {
            // A process that still has a file open: detach lazily so it goes anyway.
            let _ = Command::new("umount").arg("-l").arg(&self.path).output();
        }
    }
}

/// The first block of ports nobody listens on, from a counter shared by the tests of
/// this process (other processes may use some blocks: each is checked).
pub fn free_port_block() -> u16 {
    loop {
        let k = NEXT_BLOCK.fetch_add(1, Ordering::SeqCst);
        let base = FIRST_PORT
            .checked_add(k.checked_mul(100).expect("out of port blocks"))
            .filter(|b| *b < 65000)
            .expect("out of port blocks");
        let free = [base, base + 80].iter().all(|p| {
            std::net::TcpListener::bind(("127.0.1.1", *p)).is_ok()
                && std::net::TcpListener::bind(("127.1.1.1", *p)).is_ok()
        }) && std::net::UdpSocket::bind(("127.0.1.1", base + 1)).is_ok();
        if free {
            return base;
        }
    }
}

/// The `nodes` array of a status.
pub fn nodes(status: &Value) -> Vec<Value> {
    status["nodes"].as_array().cloned().unwrap_or_default()
}

/// One node of a status (`Null` if absent).
pub fn node(status: &Value, id: u64) -> Value {
    nodes(status)
        .into_iter()
        .find(|n| n["id"] == id)
        .unwrap_or(Value::Null)
}

/// One failover set of a status (`Null` if absent).
pub fn set(status: &Value, id: &str) -> Value {
    status["sets"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["id"] == id).cloned())
        .unwrap_or(Value::Null)
}

/// The storage sets of a status (`kind` = `storage`).
pub fn storage_sets(status: &Value) -> Vec<Value> {
    status["sets"]
        .as_array()
        .map(|s| {
            s.iter()
                .filter(|x| x["kind"] == "storage")
                .cloned()
                .collect()
        })
        .unwrap_or_default()
}

/// A set's in-sync list (node ids).
pub fn in_sync(set: &Value) -> Vec<u64> {
    set["in_sync"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_u64).collect())
        .unwrap_or_default()
}

/// A set's members that are nodes, in order.
pub fn member_nodes(set: &Value) -> Vec<u64> {
    set["members"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_u64).collect())
        .unwrap_or_default()
}

/// The Primary and epoch of a set.
pub fn primary_and_epoch(status: &Value, set_id: &str) -> (Option<u64>, u64) {
    let s = set(status, set_id);
    (s["primary"].as_u64(), s["epoch"].as_u64().unwrap_or(0))
}

/// Node ids of a set's Alternates.
pub fn alternates(status: &Value, set_id: &str) -> Vec<u64> {
    set(status, set_id)["alternates"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_u64).collect())
        .unwrap_or_default()
}

/// The index of the first event at or after `from` that matches `pred`.
pub fn find_event(events: &[Value], from: usize, pred: impl Fn(&Value) -> bool) -> Option<usize> {
    events
        .iter()
        .enumerate()
        .skip(from)
        .find(|(_, e)| pred(e))
        .map(|(i, _)| i)
}

/// Milliseconds since the Unix epoch of an RFC 3339 date-time
/// (`2024-05-01T12:00:00.123Z`, or with a `+hh:mm` offset); `None` if malformed.
pub fn rfc3339_millis(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let t = s.get(r)?;
        t.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| t.parse().ok())?
    };
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let mut i = 19;
    let mut millis = 0;
    if b[i] == b'.' {
        let start = i + 1;
        i = start;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == start {
            return None;
        }
        let frac = &s[start..i];
        millis = format!("{frac:0<3}")[..3].parse::<i64>().ok()?;
    }
    let offset_min = match b.get(i)? {
        b'Z' | b'z' if i + 1 == b.len() => 0,
        sign @ (b'+' | b'-') if i + 6 == b.len() && b[i + 3] == b':' => {
            let m = num(i + 1..i + 3)? * 60 + num(i + 4..i + 6)?;
            if *sign == b'+' {
                m
            } else {
                -m
            }
        }
        _ => return None,
    };
    // Days from the civil date (Howard Hinnant's algorithm).
    let (y, m) = if mo <= 2 {
        (y - 1, mo + 9)
    } else {
        (y, mo - 3)
    };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let minutes = (days * 24 + h) * 60 + mi - offset_min;
    Some((minutes * 60 + sec) * 1000 + millis)
}

/// A plain HTTP/1.1 GET: the status code and the body.
pub fn http_get(addr: &str, path: &str) -> Result<(u16, String, String), String> {
    let r = http_request(addr, "GET", path, &[], b"")?;
    let body = String::from_utf8_lossy(&r.body).into_owned();
    Ok((r.code, r.head, body))
}

/// A certificate verifier that accepts any server certificate. These helpers probe a
/// member's HTTP port (TLS only); verifying its certificate against the cluster CA is
/// the client library's job, exercised by every CLI call of the tests.
#[derive(Debug)]
struct AnyCertificate(std::sync::Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &[rustls::pki_types::CertificateDer<'_>],
        _: &rustls::pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Sends `request` to `addr` over TLS and reads the whole answer (`Connection: close`).
fn tls_exchange(addr: &str, request: &[u8]) -> Result<Vec<u8>, String> {
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(std::sync::Arc::new(AnyCertificate(provider)))
        .with_no_client_auth();
    let ip = addr
        .rsplit_once(':')
        .map(|(h, _)| h)
        .unwrap_or(addr)
        .parse::<std::net::IpAddr>()
        .map_err(|e| format!("{addr}: {e}"))?;
    let conn = rustls::ClientConnection::new(
        std::sync::Arc::new(config),
        rustls::pki_types::ServerName::IpAddress(ip.into()),
    )
    .map_err(|e| e.to_string())?;
    let tcp = std::net::TcpStream::connect(addr).map_err(|e| format!("{addr}: {e}"))?;
    tcp.set_read_timeout(Some(Duration::from_secs(30)))
        .map_err(|e| e.to_string())?;
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    tls.write_all(request)
        .map_err(|e| format!("sending to {addr}: {e}"))?;
    let mut raw = vec![];
    let mut buf = [0u8; 16 * 1024];
    loop {
        match tls.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            // A peer that closes without close_notify after a complete answer.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !raw.is_empty() => break,
            Err(e) => return Err(format!("reading {addr}: {e}")),
        }
    }
    Ok(raw)
}

/// Sends `request` to `addr` in plain TCP (no TLS) and reads what comes back, if
/// anything, until the peer closes.
pub fn plain_exchange(addr: &str, request: &[u8]) -> Result<Vec<u8>, String> {
    let mut stream = std::net::TcpStream::connect(addr).map_err(|e| format!("{addr}: {e}"))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    stream
        .write_all(request)
        .map_err(|e| format!("sending to {addr}: {e}"))?;
    let mut raw = vec![];
    let _ = stream.read_to_end(&mut raw);
    Ok(raw)
}

/// What an HTTP server answered: status code, header block, body.
#[derive(Debug)]
pub struct HttpReply {
    pub code: u16,
    pub head: String,
    pub body: Vec<u8>,
}

impl HttpReply {
    /// A header's value (case-insensitive name), if present.
    pub fn header(&self, name: &str) -> Option<String> {
        self.head.lines().skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_string())
        })
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// One HTTP/1.1 request over TLS (`Connection: close`) with raw bytes both ways;
/// `path` goes on the request line as given, so it may carry any percent-encoding.
pub fn http_request(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<HttpReply, String> {
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    let mut bytes = req.into_bytes();
    bytes.extend_from_slice(body);
    let raw = tls_exchange(addr, &bytes).map_err(|e| format!("{path}: {e}"))?;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| format!("no HTTP header in {:?}", String::from_utf8_lossy(&raw)))?;
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("no status code in {head:?}"))?;
    let mut reply = HttpReply {
        code,
        head,
        body: raw[split + 4..].to_vec(),
    };
    if reply
        .header("transfer-encoding")
        .is_some_and(|t| t.eq_ignore_ascii_case("chunked"))
    {
        reply.body = dechunk(&reply.body)?;
    }
    Ok(reply)
}

/// Decodes a chunked transfer encoding.
fn dechunk(mut raw: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = vec![];
    loop {
        let eol = raw
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or("a chunk size line without its end")?;
        let line = String::from_utf8_lossy(&raw[..eol]);
        let size = usize::from_str_radix(line.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|e| format!("bad chunk size {line:?}: {e}"))?;
        raw = &raw[eol + 2..];
        if size == 0 {
            return Ok(out);
        }
        if raw.len() < size + 2 {
            return Err("a chunk cut short".into());
        }
        out.extend_from_slice(&raw[..size]);
        raw = &raw[size + 2..];
    }
}

/// Path of a file in a test's own temporary directory.
pub fn write_file(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("writing a test file");
    path
}

/// How long the data check waits for every in-sync list to hold every member that is
/// up (catch-up after a heal) before judging.
const CATCH_UP_DEADLINE: Duration = Duration::from_secs(60);

impl Cluster {
    /// The data invariant, checked from outside at a quiescent point, as the issue
    /// states it: every member of a storage set's committed in-sync list holds every
    /// acknowledged, undeleted object of that set at its latest version; every
    /// acknowledged file (`path` -> bytes) reads back byte-exact with `keel get`; no
    /// object a file refers to is missing on every member of its set.
    ///
    /// First waits (up to a minute) until each storage set's in-sync list holds every
    /// member that status shows up, then reads each member's own objects with
    /// `GET /v1/storage/{set}/objects` (admin token) and judges with
    /// [`keel_node::data_invariant::check`]. Members that are not up are left out of
    /// the judgement (their disk cannot be asked; the in-sync claim about a stopped
    /// node is checked when it is back). Returns every violation, one line each.
    pub fn data_violations(&self, acked: &[(String, Vec<u8>)], scratch: &Path) -> Vec<String> {
        use keel_node::admin_api::StorageObjectsView;
        use keel_node::data_invariant::{check, SetSnapshot};
        let full = |s: &Value| {
            let up: Vec<u64> = nodes(s)
                .iter()
                .filter(|n| n["state"] == "up")
                .filter_map(|n| n["id"].as_u64())
                .collect();
            storage_sets(s).iter().all(|x| {
                member_nodes(x)
                    .iter()
                    .filter(|m| up.contains(m))
                    .all(|m| in_sync(x).contains(m))
            })
        };
        let deadline = Instant::now() + CATCH_UP_DEADLINE;
        let status = loop {
            let s = self.try_status();
            match s {
                Ok(s) if full(&s) => break s,
                Ok(s) if Instant::now() >= deadline => {
                    eprintln!(
                        "    data check: in-sync lists still not full after {CATCH_UP_DEADLINE:?}"
                    );
                    break s;
                }
                _ => std::thread::sleep(POLL),
            }
        };
        let up: BTreeSet<u64> = nodes(&status)
            .iter()
            .filter(|n| n["state"] == "up")
            .filter_map(|n| n["id"].as_u64())
            .collect();
        let auth = format!("Bearer {}", self.admin_token());
        let mut snapshots = vec![];
        for x in storage_sets(&status) {
            let id = x["id"].as_str().unwrap_or("").to_string();
            let members = member_nodes(&x);
            let mut snap = SetSnapshot {
                set: id.clone(),
                members: members.clone(),
                in_sync: in_sync(&x).into_iter().filter(|n| up.contains(n)).collect(),
                ..Default::default()
            };
            for n in members.iter().filter(|n| up.contains(n)) {
                let view = http_request(
                    &self.admin_addr(*n),
                    "GET",
                    &format!("/v1/storage/{id}/objects"),
                    &[("authorization", &auth)],
                    b"",
                )
                .ok()
                .filter(|r| r.code == 200)
                .and_then(|r| serde_json::from_slice::<StorageObjectsView>(&r.body).ok());
                if let Some(v) = &view {
                    snap.acknowledged.extend(v.referenced.iter().copied());
                }
                snap.holdings.insert(*n, view.map(|v| v.objects));
            }
            snapshots.push(snap);
        }
        let mut found: Vec<String> = check(&snapshots).iter().map(|v| v.to_string()).collect();
        let local = scratch.join("data-check.read");
        for (path, want) in acked {
            let out = self.keel(&["get", path, local.to_str().expect("utf-8 path")]);
            if !out.ok() {
                found.push(format!(
                    "acknowledged file {path} cannot be read back: {}",
                    out.stderr.trim()
                ));
                continue;
            }
            match std::fs::read(&local) {
                Ok(got) if got == *want => {}
                Ok(got) => found.push(format!(
                    "acknowledged file {path} reads back other bytes ({} bytes, {} acknowledged)",
                    got.len(),
                    want.len()
                )),
                Err(e) => found.push(format!("get {path} wrote nothing readable: {e}")),
            }
        }
        let _ = std::fs::remove_file(&local);
        let objects: usize = snapshots.iter().map(|s| s.acknowledged.len()).sum();
        eprintln!(
            "    data check: {} files read back, {objects} referenced objects over {} storage sets, {} violations",
            acked.len(),
            snapshots.len(),
            found.len()
        );
        found
    }

    /// [`Cluster::data_violations`], which must find nothing.
    pub fn assert_data_invariant(&self, acked: &[(String, Vec<u8>)], scratch: &Path) {
        let found = self.data_violations(acked, scratch);
        assert!(
            found.is_empty(),
            "the data invariant is broken:\n  - {}",
            found.join("\n  - ")
        );
    }
}
