//! keel's configuration database: an openraft group whose log and state machine are
//! stored in one redb file, replicated to every member (voters on control nodes,
//! learners elsewhere) so every member holds the whole [`keel_core::ClusterState`].
//!
//! Owns: the Raft type configuration, the redb log store and state machine store, the
//! adapter from openraft's network to a [`RaftTransport`], and the [`ConfDb`] facade.
//!
//! Must never: decide policy (the policy manager and arbiter propose commands; this
//! crate only orders and applies them), open sockets (the node's RPC layer implements
//! [`RaftTransport`] and calls [`ConfDb::handle_raft`]), or change the meaning of a
//! command (that is `ClusterState::apply` in keel-core).

pub mod admission;
pub mod db;
pub mod disk;
pub mod error;
pub mod handler;
pub mod log_store;
mod namespace_store;
pub mod network;
pub mod snapshot;
pub mod state_machine;
pub mod types;

pub use admission::AdmissionState;
pub use db::{recommended_config, ConfDb, INSTALL_SNAPSHOT_TIMEOUT_MS};
pub use disk::{open_database, DB_FILE, FORMAT_VERSION};
pub use error::{ConfDbError, TransportError, WriteError};
pub use log_store::LogStore;
pub use network::{NetworkFactory, PeerClient, RaftTransport};
pub use snapshot::SnapshotBuilder;
pub use state_machine::{Applied, DirApplied, StateMachineStore};
pub use types::{Command, RaftPeer, Reply, TypeConfig};
