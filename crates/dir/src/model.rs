//! The directory's data model: volumes, inodes and the chunks a file is made of.
//!
//! Owns: the shapes that are stored, replicated and returned to gateways. Must never:
//! hold behaviour beyond trivial accessors; every change goes through a command.

use keel_core::{ObjectId, UnixMillis};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// An inode number. Unique across all volumes of a namespace and never reused: the
/// namespace counts them up.
pub type Ino = u64;

/// The chunk size of a volume created without one: 4 MiB.
pub const DEFAULT_CHUNK_SIZE: u64 = 4 << 20;
/// The smallest chunk size a volume accepts: 4 KiB.
pub const MIN_CHUNK_SIZE: u64 = 4 << 10;
/// The largest chunk size a volume accepts: 64 MiB, the one limit the object store and
/// the internal RPC also use ([`keel_core::limits::MAX_CHUNK_SIZE`]).
pub const MAX_CHUNK_SIZE: u64 = keel_core::limits::MAX_CHUNK_SIZE;

/// How the chunks of a volume's files are replicated. The directory only records it;
/// the storage path acts on it.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Replication {
    /// A chunk write is acknowledged once every replica holds it.
    #[default]
    Sync,
    /// A chunk write is acknowledged by the Primary; the others catch up.
    Async,
}

/// A volume: a named tree of directories and files with its own root.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Volume {
    /// 1 to 64 of `[A-Za-z0-9_-]`.
    pub name: String,
    /// The root directory's inode.
    pub root: Ino,
    /// Bytes per chunk: chunk `i` of a file covers `[i * chunk_size, (i+1) * chunk_size)`.
    pub chunk_size: u64,
    pub replication: Replication,
    pub created_at: UnixMillis,
}

/// What an inode is.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum FileKind {
    File,
    Dir,
}

/// One chunk of a file: the object that holds it and how many bytes of it count.
/// Chunk `i` of a file covers bytes `[i * chunk_size, i * chunk_size + len)`; bytes of
/// the file not covered by any chunk (holes) read as zeros.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkRef {
    pub object: ObjectId,
    pub len: u64,
}

/// A file or a directory.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Inode {
    pub ino: Ino,
    pub kind: FileKind,
    /// Bytes; always 0 for a directory.
    pub size: u64,
    /// Permission bits only (`mode & 0o7777`); `kind` says the type.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub atime: UnixMillis,
    pub mtime: UnixMillis,
    pub ctime: UnixMillis,
    /// 1 for a file; 2 plus the number of subdirectories for a directory.
    pub nlink: u32,
    /// The directory holding this inode (kept up to date by renames); a volume's root
    /// is its own parent.
    pub parent: Ino,
    /// A file's chunks, in order (empty for a directory).
    pub chunks: Vec<ChunkRef>,
    /// Bumped on every change of a file's content (put, write or size change); 1 for a
    /// new file, 0 for a directory.
    pub generation: u64,
    /// The MD5 of the whole content, as the last whole-file put computed it; cleared by
    /// any other change of the content (a write at an offset, a size change). Absent in
    /// state stored before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub md5: Option<[u8; 16]>,
    /// User metadata given with the last whole-file put (S3 `x-amz-meta-*`,
    /// `content-type`), as given; kept by writes at an offset, replaced by the next put.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub meta: BTreeMap<String, String>,
}

impl Inode {
    pub(crate) fn new(
        ino: Ino,
        kind: FileKind,
        owner: Owner,
        parent: Ino,
        at: UnixMillis,
    ) -> Inode {
        Inode {
            ino,
            kind,
            size: 0,
            mode: owner.mode & 0o7777,
            uid: owner.uid,
            gid: owner.gid,
            atime: at,
            mtime: at,
            ctime: at,
            nlink: if kind == FileKind::Dir { 2 } else { 1 },
            parent,
            chunks: Vec::new(),
            generation: if kind == FileKind::File { 1 } else { 0 },
            md5: None,
            meta: BTreeMap::new(),
        }
    }

    pub fn is_dir(&self) -> bool {
        self.kind == FileKind::Dir
    }
}

/// The mode and owner a command gives the inodes it creates.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Owner {
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}
