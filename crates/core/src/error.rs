//! Errors returned when a command cannot be applied to the configuration database.

use crate::{Epoch, NodeId, SetId};
use serde::{Deserialize, Serialize};

/// Why the configuration database refused a command. Stable: these travel over the wire
/// and are shown to operators.
#[derive(thiserror::Error, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(tag = "code", rename_all = "snake_case")]
pub enum ClusterError {
    #[error("unknown node {node}")]
    UnknownNode { node: NodeId },
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
}
