//! The Primary's write path: check the epoch and the lease, apply locally (fsynced),
//! replicate to every other in-sync replica in parallel, take the replicas that did
//! not answer off the in-sync list through Raft, and only then acknowledge.
//!
//! The list replicated to is the COMMITTED one: this node's replica of the
//! configuration database, which has applied every change this node made to the list
//! (`NodeShared::write` returns only once the local replica applied the entry), and
//! only this set's Primary grows the list (`catchup::admit`). Each replica is sent the
//! store the list recorded for it; a replica with another store refuses, which is a
//! miss. Every change to the list is a compare-and-set on the list it was computed
//! from (`change_in_sync`).
//!
//! Must never: acknowledge when a replica neither took the write nor left the list
//! (the Raft write failing means a Primary cut off from the control plane blocks and
//! then refuses, it never acknowledges alone); count a refusal as a success.

use super::wire::{Durability, ReplicateRequest, StoreReply, StoreRequest, WriteOp, WriteRequest};
use super::{call, CallError, DataError, StorageService};
use crate::metrics::Metrics;
use crate::node::{now_ms, NodeShared};
use keel_core::{
    ClusterCommand, ClusterError, Epoch, MemberRef, NodeId, ObjectId, SetId, StoreId, Version,
};
use keel_store::{ObjectStat, ObjectStore, StoreError};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long the Primary keeps trying to shrink the in-sync list through Raft before it
/// gives up on the write (a leader election takes well under this).
const SHRINK_DEADLINE: Duration = Duration::from_secs(5);

/// How long a replica has to take a write: a base plus time for the bytes.
pub(crate) fn replicate_timeout(bytes: usize) -> Duration {
    Duration::from_millis(1500) + Duration::from_millis((bytes / (20 * 1024)) as u64)
}

/// A set's committed in-sync list: the nodes, and the store recorded for each.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct InSync {
    pub nodes: Vec<NodeId>,
    pub stores: BTreeMap<NodeId, StoreId>,
}

impl InSync {
    pub(crate) fn of(set: &keel_core::FailoverSet) -> InSync {
        InSync {
            nodes: set.in_sync.clone(),
            stores: set.in_sync_stores.clone(),
        }
    }
}

/// The in-sync list of `set` and its epoch, as this node's replica has it.
pub(crate) fn read_in_sync(node: &NodeShared, set: &str) -> Option<(Epoch, InSync)> {
    node.db
        .read(|s| s.sets.get(set).map(|x| (x.epoch, InSync::of(x))))
}

/// Checks that this node acts as Primary of `set` at `epoch` (its replica of the
/// configuration database says so, and it holds the lease); returns the in-sync list.
fn check_primary(node: &NodeShared, set: &SetId, epoch: Epoch) -> Result<InSync, DataError> {
    let (current, primary, in_sync) = node
        .db
        .read(|s| {
            s.sets
                .get(set)
                .map(|x| (x.epoch, x.primary_node(), InSync::of(x)))
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
    check_own_store(node, set, &in_sync)?;
    let holder = node.holder.lock().unwrap_or_else(|e| e.into_inner());
    if holder.acting(set, Instant::now()) != Some(epoch) {
        return Err(DataError::NoLease { set: set.clone() });
    }
    Ok(in_sync)
}

/// Refuses to act for `set` while its in-sync list records another store for this
/// node than the one it has: its disk was wiped or replaced and the control plane has
/// not learned it yet (its boot report not applied). Its store holds none of what the
/// list vouches for; acting on it would acknowledge writes over a hole and hand joiners
/// an empty listing to copy.
pub(crate) fn check_own_store(
    node: &NodeShared,
    set: &SetId,
    in_sync: &InSync,
) -> Result<(), DataError> {
    let recorded = in_sync.stores.get(&node.id()).copied();
    match node.store_id() {
        Some(actual) => not_another_store(set, node.id(), recorded, actual),
        None => Ok(()),
    }
}

/// `node`'s store `actual` may stand for the copy the in-sync list of `set` vouches for
/// only if it is the store the list recorded for it (`recorded`; none recorded: any).
pub(crate) fn not_another_store(
    set: &SetId,
    node: NodeId,
    recorded: Option<StoreId>,
    actual: StoreId,
) -> Result<(), DataError> {
    match recorded {
        Some(expected) if expected != actual => Err(DataError::StoreMismatch {
            set: set.clone(),
            node,
            expected,
            actual,
        }),
        _ => Ok(()),
    }
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
        store.forget(set, id)?;
    }
    match op {
        WriteOp::Put(data) => store.put(set, id, data, version),
        WriteOp::WriteAt { offset, data } => store.write(set, id, *offset, data, version),
        WriteOp::Truncate { size } => store.truncate(set, id, *size, version),
        WriteOp::Forget => {
            store.forget(set, id)?;
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
    let _object = svc.primary_locks.of(&req.set, req.id).lock().await;
    // The list may have changed while this write waited for the locks.
    let in_sync = check_primary(node, &req.set, req.epoch)?;
    let (set, epoch, id) = (req.set.clone(), req.epoch, req.id);
    let current = svc
        .blocking({
            let set = set.clone();
            move |s| {
                s.check_epoch(&set, epoch)?;
                s.stat(&set, id)
            }
        })
        .await?;
    let version = svc.next_version(epoch, current.map(|st| st.version));
    let op = Arc::new(req.op);
    let me = node.id();
    let my_site = node.cfg.site.clone();
    let site_of = |n: NodeId| node.db.read(|s| s.members.get(&n).map(|m| m.site.clone()));
    let stores = Arc::new(in_sync.stores);
    let (now, later): (Vec<NodeId>, Vec<NodeId>) = in_sync
        .nodes
        .iter()
        .copied()
        .filter(|n| *n != me)
        .partition(|n| {
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
    let to = Replicas {
        nodes: &now,
        stores: &stores,
    };
    let (local, replication) = (
        Metrics::time(&node.metrics.local_write_seconds, local),
        Metrics::time(
            &node.metrics.replication_seconds,
            replicate(node, &set, epoch, id, version, &op, to),
        ),
    );
    let (stat, failed) = tokio::join!(local, replication);
    let stat = stat?;
    let failed = refusals_fail_the_write(&set, epoch, failed)?;
    if !failed.is_empty() {
        shrink_in_sync(node, &set, epoch, &failed).await?;
    }
    if let Some(ticket) = ticket {
        let (node, set, op) = (node.clone(), set.clone(), op.clone());
        tokio::spawn(async move {
            let to = Replicas {
                nodes: &later,
                stores: &stores,
            };
            let failed = replicate(&node, &set, epoch, id, version, &op, to).await;
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

/// The replicas a write goes to, with the store the committed list recorded for each.
#[derive(Clone, Copy)]
struct Replicas<'a> {
    nodes: &'a [NodeId],
    stores: &'a BTreeMap<NodeId, StoreId>,
}

/// Sends the write to each replica in parallel (each told the store it must have);
/// returns those that did not take it.
async fn replicate(
    node: &Arc<NodeShared>,
    set: &SetId,
    epoch: Epoch,
    id: ObjectId,
    version: Version,
    op: &WriteOp,
    to: Replicas<'_>,
) -> Vec<(NodeId, CallError)> {
    let timeout = replicate_timeout(op.len());
    let calls = to.nodes.iter().map(|n| {
        let req = StoreRequest::Replicate(ReplicateRequest {
            set: set.clone(),
            epoch,
            id,
            version,
            op: op.clone(),
            force: false,
            store: to.stores.get(n).copied(),
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
pub(crate) fn refusals_fail_the_write(
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

/// Resolves once this node no longer acts as Primary of `set` at `epoch` (its lease
/// ran out or was revoked); checked every 50 ms.
async fn lease_lost(node: &NodeShared, set: &SetId, epoch: Epoch) {
    loop {
        let acting = node
            .holder
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .acting(set, Instant::now());
        if acting != Some(epoch) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Takes `failed` off the set's in-sync list through Raft, retrying until the
/// deadline or until this node's lease on the set runs out; an error means the write
/// must not be acknowledged.
pub(crate) async fn shrink_in_sync(
    node: &Arc<NodeShared>,
    set: &SetId,
    epoch: Epoch,
    failed: &[(NodeId, String)],
) -> Result<(), DataError> {
    let (first, why) = failed[0].clone();
    let change = |list: &InSync| {
        let keep: Vec<NodeId> = list
            .nodes
            .iter()
            .copied()
            .filter(|n| !failed.iter().any(|(f, _)| f == n))
            .collect();
        (keep != list.nodes).then_some((keep, BTreeMap::new()))
    };
    let deadline = Some(Instant::now() + SHRINK_DEADLINE);
    // A Primary whose lease runs out meanwhile (it is cut off from the control plane,
    // or paused) can no longer acknowledge this write: say so at once, so the client
    // goes to the new Primary, instead of holding it until the control plane answers
    // again (found by `keel bench failover`: a client whose write was in flight on a
    // node whose links were cut waited for the whole cut). Dropping the change is an
    // unknown outcome like a timeout; a shrink only removes members, so a later write
    // that still sees the longer list replicates to more nodes, never fewer.
    let outcome = tokio::select! {
        outcome = change_in_sync(node, set, epoch, change, deadline) => outcome,
        () = lease_lost(node, set, epoch) => {
            return Err(DataError::NoLease { set: set.clone() });
        }
    };
    match outcome {
        Ok(changed) => {
            if changed {
                tracing::warn!(
                    set,
                    ?failed,
                    "replica missed a write: left the in-sync list"
                );
                node.metrics.in_sync_shrinks.inc_by(failed.len() as u64);
            }
            Ok(())
        }
        Err(ChangeError::Data(e)) => Err(e),
        Err(ChangeError::Failed(reason)) => Err(DataError::InSyncShrinkFailed {
            set: set.clone(),
            node: first,
            reason: format!("{why}; then {reason}"),
        }),
    }
}

/// Why a change of the in-sync list was not made.
#[derive(Debug)]
pub(crate) enum ChangeError {
    /// This node is no longer the set's Primary at the epoch, or the set is gone.
    Data(DataError),
    /// Refused for good, or (past the deadline) its outcome is unknown.
    Failed(String),
}

/// Changes the in-sync list of `set` through Raft as a compare-and-set: `change`
/// computes the new list (and the stores of the nodes it adds) from the committed one,
/// or `None` when nothing is left to do. A refusal because the list changed meanwhile
/// recomputes from the fresh list (two changes computed from one list can never both
/// apply). An unknown outcome (a timeout: the entry may still commit later) waits for
/// a read barrier and tries again: the next attempt is written after the unknown one,
/// so once it is decided the unknown one is too. Without a deadline it tries until the
/// change is decided or the set's epoch moves on. Returns whether the list changed;
/// when it returns, this node's replica shows the committed list.
pub(crate) async fn change_in_sync(
    node: &Arc<NodeShared>,
    set: &SetId,
    epoch: Epoch,
    change: impl Fn(&InSync) -> Option<(Vec<NodeId>, BTreeMap<NodeId, StoreId>)>,
    deadline: Option<Instant>,
) -> Result<bool, ChangeError> {
    let mut changed = false;
    loop {
        let Some((current_epoch, list)) = read_in_sync(node, set) else {
            return Err(ChangeError::Data(DataError::BadRequest {
                reason: format!("storage set {set:?} is gone"),
            }));
        };
        if current_epoch != epoch {
            return Err(ChangeError::Data(DataError::NotPrimary {
                set: set.clone(),
                presented: epoch,
                current: current_epoch,
                primary: None,
            }));
        }
        let Some((in_sync, stores)) = change(&list) else {
            return Ok(changed);
        };
        let cmd = ClusterCommand::SetInSync {
            set: set.clone(),
            expected_epoch: epoch,
            expected_in_sync: list.nodes.clone(),
            in_sync,
            stores,
            at: now_ms(),
        };
        let unknown = match node.write(cmd).await.map(|r| r.into_result()) {
            // Applied here too: the next read of the list sees it.
            Ok(Ok(_)) => {
                changed = true;
                continue;
            }
            // Decided, and applied here: recompute from the list that won.
            Ok(Err(ClusterError::InSyncChanged { .. })) => continue,
            Ok(Err(ClusterError::StaleEpoch { current, .. })) => {
                return Err(ChangeError::Data(DataError::NotPrimary {
                    set: set.clone(),
                    presented: epoch,
                    current,
                    primary: None,
                }))
            }
            Ok(Err(e)) => return Err(ChangeError::Failed(e.to_string())),
            Err(unknown) => unknown,
        };
        tracing::warn!(
            set,
            "in-sync list change: outcome unknown ({unknown}); retrying"
        );
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return Err(ChangeError::Failed(unknown));
        }
        // Re-read the list only once this replica is as current as the leader.
        while !node.read_barrier().await {
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Err(ChangeError::Failed(unknown));
            }
            if read_in_sync(node, set).is_none_or(|(e, _)| e != epoch) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
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

#[cfg(test)]
mod store_tests {
    use super::*;

    #[test]
    fn only_the_recorded_store_stands_for_the_listed_copy() {
        let set: SetId = "st-1".into();
        let (old, new) = (StoreId(1), StoreId(2));
        // Wiped since the list recorded it: refused, naming both stores.
        match not_another_store(&set, 3, Some(old), new) {
            Err(DataError::StoreMismatch {
                node,
                expected,
                actual,
                ..
            }) => assert_eq!((node, expected, actual), (3, old, new)),
            other => panic!("{other:?}"),
        }
        assert!(not_another_store(&set, 3, Some(old), old).is_ok());
        // No store recorded (a list written before stores had identities): any.
        assert!(not_another_store(&set, 3, None, new).is_ok());
    }
}
