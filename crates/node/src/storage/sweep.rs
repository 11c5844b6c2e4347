//! Collecting orphans: objects that no file refers to. A put whose gateway died after
//! writing chunks but before the directory commit (or whose commit's fate it could
//! not learn) leaves such objects; nothing else does. Each storage set's Primary
//! looks through its objects now and then and deletes, through the normal write path
//! (so its replicas delete them too), those that:
//! - no file's chunk list names, in a directory replica brought up to date first
//!   (a read barrier; no sweep at all without a control plane);
//! - this node has seen unreferenced, sweep after sweep, for at least [`GRACE`] by
//!   its own monotonic clock (a gateway gives up on a put that has not committed
//!   within [`crate::gateway::files::PUT_DEADLINE`], half of it; an object first seen
//!   unreferenced at `t` was written before `t`, so it is older than the grace);
//! - belong to this set under the current placement map (a rebalance moves the others).
//!
//! No decision compares two machines' clocks: an object's version carries the wall
//! clock of the Primary that wrote it, which may be another node, ahead or behind. The
//! sweep's memory ([`Seen`]) lives in the process: after a restart, or on a node that
//! has just become Primary, an orphan waits one whole grace again (later, never
//! sooner). Tombstones are forgotten on every member once this node has seen them for
//! the grace period, by the same rule.
//!
//! Must never: delete an object a committed file refers to, or one this node has not
//! seen unreferenced for the whole grace period; stop a sweep because one delete
//! failed.

use super::wire::{Durability, StoreRequest, WriteOp, WriteRequest};
use super::{call, DataError};
use crate::node::{now_ms, NodeShared};
use keel_core::{Event, EventKind, MemberRef, ObjectId, SetId, SetKind};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long an object must stay unreferenced before it is collected (a day, as object
/// stores commonly give abandoned uploads).
pub const GRACE: Duration = Duration::from_secs(24 * 3600);
/// How often a sweep runs.
const PERIOD: Duration = Duration::from_secs(60);

/// When this node first saw each candidate (by its monotonic clock): unreferenced
/// objects, and tombstones, per (set, object).
#[derive(Default)]
pub struct Seen {
    orphans: HashMap<(SetId, ObjectId), Instant>,
    tombstones: HashMap<(SetId, ObjectId), Instant>,
}

/// Records `now` for the candidates not seen before, forgets those that are no longer
/// candidates, and returns those first seen at least `grace` before `now`.
fn due(
    seen: &mut HashMap<(SetId, ObjectId), Instant>,
    candidates: &HashSet<(SetId, ObjectId)>,
    now: Instant,
    grace: Duration,
) -> Vec<(SetId, ObjectId)> {
    seen.retain(|k, _| candidates.contains(k));
    let mut out = vec![];
    for k in candidates {
        let first = *seen.entry(k.clone()).or_insert(now);
        if now.saturating_duration_since(first) >= grace {
            out.push(k.clone());
        }
    }
    out.sort();
    out
}

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

/// One sweep over the sets this node leads, now; returns how many objects it deleted.
pub async fn sweep(node: &Arc<NodeShared>, grace: Duration) -> Result<usize, DataError> {
    sweep_at(node, grace, Instant::now()).await
}

/// One sweep as if this node's monotonic clock read `now` (tests pass a later instant
/// instead of waiting for the grace period).
pub async fn sweep_at(
    node: &Arc<NodeShared>,
    grace: Duration,
    now: Instant,
) -> Result<usize, DataError> {
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
    let mut candidates = HashSet::new();
    for set in &mine {
        let unreferenced = svc
            .select(set, |o| {
                !o.deleted
                    && !referenced.contains(&o.id)
                    && node.db.read(|s| s.placement.set_for(o.id) == Some(set))
            })
            .await?;
        candidates.extend(unreferenced.into_iter().map(|id| (set.clone(), id)));
    }
    let orphans = {
        let mut seen = svc.sweep_seen.lock().unwrap_or_else(|e| e.into_inner());
        due(&mut seen.orphans, &candidates, now, grace)
    };
    // Checked again just before deleting: the directory, not the list of a moment ago.
    let referenced = if orphans.is_empty() {
        referenced
    } else {
        node.db.read_dir(|ns| ns.referenced_objects())
    };
    let mut deleted: HashMap<SetId, usize> = HashMap::new();
    for (set, id) in orphans {
        if referenced.contains(&id) {
            continue;
        }
        let Some(epoch) = node.db.read(|s| s.sets.get(&set).map(|x| x.epoch)) else {
            continue;
        };
        let req = StoreRequest::Write(WriteRequest {
            set: set.clone(),
            epoch,
            id,
            op: WriteOp::Delete,
            durability: Durability::AllInSync,
        });
        match call(node, me, req, Duration::from_secs(10)).await {
            Ok(_) => *deleted.entry(set).or_default() += 1,
            Err(e) => tracing::warn!(set, %id, "orphan sweep: deleting an orphan: {e}"),
        }
    }
    for (set, n) in &deleted {
        tracing::info!(set, n, "orphan sweep: deleted objects no file refers to");
        node.record(
            Event::new(now_ms(), EventKind::OrphansCollected)
                .set(set.clone())
                .node(me)
                .detail(format!(
                    "{n} objects no file refers to, unreferenced for {} s, deleted",
                    grace.as_secs()
                )),
        )
        .await;
    }
    purge_tombstones(node, now, grace).await?;
    Ok(deleted.values().sum())
}

/// Forgets this node's tombstones that it has seen for the grace period, in every
/// storage set it is a member of. Catch-up does not need them (a returning member drops
/// what the Primary does not have); they are only bookkeeping of deletes.
async fn purge_tombstones(
    node: &Arc<NodeShared>,
    now: Instant,
    grace: Duration,
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
    let mut candidates = HashSet::new();
    for set in sets {
        let tombstones = svc.select(&set, |o| o.deleted).await?;
        candidates.extend(tombstones.into_iter().map(|id| (set.clone(), id)));
    }
    let old = {
        let mut seen = svc.sweep_seen.lock().unwrap_or_else(|e| e.into_inner());
        due(&mut seen.tombstones, &candidates, now, grace)
    };
    if !old.is_empty() {
        svc.blocking(move |s| {
            old.iter()
                .try_for_each(|(set, id)| s.purge_tombstone(set, *id))
        })
        .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: u128) -> (SetId, ObjectId) {
        ("st-1".to_string(), ObjectId(id))
    }

    #[test]
    fn an_object_is_due_only_after_the_grace_on_this_nodes_clock() {
        let grace = Duration::from_secs(60);
        let t0 = Instant::now();
        let mut seen = HashMap::new();
        let both: HashSet<_> = [key(1), key(2)].into();
        assert!(due(&mut seen, &both, t0, grace).is_empty(), "first sight");
        let later = t0 + Duration::from_secs(30);
        assert!(due(&mut seen, &both, later, grace).is_empty());
        let after = t0 + grace;
        assert_eq!(due(&mut seen, &both, after, grace), vec![key(1), key(2)]);
    }

    #[test]
    fn an_object_referenced_again_starts_over() {
        let grace = Duration::from_secs(60);
        let t0 = Instant::now();
        let mut seen = HashMap::new();
        let one: HashSet<_> = [key(1)].into();
        due(&mut seen, &one, t0, grace);
        // Referenced for a while (not a candidate), then unreferenced again.
        due(
            &mut seen,
            &HashSet::new(),
            t0 + Duration::from_secs(10),
            grace,
        );
        let again = t0 + Duration::from_secs(61);
        assert!(due(&mut seen, &one, again, grace).is_empty());
        assert_eq!(due(&mut seen, &one, again + grace, grace), vec![key(1)]);
    }

    #[test]
    fn a_zero_grace_collects_at_first_sight() {
        let mut seen = HashMap::new();
        let one: HashSet<_> = [key(3)].into();
        assert_eq!(
            due(&mut seen, &one, Instant::now(), Duration::ZERO),
            vec![key(3)]
        );
    }
}
