//! Leases under faults (issue 7): a Primary whose lease runs out while a write is being
//! replicated refuses the write (item 5); a Primary behind a firewall `REJECT` rule is
//! failed over, but its successor acts only once its lease has run out, since a
//! refused connection does not prove its process gone (item 7).

mod common;

use anyhow::{ensure, Context};
use common::*;
use keel_core::{NodeId, ObjectId};
use keel_harness::{wait_for, wait_until, Cluster, ClusterOptions, Traffic, Way};
use keel_node::admin_api::AdminRequest;
use keel_node::storage::wire::{Durability, StoreRequest, WriteOp, WriteRequest};
use keel_node::storage::{self, DataError};
use std::time::{Duration, Instant};
use tracing::info;

/// Starts 3 nodes with the storage layout of `keel layout apply --replicas 2` (sets
/// `st-1` {1, 2}, `st-2` {2, 3}, `st-3` {3, 1}); returns once every set's Primary acts.
async fn storage_cluster() -> anyhow::Result<Cluster> {
    let c = Cluster::start(3).await?;
    c.admin(AdminRequest::ApplyLayout {
        replicas: Some(2),
        dry_run: false,
    })
    .await?;
    for n in c.ids() {
        c.wait_acting(&format!("st-{n}"), STEP).await?;
    }
    Ok(c)
}

/// A Primary `p`, not the leader, whose set's other in-sync replica `r` is not the
/// leader either (so that pausing `r` leaves the control plane whole).
fn primary_and_replica(c: &Cluster, leader: NodeId) -> anyhow::Result<(NodeId, NodeId)> {
    for p in c.ids().into_iter().filter(|p| *p != leader) {
        let set = c.set(&format!("st-{p}")).context("set")?;
        if set.primary_node() != Some(p) {
            continue;
        }
        if let Some(r) = set
            .in_sync
            .iter()
            .copied()
            .find(|r| *r != p && *r != leader)
        {
            return Ok((p, r));
        }
    }
    anyhow::bail!("no Primary and replica outside the leader")
}

#[tokio::test]
async fn a_primary_whose_lease_ran_out_during_a_write_does_not_acknowledge_it() -> anyhow::Result<()>
{
    init_tracing();
    let _one = serial().await;
    let mut c = storage_cluster().await?;
    let checker = c.checker()?;
    let leader = wait_for("a leader", STEP, || c.leader()).await?;
    let (p, r) = primary_and_replica(&c, leader)?;
    let set = format!("st-{p}");
    let epoch = c.epoch(&set);
    let node = c.node(p)?;

    // Its own heartbeats still go out (it is neither silent nor suspect, so it stays an
    // eligible Primary); the arbiter's answers no longer reach it.
    info!("--- node {p} hears no more lease renewals; it stays Primary of {set}");
    c.block(p, Traffic::Datagrams, Way::In);
    // Wait until its lease has less left than the failure detector needs to give up on
    // a replica (fail_after_ms, 350 ms): a write started now replicates past its end.
    wait_until("the lease is about to run out", STEP, || {
        let until = node
            .holder
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .until(&set);
        until.is_some_and(|u| {
            u.saturating_duration_since(Instant::now()) < Duration::from_millis(150)
        })
    })
    .await?;

    info!("--- replica {r} stops answering; a write to node {p} starts under its lease");
    c.pause(r).await?;
    let holds = node
        .holder
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .acting(&set, Instant::now());
    ensure!(
        holds == Some(epoch),
        "the write must start while node {p} holds the lease"
    );
    let id = c
        .read(|s| {
            (0..100_000)
                .map(|_| ObjectId::random())
                .find(|id| s.placement.set_for(*id).is_some_and(|x| *x == set))
        })
        .with_context(|| format!("no object id falls in set {set}"))?;
    let req = StoreRequest::Write(WriteRequest {
        set: set.clone(),
        epoch,
        id,
        op: WriteOp::Put(vec![7u8; 4096].into()),
        durability: Durability::AllInSync,
    });
    let write = c.spawn_on(p, {
        let node = node.clone();
        async move { storage::handle(&node, req).await }
    })?;
    let answer = tokio::time::timeout(Duration::from_secs(40), write)
        .await
        .context("the write never ended")??;
    info!("answer: {answer:?}");

    info!("--- the replica was taken off the list, but the lease had run out: refused");
    ensure!(
        matches!(
            answer,
            Err(DataError::NoLease { .. } | DataError::NotPrimary { .. })
        ),
        "a Primary without a lease acknowledged a write: {answer:?}"
    );
    c.resume(r)?;
    c.unblock(p, Traffic::Datagrams, Way::In);
    finish(c, checker).await
}

/// Item 7(c): connection refused is what a crashed process gives, and also what a
/// firewall `REJECT` rule gives while the process lives and can still reach its
/// replicas. The arbiter used to void the Primary's lease on a refused probe and let the
/// new Primary act at once, while the old one still held its lease: two acted at once
/// (the checker's `TwoActing`). Now the new Primary waits for the lease to run out.
#[tokio::test]
async fn a_primary_behind_a_reject_rule_keeps_its_lease_until_it_runs_out() -> anyhow::Result<()> {
    init_tracing();
    let _one = serial().await;
    // A lease much longer than detection and failover take, so that a successor that
    // did not wait for it would act while the old Primary still holds it.
    let c = Cluster::start_with(ClusterOptions {
        timings: keel_config::TimingsConfig {
            lease_ms: 2000,
            ..Default::default()
        },
        ..Default::default()
    })
    .await?;
    let want = not_the_leader(&c)?;
    let (p, e1) = c.create_set("s", &members_with_first(&c, want)).await?;
    ensure!(
        p == want,
        "node {want} should be the first Primary, not {p}"
    );
    let checker = c.checker()?;

    info!("--- a REJECT rule at node {p}, Primary of s in epoch {e1}: refused, yet alive");
    c.net().update(|f| {
        f.rejecting.insert(p);
    });
    let (q, e2) = c.wait_failover("s", e1, STEP).await?;
    ensure!(q != p && e2 > e1, "node {q} acts in epoch {e2}");
    info!("--- node {q} acts in epoch {e2}; never at the same time as node {p}");
    c.net().update(|f| {
        f.rejecting.remove(&p);
    });
    finish(c, checker).await
}
