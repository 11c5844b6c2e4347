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
//! A set without a Primary moves nothing: each member holding objects the map puts
//! elsewhere says so once per map version (a `rebalance_waiting` event with the
//! reason), as does a Primary whose move failed (it retries every second). Catch-up
//! gives such a set a Primary again (`catchup.rs`, a set whose only in-sync member is
//! drained).
//!
//! Must never: delete an object from its old set before the new set acknowledged it,
//! or move anything while it is not the acting Primary of the old set.

use super::wire::{Durability, StoreReply, StoreRequest, WriteOp, WriteRequest};
use super::{call, DataError};
use crate::locator;
use crate::node::{now_ms, NodeShared};
use keel_core::{Event, EventKind, MemberRef, MemberState, NodeId, ObjectId, SetId, SetKind};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

const PERIOD: Duration = Duration::from_secs(1);

/// Runs for the life of the node.
pub async fn run(node: Arc<NodeShared>) {
    // Sets whose rebalance under a map version is done: (set, map version).
    let mut done: BTreeSet<(SetId, u64)> = BTreeSet::new();
    // What was said about a rebalance that cannot go on, per set: (map version, why).
    let mut said: BTreeMap<SetId, (u64, String)> = BTreeMap::new();
    let mut tick = tokio::time::interval(PERIOD);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let me = node.id();
        let (version, mine, leaderless): (u64, Vec<SetId>, Vec<(SetId, String)>) =
            node.db.read(|s| {
                let storage = || s.sets.values().filter(|x| x.kind == SetKind::Storage);
                let mine = storage()
                    .filter(|x| x.primary == Some(MemberRef::Node(me)))
                    .map(|x| x.id.clone())
                    .collect();
                let leaderless = storage()
                    .filter(|x| x.primary.is_none() && x.has_member(&MemberRef::Node(me)))
                    .map(|x| (x.id.clone(), why_no_primary(s, x)))
                    .collect();
                (s.placement.version, mine, leaderless)
            });
        if version == 0 {
            continue;
        }
        for (set, why) in leaderless {
            if said
                .get(&set)
                .is_some_and(|(v, w)| *v == version && *w == why)
            {
                continue;
            }
            let Ok(waiting) = misplaced(&node, &set).await else {
                continue;
            };
            if !waiting.is_empty() {
                let why = format!(
                    "{} objects of {set} that the placement map (version {version}) puts elsewhere wait on node {me}: {why}",
                    waiting.len()
                );
                say_waiting(&node, &set, &why).await;
            }
            said.insert(set, (version, why));
        }
        for set in mine {
            if done.contains(&(set.clone(), version)) {
                continue;
            }
            match rebalance_set(&node, &set, version).await {
                Ok(()) => {
                    done.insert((set.clone(), version));
                    said.remove(&set);
                }
                Err(e) => {
                    let why = format!("rebalance of {set} (placement map version {version}) stopped, retried in {PERIOD:?}: {e}");
                    tracing::warn!(set, "{why}");
                    if said.get(&set).is_none_or(|(v, _)| *v != version) {
                        say_waiting(&node, &set, &why).await;
                        said.insert(set, (version, why));
                    }
                }
            }
        }
    }
}

/// Why `set` has no Primary: the state of each in-sync member, and who is behind.
fn why_no_primary(s: &keel_core::ClusterState, set: &keel_core::FailoverSet) -> String {
    let state = |n: &NodeId| match s.members.get(n) {
        Some(m) if m.state == MemberState::Up && m.drained => "drained".to_string(),
        Some(m) => format!("{:?}", m.state).to_lowercase(),
        None => "unknown".into(),
    };
    let in_sync: Vec<String> = set
        .in_sync
        .iter()
        .map(|n| format!("node {n} {}", state(n)))
        .collect();
    let behind: Vec<NodeId> = set
        .member_nodes()
        .into_iter()
        .filter(|n| !set.in_sync.contains(n))
        .collect();
    format!(
        "the set has no Primary (in sync: [{}]; behind: {behind:?}); a member behind catches up from an in-sync member that is up, then leads and moves them",
        in_sync.join(", ")
    )
}

/// Logs and records that a rebalance cannot go on, and why.
async fn say_waiting(node: &Arc<NodeShared>, set: &SetId, why: &str) {
    tracing::warn!(set, "rebalance waits: {why}");
    node.record(
        Event::new(now_ms(), EventKind::RebalanceWaiting)
            .set(set.clone())
            .node(node.id())
            .detail(why.to_string()),
    )
    .await;
}

/// The live objects of `set` held here that the map places in another set.
async fn misplaced(node: &Arc<NodeShared>, set: &SetId) -> Result<Vec<ObjectId>, DataError> {
    let svc = node.storage.as_ref().ok_or_else(|| DataError::Internal {
        reason: "no storage role".into(),
    })?;
    svc.select(set, |o| {
        !o.deleted && node.db.read(|s| s.placement.set_for(o.id) != Some(set))
    })
    .await
}

/// Moves every object of `set` that the map places elsewhere.
async fn rebalance_set(node: &Arc<NodeShared>, set: &SetId, version: u64) -> Result<(), DataError> {
    let svc = node.storage.as_ref().ok_or_else(|| DataError::Internal {
        reason: "no storage role".into(),
    })?;
    let misplaced = misplaced(node, set).await?;
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
