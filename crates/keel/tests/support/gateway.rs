//! Gateway sets on `keel dev up` clusters, shared by the gateway tests: the export's
//! endpoints from cluster.json, which node's process listens on an address (from
//! /proc), the Active of set `gw`, the event timeline, and a cluster started with the
//! dev contract checked (`gateway_failover.rs`, `gateway_clients_failover.rs`).

use super::*;
use serde_json::Value;
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

pub const FAILOVER: Duration = Duration::from_secs(30);

/// The export's endpoints from cluster.json: (NFS, S3).
pub fn endpoints(c: &Cluster) -> (SocketAddr, SocketAddr) {
    let file = c.cluster_file();
    let host = file["nfs"]["host"].as_str().expect("nfs.host").to_string();
    let nfs = SocketAddr::new(
        host.parse().expect("nfs.host is an address"),
        file["nfs"]["port"].as_u64().expect("nfs.port") as u16,
    );
    let s3 = file["s3"]["endpoint"]
        .as_str()
        .and_then(|e| e.strip_prefix("http://"))
        .expect("s3.endpoint is http://HOST:PORT")
        .parse()
        .expect("s3.endpoint's HOST:PORT");
    (nfs, s3)
}

/// Which node answers on `addr`: the address accepts a connection, and exactly one
/// node's process holds a listening socket on it (the NFS and S3 servers send no
/// greeting that names their node, so the listener is found in /proc).
pub fn answering_node(c: &Cluster, addr: SocketAddr) -> Result<u64, String> {
    let conn = TcpStream::connect_timeout(&addr, Duration::from_millis(500))
        .map_err(|e| format!("connect {addr}: {e}"))?;
    drop(conn);
    let file = c.cluster_file();
    let ids: Vec<u64> = file["nodes"]
        .as_array()
        .map(|ns| ns.iter().filter_map(|n| n["id"].as_u64()).collect())
        .unwrap_or_default();
    let holders: Vec<u64> = ids
        .into_iter()
        .filter(|n| {
            let pid = c.pid_of(*n);
            pid != 0 && listens(pid, addr)
        })
        .collect();
    match holders.as_slice() {
        [n] => Ok(*n),
        [] => Err(format!(
            "{addr} accepted, but no node process listens on it"
        )),
        many => Err(format!("{addr}: nodes {many:?} all listen on it")),
    }
}

/// Does process `pid` hold a listening TCP socket on `addr`? (/proc/net/tcp's
/// listening sockets on that address, matched with the process's descriptors.)
pub fn listens(pid: u32, addr: SocketAddr) -> bool {
    let SocketAddr::V4(v4) = addr else {
        panic!("IPv4 only")
    };
    let local = format!(
        "{:08X}:{:04X}",
        u32::from_le_bytes(v4.ip().octets()),
        v4.port()
    );
    let table = std::fs::read_to_string("/proc/net/tcp").expect("/proc/net/tcp");
    let inodes: Vec<String> = table
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() > 9 && f[1] == local && f[3] == "0A").then(|| f[9].to_string())
        })
        .collect();
    if inodes.is_empty() {
        return false;
    }
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.flatten().any(|fd| {
        std::fs::read_link(fd.path()).is_ok_and(|target| {
            let t = target.to_string_lossy();
            inodes.iter().any(|i| t == format!("socket:[{i}]"))
        })
    })
}

/// The Active of `gw` per `status --json`, and its epoch.
pub fn active(s: &Value) -> (Option<u64>, u64) {
    primary_and_epoch(s, "gw")
}

/// Waits until `addr` answers from node `n`. (On the loaded test machine a lease may
/// lapse for a moment, and the endpoint with it: the Active then serves again.)
pub fn wait_answers(c: &Cluster, addr: SocketAddr, n: u64) {
    wait_for(
        &format!("{addr} to answer from node {n}"),
        FAILOVER,
        |last| match answering_node(c, addr) {
            Ok(m) if m == n => Some(()),
            other => {
                *last = format!("{other:?}");
                None
            }
        },
    );
}

/// Waits until the export's NFS endpoint answers from a node other than `not`, that
/// the status names Active of `gw`; returns it.
pub fn wait_served_by_other(c: &Cluster, nfs: SocketAddr, not: u64) -> u64 {
    let n = wait_for(
        &format!("the export to answer from a node other than {not}"),
        FAILOVER,
        |last| match answering_node(c, nfs) {
            Ok(n) if n != not => Some(n),
            Ok(n) => {
                *last = format!("answered by node {n}");
                None
            }
            Err(e) => {
                *last = e;
                None
            }
        },
    );
    c.wait_status(&format!("node {n} named Active of gw"), FAILOVER, |s| {
        (active(s).0 == Some(n)).then_some(())
    });
    n
}

pub fn kind(e: &Value) -> &str {
    e["kind"].as_str().unwrap_or("")
}

pub fn print_timeline(events: &[Value]) {
    for e in events {
        if e["set"] == "gw" || kind(e).starts_with("gateway") || kind(e) == "failure_detected" {
            eprintln!(
                "    {} {} node {} epoch {}: {}",
                e["time"].as_str().unwrap_or(""),
                kind(e),
                e["node"],
                e["epoch"],
                e["detail"].as_str().unwrap_or("")
            );
        }
    }
}

/// Starts a cluster and checks the dev contract: cluster.json's `nfs` and `s3`, the
/// bucket exists, `gw` is a gateway set naming its Active, and the export answers from
/// it. Returns the cluster, the endpoints and the Active.
pub fn start() -> (Cluster, SocketAddr, SocketAddr, u64) {
    let c = Cluster::start_storage(ClusterSpec::default());
    eprintln!("--- the dev contract: cluster.json, status");
    let file = c.cluster_file();
    assert_eq!(file["nfs"]["host"], "127.0.10.1", "{file}");
    assert_eq!(file["nfs"]["port"], c.base_port + 20, "{file}");
    assert_eq!(file["nfs"]["export"], "default", "{file}");
    assert_eq!(file["s3"]["bucket"], "default", "{file}");
    let key = format!(
        "{}:{}",
        file["s3"]["access_key"].as_str().expect("s3.access_key"),
        file["s3"]["secret_key"].as_str().expect("s3.secret_key")
    );
    assert_eq!(key, c.data_key(), "the S3 key is the dev access key");
    let volumes = c.keel_ok(&["volume", "list"]);
    assert!(
        volumes
            .lines()
            .any(|l| l.split_whitespace().next() == Some("default")),
        "the bucket's volume exists: {volumes}"
    );
    let out = c.supervisor_output();
    assert!(out.contains("[dev] NFS: 127.0.10.1"), "{out}");
    assert!(
        out.contains("[dev] S3: endpoint http://127.0.10.1:"),
        "{out}"
    );
    let (nfs, s3) = endpoints(&c);
    let a = c.wait_status("gw to have an Active holding its lease", FAILOVER, |s| {
        let gw = set(s, "gw");
        assert_eq!(gw["kind"], "gateway", "{gw}");
        let (p, _) = active(s);
        p.filter(|p| gw["lease_holder"] == *p)
    });
    eprintln!("--- the export answers from the Active, node {a}");
    let n = wait_for("the export to answer", FAILOVER, |last| {
        answering_node(&c, nfs).map_err(|e| *last = e).ok()
    });
    assert_eq!(n, a, "the export answers from the Active");
    wait_answers(&c, s3, a);
    let pid = c.pid_of(a);
    wait_for(
        &format!("node {a} to listen on both endpoints"),
        FAILOVER,
        |_| (listens(pid, nfs) && listens(pid, s3)).then_some(()),
    );
    (c, nfs, s3, a)
}
