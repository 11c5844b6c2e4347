//! keel's domain model, shared by every other crate.
//!
//! Owns: identifiers, [`Epoch`], members and their states, failover sets and their
//! roles, the configuration database's state ([`ClusterState`]) and the commands that
//! change it ([`ClusterCommand`]), the event log, and epoch fencing.
//!
//! Must never: do I/O, read a clock, or depend on another keel crate. Time comes in as
//! arguments (milliseconds since the Unix epoch) so that applying a command is
//! deterministic on every replica.

pub mod command;
pub mod error;
pub mod event;
pub mod fence;
pub mod ids;
pub mod keys;
pub mod limits;
pub mod member;
pub mod placement;
pub mod set;
pub mod state;

pub use command::{ClusterCommand, ClusterResponse};
pub use error::ClusterError;
pub use event::{Event, EventKind};
pub use fence::{EpochFence, FenceError};
pub use ids::{Epoch, LinkName, NodeId, ObjectId, SetId, StoreId, UnixMillis, Version};
pub use keys::{Access, AccessKey, CredentialCommand, Credentials, Denied};
pub use member::{BootType, FaultKind, LinkAddr, Member, MemberState, NodeRole};
pub use placement::{PlacementMap, PLACEMENT_GROUPS};
pub use set::{Composition, FailoverSet, MemberRef, SetKind, SetSpec};
pub use state::{ClusterSettings, ClusterState, RequestRecord, REQUEST_MEMORY};

/// The wire protocol version of this build. Candidates with another version are refused.
/// 2: the configuration database's log carries directory commands, and storage nodes
/// speak the `store` RPC. 3: storage requests and searches name the set of the object
/// (`Stat`, `Fetch`, `WhoHas`, the multicast search), whose copies are per set.
pub const PROTOCOL_VERSION: u32 = 3;

/// Features this build speaks. A candidate must speak every feature the cluster requires.
pub const FEATURES: &[&str] = &[
    "raft-redb-v2",
    "mtls",
    "heartbeat-v1",
    "epoch-fencing",
    "storage-v1",
    "directory-v1",
];
