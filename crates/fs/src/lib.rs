//! keel-fs: the one narrow interface between a node and its gateways.
//!
//! A gateway (NFS, S3, the native HTTP API) sees the cluster's files only through
//! [`FileService`]: volumes, lookups and attributes by cluster-wide inode id, reading
//! a range, writing at an offset (with NFS's stable/unstable distinction and a
//! commit), listing a directory page by page, creating, renaming, removing, putting a
//! whole file from a stream, and a stream of [`Invalidation`]s that caches follow.
//! The node implements it over the directory (Raft) and the locator (storage sets);
//! [`mem::MemFs`] implements it in memory for gateway unit tests.
//!
//! Owns: the shapes crossing that boundary ([`Attr`], [`FsError`], ...) and their
//! meaning. Must never: depend on the node, the directory's internals or the storage
//! role, so that a gateway compiles and is tested without a cluster.
//!
//! Ids. An inode id ([`Ino`]) is unique across every volume of the cluster and never
//! reused, so `(volume root, ino)` names a file for as long as it exists, on every
//! node and across restarts: gateways derive stable handles from it (NFS file
//! handles), never from a process start time.

pub mod cache;
pub mod mem;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub use keel_core::keys::{Access, AccessKey, Denied};

/// A cluster-wide inode id: unique across volumes, never reused.
pub type Ino = u64;
/// Milliseconds since the Unix epoch.
pub type UnixMillis = i64;

/// What an inode is.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    File,
    Dir,
}

/// A volume as a gateway sees it (an NFS export, an S3 bucket).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct VolumeInfo {
    pub name: String,
    /// The root directory's inode; also the volume's id in file handles.
    pub root: Ino,
    pub chunk_size: u64,
    pub created_at: UnixMillis,
}

/// An inode's attributes.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Attr {
    pub ino: Ino,
    /// The root inode of the volume holding it.
    pub volume_root: Ino,
    pub kind: Kind,
    /// Bytes; 0 for a directory.
    pub size: u64,
    /// Permission bits only (`& 0o7777`).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub nlink: u32,
    pub atime: UnixMillis,
    pub mtime: UnixMillis,
    pub ctime: UnixMillis,
    /// The directory holding it (a volume root is its own parent).
    pub parent: Ino,
    /// Grows on every change of a file's content; caches key data on
    /// `(ino, generation)`.
    pub generation: u64,
    /// The MD5 of the whole content when it was last written whole
    /// ([`FileService::put_file`]); `None` after a write at an offset or a truncate.
    /// S3 uses it as the ETag.
    pub md5: Option<[u8; 16]>,
    /// User metadata given with the last whole-file put (S3 `x-amz-meta-*`,
    /// `content-type`), as given. Empty for directories.
    pub meta: BTreeMap<String, String>,
}

impl Attr {
    pub fn is_dir(&self) -> bool {
        self.kind == Kind::Dir
    }
}

/// One directory entry with its attributes (READDIRPLUS, S3 listings).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct DirEntry {
    pub name: String,
    pub attr: Attr,
}

/// One page of a directory listing, in name order (bytewise).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Page {
    pub entries: Vec<DirEntry>,
    /// More entries follow the last one: ask again with `after` = its name.
    pub more: bool,
}

/// Attribute changes; `None` leaves a field as it is.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct SetAttr {
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    /// Files only: truncate or extend (sparse) to this size.
    pub size: Option<u64>,
    pub atime: Option<UnixMillis>,
    pub mtime: Option<UnixMillis>,
}

/// How durable a write at an offset must be before it is answered (NFSv3 `stable_how`).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stability {
    /// May be held by the serving node until [`FileService::commit`]; lost if that
    /// node dies before (the client sees a new [`FileService::write_verifier`] and
    /// writes again).
    Unstable,
    /// Durable on the storage set, and the file's size and chunk list committed in
    /// the directory, before the answer.
    FileSync,
}

/// What a write at an offset did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WriteDone {
    /// Attributes after the write (size grown if it wrote past the end).
    pub attr: Attr,
    /// How durable the bytes are now (at least what was asked).
    pub stability: Stability,
}

/// Options of a whole-file put.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PutOptions {
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// Stored with the file and returned in [`Attr::meta`].
    pub meta: BTreeMap<String, String>,
    /// An idempotency token: a retried put with the same token is applied once.
    pub token: Option<u128>,
}

impl Default for PutOptions {
    fn default() -> Self {
        PutOptions {
            mode: 0o644,
            uid: 0,
            gid: 0,
            meta: BTreeMap::new(),
            token: None,
        }
    }
}

/// A change a cache must forget. Emitted by the node for every directory change it
/// applies (whichever node made it), and for every write at an offset it serves.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum Invalidation {
    /// The inode's attributes (and, for a file, its content) changed.
    Inode(Ino),
    /// The directory's entries changed (an entry was added, removed or renamed).
    Entries(Ino),
    /// The volume was created or deleted.
    Volume(String),
    /// Anything may have changed (the stream lagged, or the node lost track): drop
    /// everything.
    All,
}

/// A stream of file bytes for a put.
pub type ByteStream = BoxStream<'static, Result<Bytes, std::io::Error>>;

/// Why a file operation failed. Gateways map each kind to their protocol's status
/// (NFS3ERR_*, S3 error codes, HTTP statuses); `Unavailable` means "try again, maybe
/// on another node", every other kind is final for that request.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum FsError {
    #[error("no such file or directory")]
    NotFound,
    #[error("no such volume {0:?}")]
    NoVolume(String),
    #[error("already exists")]
    Exists,
    #[error("not a directory")]
    NotDir,
    #[error("is a directory")]
    IsDir,
    #[error("directory not empty")]
    NotEmpty,
    /// The handle names a volume or inode that no longer exists in that form.
    #[error("stale handle")]
    Stale,
    #[error("invalid name: {0}")]
    InvalidName(String),
    #[error("invalid argument: {0}")]
    Invalid(String),
    #[error("too large: {0}")]
    TooLarge(String),
    #[error("no space left: {0}")]
    NoSpace(String),
    #[error("access denied: {0}")]
    Denied(String),
    /// The cluster cannot do it now (no quorum, no Primary, a timeout): retry.
    #[error("unavailable: {0}")]
    Unavailable(String),
    #[error("I/O error: {0}")]
    Io(String),
}

pub type FsResult<T> = Result<T, FsError>;

/// The file interface a node offers its gateways. Every call reads a directory that
/// is at least as new as every change acknowledged before the call began (the node
/// runs its read barrier), and every change is acknowledged only once committed.
#[async_trait]
pub trait FileService: Send + Sync + 'static {
    // ---- volumes ----
    async fn volumes(&self) -> FsResult<Vec<VolumeInfo>>;
    /// Creates a volume (idempotent for the same name); its root is mode 0755.
    async fn create_volume(&self, name: &str) -> FsResult<VolumeInfo>;
    /// Deletes an empty volume; `NotEmpty` otherwise.
    async fn delete_volume(&self, name: &str) -> FsResult<()>;

    // ---- lookups and attributes ----
    /// The attributes of an inode of any volume; `Stale` if it is gone.
    async fn getattr(&self, ino: Ino) -> FsResult<Attr>;
    /// One name in a directory.
    async fn lookup(&self, dir: Ino, name: &str) -> FsResult<Attr>;
    /// A `/`-separated path inside a volume (`""` is the root).
    async fn resolve(&self, volume: &str, path: &str) -> FsResult<Attr>;
    async fn setattr(&self, ino: Ino, change: SetAttr) -> FsResult<Attr>;

    // ---- content ----
    /// Up to `len` bytes from `offset`; the flag is true at the end of the file.
    async fn read(&self, ino: Ino, offset: u64, len: u32) -> FsResult<(Bytes, bool)>;
    /// Writes inside a file at an offset, growing it as needed.
    async fn write(
        &self,
        ino: Ino,
        offset: u64,
        data: Bytes,
        stability: Stability,
    ) -> FsResult<WriteDone>;
    /// Makes every unstable write to the file durable (NFS COMMIT).
    async fn commit(&self, ino: Ino) -> FsResult<()>;
    /// A value that changes whenever unstable writes may have been lost (the serving
    /// process restarted): NFS's write verifier.
    fn write_verifier(&self) -> [u8; 8];
    /// Writes a whole file from a stream and commits it atomically: readers see the
    /// old or the new content, never a mix. Missing parent directories are created.
    async fn put_file(
        &self,
        volume: &str,
        path: &str,
        body: ByteStream,
        opts: PutOptions,
    ) -> FsResult<Attr>;

    // ---- namespace ----
    /// Creates an empty file; with `exclusive`, `Exists` if the name is taken, else an
    /// existing file is returned as it is.
    async fn create(&self, dir: Ino, name: &str, mode: u32, exclusive: bool) -> FsResult<Attr>;
    async fn mkdir(&self, dir: Ino, name: &str, mode: u32) -> FsResult<Attr>;
    /// Removes a file.
    async fn remove(&self, dir: Ino, name: &str) -> FsResult<()>;
    /// Removes an empty directory.
    async fn rmdir(&self, dir: Ino, name: &str) -> FsResult<()>;
    /// Atomically moves an entry within a volume, replacing a file by a file or an
    /// empty directory by a directory.
    async fn rename(&self, from_dir: Ino, from: &str, to_dir: Ino, to: &str) -> FsResult<()>;
    /// Up to `limit` entries after the name `after` (exclusive), in name order.
    async fn readdir(&self, dir: Ino, after: Option<&str>, limit: usize) -> FsResult<Page>;

    // ---- caches and credentials ----
    /// Changes to forget, from now on. A receiver that lags must treat it as
    /// [`Invalidation::All`].
    fn invalidations(&self) -> tokio::sync::broadcast::Receiver<Invalidation>;
    /// The access key with this id, as the configuration database holds it (S3 SigV4
    /// needs its secret).
    fn access_key(&self, id: &str) -> Option<AccessKey>;
}

/// Joins a directory path and a name the way [`FileService::resolve`] reads paths.
pub fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_string()
    } else {
        format!("{}/{}", dir.trim_end_matches('/'), name)
    }
}
