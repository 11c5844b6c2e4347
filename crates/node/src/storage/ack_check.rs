//! The Primary's last check before it acknowledges a write: after the local and the
//! replicas' writes (which may have taken a while), it must still be the set's Primary
//! at the write's epoch in its replica of the configuration database, and still hold
//! the set's lease. A Primary whose lease ran out meanwhile may already have a
//! successor that acts: it refuses the write instead (the client retries it there).
//!
//! Must never: acknowledge on a lease or an epoch that is no longer this node's.

use super::DataError;
use crate::node::NodeShared;
use keel_core::{Epoch, SetId};
use std::time::Instant;

/// `Ok` if this node still acts as Primary of `set` at `epoch` (replica and lease).
pub(crate) fn still_acting(node: &NodeShared, set: &SetId, epoch: Epoch) -> Result<(), DataError> {
    let (current, primary) = node
        .db
        .read(|s| s.sets.get(set).map(|x| (x.epoch, x.primary_node())))
        .ok_or_else(|| DataError::BadRequest {
            reason: format!("storage set {set:?} is gone"),
        })?;
    if current != epoch || primary != Some(node.id()) {
        return Err(DataError::NotPrimary {
            set: set.clone(),
            presented: epoch,
            current,
            primary,
        });
    }
    let acting = node
        .holder
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .acting(set, Instant::now());
    if acting != Some(epoch) {
        return Err(DataError::NoLease { set: set.clone() });
    }
    Ok(())
}
