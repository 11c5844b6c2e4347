//! What the native HTTP API answers, as JSON: a file's or directory's attributes, a
//! directory page, a volume, an error. Shared by the API and the client library.
//!
//! Owns the shapes only; must never carry behaviour beyond building them.

use keel_dir::{FileKind, Inode};
use serde::{Deserialize, Serialize};

/// What the API says about a file or directory.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct FileView {
    pub path: String,
    pub ino: u64,
    pub kind: String,
    pub size: u64,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: i64,
    pub ctime: i64,
    pub nlink: u32,
    pub chunks: usize,
    pub generation: u64,
    /// The directory replica that answered may lag (control plane out of reach).
    #[serde(default)]
    pub stale: bool,
    /// For a put: how the volume replicates (`sync`: durable on every in-sync
    /// replica; `async`: on the Primary's site, the other sites in the background).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replication: Option<String>,
}

impl FileView {
    pub(crate) fn of(path: &str, i: &Inode, stale: bool) -> FileView {
        FileView {
            path: path.to_string(),
            ino: i.ino,
            kind: if i.kind == FileKind::Dir {
                "dir"
            } else {
                "file"
            }
            .into(),
            size: i.size,
            mode: i.mode,
            uid: i.uid,
            gid: i.gid,
            mtime: i.mtime,
            ctime: i.ctime,
            nlink: i.nlink,
            chunks: i.chunks.len(),
            generation: i.generation,
            stale,
            replication: None,
        }
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct ListView {
    pub entries: Vec<EntryView>,
    pub next: Option<String>,
    #[serde(default)]
    pub stale: bool,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct EntryView {
    pub name: String,
    pub kind: String,
    pub size: u64,
    pub mtime: i64,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct ErrorView {
    pub code: String,
    pub message: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct VolumeView {
    pub name: String,
    pub chunk_size: u64,
    /// `sync` (every in-sync replica before acknowledging) or `async` (the Primary's
    /// site only; other sites in the background: a lost site can lose acknowledged
    /// writes).
    pub replication: String,
    pub created_at: i64,
}

impl VolumeView {
    pub(crate) fn of(v: &keel_dir::Volume) -> VolumeView {
        VolumeView {
            name: v.name.clone(),
            chunk_size: v.chunk_size,
            replication: match v.replication {
                keel_dir::Replication::Sync => "sync".into(),
                keel_dir::Replication::Async => "async".into(),
            },
            created_at: v.created_at,
        }
    }
}
