//! A member of the cluster as the configuration database records it.

use crate::{LinkName, NodeId, StoreId, UnixMillis};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::net::IpAddr;

/// What a node hosts. Small clusters run every role on every node.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum NodeRole {
    /// A voter of the configuration database.
    Control,
    /// An intelligent storage node.
    Storage,
    /// NFS, S3 and native front ends.
    Gateway,
}

/// A member's state. Written by the arbiter (the configuration database leader).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum MemberState {
    /// Admitted, catching up; takes no role yet.
    Joining,
    Up,
    /// Silent for longer than the suspect timeout on every link; not failed over yet.
    Suspect,
    /// Silent on every link past the failure timeout, or below a health threshold.
    Failed,
    /// Failed more often than the failure limit allows: takes no role until an
    /// operator clears it.
    Quarantined,
}

impl MemberState {
    pub fn as_str(self) -> &'static str {
        match self {
            MemberState::Joining => "joining",
            MemberState::Up => "up",
            MemberState::Suspect => "suspect",
            MemberState::Failed => "failed",
            MemberState::Quarantined => "quarantined",
        }
    }
}

/// The policy manager's characterization of a fault.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    /// The process is gone: its port refuses connections.
    Crash,
    /// The host answers at the transport level but the process does not (paused,
    /// deadlocked), or nothing answers at all.
    Hang,
    /// One link is silent while another carries heartbeats and the self-test passes.
    Link,
    /// The data directory cannot be written.
    Disk,
    /// Checks pass but too slowly: health score below the set's threshold.
    Slow,
}

/// How a node came up, as the boot service reports it.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum BootType {
    /// An empty data directory.
    FirstBoot,
    /// The previous run shut down cleanly.
    Restart,
    /// The previous run ended without a clean shutdown (crash, kill, power loss).
    ReturnAfterFailure,
}

/// One network a node is reachable on.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct LinkAddr {
    pub name: LinkName,
    pub ip: IpAddr,
}

/// A member as recorded in the configuration database.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Member {
    pub id: NodeId,
    pub site: String,
    /// Every link, in order of preference.
    pub links: Vec<LinkAddr>,
    pub rpc_port: u16,
    pub admin_port: u16,
    pub heartbeat_port: u16,
    pub roles: BTreeSet<NodeRole>,
    pub state: MemberState,
    /// Drained by an operator: holds no Primary or Secondary role.
    #[serde(default)]
    pub drained: bool,
    /// Times of recent failures, for the failure limit.
    #[serde(default)]
    pub failures: Vec<UnixMillis>,
    /// Links currently reported down (a link failure, not a member failure).
    #[serde(default)]
    pub links_down: BTreeSet<LinkName>,
    pub version: String,
    pub protocol: u32,
    /// The member's process id, as it last reported it (0 if unknown).
    #[serde(default)]
    pub pid: u32,
    /// The process id whose failure was last recorded: a process that died is
    /// counted once, whether its death is noticed by silence or by its successor's
    /// boot report.
    #[serde(default)]
    pub last_failed_pid: Option<u32>,
    #[serde(default)]
    pub features: Vec<String>,
    #[serde(default)]
    pub last_boot: Option<BootType>,
    /// When the member last became `up` (for auto-giveback's stability delay).
    #[serde(default)]
    pub up_since: Option<UnixMillis>,
    /// The identity of the member's object store as it last reported it (at join and
    /// on return); `None` for a node without the storage role, or not reported yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store: Option<StoreId>,
}

impl Member {
    /// May this member hold a role in a failover set?
    pub fn eligible(&self) -> bool {
        self.state == MemberState::Up && !self.drained
    }

    pub fn link(&self, name: &str) -> Option<&LinkAddr> {
        self.links.iter().find(|l| l.name == name)
    }

    /// The first link's address.
    pub fn primary_ip(&self) -> Option<IpAddr> {
        self.links.first().map(|l| l.ip)
    }
}
