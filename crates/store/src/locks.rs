//! Per-object serialization: a fixed set of reader-writer locks, an object mapped to one
//! by its id.
//!
//! Mutations of one object hold its lock exclusively from reading its record to
//! committing the new one, so they are serialized and a version check cannot race;
//! reads hold it shared, so they never see a half-done change. Objects on different
//! stripes proceed in parallel (their index commits are still serialized by redb).
//!
//! Owns: the stripes. Must never: be held across a call that takes another stripe
//! (no operation touches two objects), nor guard any data itself.

use keel_core::ObjectId;
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

/// Number of stripes: enough that two busy objects rarely share one.
const STRIPES: usize = 256;

pub(crate) struct ObjectLocks {
    stripes: Vec<RwLock<()>>,
}

impl ObjectLocks {
    pub(crate) fn new() -> ObjectLocks {
        ObjectLocks {
            stripes: (0..STRIPES).map(|_| RwLock::new(())).collect(),
        }
    }

    /// Shared: for reads of `id`.
    pub(crate) fn read(&self, id: ObjectId) -> RwLockReadGuard<'_, ()> {
        // The lock guards no data, so a panic while it was held left nothing half-done
        // in memory: poisoning is ignored.
        self.stripe(id).read().unwrap_or_else(|e| e.into_inner())
    }

    /// Exclusive: for changes of `id`.
    pub(crate) fn write(&self, id: ObjectId) -> RwLockWriteGuard<'_, ()> {
        self.stripe(id).write().unwrap_or_else(|e| e.into_inner())
    }

    fn stripe(&self, id: ObjectId) -> &RwLock<()> {
        &self.stripes[(id.placement_hash() % STRIPES as u64) as usize]
    }
}
