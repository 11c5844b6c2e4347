//! Errors returned when a command cannot be applied to the configuration database.

use crate::{Epoch, NodeId, SetId, StoreId};
use serde::{Deserialize, Serialize};

/// Why the configuration database refused a command. Stable: these travel over the wire
/// and are shown to operators.
#[derive(thiserror::Error, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(tag = "code", rename_all = "snake_case")]
pub enum ClusterError {
    #[error("{reason}")]
    InvalidKey { reason: String },
    #[error("unknown node {node}")]
    UnknownNode { node: NodeId },
    /// An admin request id that was already received (a retry).
    #[error("request {id} was already received")]
    RequestSeen { id: String },
    #[error("placement map is at version {current}, not {presented}: reload and retry")]
    StalePlacement { presented: u64, current: u64 },
    #[error("unknown failover set {set:?}")]
    UnknownSet { set: SetId },
    #[error("failover set {set:?} already exists")]
    SetExists { set: SetId },
    #[error("failover set {set:?} names unknown member {member}")]
    UnknownMember { set: SetId, member: String },
    #[error("invalid failover set {set:?}: {reason}")]
    InvalidSet { set: SetId, reason: String },
    #[error("stale epoch for set {set:?}: request carries epoch {presented}, current epoch is {current}")]
    StaleEpoch {
        set: SetId,
        presented: Epoch,
        current: Epoch,
    },
    #[error("node {node} cannot take a role: {reason}")]
    NotEligible { node: NodeId, reason: String },
    #[error("node {node} is still a member of failover set {set:?}")]
    StillInSet { node: NodeId, set: SetId },
    #[error("node {node} already exists")]
    NodeExists { node: NodeId },
    /// A `SetInSync` computed from a list that is no longer the set's (a compare-and-set
    /// that lost): re-read the list and compute again.
    #[error(
        "the in-sync list of set {set:?} is {current:?}, not {expected:?}: re-read it and retry"
    )]
    InSyncChanged {
        set: SetId,
        expected: Vec<NodeId>,
        current: Vec<NodeId>,
    },
    /// A node was to join an in-sync list with a store it no longer has (its disk was
    /// wiped or replaced since it caught up).
    #[error("node {node} now has store {current}, not {presented}: it must catch up again")]
    StoreChanged {
        node: NodeId,
        presented: StoreId,
        current: StoreId,
    },
}
