//! Failover of a Primary that crashes or hangs, and of a Primary that is also the
//! configuration database's leader: a new Primary acts in a higher epoch, never at the
//! same time as the old one, and the old one returns as an Alternate.

mod common;

use anyhow::{ensure, Context};
use common::*;
use keel_core::EventKind;
use keel_harness::holds_for;
use std::time::Duration;
use tracing::info;

#[tokio::test]
async fn a_crashed_primary_is_failed_over_and_returns_as_an_alternate() -> anyhow::Result<()> {
    init_tracing();
    let _one = serial().await;
    info!("--- start 3 nodes and a set whose Primary is not the leader");
    let (mut c, p, e1) = three_nodes_and_a_set(PrimaryIs::NotLeader).await?;
    let checker = c.checker()?;
    let since = c.next_event_seq();

    info!("--- crash the Primary (node {p})");
    c.crash(p).await?;
    let (q, e2) = c.wait_failover("s", e1, STEP).await?;
    ensure!(q != p && e2 > e1, "node {q} acts in epoch {e2} after {e1}");

    info!("--- the timeline: failure_detected -> failover_decided -> taken_over");
    let detected = c
        .wait_event("failure_detected", STEP, since, |e| {
            e.kind == EventKind::FailureDetected && e.node == Some(p)
        })
        .await?;
    let decided = c
        .wait_event("failover_decided", STEP, since, |e| {
            e.kind == EventKind::FailoverDecided && e.epoch == Some(e2)
        })
        .await?;
    let taken = c
        .wait_event("taken_over", STEP, since, |e| {
            e.kind == EventKind::TakenOver && e.epoch == Some(e2) && e.node == Some(q)
        })
        .await?;
    c.log_events(since);
    ensure!(detected.detail.contains("fault=crash"), "{detected:?}");
    ensure!(detected.seq < decided.seq && decided.seq < taken.seq);
    ensure!(detected.time <= decided.time && decided.time <= taken.time);

    info!("--- restart node {p}: it comes back as an Alternate, never as Primary");
    c.restart(p).await?;
    wait_back_as_alternate(&c, "s", p).await?;
    holds_for("node stays an Alternate", Duration::from_secs(1), || {
        c.primary("s") == Some(q) && c.acting("s") == [(q, e2)]
    })
    .await?;
    finish(c, checker).await
}

#[tokio::test]
async fn a_paused_primary_is_failed_over_and_does_not_act_when_resumed() -> anyhow::Result<()> {
    init_tracing();
    let _one = serial().await;
    info!("--- start 3 nodes and a set whose Primary is not the leader");
    let (mut c, p, e1) = three_nodes_and_a_set(PrimaryIs::NotLeader).await?;
    let checker = c.checker()?;
    let since = c.next_event_seq();

    info!("--- pause the Primary (node {p}): it hangs");
    c.pause(p).await?;
    let (q, e2) = c.wait_failover("s", e1, STEP).await?;
    ensure!(q != p && e2 > e1);
    let detected = c
        .wait_event("failure_detected", STEP, since, |e| {
            e.kind == EventKind::FailureDetected && e.node == Some(p)
        })
        .await?;
    ensure!(detected.detail.contains("fault=hang"), "{detected:?}");

    info!("--- resume node {p}: its lease has run out, it does not act, it is an Alternate");
    c.resume(p)?;
    wait_back_as_alternate(&c, "s", p).await?;
    holds_for("only the new Primary acts", Duration::from_secs(1), || {
        c.acting("s") == [(q, e2)]
    })
    .await?;
    c.log_events(since);
    finish(c, checker).await
}

#[tokio::test]
async fn a_crashed_leader_that_is_primary_is_failed_over() -> anyhow::Result<()> {
    init_tracing();
    let _one = serial().await;
    info!("--- start 3 nodes and a set whose Primary is the leader");
    let (mut c, l, e1) = three_nodes_and_a_set(PrimaryIs::Leader).await?;
    let checker = c.checker()?;
    let since = c.next_event_seq();

    info!("--- crash the leader and Primary (node {l})");
    c.crash(l).await?;
    let (q, e2) = c.wait_failover("s", e1, STEP).await?;
    let new_leader = c.leader().context("a new leader")?;
    ensure!(q != l && new_leader != l && e2 > e1);
    c.wait_event("taken_over", STEP, since, |e| {
        e.kind == EventKind::TakenOver && e.epoch == Some(e2)
    })
    .await?;

    info!("--- restart node {l}: it comes back as an Alternate");
    c.restart(l).await?;
    wait_back_as_alternate(&c, "s", l).await?;
    c.log_events(since);
    finish(c, checker).await
}

#[tokio::test]
async fn a_paused_leader_that_is_primary_does_not_act_when_resumed() -> anyhow::Result<()> {
    init_tracing();
    let _one = serial().await;
    info!("--- start 3 nodes and a set whose Primary is the leader");
    let (mut c, l, e1) = three_nodes_and_a_set(PrimaryIs::Leader).await?;
    let checker = c.checker()?;
    let since = c.next_event_seq();

    info!("--- pause the leader and Primary (node {l})");
    c.pause(l).await?;
    let (q, e2) = c.wait_failover("s", e1, STEP).await?;
    ensure!(q != l && e2 > e1);

    info!("--- resume node {l}: deposed as leader and Primary, it must not act");
    c.resume(l)?;
    wait_back_as_alternate(&c, "s", l).await?;
    holds_for("only the new Primary acts", Duration::from_secs(1), || {
        c.acting("s") == [(q, e2)]
    })
    .await?;
    c.log_events(since);
    finish(c, checker).await
}
