//! Network faults: a Primary cut off from the control plane lets its lease lapse
//! before anyone else acts; a single cut link is a link failure, never a failover;
//! both links cut is a member failure.

mod common;

use anyhow::{ensure, Context};
use common::*;
use keel_core::EventKind;
use keel_harness::{holds_for, Cluster, Traffic, Way};
use std::time::Duration;
use tracing::info;

#[tokio::test]
async fn an_isolated_primary_lets_its_lease_lapse_before_another_acts() -> anyhow::Result<()> {
    init_tracing();
    let _one = serial().await;
    info!("--- start 3 nodes and a set whose Primary is not the leader");
    let (c, p, e1) = three_nodes_and_a_set(PrimaryIs::NotLeader).await?;
    let checker = c.checker()?;
    let since = c.next_event_seq();

    info!("--- isolate the Primary (node {p}) from every other node");
    c.isolate(p);
    let (q, e2) = c.wait_failover("s", e1, STEP).await?;
    ensure!(q != p && e2 > e1);
    let old = c.node(p)?;
    let held = old
        .holder
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .held(std::time::Instant::now());
    ensure!(held.is_empty(), "the isolated node still holds {held:?}");

    info!("--- heal: node {p} comes back as an Alternate");
    c.heal();
    wait_back_as_alternate(&c, "s", p).await?;
    c.log_events(since);
    finish(c, checker).await
}

#[tokio::test]
async fn an_isolated_leader_that_is_primary_lets_its_lease_lapse() -> anyhow::Result<()> {
    init_tracing();
    let _one = serial().await;
    info!("--- start 3 nodes and a set whose Primary is the leader");
    let (c, l, e1) = three_nodes_and_a_set(PrimaryIs::Leader).await?;
    let checker = c.checker()?;
    let since = c.next_event_seq();

    info!("--- isolate the leader and Primary (node {l})");
    c.isolate(l);
    let (q, e2) = c.wait_failover("s", e1, STEP).await?;
    ensure!(q != l && e2 > e1);

    info!("--- heal: node {l} comes back as an Alternate");
    c.heal();
    wait_back_as_alternate(&c, "s", l).await?;
    c.log_events(since);
    finish(c, checker).await
}

#[tokio::test]
async fn a_link_failure_never_fails_a_member_over() -> anyhow::Result<()> {
    init_tracing();
    let _one = serial().await;
    info!("--- start 3 nodes and a set whose Primary is not the leader");
    let (c, p, e1) = three_nodes_and_a_set(PrimaryIs::NotLeader).await?;
    let checker = c.checker()?;
    let since = c.next_event_seq();

    info!("--- cut link b of the Primary (node {p}): a link_down event");
    c.cut_link(p, "b");
    c.wait_event("link_down", STEP, since, |e| {
        e.kind == EventKind::LinkDown && e.node == Some(p)
    })
    .await?;

    info!("--- for 3 s: no node fails, nothing fails over");
    let no_failover = |c: &Cluster| {
        c.read(|s| {
            !s.events.iter().any(|e| {
                e.seq >= since
                    && matches!(e.kind, EventKind::NodeFailed | EventKind::FailoverDecided)
            })
        })
    };
    holds_for("no failure, no failover", Duration::from_secs(3), || {
        no_failover(&c) && c.acting("s") == [(p, e1)]
    })
    .await?;

    info!("--- restore link b: a link_up event");
    c.restore_link(p, "b");
    c.wait_event("link_up", STEP, since, |e| {
        e.kind == EventKind::LinkUp && e.node == Some(p)
    })
    .await?;
    ensure!(no_failover(&c), "a failover while only a link was down");

    info!("--- cut both links of node {p}: a member failure, failed over");
    c.cut_link(p, "a");
    c.cut_link(p, "b");
    let (q, e2) = c.wait_failover("s", e1, STEP).await?;
    ensure!(q != p && e2 > e1);

    info!("--- restore both links: node {p} comes back as an Alternate");
    c.restore_link(p, "a");
    c.restore_link(p, "b");
    wait_back_as_alternate(&c, "s", p).await?;
    c.log_events(since);
    finish(c, checker).await
}

#[tokio::test]
async fn a_node_deaf_to_heartbeats_does_not_unsettle_the_cluster() -> anyhow::Result<()> {
    init_tracing();
    let _one = serial().await;
    info!("--- start 3 nodes and a set whose Primary is the leader");
    let c = Cluster::start(3).await?;
    let l = c.leader().context("a leader")?;
    let (p, e1) = c.create_set("s", &members_with_first(&c, l)).await?;
    let v = not_the_leader(&c)?;
    let checker = c.checker()?;
    let (since, term) = (c.next_event_seq(), c.node(l)?.db.current_term());

    info!("--- node {v} loses every heartbeat, both ways; its RPC still works");
    c.block(v, Traffic::Datagrams, Way::Both);
    holds_for(
        "the Primary acts, nothing fails over",
        Duration::from_secs(3),
        || c.acting("s") == [(p, e1)] && c.epoch("s") == e1,
    )
    .await?;
    c.unblock(v, Traffic::Datagrams, Way::Both);
    let terms = c.node(l)?.db.current_term() - term;
    info!("--- Raft terms gone by meanwhile: {terms}");
    c.log_events(since);
    finish(c, checker).await
}
