//! Errors of the real `keel` binary: bad node configurations, unknown nodes and
//! members, missing or stopped clusters, fault injection outside a dev cluster.
//!
//! Checks: every refusal exits non-zero with exactly one line on stderr that says what
//! is wrong (naming the field, node or member), and nothing panics.

mod support;

use std::time::Duration;
use support::*;

/// Asserts a refusal: non-zero exit, one line on stderr containing every `needle`, no
/// panic. Returns the line.
fn assert_refused(what: &str, out: &Output, needles: &[&str]) -> String {
    eprintln!("    {what}: {}", out.stderr.trim_end());
    assert!(!out.ok(), "{what}: expected a failure, got {}", out.status);
    assert!(
        !out.stderr.contains("panicked") && !out.stdout.contains("panicked"),
        "{what}: panicked: {}",
        out.stderr
    );
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(
        lines.len(),
        1,
        "{what}: expected one line on stderr: {:?}",
        out.stderr
    );
    for needle in needles {
        assert!(
            lines[0].contains(needle),
            "{what}: {:?} does not mention {needle:?}",
            lines[0]
        );
    }
    lines[0].to_string()
}

const GOOD: &str = r#"
id = 1
cluster = "test"
site = "a"
data_dir = "/nonexistent/keel-test/data"
secret_file = "/nonexistent/keel-test/secret.pem"
roles = ["control", "storage", "gateway"]

[[links]]
name = "a"
addr = "127.0.1.1"

[[links]]
name = "b"
addr = "127.1.1.1"

[ports]
rpc = 7590
heartbeat = 7591
admin = 7595
"#;

#[test]
fn malformed_node_configs_are_refused_naming_the_field() {
    let tmp = tempfile::tempdir().expect("temporary directory");
    let cases = [
        ("wrong type", GOOD.replace("id = 1", "id = \"one\""), "id"),
        (
            "unknown field",
            GOOD.replace("site = \"a\"", "site = \"a\"\ncolour = \"blue\""),
            "colour",
        ),
        ("id = 0", GOOD.replace("id = 1", "id = 0"), "id"),
        (
            "duplicate link address",
            GOOD.replace("127.1.1.1", "127.0.1.1"),
            "links[1].addr",
        ),
        (
            "port of the wrong type",
            GOOD.replace("rpc = 7590", "rpc = \"seventy\""),
            "ports.rpc",
        ),
    ];
    for (i, (what, text, field)) in cases.iter().enumerate() {
        eprintln!("--- keel node --config with {what}");
        assert_ne!(text, GOOD, "{what}: the case changes nothing");
        let path = write_file(tmp.path(), &format!("bad{i}.toml"), text);
        let out = run_keel(
            &["node", "--config", path.to_str().expect("utf-8 path")],
            Duration::from_secs(10),
        );
        assert_refused(what, &out, &[&format!("`{field}`")]);
    }

    eprintln!("--- keel node --config with a missing file");
    let missing = tmp.path().join("missing.toml");
    let out = run_keel(
        &["node", "--config", missing.to_str().expect("utf-8 path")],
        Duration::from_secs(10),
    );
    assert_refused("missing file", &out, &["missing.toml"]);
}

#[test]
fn a_missing_cluster_is_a_clear_error() {
    eprintln!("--- keel --cluster /nonexistent status");
    let out = run_keel(
        &["--cluster", "/nonexistent", "status"],
        Duration::from_secs(10),
    );
    assert_refused("no cluster", &out, &["/nonexistent"]);
}

#[test]
fn unknown_nodes_members_non_dev_and_stopped_clusters_are_refused() {
    let mut c = Cluster::start();

    eprintln!("--- keel node drain 99 (no such node)");
    let out = c.keel(&["node", "drain", "99"]);
    assert_refused("drain 99", &out, &["99"]);

    eprintln!("--- keel set create x --members 1,99");
    let out = c.keel(&["set", "create", "x", "--members", "1,99"]);
    assert_refused("set create with member 99", &out, &["member 99"]);
    let s = c.status();
    assert!(set(&s, "x").is_null(), "set x was created anyway: {s}");

    eprintln!("--- keel fault link against a cluster.json with dev = false");
    let tmp = tempfile::tempdir().expect("temporary directory");
    let mut file = c.cluster_file();
    file["dev"] = false.into();
    write_file(tmp.path(), "cluster.json", &file.to_string());
    let out = run_keel(
        &[
            "--cluster",
            tmp.path().to_str().expect("utf-8 path"),
            "fault",
            "link",
            "1",
            "b",
            "down",
        ],
        Duration::from_secs(10),
    );
    assert_refused("fault link, dev = false", &out, &["dev"]);
    let s = c.status();
    for n in nodes(&s) {
        for l in n["links"].as_array().into_iter().flatten() {
            assert_eq!(l["down"], false, "a refused fault cut a link: {n}");
        }
    }

    eprintln!("--- stop the cluster (SIGTERM to keel dev up)");
    let status = c.stop();
    assert!(status.success(), "keel dev up ended with {status}");
    assert!(
        c.node_processes().is_empty(),
        "node processes outlived keel dev up: {:?}",
        c.node_processes()
    );
    assert!(
        c.cluster_file()["supervisor_pid"].is_null(),
        "cluster.json still names a supervisor"
    );

    eprintln!("--- status and events of the stopped cluster");
    let out = c.keel(&["status"]);
    assert_refused("status, stopped", &out, &["not running"]);
    let out = c.keel(&["status", "--json"]);
    assert_refused("status --json, stopped", &out, &["not running"]);
    assert!(out.stdout.is_empty(), "status printed {:?}", out.stdout);
    let out = c.keel(&["events", "--json"]);
    assert_refused("events, stopped", &out, &["not running"]);

    eprintln!("--- put and get against the stopped cluster");
    let local = write_file(tmp.path(), "local.txt", "hello");
    let out = c.keel(&["put", local.to_str().expect("utf-8 path"), "/x"]);
    assert_refused("put, stopped", &out, &["not running"]);
    let target = tmp.path().join("fetched.txt");
    let out = c.keel(&["get", "/x", target.to_str().expect("utf-8 path")]);
    assert_refused("get, stopped", &out, &["not running"]);
    assert!(!target.exists(), "a failed get left {}", target.display());
}
