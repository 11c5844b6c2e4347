//! A replica's side: apply a Primary's write at the Primary's version (after the epoch
//! check), serve reads, hand out whole objects for catch-up, and repair an object
//! whose checksum does not match from another in-sync replica.
//!
//! Must never: apply a write from an older epoch than this node has seen for the set,
//! apply a write meant for another store than this node's (its disk was wiped or
//! replaced since the Primary's in-sync list recorded it), or serve bytes whose
//! checksum failed.

use super::primary::apply_local;
use super::wire::{ReadRequest, ReplicateRequest, StoreReply, StoreRequest};
use super::{call, DataError, StorageService};
use crate::node::{now_ms, NodeShared};
use keel_core::{Event, EventKind, NodeId, ObjectId, SetId};
use keel_store::StoreError;
use std::sync::Arc;
use std::time::Duration;

pub async fn apply(
    node: &Arc<NodeShared>,
    svc: &StorageService,
    r: ReplicateRequest,
) -> Result<StoreReply, DataError> {
    // A write meant for another store (this node's disk was wiped or replaced since
    // the Primary's in-sync list recorded it) is refused: taking it would make the
    // Primary count a copy this store does not have in full.
    let actual = svc.store.store_id();
    if let Some(expected) = r.store.filter(|s| *s != actual) {
        return Err(DataError::StoreMismatch {
            set: r.set,
            node: node.id(),
            expected,
            actual,
        });
    }
    let _object = svc.replica_locks.of(&r.set, r.id).lock().await;
    let (set, presented, id) = (r.set.clone(), r.epoch, r.id);
    let result = svc
        .blocking(move |s| {
            s.check_epoch(&r.set, r.epoch)?;
            match apply_local(s, &r.set, r.id, &r.op, r.version, r.force) {
                // A write delivered twice (a retried call) is already here.
                Err(StoreError::OlderVersion { .. })
                    if s.stat(&r.set, r.id)?
                        .is_some_and(|st| st.version >= r.version) =>
                {
                    s.stat(&r.set, r.id)?
                        .ok_or(StoreError::NotFound { id: r.id })
                }
                other => other,
            }
        })
        .await;
    if let Err(DataError::Store {
        error: StoreError::StaleEpoch { current, .. },
    }) = &result
    {
        report_stale(node, svc, &set, presented, *current, id);
    }
    Ok(StoreReply::Written(result?))
}

/// Records (once per set and deposed epoch) that this node refused a write fenced by
/// an older epoch: a deposed Primary still running.
fn report_stale(
    node: &Arc<NodeShared>,
    svc: &StorageService,
    set: &str,
    presented: keel_core::Epoch,
    current: keel_core::Epoch,
    id: ObjectId,
) {
    let fresh = svc
        .stale_reported
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert((set.to_string(), presented));
    if !fresh {
        return;
    }
    tracing::warn!(set, %presented, %current, "refused a replicated write from a deposed epoch");
    let node2 = node.clone();
    let event = Event::new(now_ms(), EventKind::StaleEpochRefused)
        .set(set.to_string())
        .node(node.id())
        .epoch(presented)
        .detail(format!(
            "node {} refused a write of object {id} at epoch {presented}: the set is at epoch {current}",
            node.id()
        ));
    tokio::spawn(async move { node2.record(event).await });
}

pub async fn read(
    node: &Arc<NodeShared>,
    svc: &StorageService,
    r: ReadRequest,
) -> Result<StoreReply, DataError> {
    let (id, offset, len) = (r.id, r.offset, r.len);
    let attempt = || async {
        let set = r.set.clone();
        svc.blocking(move |s| {
            let stat = s.stat(&set, id)?.filter(|st| !st.deleted);
            let stat = stat.ok_or(StoreError::NotFound { id })?;
            let data = s.read(&set, id, offset, len)?;
            Ok((stat.version, data))
        })
        .await
    };
    match attempt().await {
        Err(DataError::Store {
            error: StoreError::Corrupt { block, .. },
        }) => {
            repair(node, svc, &r.set, id, block).await?;
            let (version, data) = attempt().await?;
            Ok(StoreReply::Data { version, data })
        }
        Ok((version, data)) => Ok(StoreReply::Data { version, data }),
        Err(e) => Err(e),
    }
}

pub async fn fetch(
    svc: &StorageService,
    set: SetId,
    id: ObjectId,
) -> Result<StoreReply, DataError> {
    svc.blocking(move |s| {
        let stat = s.stat(&set, id)?.ok_or(StoreError::NotFound { id })?;
        let data = if stat.deleted {
            vec![]
        } else {
            s.read(&set, id, 0, stat.size)?
        };
        Ok(StoreReply::Object { stat, data })
    })
    .await
}

/// Replaces a corrupt local copy of `id` with a good one from another member of the
/// set, and records the repair as an event.
async fn repair(
    node: &Arc<NodeShared>,
    svc: &StorageService,
    set: &str,
    id: ObjectId,
    block: u64,
) -> Result<(), DataError> {
    tracing::error!(%id, block, "checksum mismatch: repairing from a replica");
    let others: Vec<NodeId> = node.db.read(|s| {
        s.sets
            .get(set)
            .map(|x| {
                let mut v: Vec<NodeId> = x.in_sync.clone();
                v.extend(x.member_nodes());
                v.dedup();
                v
            })
            .unwrap_or_default()
    });
    let mut tried = vec![];
    for other in others.into_iter().filter(|n| *n != node.id()) {
        match call(
            node,
            other,
            StoreRequest::Fetch {
                set: set.to_string(),
                id,
            },
            Duration::from_secs(10),
        )
        .await
        {
            Ok(StoreReply::Object { stat, data }) if !stat.deleted => {
                let set_owned = set.to_string();
                let _object = svc.replica_locks.of(set, id).lock().await;
                svc.blocking(move |s| {
                    s.forget(&set_owned, id)?;
                    s.put(&set_owned, id, &data, stat.version)
                })
                .await?;
                node.metrics.objects_repaired.inc();
                let detail = format!(
                    "object {id}: checksum mismatch in block {block}, repaired from node {other} (version {})",
                    stat.version
                );
                let node2 = node.clone();
                let set = set.to_string();
                tokio::spawn(async move {
                    node2
                        .record(
                            Event::new(now_ms(), EventKind::ObjectRepaired)
                                .set(set)
                                .node(node2.id())
                                .detail(detail),
                        )
                        .await
                });
                return Ok(());
            }
            Ok(_) => tried.push(format!("node {other}: no copy")),
            Err(e) => tried.push(e.to_string()),
        }
    }
    Err(DataError::Store {
        error: StoreError::Corrupt { id, block },
    })
    .inspect_err(|_| tracing::error!(%id, "no replica could repair: {}", tried.join("; ")))
}
