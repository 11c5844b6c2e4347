//! A replica whose store is new must not vote as if it had a log and a vote.
//!
//! openraft 0.9 trusts its storage: a node whose `raft.redb` was deleted (or whose disk
//! was replaced) starts with an empty log and no vote, and grants its vote to any
//! candidate (every log is at least as long as an empty one, and it has forgotten the
//! vote it gave in the current term). If it is still a voter in the others' membership,
//! a candidate missing committed entries can win with its vote, and those entries are
//! lost (openraft's FAQ: "Can I wipe out the data of ONE node ...").
//!
//! So a store created empty is marked `unadmitted` (durably, in `raft_log_meta`), and
//! while it is: the node refuses every vote request (the candidate sees a failed RPC:
//! no vote), and starts no election itself. It is admitted again once its log holds
//! everything the cluster had committed when it came back: the first append it
//! receives carries the leader's commit index, which covers every entry committed
//! before the store was lost; once the node has applied that far, it votes again. The
//! node that creates a new group (`initialize`) is admitted at once.
//!
//! Owns: the mark and the rule. Must never: let an unadmitted node grant a vote.

use crate::disk::{begin_durable, blocking, get_json, LOG_META};
use crate::error::ConfDbError;
use std::sync::{Arc, Mutex};

/// The `raft_log_meta` key of the mark (JSON `true` while unadmitted).
const KEY: &str = "unadmitted";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdmissionState {
    /// The store has a log and a vote the node can trust: it votes.
    Admitted,
    /// The store is new: no vote until it has applied up to `floor` (the commit index
    /// of the first append it received; `None` until then).
    Unadmitted { floor: Option<u64> },
}

pub(crate) struct Admission {
    db: Arc<redb::Database>,
    state: Mutex<AdmissionState>,
}

impl Admission {
    /// Reads the mark; a store created just now (`created`) gets it.
    pub(crate) async fn open(
        db: Arc<redb::Database>,
        created: bool,
    ) -> Result<Admission, ConfDbError> {
        let d = db.clone();
        let unadmitted = blocking(move || {
            if created {
                let txn = begin_durable(&d)?;
                txn.open_table(LOG_META)?
                    .insert(KEY, serde_json::to_vec(&true)?.as_slice())?;
                txn.commit()?;
                return Ok(true);
            }
            let txn = d.begin_read()?;
            Ok(get_json::<bool, _>(&txn.open_table(LOG_META)?, KEY)?.unwrap_or(false))
        })
        .await?;
        let state = if unadmitted {
            AdmissionState::Unadmitted { floor: None }
        } else {
            AdmissionState::Admitted
        };
        Ok(Admission {
            db,
            state: Mutex::new(state),
        })
    }

    pub(crate) fn state(&self) -> AdmissionState {
        *self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Notes the leader's commit index from an append, if no floor is set yet.
    pub(crate) fn leader_commit(&self, index: u64) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if let AdmissionState::Unadmitted { floor: None } = *s {
            *s = AdmissionState::Unadmitted { floor: Some(index) };
        }
    }

    /// Admits the node if it is unadmitted and has applied up to its floor (or
    /// `force`). Returns true if this call admitted it.
    pub(crate) async fn admit_if_caught_up(
        &self,
        applied: u64,
        force: bool,
    ) -> Result<bool, ConfDbError> {
        let due = match self.state() {
            AdmissionState::Admitted => false,
            AdmissionState::Unadmitted { floor } => force || floor.is_some_and(|f| applied >= f),
        };
        if !due {
            return Ok(false);
        }
        let d = self.db.clone();
        blocking(move || {
            let txn = begin_durable(&d)?;
            txn.open_table(LOG_META)?.remove(KEY)?;
            txn.commit()?;
            Ok(())
        })
        .await?;
        *self.state.lock().unwrap_or_else(|e| e.into_inner()) = AdmissionState::Admitted;
        Ok(true)
    }
}
