//! Writes under faults, in process: a storage set's Primary crashes or hangs in the
//! middle of a stream of puts, or is cut off from the control plane; a replica is sent
//! a write from a deposed epoch; a put is retried. Every acknowledged put must read
//! back byte-exact, and be on every in-sync replica of each of its chunks' sets; at
//! every quiescent point (after a heal and catch-up) the data invariant is checked
//! over every set (`Cluster::check_data`).
//!
//! Each cluster has 3 nodes with every role and the storage layout of `keel layout
//! apply --replicas 2`: sets `st-1` {1, 2}, `st-2` {2, 3}, `st-3` {3, 1}. Files go to a
//! volume with 64 KiB chunks, so a file of ~200 KiB spans four chunk objects.

mod common;

use anyhow::{bail, ensure, Context};
use bytes::Bytes;
use common::*;
use futures::TryStreamExt;
use keel_core::{
    ClusterCommand, Epoch, Event, EventKind, NodeId, ObjectId, SetId, SetKind, StoreId, Version,
};
use keel_dir::{DirCommand, Inode, Replication};
use keel_harness::{wait_for, wait_until, AckedFile, Cluster, Traffic, Way};
use keel_node::admin_api::AdminRequest;
use keel_node::gateway::files;
use keel_node::node::now_ms;
use keel_node::storage::wire::{
    Durability, ReadRequest, ReplicateRequest, StoreReply, StoreRequest, WriteOp, WriteRequest,
};
use keel_node::storage::{self, CallError, DataError};
use keel_node::{locator, NodeShared};
use keel_store::StoreError;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tracing::info;

const VOLUME: &str = "small";
const CHUNK: u64 = 64 * 1024;
/// Three full chunks and a partial fourth.
const FILE_SIZE: usize = 3 * CHUNK as usize + 1234;
/// How long one put, read or storage request may take, failovers included (the
/// locator follows a failover for 15 s, a Primary shrinks its in-sync list for 5 s).
const IO_WITHIN: Duration = Duration::from_secs(40);

// ---------------------------------------------------------------- data and paths

fn path(i: u64) -> String {
    format!("/f{i}")
}

/// The content of file `i`: bytes of a xorshift stream seeded by `i`, so that every
/// file and every chunk differs.
fn content(i: u64) -> Vec<u8> {
    content_of_len(i, FILE_SIZE)
}

fn content_of_len(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

// ---------------------------------------------------------------- setup

/// The storage sets of the cluster (on the freshest replica).
fn storage_sets(c: &Cluster) -> Vec<SetId> {
    c.read(|s| {
        s.sets
            .values()
            .filter(|x| x.kind == SetKind::Storage)
            .map(|x| x.id.clone())
            .collect()
    })
}

/// Starts 3 nodes, applies the storage layout through the admin path the CLI uses,
/// waits until every storage set's Primary acts under its lease, and creates the
/// volume with small chunks; returns once every node sees the layout and the volume.
async fn storage_cluster() -> anyhow::Result<Cluster> {
    storage_cluster_of(Cluster::start(3).await?).await
}

/// Applies the layout and creates the volume on a started cluster (see
/// [`storage_cluster`]); a drained node gets no storage set.
async fn storage_cluster_of(c: Cluster) -> anyhow::Result<Cluster> {
    info!("--- apply the storage layout (2 replicas)");
    let reply = c
        .admin(AdminRequest::ApplyLayout {
            replicas: Some(2),
            dry_run: false,
        })
        .await?;
    info!("{}", reply.message);
    let sets = storage_sets(&c);
    ensure!(
        sets.len() == 3,
        "one storage set per storage node, not {sets:?}"
    );
    for set in &sets {
        let (p, e) = c.wait_acting(set, STEP).await?;
        info!("set {set}: node {p} acts as Primary in epoch {e}");
    }
    let via = wait_for("a leader", STEP, || c.leader()).await?;
    let node = c.node(via)?;
    c.spawn_on(via, async move {
        node.write_dir(DirCommand::CreateVolume {
            name: VOLUME.into(),
            chunk_size: Some(CHUNK),
            replication: Replication::Sync,
            at: now_ms(),
        })
        .await
    })?
    .await???;
    wait_until("every node sees the layout and the volume", STEP, || {
        c.awake().iter().all(|(_, n)| {
            n.db.read(|s| s.placement.sets().len() == 3)
                && n.db.read_dir(|ns| ns.volume(VOLUME).is_some())
        })
    })
    .await?;
    Ok(c)
}

// ---------------------------------------------------------------- puts and reads

async fn put_on(
    node: Arc<NodeShared>,
    path: String,
    data: Vec<u8>,
    token: Option<u128>,
) -> Result<Inode, DataError> {
    let body = futures::stream::iter([Ok::<_, std::io::Error>(Bytes::from(data))]);
    files::put(&node, VOLUME, &path, body, token, 0o644).await
}

/// Puts a file through node `via`'s gateway path; the outer error is the harness's,
/// the inner one keel's answer.
async fn put(
    c: &Cluster,
    via: NodeId,
    path: String,
    data: Vec<u8>,
    token: Option<u128>,
) -> anyhow::Result<Result<Inode, DataError>> {
    let task = c.spawn_on(via, put_on(c.node(via)?, path, data, token))?;
    Ok(tokio::time::timeout(IO_WITHIN, task)
        .await
        .context("a put did not end")??)
}

/// Reads a whole file through node `via`: the directory replica for the inode, the
/// locator for the chunks.
async fn read_on(node: Arc<NodeShared>, path: String) -> Result<(Inode, Vec<u8>), DataError> {
    let (inode, chunk_size) = node.db.read_dir(|ns| {
        let inode = ns.lookup(VOLUME, &path)?;
        let chunk_size = ns.volume(VOLUME).map_or(CHUNK, |v| v.chunk_size);
        Ok::<_, keel_dir::DirError>((inode, chunk_size))
    })?;
    let size = inode.size;
    let pieces: Vec<Bytes> = files::read_range(node, inode.clone(), chunk_size, 0, size)
        .try_collect()
        .await?;
    Ok((inode, pieces.concat()))
}

async fn read(c: &Cluster, via: NodeId, path: String) -> anyhow::Result<(Inode, Vec<u8>)> {
    let task = c.spawn_on(via, read_on(c.node(via)?, path.clone()))?;
    tokio::time::timeout(IO_WITHIN, task)
        .await
        .context("a read did not end")??
        .with_context(|| format!("reading {path} through node {via}"))
}

/// Sends one storage request from node `from` to node `to` (or answers it there if
/// they are the same), on `from`'s process.
async fn store_call(
    c: &Cluster,
    from: NodeId,
    to: NodeId,
    req: StoreRequest,
) -> anyhow::Result<Result<StoreReply, CallError>> {
    let node = c.node(from)?;
    let task = c.spawn_on(from, async move {
        storage::call(&node, to, req, Duration::from_secs(10)).await
    })?;
    Ok(tokio::time::timeout(IO_WITHIN, task)
        .await
        .context("a storage call did not end")??)
}

/// A fresh object id that the placement map puts in `set`.
fn object_in(c: &Cluster, set: &str) -> anyhow::Result<ObjectId> {
    c.read(|s| {
        (0..100_000)
            .map(|_| ObjectId::random())
            .find(|id| s.placement.set_for(*id).is_some_and(|x| x == set))
    })
    .with_context(|| format!("no object id falls in set {set}"))
}

/// Writes one object through node `via`'s locator (to its set's current Primary).
async fn locator_put(
    c: &Cluster,
    via: NodeId,
    id: ObjectId,
    data: Vec<u8>,
) -> anyhow::Result<Result<keel_store::ObjectStat, DataError>> {
    let node = c.node(via)?;
    let task = c.spawn_on(via, async move {
        locator::write(&node, id, WriteOp::Put(data.into()), Durability::AllInSync).await
    })?;
    Ok(tokio::time::timeout(IO_WITHIN, task)
        .await
        .context("a locator write did not end")??)
}

// ---------------------------------------------------------------- a stream of puts

type Outcome = (u64, Result<Inode, String>);

/// Puts `/f{i}` for `i = first, first + 1, ...` one after another through one node,
/// until stopped, and records each outcome.
struct Writer {
    stop: Arc<AtomicBool>,
    log: Arc<Mutex<Vec<Outcome>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Writer {
    fn start(c: &Cluster, via: NodeId, first: u64) -> anyhow::Result<Writer> {
        let node = c.node(via)?;
        let stop = Arc::new(AtomicBool::new(false));
        let log: Arc<Mutex<Vec<Outcome>>> = Arc::new(Mutex::new(vec![]));
        let (stopped, record) = (stop.clone(), log.clone());
        let task = c.spawn_on(via, async move {
            let mut i = first;
            while !stopped.load(Ordering::SeqCst) {
                let r = put_on(node.clone(), path(i), content(i), None).await;
                if let Err(e) = &r {
                    tracing::info!(i, "put refused: {e}");
                }
                lock(&record).push((i, r.map_err(|e| e.to_string())));
                i += 1;
            }
        })?;
        Ok(Writer { stop, log, task })
    }

    fn acked(&self) -> usize {
        lock(&self.log).iter().filter(|(_, r)| r.is_ok()).count()
    }

    /// Waits until `more` puts beyond those acknowledged now are acknowledged.
    async fn wait_acked(&self, more: usize, what: &str) -> anyhow::Result<()> {
        let want = self.acked() + more;
        wait_until(what, IO_WITHIN, || self.acked() >= want).await?;
        Ok(())
    }

    /// Stops after the put under way; returns the acknowledged puts and how many were
    /// refused.
    async fn stop(self) -> anyhow::Result<(Vec<(u64, Inode)>, usize)> {
        self.stop.store(true, Ordering::SeqCst);
        tokio::time::timeout(IO_WITHIN, self.task)
            .await
            .context("the writer did not stop")??;
        let log = std::mem::take(&mut *lock(&self.log));
        let refused = log.iter().filter(|(_, r)| r.is_err()).count();
        let acked = log
            .into_iter()
            .filter_map(|(i, r)| r.ok().map(|inode| (i, inode)))
            .collect();
        Ok((acked, refused))
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

// ---------------------------------------------------------------- checks

/// The storage set each chunk of `inodes` is placed in, with how many chunks.
fn chunks_per_set<'a>(
    c: &Cluster,
    inodes: impl Iterator<Item = &'a Inode>,
) -> BTreeMap<SetId, usize> {
    let mut out = BTreeMap::new();
    c.read(|s| {
        for chunk in inodes.flat_map(|i| i.chunks.iter()) {
            if let Some(set) = s.placement.set_for(chunk.object) {
                *out.entry(set.clone()).or_insert(0) += 1;
            }
        }
    });
    out
}

/// Every acknowledged put reads back byte-exact through node `via` (with the chunks it
/// was acknowledged with), and every in-sync replica of each chunk's set holds that
/// chunk byte-exact.
async fn check_acknowledged(
    c: &Cluster,
    via: NodeId,
    acked: &[(u64, Inode)],
) -> anyhow::Result<()> {
    let node = c.node(via)?;
    wait_until(
        "the directory replica of the reader shows every acknowledged put",
        STEP,
        || {
            node.db.read_dir(|ns| {
                acked
                    .iter()
                    .all(|(i, _)| ns.lookup(VOLUME, &path(*i)).is_ok())
            })
        },
    )
    .await?;
    let mut copies = 0;
    for (i, put) in acked {
        let (inode, data) = read(c, via, path(*i)).await?;
        ensure!(
            inode.chunks == put.chunks && inode.size == FILE_SIZE as u64,
            "{}: the directory has {inode:?}, the put was acknowledged with {put:?}",
            path(*i)
        );
        let want = content(*i);
        ensure!(
            data == want,
            "{} reads back different bytes through node {via}",
            path(*i)
        );
        for (k, chunk) in put.chunks.iter().enumerate() {
            let (set, in_sync) = c
                .read(|s| {
                    let set = s.placement.set_for(chunk.object)?;
                    Some((set.clone(), s.sets.get(set)?.in_sync.clone()))
                })
                .context("a chunk outside the layout")?;
            let start = k * CHUNK as usize;
            let expected = &want[start..start + chunk.len as usize];
            for r in in_sync {
                let req = StoreRequest::Read(ReadRequest {
                    set: set.clone(),
                    id: chunk.object,
                    offset: 0,
                    len: chunk.len,
                });
                match store_call(c, via, r, req).await? {
                    Ok(StoreReply::Data { data, .. }) if data == expected => copies += 1,
                    other => bail!(
                        "chunk {k} of {} ({}) on in-sync replica {r} of {set}: {:?}",
                        path(*i),
                        chunk.object,
                        other.map(|r| match r {
                            StoreReply::Data { version, data } =>
                                format!("{} other bytes at version {version}", data.len()),
                            r => format!("{r:?}"),
                        })
                    ),
                }
            }
        }
    }
    info!(
        "--- {} acknowledged puts read back byte-exact; {copies} chunk copies on in-sync replicas checked",
        acked.len()
    );
    Ok(())
}

/// The data invariant at a quiescent point: every in-sync member of every storage set
/// holds every object a file refers to at its latest version, no such object is
/// missing everywhere, and every file in `acked` (`(i, _)`: `/f{i}` with
/// `content(i)`) and `more` reads back byte-exact through node `via`.
async fn check_data(
    c: &Cluster,
    via: NodeId,
    acked: &[(u64, Inode)],
    more: &[(&str, Vec<u8>)],
) -> anyhow::Result<()> {
    let mut files: Vec<AckedFile> = acked
        .iter()
        .map(|(i, _)| AckedFile {
            volume: VOLUME.into(),
            path: path(*i),
            data: content(*i),
        })
        .collect();
    files.extend(more.iter().map(|(p, data)| AckedFile {
        volume: VOLUME.into(),
        path: p.to_string(),
        data: data.clone(),
    }));
    let found = c.check_data(via, &files).await?;
    if !found.is_empty() {
        let list: Vec<String> = found.iter().map(|v| format!("  - {v}")).collect();
        bail!("the data invariant is broken:\n{}", list.join("\n"));
    }
    info!(
        "--- data invariant holds: {} files read back, every in-sync member complete",
        files.len()
    );
    Ok(())
}

/// Waits until `node` is up and on the in-sync list of every storage set it belongs
/// to (it caught up and was re-integrated).
async fn wait_back_in_sync(c: &Cluster, node: NodeId) -> anyhow::Result<()> {
    wait_until(
        &format!("node {node} back on every in-sync list"),
        IO_WITHIN,
        || {
            c.member_state(node) == Some(keel_core::MemberState::Up)
                && c.read(|s| {
                    s.sets
                        .values()
                        .filter(|x| x.kind == SetKind::Storage)
                        .filter(|x| x.member_nodes().contains(&node))
                        .all(|x| x.in_sync.contains(&node))
                })
        },
    )
    .await?;
    Ok(())
}

/// Is `node` off the in-sync list of some storage set?
fn off_some_in_sync_list(c: &Cluster, node: NodeId) -> bool {
    c.read(|s| {
        s.sets.values().any(|x| {
            x.kind == SetKind::Storage
                && x.member_nodes().contains(&node)
                && !x.in_sync.contains(&node)
        })
    })
}

// ---------------------------------------------------------------- the tests

enum Fault {
    Crash,
    Pause,
}

/// A stream of puts through one node while the Primary of the set holding the most
/// chunks crashes (or hangs) and comes back.
async fn puts_through_a_primary_fault(fault: Fault) -> anyhow::Result<()> {
    let mut c = storage_cluster().await?;
    let checker = c.checker()?;
    let since = c.next_event_seq();

    info!("--- a few puts, to see which set holds the most chunks");
    let mut warm = vec![];
    for i in 0..3 {
        let inode = put(&c, 1, path(i), content(i), None).await??;
        warm.push((i, inode));
    }
    let per_set = chunks_per_set(&c, warm.iter().map(|(_, i)| i));
    let (set, chunks) = per_set
        .iter()
        .max_by_key(|(_, n)| **n)
        .map(|(s, n)| (s.clone(), *n))
        .context("no chunks placed")?;
    let p = c.primary(&set).context("a Primary")?;
    let e1 = c.epoch(&set);
    let via = c
        .ids()
        .into_iter()
        .find(|n| *n != p)
        .context("another node")?;
    info!("--- set {set} holds {chunks} of the chunks: its Primary is node {p}; puts go through node {via}");

    let writer = Writer::start(&c, via, 100)?;
    writer
        .wait_acked(3, "puts acknowledged before the fault")
        .await?;
    match fault {
        Fault::Crash => {
            info!("--- crash node {p} mid-stream");
            c.crash(p).await?;
        }
        Fault::Pause => {
            info!("--- pause node {p} mid-stream");
            c.pause(p).await?;
        }
    }
    let (q, e2) = c.wait_failover(&set, e1, IO_WITHIN).await?;
    ensure!(q != p && e2 > e1, "node {q} acts for {set} in epoch {e2}");
    info!("--- node {q} acts for {set} in epoch {e2}: puts go on");
    writer
        .wait_acked(3, "puts acknowledged after the failover")
        .await?;
    wait_until(
        &format!("node {p} taken off an in-sync list"),
        IO_WITHIN,
        || off_some_in_sync_list(&c, p),
    )
    .await?;

    match fault {
        Fault::Crash => {
            info!("--- restart node {p}");
            c.restart(p).await?;
        }
        Fault::Pause => {
            info!("--- resume node {p}");
            c.resume(p)?;
        }
    }
    wait_back_in_sync(&c, p).await?;
    c.wait_event("catch_up_done", STEP, since, |e| {
        e.kind == EventKind::CatchUpDone && e.node == Some(p)
    })
    .await?;
    writer
        .wait_acked(3, "puts acknowledged after node came back")
        .await?;
    let (mut acked, refused) = writer.stop().await?;
    info!(
        "--- {} puts acknowledged, {refused} refused during the fault",
        acked.len()
    );
    ensure!(
        c.primary(&set) != Some(p) && c.acting(&set).iter().all(|(n, _)| *n != p),
        "node {p} took its Primary role back by itself"
    );

    acked.extend(warm);
    check_acknowledged(&c, via, &acked).await?;
    check_data(&c, via, &acked, &[]).await?;
    c.log_events(since);
    finish(c, checker).await
}

#[tokio::test]
async fn a_crashed_primary_loses_no_acknowledged_put_and_catches_up() -> anyhow::Result<()> {
    init_tracing();
    let _one = serial().await;
    puts_through_a_primary_fault(Fault::Crash).await
}

#[tokio::test]
async fn a_replica_with_a_wiped_disk_is_out_of_sync_until_it_caught_up() -> anyhow::Result<()> {
    init_tracing();
    let _one = serial().await;
    let mut c = storage_cluster().await?;
    let checker = c.checker()?;
    info!("--- puts through node 1");
    let mut acked = vec![];
    for i in 0..4 {
        let inode = put(&c, 1, path(i), content(i), None).await??;
        acked.push((i, inode));
    }
    let since = c.next_event_seq();
    info!("--- crash node 2, wipe its object store, restart it");
    c.crash(2).await?;
    let objects = c.data_dir(2).context("node 2's data dir")?.join("objects");
    ensure!(objects.is_dir(), "{} is node 2's store", objects.display());
    std::fs::remove_dir_all(&objects)?;
    c.restart(2).await?;
    let ev = c
        .wait_event("store_replaced", IO_WITHIN, since, |e| {
            e.kind == EventKind::StoreReplaced && e.node == Some(2)
        })
        .await?;
    info!("--- {}", ev.detail);
    info!("--- node 2 catches up; until then it is on no list with its new store");
    let store = c.node(2)?.store_id();
    wait_until("node 2 caught up in every set", IO_WITHIN, || {
        c.read(|s| {
            s.sets
                .values()
                .filter(|x| x.kind == SetKind::Storage && x.member_nodes().contains(&2))
                .all(|x| x.in_sync.contains(&2) && x.in_sync_store(2) == store)
        })
    })
    .await?;
    c.wait_event("catch_up_done", STEP, since, |e| {
        e.kind == EventKind::CatchUpDone && e.node == Some(2)
    })
    .await?;
    check_acknowledged(&c, 1, &acked).await?;
    let events: Vec<_> = c.events().into_iter().filter(|e| e.seq >= since).collect();
    for x in ["st-1", "st-2"] {
        let left = events
            .iter()
            .position(|e| e.kind == EventKind::StoreReplaced && e.set.as_deref() == Some(x));
        let back = events.iter().position(|e| {
            e.kind == EventKind::InSyncChanged
                && e.set.as_deref() == Some(x)
                && e.detail.contains("added [2]")
        });
        ensure!(
            matches!((left, back), (Some(l), Some(b)) if l < b),
            "{x}: node 2 left ({left:?}) before it was re-admitted ({back:?})"
        );
    }
    finish(c, checker).await
}

#[tokio::test]
async fn a_replica_refuses_a_write_meant_for_another_store() -> anyhow::Result<()> {
    init_tracing();
    let _one = serial().await;
    let c = storage_cluster().await?;
    let set = "st-1".to_string();
    let p = c.primary(&set).context("a Primary")?;
    let r = c
        .read(|s| s.sets[&set].in_sync.iter().copied().find(|n| *n != p))
        .context("a replica")?;
    let epoch = c.epoch(&set);
    let actual = c.node(r)?.store_id().context("a store")?;
    let recorded = c.read(|s| s.sets[&set].in_sync_store(r));
    ensure!(
        recorded == Some(actual),
        "the list recorded {recorded:?}, not {actual}"
    );
    let id = object_in(&c, &set)?;
    let replicate = |store: StoreId| {
        StoreRequest::Replicate(ReplicateRequest {
            set: set.clone(),
            epoch,
            id,
            version: Version { epoch, seq: 7 },
            op: WriteOp::Put(vec![6; 100].into()),
            force: false,
            store: Some(store),
        })
    };
    info!("--- a write for another store: refused, typed, nothing written");
    let other = StoreId(actual.0 ^ 1);
    match store_call(&c, p, r, replicate(other)).await? {
        Err(CallError::Data(DataError::StoreMismatch {
            expected,
            actual: a,
            ..
        })) if expected == other && a == actual => {}
        got => bail!("node {r} took a write meant for store {other}: {got:?}"),
    }
    let stat = store_call(
        &c,
        p,
        r,
        StoreRequest::Stat {
            set: set.clone(),
            id,
        },
    )
    .await?;
    ensure!(
        matches!(stat, Ok(StoreReply::Stat(None))),
        "node {r} holds {id}: {stat:?}"
    );
    info!("--- the same write for its own store is taken");
    let taken = store_call(&c, p, r, replicate(actual)).await?;
    ensure!(matches!(taken, Ok(StoreReply::Written(_))), "{taken:?}");
    c.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn a_write_returns_only_once_the_writers_own_replica_applied_it() -> anyhow::Result<()> {
    init_tracing();
    let _one = serial().await;
    let c = Cluster::start(3).await?;
    let leader = wait_for("a leader", STEP, || c.leader()).await?;
    let f = c
        .ids()
        .into_iter()
        .find(|n| *n != leader)
        .context("a follower")?;
    let node = c.node(f)?;
    let probe = |what: &str| ClusterCommand::RecordEvent {
        event: Event::new(now_ms(), EventKind::NodeCleared).detail(what.to_string()),
    };
    let seen =
        |n: &Arc<NodeShared>, what: &str| n.db.read(|s| s.events.iter().any(|e| e.detail == what));
    info!("--- node {f}'s replica lags: calls to it (Raft appends) are dropped, its own pass");
    c.block(f, Traffic::Calls, Way::In);
    let n = node.clone();
    let cmd = probe("while lagging");
    let r = c.spawn_on(f, async move { n.write(cmd).await })?.await?;
    let leader_node = c.node(leader)?;
    wait_until("the leader applied the change", STEP, || {
        seen(&leader_node, "while lagging")
    })
    .await?;
    // A Primary acting on its replica right after such a write would act on a guess.
    ensure!(
        r.is_err() || seen(&node, "while lagging"),
        "node {f}'s write returned {r:?} before its own replica applied it"
    );
    info!("--- node {f} hears the leader again: a write returns once applied here");
    c.unblock(f, Traffic::Calls, Way::In);
    // (Its silence may have cost the leader its term: retry through an election.)
    let deadline = tokio::time::Instant::now() + IO_WITHIN;
    for attempt in 0.. {
        let what = format!("caught up {attempt}");
        let (n, cmd) = (node.clone(), probe(&what));
        match c.spawn_on(f, async move { n.write(cmd).await })?.await? {
            Ok(_) => {
                ensure!(seen(&node, &what), "applied at the leader only");
                break;
            }
            Err(e) if tokio::time::Instant::now() < deadline => {
                info!("write not made yet: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => bail!("no write through node {f} after it caught up: {e}"),
        }
    }
    c.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn a_paused_primary_loses_no_acknowledged_put_and_catches_up() -> anyhow::Result<()> {
    init_tracing();
    let _one = serial().await;
    puts_through_a_primary_fault(Fault::Pause).await
}

/// Is this the refusal of a Primary that may not act (and not an acknowledgement)?
fn refused_as_cut_off(r: &Result<StoreReply, DataError>) -> bool {
    matches!(
        r,
        Err(DataError::NoLease { .. }
            | DataError::InSyncShrinkFailed { .. }
            | DataError::NotPrimary { .. })
    )
}

/// Sends a write straight to node `p`'s storage role, as a locator would, on `p`'s
/// process.
fn direct_write(
    c: &Cluster,
    p: NodeId,
    set: &str,
    epoch: Epoch,
    id: ObjectId,
    data: Vec<u8>,
) -> anyhow::Result<tokio::task::JoinHandle<Result<StoreReply, DataError>>> {
    let node = c.node(p)?;
    let req = StoreRequest::Write(WriteRequest {
        set: set.to_string(),
        epoch,
        id,
        op: WriteOp::Put(data.into()),
        durability: Durability::AllInSync,
    });
    Ok(c.spawn_on(p, async move { storage::handle(&node, req).await })?)
}

/// A Primary cut off from every other node: a write sent to it is not acknowledged,
/// while the majority side fails the set over and its new Primary takes writes. The
/// write the cut-off Primary applied locally does not survive its catch-up.
async fn a_cut_off_primary(primary: PrimaryIs) -> anyhow::Result<()> {
    let c = storage_cluster().await?;
    let checker = c.checker()?;
    let since = c.next_event_seq();
    let leader = wait_for("a leader", STEP, || c.leader()).await?;
    let p = match primary {
        PrimaryIs::Leader => leader,
        PrimaryIs::NotLeader => c
            .ids()
            .into_iter()
            .rfind(|n| *n != leader)
            .context("a follower")?,
    };
    let set = format!("st-{p}");
    ensure!(c.primary(&set) == Some(p), "node {p} should lead {set}");
    let old = c.node(p)?;
    let e1 = old
        .db
        .read(|s| s.sets.get(&set).map(|x| x.epoch))
        .with_context(|| format!("set {set} on node {p}"))?;

    info!("--- isolate node {p}, Primary of {set} in epoch {e1}; write to it directly at once");
    let lost_id = object_in(&c, &set)?;
    c.isolate(p);
    let early = direct_write(&c, p, &set, e1, lost_id, content_of_len(7, 5000))?;

    let (q, e2) = c.wait_failover(&set, e1, IO_WITHIN).await?;
    ensure!(q != p && e2 > e1);
    let via = c
        .ids()
        .into_iter()
        .find(|n| *n != p && *n != q)
        .context("a third node")?;
    info!(
        "--- the majority side: node {q} acts for {set} in epoch {e2}; writes through node {via}"
    );
    let id = object_in(&c, &set)?;
    let stat = locator_put(&c, via, id, content_of_len(8, 5000)).await??;
    ensure!(
        stat.version.epoch == e2,
        "the write was applied in epoch {}, not {e2}",
        stat.version.epoch
    );
    let mut acked = vec![];
    for i in 0..3 {
        let inode = put(&c, via, path(i), content(i), None).await??;
        acked.push((i, inode));
    }

    info!("--- node {p} still believes it is Primary in epoch {e1}, without a lease: a second write is refused");
    ensure!(
        old.db.read(|s| s.sets.get(&set).map(|x| x.epoch)) == Some(e1),
        "the isolated node learned of the new epoch"
    );
    let late = direct_write(&c, p, &set, e1, object_in(&c, &set)?, vec![1; 100])?;
    let late = tokio::time::timeout(IO_WITHIN, late)
        .await
        .context("the late write did not end")??;
    info!("late write: {late:?}");
    ensure!(refused_as_cut_off(&late), "the late write: {late:?}");
    let early = tokio::time::timeout(IO_WITHIN, early)
        .await
        .context("the isolated Primary's write never ended")??;
    info!("early write: {early:?}");
    ensure!(
        refused_as_cut_off(&early),
        "the isolated Primary acknowledged a write: {early:?}"
    );

    info!("--- heal: node {p} catches up and is in sync again");
    c.heal();
    wait_back_in_sync(&c, p).await?;
    match store_call(
        &c,
        via,
        p,
        StoreRequest::Stat {
            set: set.clone(),
            id: lost_id,
        },
    )
    .await?
    {
        Ok(StoreReply::Stat(None)) => {}
        Ok(StoreReply::Stat(Some(st))) if st.deleted => {}
        other => bail!("the unacknowledged write is still on node {p}: {other:?}"),
    }
    check_acknowledged(&c, via, &acked).await?;
    check_acknowledged(&c, p, &acked).await?;
    check_data(&c, via, &acked, &[]).await?;
    c.log_events(since);
    finish(c, checker).await
}

#[tokio::test]
async fn a_primary_cut_off_from_the_control_plane_acknowledges_nothing() -> anyhow::Result<()> {
    init_tracing();
    let _one = serial().await;
    a_cut_off_primary(PrimaryIs::NotLeader).await
}

#[tokio::test]
async fn a_leader_primary_cut_off_from_the_control_plane_acknowledges_nothing() -> anyhow::Result<()>
{
    init_tracing();
    let _one = serial().await;
    a_cut_off_primary(PrimaryIs::Leader).await
}

#[tokio::test]
async fn a_write_from_a_deposed_epoch_is_refused_as_stale() -> anyhow::Result<()> {
    init_tracing();
    let _one = serial().await;
    let mut c = storage_cluster().await?;
    let checker = c.checker()?;
    let since = c.next_event_seq();
    let p = not_the_leader(&c)?;
    let set = format!("st-{p}");
    let e1 = c.epoch(&set);
    ensure!(c.primary(&set) == Some(p));

    info!("--- crash node {p}, Primary of {set} in epoch {e1}");
    c.crash(p).await?;
    let (q, e2) = c.wait_failover(&set, e1, IO_WITHIN).await?;
    let stat = locator_put(&c, q, object_in(&c, &set)?, vec![2; 1000]).await??;
    ensure!(stat.version.epoch == e2);

    info!("--- restart node {p}: it catches up and is a replica of {set} again");
    c.restart(p).await?;
    wait_back_in_sync(&c, p).await?;
    let primary = c.node(q)?;
    wait_until(&format!("node {q} sees node {p} in sync"), STEP, || {
        primary
            .db
            .read(|s| s.sets.get(&set).is_some_and(|x| x.in_sync.contains(&p)))
    })
    .await?;
    // A write of the new Primary reaches the replica, in epoch e2.
    let id = object_in(&c, &set)?;
    let stat = locator_put(&c, q, id, vec![3; 1000]).await??;
    ensure!(stat.version.epoch == e2);

    let stale = |to_id: ObjectId| {
        StoreRequest::Replicate(ReplicateRequest {
            set: set.clone(),
            epoch: e1,
            id: to_id,
            version: Version { epoch: e1, seq: 1 },
            op: WriteOp::Put(vec![4; 1000].into()),
            force: false,
            store: None,
        })
    };
    for (to, what) in [(p, "the replica"), (q, "the new Primary")] {
        info!("--- a write replicated in epoch {e1} to {what} (node {to})");
        for target in [id, object_in(&c, &set)?] {
            let r = store_call(&c, q, to, stale(target)).await?;
            match r {
                Err(CallError::Data(DataError::Store {
                    error:
                        StoreError::StaleEpoch {
                            presented, current, ..
                        },
                })) if presented == e1 && current == e2 => {}
                other => bail!("node {to} took a write of epoch {e1}: {other:?}"),
            }
        }
    }
    info!("--- the object the new Primary wrote is untouched on both");
    for to in [p, q] {
        let req = StoreRequest::Read(ReadRequest {
            set: set.clone(),
            id,
            offset: 0,
            len: 1000,
        });
        match store_call(&c, q, to, req).await? {
            Ok(StoreReply::Data { data, version })
                if data == vec![3; 1000] && version == stat.version => {}
            other => bail!("node {to}: {other:?}"),
        }
    }

    info!("--- a write presented to the new Primary in the old epoch: not the Primary");
    let req = StoreRequest::Write(WriteRequest {
        set: set.clone(),
        epoch: e1,
        id,
        op: WriteOp::Put(vec![5; 10].into()),
        durability: Durability::AllInSync,
    });
    match store_call(&c, p, q, req).await? {
        Err(CallError::Data(DataError::NotPrimary {
            presented, current, ..
        })) if presented == e1 && current == e2 => {}
        other => bail!("a write in epoch {e1} to node {q}: {other:?}"),
    }
    check_data(&c, q, &[], &[]).await?;
    c.log_events(since);
    finish(c, checker).await
}

#[tokio::test]
async fn a_retried_put_is_applied_once() -> anyhow::Result<()> {
    init_tracing();
    let _one = serial().await;
    let c = storage_cluster().await?;
    let checker = c.checker()?;
    let (a, b) = (1, 2);
    let token: u128 = rand::random();

    info!("--- put /idem with a token, then again with the same token, through two nodes");
    let first = put(&c, a, "/idem".into(), content(1), Some(token)).await??;
    let again = put(&c, a, "/idem".into(), content(1), Some(token)).await??;
    ensure!(
        again.ino == first.ino
            && again.generation == first.generation
            && again.chunks == first.chunks,
        "a retried put was applied again: {first:?} then {again:?}"
    );
    wait_until(&format!("node {b} knows the put"), STEP, || {
        c.node(b)
            .is_ok_and(|n| n.db.read_dir(|ns| ns.lookup(VOLUME, "/idem").is_ok()))
    })
    .await?;
    let elsewhere = put(&c, b, "/idem".into(), content(1), Some(token)).await??;
    ensure!(
        elsewhere.generation == first.generation && elsewhere.chunks == first.chunks,
        "a put retried through another node was applied again: {elsewhere:?}"
    );
    let (now, data) = read(&c, b, "/idem".into()).await?;
    ensure!(now.generation == first.generation && data == content(1));

    info!("--- a new put (another token) is applied: the generation grows");
    let second = put(&c, a, "/idem".into(), content(2), Some(rand::random())).await??;
    ensure!(
        second.ino == first.ino && second.generation == first.generation + 1,
        "{second:?} after {first:?}"
    );
    let (_, data) = read(&c, a, "/idem".into()).await?;
    ensure!(
        data == content(2),
        "the second put's content does not read back"
    );
    check_data(&c, b, &[], &[("/idem", content(2))]).await?;
    finish(c, checker).await
}

/// Live objects stored on `node` in `set` that the current placement map puts in
/// another set (what a rebalance still has to move).
async fn misplaced_on(c: &Cluster, node: NodeId, set: &SetId) -> anyhow::Result<usize> {
    let req = StoreRequest::List {
        set: set.clone(),
        after: None,
        limit: 10_000,
    };
    let Ok(StoreReply::List(objects)) = store_call(c, node, node, req).await? else {
        bail!("node {node} did not list {set}");
    };
    Ok(c.read(|s| {
        objects
            .iter()
            .filter(|o| !o.deleted && s.placement.set_for(o.id) != Some(set))
            .count()
    }))
}

#[tokio::test]
async fn adding_a_storage_node_rebalances_and_every_file_stays_readable() -> anyhow::Result<()> {
    init_tracing();
    let _one = serial().await;
    let c = Cluster::start(4).await?;
    info!("--- node 4 drained: the first layout leaves it out");
    c.admin(AdminRequest::Drain {
        node: 4,
        force: true,
    })
    .await?;
    let c = storage_cluster_of(c).await?;
    let checker = c.checker()?;
    let files: Vec<u64> = (0..12).collect();
    for i in &files {
        put(&c, 1, path(*i), content(*i), None).await??;
    }
    let version = c.read(|s| s.placement.version);

    info!("--- node 4 back, layout applied again: st-4 takes its share of the groups");
    c.admin(AdminRequest::Undrain { node: 4 }).await?;
    let reply = c
        .admin(AdminRequest::ApplyLayout {
            replicas: Some(2),
            dry_run: false,
        })
        .await?;
    info!("{}", reply.message);
    ensure!(
        c.read(|s| s.placement.version) == version + 1,
        "the placement map did not change"
    );
    let (p, e) = c.wait_acting("st-4", STEP).await?;
    info!("set st-4: node {p} acts as Primary in epoch {e}");

    info!("--- every set's Primary moves what is no longer its own");
    let old_sets: Vec<(SetId, NodeId)> = c.read(|s| {
        s.sets
            .values()
            .filter(|x| x.kind == SetKind::Storage && x.id != "st-4")
            .filter_map(|x| x.primary_node().map(|p| (x.id.clone(), p)))
            .collect()
    });
    for (set, primary) in &old_sets {
        let deadline = tokio::time::Instant::now() + IO_WITHIN;
        loop {
            let left = misplaced_on(&c, *primary, set).await?;
            if left == 0 {
                break;
            }
            ensure!(
                tokio::time::Instant::now() < deadline,
                "{left} objects of {set} were not moved"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let st4 = c
        .read(|s| s.sets["st-4"].primary_node())
        .context("st-4 has a Primary")?;
    let moved_in = {
        let req = StoreRequest::List {
            set: "st-4".into(),
            after: None,
            limit: 10_000,
        };
        match store_call(&c, st4, st4, req).await? {
            Ok(StoreReply::List(v)) => v.iter().filter(|o| !o.deleted).count(),
            other => bail!("listing st-4: {other:?}"),
        }
    };
    ensure!(moved_in > 0, "nothing was moved to st-4");
    info!("{moved_in} objects now in st-4");
    wait_until("a rebalance_done event", STEP, || {
        c.events()
            .iter()
            .any(|e| e.kind == EventKind::RebalanceDone)
    })
    .await?;

    info!("--- every file reads back byte-exact, through an old node and the new one");
    for via in [2, 4] {
        for i in &files {
            let (_, data) = read(&c, via, path(*i)).await?;
            ensure!(
                data == content(*i),
                "{} through node {via} differs",
                path(*i)
            );
        }
    }
    let acked: Vec<(u64, Inode)> = {
        let node = c.node(1)?;
        node.db.read_dir(|ns| {
            files
                .iter()
                .filter_map(|i| ns.lookup(VOLUME, &path(*i)).ok().map(|n| (*i, n)))
                .collect()
        })
    };
    ensure!(acked.len() == files.len(), "a file is missing");
    check_data(&c, 4, &acked, &[]).await?;

    info!("--- node 4 drained again and the layout applied: st-4's groups move back out");
    c.admin(AdminRequest::Drain {
        node: 4,
        force: true,
    })
    .await?;
    c.admin(AdminRequest::ApplyLayout {
        replicas: Some(2),
        dry_run: false,
    })
    .await?;
    ensure!(
        c.read(|s| !s.placement.groups.iter().any(|g| g == "st-4")),
        "a drained node's set still holds placement groups"
    );
    let st4 = wait_for("st-4 to have a Primary off the drained node", STEP, || {
        c.read(|s| s.sets["st-4"].primary_node().filter(|p| *p != 4))
    })
    .await?;
    let deadline = tokio::time::Instant::now() + IO_WITHIN;
    loop {
        let left = misplaced_on(&c, st4, &"st-4".to_string()).await?;
        if left == 0 {
            break;
        }
        ensure!(
            tokio::time::Instant::now() < deadline,
            "{left} objects were not moved out of st-4"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for i in &files {
        let (_, data) = read(&c, 3, path(*i)).await?;
        ensure!(
            data == content(*i),
            "{} differs after the removal",
            path(*i)
        );
    }
    check_data(&c, 3, &acked, &[]).await?;
    finish(c, checker).await
}

#[tokio::test]
async fn a_duplicate_outside_the_map_is_found_by_a_search() -> anyhow::Result<()> {
    init_tracing();
    let _one = serial().await;
    let mut c = storage_cluster().await?;
    info!("--- an object of st-1 ({{1, 2}}), and a copy of it on node 3, outside the map");
    let id = object_in(&c, "st-1")?;
    let data = content_of_len(77, 5000);
    locator_put(&c, 1, id, data.clone()).await??;
    let epoch = c.read(|s| s.sets["st-1"].epoch);
    let copy = StoreRequest::Replicate(ReplicateRequest {
        set: "st-1".into(),
        epoch,
        id,
        version: Version { epoch, seq: 1 },
        op: WriteOp::Put(data.clone().into()),
        force: true,
        store: None,
    });
    store_call(&c, 3, 3, copy).await??;

    info!("--- both members of st-1 crash: the map and the site mapping rule have no answer");
    c.crash(1).await?;
    c.crash(2).await?;
    let node = c.node(3)?;
    let task = c.spawn_on(3, async move { locator::read(&node, id, 0, 5000).await })?;
    let (got, _, by) = tokio::time::timeout(IO_WITHIN, task)
        .await
        .context("a read did not end")???;
    ensure!(got == data, "the copy found reads back different bytes");
    ensure!(
        by == locator::FoundBy::Search,
        "found by {by:?}, not by a search"
    );
    Ok(())
}

#[tokio::test]
async fn the_sweep_collects_old_orphans_and_nothing_else() -> anyhow::Result<()> {
    init_tracing();
    let _one = serial().await;
    let c = storage_cluster().await?;
    let checker = c.checker()?;
    put(&c, 1, "/kept".into(), content(1), None).await??;
    let set: SetId = "st-1".into();
    let (primary, secondary, epoch) = c.read(|s| {
        let x = &s.sets["st-1"];
        (x.primary_node(), x.secondary.clone(), x.epoch)
    });
    let primary = primary.context("st-1 has a Primary")?;
    let Some(keel_core::MemberRef::Node(secondary)) = secondary else {
        bail!("st-1 has no Secondary");
    };

    info!(
        "--- an orphan written by a Primary whose clock ran far ahead (its version is in \
         this epoch, far above this node's clock)"
    );
    let old = object_in(&c, &set)?;
    for n in [primary, secondary] {
        let req = StoreRequest::Replicate(ReplicateRequest {
            set: set.clone(),
            epoch,
            id: old,
            version: Version {
                epoch,
                seq: u64::MAX / 2,
            },
            op: WriteOp::Put(content_of_len(6, 1000).into()),
            force: true,
            store: None,
        });
        store_call(&c, n, n, req).await??;
    }
    let grace = Duration::from_secs(60);
    let sweep_at = |at: std::time::Instant| {
        let node = c.node(primary)?;
        let task = c.spawn_on(primary, async move {
            storage::sweep::sweep_at(&node, grace, at).await
        })?;
        anyhow::Ok(async move {
            tokio::time::timeout(IO_WITHIN, task)
                .await
                .context("a sweep did not end")?
                .context("the sweep task")?
                .context("the sweep")
        })
    };
    info!("--- a sweep sees it unreferenced for the first time: nothing is deleted");
    let deleted = sweep_at(std::time::Instant::now())?.await?;
    ensure!(deleted == 0, "the first sweep deleted {deleted} objects");

    info!("--- a young orphan (written after the first sweep)");
    let young = object_in(&c, &set)?;
    locator_put(&c, 1, young, content_of_len(5, 1000)).await??;

    info!("--- a sweep a grace period later by the Primary's own clock: the old one goes");
    let later = std::time::Instant::now() + grace + Duration::from_secs(1);
    let deleted = sweep_at(later)?.await?;
    ensure!(deleted == 1, "the sweep deleted {deleted} objects, not 1");
    for n in [primary, secondary] {
        let stat = |id| StoreRequest::Stat {
            set: set.clone(),
            id,
        };
        let old_here = store_call(&c, n, n, stat(old)).await??;
        ensure!(
            matches!(&old_here, StoreReply::Stat(Some(s)) if s.deleted),
            "the old orphan is still on node {n}: {old_here:?}"
        );
        let young_here = store_call(&c, n, n, stat(young)).await??;
        ensure!(
            matches!(&young_here, StoreReply::Stat(Some(s)) if !s.deleted),
            "the young orphan is gone from node {n}: {young_here:?}"
        );
    }
    info!("--- sweeps with no grace on every node: what no file refers to goes, tombstones too");
    for n in [1, 2, 3] {
        let node = c.node(n)?;
        let task = c.spawn_on(n, async move {
            storage::sweep::sweep(&node, Duration::ZERO).await
        })?;
        tokio::time::timeout(IO_WITHIN, task)
            .await
            .context("a sweep did not end")???;
    }
    for n in [primary, secondary] {
        for (what, id) in [("the young orphan", young), ("the old orphan", old)] {
            let req = StoreRequest::Stat {
                set: set.clone(),
                id,
            };
            let here = store_call(&c, n, n, req).await??;
            ensure!(
                matches!(here, StoreReply::Stat(None)),
                "{what} (or its tombstone) is still on node {n} after a sweep with no grace: {here:?}"
            );
        }
    }
    let (_, data) = read(&c, 2, "/kept".into()).await?;
    ensure!(data == content(1), "a file's chunks were collected");
    check_data(&c, 2, &[], &[("/kept", content(1))]).await?;
    wait_until("an orphans_collected event", STEP, || {
        c.events()
            .iter()
            .any(|e| e.kind == EventKind::OrphansCollected)
    })
    .await?;
    finish(c, checker).await
}

/// Waits until the Primary of every set in `sets` holds no live object the current map
/// places elsewhere (its rebalance moved them all).
async fn wait_rebalanced(c: &Cluster, sets: &[SetId]) -> anyhow::Result<()> {
    for set in sets {
        let deadline = tokio::time::Instant::now() + IO_WITHIN;
        loop {
            let primary = c
                .read(|s| s.sets.get(set).and_then(|x| x.primary_node()))
                .with_context(|| format!("{set} has a Primary"))?;
            let left = misplaced_on(c, primary, set).await?;
            if left == 0 {
                break;
            }
            ensure!(
                tokio::time::Instant::now() < deadline,
                "{left} objects of {set} were not moved"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    Ok(())
}

/// The live objects of `set` that node `n` holds for it.
async fn live_in(c: &Cluster, n: NodeId, set: &SetId) -> anyhow::Result<Vec<ObjectId>> {
    let req = StoreRequest::List {
        set: set.clone(),
        after: None,
        limit: 10_000,
    };
    match store_call(c, n, n, req).await? {
        Ok(StoreReply::List(v)) => Ok(v.iter().filter(|o| !o.deleted).map(|o| o.id).collect()),
        other => bail!("listing {set} on node {n}: {other:?}"),
    }
}

#[tokio::test]
async fn a_rebalance_onto_a_set_that_shares_a_member_loses_nothing() -> anyhow::Result<()> {
    init_tracing();
    let _one = serial().await;
    let c = Cluster::start(4).await?;
    c.admin(AdminRequest::Drain {
        node: 4,
        force: true,
    })
    .await?;
    let c = storage_cluster_of(c).await?;
    let checker = c.checker()?;
    let mut acked = vec![];
    for i in 0..16 {
        acked.push((i, put(&c, 1, path(i), content(i), None).await??));
    }
    let old_sets = storage_sets(&c);

    info!("--- node 4 back, layout applied again: st-4 shares a member with an old set");
    c.admin(AdminRequest::Undrain { node: 4 }).await?;
    c.admin(AdminRequest::ApplyLayout {
        replicas: Some(2),
        dry_run: false,
    })
    .await?;
    let (p, e) = c.wait_acting("st-4", STEP).await?;
    let st4: SetId = "st-4".into();
    let (members, shared) = c.read(|s| {
        let members = s.sets[&st4].member_nodes();
        let shared: Vec<(SetId, NodeId)> = old_sets
            .iter()
            .flat_map(|set| {
                let theirs = s.sets[set].member_nodes();
                members
                    .iter()
                    .filter(move |n| theirs.contains(n))
                    .map(move |n| (set.clone(), *n))
            })
            .collect();
        (members, shared)
    });
    info!("st-4 {members:?}: Primary {p} in epoch {e}; shared with old sets: {shared:?}");
    ensure!(!shared.is_empty(), "st-4 shares no member with an old set");

    info!("--- the old sets' Primaries move what is now st-4's");
    wait_rebalanced(&c, &old_sets).await?;
    let moved = chunks_per_set(&c, acked.iter().map(|(_, inode)| inode))
        .get(&st4)
        .copied()
        .unwrap_or(0);
    ensure!(moved > 0, "no chunk is placed in st-4");
    wait_until("st-4's members in sync", IO_WITHIN, || {
        c.read(|s| s.sets[&st4].in_sync.len() == members.len())
    })
    .await?;

    info!("--- every member of st-4 holds every object of st-4");
    let primary_has = live_in(&c, p, &st4).await?;
    ensure!(
        primary_has.len() >= moved,
        "st-4's Primary holds {} objects, {moved} chunks are placed there",
        primary_has.len()
    );
    for n in &members {
        let has = live_in(&c, *n, &st4).await?;
        let missing: Vec<_> = primary_has.iter().filter(|id| !has.contains(id)).collect();
        ensure!(
            missing.is_empty(),
            "node {n}, in sync for st-4, misses {} of its objects: {missing:?}",
            missing.len()
        );
    }
    info!("--- every file reads back, and every in-sync replica holds its chunks");
    check_acknowledged(&c, 2, &acked).await?;
    check_acknowledged(&c, 4, &acked).await?;
    finish(c, checker).await
}

/// The chaos run of seed 21: the node a layout added (`st-4` = {4, x}) is drained while
/// it is the only in-sync member of its set (x was away and missed writes), and the
/// layout applied: `st-4` is left without an eligible Primary, its groups are placed
/// elsewhere. x comes back: it must catch up from the drained node (no Primary to ask),
/// lead the set, and move its objects to their new sets; nothing may stay on no member
/// of its set.
#[tokio::test]
async fn draining_the_only_in_sync_member_of_a_set_hands_its_objects_over() -> anyhow::Result<()> {
    init_tracing();
    let _one = serial().await;
    let c = Cluster::start(4).await?;
    c.admin(AdminRequest::Drain {
        node: 4,
        force: true,
    })
    .await?;
    let mut c = storage_cluster_of(c).await?;
    let checker = c.checker()?;
    let mut acked = vec![];
    for i in 0..8 {
        acked.push((i, put(&c, 1, path(i), content(i), None).await??));
    }
    let old_sets = storage_sets(&c);

    info!("--- node 4 in, layout applied: st-4 takes its share of the groups");
    c.admin(AdminRequest::Undrain { node: 4 }).await?;
    c.admin(AdminRequest::ApplyLayout {
        replicas: Some(2),
        dry_run: false,
    })
    .await?;
    c.wait_acting("st-4", STEP).await?;
    wait_rebalanced(&c, &old_sets).await?;
    let st4: SetId = "st-4".into();
    let members = c.read(|s| s.sets[&st4].member_nodes());
    let other = *members
        .iter()
        .find(|n| **n != 4)
        .context("st-4 has a member besides node 4")?;
    wait_until("st-4's members in sync", IO_WITHIN, || {
        c.read(|s| s.sets[&st4].in_sync.len() == members.len())
    })
    .await?;

    info!("--- node {other} crashes; puts go on until node 4 alone is in sync for st-4");
    c.crash(other).await?;
    let via = [1, 2, 3]
        .into_iter()
        .find(|n| *n != other)
        .context("a node to write through")?;
    let mut i = 100;
    while c.read(|s| s.sets[&st4].in_sync.contains(&other)) {
        ensure!(i < 140, "node {other} stayed on st-4's in-sync list");
        if let Ok(inode) = put(&c, via, path(i), content(i), None).await? {
            acked.push((i, inode));
        }
        i += 1;
    }
    for k in i..i + 4 {
        acked.push((k, put(&c, via, path(k), content(k), None).await??));
    }
    ensure!(
        chunks_per_set(&c, acked.iter().map(|(_, inode)| inode))
            .get(&st4)
            .is_some_and(|n| *n > 0),
        "no chunk is placed in st-4"
    );

    info!("--- node 4, st-4's only in-sync member, drained; the layout moves st-4's groups out");
    c.admin(AdminRequest::Drain {
        node: 4,
        force: true,
    })
    .await?;
    c.admin(AdminRequest::ApplyLayout {
        replicas: Some(2),
        dry_run: false,
    })
    .await?;
    ensure!(
        c.read(|s| !s.placement.groups.iter().any(|g| g == "st-4")),
        "a drained node's set still holds placement groups"
    );

    info!("--- node {other} back: it catches up from the drained node and leads st-4");
    c.restart(other).await?;
    wait_back_in_sync(&c, other).await?;
    let (p, e) = c.wait_acting("st-4", IO_WITHIN).await?;
    ensure!(p == other, "st-4's Primary is node {p}, not node {other}");
    info!("set st-4: node {p} acts as Primary in epoch {e}");
    wait_rebalanced(&c, std::slice::from_ref(&st4)).await?;
    for n in [other, 4] {
        let left = misplaced_on(&c, n, &st4).await?;
        ensure!(
            left == 0,
            "node {n} still holds {left} objects of st-4 placed elsewhere"
        );
    }
    check_acknowledged(&c, via, &acked).await?;
    check_data(&c, via, &acked, &[]).await?;
    finish(c, checker).await
}

/// A fresh object id that the placement map puts in `set` and whose stripe of the
/// storage role's former shared lock (64 stripes by placement hash) is `stripe`.
fn object_on_stripe(c: &Cluster, set: &str, stripe: u64) -> anyhow::Result<ObjectId> {
    c.read(|s| {
        (0..1_000_000).map(|_| ObjectId::random()).find(|id| {
            id.placement_hash() % 64 == stripe && s.placement.set_for(*id).is_some_and(|x| x == set)
        })
    })
    .with_context(|| format!("no object id of set {set} on stripe {stripe}"))
}

#[tokio::test]
async fn primaries_that_are_each_others_replicas_never_wait_for_each_other() -> anyhow::Result<()> {
    init_tracing();
    let _one = serial().await;
    let c = storage_cluster().await?;
    let checker = c.checker()?;
    // st-1 {1, 2}, st-2 {2, 3}, st-3 {3, 1}: each Primary replicates to the next, so
    // writes to the three sets at once form a cycle 1 -> 2 -> 3 -> 1.
    let sets = storage_sets(&c);
    let lists = |c: &Cluster| {
        c.read(|s| {
            sets.iter()
                .map(|x| (x.clone(), s.sets[x].in_sync.clone()))
                .collect::<BTreeMap<_, _>>()
        })
    };
    let before = lists(&c);
    info!("in-sync lists: {before:?}");
    for round in 0..8u64 {
        info!("--- round {round}: one write per set, all on one stripe, at once");
        let mut tasks = vec![];
        for set in &sets {
            let id = object_on_stripe(&c, set, round)?;
            let primary = c
                .read(|s| s.sets[set].primary_node())
                .context("a Primary")?;
            let node = c.node(primary)?;
            let data = content_of_len(round * 10 + tasks.len() as u64, 2000);
            tasks.push(c.spawn_on(primary, async move {
                let started = std::time::Instant::now();
                let r = locator::write(&node, id, WriteOp::Put(data.into()), Durability::AllInSync)
                    .await;
                (r, started.elapsed())
            })?);
        }
        for task in tasks {
            let (r, took) = tokio::time::timeout(IO_WITHIN, task)
                .await
                .context("a write did not end")??;
            r.context("a write")?;
            info!("a write took {took:?}");
        }
        ensure!(
            lists(&c) == before,
            "round {round}: an in-sync list changed: {:?}",
            lists(&c)
        );
    }
    let shrinks: u64 = c
        .awake()
        .iter()
        .map(|(_, n)| n.metrics.in_sync_shrinks.get())
        .sum();
    ensure!(shrinks == 0, "{shrinks} replicas were evicted");
    finish(c, checker).await
}

#[tokio::test]
async fn a_put_streams_its_body_within_the_documented_bound() -> anyhow::Result<()> {
    init_tracing();
    let _one = serial().await;
    let c = storage_cluster().await?;
    let checker = c.checker()?;
    const FRAME: usize = 16 * 1024;
    const CHUNKS: usize = 40;
    let total = CHUNKS * CHUNK as usize;
    let data = content_of_len(99, total);
    // The documented bound: the chunk being filled (chunk size + one frame) and the
    // chunks whose writes are under way.
    let bound = (files::PARALLEL_CHUNKS + 1) * CHUNK as usize + FRAME;
    let nodes: Vec<Arc<NodeShared>> = c.awake().into_iter().map(|(_, n)| n).collect();
    let acknowledged = move || -> usize {
        nodes
            .iter()
            .map(|n| n.metrics.bytes_written.get() as usize)
            .sum()
    };
    let before = acknowledged();
    let most_held = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let held = most_held.clone();
    let frames: Vec<Bytes> = data.chunks(FRAME).map(Bytes::copy_from_slice).collect();
    let mut pulled = 0usize;
    // Each frame is handed out only when asked for: what the put holds is what it
    // pulled minus what its storage sets acknowledged.
    let body = futures::StreamExt::map(futures::stream::iter(frames), move |frame| {
        pulled += frame.len();
        let in_memory = pulled.saturating_sub(acknowledged() - before);
        held.fetch_max(in_memory, Ordering::SeqCst);
        Ok::<_, std::io::Error>(frame)
    });
    let node = c.node(1)?;
    let task = c.spawn_on(1, async move {
        files::put(&node, VOLUME, "/streamed", Box::pin(body), None, 0o644).await
    })?;
    let inode = tokio::time::timeout(IO_WITHIN, task)
        .await
        .context("the put did not end")???;
    ensure!(inode.size == total as u64 && inode.chunks.len() == CHUNKS);
    let most = most_held.load(Ordering::SeqCst);
    info!("the put held at most {most} bytes of a {total}-byte body (bound {bound})");
    ensure!(
        most <= bound,
        "the put held {most} bytes of its body at once, over the bound of {bound}"
    );
    let reader = c.node(2)?;
    wait_until("node 2's directory replica shows the put", STEP, || {
        reader
            .db
            .read_dir(|ns| ns.lookup(VOLUME, "/streamed").is_ok())
    })
    .await?;
    let (_, back) = read(&c, 2, "/streamed".into()).await?;
    ensure!(back == data, "the streamed file reads back different bytes");
    finish(c, checker).await
}

#[tokio::test]
async fn a_primary_writes_above_a_version_stamped_by_a_clock_ahead_of_its_own() -> anyhow::Result<()>
{
    init_tracing();
    let _one = serial().await;
    let c = storage_cluster().await?;
    let checker = c.checker()?;
    let set: SetId = "st-1".into();
    let (members, epoch) = c.read(|s| (s.sets[&set].in_sync.clone(), s.sets[&set].epoch));
    info!("--- an object of {set} whose version, in this epoch, is far above this clock");
    let id = object_in(&c, &set)?;
    for n in &members {
        let req = StoreRequest::Replicate(ReplicateRequest {
            set: set.clone(),
            epoch,
            id,
            version: Version {
                epoch,
                seq: u64::MAX / 2,
            },
            op: WriteOp::Put(content_of_len(1, 500).into()),
            force: true,
            store: None,
        });
        store_call(&c, *n, *n, req).await??;
    }
    info!("--- the Primary overwrites it, then deletes it: both above, both acknowledged");
    let new = content_of_len(2, 700);
    let stat = locator_put(&c, 3, id, new.clone()).await??;
    ensure!(
        stat.version
            > (Version {
                epoch,
                seq: u64::MAX / 2
            }),
        "the new version {} is not above the old one",
        stat.version
    );
    for n in &members {
        let req = StoreRequest::Read(ReadRequest {
            set: set.clone(),
            id,
            offset: 0,
            len: 700,
        });
        match store_call(&c, 3, *n, req).await? {
            Ok(StoreReply::Data { data, .. }) if data == new => {}
            other => bail!("node {n} holds {other:?}"),
        }
    }
    let node = c.node(3)?;
    let task = c.spawn_on(3, async move {
        locator::write(&node, id, WriteOp::Delete, Durability::AllInSync).await
    })?;
    tokio::time::timeout(IO_WITHIN, task)
        .await
        .context("the delete did not end")???;
    ensure!(
        c.read(|s| s.sets[&set].in_sync.clone()) == members,
        "an in-sync list changed"
    );
    finish(c, checker).await
}
