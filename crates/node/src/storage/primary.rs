//! The Primary's write path: check the epoch and the lease, apply locally (fsynced),
//! replicate to every other in-sync replica in parallel, take the replicas that did
//! not answer off the in-sync list through Raft, and only then acknowledge.
//!
//! Must never: acknowledge when a replica neither took the write nor left the list
//! (the Raft write failing means a Primary cut off from the control plane blocks and
//! then refuses, it never acknowledges alone).

use super::wire::{Durability, ReplicateRequest, StoreReply, StoreRequest, WriteOp, WriteRequest};
use super::{call, CallError, DataError, StorageService};
use crate::node::{now_ms, NodeShared};
use keel_core::{ClusterCommand, Epoch, MemberRef, NodeId, ObjectId, SetId, Version};
use keel_store::{ObjectStat, ObjectStore, StoreError};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long the Primary keeps trying to shrink the in-sync list through Raft before it
/// gives up on the write (a leader election takes well under this).
const SHRINK_DEADLINE: Duration = Duration::from_secs(5);

/// How long a replica has to take a write: a base plus time for the bytes.
pub(crate) fn replicate_timeout(bytes: usize) -> Duration {
    Duration::from_millis(1500) + Duration::from_millis((bytes / (20 * 1024)) as u64)
}

/// Checks that this node acts as Primary of `set` at `epoch` (its replica of the
/// configuration database says so, and it holds the lease); returns the in-sync list.
fn check_primary(node: &NodeShared, set: &SetId, epoch: Epoch) -> Result<Vec<NodeId>, DataError> {
    let (current, primary, in_sync) = node
        .db
        .read(|s| {
            s.sets
                .get(set)
                .map(|x| (x.epoch, x.primary_node(), x.in_sync.clone()))
        })
        .ok_or_else(|| DataError::BadRequest {
            reason: format!("unknown storage set {set:?}"),
        })?;
    if current != epoch || primary != Some(node.id()) {
        return Err(DataError::NotPrimary {
            set: set.clone(),
            presented: epoch,
            current,
            primary,
        });
    }
    let holder = node.holder.lock().unwrap_or_else(|e| e.into_inner());
    if holder.acting(set, Instant::now()) != Some(epoch) {
        return Err(DataError::NoLease { set: set.clone() });
    }
    Ok(in_sync)
}

/// Applies `op` to the local store at `version`.
pub(crate) fn apply_local(
    store: &ObjectStore,
    set: &str,
    id: ObjectId,
    op: &WriteOp,
    version: Version,
    force: bool,
) -> Result<ObjectStat, StoreError> {
    if force {
        store.forget(id)?;
    }
    match op {
        WriteOp::Put(data) => store.put(set, id, data, version),
        WriteOp::WriteAt { offset, data } => store.write(set, id, *offset, data, version),
        WriteOp::Truncate { size } => store.truncate(set, id, *size, version),
        WriteOp::Forget => {
            store.forget(id)?;
            Ok(ObjectStat {
                id,
                set: set.to_string(),
                size: 0,
                version,
                deleted: true,
            })
        }
        WriteOp::Delete => {
            store.delete(set, id, version)?;
            Ok(ObjectStat {
                id,
                set: set.to_string(),
                size: 0,
                version,
                deleted: true,
            })
        }
    }
}

pub async fn write(
    node: &Arc<NodeShared>,
    svc: &StorageService,
    req: WriteRequest,
) -> Result<StoreReply, DataError> {
    let bytes = req.op.len() as u64;
    let r = write_inner(node, svc, req).await;
    match &r {
        Ok(_) => {
            node.metrics.writes_acknowledged.inc();
            node.metrics.bytes_written.inc_by(bytes);
        }
        Err(_) => {
            node.metrics.writes_refused.inc();
        }
    }
    r
}

async fn write_inner(
    node: &Arc<NodeShared>,
    svc: &StorageService,
    req: WriteRequest,
) -> Result<StoreReply, DataError> {
    check_primary(node, &req.set, req.epoch)?;
    let gate = svc.gate(&req.set);
    let _shared = gate.read().await;
    let _object = svc.object_lock(req.id).lock().await;
    // The list may have changed while this write waited for the locks.
    let in_sync = check_primary(node, &req.set, req.epoch)?;
    let (set, epoch, id) = (req.set.clone(), req.epoch, req.id);
    svc.blocking({
        let set = set.clone();
        move |s| s.check_epoch(&set, epoch)
    })
    .await?;
    let version = Version {
        epoch,
        seq: svc.next_seq(),
    };
    let op = Arc::new(req.op);
    let me = node.id();
    let my_site = node.cfg.site.clone();
    let site_of = |n: NodeId| node.db.read(|s| s.members.get(&n).map(|m| m.site.clone()));
    let (now, later): (Vec<NodeId>, Vec<NodeId>) =
        in_sync.iter().copied().filter(|n| *n != me).partition(|n| {
            req.durability == Durability::AllInSync || site_of(*n).as_deref() == Some(&my_site)
        });
    // Asynchronous replication: room in the set's bounded backlog first (writes wait
    // while it is full), and no write while a remote replica that missed one is still
    // on the in-sync list (see `async_repl.rs`).
    let ticket = if later.is_empty() {
        None
    } else {
        svc.async_repl.hold_while_lagging(&set).await?;
        Some(
            svc.async_repl
                .reserve(&node.metrics, &set, op.len() as u64)
                .await?,
        )
    };
    // The local write and the replicas' run at once (the acknowledgement waits for
    // all of them): a write costs one fsync round, not two. If the local write fails,
    // replicas may hold a version the Primary has not: it is not acknowledged, and the
    // next write of the object (or a catch-up) replaces it.
    let local = svc.blocking({
        let (set, op) = (set.clone(), op.clone());
        move |s| apply_local(s, &set, id, &op, version, false)
    });
    let (stat, failed) = tokio::join!(local, replicate(node, &set, epoch, id, version, &op, &now));
    let stat = stat?;
    let failed = refusals_fail_the_write(&set, epoch, failed)?;
    if !failed.is_empty() {
        shrink_in_sync(node, &set, epoch, &failed).await?;
    }
    if let Some(ticket) = ticket {
        let (node, set, op) = (node.clone(), set.clone(), op.clone());
        tokio::spawn(async move {
            let failed = replicate(&node, &set, epoch, id, version, &op, &later).await;
            let missed: Vec<(NodeId, String)> = failed
                .into_iter()
                .map(|(n, e)| (n, e.to_string()))
                .collect();
            super::async_repl::settle(ticket, missed.clone(), || {
                shrink_in_sync(&node, &set, epoch, &missed)
            })
            .await;
        });
    }
    // The last word before acknowledging: no remote replica known to have missed a
    // write is still in sync, and this node still acts as the set's Primary.
    svc.async_repl.hold_while_lagging(&set).await?;
    super::ack_check::still_acting(node, &set, epoch)?;
    Ok(StoreReply::Written(stat))
}

/// Sends the write to each of `to` in parallel; returns those that did not take it.
async fn replicate(
    node: &Arc<NodeShared>,
    set: &SetId,
    epoch: Epoch,
    id: ObjectId,
    version: Version,
    op: &WriteOp,
    to: &[NodeId],
) -> Vec<(NodeId, CallError)> {
    let timeout = replicate_timeout(op.len());
    let calls = to.iter().map(|n| {
        let req = StoreRequest::Replicate(ReplicateRequest {
            set: set.clone(),
            epoch,
            id,
            version,
            op: op.clone(),
            force: false,
        });
        async move {
            // A replica whose host is gone never answers: stop waiting as soon as the
            // failure detector has marked it failed.
            let answer = tokio::select! {
                r = call(node, *n, req, timeout) => r,
                () = member_down(node, *n) => Err(CallError::Unreachable {
                    node: *n,
                    reason: "marked failed by the failure detector".into(),
                }),
            };
            (*n, answer)
        }
    });
    futures::future::join_all(calls)
        .await
        .into_iter()
        .filter_map(|(n, r)| r.err().map(|e| (n, e)))
        .collect()
}

/// Sorts the replicas that did not take a write. A replica that refused it for a
/// reason of the write itself (no space, too large) fails the write: taking it off the
/// in-sync list would only lower the set's redundancy for a write that cannot be
/// stored. A replica that has seen a newer epoch means this Primary is deposed. The
/// others (unreachable, or broken) must leave the in-sync list.
fn refusals_fail_the_write(
    set: &SetId,
    epoch: Epoch,
    failed: Vec<(NodeId, CallError)>,
) -> Result<Vec<(NodeId, String)>, DataError> {
    let mut missed = vec![];
    for (n, e) in failed {
        match e {
            CallError::Data(DataError::Store { error }) => match error {
                StoreError::NoSpace { .. } | StoreError::TooLarge { .. } => {
                    return Err(DataError::Store { error })
                }
                StoreError::StaleEpoch { current, .. } => {
                    return Err(DataError::NotPrimary {
                        set: set.clone(),
                        presented: epoch,
                        current,
                        primary: None,
                    })
                }
                other => missed.push((n, other.to_string())),
            },
            other => missed.push((n, other.to_string())),
        }
    }
    Ok(missed)
}

/// Resolves once `n` is no longer an up member in this replica's view (failed,
/// quarantined, removed); never while it stays up.
async fn member_down(node: &NodeShared, n: NodeId) {
    let mut applied = node.db.applied_watch();
    loop {
        let up = node.db.read(|s| {
            s.members.get(&n).is_some_and(|m| {
                use keel_core::MemberState::{Joining, Suspect, Up};
                matches!(m.state, Up | Suspect | Joining)
            })
        });
        if !up {
            return;
        }
        if applied.changed().await.is_err() {
            return std::future::pending().await;
        }
    }
}

/// Takes `failed` off the set's in-sync list through Raft, retrying until the
/// deadline; an error means the write must not be acknowledged.
pub(crate) async fn shrink_in_sync(
    node: &Arc<NodeShared>,
    set: &SetId,
    epoch: Epoch,
    failed: &[(NodeId, String)],
) -> Result<(), DataError> {
    let deadline = Instant::now() + SHRINK_DEADLINE;
    let (first, why) = failed[0].clone();
    loop {
        let current = node
            .db
            .read(|s| s.sets.get(set).map(|x| (x.epoch, x.in_sync.clone())));
        let Some((current_epoch, list)) = current else {
            return Err(DataError::BadRequest {
                reason: format!("storage set {set:?} is gone"),
            });
        };
        if current_epoch != epoch {
            return Err(DataError::NotPrimary {
                set: set.clone(),
                presented: epoch,
                current: current_epoch,
                primary: None,
            });
        }
        let keep: Vec<NodeId> = list
            .iter()
            .copied()
            .filter(|n| !failed.iter().any(|(f, _)| f == n))
            .collect();
        if keep == list {
            return Ok(());
        }
        tracing::warn!(
            set,
            ?failed,
            "replica missed a write: leaving the in-sync list"
        );
        let cmd = ClusterCommand::SetInSync {
            set: set.clone(),
            expected_epoch: epoch,
            in_sync: keep,
            at: now_ms(),
        };
        let reason = match node.write(cmd).await {
            Ok(r) => match r.into_result() {
                Ok(_) => {
                    node.metrics.in_sync_shrinks.inc_by(failed.len() as u64);
                    return Ok(());
                }
                Err(e) => e.to_string(),
            },
            Err(e) => e,
        };
        if Instant::now() >= deadline {
            return Err(DataError::InSyncShrinkFailed {
                set: set.clone(),
                node: first,
                reason: format!("{why}; then {reason}"),
            });
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Is `node` the Primary of `set` in this replica's view?
pub(crate) fn is_primary(node: &NodeShared, set: &str) -> bool {
    node.db.read(|s| {
        s.sets
            .get(set)
            .is_some_and(|x| x.primary == Some(MemberRef::Node(node.id())))
    })
}
