//! Collecting orphans: objects that no file refers to. A put whose gateway died after
//! writing chunks but before the directory commit (or whose commit's fate it could
//! not learn) leaves such objects; nothing else does. Each storage set's Primary
//! looks through its objects now and then and deletes, through the normal write path
//! (so its replicas delete them too), those that:
//! - no file's chunk list names, in a directory replica brought up to date first
//!   (a read barrier; no sweep at all without a control plane);
//! - were written more than [`GRACE`] ago (a gateway gives up on a put that has not
//!   committed within [`crate::gateway::files::PUT_DEADLINE`], half of it);
//! - belong to this set under the current placement map (a rebalance moves the others).
//!
//! Tombstones older than the grace period are forgotten on every member.
//!
//! Must never: delete an object a committed file refers to, or one younger than the
//! grace period.

use super::wire::{Durability, StoreRequest, WriteOp, WriteRequest};
use super::{call, DataError};
use crate::node::{now_ms, NodeShared};
use keel_core::{Event, EventKind, MemberRef, SetId, SetKind};
use std::sync::Arc;
use std::time::Duration;

/// How old an unreferenced object must be before it is collected (a day, as object
/// stores commonly give abandoned uploads).
pub const GRACE: Duration = Duration::from_secs(24 * 3600);
/// How often a sweep runs.
const PERIOD: Duration = Duration::from_secs(60);

/// Runs for the life of the node.
pub async fn run(node: Arc<NodeShared>) {
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + PERIOD, PERIOD);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Err(e) = sweep(&node, GRACE).await {
            tracing::warn!("orphan sweep: {e}");
        }
    }
}

/// One sweep over the sets this node leads; returns how many objects it deleted.
pub async fn sweep(node: &Arc<NodeShared>, grace: Duration) -> Result<usize, DataError> {
    if !node.read_barrier().await {
        return Ok(0);
    }
    let referenced = node.db.read_dir(|ns| ns.referenced_objects());
    let me = node.id();
    let mine: Vec<SetId> = node.db.read(|s| {
        s.sets
            .values()
            .filter(|x| x.kind == SetKind::Storage && x.primary == Some(MemberRef::Node(me)))
            .map(|x| x.id.clone())
            .collect()
    });
    let svc = node.storage.as_ref().ok_or_else(|| DataError::Internal {
        reason: "no storage role".into(),
    })?;
    let now_micros = chrono::Utc::now().timestamp_micros().max(0) as u64;
    let old_enough = |seq: u64| now_micros.saturating_sub(seq) >= grace.as_micros() as u64;
    let mut deleted = 0;
    for set in mine {
        let orphans = svc
            .select(&set, |o| {
                !o.deleted
                    && old_enough(o.version.seq)
                    && !referenced.contains(&o.id)
                    && node.db.read(|s| s.placement.set_for(o.id) == Some(&set))
            })
            .await?;
        for id in &orphans {
            let Some(epoch) = node.db.read(|s| s.sets.get(&set).map(|x| x.epoch)) else {
                break;
            };
            let req = StoreRequest::Write(WriteRequest {
                set: set.clone(),
                epoch,
                id: *id,
                op: WriteOp::Delete,
                durability: Durability::AllInSync,
            });
            call(node, me, req, Duration::from_secs(10))
                .await
                .map_err(|e| DataError::Internal {
                    reason: format!("deleting orphan {id}: {e}"),
                })?;
            deleted += 1;
        }
        if !orphans.is_empty() {
            tracing::info!(
                set,
                n = orphans.len(),
                "orphan sweep: deleted objects no file refers to"
            );
            node.record(
                Event::new(now_ms(), EventKind::OrphansCollected)
                    .set(set.clone())
                    .node(me)
                    .detail(format!(
                        "{} objects no file refers to, older than {} s, deleted",
                        orphans.len(),
                        grace.as_secs()
                    )),
            )
            .await;
        }
    }
    purge_tombstones(node, &old_enough).await?;
    Ok(deleted)
}

/// Forgets this node's tombstones older than the grace period, in every storage set
/// it is a member of. Catch-up does not need them (a returning member drops what the
/// Primary does not have); they are only bookkeeping of deletes.
async fn purge_tombstones(
    node: &Arc<NodeShared>,
    old_enough: &impl Fn(u64) -> bool,
) -> Result<(), DataError> {
    let Some(svc) = node.storage.as_ref() else {
        return Ok(());
    };
    let me = MemberRef::Node(node.id());
    let sets: Vec<SetId> = node.db.read(|s| {
        s.sets
            .values()
            .filter(|x| x.kind == SetKind::Storage && x.has_member(&me))
            .map(|x| x.id.clone())
            .collect()
    });
    for set in sets {
        let old = svc
            .select(&set, |o| o.deleted && old_enough(o.version.seq))
            .await?;
        if !old.is_empty() {
            svc.blocking(move |s| old.iter().try_for_each(|id| s.purge_tombstone(*id)))
                .await?;
        }
    }
    Ok(())
}
