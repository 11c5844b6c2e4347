//! The node's [`FileService`]: the narrow file interface its gateways (NFS, S3, the
//! native API) use, over the directory (Raft) and the locator (chunks on storage sets).
//!
//! Owns: [`NodeFiles`] — resolving inode-named requests to directory commands fenced
//! on the inodes they were resolved from ([`DirCommand::Expect`]), writes at an offset
//! (copy-on-write of the touched chunks, committed by a compare-and-swap of the chunk
//! list, [`DirCommand::WriteChunks`]), the buffer of unstable writes, the write
//! verifier, the stream of [`Invalidation`]s, and the mapping of [`DataError`] /
//! [`DirError`] to [`FsError`].
//!
//! Must never: acknowledge a `FileSync` write before its chunks are durable on their
//! sets and the new chunk list is committed; write into an object a committed file
//! references (every write makes new objects, so an object freed by a put, a truncate
//! or a remove is never written again, and a write computed from a chunk list that
//! changed since is refused by the compare-and-swap, then recomputed); read the
//! directory without the read barrier (every call sees every change acknowledged
//! before it began); or hold more than [`UNSTABLE_BUDGET`] bytes of unstable writes.
//!
//! The path of a write at an offset (NFS WRITE):
//! 1. The bytes join the file's buffer of unstable extents (merged, newest wins).
//! 2. `Unstable`: answered now, with the size the write gives the file; the bytes
//!    live only in this process until [`FileService::commit`] (or until the buffer
//!    passes its budget, which flushes). A restart loses them and changes
//!    [`FileService::write_verifier`], so the NFS client sends them again.
//! 3. `FileSync` (and `commit`): the file is flushed under a per-file lock: for each
//!    touched chunk, the new content (the old chunk's bytes read through the locator,
//!    overlaid with the buffered extents) is written as a *new* object through the
//!    locator (replicated to every in-sync replica before the ack, for a Sync volume);
//!    missing chunks below a touched one are filled by one-byte zero objects (a chunk
//!    list has no gaps; bytes past a chunk's length read as zeros). Then one
//!    `WriteChunks` command swaps the chunks in, each only if it is still the chunk
//!    read; if any changed (a put, a truncate, another node's write), nothing is
//!    committed, the new objects are deleted and the flush starts again from the new
//!    list (up to [`FLUSH_ATTEMPTS`] times). The replaced objects are deleted once the
//!    commit is acknowledged.

use crate::gateway::files::{self, PutArgs};
use crate::locator;
use crate::node::{now_ms, NodeShared};
use crate::storage::wire::{Durability, WriteOp};
use crate::storage::DataError;
use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures::{StreamExt, TryStreamExt};
use keel_core::ObjectId;
use keel_dir::{
    ChunkChange, ChunkRef, DirCommand, DirError, DirReply, Expected, Inode, Namespace, Replication,
};
use keel_fs::{
    AccessKey, Attr, ByteStream, DirEntry, FileService, FsError, FsResult, Ino, Invalidation, Kind,
    Page, PutOptions, SetAttr, Stability, VolumeInfo, WriteDone,
};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use tokio::sync::broadcast;

/// The most bytes of unstable writes a node holds, over all files. A write that would
/// pass it flushes its file first (and, if still over, every file), so memory stays
/// bounded whatever the clients do.
pub const UNSTABLE_BUDGET: usize = 64 << 20;
/// How many times a flush recomputes after its compare-and-swap found the chunk list
/// changed, before it answers `Unavailable`.
pub const FLUSH_ATTEMPTS: usize = 8;
/// How many times an inode-named namespace change is resolved again after its fence
/// failed (the directory moved under it).
const FENCE_ATTEMPTS: usize = 8;
/// How many invalidations a slow receiver may fall behind before it lags.
const INVALIDATION_BUFFER: usize = 4096;
/// The largest file a write at an offset may make: 1 TiB.
const MAX_FILE_SIZE: u64 = 1 << 40;

/// Unstable extents of one file: start offset → bytes, non-overlapping.
#[derive(Default)]
struct Dirty {
    extents: BTreeMap<u64, Bytes>,
    bytes: usize,
}

impl Dirty {
    /// Adds an extent; newer bytes replace older ones where they overlap.
    fn insert(&mut self, offset: u64, data: Bytes) {
        let end = offset + data.len() as u64;
        // Cut every extent overlapping [offset, end) down to what lies outside it.
        let overlapping: Vec<u64> = self
            .extents
            .range(..end)
            .filter(|(s, b)| **s + b.len() as u64 > offset)
            .map(|(s, _)| *s)
            .collect();
        for start in overlapping {
            let old = self.extents.remove(&start).unwrap_or_default();
            self.bytes -= old.len();
            let old_end = start + old.len() as u64;
            if start < offset {
                let keep = old.slice(..(offset - start) as usize);
                self.bytes += keep.len();
                self.extents.insert(start, keep);
            }
            if old_end > end {
                let keep = old.slice((end - start) as usize..);
                self.bytes += keep.len();
                self.extents.insert(end, keep);
            }
        }
        self.bytes += data.len();
        self.extents.insert(offset, data);
    }

    fn end(&self) -> u64 {
        self.extents
            .iter()
            .next_back()
            .map_or(0, |(s, b)| s + b.len() as u64)
    }
}

#[derive(Default)]
struct Unstable {
    files: HashMap<Ino, Dirty>,
    bytes: usize,
}

/// The node's file service. Create one per process ([`NodeFiles::new`]) and share it.
pub struct NodeFiles {
    node: Arc<NodeShared>,
    events: broadcast::Sender<Invalidation>,
    verifier: [u8; 8],
    unstable: Mutex<Unstable>,
    /// One flush per file at a time on this node.
    flush_locks: Mutex<HashMap<Ino, Arc<tokio::sync::Mutex<()>>>>,
    forward: tokio::task::JoinHandle<()>,
}

impl Drop for NodeFiles {
    fn drop(&mut self) {
        self.forward.abort();
    }
}

impl NodeFiles {
    /// The file service of `node`. Starts a task that turns every directory change this
    /// node's replica applies into invalidations (must run inside the node's runtime).
    pub fn new(node: Arc<NodeShared>) -> Arc<NodeFiles> {
        let events = broadcast::channel(INVALIDATION_BUFFER).0;
        let forward = tokio::spawn(forward_changes(node.db.dir_changes(), events.clone()));
        // A fresh value per process incarnation: unstable writes die with the process.
        let verifier = (ObjectId::random().0 as u64).to_be_bytes();
        Arc::new(NodeFiles {
            node,
            events,
            verifier,
            unstable: Mutex::new(Unstable::default()),
            flush_locks: Mutex::new(HashMap::new()),
            forward,
        })
    }

    /// The counters the caches stacked over this service count into (`Cached::
    /// with_counters`): the node shows them as metrics and in `status`.
    pub fn cache_counters(&self) -> Arc<keel_fs::cache::CacheCounters> {
        self.node.metrics.gateway_cache.clone()
    }

    fn emit(&self, inv: Invalidation) {
        let _ = self.events.send(inv);
    }

    /// The read barrier, as the native API runs it; `Unavailable` when it cannot be had.
    async fn barrier(&self, what: &str) -> FsResult<()> {
        crate::gateway::api::barrier_for_change(&self.node, what)
            .await
            .map_err(fs_error)
    }

    fn read_ns<R>(&self, f: impl FnOnce(&Namespace) -> R) -> R {
        self.node.db.read_dir(f)
    }

    /// A directory command through the leader; the reply or the mapped error.
    async fn command(&self, cmd: DirCommand) -> Result<DirReply, DataError> {
        Ok(self.node.write_dir(cmd).await??)
    }

    fn attr_of(&self, inode: &Inode) -> FsResult<Attr> {
        let attr = self.read_ns(|ns| to_attr(ns, inode))?;
        Ok(self.with_unstable(attr))
    }

    /// The attributes of an inode a command replied with. The reply comes from the
    /// leader: this node's replica may not have applied it yet (the volume root is
    /// read there), so it is brought up to date first if needed.
    async fn reply_attr(&self, inode: &Inode) -> FsResult<Attr> {
        if let Ok(attr) = self.attr_of(inode) {
            return Ok(attr);
        }
        self.barrier("reading attributes").await?;
        self.attr_of(inode)
    }

    /// The attributes as this node's unstable writes make them look.
    fn with_unstable(&self, mut attr: Attr) -> Attr {
        let unstable = self.unstable.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(d) = unstable.files.get(&attr.ino) {
            attr.size = attr.size.max(d.end());
            attr.md5 = None;
        }
        attr
    }

    /// The attributes of `ino` on the local replica (after a barrier).
    fn local_attr(&self, ino: Ino) -> FsResult<Attr> {
        let attr = self.read_ns(|ns| {
            let inode = ns.getattr(ino).map_err(|_| FsError::Stale)?;
            to_attr(ns, &inode)
        })?;
        Ok(self.with_unstable(attr))
    }

    /// The volume and path of a directory inode: `Stale` if gone, `NotDir` if a file.
    fn dir_path(&self, dir: Ino) -> FsResult<(String, String)> {
        self.read_ns(|ns| {
            let inode = ns.getattr(dir).map_err(|_| FsError::Stale)?;
            if !inode.is_dir() {
                return Err(FsError::NotDir);
            }
            ns.path_of(dir).map_err(|_| FsError::Stale)
        })
    }

    /// Runs a namespace change named by inodes: `make` resolves (on the local replica,
    /// after a barrier) and returns the fenced command; a fence that fails means the
    /// tree moved between the resolution and the commit, so it is resolved again.
    async fn fenced(
        &self,
        what: &str,
        mut make: impl FnMut(&Self) -> FsResult<Fenced>,
    ) -> FsResult<DirReply> {
        for _ in 0..FENCE_ATTEMPTS {
            self.barrier(what).await?;
            let cmd = match make(self)? {
                Fenced::Done(reply) => return Ok(reply),
                Fenced::Run(cmd) => cmd,
            };
            match self.command(cmd).await {
                Err(DataError::Dir {
                    error: DirError::Moved { .. },
                }) => continue,
                Err(e) => return Err(fs_error(e)),
                Ok(reply) => {
                    if let DirReply::Freed { freed, .. } = &reply {
                        files::delete_objects(&self.node, freed.clone());
                    }
                    return Ok(reply);
                }
            }
        }
        Err(FsError::Unavailable(format!(
            "{what}: the directory kept changing under it"
        )))
    }

    fn flush_lock(&self, ino: Ino) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.flush_locks.lock().unwrap_or_else(|p| p.into_inner());
        locks.entry(ino).or_default().clone()
    }

    /// Makes every buffered write to `ino` durable and committed.
    async fn flush(&self, ino: Ino) -> FsResult<()> {
        let lock = self.flush_lock(ino);
        let _held = lock.lock().await;
        let taken = {
            let mut u = self.unstable.lock().unwrap_or_else(|p| p.into_inner());
            let d = u.files.remove(&ino);
            if let Some(d) = &d {
                u.bytes -= d.bytes;
            }
            d
        };
        let Some(dirty) = taken else {
            return Ok(());
        };
        let result = self.flush_extents(ino, &dirty).await;
        if let Err(e) = &result {
            // Keep the bytes for a retry only when a retry can succeed; a final error
            // (the file is gone, no space...) was answered, and the bytes with it.
            if matches!(e, FsError::Unavailable(_)) {
                let mut u = self.unstable.lock().unwrap_or_else(|p| p.into_inner());
                let mut back = dirty;
                if let Some(newer) = u.files.remove(&ino) {
                    u.bytes -= newer.bytes;
                    for (s, b) in newer.extents {
                        back.insert(s, b);
                    }
                }
                u.bytes += back.bytes;
                u.files.insert(ino, back);
            }
        }
        {
            let mut locks = self.flush_locks.lock().unwrap_or_else(|p| p.into_inner());
            if Arc::strong_count(&lock) <= 2 {
                locks.remove(&ino);
            }
        }
        result
    }

    /// Copy-on-write of every chunk the extents touch, then one compare-and-swap.
    async fn flush_extents(&self, ino: Ino, dirty: &Dirty) -> FsResult<()> {
        for _ in 0..FLUSH_ATTEMPTS {
            self.barrier("a write").await?;
            let (volume, chunk_size, durability, inode) = self.read_ns(|ns| {
                let inode = ns.getattr(ino).map_err(|_| FsError::Stale)?;
                if inode.is_dir() {
                    return Err(FsError::IsDir);
                }
                let volume = ns.volume_of(ino).ok_or(FsError::Stale)?;
                let v = ns.volume(&volume).ok_or(FsError::Stale)?;
                let durability = match v.replication {
                    Replication::Sync => Durability::AllInSync,
                    Replication::Async => Durability::LocalSite,
                };
                Ok((volume, v.chunk_size, durability, inode))
            })?;
            // The chunks the extents touch, with the pieces landing in each.
            let mut touched: BTreeMap<u64, Vec<(u64, Bytes)>> = BTreeMap::new();
            for (start, data) in &dirty.extents {
                let mut at = *start;
                let end = start + data.len() as u64;
                while at < end {
                    let index = at / chunk_size;
                    let chunk_end = ((index + 1) * chunk_size).min(end);
                    let piece = data.slice((at - start) as usize..(chunk_end - start) as usize);
                    touched
                        .entry(index)
                        .or_default()
                        .push((at - index * chunk_size, piece));
                    at = chunk_end;
                }
            }
            let first_new = inode.chunks.len() as u64;
            let mut work: Vec<ChunkWork> = Vec::new();
            if let Some((&last, _)) = touched.iter().next_back() {
                // Fill a gap below the touched chunks with one-byte zero chunks.
                for index in first_new..last {
                    if !touched.contains_key(&index) {
                        work.push((index, None, vec![(0, Bytes::from_static(&[0]))]));
                    }
                }
            }
            for (index, pieces) in touched {
                work.push((index, inode.chunks.get(index as usize).copied(), pieces));
            }
            work.sort_by_key(|w| w.0);
            let new_size = dirty.end().max(inode.size);
            let node = &self.node;
            let written: Vec<Result<ChunkChange, DataError>> =
                futures::stream::iter(work.into_iter().map(|(index, old, pieces)| async move {
                    let chunk = write_chunk(node, old, &pieces, durability).await?;
                    Ok(ChunkChange {
                        index,
                        expect: old,
                        chunk,
                    })
                }))
                .buffered(files::PARALLEL_CHUNKS)
                .collect()
                .await;
            let ours: Vec<ObjectId> = written
                .iter()
                .filter_map(|r| r.as_ref().ok().map(|c| c.chunk.object))
                .collect();
            let changes: Result<Vec<ChunkChange>, DataError> = written.into_iter().collect();
            let changes = match changes {
                Ok(c) => c,
                Err(e) => {
                    files::delete_objects(&self.node, ours);
                    return Err(fs_error(e));
                }
            };
            let cmd = DirCommand::WriteChunks {
                volume,
                ino,
                changes,
                size: new_size,
                at: now_ms(),
                token: None,
            };
            match self.command(cmd).await {
                Ok(DirReply::Freed { freed, .. }) => {
                    files::delete_objects(&self.node, freed);
                    self.emit(Invalidation::Inode(ino));
                    return Ok(());
                }
                Ok(other) => {
                    return Err(FsError::Io(format!("unexpected directory reply {other:?}")))
                }
                Err(DataError::Dir {
                    error: DirError::Moved { .. },
                }) => {
                    // The list changed since we read it: nothing was committed.
                    files::delete_objects(&self.node, ours);
                    continue;
                }
                Err(DataError::Dir {
                    error: DirError::NotFound { .. },
                }) => {
                    files::delete_objects(&self.node, ours);
                    return Err(FsError::Stale);
                }
                Err(e @ DataError::Dir { .. }) => {
                    files::delete_objects(&self.node, ours);
                    return Err(fs_error(e));
                }
                // The commit's fate is unknown: keep the objects (the orphan sweep
                // collects them if it did not commit).
                Err(e) => return Err(fs_error(e)),
            }
        }
        Err(FsError::Unavailable(format!(
            "a write to inode {ino}: its chunk list kept changing"
        )))
    }
}

/// Pieces landing in one chunk: `(offset within the chunk, bytes)`.
type Pieces = Vec<(u64, Bytes)>;
/// One chunk to write: its index, the chunk read there, the pieces landing in it.
type ChunkWork = (u64, Option<ChunkRef>, Pieces);

/// What a fenced operation's resolution decided.
enum Fenced {
    /// Nothing to change: the answer.
    Done(DirReply),
    /// The command to commit.
    Run(DirCommand),
}

/// Writes one chunk's new content as a new object: the old chunk's bytes (as far as
/// the pieces do not cover them) overlaid with the pieces (offsets within the chunk).
async fn write_chunk(
    node: &Arc<NodeShared>,
    old: Option<ChunkRef>,
    pieces: &[(u64, Bytes)],
    durability: Durability,
) -> Result<ChunkRef, DataError> {
    let old_len = old.map_or(0, |c| c.len);
    let len = pieces
        .iter()
        .map(|(o, b)| o + b.len() as u64)
        .max()
        .unwrap_or(0)
        .max(old_len);
    let mut buf = BytesMut::zeroed(len as usize);
    if let Some(c) = old {
        let covered = covers(pieces, c.len);
        if !covered {
            let (data, _, _) = locator::read(node, c.object, 0, c.len).await?;
            let n = data.len().min(c.len as usize);
            buf[..n].copy_from_slice(&data[..n]);
        }
    }
    for (o, b) in pieces {
        buf[*o as usize..*o as usize + b.len()].copy_from_slice(b);
    }
    let id = ObjectId::random();
    locator::write(node, id, WriteOp::Put(buf.freeze()), durability).await?;
    Ok(ChunkRef { object: id, len })
}

/// Whether the pieces (sorted or not) cover `[0, len)` whole.
fn covers(pieces: &[(u64, Bytes)], len: u64) -> bool {
    let mut spans: Vec<(u64, u64)> = pieces
        .iter()
        .map(|(o, b)| (*o, o + b.len() as u64))
        .collect();
    spans.sort();
    let mut reach = 0;
    for (s, e) in spans {
        if s > reach {
            return false;
        }
        reach = reach.max(e);
    }
    reach >= len
}

/// Turns the confdb's announcements of applied directory changes into invalidations.
async fn forward_changes(
    mut rx: broadcast::Receiver<Arc<keel_confdb::DirApplied>>,
    tx: broadcast::Sender<Invalidation>,
) {
    use keel_confdb::DirApplied;
    loop {
        match rx.recv().await {
            Ok(applied) => match &*applied {
                DirApplied::Everything => {
                    let _ = tx.send(Invalidation::All);
                }
                DirApplied::Changed {
                    volumes,
                    inodes,
                    dirs,
                } => {
                    for v in volumes {
                        let _ = tx.send(Invalidation::Volume(v.clone()));
                    }
                    for i in inodes {
                        let _ = tx.send(Invalidation::Inode(*i));
                    }
                    for d in dirs {
                        let _ = tx.send(Invalidation::Entries(*d));
                    }
                }
            },
            Err(broadcast::error::RecvError::Lagged(_)) => {
                let _ = tx.send(Invalidation::All);
            }
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}

/// An inode as a gateway sees it.
fn to_attr(ns: &Namespace, inode: &Inode) -> FsResult<Attr> {
    let volume_root = ns.root_of(inode.ino).ok_or(FsError::Stale)?;
    Ok(Attr {
        ino: inode.ino,
        volume_root,
        kind: if inode.is_dir() {
            Kind::Dir
        } else {
            Kind::File
        },
        size: inode.size,
        mode: inode.mode,
        uid: inode.uid,
        gid: inode.gid,
        nlink: inode.nlink,
        atime: inode.atime,
        mtime: inode.mtime,
        ctime: inode.ctime,
        parent: inode.parent,
        generation: inode.generation,
        md5: inode.md5,
        meta: inode.meta.clone(),
    })
}

fn volume_info(v: &keel_dir::Volume) -> VolumeInfo {
    VolumeInfo {
        name: v.name.clone(),
        root: v.root,
        chunk_size: v.chunk_size,
        created_at: v.created_at,
    }
}

/// The directory's refusal as a gateway sees it.
pub fn dir_error(e: DirError) -> FsError {
    match e {
        DirError::NotFound { .. } => FsError::NotFound,
        DirError::Exists { .. } => FsError::Exists,
        DirError::NotDir { .. } => FsError::NotDir,
        DirError::IsDir { .. } => FsError::IsDir,
        DirError::NotEmpty { .. } => FsError::NotEmpty,
        e @ DirError::InvalidName { .. } => FsError::InvalidName(e.to_string()),
        e @ DirError::InvalidArgument { .. } => FsError::Invalid(e.to_string()),
        DirError::NoVolume { volume } => FsError::NoVolume(volume),
        // Retried inside; one that escapes is a race that kept losing.
        e @ DirError::Moved { .. } => FsError::Unavailable(e.to_string()),
    }
}

/// A data-path error as a gateway sees it: `Unavailable` only for what a retry (here
/// or on another node) can cure — no control plane, no Primary or lease right now, a
/// failover under way.
pub fn fs_error(e: DataError) -> FsError {
    use keel_store::StoreError;
    match e {
        DataError::Dir { error } => dir_error(error),
        DataError::Store { error } => match error {
            StoreError::NoSpace { .. } => FsError::NoSpace(error.to_string()),
            StoreError::TooLarge { .. } => FsError::TooLarge(error.to_string()),
            StoreError::StaleEpoch { .. } | StoreError::OlderVersion { .. } => {
                FsError::Unavailable(error.to_string())
            }
            other => FsError::Io(other.to_string()),
        },
        e @ (DataError::NotPrimary { .. }
        | DataError::NoLease { .. }
        | DataError::InSyncShrinkFailed { .. }
        | DataError::StoreMismatch { .. }
        | DataError::NoControlPlane { .. }
        | DataError::Unavailable { .. }) => FsError::Unavailable(e.to_string()),
        e @ DataError::NoLayout => FsError::Io(e.to_string()),
        e @ DataError::PastEnd { .. } => FsError::Invalid(e.to_string()),
        DataError::BadRequest { reason } => FsError::Invalid(reason),
        e @ DataError::Forbidden => FsError::Denied(e.to_string()),
        e @ DataError::Internal { .. } => FsError::Io(e.to_string()),
    }
}

fn check_name(name: &str) -> FsResult<()> {
    keel_dir::validate_name(name).map_err(|r| FsError::InvalidName(format!("{name:?}: {r}")))
}

/// `dir` + `/` + `name` for a directory path as [`Namespace::path_of`] gives it.
fn child_path(dir: &str, name: &str) -> String {
    format!("{}/{}", dir.trim_end_matches('/'), name)
}

/// An absolute path from a gateway's relative one (`""` is the root).
fn abs(path: &str) -> String {
    format!("/{}", path.trim_start_matches('/'))
}

fn guarded(dirs: &[(&str, Ino)], then: DirCommand) -> DirCommand {
    DirCommand::Expect {
        expect: dirs
            .iter()
            .map(|(path, ino)| Expected {
                path: path.to_string(),
                ino: *ino,
            })
            .collect(),
        then: Box::new(then),
    }
}

#[async_trait]
impl FileService for NodeFiles {
    async fn volumes(&self) -> FsResult<Vec<VolumeInfo>> {
        self.barrier("listing volumes").await?;
        Ok(self.read_ns(|ns| ns.volumes().map(volume_info).collect()))
    }

    async fn create_volume(&self, name: &str) -> FsResult<VolumeInfo> {
        self.barrier("creating a volume").await?;
        if let Some(v) = self.read_ns(|ns| ns.volume(name).map(volume_info)) {
            return Ok(v);
        }
        let reply = self
            .command(DirCommand::CreateVolume {
                name: name.to_string(),
                chunk_size: None,
                replication: Replication::Sync,
                at: now_ms(),
            })
            .await
            .map_err(fs_error)?;
        self.emit(Invalidation::Volume(name.to_string()));
        match reply {
            DirReply::Volume(v) => Ok(volume_info(&v)),
            other => Err(FsError::Io(format!("unexpected directory reply {other:?}"))),
        }
    }

    async fn delete_volume(&self, name: &str) -> FsResult<()> {
        self.barrier("deleting a volume").await?;
        self.command(DirCommand::DeleteVolume {
            name: name.to_string(),
            at: now_ms(),
        })
        .await
        .map_err(fs_error)?;
        self.emit(Invalidation::Volume(name.to_string()));
        Ok(())
    }

    async fn getattr(&self, ino: Ino) -> FsResult<Attr> {
        self.barrier("reading attributes").await?;
        self.local_attr(ino)
    }

    async fn lookup(&self, dir: Ino, name: &str) -> FsResult<Attr> {
        self.barrier("a lookup").await?;
        if name == "." {
            return self.local_attr(dir);
        }
        let inode = self.read_ns(|ns| {
            let d = ns.getattr(dir).map_err(|_| FsError::Stale)?;
            if !d.is_dir() {
                return Err(FsError::NotDir);
            }
            if name == ".." {
                return ns.getattr(d.parent).map_err(|_| FsError::Stale);
            }
            check_name(name)?;
            ns.child_inode(dir, name).map_err(dir_error)
        })?;
        self.attr_of(&inode)
    }

    async fn resolve(&self, volume: &str, path: &str) -> FsResult<Attr> {
        self.barrier("a lookup").await?;
        let inode = self.read_ns(|ns| ns.lookup(volume, &abs(path)).map_err(dir_error))?;
        self.attr_of(&inode)
    }

    async fn setattr(&self, ino: Ino, change: SetAttr) -> FsResult<Attr> {
        if change.size.is_some() {
            // A truncation comes after the writes before it.
            self.flush(ino).await?;
        }
        let reply = self
            .fenced("changing attributes", |me| {
                let (volume, path) =
                    me.read_ns(|ns| ns.path_of(ino).map_err(|_| FsError::Stale))?;
                let cmd = DirCommand::SetAttr {
                    volume,
                    path: path.clone(),
                    mode: change.mode,
                    uid: change.uid,
                    gid: change.gid,
                    size: change.size,
                    atime: change.atime,
                    mtime: change.mtime,
                    at: now_ms(),
                    token: None,
                };
                Ok(Fenced::Run(guarded(&[(&path, ino)], cmd)))
            })
            .await?;
        self.emit(Invalidation::Inode(ino));
        match reply {
            DirReply::Freed {
                inode: Some(inode), ..
            } => self.reply_attr(&inode).await,
            _ => {
                self.barrier("reading attributes").await?;
                self.local_attr(ino)
            }
        }
    }

    async fn read(&self, ino: Ino, offset: u64, len: u32) -> FsResult<(Bytes, bool)> {
        // A read sees this node's unstable writes: they are flushed first (and a
        // flush under way is waited for).
        self.flush(ino).await?;
        self.barrier("a read").await?;
        let (inode, chunk_size) = self.read_ns(|ns| {
            let inode = ns.getattr(ino).map_err(|_| FsError::Stale)?;
            if inode.is_dir() {
                return Err(FsError::IsDir);
            }
            let volume = ns.volume_of(ino).ok_or(FsError::Stale)?;
            let chunk_size = ns.volume(&volume).ok_or(FsError::Stale)?.chunk_size;
            Ok((inode, chunk_size))
        })?;
        let size = inode.size;
        let start = offset.min(size);
        let end = offset.saturating_add(len as u64).min(size);
        let pieces: Vec<Bytes> =
            files::read_range(self.node.clone(), inode, chunk_size, start, end)
                .try_collect()
                .await
                .map_err(fs_error)?;
        Ok((Bytes::from(pieces.concat()), end == size))
    }

    async fn write(
        &self,
        ino: Ino,
        offset: u64,
        data: Bytes,
        stability: Stability,
    ) -> FsResult<WriteDone> {
        offset
            .checked_add(data.len() as u64)
            .filter(|e| *e <= MAX_FILE_SIZE)
            .ok_or_else(|| FsError::TooLarge("a file of over 1 TiB".into()))?;
        self.barrier("a write").await?;
        let attr = self.local_attr(ino)?;
        if attr.is_dir() {
            return Err(FsError::IsDir);
        }
        if data.is_empty() {
            return Ok(WriteDone { attr, stability });
        }
        let over_budget = {
            let mut u = self.unstable.lock().unwrap_or_else(|p| p.into_inner());
            let before = u.files.get(&ino).map_or(0, |d| d.bytes);
            let d = u.files.entry(ino).or_default();
            d.insert(offset, data);
            let after = d.bytes;
            u.bytes = u.bytes + after - before;
            u.bytes > UNSTABLE_BUDGET
        };
        self.emit(Invalidation::Inode(ino));
        if stability == Stability::FileSync || over_budget {
            self.flush(ino).await?;
        }
        if over_budget {
            // Still over (other files' writes): flush them all.
            let others: Vec<Ino> = {
                let u = self.unstable.lock().unwrap_or_else(|p| p.into_inner());
                if u.bytes > UNSTABLE_BUDGET {
                    u.files.keys().copied().collect()
                } else {
                    vec![]
                }
            };
            for other in others {
                self.flush(other).await?;
            }
        }
        if stability == Stability::FileSync || over_budget {
            // The commit came from the leader: see it on this replica.
            self.barrier("a write").await?;
        }
        let attr = self.local_attr(ino)?;
        let stability = if stability == Stability::FileSync || over_budget {
            Stability::FileSync
        } else {
            stability
        };
        Ok(WriteDone { attr, stability })
    }

    async fn commit(&self, ino: Ino) -> FsResult<()> {
        self.flush(ino).await?;
        self.barrier("a commit").await?;
        self.read_ns(|ns| ns.getattr(ino).map(|_| ()).map_err(|_| FsError::Stale))
    }

    fn write_verifier(&self) -> [u8; 8] {
        self.verifier
    }

    async fn put_file(
        &self,
        volume: &str,
        path: &str,
        body: ByteStream,
        opts: PutOptions,
    ) -> FsResult<Attr> {
        let args = PutArgs {
            token: opts.token,
            mode: opts.mode,
            uid: opts.uid,
            gid: opts.gid,
            meta: opts.meta,
        };
        self.barrier("a put").await?;
        if self.read_ns(|ns| ns.volume(volume).is_none()) {
            // The native API creates its default volume on first use; a gateway names
            // volumes that exist.
            return Err(FsError::NoVolume(volume.to_string()));
        }
        let inode = files::put_with(&self.node, volume, &abs(path), body, args)
            .await
            .map_err(fs_error)?;
        self.emit(Invalidation::Inode(inode.ino));
        self.emit(Invalidation::Entries(inode.parent));
        self.reply_attr(&inode).await
    }

    async fn create(&self, dir: Ino, name: &str, mode: u32, exclusive: bool) -> FsResult<Attr> {
        check_name(name)?;
        let reply = self
            .fenced("a create", |me| {
                let (volume, dir_path) = me.dir_path(dir)?;
                let existing = me.read_ns(|ns| ns.child_inode(dir, name).ok());
                if let Some(inode) = existing {
                    if exclusive {
                        return Err(FsError::Exists);
                    }
                    if inode.is_dir() {
                        return Err(FsError::IsDir);
                    }
                    return Ok(Fenced::Done(DirReply::Inode(inode)));
                }
                let path = child_path(&dir_path, name);
                let cmd = DirCommand::PutFile {
                    volume,
                    path: path.clone(),
                    size: 0,
                    chunks: vec![],
                    mode,
                    uid: 0,
                    gid: 0,
                    create_parents: false,
                    at: now_ms(),
                    token: None,
                    md5: None,
                    meta: BTreeMap::new(),
                };
                // Inode 0 names no inode: the name must still be free.
                Ok(Fenced::Run(guarded(&[(&dir_path, dir), (&path, 0)], cmd)))
            })
            .await?;
        self.emit(Invalidation::Entries(dir));
        match reply {
            DirReply::Inode(inode)
            | DirReply::Freed {
                inode: Some(inode), ..
            } => self.reply_attr(&inode).await,
            other => Err(FsError::Io(format!("unexpected directory reply {other:?}"))),
        }
    }

    async fn mkdir(&self, dir: Ino, name: &str, mode: u32) -> FsResult<Attr> {
        check_name(name)?;
        let reply = self
            .fenced("a mkdir", |me| {
                let (volume, dir_path) = me.dir_path(dir)?;
                let cmd = DirCommand::Mkdir {
                    volume,
                    path: child_path(&dir_path, name),
                    mode,
                    uid: 0,
                    gid: 0,
                    parents: false,
                    at: now_ms(),
                    token: None,
                };
                Ok(Fenced::Run(guarded(&[(&dir_path, dir)], cmd)))
            })
            .await?;
        self.emit(Invalidation::Entries(dir));
        match reply {
            DirReply::Inode(inode) => self.reply_attr(&inode).await,
            other => Err(FsError::Io(format!("unexpected directory reply {other:?}"))),
        }
    }

    async fn remove(&self, dir: Ino, name: &str) -> FsResult<()> {
        check_name(name)?;
        let mut gone = None;
        self.fenced("a remove", |me| {
            let (volume, dir_path) = me.dir_path(dir)?;
            gone = me.read_ns(|ns| ns.child_inode(dir, name).ok().map(|i| i.ino));
            let cmd = DirCommand::Unlink {
                volume,
                path: child_path(&dir_path, name),
                at: now_ms(),
                token: None,
            };
            Ok(Fenced::Run(guarded(&[(&dir_path, dir)], cmd)))
        })
        .await?;
        if let Some(ino) = gone {
            // Unstable writes to a removed file have nowhere to go.
            let mut u = self.unstable.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(d) = u.files.remove(&ino) {
                u.bytes -= d.bytes;
            }
            drop(u);
            self.emit(Invalidation::Inode(ino));
        }
        self.emit(Invalidation::Entries(dir));
        Ok(())
    }

    async fn rmdir(&self, dir: Ino, name: &str) -> FsResult<()> {
        check_name(name)?;
        self.fenced("an rmdir", |me| {
            let (volume, dir_path) = me.dir_path(dir)?;
            let cmd = DirCommand::Rmdir {
                volume,
                path: child_path(&dir_path, name),
                at: now_ms(),
                token: None,
            };
            Ok(Fenced::Run(guarded(&[(&dir_path, dir)], cmd)))
        })
        .await?;
        self.emit(Invalidation::Entries(dir));
        Ok(())
    }

    async fn rename(&self, from_dir: Ino, from: &str, to_dir: Ino, to: &str) -> FsResult<()> {
        check_name(from)?;
        check_name(to)?;
        self.fenced("a rename", |me| {
            let (volume, from_path) = me.dir_path(from_dir)?;
            let (to_volume, to_path) = me.dir_path(to_dir)?;
            if volume != to_volume {
                return Err(FsError::Invalid("a rename across volumes".into()));
            }
            let cmd = DirCommand::Rename {
                volume,
                from: child_path(&from_path, from),
                to: child_path(&to_path, to),
                at: now_ms(),
                token: None,
            };
            Ok(Fenced::Run(guarded(
                &[(&from_path, from_dir), (&to_path, to_dir)],
                cmd,
            )))
        })
        .await?;
        self.emit(Invalidation::Entries(from_dir));
        self.emit(Invalidation::Entries(to_dir));
        Ok(())
    }

    async fn readdir(&self, dir: Ino, after: Option<&str>, limit: usize) -> FsResult<Page> {
        self.barrier("a readdir").await?;
        let page = self.read_ns(|ns| {
            let d = ns.getattr(dir).map_err(|_| FsError::Stale)?;
            if !d.is_dir() {
                return Err(FsError::NotDir);
            }
            let (list, more) = ns.list(dir, after, limit).map_err(dir_error)?;
            let entries = list
                .into_iter()
                .map(|(name, inode)| {
                    Ok(DirEntry {
                        name,
                        attr: to_attr(ns, &inode)?,
                    })
                })
                .collect::<FsResult<Vec<_>>>()?;
            Ok(Page { entries, more })
        })?;
        Ok(Page {
            entries: page
                .entries
                .into_iter()
                .map(|e| DirEntry {
                    name: e.name,
                    attr: self.with_unstable(e.attr),
                })
                .collect(),
            more: page.more,
        })
    }

    fn invalidations(&self) -> broadcast::Receiver<Invalidation> {
        self.events.subscribe()
    }

    fn access_key(&self, id: &str) -> Option<AccessKey> {
        self.node.db.read(|s| s.credentials.keys.get(id).cloned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn extents(d: &Dirty) -> Vec<(u64, Vec<u8>)> {
        d.extents.iter().map(|(s, b)| (*s, b.to_vec())).collect()
    }

    #[test]
    fn newer_extents_replace_older_ones() {
        let mut d = Dirty::default();
        d.insert(0, Bytes::from_static(b"aaaaaaaa"));
        d.insert(2, Bytes::from_static(b"bb"));
        d.insert(7, Bytes::from_static(b"ccc"));
        assert_eq!(
            extents(&d),
            vec![
                (0, b"aa".to_vec()),
                (2, b"bb".to_vec()),
                (4, b"aaa".to_vec()),
                (7, b"ccc".to_vec())
            ]
        );
        assert_eq!((d.bytes, d.end()), (10, 10));
        d.insert(1, Bytes::from_static(b"dddddddd"));
        assert_eq!(
            extents(&d),
            vec![
                (0, b"a".to_vec()),
                (1, b"dddddddd".to_vec()),
                (9, b"c".to_vec())
            ]
        );
        assert_eq!(d.bytes, 10);
    }

    #[test]
    fn coverage_of_a_chunk() {
        let p = |o: u64, n: usize| (o, Bytes::from(vec![1u8; n]));
        assert!(covers(&[p(0, 5), p(5, 5)], 10));
        assert!(covers(&[p(3, 7), p(0, 4)], 10));
        assert!(!covers(&[p(0, 4), p(5, 5)], 10));
        assert!(!covers(&[p(1, 20)], 10));
        assert!(covers(&[], 0));
    }

    #[test]
    fn errors_map_to_what_a_gateway_can_act_on() {
        let no_space = DataError::Store {
            error: keel_store::StoreError::NoSpace { needed: 1, free: 0 },
        };
        assert!(matches!(fs_error(no_space), FsError::NoSpace(_)));
        assert!(matches!(
            fs_error(DataError::NoControlPlane { what: "x".into() }),
            FsError::Unavailable(_)
        ));
        assert!(matches!(fs_error(DataError::NoLayout), FsError::Io(_)));
        assert_eq!(
            dir_error(DirError::NoVolume { volume: "v".into() }),
            FsError::NoVolume("v".into())
        );
        assert_eq!(
            fs_error(DataError::Dir {
                error: DirError::NotEmpty { path: "/d".into() }
            }),
            FsError::NotEmpty
        );
    }
}
