//! Epoch fencing: every operation done on a failover set's behalf carries the set's
//! epoch, and a receiver refuses any epoch older than the newest it has seen.

use crate::{Epoch, SetId};
use std::collections::HashMap;
use std::sync::Mutex;

/// Refusal of an operation that carries an old epoch. Names both epochs.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
#[error("fenced: set {set:?} presented epoch {presented}, but epoch {current} is current")]
pub struct FenceError {
    pub set: SetId,
    pub presented: Epoch,
    pub current: Epoch,
}

/// The newest epoch seen per set. `admit` moves it forward and never back.
#[derive(Default, Debug)]
pub struct EpochFence {
    newest: Mutex<HashMap<SetId, Epoch>>,
}

impl EpochFence {
    /// Admits an operation carrying `presented` for `set`, or refuses it if a newer
    /// epoch has been seen. Admitting a newer epoch raises the fence.
    pub fn admit(&self, set: &str, presented: Epoch) -> Result<(), FenceError> {
        let mut newest = self.newest.lock().unwrap_or_else(|e| e.into_inner());
        let current = newest.entry(set.to_string()).or_default();
        if presented < *current {
            return Err(FenceError {
                set: set.to_string(),
                presented,
                current: *current,
            });
        }
        *current = presented;
        Ok(())
    }

    /// Raises the fence without an operation (learned from the configuration database).
    pub fn observe(&self, set: &str, epoch: Epoch) {
        let mut newest = self.newest.lock().unwrap_or_else(|e| e.into_inner());
        let current = newest.entry(set.to_string()).or_default();
        *current = (*current).max(epoch);
    }

    pub fn current(&self, set: &str) -> Epoch {
        let newest = self.newest.lock().unwrap_or_else(|e| e.into_inner());
        newest.get(set).copied().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn older_epoch_is_refused_and_names_both() {
        let fence = EpochFence::default();
        fence.admit("s", Epoch(3)).unwrap();
        let err = fence.admit("s", Epoch(2)).unwrap_err();
        assert_eq!(err.presented, Epoch(2));
        assert_eq!(err.current, Epoch(3));
        assert!(err.to_string().contains("epoch 2") && err.to_string().contains("epoch 3"));
        fence.admit("s", Epoch(3)).unwrap();
        fence.observe("s", Epoch(1));
        assert_eq!(fence.current("s"), Epoch(3));
    }
}
