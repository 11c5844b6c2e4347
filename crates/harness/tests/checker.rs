//! The checker sees what it is there to see: a lease forged on a node that is not the
//! Primary makes two nodes act at once, and one act in an epoch it is not Primary of.

mod common;

use anyhow::ensure;
use common::*;
use keel_harness::{wait_until, Cluster, Violation};
use std::time::Instant;
use tracing::info;

#[tokio::test]
async fn the_checker_reports_a_forged_second_primary() -> anyhow::Result<()> {
    init_tracing();
    let _one = serial().await;
    info!("--- start 3 nodes and a set");
    let c = Cluster::start(3).await?;
    let (p, e1) = c.create_set("s", &c.ids()).await?;
    let checker = c.checker()?;
    let other = c.ids().into_iter().find(|n| *n != p).unwrap_or_default();

    info!("--- forge a lease on node {other}, which is not the Primary");
    let node = c.node(other)?;
    {
        let mut holder = node.holder.lock().unwrap_or_else(|e| e.into_inner());
        let (now, term, seq) = (Instant::now(), node.db.current_term(), u64::MAX);
        holder.sent(seq, now);
        let forged = [(
            "s".to_string(),
            e1,
            keel_node::lease::GrantId { term, n: u64::MAX },
        )];
        let to = holder.incarnation();
        holder.on_ack(
            term,
            keel_node::lease::AckView {
                to,
                term,
                seq,
                granted: &forged,
                refused: &[],
            },
            now,
        );
    }
    wait_until("the checker to notice", STEP, || checker.found() >= 2).await?;
    let violations = checker.finish();
    c.shutdown().await;
    for v in &violations {
        info!("found: {v}");
    }
    ensure!(violations.iter().any(|v| matches!(v,
        Violation::TwoActing { set, acting, .. } if set == "s" && acting.len() == 2)));
    ensure!(violations.iter().any(|v| matches!(v,
        Violation::ActingNotPrimary { node, epoch, .. } if *node == other && *epoch == e1)));
    Ok(())
}
