//! Rebalancing: after a layout change moved placement groups to other storage sets,
//! the Primary of each set copies the objects it holds that the new map places
//! elsewhere to their new set (through the locator, so the new set replicates them
//! like any write), then deletes them from its own set. Progress is logged and
//! recorded as events; readers find an object not moved yet through the previous map
//! (see `locator::read`).
//!
//! The store keeps one copy per (set, object): when the old and the new set share a
//! member, that member holds the object for both during the move, and the old set's
//! `Delete` removes only the old set's copy.
//!
//! Must never: delete an object from its old set before the new set acknowledged it,
//! or move anything while it is not the acting Primary of the old set.

use super::wire::{Durability, StoreReply, StoreRequest, WriteOp, WriteRequest};
use super::{call, DataError};
use crate::locator;
use crate::node::{now_ms, NodeShared};
use keel_core::{Event, EventKind, MemberRef, SetId, SetKind};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

const PERIOD: Duration = Duration::from_secs(1);

/// Runs for the life of the node.
pub async fn run(node: Arc<NodeShared>) {
    // Sets whose rebalance under a map version is done: (set, map version).
    let mut done: BTreeSet<(SetId, u64)> = BTreeSet::new();
    let mut tick = tokio::time::interval(PERIOD);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let me = node.id();
        let (version, mine): (u64, Vec<SetId>) = node.db.read(|s| {
            let mine = s
                .sets
                .values()
                .filter(|x| x.kind == SetKind::Storage && x.primary == Some(MemberRef::Node(me)))
                .map(|x| x.id.clone())
                .collect();
            (s.placement.version, mine)
        });
        if version == 0 {
            continue;
        }
        for set in mine {
            if done.contains(&(set.clone(), version)) {
                continue;
            }
            match rebalance_set(&node, &set, version).await {
                Ok(()) => {
                    done.insert((set, version));
                }
                Err(e) => tracing::warn!(set, "rebalance: {e}"),
            }
        }
    }
}

/// Moves every object of `set` that the map places elsewhere.
async fn rebalance_set(node: &Arc<NodeShared>, set: &SetId, version: u64) -> Result<(), DataError> {
    let svc = node.storage.as_ref().ok_or_else(|| DataError::Internal {
        reason: "no storage role".into(),
    })?;
    let misplaced = svc
        .select(set, |o| {
            !o.deleted && node.db.read(|s| s.placement.set_for(o.id) != Some(set))
        })
        .await?;
    if misplaced.is_empty() {
        return Ok(());
    }
    let total = misplaced.len();
    let started = Instant::now();
    tracing::info!(
        set,
        total,
        version,
        "rebalance: moving objects to their new sets"
    );
    let mut moved_bytes = 0u64;
    for (i, id) in misplaced.into_iter().enumerate() {
        let epoch = node.db.read(|s| s.sets.get(set).map(|x| x.epoch));
        let Some(epoch) = epoch else { return Ok(()) };
        let from = set.clone();
        let data = match svc.blocking(move |s| s.read(&from, id, 0, u64::MAX)).await {
            Ok(d) => d,
            Err(DataError::Store { error }) if error.code() == "not_found" => continue,
            Err(e) => return Err(e),
        };
        moved_bytes += data.len() as u64;
        locator::write(node, id, WriteOp::Put(data.into()), Durability::AllInSync).await?;
        let req = StoreRequest::Write(WriteRequest {
            set: set.clone(),
            epoch,
            id,
            op: WriteOp::Delete,
            durability: Durability::AllInSync,
        });
        match call(node, node.id(), req, Duration::from_secs(10)).await {
            Ok(StoreReply::Written(_)) => {}
            Ok(_) => {}
            Err(e) => {
                return Err(DataError::Internal {
                    reason: format!("moved object {id} but could not delete the old copy: {e}"),
                })
            }
        }
        node.metrics.objects_rebalanced.inc();
        if (i + 1) % 100 == 0 || i + 1 == total {
            tracing::info!(
                set,
                "rebalance: {}/{total} objects moved ({moved_bytes} bytes)",
                i + 1
            );
            node.record(
                Event::new(now_ms(), EventKind::RebalanceProgress)
                    .set(set.clone())
                    .node(node.id())
                    .detail(format!(
                        "{}/{total} objects moved ({moved_bytes} bytes) for placement map version {version}",
                        i + 1
                    )),
            )
            .await;
        }
    }
    node.record(
        Event::new(now_ms(), EventKind::RebalanceDone)
            .set(set.clone())
            .node(node.id())
            .detail(format!(
                "{total} objects ({moved_bytes} bytes) moved in {} ms for placement map version {version}",
                started.elapsed().as_millis()
            )),
    )
    .await;
    Ok(())
}
