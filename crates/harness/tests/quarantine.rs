//! The failure limit: a member that fails three times within the window is
//! quarantined, stays so across restarts, and holds roles again only after an
//! operator clears it; each crash and restart counts once.

mod common;

use anyhow::ensure;
use common::*;
use keel_core::{EventKind, MemberState, NodeId};
use keel_harness::{holds_for, wait_until, Cluster, Traffic, Way};
use keel_node::admin_api::AdminRequest;
use std::time::Duration;
use tracing::info;

/// Failures of `v` recorded since event `since`.
fn failures(c: &Cluster, v: NodeId, since: u64) -> usize {
    c.read(|s| {
        s.events
            .iter()
            .filter(|e| e.seq >= since && e.kind == EventKind::NodeFailed && e.node == Some(v))
            .count()
    })
}

fn backs(c: &Cluster, v: NodeId, since: u64) -> usize {
    c.read(|s| {
        s.events
            .iter()
            .filter(|e| e.seq >= since && e.kind == EventKind::NodeBack && e.node == Some(v))
            .count()
    })
}

/// Starts 3 nodes and a set whose last member is a node that does not lead.
async fn cluster_and_victim() -> anyhow::Result<(Cluster, NodeId)> {
    let c = Cluster::start(3).await?;
    let v = not_the_leader(&c)?;
    let mut members: Vec<_> = c.ids().into_iter().filter(|n| *n != v).collect();
    members.push(v);
    c.create_set("s", &members).await?;
    Ok((c, v))
}

#[tokio::test]
async fn a_member_over_its_failure_limit_is_quarantined_until_cleared() -> anyhow::Result<()> {
    init_tracing();
    let _one = serial().await;
    info!("--- start 3 nodes and a set; the victim is neither leader nor Primary");
    let (mut c, v) = cluster_and_victim().await?;
    let checker = c.checker()?;
    let since = c.next_event_seq();
    let limit = c.read(|s| s.settings.failure_limit) as usize;
    ensure!(limit == 3, "the default failure limit is 3, not {limit}");

    for round in 1..=limit {
        info!("--- crash {round} of {limit} of node {v}");
        c.crash(v).await?;
        let expect = if round < limit {
            MemberState::Failed
        } else {
            MemberState::Quarantined
        };
        wait_until(&format!("node {v} {expect:?}"), STEP, || {
            c.member_state(v) == Some(expect)
        })
        .await?;
        // Its join is let through before its heartbeats, so that it comes back by
        // its boot report (the other order is `a_restart_counts_as_one_failure`).
        info!("--- restart node {v}, its heartbeats held until it has joined");
        let restarted = c.next_event_seq();
        c.block(v, Traffic::Datagrams, Way::Out);
        c.restart(v).await?;
        c.wait_event("node_back", STEP, restarted, |e| {
            e.kind == EventKind::NodeBack && e.node == Some(v)
        })
        .await?;
        c.unblock(v, Traffic::Datagrams, Way::Out);
        ensure!(
            failures(&c, v, since) == round,
            "{round} crashes counted differently"
        );
        if round < limit {
            wait_until("node back up", STEP, || {
                c.member_state(v) == Some(MemberState::Up)
            })
            .await?;
        }
    }

    info!("--- restarted, node {v} stays quarantined and holds no role");
    holds_for("node stays quarantined", Duration::from_secs(1), || {
        c.member_state(v) == Some(MemberState::Quarantined) && is_alternate(&c, "s", v)
    })
    .await?;

    info!("--- the operator clears node {v}: it comes back up as an Alternate");
    c.admin(AdminRequest::Clear { node: v }).await?;
    wait_until("node up as an Alternate", STEP, || {
        c.member_state(v) == Some(MemberState::Up) && is_alternate(&c, "s", v)
    })
    .await?;
    c.log_events(since);
    finish(c, checker).await
}

/// Regression: a member re-integrated by its heartbeats after a detected crash was
/// failed again when its join arrived, so one crash counted twice toward the limit.
#[tokio::test]
async fn a_restart_counts_as_one_failure() -> anyhow::Result<()> {
    init_tracing();
    let _one = serial().await;
    info!("--- start 3 nodes and a set; the victim is neither leader nor Primary");
    let (mut c, v) = cluster_and_victim().await?;
    let checker = c.checker()?;
    let since = c.next_event_seq();

    info!("--- crash node {v}: its failure is detected");
    c.crash(v).await?;
    wait_until("node failed", STEP, || {
        c.member_state(v) == Some(MemberState::Failed)
    })
    .await?;

    info!("--- restart node {v}, its join held: its heartbeats bring it back first");
    let restarted = c.next_event_seq();
    c.block(v, Traffic::Calls, Way::Out);
    c.restart(v).await?;
    c.wait_event("node_back by heartbeats", STEP, restarted, |e| {
        e.kind == EventKind::NodeBack && e.node == Some(v)
    })
    .await?;
    info!("--- let its join through: the boot report must not count a second failure");
    c.unblock(v, Traffic::Calls, Way::Out);
    // The join of a process already recorded as back reports nothing again: watch for
    // a while that no second failure (and no second return) is recorded.
    holds_for("one failure, one return", Duration::from_secs(2), || {
        failures(&c, v, since) == 1 && backs(&c, v, since) == 1
    })
    .await?;
    c.log_events(since);
    let counted = failures(&c, v, since);
    ensure!(counted == 1, "one crash counted as {counted} failures");
    finish(c, checker).await
}
