//! The event log: every detection, decision and takeover, with its time, so that an
//! operator can read the timeline of a failover.

use crate::{Epoch, NodeId, SetId, UnixMillis};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    ClusterCreated,
    NodeJoined,
    JoinRefused,
    NodeSuspect,
    NodeUp,
    NodeFailed,
    NodeBack,
    NodeQuarantined,
    NodeCleared,
    NodeDrained,
    NodeUndrained,
    NodeRemoved,
    LinkDown,
    LinkUp,
    SetCreated,
    SetDeleted,
    /// A failover's timeline: the failure was detected...
    FailureDetected,
    /// ...the arbiter chose a new Primary (epoch bumped)...
    FailoverDecided,
    /// ...the new Primary holds its lease and acts...
    TakenOver,
    /// ...and the first client operation succeeded against it.
    FirstClientSuccess,
    TakeoverRequested,
    Giveback,
    RolesChanged,
    LeaseLost,
    StaleEpochRefused,
    LeaderElected,
    /// Storage: the placement map changed (a layout was applied).
    PlacementChanged,
    /// Storage: a replica left or rejoined a set's in-sync list.
    InSyncChanged,
    /// Storage: a node came back with another store than the one a set's in-sync list
    /// recorded (wiped or replaced disk): it left the list until it has caught up.
    StoreReplaced,
    /// Storage: a returning replica copies what changed while it was away.
    CatchUpStarted,
    CatchUpDone,
    /// Storage: a checksum mismatch was found on read and repaired from a replica.
    ObjectRepaired,
    /// Locator: a node stopped answering; the locator looks for duplicates elsewhere.
    LocatorFailover,
    /// Locator: where the duplicate was found (map, site mapping rule, or search).
    LocatorFound,
    /// Storage: objects moved to the set the new placement map names.
    RebalanceProgress,
    RebalanceDone,
    /// Storage: a rebalance cannot go on, and why (a set without a Primary, a move
    /// that failed); said once per set and placement map version.
    RebalanceWaiting,
    /// Storage: objects no file refers to, older than the grace period, deleted.
    OrphansCollected,
    /// A voter came back with a new configuration database store (its Raft log and
    /// vote are gone): removed from the voters, it is a learner until it has caught up.
    VoterReadmitted,
    /// Gateway: a node listens on an export's endpoint (it is the Active with a lease,
    /// or a member of an active-active set).
    GatewayServing,
    /// Gateway: a node closed an export's endpoint (deposed, lease not renewed, health
    /// below the threshold), before its lease ran out.
    GatewayStopped,
    /// Gateway: the Passive found its Active failed (health below the threshold, or no
    /// answer for the detection budget) and asks the control plane to take over.
    GatewayTakeoverAsked,
    /// Gateway: the Active's own health fell below the threshold: it stopped serving
    /// and asks the control plane to hand over to its Passive.
    GatewayGaveUp,
    /// Gateway: the Active added an export address to an interface (netlink) and
    /// announced it with gratuitous ARP (`gateway.hold = { interface = .. }`).
    AddressAdded,
    /// Gateway: a node removed an export address from an interface: it stopped
    /// serving it (lease not renewed, deposed, stopping), or a stale one at start-up.
    AddressRemoved,
}

impl EventKind {
    pub fn as_str(self) -> String {
        serde_json::to_value(self)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default()
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Event {
    pub seq: u64,
    #[serde(with = "rfc3339_millis")]
    pub time: UnixMillis,
    pub kind: EventKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub set: Option<SetId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<NodeId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epoch: Option<Epoch>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

impl Event {
    pub fn new(time: UnixMillis, kind: EventKind) -> Event {
        Event {
            seq: 0,
            time,
            kind,
            set: None,
            node: None,
            epoch: None,
            detail: String::new(),
        }
    }
    pub fn set(mut self, set: impl Into<SetId>) -> Self {
        self.set = Some(set.into());
        self
    }
    pub fn node(mut self, node: NodeId) -> Self {
        self.node = Some(node);
        self
    }
    pub fn epoch(mut self, epoch: Epoch) -> Self {
        self.epoch = Some(epoch);
        self
    }
    pub fn detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = detail.into();
        self
    }

    pub fn time_rfc3339(&self) -> String {
        to_rfc3339(self.time)
    }
}

pub fn to_rfc3339(ms: UnixMillis) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

mod rfc3339_millis {
    use super::*;
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(ms: &UnixMillis, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&to_rfc3339(*ms))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<UnixMillis, D::Error> {
        let s = String::deserialize(d)?;
        DateTime::parse_from_rfc3339(&s)
            .map(|t| t.timestamp_millis())
            .map_err(serde::de::Error::custom)
    }
}
