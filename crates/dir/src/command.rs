//! Commands: the only way the directory changes, and their replies. Each command is
//! one Raft log entry, names one volume, and is applied atomically (all of it or, on
//! error, nothing).
//!
//! Owns: the wire shapes of commands and replies. Must never: hold the logic of a
//! command (that lives in `ops/`).

use crate::{ChunkRef, DirError, Inode, Replication, Volume};
use keel_core::{ObjectId, UnixMillis};
use serde::{Deserialize, Serialize};

/// A change to the directory. Time (`at`) comes from the proposer so that every replica
/// applies the same change. `token`, when present, is an idempotency token: a command
/// whose token the namespace remembers is not applied again, its remembered reply is
/// returned (see [`crate::Remembered`]). On the wire a token is a string of 32 hex
/// digits.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum DirCommand {
    /// Create a volume and its root directory (mode 0755, owned by 0:0). Creating an
    /// existing volume with the same settings is Ok (it replies with the volume);
    /// with other settings it is `Exists`.
    CreateVolume {
        name: String,
        /// Defaults to [`crate::DEFAULT_CHUNK_SIZE`]; 4 KiB to 64 MiB ([`crate::MAX_CHUNK_SIZE`]).
        chunk_size: Option<u64>,
        replication: Replication,
        at: UnixMillis,
    },
    /// Create a directory. With `parents`, missing ancestors are created too (with
    /// the same mode and owner) and an existing directory is Ok.
    /// Replies [`DirReply::Inode`] with the directory.
    Mkdir {
        volume: String,
        path: String,
        mode: u32,
        uid: u32,
        gid: u32,
        parents: bool,
        at: UnixMillis,
        #[serde(default, with = "crate::tokens::optional_token")]
        token: Option<u128>,
    },
    /// Create a file, or replace an existing file's content (chunks, size, mtime,
    /// ctime; the generation grows by one) in one step. `mode`, `uid`, `gid` apply only to a new file;
    /// `create_parents` makes missing ancestors (mode 0755, owned by `uid:gid`).
    /// Replies [`DirReply::Freed`] with the file and the objects the replaced content
    /// used that the new content does not.
    PutFile {
        volume: String,
        path: String,
        size: u64,
        chunks: Vec<ChunkRef>,
        mode: u32,
        uid: u32,
        gid: u32,
        create_parents: bool,
        at: UnixMillis,
        #[serde(default, with = "crate::tokens::optional_token")]
        token: Option<u128>,
    },
    /// Remove a file. Replies [`DirReply::Freed`] (no inode) with its objects.
    Unlink {
        volume: String,
        path: String,
        at: UnixMillis,
        #[serde(default, with = "crate::tokens::optional_token")]
        token: Option<u128>,
    },
    /// Remove an empty directory (not a volume's root). Replies [`DirReply::Done`].
    Rmdir {
        volume: String,
        path: String,
        at: UnixMillis,
        #[serde(default, with = "crate::tokens::optional_token")]
        token: Option<u128>,
    },
    /// Move an entry within a volume, replacing a file by a file or an empty directory
    /// by a directory. Replies [`DirReply::Freed`] with the moved inode and the objects
    /// of a replaced file.
    Rename {
        volume: String,
        from: String,
        to: String,
        at: UnixMillis,
        #[serde(default, with = "crate::tokens::optional_token")]
        token: Option<u128>,
    },
    /// Change attributes. `size` (files only) truncates, dropping chunks past the new
    /// end and shortening the last one, or grows the file sparsely. Replies
    /// [`DirReply::Freed`] with the inode and the objects truncation dropped.
    SetAttr {
        volume: String,
        path: String,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<UnixMillis>,
        mtime: Option<UnixMillis>,
        at: UnixMillis,
        #[serde(default, with = "crate::tokens::optional_token")]
        token: Option<u128>,
    },
}

impl DirCommand {
    /// The volume the command is about (the unit of sharding, see [`crate::ShardMap`]).
    pub fn volume(&self) -> &str {
        match self {
            DirCommand::CreateVolume { name, .. } => name,
            DirCommand::Mkdir { volume, .. }
            | DirCommand::PutFile { volume, .. }
            | DirCommand::Unlink { volume, .. }
            | DirCommand::Rmdir { volume, .. }
            | DirCommand::Rename { volume, .. }
            | DirCommand::SetAttr { volume, .. } => volume,
        }
    }

    /// The idempotency token, if the command carries one.
    pub fn token(&self) -> Option<u128> {
        match self {
            DirCommand::CreateVolume { .. } => None,
            DirCommand::Mkdir { token, .. }
            | DirCommand::PutFile { token, .. }
            | DirCommand::Unlink { token, .. }
            | DirCommand::Rmdir { token, .. }
            | DirCommand::Rename { token, .. }
            | DirCommand::SetAttr { token, .. } => *token,
        }
    }
}

/// What a command that succeeded replies.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(tag = "reply", rename_all = "snake_case")]
pub enum DirReply {
    /// `CreateVolume`: the volume (as it was created, also on an idempotent repeat).
    Volume(Volume),
    /// `Mkdir`: the directory.
    Inode(Inode),
    /// `PutFile`, `Unlink`, `Rename`, `SetAttr`: the inode after the command (`None`
    /// when it is gone) and the objects no file references any more, sorted, for the
    /// caller to delete.
    Freed {
        inode: Option<Inode>,
        freed: Vec<ObjectId>,
    },
    /// `Rmdir`.
    Done,
}

/// A command's outcome, as replicated and as remembered for an idempotency token.
pub type DirResult = Result<DirReply, DirError>;
