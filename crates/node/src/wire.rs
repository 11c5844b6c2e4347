//! Messages between nodes: heartbeat datagrams and internal RPC bodies.
//!
//! Owns the shapes and the method names; must never carry behaviour.

use crate::lease::{GrantId, Release};
use keel_core::{BootType, ClusterCommand, Epoch, Member, NodeId, SetId};
use serde::{Deserialize, Serialize};

/// Internal RPC method names.
pub mod method {
    pub const RAFT_APPEND: &str = "raft-append";
    pub const RAFT_VOTE: &str = "raft-vote";
    pub const RAFT_SNAPSHOT: &str = "raft-snapshot";
    pub const JOIN: &str = "join";
    pub const PING: &str = "ping";
    pub const SELF_TEST: &str = "self-test";
    pub const ADMIN: &str = "admin";
    pub const WRITE: &str = "write";
    pub const REVOKE: &str = "revoke";
    pub const WRITE_DIR: &str = "write-dir";
    /// A follower asks the leader for a read index (see `NodeShared::read_barrier`).
    pub const READ_INDEX: &str = "read-index";
    /// A storage node's answer to a multicast search.
    pub const FOUND: &str = "found";
}

/// The node's own view of its health, carried in every heartbeat.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct Health {
    /// 0..=100: 100 is perfect. Falls with a failing disk check or slow checks.
    pub score: u8,
    pub disk_ok: bool,
    pub latency_ms: u32,
}

impl Default for Health {
    fn default() -> Self {
        Health {
            score: 100,
            disk_ok: true,
            latency_ms: 0,
        }
    }
}

/// Sent every heartbeat period to every member on every shared link.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Heartbeat {
    pub cluster: String,
    pub from: NodeId,
    /// The sender's process (incarnation) and how it booted: a new process is a
    /// member that came back, whether or not its failure was noticed.
    pub pid: u32,
    pub boot: BootType,
    /// The sender's object store identity (a storage node): a process that comes back
    /// with another store is reported back with it.
    #[serde(default)]
    pub store: Option<keel_core::StoreId>,
    /// The sender's process, drawn at random when it started: the arbiter grants to
    /// one process, and addresses its answer to it.
    pub incarnation: u64,
    pub seq: u64,
    pub health: Health,
    /// Sets for which the sender's replica says it is Primary, with that epoch: a
    /// request to the arbiter to grant or renew the lease.
    pub lease_requests: Vec<(SetId, Epoch)>,
    /// Leases the sender gave up since its last heartbeat (deposed or lapsed), each
    /// naming its grant, so the arbiter can hand them on at once instead of waiting
    /// for them to run out, and a late copy never drops a newer grant.
    #[serde(default)]
    pub released: Vec<Release>,
}

/// The arbiter's answer to a heartbeat that asked for leases.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct HeartbeatAck {
    pub cluster: String,
    pub from: NodeId,
    /// The Raft term of the granting arbiter: a member that acknowledged a newer
    /// arbiter's revocation ignores grants from older terms.
    pub term: u64,
    /// Echo of the heartbeat's incarnation: another process of the same node
    /// ignores the answer.
    pub to: u64,
    /// Echo of the heartbeat's sequence number: the lease runs from when that
    /// heartbeat was sent.
    pub seq: u64,
    /// Sets granted, with the epoch and the grant's id (kept across renewals).
    pub granted: Vec<(SetId, Epoch, GrantId)>,
    /// Sets whose lease was refused, with the epoch that is current.
    pub refused: Vec<(SetId, Epoch)>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub enum Datagram {
    Heartbeat(Heartbeat),
    Ack(HeartbeatAck),
}

/// A candidate asks to be admitted.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct JoinRequest {
    pub cluster: String,
    pub member: Member,
    pub boot: BootType,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub enum JoinReply {
    /// Admitted (or already a member): the leader's id.
    Admitted { leader: NodeId },
    /// Not the leader: ask this one.
    NotLeader {
        leader: Option<NodeId>,
        leader_rpc: Vec<(String, std::net::SocketAddr)>,
    },
    /// Refused for good: protocol, features or cluster name do not match.
    Refused { reason: String },
}

/// A newly elected arbiter asks a member to drop any lease on `set` a previous
/// arbiter granted, except the one it names (the current Primary's, same epoch), and
/// to take no more grants from arbiters of older terms.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Revoke {
    pub term: u64,
    pub set: SetId,
    pub keep: Option<(NodeId, Epoch)>,
}

/// Answer to a ping: which process of the node answered (see `lease.rs`: another
/// process than a grant's holder answering proves the holder gone).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Pong {
    pub incarnation: u64,
}

/// Answer to a self-test: the member checks itself and its view of a link.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct SelfTestReply {
    pub node: NodeId,
    pub health: Health,
    /// The link under test is cut locally (dev fault injection) or hears nobody.
    pub link_silent_here: bool,
}

/// A write forwarded to the leader.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct ForwardedWrite {
    pub command: ClusterCommand,
}

/// The leader's answer to a forwarded write: the result, and the index of the log
/// entry, which the writer waits to have applied locally before it returns.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct ForwardedWriteReply {
    pub response: keel_core::ClusterResponse,
    pub index: u64,
}

pub fn encode<T: Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).unwrap_or_default()
}

pub fn decode<'a, T: Deserialize<'a>>(b: &'a [u8]) -> Result<T, String> {
    serde_json::from_slice(b).map_err(|e| format!("malformed message: {e}"))
}

pub fn encode_datagram(d: &Datagram) -> Vec<u8> {
    bincode::serialize(d).unwrap_or_default()
}

pub fn decode_datagram(b: &[u8]) -> Option<Datagram> {
    bincode::deserialize(b).ok()
}
