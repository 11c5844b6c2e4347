//! Membership and admission with the real binary: a candidate that knows no seed finds
//! the cluster by multicast and is admitted; a candidate speaking another protocol
//! version is refused with an event and a one-line error; a candidate holding another
//! cluster's secret is never admitted (mutual TLS); and the configuration database
//! survives SIGKILL of every node at once.

mod support;

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use support::{node, nodes, run_keel, Cluster, KEEL};

/// A `keel node` process started by a test, killed when dropped.
struct ExtraNode(Child);

impl Drop for ExtraNode {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Writes the config of an extra node 127.0.1.`id` for `cluster`'s ports.
fn extra_config(
    dir: &Path,
    cluster: &Cluster,
    id: u64,
    secret: &Path,
    extra: &str,
    seeds: &str,
) -> PathBuf {
    let p = cluster.base_port;
    let text = format!(
        r#"id = {id}
cluster = "dev"
site = "1"
data_dir = "{data}"
secret_file = "{secret}"
[[links]]
name = "a"
addr = "127.0.1.{id}"
[[links]]
name = "b"
addr = "127.1.1.{id}"
[ports]
rpc = {p}
heartbeat = {hb}
admin = {admin}
[discovery]
seeds = [{seeds}]
multicast = true
announce_interval_ms = 200
{extra}"#,
        data = dir.join(format!("n{id}")).display(),
        secret = secret.display(),
        hb = p + 1,
        admin = p + 80,
    );
    let path = dir.join(format!("n{id}.toml"));
    std::fs::write(&path, text).expect("write config");
    path
}

fn start_node(config: &Path, log: &Path) -> ExtraNode {
    let log = std::fs::File::create(log).expect("log");
    let child = Command::new(KEEL)
        .args(["node", "--config"])
        .arg(config)
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .spawn()
        .expect("start keel node");
    ExtraNode(child)
}

fn has_event(events: &[Value], kind: &str, node: u64) -> bool {
    events
        .iter()
        .any(|e| e["kind"] == kind && e["node"] == node)
}

#[test]
fn a_candidate_found_by_multicast_is_admitted() {
    let cluster = Cluster::start();
    let tmp = tempfile::tempdir().expect("tempdir");
    let secret = cluster.dir.join("secret.pem");
    let since = cluster.next_event_seq();

    eprintln!("--- a fourth node with no seed at all: multicast discovery only");
    let cfg = extra_config(tmp.path(), &cluster, 4, &secret, "", "");
    let _n4 = start_node(&cfg, &tmp.path().join("n4.log"));
    cluster.wait_status("node 4 up", Duration::from_secs(30), |s| {
        nodes(s)
            .iter()
            .any(|n| n["id"] == 4 && n["state"] == "up")
            .then_some(())
    });
    cluster.wait_events(
        "node_joined for node 4",
        since,
        Duration::from_secs(10),
        |ev| has_event(ev, "node_joined", 4).then_some(()),
    );
    let log = std::fs::read_to_string(tmp.path().join("n4.log")).unwrap_or_default();
    assert!(
        log.contains("discovered by multicast"),
        "node 4 log:\n{log}"
    );
}

#[test]
fn an_incompatible_candidate_is_refused_with_an_event() {
    let cluster = Cluster::start();
    let tmp = tempfile::tempdir().expect("tempdir");
    let secret = cluster.dir.join("secret.pem");
    let since = cluster.next_event_seq();
    let seed = format!("\"127.0.1.1:{}\"", cluster.base_port);

    eprintln!("--- a candidate that speaks protocol version 99");
    let cfg = extra_config(
        tmp.path(),
        &cluster,
        5,
        &secret,
        "[dev]\nprotocol_override = 99\n",
        &seed,
    );
    let out = run_keel(
        &["node", "--config", cfg.to_str().unwrap()],
        Duration::from_secs(30),
    );
    assert!(!out.ok(), "an incompatible candidate must exit non-zero");
    let last = out
        .stderr
        .trim()
        .lines()
        .last()
        .unwrap_or_default()
        .to_string();
    assert!(
        last.starts_with("error:")
            && last.contains("refused")
            && last.contains("protocol version 99"),
        "stderr: {}",
        out.stderr
    );
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
    cluster.wait_events(
        "join_refused for node 5",
        since,
        Duration::from_secs(10),
        |ev| {
            ev.iter()
                .find(|e| e["kind"] == "join_refused" && e["node"] == 5)
                .map(|e| {
                    assert!(
                        e["detail"]
                            .as_str()
                            .unwrap_or("")
                            .contains("protocol version 99"),
                        "{e}"
                    )
                })
        },
    );
    let status = cluster.status();
    assert!(
        nodes(&status).iter().all(|n| n["id"] != 5),
        "node 5 must not be a member: {status}"
    );
}

#[test]
fn a_candidate_with_another_clusters_secret_is_never_admitted() {
    let cluster = Cluster::start();
    let tmp = tempfile::tempdir().expect("tempdir");
    let other = tmp.path().join("other-secret.pem");
    let out = run_keel(
        &[
            "secret",
            "new",
            other.to_str().unwrap(),
            "--cluster-name",
            "dev",
        ],
        Duration::from_secs(10),
    );
    assert!(out.ok(), "{}", out.stderr);
    let again = run_keel(
        &["secret", "new", other.to_str().unwrap()],
        Duration::from_secs(10),
    );
    assert!(
        !again.ok() && again.stderr.contains("refusing to overwrite"),
        "{}",
        again.stderr
    );

    eprintln!("--- a candidate with the right cluster name but the wrong secret");
    let seed = format!("\"127.0.1.1:{}\"", cluster.base_port);
    let cfg = extra_config(tmp.path(), &cluster, 6, &other, "", &seed);
    let _n6 = start_node(&cfg, &tmp.path().join("n6.log"));
    // Observe for a bounded window that it never becomes a member.
    let deadline = std::time::Instant::now() + Duration::from_secs(4);
    while std::time::Instant::now() < deadline {
        let s = cluster.status();
        assert!(
            nodes(&s).iter().all(|n| n["id"] != 6),
            "node 6 was admitted: {s}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[test]
fn the_configuration_survives_sigkill_of_every_node() {
    let cluster = Cluster::start_with(support::ClusterSpec {
        restart_delay_ms: 300,
        ..Default::default()
    });
    eprintln!("--- write: a set, a takeover");
    cluster.keel_ok(&["set", "create", "keep", "--members", "3,2,1"]);
    cluster.keel_ok(&["takeover", "keep", "--to", "2"]);
    let before = cluster.status();
    let keep = support::set(&before, "keep");
    let events_before = cluster.events().len();

    eprintln!("--- SIGKILL every node at once");
    let pids: Vec<u32> = (1..=3).map(|n| cluster.pid_of(n)).collect();
    for n in 1..=3 {
        cluster.signal(n, libc::SIGKILL);
    }
    for (i, pid) in pids.iter().enumerate() {
        cluster.wait_restarted(i as u64 + 1, *pid, Duration::from_secs(30));
    }
    let after = cluster.wait_status(
        "every node rejoined as a new process, up, with a leader",
        Duration::from_secs(60),
        |s| {
            let rejoined = (1..=3).all(|n| node(s, n)["pid"] != node(&before, n)["pid"]);
            let up = nodes(s).iter().all(|n| n["state"] == "up");
            (rejoined && up && !s["leader"].is_null()).then(|| s.clone())
        },
    );
    let keep_after = support::set(&after, "keep");
    assert_eq!(keep_after["members"], keep["members"], "{after}");
    assert!(
        keep_after["epoch"].as_u64() >= keep["epoch"].as_u64(),
        "epochs only grow: {keep} -> {keep_after}"
    );
    assert!(
        cluster.events().len() >= events_before,
        "no event may be lost"
    );
}
