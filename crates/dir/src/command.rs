//! Commands: the only way the directory changes, and their replies. Each command is
//! one Raft log entry, names one volume, and is applied atomically (all of it or, on
//! error, nothing).
//!
//! Owns: the wire shapes of commands and replies. Must never: hold the logic of a
//! command (that lives in `ops/`).

use crate::{ChunkRef, DirError, Ino, Inode, Replication, Volume};
use keel_core::{ObjectId, UnixMillis};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

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
        /// The MD5 of the whole content, stored with the file ([`Inode::md5`]).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        md5: Option<[u8; 16]>,
        /// User metadata, stored with the file, replacing what it had ([`Inode::meta`]).
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        meta: BTreeMap<String, String>,
    },
    /// Delete an empty volume and its root. Replies [`DirReply::Done`]; `NotEmpty` if
    /// the root holds entries, `NoVolume` if there is no such volume.
    DeleteVolume { name: String, at: UnixMillis },
    /// Replace some chunks of file `ino` (a write at an offset), each only if it is
    /// still the chunk the proposer read (`expect`, `None` for a chunk past the end of
    /// the list): so a write computed from a chunk list that a put, a truncation or
    /// another write replaced since is refused (`Moved`) and changes nothing, and an
    /// object the file stopped referencing is never made part of it again. New chunks
    /// may only extend the list densely (chunk `i` needs chunks `0..i`). The size
    /// becomes at least `size`; the generation grows by one; the MD5 is cleared; mtime
    /// and ctime become `at`. Replies [`DirReply::Freed`] with the file and the objects
    /// the replaced chunks held.
    WriteChunks {
        volume: String,
        ino: Ino,
        changes: Vec<ChunkChange>,
        size: u64,
        at: UnixMillis,
        #[serde(default, with = "crate::tokens::optional_token")]
        token: Option<u128>,
    },
    /// Apply `then` only if every `(path, ino)` in `expect` still holds: the path
    /// resolves to that inode (inode 0, never handed out: the path names nothing). This is how a proposer that names files by inode (NFS)
    /// runs a path command atomically: it resolves the inodes to paths on its replica,
    /// then the check and the change happen in one log entry. A failed check replies
    /// `Moved` and changes nothing. `then` may not itself be `Expect`, and names the
    /// volume (and carries the token) of the whole command.
    Expect {
        expect: Vec<Expected>,
        then: Box<DirCommand>,
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

/// One chunk replaced by [`DirCommand::WriteChunks`].
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkChange {
    /// The chunk's index in the file's chunk list.
    pub index: u64,
    /// What the proposer read there; `None`: the list was shorter.
    pub expect: Option<ChunkRef>,
    pub chunk: ChunkRef,
}

/// A path that must still name an inode, for [`DirCommand::Expect`].
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Expected {
    pub path: String,
    pub ino: Ino,
}

impl DirCommand {
    /// The volume the command is about (the unit of sharding, see [`crate::ShardMap`]).
    pub fn volume(&self) -> &str {
        match self {
            DirCommand::CreateVolume { name, .. } | DirCommand::DeleteVolume { name, .. } => name,
            DirCommand::Expect { then, .. } => then.volume(),
            DirCommand::Mkdir { volume, .. }
            | DirCommand::WriteChunks { volume, .. }
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
            DirCommand::CreateVolume { .. } | DirCommand::DeleteVolume { .. } => None,
            DirCommand::Expect { then, .. } => then.token(),
            DirCommand::Mkdir { token, .. }
            | DirCommand::WriteChunks { token, .. }
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
    /// `Rmdir`, `DeleteVolume`.
    Done,
}

/// A command's outcome, as replicated and as remembered for an idempotency token.
pub type DirResult = Result<DirReply, DirError>;
