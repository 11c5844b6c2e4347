//! Gateway failover sets through the real binary on `keel dev up` clusters (seed 000:
//! an active and a passive storage port sharing one network address). The dev cluster
//! serves export `default` on 127.0.10.1 (NFS port base+20, S3 port base+21) from the
//! Active of gateway set `gw`, through the real NFS and S3 servers; which node
//! answers is the one whose process listens on the address (read from /proc).
//!
//! Checks: `dev up` writes `nfs` and `s3` into cluster.json (a bucket that exists),
//! and `status --json` names the set's Active in `primary`; the export address
//! answers from the Active; SIGKILL of the Active → the address answers from another
//! node, which is the new Active, and the event log shows the timeline; SIGSTOP of
//! the Active → another node takes the set over, the paused one closes its listener
//! as soon as it resumes (its lease ran out while it was paused), the address then
//! answers from the new Active, and at no sampled moment do two processes listen on
//! the address.

mod support;

use serde_json::Value;
use std::time::Duration;
use support::gateway::*;
use support::*;

#[test]
fn sigkill_of_the_active_moves_the_export_address_to_the_new_active() {
    let (c, nfs, s3, a) = start();
    let seq = c.next_event_seq();
    eprintln!("--- SIGKILL the Active, node {a}");
    let pid = c.signal(a, libc::SIGKILL);
    c.wait_gone(pid);
    let b = wait_served_by_other(&c, nfs, a);
    eprintln!("--- node {b} serves the export");
    wait_answers(&c, s3, b);
    assert!(!listens(pid, nfs), "the killed process holds nothing");
    eprintln!("--- GET /v1/gateway/exports names the new Active");
    wait_for(
        "the exports list to name the new Active",
        FAILOVER,
        |last| {
            let (code, _, body) = http_get(&c.admin_addr(b), "/v1/gateway/exports").ok()?;
            *last = format!("{code} {body}");
            let list: Value = serde_json::from_str(&body).ok()?;
            let e = list.as_array()?.iter().find(|e| e["name"] == "default")?;
            assert_eq!(e["set"], "gw", "{e}");
            assert_eq!(e["policy"], "active-passive", "{e}");
            assert_eq!(e["addresses"], serde_json::json!(["127.0.10.1"]), "{e}");
            assert_eq!(e["nfs_port"], nfs.port(), "{e}");
            (code == 200 && e["active"] == b).then_some(())
        },
    );

    eprintln!("--- the timeline");
    let events = c.wait_events("the takeover's events", seq, FAILOVER, |ev| {
        let detected = ev.iter().position(|e| {
            (kind(e) == "gateway_takeover_asked" && e["set"] == "gw")
                || (kind(e) == "failure_detected" && e["node"] == a)
        })?;
        let taken = ev
            .iter()
            .position(|e| kind(e) == "taken_over" && e["set"] == "gw" && e["node"] == b)?;
        let serving = ev
            .iter()
            .position(|e| kind(e) == "gateway_serving" && e["set"] == "gw" && e["node"] == b)?;
        (detected < taken && taken < serving).then(|| ev.to_vec())
    });
    print_timeline(&events);

    eprintln!("--- node {a} comes back and does not serve");
    let restarted = c.wait_restarted(a, pid, FAILOVER);
    c.wait_status(&format!("node {a} up again"), FAILOVER, |s| {
        (node(s, a)["state"] == "up" && node(s, a)["pid"] == restarted).then_some(())
    });
    assert_ne!(
        active(&c.status()).0,
        Some(a),
        "a returning node never resumes the Active role by itself"
    );
    for _ in 0..10 {
        for addr in [nfs, s3] {
            let holders: Vec<u64> = [1, 2, 3]
                .into_iter()
                .filter(|n| listens(c.pid_of(*n), addr))
                .collect();
            assert!(holders.len() <= 1, "nodes {holders:?} all listen on {addr}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_paused_active_closes_its_listener_when_resumed_and_never_shares_the_address() {
    let (c, nfs, s3, a) = start();
    let seq = c.next_event_seq();
    let (_, epoch) = active(&c.status());
    let pid_a = c.pid_of(a);
    let others: Vec<u64> = member_nodes(&set(&c.status(), "gw"))
        .into_iter()
        .filter(|n| *n != a)
        .collect();
    let never_two = |when: &str| {
        for addr in [nfs, s3] {
            let holders: Vec<u32> = std::iter::once(pid_a)
                .chain(others.iter().map(|n| c.pid_of(*n)))
                .filter(|p| *p != 0 && listens(*p, addr))
                .collect();
            assert!(
                holders.len() <= 1,
                "{when}: processes {holders:?} all listen on {addr}"
            );
        }
    };

    eprintln!("--- SIGSTOP the Active, node {a}");
    c.signal(a, libc::SIGSTOP);
    let b = c.wait_status(
        "another node to be Active of gw, holding its lease",
        FAILOVER,
        |s| {
            let gw = set(s, "gw");
            match active(s) {
                (Some(p), e) if p != a && e > epoch && gw["lease_holder"] == p => Some(p),
                _ => None,
            }
        },
    );
    eprintln!("--- node {b} is the Active; node {a} is still paused");
    never_two("while the old Active is paused");

    eprintln!("--- SIGCONT node {a}: it closes its listeners at once");
    c.signal(a, libc::SIGCONT);
    wait_for(
        &format!("node {a} to close its listeners"),
        FAILOVER,
        |last| {
            never_two("after resume");
            let still = [nfs, s3].into_iter().filter(|x| listens(pid_a, *x)).count();
            *last = format!("{still} endpoints still held by node {a}");
            (still == 0).then_some(())
        },
    );
    let served = wait_served_by_other(&c, nfs, a);
    assert_eq!(served, b, "the export answers from the new Active");
    wait_answers(&c, s3, b);
    for _ in 0..10 {
        never_two("after the takeover");
        std::thread::sleep(Duration::from_millis(100));
    }

    let events = c.wait_events(
        "the old Active's stop and the new one's start",
        seq,
        FAILOVER,
        |ev| {
            let stopped = ev
                .iter()
                .any(|e| kind(e) == "gateway_stopped" && e["node"] == a && e["set"] == "gw");
            let serving = ev
                .iter()
                .any(|e| kind(e) == "gateway_serving" && e["node"] == b && e["set"] == "gw");
            (stopped && serving).then(|| ev.to_vec())
        },
    );
    print_timeline(&events);
}
