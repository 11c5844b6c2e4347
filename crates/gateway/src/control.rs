//! The narrow interface through which the gateway role sees its node: a watch of the
//! gateway sets this node belongs to (who is Active and Passive at which epoch, and,
//! when this node is the Active holding the set's lease, until when), this node's
//! own health score, a health question to another member, a takeover request to the
//! control plane, and the event log.
//!
//! Owns: the shape of that view. Must never: carry node internals (no configuration
//! database, no lease table): the node implements [`GatewayControl`] in
//! `keel-node` (`gateway_control.rs`), tests implement it with a scripted view.

use keel_core::{Epoch, Event, NodeId, SetId};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// What this node knows of its gateway sets, as of one moment.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct GatewayView {
    /// This node's own health score (0..=100), as its heartbeats carry it.
    pub health: u8,
    /// Every gateway set (kind `gateway`) this node is a member of.
    pub sets: BTreeMap<SetId, GatewaySetView>,
}

/// One gateway set, as this node's replica of the configuration database shows it.
#[derive(Clone, Debug, PartialEq)]
pub struct GatewaySetView {
    pub epoch: Epoch,
    /// The Primary: the only member that may serve active-passive exports.
    pub active: Option<NodeId>,
    /// The Secondary: it watches the Active's health.
    pub passive: Option<NodeId>,
    /// The set's `health_threshold`: below it, the Active gives up and the Passive
    /// asks to take over.
    pub health_threshold: u8,
    /// Members that may serve active-active exports now (up, not drained or
    /// quarantined), each with the address it serves them on.
    pub serving_members: Vec<(NodeId, IpAddr)>,
    /// Set only while this node is the Active of `epoch` and holds the set's lease:
    /// the instant its lease runs out unless renewed.
    pub lease_until: Option<Instant>,
}

/// A member's answer to a health question (seed 000 claim 5: the passive port
/// queries the active port for the status of its health).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthAnswer {
    pub node: NodeId,
    /// 0..=100.
    pub score: u8,
    /// The sets this node acts as Primary of, under a lease, with their epochs.
    pub acting: Vec<(SetId, Epoch)>,
}

/// The gateway role's view of, and requests to, its node.
#[async_trait::async_trait]
pub trait GatewayControl: Send + Sync + 'static {
    /// This node's id.
    fn node(&self) -> NodeId;
    /// The current view, refreshed by the node as its replica or its leases change
    /// (and at least every few tens of milliseconds).
    fn view(&self) -> tokio::sync::watch::Receiver<GatewayView>;
    /// Asks member `node` for its health over the cluster network, within `deadline`.
    async fn query_health(&self, node: NodeId, deadline: Duration) -> Result<HealthAnswer, String>;
    /// Asks the control plane to make `to` the Active of `set`, provided the set is
    /// still at `epoch` (a request made on an old view changes nothing).
    async fn request_takeover(&self, set: &str, epoch: Epoch, to: NodeId) -> Result<(), String>;
    /// Appends an event to the cluster's event log (best effort).
    async fn record(&self, event: Event);
}
