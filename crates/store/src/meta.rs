//! The records the store keeps about each object.
//!
//! Owns: [`ObjectMeta`] (the index record: set, size, version, per-block CRCs,
//! tombstone flag) and [`ObjectStat`] (what callers see, without the CRCs). Must never:
//! touch files or the index; this is plain data.

use keel_core::{ObjectId, SetId, Version};
use serde::{Deserialize, Serialize};

/// The index record of one object (or of its tombstone).
///
/// A delete leaves a tombstone (`deleted`, size 0, no CRCs, no data file) so that
/// catch-up can tell "deleted at `version`" from "never had it".
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct ObjectMeta {
    /// The storage failover set the object belongs to.
    pub set: SetId,
    /// Length in bytes.
    pub size: u64,
    /// Version of the last change (write, put, truncate or delete).
    pub version: Version,
    /// CRC32 of each [`crate::BLOCK_SIZE`] block; the last one covers a short block.
    pub block_crcs: Vec<u32>,
    /// A tombstone: the object was deleted at `version`.
    pub deleted: bool,
}

impl ObjectMeta {
    /// A tombstone for `set` at `version`.
    pub fn tombstone(set: &str, version: Version) -> ObjectMeta {
        ObjectMeta {
            set: set.to_string(),
            size: 0,
            version,
            block_crcs: Vec::new(),
            deleted: true,
        }
    }

    /// What a caller sees of this record.
    pub fn stat(&self, id: ObjectId) -> ObjectStat {
        ObjectStat {
            id,
            set: self.set.clone(),
            size: self.size,
            version: self.version,
            deleted: self.deleted,
        }
    }
}

/// An object (or tombstone) as reported by `stat`, `list_set` and every mutation.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct ObjectStat {
    pub id: ObjectId,
    pub set: SetId,
    pub size: u64,
    pub version: Version,
    pub deleted: bool,
}

/// Refuses a change at `presented` if the object's record (live or tombstone) is at a
/// newer version: replays of old changes must not roll an object back. An equal
/// version is admitted (a replay of the same change, or a repair).
pub(crate) fn refuse_older(
    id: ObjectId,
    record: Option<&ObjectMeta>,
    presented: Version,
) -> Result<(), crate::StoreError> {
    match record {
        Some(meta) if presented < meta.version => Err(crate::StoreError::OlderVersion {
            id,
            presented,
            current: meta.version,
        }),
        _ => Ok(()),
    }
}
