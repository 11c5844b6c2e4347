//! [`DataError`]: every way a data operation (a chunk write or read, a directory
//! change, a native API call) can fail, typed, with a stable code and one HTTP status
//! each, so the CLI and the tests can tell "stale epoch" from "no space".
//!
//! Must never: carry a half-formed message; every variant names what failed.

use keel_core::{Epoch, NodeId, SetId, StoreId};
use keel_dir::DirError;
use keel_store::StoreError;
use serde::{Deserialize, Serialize};

#[derive(thiserror::Error, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(tag = "code", rename_all = "snake_case")]
pub enum DataError {
    #[error("{error}")]
    Store { error: StoreError },
    #[error("{error}")]
    Dir { error: DirError },
    #[error("this node is not the Primary of storage set {set:?} at epoch {presented} (current epoch {current}, primary {primary:?})")]
    NotPrimary {
        set: SetId,
        presented: Epoch,
        current: Epoch,
        primary: Option<NodeId>,
    },
    #[error("the Primary of storage set {set:?} holds no lease (is the control plane out of reach?): write refused")]
    NoLease { set: SetId },
    #[error("replica {node} of storage set {set:?} did not take the write and could not be taken off the in-sync list ({reason}): write not acknowledged")]
    InSyncShrinkFailed {
        set: SetId,
        node: NodeId,
        reason: String,
    },
    /// A replica was sent a write for a store it does not have (its disk was wiped or
    /// replaced since the in-sync list recorded it): it holds none of what that store
    /// held, so the write is a miss, never a success.
    #[error("node {node} has store {actual}, not store {expected} that the in-sync list of {set:?} names: refused")]
    StoreMismatch {
        set: SetId,
        node: NodeId,
        expected: StoreId,
        actual: StoreId,
    },
    #[error("no storage layout yet: run `keel layout apply`")]
    NoLayout,
    #[error(
        "the control plane is out of reach (no majority of the configuration database answers): {what} refused"
    )]
    NoControlPlane { what: String },
    #[error("no member could serve {what}: {tried}")]
    Unavailable { what: String, tried: String },
    #[error("{path:?}: a read at byte {offset} is past the end of the file ({size} bytes)")]
    PastEnd {
        path: String,
        offset: u64,
        size: u64,
    },
    #[error("{reason}")]
    BadRequest { reason: String },
    #[error("missing or wrong token")]
    Forbidden,
    #[error("{reason}")]
    Internal { reason: String },
}

impl DataError {
    pub fn code(&self) -> String {
        match self {
            DataError::Store { error } => error.code().to_string(),
            DataError::Dir { error } => error.code().to_string(),
            DataError::NotPrimary { .. } => "not_primary".into(),
            DataError::NoLease { .. } => "no_lease".into(),
            DataError::InSyncShrinkFailed { .. } => "in_sync_shrink_failed".into(),
            DataError::StoreMismatch { .. } => "store_mismatch".into(),
            DataError::NoLayout => "no_layout".into(),
            DataError::NoControlPlane { .. } => "no_control_plane".into(),
            DataError::PastEnd { .. } => "past_end".into(),
            DataError::Unavailable { .. } => "unavailable".into(),
            DataError::BadRequest { .. } => "bad_request".into(),
            DataError::Forbidden => "forbidden".into(),
            DataError::Internal { .. } => "internal".into(),
        }
    }

    /// The HTTP status of the native API for this error.
    pub fn http_status(&self) -> u16 {
        match self.code().as_str() {
            "not_found" | "no_volume" => 404,
            "exists" | "not_empty" | "not_dir" | "is_dir" => 409,
            "invalid_name" | "invalid_argument" | "bad_request" | "too_large" => 400,
            "past_end" => 416,
            "forbidden" => 403,
            "no_space" => 507,
            "stale_epoch" | "older_version" => 409,
            "no_control_plane"
            | "unavailable"
            | "no_lease"
            | "not_primary"
            | "in_sync_shrink_failed"
            | "store_mismatch"
            | "no_layout" => 503,
            _ => 500,
        }
    }

    /// Worth retrying elsewhere or later (a failover in progress), rather than final.
    pub fn is_transient(&self) -> bool {
        self.http_status() == 503
    }
}

impl From<StoreError> for DataError {
    fn from(error: StoreError) -> Self {
        DataError::Store { error }
    }
}

impl From<DirError> for DataError {
    fn from(error: DirError) -> Self {
        DataError::Dir { error }
    }
}
