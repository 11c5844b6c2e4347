//! The failure limit: a member that fails three times within the window is
//! quarantined, stays so across restarts, and holds roles again only after an
//! operator clears it.

mod common;

use anyhow::ensure;
use common::*;
use keel_core::{EventKind, MemberState};
use keel_harness::{holds_for, wait_until, Cluster};
use keel_node::admin_api::AdminRequest;
use std::time::Duration;
use tracing::info;

#[tokio::test]
async fn a_member_over_its_failure_limit_is_quarantined_until_cleared() -> anyhow::Result<()> {
    init_tracing();
    let _one = serial().await;
    info!("--- start 3 nodes and a set; the victim is neither leader nor Primary");
    let mut c = Cluster::start(3).await?;
    let v = not_the_leader(&c)?;
    let mut members: Vec<_> = c.ids().into_iter().filter(|n| *n != v).collect();
    members.push(v);
    c.create_set("s", &members).await?;
    let checker = c.checker()?;
    let since = c.next_event_seq();
    let limit = c.read(|s| s.settings.failure_limit);
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
        c.restart(v).await?;
        if round < limit {
            wait_until("node back up", STEP, || {
                c.member_state(v) == Some(MemberState::Up)
            })
            .await?;
        }
    }

    info!("--- restarted, node {v} stays quarantined and holds no role");
    c.wait_event("node_back, stays quarantined", STEP, since, |e| {
        e.kind == EventKind::NodeBack && e.node == Some(v) && e.detail.contains("quarantined")
    })
    .await?;
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
    let cleared = c.read(|s| {
        s.events
            .iter()
            .any(|e| e.seq >= since && e.kind == EventKind::NodeCleared && e.node == Some(v))
    });
    ensure!(cleared, "no node_cleared event");
    c.log_events(since);
    finish(c, checker).await
}
