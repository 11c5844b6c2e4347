//! Failover of real node processes, driven through the real CLI: a `keel dev up`
//! cluster on loopback, its Primary killed (SIGKILL) or paused (SIGSTOP).
//!
//! Checks: a new Primary with a higher epoch; the failover's timeline in the event log
//! (failure_detected, failover_decided, taken_over, in order, RFC 3339 times); the
//! supervisor restarting a killed node, which comes back as an Alternate and never
//! resumes its old role by itself; a member that fails three times is quarantined
//! until `keel node clear`.

mod support;

use serde_json::Value;
use std::time::Duration;
use support::*;

const FAILOVER: Duration = Duration::from_secs(15);
const BACK: Duration = Duration::from_secs(20);

/// Waits for a Primary of `default` other than `old` with an epoch above `epoch`.
fn wait_new_primary(c: &Cluster, old: u64, epoch: u64) -> (u64, u64, Value) {
    c.wait_status(
        &format!("a new Primary of default (not {old}, epoch > {epoch})"),
        FAILOVER,
        |s| match primary_and_epoch(s, "default") {
            (Some(p), e) if p != old && e > epoch => Some((p, e, s.clone())),
            _ => None,
        },
    )
}

/// Waits until `node` is up again as an Alternate of `default`, in a view at least as
/// new as `epoch` (a node that just restarted may answer first with its old view).
fn wait_back_as_alternate(c: &Cluster, node: u64, epoch: u64, pid: Option<u32>) -> Value {
    c.wait_status(
        &format!("node {node} up again as an Alternate of default"),
        BACK,
        |s| {
            let n = node_of(s, node);
            let (_, e) = primary_and_epoch(s, "default");
            let pid_ok = pid.is_none_or(|p| n["pid"] == p);
            (e >= epoch && pid_ok && n["state"] == "up" && alternates(s, "default").contains(&node))
                .then(|| s.clone())
        },
    )
}

fn node_of(s: &Value, id: u64) -> Value {
    support::node(s, id)
}

/// The events about one node, one per line, for failure messages.
fn history(c: &Cluster, node: u64) -> String {
    c.events()
        .iter()
        .filter(|e| e["node"] == node)
        .map(|e| e.to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn killing_the_primary_fails_over_and_it_returns_as_an_alternate() {
    let c = Cluster::start();
    let before = c.status();
    let (old, epoch) = primary_and_epoch(&before, "default");
    let old = old.expect("default has a Primary");
    let since = c.next_event_seq();

    eprintln!("--- SIGKILL the Primary, node {old}");
    let pid = c.signal(old, libc::SIGKILL);

    eprintln!("--- a new Primary with a higher epoch");
    let (new, new_epoch, after) = wait_new_primary(&c, old, epoch);
    eprintln!("    node {new} is Primary at epoch {new_epoch}");
    let secondary_was_empty = support::set(&after, "default")["secondary"].is_null();

    eprintln!("--- the event log tells the failover's timeline, in order");
    let timeline = c.wait_events(
        "failure_detected, failover_decided, taken_over",
        since,
        FAILOVER,
        |events| {
            let detected = find_event(events, 0, |e| {
                e["kind"] == "failure_detected" && e["node"] == old
            })?;
            let decided = find_event(events, detected + 1, |e| {
                e["kind"] == "failover_decided"
                    && e["set"] == "default"
                    && e["epoch"] == new_epoch
                    && e["node"] == new
            })?;
            let taken = find_event(events, decided + 1, |e| {
                e["kind"] == "taken_over"
                    && e["set"] == "default"
                    && e["epoch"] == new_epoch
                    && e["node"] == new
            })?;
            Some([detected, decided, taken].map(|i| events[i].clone()))
        },
    );
    let mut previous = i64::MIN;
    for e in &timeline {
        eprintln!("    {e}");
        let time = e["time"].as_str().expect("an event has a time");
        let t = rfc3339_millis(time).unwrap_or_else(|| panic!("not RFC 3339: {time:?}"));
        assert!(t >= previous, "timeline out of order in time: {timeline:?}");
        previous = t;
    }

    eprintln!("--- the supervisor restarts node {old}; it comes back as an Alternate");
    let new_pid = c.wait_restarted(old, pid, BACK);
    let back = wait_back_as_alternate(&c, old, new_epoch, Some(new_pid));
    let (p, e) = primary_and_epoch(&back, "default");
    assert_eq!(
        p,
        Some(new),
        "the returning node must not take the Primary back"
    );
    assert_eq!(e, new_epoch, "no further failover expected: {back}");
    let set = support::set(&back, "default");
    if !secondary_was_empty {
        assert_ne!(
            set["secondary"], old,
            "it must not resume as Secondary: {set}"
        );
    }
}

#[test]
fn a_member_killed_three_times_is_quarantined_until_cleared() {
    let c = Cluster::start();
    let s = c.status();
    // An Alternate that does not lead the configuration database: no failover and no
    // election get in the way.
    let victim = alternates(&s, "default")
        .into_iter()
        .find(|a| s["leader"] != *a)
        .expect("default has an Alternate");
    kill_three_times_then_clear(&c, victim);
}

#[test]
fn the_primary_killed_three_times_is_quarantined_until_cleared() {
    let c = Cluster::start();
    let s = c.status();
    let victim = primary_and_epoch(&s, "default").0.expect("a Primary");
    eprintln!("    the Primary, node {victim}; leader {}", s["leader"]);
    kill_three_times_then_clear(&c, victim);
}

/// SIGKILL `victim` three times, each time after it came back up: it is quarantined
/// at the third failure and not before; `keel node clear` brings it back up.
fn kill_three_times_then_clear(c: &Cluster, victim: u64) {
    for round in 1..=3 {
        eprintln!("--- SIGKILL node {victim}, round {round}");
        let pid = c.signal(victim, libc::SIGKILL);
        let new_pid = c.wait_restarted(victim, pid, BACK);
        if round < 3 {
            let back = c.wait_status(
                &format!("node {victim} back up (pid {new_pid}, {round} failures)"),
                BACK,
                |s| {
                    let n = node_of(s, victim);
                    if n["state"] == "quarantined" {
                        return Some(Err(s.clone()));
                    }
                    (n["state"] == "up"
                        && n["pid"] == new_pid
                        && n["recent_failures"].as_u64() >= Some(round))
                    .then_some(Ok(n))
                },
            );
            match back {
                Err(s) => panic!(
                    "node {victim} quarantined after {round} kill(s), under the failure \
                     limit of 3: {s}\n{}",
                    history(c, victim)
                ),
                Ok(n) => assert_eq!(
                    n["recent_failures"],
                    round,
                    "one kill must count as one failure:\n{}",
                    history(c, victim)
                ),
            }
        } else {
            eprintln!("--- the third failure quarantines it");
            let s = c.wait_status(&format!("node {victim} quarantined"), BACK, |s| {
                let n = node_of(s, victim);
                (n["state"] == "quarantined" && n["pid"] == new_pid).then(|| s.clone())
            });
            let set = support::set(&s, "default");
            assert_ne!(set["primary"], victim, "{set}");
            assert_ne!(set["secondary"], victim, "{set}");
        }
    }
    let events = c.events();
    let count = |kind: &str| {
        events
            .iter()
            .filter(|e| e["kind"] == kind && e["node"] == victim)
            .count()
    };
    assert_eq!(count("node_quarantined"), 1, "{}", history(c, victim));
    assert_eq!(count("failure_detected"), 3, "{}", history(c, victim));

    eprintln!("--- it stays quarantined while running");
    let s = c.status();
    assert_eq!(node_of(&s, victim)["state"], "quarantined", "{s}");

    eprintln!("--- keel node clear {victim}");
    c.keel_ok(&["node", "clear", &victim.to_string()]);
    let s = c.wait_status(&format!("node {victim} up after clear"), BACK, |s| {
        (node_of(s, victim)["state"] == "up").then(|| s.clone())
    });
    assert_eq!(node_of(&s, victim)["recent_failures"], 0, "{s}");
}

#[test]
fn pausing_the_primary_fails_over_and_it_returns_as_an_alternate() {
    let c = Cluster::start();
    let (old, epoch) = primary_and_epoch(&c.status(), "default");
    let old = old.expect("default has a Primary");

    eprintln!("--- SIGSTOP the Primary, node {old}");
    let pid = c.signal(old, libc::SIGSTOP);
    let (new, new_epoch, _) = wait_new_primary(&c, old, epoch);
    eprintln!("    node {new} is Primary at epoch {new_epoch}");
    let s = c.status();
    assert_ne!(
        node_of(&s, old)["state"],
        "up",
        "a paused node is not up: {s}"
    );

    eprintln!("--- SIGCONT: node {old} comes back as an Alternate");
    c.signal(old, libc::SIGCONT);
    let back = wait_back_as_alternate(&c, old, new_epoch, None);
    assert_eq!(c.pid_of(old), pid, "a paused node is not restarted");
    let (p, _) = primary_and_epoch(&back, "default");
    assert_ne!(
        p,
        Some(old),
        "the paused node must not take the Primary back"
    );
}
