//! What an operator reads: the health verdict of `status`, the event log and its
//! filters, the metrics, and the CLI's behaviour on a closed pipe and a port in use.
//!
//! Checks: a fresh cluster is `HEALTH_OK` with capacity figures; a killed node makes it
//! `HEALTH_WARN` with a reason naming the node; with site 1 and the tiebreaker gone
//! the verdict is `HEALTH_ERR`, says there is no quorum, the JSON says `stale`, and
//! `status --check` and `health` exit 2; events come in commit order, each once, and
//! their filters keep only what they name; no command panics when its output pipe is
//! closed; `dev up` on a port in use fails at once naming the port.

mod support;

use serde_json::Value;
use std::os::fd::{FromRawFd, OwnedFd};
use std::process::{Command, Stdio};
use std::time::Duration;
use support::*;

const SETTLE: Duration = Duration::from_secs(60);

fn health(s: &Value) -> &str {
    s["health"].as_str().unwrap_or("")
}

fn reasons(s: &Value) -> Vec<String> {
    s["reasons"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r.as_str().map(str::to_string))
        .collect()
}

/// Events printed by `keel events ARGS --json`.
fn events(c: &Cluster, args: &[&str]) -> Vec<Value> {
    let mut all = vec!["events", "--json"];
    all.extend_from_slice(args);
    c.keel_ok(&all)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

/// Runs `keel --cluster DIR ARGS` with its standard output a pipe whose reading end is
/// already closed; returns how it ended and its standard error.
fn run_into_a_closed_pipe(c: &Cluster, args: &[&str]) -> (std::process::ExitStatus, String) {
    let mut fds = [0; 2];
    // SAFETY: pipe(2) fills two new descriptors, each owned once below.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0, "pipe");
    // SAFETY: fresh descriptors from pipe(2), owned here and nowhere else.
    let (read_end, write_end) =
        unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    drop(read_end);
    let out = Command::new(KEEL)
        .arg("--cluster")
        .arg(&c.dir)
        .args(args)
        .env_remove("KEEL_CLUSTER")
        .stdin(Stdio::null())
        .stdout(Stdio::from(write_end))
        .stderr(Stdio::piped())
        .output()
        .expect("running keel");
    (
        out.status,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The samples of `/metrics` named `name` (with any labels): (labels, value).
fn samples(body: &str, name: &str) -> Vec<(String, f64)> {
    body.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let (bare, labels) = series.split_once('{').unwrap_or((series, ""));
            (bare == name).then(|| (labels.to_string(), value.parse().unwrap_or(f64::NAN)))
        })
        .collect()
}

#[test]
fn a_fresh_cluster_is_healthy_and_a_killed_node_makes_it_warn_naming_the_node() {
    let c = Cluster::start_storage(ClusterSpec {
        no_restart: true,
        ..ClusterSpec::default()
    });
    let tmp = tempfile::tempdir().expect("temporary directory");

    eprintln!("--- a fresh cluster: HEALTH_OK, no reasons, not stale, with capacity");
    let s = c.wait_status("HEALTH_OK", SETTLE, |s| {
        (health(s) == "HEALTH_OK").then(|| s.clone())
    });
    assert_eq!(s["stale"], false, "{s}");
    assert!(reasons(&s).is_empty(), "{s}");
    for n in nodes(&s) {
        let cap = &n["capacity"];
        assert!(
            cap["disk_total_bytes"].as_u64().unwrap_or(0) > 0,
            "node capacity: {n}"
        );
        assert!(
            cap["disk_free_bytes"].as_u64() <= cap["disk_total_bytes"].as_u64(),
            "{n}"
        );
    }
    let local = write_file(tmp.path(), "one.txt", "one object");
    c.put_ok(&local, "/one.txt");
    let s = c.wait_status("the object counted", SETTLE, |s| {
        (s["totals"]["objects"].as_u64().unwrap_or(0) >= 1).then(|| s.clone())
    });
    assert!(
        storage_sets(&s)
            .iter()
            .all(|x| x["objects"].is_u64() && x["bytes"].is_u64()),
        "{s}"
    );
    let text = c.keel_ok(&["status"]);
    assert_eq!(text.lines().next(), Some("HEALTH_OK"), "{text}");
    assert!(text.contains(" up "), "ages of up nodes: {text}");
    assert!(text.contains("total: 3/3 nodes up"), "{text}");
    let out = c.keel(&["status", "--check"]);
    assert!(out.ok(), "status --check on HEALTH_OK: {}", out.status);
    let out = c.keel(&["health"]);
    assert!(out.ok() && out.stdout.starts_with("HEALTH_OK"), "{out:?}");

    eprintln!("--- metrics operators expect, with Prometheus names");
    let (code, _, body) = http_get(&c.admin_addr(1), "/metrics").expect("GET /metrics");
    assert_eq!(code, 200);
    for name in [
        "keel_build_info",
        "keel_disk_total_bytes",
        "keel_disk_used_bytes",
        "keel_disk_free_bytes",
        "keel_set_in_sync_members",
        "keel_member_state",
        "keel_storage_written_bytes_total",
        "keel_storage_put_duration_seconds_bucket",
        "keel_storage_get_duration_seconds_bucket",
        "keel_storage_fsync_duration_seconds_bucket",
        "keel_storage_replication_duration_seconds_bucket",
    ] {
        assert!(
            !samples(&body, name).is_empty(),
            "no {name} in /metrics:\n{body}"
        );
    }
    let objects: f64 = (1..=3)
        .map(|n| {
            let (_, _, body) = http_get(&c.admin_addr(n), "/metrics").expect("GET /metrics");
            samples(&body, "keel_storage_set_objects")
                .iter()
                .map(|(_, v)| v)
                .sum::<f64>()
        })
        .sum();
    assert!(objects >= 1.0, "keel_storage_set_objects counts the object");

    eprintln!("--- SIGKILL node 3: HEALTH_WARN, a reason naming node 3");
    let pid = c.signal(3, libc::SIGKILL);
    c.wait_gone(pid);
    let s = c.wait_status("HEALTH_WARN naming node 3", SETTLE, |s| {
        (health(s) == "HEALTH_WARN" && reasons(s).iter().any(|r| r.starts_with("node 3 failed")))
            .then(|| s.clone())
    });
    assert_eq!(s["stale"], false, "{s}");
    let out = c.keel(&["status", "--check"]);
    assert!(
        out.ok(),
        "status --check on HEALTH_WARN exits 0: {}",
        out.status
    );
    let text = c.keel_ok(&["status"]);
    assert_eq!(text.lines().next(), Some("HEALTH_WARN"), "{text}");
    assert!(text.contains("failed") && text.contains(" ago"), "{text}");

    eprintln!("--- no set has two acting Primaries among the live nodes' metrics");
    let mut acting: std::collections::BTreeMap<String, u32> = Default::default();
    for n in [1, 2] {
        let (_, _, body) = http_get(&c.admin_addr(n), "/metrics").expect("GET /metrics");
        for (labels, v) in samples(&body, "keel_acting_primary") {
            if v == 1.0 {
                *acting.entry(labels).or_default() += 1;
            }
        }
    }
    assert!(acting.values().all(|n| *n == 1), "{acting:?}");

    eprintln!("--- events: commit order, each once, filters");
    let all = events(&c, &[]);
    let seqs: Vec<u64> = all.iter().filter_map(|e| e["seq"].as_u64()).collect();
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "not in commit order, or repeated: {seqs:?}"
    );
    let elections: Vec<&str> = all
        .iter()
        .filter(|e| e["kind"] == "leader_elected")
        .filter_map(|e| e["detail"].as_str())
        .collect();
    let mut terms: Vec<&str> = elections
        .iter()
        .filter_map(|d| d.split(':').next())
        .collect();
    let n = terms.len();
    terms.dedup();
    assert_eq!(terms.len(), n, "an election recorded twice: {elections:?}");
    let failed = events(&c, &["--node", "3", "--kind", "node_failed"]);
    assert!(!failed.is_empty(), "node 3's failure is in the log");
    assert!(
        failed
            .iter()
            .all(|e| e["node"] == 3 && e["kind"] == "node_failed"),
        "{failed:?}"
    );
    let st1 = events(&c, &["--set", "st-1"]);
    assert!(
        !st1.is_empty() && st1.iter().all(|e| e["set"] == "st-1"),
        "{st1:?}"
    );
    let last2 = events(&c, &["-n", "2"]);
    assert_eq!(last2.len(), 2, "{last2:?}");
    let recent = events(&c, &["--since", "1h"]);
    assert!(
        recent.len() >= all.len(),
        "every event of this young cluster is within 1h"
    );
    let future = events(&c, &["--since", "2999-01-01T00:00:00Z"]);
    assert!(future.is_empty(), "{future:?}");
    let out = c.keel(&["events", "--kind", "node_exploded"]);
    assert!(
        !out.ok() && out.stderr.contains("no such event kind"),
        "{out:?}"
    );
    let text = c.keel_ok(&["events"]);
    assert!(!text.contains("(of failed node 0)"), "{text}");

    eprintln!("--- a closed pipe: no panic, for events and status");
    for args in [&["events"][..], &["status"][..], &["events", "--json"][..]] {
        let (status, stderr) = run_into_a_closed_pipe(&c, args);
        assert!(!stderr.contains("panicked"), "keel {args:?}: {stderr}");
        assert_eq!(status.code(), Some(141), "keel {args:?}: {stderr}");
    }
}

#[test]
fn without_site_1_and_the_tiebreaker_the_status_is_an_error_and_says_it_is_stale() {
    let c = Cluster::start_storage(ClusterSpec {
        nodes: 4,
        sites: 2,
        no_restart: true,
        ..ClusterSpec::default()
    });
    eprintln!("--- SIGKILL nodes 1 and 2 (site 1) and 5 (the tiebreaker)");
    for n in [1, 2, 5] {
        let pid = c.signal(n, libc::SIGKILL);
        c.wait_gone(pid);
    }
    let s = c.wait_status("HEALTH_ERR, stale", SETTLE, |s| {
        (health(s) == "HEALTH_ERR" && s["stale"] == true).then(|| s.clone())
    });
    let why = reasons(&s);
    assert!(
        why[0].contains("no quorum") && why[0].contains("stale"),
        "{why:?}"
    );
    let text = c.keel_ok(&["status"]);
    assert_eq!(text.lines().next(), Some("HEALTH_ERR"), "{text}");
    assert!(
        text.contains("no quorum") && text.contains("STALE"),
        "{text}"
    );
    let out = c.keel(&["status", "--check"]);
    assert_eq!(out.status.code(), Some(2), "status --check: {out:?}");
    let out = c.keel(&["health", "--json"]);
    assert_eq!(out.status.code(), Some(2), "health: {out:?}");
    let v: Value = serde_json::from_str(out.stdout.trim()).expect("health --json is JSON");
    assert_eq!(v["health"], "HEALTH_ERR");
    assert_eq!(v["stale"], true);
}

#[test]
fn dev_up_on_a_port_in_use_fails_at_once_naming_the_port() {
    let base = free_port_block();
    let admin = base + 80;
    let _taken = std::net::TcpListener::bind(("127.0.1.1", admin)).expect("binding the admin port");
    let tmp = tempfile::tempdir().expect("temporary directory");
    let dir = tmp.path().join("cluster");
    let out = run_keel(
        &[
            "dev",
            "up",
            "--dir",
            dir.to_str().expect("utf-8 path"),
            "--base-port",
            &base.to_string(),
        ],
        Duration::from_secs(30),
    );
    assert!(!out.ok(), "dev up succeeded on a port in use: {out:?}");
    assert_eq!(out.stderr.lines().count(), 1, "one line: {}", out.stderr);
    assert!(
        out.stderr.contains(&format!("port {admin}")) && out.stderr.contains("in use"),
        "{}",
        out.stderr
    );
    assert!(!dir.join("cluster.json").exists(), "no node was started");
    assert!(
        !out.stdout.contains("Some(") && !out.stdout.contains("None"),
        "{}",
        out.stdout
    );
}
