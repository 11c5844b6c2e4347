//! The object store: a node's local, durable, checksummed store of mutable objects.
//!
//! An object (identified by an [`ObjectId`] within one failover set) is a byte array in
//! its own data file; its record in the index (`index.rs`) holds its set, size,
//! version, one CRC32 per 64 KiB block, and whether it is a tombstone. Every operation
//! names the set: the same id in two sets is two independent objects here (two
//! records, two files, versions compared only within a set), so a rebalance between
//! two sets that share this node, or a catch-up of one of them, never touches the
//! other's copy.
//!
//! # Durability and ordering
//! Every mutation first changes the data file (positioned write or `set_len`), calls
//! `sync_data`, fsyncs the parent directory when it created or renamed a file, and only
//! then commits the index with `Durability::Immediate`; it returns after the commit.
//! A crash between the two leaves data newer than the index: the next read of a block
//! touched by the lost change fails with [`StoreError::Corrupt`], and the caller
//! repairs the object from a replica with [`ObjectStore::put`]. This is accepted: the
//! change was never acknowledged, and the replica's copy is at least as new.
//! `put` is atomic (temp file, fsync, rename, fsync directory, commit): after a crash
//! the object reads either all old or, once the index is committed, all new. `delete`
//! is the exception to data-first: it commits the tombstone first and unlinks the file
//! after, so a crash can only leave an orphan file (wasted space, never read, replaced
//! by the next write or put of that id, removed by `purge_tombstone`).
//!
//! # Full disks
//! An operation that would leave less than [`crate::SPACE_RESERVE`] free is refused
//! with [`StoreError::NoSpace`] before anything is written. A "disk full" from the OS
//! mid-operation is also reported as `NoSpace`: `put` then removes its temp file and
//! the old content is intact; a `write` at an offset cannot be undone and may have
//! changed part of the range (the index still holds the old CRCs, so those blocks read
//! as corrupt until repaired or rewritten).
//!
//! Owns: [`ObjectStore`], opening a store, and the read-only queries. The operations
//! live in `read.rs`, `write.rs` and `replace.rs`. Must never: check
//! epochs on behalf of a caller (callers call [`ObjectStore::check_epoch`]), or talk to
//! other nodes.

use crate::error::StoreError;
use crate::fail_points::FailPoints;
use crate::fence;
use crate::files::Layout;
use crate::index::Index;
use crate::locks::ObjectLocks;
use crate::meta::{ObjectMeta, ObjectStat};
use crate::space;
use keel_core::{Epoch, ObjectId, StoreId};
use std::path::{Path, PathBuf};

/// A node's local object store. Share it (`Arc`) between threads: every method takes
/// `&self`; changes to one object are serialized, different objects proceed in
/// parallel. All methods block on disk I/O: call them from `spawn_blocking`.
pub struct ObjectStore {
    pub(crate) dir: PathBuf,
    pub(crate) layout: Layout,
    pub(crate) index: Index,
    pub(crate) locks: ObjectLocks,
    pub(crate) fail_points: FailPoints,
    /// This store's identity and how it was found at open (see `identity.rs`).
    identity: (StoreId, crate::identity::Origin),
}

impl ObjectStore {
    /// Opens the store in `dir`, creating the directory, the index and the data
    /// directory if missing. Fails with [`StoreError::Format`] if the store on disk was
    /// written in a format this build does not read.
    pub fn open(dir: &Path) -> Result<ObjectStore, StoreError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| StoreError::io(format!("creating {}", dir.display()), &e))?;
        let identity = crate::identity::establish(dir)?;
        let index = Index::open(dir)?;
        let layout = Layout::create(dir)?;
        Ok(ObjectStore {
            dir: dir.to_path_buf(),
            layout,
            index,
            locks: ObjectLocks::new(),
            fail_points: FailPoints::new(),
            identity,
        })
    }

    /// This store's identity: made when the store was first created, new whenever the
    /// disk under it was wiped or replaced (see [`ObjectStore::origin`]).
    pub fn store_id(&self) -> StoreId {
        self.identity.0
    }

    /// How the identity was found when the store was opened: the same store, a first
    /// start, or a new store replacing one whose disk changed (its records dropped).
    pub fn origin(&self) -> &crate::identity::Origin {
        &self.identity.1
    }

    /// The object's size, version and set, or its tombstone (`deleted`); `None` if this
    /// store never had it in `set` (or the tombstone was purged).
    pub fn stat(&self, set: &str, id: ObjectId) -> Result<Option<ObjectStat>, StoreError> {
        let _shared = self.locks.read(id);
        Ok(self.index.get(set, id)?.map(|meta| meta.stat(id)))
    }

    /// Every object and tombstone of `set` with its version, in id order, for delta
    /// catch-up (compare two lists, copy only what differs). Paged: ids strictly after
    /// `after`, at most `limit` of them. Each page is a consistent snapshot; pages are
    /// not one snapshot together.
    pub fn list_set(
        &self,
        set: &str,
        after: Option<ObjectId>,
        limit: usize,
    ) -> Result<Vec<ObjectStat>, StoreError> {
        self.index.list_set(set, after, limit)
    }

    /// The highest epoch this store has accepted for `set` (epoch 0 if none).
    pub fn fence_epoch(&self, set: &str) -> Result<Epoch, StoreError> {
        fence::current(self.index.db(), set)
    }

    /// Epoch fencing: refuses `epoch` with [`StoreError::StaleEpoch`] if it is older
    /// than the recorded one; records it durably if newer. Survives restarts.
    pub fn check_epoch(&self, set: &str, epoch: Epoch) -> Result<(), StoreError> {
        fence::check(self.index.db(), set, epoch)
    }

    /// Bytes free (to an unprivileged writer) on the file system holding the store.
    pub fn free_bytes(&self) -> Result<u64, StoreError> {
        match self.fail_points.free_bytes() {
            Some(free) => Ok(free),
            None => space::free_bytes(&self.dir),
        }
    }

    /// This store's fail points (only with the `fail-points` feature, for tests).
    #[cfg(feature = "fail-points")]
    pub fn fail_points(&self) -> &FailPoints {
        &self.fail_points
    }

    /// The store's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The record of `id` in `set` if it is a live object; `NotFound` if missing or deleted.
    pub(crate) fn live_record(&self, set: &str, id: ObjectId) -> Result<ObjectMeta, StoreError> {
        match self.index.get(set, id)? {
            Some(meta) if !meta.deleted => Ok(meta),
            _ => Err(StoreError::NotFound { id }),
        }
    }

    /// Checks the free space for an operation adding `needed` bytes.
    pub(crate) fn admit_space(&self, needed: u64) -> Result<(), StoreError> {
        if needed == 0 {
            return Ok(());
        }
        space::check_space(needed, self.free_bytes()?)
    }
}
