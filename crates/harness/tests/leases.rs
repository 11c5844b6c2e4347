//! The Primary's lease, checked again before it acknowledges (issue 7, item 5): a
//! Primary whose lease runs out while a write is being replicated refuses the write,
//! even though every in-sync replica (or the in-sync list) ends up consistent with it.

mod common;

use anyhow::{ensure, Context};
use common::*;
use keel_core::{NodeId, ObjectId};
use keel_harness::{wait_for, wait_until, Cluster, Traffic, Way};
use keel_node::admin_api::AdminRequest;
use keel_node::storage::wire::{Durability, StoreRequest, WriteOp, WriteRequest};
use keel_node::storage::{self, DataError};
use std::time::{Duration, Instant};
use tracing::info;

/// Starts 3 nodes with the storage layout of `keel layout apply --replicas 2` (sets
/// `st-1` {1, 2}, `st-2` {2, 3}, `st-3` {3, 1}); returns once every set's Primary acts.
async fn storage_cluster() -> anyhow::Result<Cluster> {
    let c = Cluster::start(3).await?;
    c.admin(AdminRequest::ApplyLayout { replicas: Some(2) })
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
        if let Some(r) = set.in_sync.iter().copied().find(|r| *r != p && *r != leader) {
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

    info!("--- node {p}'s heartbeats (and lease renewals) stop; it stays Primary of {set}");
    c.block(p, Traffic::Datagrams, Way::Both);
    // Wait until its lease has less left than the failure detector needs to give up on
    // a replica (fail_after_ms, 350 ms): a write started now replicates past its end.
    wait_until("the lease is about to run out", STEP, || {
        let until = node
            .holder
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .until(&set);
        until.is_some_and(|u| u.saturating_duration_since(Instant::now()) < Duration::from_millis(150))
    })
    .await?;

    info!("--- replica {r} stops answering; a write to node {p} starts under its lease");
    c.pause(r).await?;
    let holds = node
        .holder
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .acting(&set, Instant::now());
    ensure!(holds == Some(epoch), "the write must start while node {p} holds the lease");
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
        matches!(answer, Err(DataError::NoLease { .. } | DataError::NotPrimary { .. })),
        "a Primary without a lease acknowledged a write: {answer:?}"
    );
    c.resume(r)?;
    c.unblock(p, Traffic::Datagrams, Way::Both);
    finish(c, checker).await
}
