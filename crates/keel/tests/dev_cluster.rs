//! `keel dev up` itself: the two-site loopback layout with its tiebreaker, and the
//! Prometheus metrics every node serves on its admin port.
//!
//! Checks: addresses that differ only in the subnet part between sites (127.0.s.n,
//! second link 127.1.s.n), a control-only tiebreaker in an extra site, every node up;
//! `/metrics` in the Prometheus text format with heartbeat and leader metrics, the
//! leader metric set on the leader alone.

mod support;

use serde_json::Value;
use support::*;

#[test]
fn two_sites_of_two_nodes_plus_a_tiebreaker() {
    let c = Cluster::start_with(ClusterSpec {
        nodes: 4,
        sites: 2,
        ..ClusterSpec::default()
    });

    eprintln!("--- five nodes, all up, at their loopback addresses");
    let s = c.status();
    let ns = nodes(&s);
    let seen: Vec<(u64, String, String)> = ns
        .iter()
        .map(|n| {
            (
                n["id"].as_u64().unwrap_or(0),
                n["site"].as_str().unwrap_or("").to_string(),
                n["addr"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    let want: Vec<(u64, String, String)> = [
        (1, "1", "127.0.1.1"),
        (2, "1", "127.0.1.2"),
        (3, "2", "127.0.2.1"),
        (4, "2", "127.0.2.2"),
        (5, "3", "127.0.3.1"),
    ]
    .iter()
    .map(|(id, site, addr)| (*id, site.to_string(), addr.to_string()))
    .collect();
    assert_eq!(seen, want, "{s}");
    for n in &ns {
        assert_eq!(n["state"], "up", "{n}");
        let addr = n["addr"].as_str().unwrap_or("");
        let second = addr.replacen("127.0.", "127.1.", 1);
        let links: Vec<(&str, &str)> = n["links"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|l| {
                (
                    l["name"].as_str().unwrap_or(""),
                    l["ip"].as_str().unwrap_or(""),
                )
            })
            .collect();
        assert_eq!(links, [("a", addr), ("b", second.as_str())], "{n}");
    }

    eprintln!("--- the tiebreaker is control-only and in no failover set");
    assert_eq!(node(&s, 5)["roles"], serde_json::json!(["control"]), "{s}");
    let members = &set(&s, "default")["members"];
    assert_eq!(members, &serde_json::json!([1, 2, 3, 4]), "{s}");

    eprintln!("--- cluster.json lists the same nodes with live pids");
    let file = c.cluster_file();
    let listed: Vec<(u64, String)> = file["nodes"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|n| {
            (
                n["id"].as_u64().unwrap_or(0),
                n["addr"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    let want_listed: Vec<(u64, String)> = want.iter().map(|(i, _, a)| (*i, a.clone())).collect();
    assert_eq!(listed, want_listed);
    for id in 1..=5 {
        let pid = c.pid_of(id);
        assert_eq!(node(&s, id)["pid"], pid, "status and cluster.json disagree");
        assert!(
            c.node_processes().contains(&pid),
            "node {id} pid {pid} is not running"
        );
    }
}

/// The samples of a Prometheus text exposition: (name with labels, value). Panics on
/// a line that is neither a comment nor a sample.
fn samples(body: &str) -> Vec<(String, f64)> {
    body.lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (name, value) = l
                .rsplit_once(' ')
                .unwrap_or_else(|| panic!("not a sample line: {l:?}"));
            let value: f64 = value
                .parse()
                .unwrap_or_else(|_| panic!("not a sample value: {l:?}"));
            let bare = name.split('{').next().unwrap_or("");
            assert!(
                !bare.is_empty()
                    && bare
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
                "not a metric name: {l:?}"
            );
            (name.to_string(), value)
        })
        .collect()
}

fn metric(samples: &[(String, f64)], prefix: &str) -> Vec<f64> {
    samples
        .iter()
        .filter(|(n, _)| n.split('{').next() == Some(prefix))
        .map(|(_, v)| *v)
        .collect()
}

#[test]
fn every_node_serves_prometheus_metrics() {
    let c = Cluster::start();
    let leader = c.status()["leader"].as_u64().expect("a leader");
    let file = c.cluster_file();
    let admins: Vec<(u64, String)> = file["nodes"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|n: &Value| {
            (
                n["id"].as_u64().unwrap_or(0),
                n["admin"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();

    for (id, admin) in &admins {
        eprintln!("--- GET http://{admin}/metrics (node {id})");
        let (code, head, body) = http_get(admin, "/metrics").expect("GET /metrics");
        assert_eq!(code, 200, "{head}");
        let content_type = head
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("content-type").then(|| v.trim())
            })
            .unwrap_or("");
        assert!(
            content_type.starts_with("text/plain")
                || content_type.starts_with("application/openmetrics-text"),
            "not a Prometheus content type: {content_type:?}"
        );
        assert!(body.contains("# TYPE keel_heartbeats_received "), "{body}");
        assert!(body.contains("# TYPE keel_is_leader "), "{body}");
        let s = samples(&body);
        let received = metric(&s, "keel_heartbeats_received_total");
        let received = if received.is_empty() {
            metric(&s, "keel_heartbeats_received")
        } else {
            received
        };
        assert!(!received.is_empty(), "no keel_heartbeats_received sample");
        assert!(
            received.iter().sum::<f64>() > 0.0,
            "node {id} received no heartbeats"
        );
        let is_leader = metric(&s, "keel_is_leader");
        assert_eq!(
            is_leader,
            [f64::from(u8::from(*id == leader))],
            "keel_is_leader of node {id} (leader {leader})"
        );
    }
}
