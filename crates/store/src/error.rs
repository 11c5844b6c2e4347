//! The object store's one error enum.
//!
//! Owns: [`StoreError`], its stable codes ([`StoreError::code`]) and the folding of
//! I/O, redb and encoding errors into it. Every variant is plain data (strings, ids,
//! numbers) so that it can travel over RPC. Must never: decide policy (retry, repair
//! from a replica, fail over); callers do that from the variants.

use keel_core::{Epoch, ObjectId, SetId, Version};
use serde::{Deserialize, Serialize};

/// Why an object store operation did not happen. Serialized with its code as the
/// `"code"` field, e.g. `{"code":"not_found","id":"…"}`.
#[derive(thiserror::Error, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(tag = "code", rename_all = "snake_case")]
pub enum StoreError {
    /// The request carries an epoch older than one this store has accepted for the set.
    #[error("stale epoch for set {set:?}: request carries epoch {presented}, current epoch is {current}")]
    StaleEpoch {
        set: SetId,
        presented: Epoch,
        current: Epoch,
    },
    /// A block's bytes do not match its recorded CRC (or are missing). Repair the
    /// object from a replica with a `put`.
    #[error("object {id} is corrupt: block {block} does not match its checksum")]
    Corrupt { id: ObjectId, block: u64 },
    /// Not enough free space (after the reserve) for the bytes this operation adds.
    #[error("no space: the operation needs {needed} bytes, the file system has {free} free (of which {reserve} are held in reserve)", reserve = crate::SPACE_RESERVE)]
    NoSpace { needed: u64, free: u64 },
    /// The object does not exist here, or is deleted.
    #[error("object {id} not found")]
    NotFound { id: ObjectId },
    /// A read starts beyond the object's end.
    #[error("read of object {id} at offset {offset} is past its end ({size} bytes)")]
    PastEnd {
        id: ObjectId,
        offset: u64,
        size: u64,
    },
    /// The operation carries an older version than the stored one: a replay that
    /// must not roll the object back.
    #[error("object {id} is at version {current}; refusing older version {presented}")]
    OlderVersion {
        id: ObjectId,
        presented: Version,
        current: Version,
    },
    /// One write, read or offset is larger than this store handles in one operation.
    #[error("{requested} bytes requested; at most {max} are allowed in one operation")]
    TooLarge { requested: u64, max: u64 },
    /// `purge_tombstone` was asked to remove a live object.
    #[error("object {id} is not deleted; only a tombstone can be purged")]
    NotDeleted { id: ObjectId },
    /// The operating system refused a file operation.
    #[error("{context}: {message}")]
    Io { context: String, message: String },
    /// The index (redb) failed, or holds a record this build cannot decode.
    #[error("object index: {message}")]
    Index { message: String },
    /// The store on disk has a format this build does not read.
    #[error("object store on-disk format {found} is not supported (this build reads format {supported})")]
    Format { found: u64, supported: u64 },
}

impl StoreError {
    /// A stable, machine-readable code; the same string as the serialized `"code"`.
    pub fn code(&self) -> &'static str {
        match self {
            StoreError::StaleEpoch { .. } => "stale_epoch",
            StoreError::Corrupt { .. } => "corrupt",
            StoreError::NoSpace { .. } => "no_space",
            StoreError::NotFound { .. } => "not_found",
            StoreError::PastEnd { .. } => "past_end",
            StoreError::OlderVersion { .. } => "older_version",
            StoreError::TooLarge { .. } => "too_large",
            StoreError::NotDeleted { .. } => "not_deleted",
            StoreError::Io { .. } => "io",
            StoreError::Index { .. } => "index",
            StoreError::Format { .. } => "format",
        }
    }

    /// An I/O error, saying what was being done (`context`), e.g. "writing objects/ab/…".
    /// The caller maps a full disk with [`is_no_space`] first.
    pub(crate) fn io(context: impl Into<String>, e: &std::io::Error) -> StoreError {
        StoreError::Io {
            context: context.into(),
            message: e.to_string(),
        }
    }

    pub(crate) fn index(e: impl std::fmt::Display) -> StoreError {
        StoreError::Index {
            message: e.to_string(),
        }
    }
}

/// Whether the OS said the disk (or the quota) is full.
pub(crate) fn is_no_space(e: &std::io::Error) -> bool {
    use std::io::ErrorKind;
    matches!(e.kind(), ErrorKind::StorageFull | ErrorKind::QuotaExceeded)
        || e.raw_os_error() == Some(libc::ENOSPC)
}

// redb reports each stage with its own error type; all of them are index failures.
macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self {
                StoreError::index(e)
            }
        }
    )*};
}
from_redb!(
    redb::Error,
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

impl From<bincode::Error> for StoreError {
    fn from(e: bincode::Error) -> Self {
        StoreError::index(format!("record cannot be encoded or decoded: {e}"))
    }
}
