//! Redundant links on a real `keel dev up` cluster, cut with `keel fault link`.
//!
//! Checks: one link of the Primary down is a link failure (a `link_down` event for
//! that node) and never a failover, over a whole observation window; both links down
//! is a member failure and fails over; restoring both brings the node back up. Run
//! twice: with the Primary on the configuration database leader (the arbiter), as a
//! fresh dev cluster has it, and on another member.

mod support;

use std::time::{Duration, Instant};
use support::*;

/// How long a single link failure is watched for a false failover.
const WINDOW: Duration = Duration::from_secs(3);
const DETECT: Duration = Duration::from_secs(5);
const FAILOVER: Duration = Duration::from_secs(15);

#[test]
fn one_link_down_on_the_primary_is_no_failover_both_links_down_is() {
    let c = Cluster::start();
    let s = c.status();
    let p = primary_and_epoch(&s, "default").0.expect("a Primary");
    eprintln!("    Primary {p}, leader {}", s["leader"]);
    cut_links_of_the_primary(&c);
}

#[test]
fn one_link_down_on_a_primary_that_is_not_the_leader_is_no_failover() {
    let c = Cluster::start();
    let s = c.status();
    let leader = s["leader"].as_u64().expect("a leader");
    let (p, epoch) = primary_and_epoch(&s, "default");
    let target = nodes(&s)
        .iter()
        .filter_map(|n| n["id"].as_u64())
        .find(|id| *id != leader)
        .expect("a member that does not lead");
    if p != Some(target) {
        eprintln!("--- keel takeover default --to {target} (leader is {leader})");
        c.keel_ok(&["takeover", "default", "--to", &target.to_string()]);
        c.wait_status(&format!("node {target} Primary"), FAILOVER, |s| {
            let (q, e) = primary_and_epoch(s, "default");
            (q == Some(target) && e > epoch).then_some(())
        });
    }
    cut_links_of_the_primary(&c);
}

/// The scenario, on whichever member is Primary of `default` now.
fn cut_links_of_the_primary(c: &Cluster) {
    let before = c.status();
    let (p, epoch) = primary_and_epoch(&before, "default");
    let p = p.expect("default has a Primary");
    let id = p.to_string();
    // The new Primary's taken_over may still be on its way: start after it.
    c.wait_events("the Primary to act", 0, FAILOVER, |ev| {
        find_event(ev, 0, |e| {
            e["kind"] == "taken_over" && e["node"] == p && e["epoch"] == epoch
        })
    });
    let since = c.next_event_seq();

    eprintln!("--- fault link {p} b down (the Primary)");
    c.keel_ok(&["fault", "link", &id, "b", "down"]);
    c.wait_events(
        &format!("a link_down event for node {p}"),
        since,
        DETECT,
        |ev| find_event(ev, 0, |e| e["kind"] == "link_down" && e["node"] == p),
    );

    eprintln!("--- watch for {WINDOW:?}: no failover, nobody failed");
    let start = Instant::now();
    let mut polls = 0;
    while start.elapsed() < WINDOW {
        let s = c.status();
        polls += 1;
        assert_eq!(
            primary_and_epoch(&s, "default"),
            (Some(p), epoch),
            "a single link failure moved the Primary: {s}"
        );
        for n in nodes(&s) {
            assert_ne!(n["state"], "failed", "a link failure failed a node: {s}");
        }
    }
    for e in &c.events_since(since) {
        assert!(
            !matches!(
                e["kind"].as_str(),
                Some("failover_decided" | "failure_detected" | "node_failed")
            ),
            "a single link failure caused {e}"
        );
    }
    // The link is recorded down on the node whose link was cut, and on no other.
    let s = c.status();
    for n in nodes(&s) {
        let b_down = n["links"]
            .as_array()
            .and_then(|ls| ls.iter().find(|l| l["name"] == "b"))
            .map(|l| l["down"] == true);
        assert_eq!(b_down, Some(n["id"] == p), "link b state of {n}");
    }
    eprintln!("    {polls} status polls, Primary {p} at epoch {epoch} throughout");

    eprintln!("--- fault link {p} a down too: the node is gone, fail over");
    c.keel_ok(&["fault", "link", &id, "a", "down"]);
    let (new, new_epoch) = c.wait_status("a failover", FAILOVER, |s| {
        match primary_and_epoch(s, "default") {
            (Some(q), e) if q != p && e > epoch => Some((q, e)),
            _ => None,
        }
    });
    eprintln!("    node {new} is Primary at epoch {new_epoch}");
    c.wait_events("failover_decided", since, FAILOVER, |ev| {
        find_event(ev, 0, |e| {
            e["kind"] == "failover_decided" && e["epoch"] == new_epoch
        })
    });

    eprintln!("--- restore both links: node {p} comes back up");
    c.keel_ok(&["fault", "link", &id, "a", "up"]);
    c.keel_ok(&["fault", "link", &id, "b", "up"]);
    let s = c.wait_status(&format!("node {p} up with both links"), FAILOVER, |s| {
        let n = node(s, p);
        let links_up = n["links"]
            .as_array()
            .is_some_and(|ls| ls.iter().all(|l| l["down"] == false));
        let (_, e) = primary_and_epoch(s, "default");
        (n["state"] == "up" && links_up && e >= new_epoch).then(|| s.clone())
    });
    assert_ne!(
        primary_and_epoch(&s, "default").0,
        Some(p),
        "the node took the Primary back by itself: {s}"
    );
}
