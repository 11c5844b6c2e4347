//! The Raft type configuration of the configuration database and the peer record that
//! openraft stores in its membership.
//!
//! Owns: [`TypeConfig`] and [`RaftPeer`]. Must never: hold behaviour beyond tiny
//! accessors; this module is pure data shared by every other module of the crate.

use keel_core::{ClusterCommand, ClusterResponse, NodeId};
use keel_dir::{DirCommand, DirResult};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;

openraft::declare_raft_types!(
    /// Raft types of the configuration database: commands are [`Command`]s (to the
    /// cluster state or to the directory), replies are [`Reply`]s, snapshots are
    /// in-memory JSON buffers.
    pub TypeConfig:
        D = Command,
        R = Reply,
        NodeId = NodeId,
        Node = RaftPeer,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = std::io::Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

/// A Raft peer as recorded in the group membership: where to reach its RPC endpoint,
/// one address per link (redundant networks), in preference order.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct RaftPeer {
    /// `(link name, address)` pairs, the preferred link first.
    pub rpc: Vec<(String, SocketAddr)>,
}

impl RaftPeer {
    /// A peer reachable on the given links, in preference order.
    pub fn new(rpc: impl IntoIterator<Item = (String, SocketAddr)>) -> RaftPeer {
        RaftPeer {
            rpc: rpc.into_iter().collect(),
        }
    }
}

/// Shorthands for openraft's generic types, instantiated for [`TypeConfig`].
pub type LogId = openraft::LogId<NodeId>;
pub type Vote = openraft::Vote<NodeId>;
pub type Entry = openraft::Entry<TypeConfig>;
pub type StoredMembership = openraft::StoredMembership<NodeId, RaftPeer>;
pub type SnapshotMeta = openraft::SnapshotMeta<NodeId, RaftPeer>;
pub type Snapshot = openraft::Snapshot<TypeConfig>;
pub type StorageError = openraft::StorageError<NodeId>;
pub type Raft = openraft::Raft<TypeConfig>;

/// A Raft log entry's command: to the cluster state, or to the directory (the
/// namespace shares the configuration database's group; see `docs/design-decisions.md`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(tag = "to", content = "command", rename_all = "snake_case")]
pub enum Command {
    Cluster(ClusterCommand),
    Dir(DirCommand),
}

impl From<ClusterCommand> for Command {
    fn from(c: ClusterCommand) -> Self {
        Command::Cluster(c)
    }
}

/// The reply to a [`Command`], of the same kind.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(tag = "from", content = "reply", rename_all = "snake_case")]
pub enum Reply {
    Cluster(ClusterResponse),
    Dir(DirResult),
}

impl Reply {
    /// The cluster reply (an `Ok` for a blank or membership entry).
    pub fn into_cluster(self) -> ClusterResponse {
        match self {
            Reply::Cluster(r) => r,
            Reply::Dir(_) => ClusterResponse::Ok,
        }
    }
}
