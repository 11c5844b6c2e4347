//! The Raft type configuration of the configuration database and the peer record that
//! openraft stores in its membership.
//!
//! Owns: [`TypeConfig`] and [`RaftPeer`]. Must never: hold behaviour beyond tiny
//! accessors; this module is pure data shared by every other module of the crate.

use keel_core::{ClusterCommand, ClusterResponse, NodeId};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;

openraft::declare_raft_types!(
    /// Raft types of the configuration database: commands are [`ClusterCommand`]s,
    /// replies are [`ClusterResponse`]s, snapshots are in-memory JSON buffers.
    pub TypeConfig:
        D = ClusterCommand,
        R = ClusterResponse,
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
