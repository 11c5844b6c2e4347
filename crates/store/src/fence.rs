//! Epoch fencing, persisted: the highest epoch this store has accepted per failover set.
//!
//! A request on a set's behalf carries the set's epoch; an epoch older than the
//! recorded one is refused ([`StoreError::StaleEpoch`]), a newer one is recorded
//! durably before it is admitted, so the fence survives a restart and a deposed Primary
//! cannot write after a reboot of this node.
//!
//! Owns: the `fences` table (set id → epoch) and the admit/refuse rule. Must never:
//! lower a recorded epoch, or touch objects.

use crate::error::StoreError;
use crate::index::begin_durable;
use keel_core::Epoch;
use redb::{Database, ReadableTable, TableDefinition};

/// Set id → the highest epoch accepted for it.
pub(crate) const FENCES: TableDefinition<&str, u64> = TableDefinition::new("fences");

/// What to do with a presented epoch, given the recorded one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admission {
    /// Same epoch: admit, nothing to record.
    Admit,
    /// Newer epoch: record it, then admit.
    Raise,
    /// Older epoch: refuse.
    Refuse,
}

pub(crate) fn admission(current: Epoch, presented: Epoch) -> Admission {
    match presented.cmp(&current) {
        std::cmp::Ordering::Equal => Admission::Admit,
        std::cmp::Ordering::Greater => Admission::Raise,
        std::cmp::Ordering::Less => Admission::Refuse,
    }
}

/// The highest epoch recorded for `set` (epoch 0 if none).
pub(crate) fn current(db: &Database, set: &str) -> Result<Epoch, StoreError> {
    let txn = db.begin_read()?;
    let fences = txn.open_table(FENCES)?;
    let epoch = fences.get(set)?.map_or(0, |v| v.value());
    Ok(Epoch(epoch))
}

/// Admits `presented` for `set`, or refuses it; a newer epoch is committed durably
/// before this returns.
pub(crate) fn check(db: &Database, set: &str, presented: Epoch) -> Result<(), StoreError> {
    // Fast path without the (serialized) write transaction: the usual case is the
    // current epoch.
    let recorded = current(db, set)?;
    match admission(recorded, presented) {
        Admission::Admit => return Ok(()),
        Admission::Refuse => return Err(stale(set, presented, recorded)),
        Admission::Raise => {}
    }
    // Decide again inside the write transaction: write transactions are serialized,
    // so a concurrent raise cannot be lost or lowered.
    let txn = begin_durable(db)?;
    {
        let mut fences = txn.open_table(FENCES)?;
        let recorded = Epoch(fences.get(set)?.map_or(0, |v| v.value()));
        match admission(recorded, presented) {
            Admission::Admit => return Ok(()),
            Admission::Refuse => return Err(stale(set, presented, recorded)),
            Admission::Raise => {
                fences.insert(set, presented.0)?;
            }
        }
    }
    txn.commit()?;
    tracing::info!(set, epoch = presented.0, "object store fence raised");
    Ok(())
}

fn stale(set: &str, presented: Epoch, current: Epoch) -> StoreError {
    StoreError::StaleEpoch {
        set: set.to_string(),
        presented,
        current,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admission_never_goes_back() {
        assert_eq!(admission(Epoch(3), Epoch(3)), Admission::Admit);
        assert_eq!(admission(Epoch(3), Epoch(4)), Admission::Raise);
        assert_eq!(admission(Epoch(3), Epoch(2)), Admission::Refuse);
        assert_eq!(admission(Epoch(0), Epoch(0)), Admission::Admit);
    }
}
