//! The harness's error type: what went wrong driving a cluster (not what the cluster
//! did wrong: that is a [`crate::Violation`]).

use keel_core::NodeId;
use keel_node::AdminError;

#[derive(thiserror::Error, Debug)]
pub enum HarnessError {
    /// A condition did not hold within its deadline.
    #[error("timed out after {waited_ms} ms waiting for {what}")]
    Timeout { what: String, waited_ms: u64 },
    /// A condition that had to hold throughout a window stopped holding.
    #[error("{what} stopped holding after {after_ms} ms")]
    Broken { what: String, after_ms: u64 },
    #[error("node {node} did not start: {reason}")]
    NodeStart { node: NodeId, reason: String },
    /// The node is crashed (or was never started), so it cannot do what was asked.
    #[error("node {0} is not running")]
    NotRunning(NodeId),
    #[error("the cluster has no node {0}")]
    UnknownNode(NodeId),
    #[error("admin request: {0}")]
    Admin(#[from] AdminError),
    /// A node's runtime thread could not be started, paused or reached.
    #[error("runtime: {0}")]
    Runtime(String),
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
}
