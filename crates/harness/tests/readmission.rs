//! A voter whose configuration database store is gone (issue 7, deliverable 2): node
//! `n` is killed, its `raft.redb` deleted, and it is started again. It must not vote as
//! if it still had its log and vote: the leader takes it off the voters (an event says
//! why), it is a learner while it catches up, and a voter again once it has; nothing
//! committed is lost.

mod common;

use anyhow::Context;
use common::*;
use keel_core::EventKind;
use keel_harness::{wait_for, wait_until};
use tracing::info;

#[tokio::test]
async fn a_voter_with_a_wiped_store_is_readmitted_as_a_learner_first() -> anyhow::Result<()> {
    init_tracing();
    let _one = serial().await;
    let mut c = keel_harness::Cluster::start(3).await?;
    let checker = c.checker()?;
    let leader = wait_for("a leader", STEP, || c.leader()).await?;
    // Not the leader, nor node 1 (which would create a cluster of its own if nobody
    // answered it).
    let n = c
        .ids()
        .into_iter()
        .rfind(|id| *id != leader && *id != 1)
        .context("a follower")?;
    let leader_db = c.node(leader)?.db.clone();
    let committed = leader_db.read(|s| s.events.len());
    let dir = c.node(n)?.cfg.data_dir.clone();
    let since = c.next_event_seq();

    info!("--- kill node {n}, delete its configuration database store, start it again");
    c.crash(n).await?;
    std::fs::remove_file(dir.join(keel_confdb::DB_FILE)).context("delete raft.redb")?;
    c.restart(n).await?;

    info!("--- the leader takes it off the voters, with an event that says why");
    let ev = c
        .wait_event("voter_readmitted", STEP, since, |e| {
            e.kind == EventKind::VoterReadmitted && e.node == Some(n)
        })
        .await?;
    info!("event: {}", ev.detail);
    anyhow::ensure!(ev.detail.contains("learner"), "{ev:?}");

    info!("--- once caught up it is a voter again, and holds every committed entry");
    wait_until("node is a voter again", STEP, || {
        c.node(leader).is_ok_and(|l| l.db.voters().contains(&n))
    })
    .await?;
    let back = c.node(n)?;
    wait_until("node's store is admitted", STEP, || {
        back.db.admission() == keel_confdb::AdmissionState::Admitted
    })
    .await?;
    let (leader_events, node_events) = wait_for("replicas agree", STEP, || {
        let l = c.node(leader).ok()?.db.read(|s| s.events.clone());
        let m = back.db.read(|s| s.events.clone());
        (l.len() == m.len()).then_some((l, m))
    })
    .await?;
    anyhow::ensure!(node_events.len() >= committed);
    anyhow::ensure!(leader_events == node_events, "node {n}'s replica diverges");
    c.log_events(since);
    finish(c, checker).await
}
