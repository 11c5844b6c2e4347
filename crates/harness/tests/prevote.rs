//! A healed member never deposes a healthy leader: a follower cut off from everyone
//! stands for no election (it hears no majority), so its Raft term does not grow while
//! it is alone, and when it comes back the leader keeps its place and its term. A
//! leader that is really gone is still replaced.

mod common;

use anyhow::Context;
use common::*;
use keel_harness::{holds_for, wait_for, Cluster};
use std::time::Duration;
use tracing::info;

/// How long the follower stays alone (the runs: term jumps of 10–20 after it).
const ALONE: Duration = Duration::from_secs(10);
/// The window after the heal in which a deposition used to happen (0.5–0.8 s).
const AFTER_HEAL: Duration = Duration::from_secs(3);

#[tokio::test]
async fn a_follower_partitioned_alone_and_healed_deposes_no_leader() -> anyhow::Result<()> {
    init_tracing();
    let _one = serial().await;
    info!("--- start 3 nodes");
    let mut c = Cluster::start(3).await?;
    let l = c.leader().context("a leader")?;
    let term = c.node(l)?.db.current_term();
    let v = not_the_leader(&c)?;
    let checker = c.checker()?;
    let since = c.next_event_seq();
    let (leader, follower) = (c.node(l)?, c.node(v)?);

    info!("--- isolate follower {v} for {ALONE:?}: leader {l} keeps term {term}, {v} raises none");
    c.isolate(v);
    holds_for(
        "the leader keeps leading in its term; the isolated follower stays in it",
        ALONE,
        || {
            leader.db.leader() == Some(l)
                && leader.db.current_term() == term
                && follower.db.current_term() == term
        },
    )
    .await
    .with_context(|| {
        format!(
            "leader {l}: term {} (leader {:?}); follower {v}: term {}",
            leader.db.current_term(),
            leader.db.leader(),
            follower.db.current_term()
        )
    })?;

    info!("--- heal: follower {v} follows leader {l} again, in term {term}");
    c.heal();
    wait_for("the healed follower to follow the leader", STEP, || {
        (follower.db.leader() == Some(l) && follower.db.current_term() == term).then_some(())
    })
    .await?;
    holds_for("no leader change after the heal", AFTER_HEAL, || {
        c.ids().into_iter().all(|id| {
            c.node(id)
                .is_ok_and(|n| n.db.current_term() == term && n.db.leader() == Some(l))
        })
    })
    .await
    .with_context(|| format!("term after the heal: {}", leader.db.current_term()))?;

    info!("--- crash leader {l}: the others still elect a new one");
    c.crash(l).await?;
    let new = wait_for("a new leader", STEP, || c.leader().filter(|n| *n != l)).await?;
    info!(
        "    node {new} leads, term {}",
        c.node(new)?.db.current_term()
    );
    c.log_events(since);
    finish(c, checker).await
}
