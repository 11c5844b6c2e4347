//! Catch-up and re-integration: a storage node that is a member of a set but not on
//! its in-sync list (it was away, or it is new) copies what differs from the
//! Primary's copy, compared by version (so only what changed while it was away moves),
//! showing progress; then it asks the Primary to put it back on the list. The Primary
//! does a last pass with the set's writes held, then writes the new list through Raft.
//!
//! A set can be left without a Primary with its only in-sync member up but drained
//! (`keel node drain --force` of the last in-sync member: arbitration never makes a
//! drained node Primary). Nobody could then admit a joiner, and nobody would move the
//! set's objects when its groups go elsewhere. A member out of sync then catches up
//! from that in-sync member directly ([`catch_up_leaderless`]): no write can be
//! acknowledged in a set without a Primary once the last Primary's lease ran out, so
//! a copy that matches the in-sync member, written to the list fenced on the epoch
//! (any new Primary bumps it), misses nothing. Arbitration then makes it Primary, and
//! the rebalance hands the set's objects over.
//!
//! Must never: put a replica back on the in-sync list while a write it has not seen
//! can still be acknowledged.

use super::primary::{change_in_sync, is_primary, replicate_timeout, ChangeError, InSync};
use super::wire::{ReplicateRequest, StoreReply, StoreRequest, WriteOp};
use super::{call, CallError, DataError, StorageService};
use crate::node::{now_ms, NodeShared};
use futures::StreamExt;
use keel_core::{Epoch, Event, EventKind, MemberRef, NodeId, ObjectId, SetId, SetKind, Version};
use keel_store::ObjectStat;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

const LIST_PAGE: u32 = 1000;
/// Pull passes before asking to rejoin, at most.
const MAX_PULL_PASSES: u32 = 5;
/// A pass that copied this few objects leaves little for the Primary's last pass.
const SMALL_ENOUGH: usize = 16;
const PERIOD: Duration = Duration::from_millis(500);
/// Objects copied at once by a catch-up pass (and pushed by the Primary's last pass).
const COPIES_IN_FLIGHT: usize = 8;

/// Whom to catch up from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Source {
    /// The set's Primary, which admits the joiner with the set's writes held.
    Primary(NodeId),
    /// The set has no Primary in `epoch`: an in-sync member that is up (`from`,
    /// typically drained), or none (`None`: nothing to copy from yet).
    Leaderless { epoch: Epoch, from: Option<NodeId> },
}

/// Where this node, behind in `set`, catches up from (`None`: it is not behind).
fn source(s: &keel_core::ClusterState, set: &keel_core::FailoverSet, me: NodeId) -> Option<Source> {
    if set.kind != SetKind::Storage
        || !set.has_member(&MemberRef::Node(me))
        || set.in_sync.contains(&me)
    {
        return None;
    }
    match set.primary_node() {
        Some(p) if p == me => None,
        Some(p) => Some(Source::Primary(p)),
        None => Some(Source::Leaderless {
            epoch: set.epoch,
            from: set.in_sync.iter().copied().find(|n| {
                *n != me
                    && s.members
                        .get(n)
                        .is_some_and(|m| m.state == keel_core::MemberState::Up)
            }),
        }),
    }
}

/// How long a set must have been seen without a Primary, in one epoch, before a
/// member copies from an in-sync member directly: the last Primary's lease (and any
/// grant an earlier arbiter may still make) has run out by then, so nothing more is
/// acknowledged in the set.
fn leaderless_after(node: &NodeShared) -> Duration {
    Duration::from_millis(node.cfg.timings.lease_ms)
        + crate::lease::OLD_ARBITER_WINDOW
        + Duration::from_secs(1)
}

/// Runs for the life of the node: catches up every set this node has fallen out of.
pub async fn run(node: Arc<NodeShared>) {
    let mut tick = tokio::time::interval(PERIOD);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Sets seen without a Primary: since when, in which epoch.
    let mut leaderless: HashMap<SetId, (Epoch, Instant)> = HashMap::new();
    // What was last said about a set that cannot be caught up yet (said once).
    let mut said: HashMap<SetId, String> = HashMap::new();
    loop {
        tick.tick().await;
        let me = node.id();
        let behind: Vec<(SetId, Source)> = node.db.read(|s| {
            if !s.members.get(&me).is_some_and(|m| m.eligible()) {
                return vec![];
            }
            s.sets
                .values()
                .filter_map(|x| source(s, x, me).map(|src| (x.id.clone(), src)))
                .collect()
        });
        leaderless.retain(|set, (epoch, _)| {
            behind.iter().any(|(s, src)| {
                s == set && matches!(src, Source::Leaderless { epoch: e, .. } if e == epoch)
            })
        });
        said.retain(|set, _| behind.iter().any(|(s, _)| s == set));
        for (set, src) in behind {
            match src {
                Source::Primary(primary) => {
                    if let Err(e) = catch_up(&node, &set, primary).await {
                        tracing::warn!(set, primary, "catch-up: {e}");
                    }
                }
                Source::Leaderless { epoch, from } => {
                    let since = leaderless
                        .entry(set.clone())
                        .or_insert((epoch, Instant::now()))
                        .1;
                    let Some(from) = from else {
                        let why = format!(
                            "catch-up of {set} waits: it has no Primary and no in-sync member is up"
                        );
                        if said.get(&set) != Some(&why) {
                            tracing::warn!(set, "{why}");
                            said.insert(set.clone(), why);
                        }
                        continue;
                    };
                    if since.elapsed() < leaderless_after(&node) {
                        continue;
                    }
                    if let Err(e) = catch_up_leaderless(&node, &set, epoch, from).await {
                        tracing::warn!(set, from, "catch-up without a Primary: {e}");
                    }
                }
            }
        }
    }
}

/// Every object and tombstone of `set` on `from`, by id.
async fn list_all(
    node: &Arc<NodeShared>,
    from: NodeId,
    set: &SetId,
) -> Result<BTreeMap<ObjectId, ObjectStat>, DataError> {
    let mut out = BTreeMap::new();
    let mut after = None;
    loop {
        let req = StoreRequest::List {
            set: set.clone(),
            after,
            limit: LIST_PAGE,
        };
        let page = match call(node, from, req, Duration::from_secs(10)).await {
            Ok(StoreReply::List(page)) => page,
            Ok(_) => return Err(unexpected()),
            Err(e) => {
                return Err(DataError::Unavailable {
                    what: format!("the object list of {set:?}"),
                    tried: e.to_string(),
                })
            }
        };
        let full = page.len() == LIST_PAGE as usize;
        after = page.last().map(|s| s.id);
        out.extend(page.into_iter().map(|s| (s.id, s)));
        if !full {
            return Ok(out);
        }
    }
}

fn unexpected() -> DataError {
    DataError::Internal {
        reason: "unexpected storage reply".into(),
    }
}

/// What must move from `source` to `target` for them to match: ids whose version or
/// deletion differ, or that only `target` has.
fn differences(
    source: &BTreeMap<ObjectId, ObjectStat>,
    target: &BTreeMap<ObjectId, ObjectStat>,
) -> Vec<(ObjectId, Option<ObjectStat>)> {
    let mut out = vec![];
    for (id, s) in source {
        let same = target
            .get(id)
            .is_some_and(|t| t.version == s.version && t.deleted == s.deleted);
        if !same {
            out.push((*id, Some(s.clone())));
        }
    }
    for id in target.keys() {
        if !source.contains_key(id) {
            out.push((*id, None));
        }
    }
    out
}

/// Pulls from the Primary what differs, then asks to rejoin the in-sync list.
async fn catch_up(node: &Arc<NodeShared>, set: &SetId, primary: NodeId) -> Result<(), DataError> {
    check_source_store(node, set, primary).await?;
    // Passes until little is left, so the Primary's last pass (with the set's writes
    // held) is short even when writes went on during the copy.
    for pass in 1..=MAX_PULL_PASSES {
        if pull_pass(node, set, primary, pass).await? <= SMALL_ENOUGH {
            break;
        }
    }
    let req = StoreRequest::JoinInSync {
        set: set.clone(),
        node: node.id(),
        store: node.store_id(),
    };
    call(node, primary, req, Duration::from_secs(60))
        .await
        .map_err(|e| DataError::Unavailable {
            what: format!("rejoining the in-sync list of {set:?}"),
            tried: e.to_string(),
        })?;
    Ok(())
}

/// Catches up `set`, which has no Primary in `epoch`, from its in-sync member `from`
/// (see the module header), then puts this node on the in-sync list, fenced on
/// `epoch`: the list changes only if no Primary was made meanwhile.
async fn catch_up_leaderless(
    node: &Arc<NodeShared>,
    set: &SetId,
    epoch: Epoch,
    from: NodeId,
) -> Result<(), DataError> {
    tracing::info!(
        set,
        from,
        "catch-up: the set has no Primary; copying from its in-sync member"
    );
    check_source_store(node, set, from).await?;
    let mut copied = 0;
    for pass in 1..=MAX_PULL_PASSES {
        let n = pull_pass(node, set, from, pass).await?;
        copied += n;
        if n == 0 {
            break;
        }
    }
    // Nothing is acknowledged without a Primary: a pass that found nothing to copy
    // leaves this copy equal to `from`'s, unless a Primary was made meanwhile (then
    // the epoch moved, and the fenced change below is refused).
    if pull_pass(node, set, from, MAX_PULL_PASSES + 1).await? != 0 {
        return Err(DataError::Unavailable {
            what: format!("rejoining the in-sync list of {set:?}"),
            tried: format!("node {from}'s copy still changed after {MAX_PULL_PASSES} passes"),
        });
    }
    // Its store still the recorded one after the copy (not wiped meanwhile).
    check_source_store(node, set, from).await?;
    let me = node.id();
    let store = node.store_id();
    let join = |list: &InSync| {
        if list.nodes.contains(&me) || !list.nodes.contains(&from) {
            return None;
        }
        let mut nodes = list.nodes.clone();
        nodes.push(me);
        let stores = store.map(|s| (me, s)).into_iter().collect();
        Some((nodes, stores))
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    match change_in_sync(node, set, epoch, join, Some(deadline)).await {
        Ok(true) => {}
        Ok(false) => return Ok(()),
        Err(ChangeError::Data(e)) => return Err(e),
        Err(ChangeError::Failed(reason)) => return Err(DataError::Internal { reason }),
    }
    tracing::info!(
        set,
        from,
        copied,
        "caught up without a Primary: in sync again"
    );
    node.record(
        Event::new(now_ms(), EventKind::CatchUpDone)
            .set(set.clone())
            .node(me)
            .epoch(epoch)
            .detail(format!(
                "node {me} caught up from node {from} ({copied} objects copied) while the set had no Primary, and is in sync again"
            )),
    )
    .await;
    Ok(())
}

/// Checks that `from`, the source a catch-up copies `set` from, still has the store
/// the set's in-sync list recorded for it. A source whose disk was wiped or replaced
/// while the control plane has not learned it yet (its boot report not applied) lists
/// nothing, and copying that listing would forget everything here.
async fn check_source_store(
    node: &Arc<NodeShared>,
    set: &SetId,
    from: NodeId,
) -> Result<(), DataError> {
    let recorded = node
        .db
        .read(|s| s.sets.get(set).and_then(|x| x.in_sync_store(from)));
    let Some(expected) = recorded else {
        return Ok(());
    };
    match call(
        node,
        from,
        StoreRequest::WhichStore,
        Duration::from_secs(10),
    )
    .await
    {
        Ok(StoreReply::Store(actual)) => {
            super::primary::not_another_store(set, from, Some(expected), actual)
        }
        Ok(_) => Err(unexpected()),
        Err(e) => Err(DataError::Unavailable {
            what: format!("the store identity of node {from}"),
            tried: e.to_string(),
        }),
    }
}

/// Copies once what differs from the Primary; returns how many objects it copied.
async fn pull_pass(
    node: &Arc<NodeShared>,
    set: &SetId,
    primary: NodeId,
    pass: u32,
) -> Result<usize, DataError> {
    let svc = node.storage.as_ref().ok_or_else(unexpected)?;
    let theirs = list_all(node, primary, set).await?;
    let mine = list_all(node, node.id(), set).await?;
    let todo = differences(&theirs, &mine);
    let total = todo.len();
    if total == 0 {
        return Ok(0);
    }
    tracing::info!(
        set,
        primary,
        total,
        pass,
        "catch-up: copying what changed while away"
    );
    if pass == 1 {
        node.record(
            Event::new(now_ms(), EventKind::CatchUpStarted)
                .set(set.clone())
                .node(node.id())
                .detail(format!(
                    "node {} copies {total} changed objects of {} from node {primary}",
                    node.id(),
                    theirs.len()
                )),
        )
        .await;
    }
    let mut bytes = 0u64;
    let mut done = 0usize;
    // Several objects in flight: each copy is a round trip and an fsync, and a
    // one-at-a-time copy ran no faster than a few clients write (found by `keel bench
    // failover`: under 3 clients' puts a returning node pulled for minutes and never
    // got close enough to rejoin). Distinct ids: each takes its own object lock.
    let mut copies = futures::stream::iter(todo)
        .map(|(id, stat)| pull(node, svc, set, primary, id, stat))
        .buffer_unordered(COPIES_IN_FLIGHT);
    while let Some(copied) = copies.next().await {
        bytes += copied?;
        done += 1;
        node.metrics.objects_caught_up.inc();
        if done.is_multiple_of(100) || done == total {
            tracing::info!(set, pass, "catch-up: {done}/{total} objects, {bytes} bytes");
        }
    }
    Ok(total)
}

/// Makes the local copy of `id` in `set` match the Primary's (`stat`; `None`: it has
/// none). The local change (forget, then write the Primary's version) is made under the
/// replica role's lock of the object, so no replicated write interleaves with it.
async fn pull(
    node: &Arc<NodeShared>,
    svc: &StorageService,
    set: &SetId,
    primary: NodeId,
    id: ObjectId,
    stat: Option<ObjectStat>,
) -> Result<u64, DataError> {
    let target = match stat {
        None => None,
        Some(st) if st.deleted => Some((st.version, WriteOp::Delete)),
        Some(_) => {
            let req = StoreRequest::Fetch {
                set: set.clone(),
                id,
            };
            match call(node, primary, req, Duration::from_secs(30)).await {
                Ok(StoreReply::Object { stat, data }) => Some(fetched_op(&stat, data)),
                // Deleted and purged between the list and the fetch.
                Err(CallError::Data(e)) if e.code() == "not_found" => None,
                Ok(_) => return Err(unexpected()),
                Err(e) => {
                    return Err(DataError::Unavailable {
                        what: format!("object {id}"),
                        tried: e.to_string(),
                    })
                }
            }
        }
    };
    let n = target.as_ref().map_or(0, |(_, op)| op.len() as u64);
    let epoch = node.db.read(|s| s.sets.get(set).map(|x| x.epoch));
    let _object = svc.replica_locks.of(set, id).lock().await;
    let set = set.clone();
    svc.blocking(move |s| {
        let local = s.stat(&set, id)?.map(|st| st.version);
        let fetched = target.as_ref().map(|(v, _)| *v);
        if epoch.is_some_and(|e| keep_local(local, fetched, e)) {
            return Ok(());
        }
        match &target {
            None => s.forget(&set, id),
            Some((version, op)) => {
                super::primary::apply_local(s, &set, id, op, *version, true).map(|_| ())
            }
        }
    })
    .await?;
    Ok(n)
}

/// What to write locally for an object fetched from the Primary: its bytes at its
/// version, or its tombstone if it was deleted between the list and the fetch (never
/// an empty live object).
fn fetched_op(stat: &ObjectStat, data: Vec<u8>) -> (Version, WriteOp) {
    if stat.deleted {
        (stat.version, WriteOp::Delete)
    } else {
        (stat.version, WriteOp::Put(data.into()))
    }
}

/// Whether a local copy at `local` must stay although the Primary listed `fetched`
/// (None: no copy): it was written in the set's current `epoch` (so by the current
/// Primary, replicated here once this node was back in sync) and is newer than what
/// was fetched. A newer copy of an older epoch is a deposed Primary's unacknowledged
/// write, and is replaced.
fn keep_local(local: Option<Version>, fetched: Option<Version>, epoch: Epoch) -> bool {
    local.is_some_and(|l| l.epoch >= epoch && fetched.is_none_or(|f| l > f))
}

/// The most objects, and bytes, the Primary's last pass copies with the set's writes
/// held; a joiner further behind is sent back to pull (see [`too_far_behind`]).
const MAX_GATED_OBJECTS: usize = 4 * SMALL_ENOUGH;
const MAX_GATED_BYTES: u64 = 64 * 1024 * 1024;

/// Whether the last pass would copy too much with the set's writes held: how far
/// behind, if so. Bounds how long a slow or far-behind joiner stalls the set's writes
/// on each attempt.
fn too_far_behind(todo: &[(ObjectId, Option<ObjectStat>)]) -> Option<String> {
    let bytes: u64 = todo
        .iter()
        .filter_map(|(_, st)| st.as_ref().filter(|st| !st.deleted).map(|st| st.size))
        .sum();
    (todo.len() > MAX_GATED_OBJECTS || bytes > MAX_GATED_BYTES)
        .then(|| format!("{} objects ({bytes} bytes)", todo.len()))
}

/// The Primary's side: with the set's writes held, push to `joiner` whatever still
/// differs, then put it on the in-sync list through Raft, recorded with the store it
/// caught up on (`store`, which every push names: a joiner whose store changed
/// meanwhile refuses them). The gate is released only once this node's replica shows
/// the joiner on the list (or shows for certain that it is not): no write admitted
/// after it can miss the joiner while the committed list names it.
pub async fn admit(
    node: &Arc<NodeShared>,
    svc: &StorageService,
    set: &SetId,
    joiner: NodeId,
    store: Option<keel_core::StoreId>,
) -> Result<StoreReply, DataError> {
    if !is_primary(node, set) {
        return Err(DataError::BadRequest {
            reason: format!("node {} is not the Primary of {set:?}", node.id()),
        });
    }
    let list = node
        .db
        .read(|s| s.sets.get(set).map(InSync::of))
        .ok_or_else(unexpected)?;
    super::primary::check_own_store(node, set, &list)?;
    let gate = svc.gate(set);
    let _held = gate.write().await;
    let epoch = node
        .db
        .read(|s| s.sets.get(set).map(|x| x.epoch))
        .ok_or_else(unexpected)?;
    let mine = list_all(node, node.id(), set).await?;
    let theirs = list_all(node, joiner, set).await?;
    let todo = differences(&mine, &theirs);
    if let Some(why) = too_far_behind(&todo) {
        // The set's writes wait while this runs: refuse rather than copy a lot with
        // them held; the joiner pulls again (writes flowing) and asks anew.
        return Err(DataError::Unavailable {
            what: format!("rejoining the in-sync list of {set:?}"),
            tried: format!("node {joiner} is {why} behind; it pulls again first"),
        });
    }
    let moved = todo.len();
    // The set's writes wait for this pass: several pushes in flight keep it short.
    let push = |(id, stat): (ObjectId, Option<ObjectStat>)| async move {
        let (version, op) = match stat {
            None => (Default::default(), WriteOp::Forget),
            Some(st) if st.deleted => (st.version, WriteOp::Delete),
            Some(st) => {
                let from = set.clone();
                let data = svc.blocking(move |s| s.read(&from, id, 0, st.size)).await?;
                (st.version, WriteOp::Put(data.into()))
            }
        };
        let timeout = replicate_timeout(op.len());
        let req = StoreRequest::Replicate(ReplicateRequest {
            set: set.clone(),
            epoch,
            id,
            version,
            op,
            force: true,
            store,
        });
        call(node, joiner, req, timeout)
            .await
            .map(|_| ())
            .map_err(|e| DataError::Unavailable {
                what: format!("the last catch-up pass to node {joiner}"),
                tried: e.to_string(),
            })
    };
    let mut pushes = futures::stream::iter(todo)
        .map(push)
        .buffer_unordered(COPIES_IN_FLIGHT);
    while let Some(pushed) = pushes.next().await {
        pushed?;
    }
    let join = |list: &InSync| {
        // On the list already: the state machine keeps only a node whose store is the
        // recorded one there.
        if list.nodes.contains(&joiner) {
            return None;
        }
        let mut nodes = list.nodes.clone();
        nodes.push(joiner);
        let stores = store.map(|s| (joiner, s)).into_iter().collect();
        Some((nodes, stores))
    };
    // No deadline: while the outcome is unknown the gate stays held (a write admitted
    // now could miss the joiner if the change commits later).
    match change_in_sync(node, set, epoch, join, None).await {
        Ok(false) => return Ok(StoreReply::Done),
        Ok(true) => {}
        Err(ChangeError::Data(e)) => return Err(e),
        Err(ChangeError::Failed(reason)) => return Err(DataError::Internal { reason }),
    }
    tracing::info!(set, joiner, moved, "replica back on the in-sync list");
    node.record(
        Event::new(now_ms(), EventKind::CatchUpDone)
            .set(set.clone())
            .node(joiner)
            .epoch(epoch)
            .detail(format!(
                "node {joiner} caught up ({moved} objects in the last pass) and is in sync again"
            )),
    )
    .await;
    Ok(StoreReply::Done)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stat(id: u128, seq: u64, deleted: bool) -> (ObjectId, ObjectStat) {
        let id = ObjectId(id);
        (
            id,
            ObjectStat {
                id,
                set: "st-1".into(),
                size: 1,
                version: Version {
                    epoch: Epoch(1),
                    seq,
                },
                deleted,
            },
        )
    }

    #[test]
    fn only_what_differs_moves() {
        let primary: BTreeMap<_, _> = [
            stat(1, 5, false),
            stat(2, 7, false),
            stat(3, 9, true),
            stat(4, 1, false),
        ]
        .into_iter()
        .collect();
        let replica: BTreeMap<_, _> = [
            stat(1, 5, false),
            stat(2, 6, false),
            stat(3, 8, false),
            stat(5, 2, false),
        ]
        .into_iter()
        .collect();
        let d = differences(&primary, &replica);
        let ids: Vec<(u128, bool)> = d.iter().map(|(id, s)| (id.0, s.is_some())).collect();
        // 1 is the same; 2 is older there; 3 was deleted here; 4 is missing there;
        // 5 is only there (a write the Primary never acknowledged): dropped.
        assert_eq!(ids, vec![(2, true), (3, true), (4, true), (5, false)]);
    }

    #[test]
    fn a_newer_unacknowledged_version_on_the_replica_is_replaced_too() {
        let primary: BTreeMap<_, _> = [stat(1, 5, false)].into_iter().collect();
        let replica: BTreeMap<_, _> = [stat(1, 9, false)].into_iter().collect();
        assert_eq!(differences(&primary, &replica).len(), 1);
    }

    #[test]
    fn equal_lists_move_nothing() {
        let a: BTreeMap<_, _> = [stat(1, 5, false), stat(2, 3, true)].into_iter().collect();
        assert!(differences(&a, &a.clone()).is_empty());
    }

    #[test]
    fn a_tombstone_fetched_is_written_back_as_a_tombstone() {
        let (_, deleted) = stat(7, 12, true);
        let (version, op) = fetched_op(&deleted, vec![]);
        assert_eq!(version, deleted.version);
        assert_eq!(op, WriteOp::Delete, "never a live empty object");
        let (_, live) = stat(7, 12, false);
        assert_eq!(fetched_op(&live, vec![]).1, WriteOp::Put(Vec::new().into()));
    }

    #[test]
    fn only_a_newer_copy_of_the_current_epoch_is_kept() {
        let v = |epoch, seq| Version {
            epoch: Epoch(epoch),
            seq,
        };
        // Replicated here by the current Primary after the list: kept.
        assert!(keep_local(Some(v(3, 9)), Some(v(3, 5)), Epoch(3)));
        assert!(keep_local(Some(v(3, 9)), None, Epoch(3)));
        // A deposed Primary's unacknowledged write (an older epoch): replaced.
        assert!(!keep_local(Some(v(2, 99)), Some(v(1, 5)), Epoch(3)));
        assert!(!keep_local(Some(v(2, 99)), None, Epoch(3)));
        // Older than the Primary's, or nothing here: copied.
        assert!(!keep_local(Some(v(3, 4)), Some(v(3, 5)), Epoch(3)));
        assert!(!keep_local(None, Some(v(3, 5)), Epoch(3)));
    }

    #[test]
    fn the_last_pass_under_the_gate_is_bounded() {
        let few: Vec<_> = (0..MAX_GATED_OBJECTS as u128)
            .map(|i| {
                let (id, st) = stat(i, 1, false);
                (id, Some(st))
            })
            .collect();
        assert_eq!(too_far_behind(&few), None);
        let mut many = few.clone();
        many.push((ObjectId(u128::MAX), None));
        assert!(too_far_behind(&many).is_some());
        let (id, mut big) = stat(1, 1, false);
        big.size = MAX_GATED_BYTES + 1;
        assert!(too_far_behind(&[(id, Some(big.clone()))]).is_some());
        big.deleted = true;
        assert_eq!(
            too_far_behind(&[(id, Some(big))]),
            None,
            "a tombstone moves no bytes"
        );
    }
}
