//! The policy manager's one error type.
//!
//! Owns: refusals of operator requests with bad arguments, and the report of a
//! decision the configuration database would refuse (a bug in this crate). Must
//! never: be used for a member failure; failures are decisions, not errors.

use keel_core::{ClusterCommand, ClusterError, LinkName, MemberRef, NodeId, SetId};

#[derive(thiserror::Error, Clone, Debug, PartialEq)]
pub enum PolicyError {
    #[error("unknown node {node}")]
    UnknownNode { node: NodeId },
    #[error("unknown failover set {set:?}")]
    UnknownSet { set: SetId },
    #[error("node {node} has no link named {link:?}")]
    UnknownLink { node: NodeId, link: LinkName },
    #[error("{member} is not a member of failover set {set:?}")]
    NotAMember { set: SetId, member: MemberRef },
    #[error("{member} cannot become Primary of failover set {set:?}: not eligible ({reason})")]
    NotEligible {
        set: SetId,
        member: MemberRef,
        reason: String,
    },
    /// A decision that the state machine refuses: a bug in keel-policy, never a
    /// condition of the cluster.
    #[error(
        "keel-policy decided a command the configuration database refuses ({error}): {command:?}"
    )]
    DecisionRefused {
        command: Box<ClusterCommand>,
        error: ClusterError,
    },
}
