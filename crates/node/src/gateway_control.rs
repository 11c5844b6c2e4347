//! The node's side of the gateway role's interface ([`keel_gateway::GatewayControl`]):
//! what the role may see of the node (its gateway sets from the local replica, its
//! leases on them, its health) and ask of it (another member's health, a takeover, an
//! event). Also the health question's RPC answer and `GET /v1/gateway/exports`, where
//! clients find each export's addresses (the Active's, or every member's for
//! active-active).
//!
//! Owns: turning `NodeShared` into that narrow view. Must never: hand the role
//! anything else of `NodeShared`, or report a lease the holder does not hold.

use crate::admin_api::AdminRequest;
use crate::node::NodeShared;
use crate::wire;
use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use keel_config::ExportPolicy;
use keel_core::{ClusterCommand, ClusterState, Epoch, Event, MemberRef, NodeId, SetKind};
use keel_gateway::{GatewayControl, GatewaySetView, GatewayView, HealthAnswer};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// The internal RPC method a Passive asks an Active's health with.
pub const HEALTH_METHOD: &str = "gateway-health";

/// How often the view is refreshed when nothing new is applied (leases are renewed
/// every heartbeat, and a lease's deadline must be seen well within its margin).
const REFRESH: Duration = Duration::from_millis(20);

/// How often, and how long apart, an event is offered again while no leader is known.
const RECORD_TRIES: usize = 10;
const RECORD_RETRY: Duration = Duration::from_millis(300);

/// The node, as the gateway role sees it.
pub struct NodeGatewayControl {
    node: Arc<NodeShared>,
    view: watch::Receiver<GatewayView>,
    refresher: tokio::task::JoinHandle<()>,
}

impl NodeGatewayControl {
    /// Starts refreshing the view; the refresher stops when this is dropped.
    pub fn start(node: Arc<NodeShared>) -> Arc<NodeGatewayControl> {
        let (tx, view) = watch::channel(view_of(&node, Instant::now()));
        let n = node.clone();
        let refresher = tokio::spawn(async move {
            let mut applied = n.db.applied_watch();
            loop {
                tokio::select! {
                    _ = applied.changed() => {}
                    _ = tokio::time::sleep(REFRESH) => {}
                }
                let v = view_of(&n, Instant::now());
                tx.send_if_modified(|old| {
                    let changed = *old != v;
                    if changed {
                        *old = v;
                    }
                    changed
                });
                if tx.is_closed() {
                    return;
                }
            }
        });
        Arc::new(NodeGatewayControl {
            node,
            view,
            refresher,
        })
    }
}

impl Drop for NodeGatewayControl {
    fn drop(&mut self) {
        self.refresher.abort();
    }
}

/// This node's view of its gateway sets at `now`.
pub fn view_of(node: &NodeShared, now: Instant) -> GatewayView {
    let me = node.id();
    let held: Vec<(String, Epoch, Option<Instant>)> = {
        let holder = node.holder.lock().unwrap_or_else(|e| e.into_inner());
        holder
            .held(now)
            .into_iter()
            .map(|(s, e)| {
                let until = holder.until(&s);
                (s, e, until)
            })
            .collect()
    };
    let health = node.health.current().score;
    node.db.read(|s| GatewayView {
        health,
        sets: s
            .sets
            .values()
            .filter(|set| set.kind == SetKind::Gateway && set.has_member(&MemberRef::Node(me)))
            .map(|set| {
                let lease_until = (set.primary_node() == Some(me))
                    .then(|| {
                        held.iter()
                            .find(|(id, e, _)| *id == set.id && *e == set.epoch)
                            .and_then(|(_, _, u)| *u)
                    })
                    .flatten();
                let view = GatewaySetView {
                    epoch: set.epoch,
                    active: set.primary_node(),
                    passive: match set.secondary {
                        Some(MemberRef::Node(n)) => Some(n),
                        _ => None,
                    },
                    health_threshold: set.health_threshold,
                    serving_members: serving_members(s, &set.member_nodes()),
                    lease_until,
                };
                (set.id.clone(), view)
            })
            .collect(),
    })
}

/// Members able to serve (up, not drained), each with its first link's address.
fn serving_members(s: &ClusterState, members: &[NodeId]) -> Vec<(NodeId, std::net::IpAddr)> {
    members
        .iter()
        .filter_map(|n| {
            let m = s.members.get(n).filter(|m| m.eligible())?;
            Some((*n, m.primary_ip()?))
        })
        .collect()
}

/// This node's answer to a health question.
pub fn answer_health(node: &NodeShared) -> Vec<u8> {
    let acting = node
        .holder
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .held(Instant::now());
    wire::encode(&HealthAnswer {
        node: node.id(),
        score: node.health.current().score,
        acting,
    })
}

#[async_trait::async_trait]
impl GatewayControl for NodeGatewayControl {
    fn node(&self) -> NodeId {
        self.node.id()
    }

    fn view(&self) -> watch::Receiver<GatewayView> {
        self.view.clone()
    }

    async fn query_health(&self, node: NodeId, deadline: Duration) -> Result<HealthAnswer, String> {
        let addrs = self
            .node
            .addrs_of(node)
            .ok_or_else(|| format!("node {node} is not a member"))?;
        let (_, body) = self
            .node
            .net
            .call(&addrs, HEALTH_METHOD, vec![], deadline)
            .await
            .map_err(|e| e.to_string())?;
        wire::decode(&body)
    }

    async fn request_takeover(&self, set: &str, epoch: Epoch, to: NodeId) -> Result<(), String> {
        let req = AdminRequest::Takeover {
            set: set.to_string(),
            to: MemberRef::Node(to),
            epoch: Some(epoch),
        };
        crate::admin::execute(&self.node, req)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    /// Records through the leader. A write refused because no leader is known (a
    /// node that was paused while it led, and resumed deposed, records its stop while
    /// the cluster elects) certainly did not commit: it is tried again for a few
    /// seconds. Any other failure may have committed and is not retried (no
    /// duplicate events).
    async fn record(&self, event: Event) {
        for _ in 0..RECORD_TRIES {
            let cmd = ClusterCommand::RecordEvent {
                event: event.clone(),
            };
            match self.node.write(cmd).await {
                Ok(_) => return,
                Err(e) if e.contains("configuration database leader") => {
                    tokio::time::sleep(RECORD_RETRY).await;
                }
                Err(e) => {
                    tracing::warn!(?event, "could not record event: {e}");
                    return;
                }
            }
        }
        tracing::warn!(?event, "could not record event: no leader");
    }
}

/// One export as clients find it.
#[derive(serde::Serialize, serde::Deserialize, Clone, Debug, PartialEq)]
pub struct ExportView {
    pub name: String,
    pub set: String,
    pub volume: String,
    /// `active-passive` or `active-active`.
    pub policy: ExportPolicy,
    pub nfs_port: Option<u16>,
    pub s3_port: Option<u16>,
    /// The set's Active (Primary), per this node's replica.
    pub active: Option<NodeId>,
    pub epoch: Option<Epoch>,
    /// Where to connect: the export address (active-passive), or every member able to
    /// serve (active-active: spread requests over them, skip those that refuse).
    pub addresses: Vec<String>,
}

/// The exports of this node's configuration with their current addresses.
pub fn exports(node: &NodeShared) -> Vec<ExportView> {
    node.db.read(|s| {
        node.cfg
            .gateway
            .exports
            .iter()
            .map(|e| {
                let set = s.sets.get(&e.set);
                let addresses = match e.policy {
                    ExportPolicy::ActivePassive => vec![e.address.to_string()],
                    ExportPolicy::ActiveActive => set
                        .map(|set| serving_members(s, &set.member_nodes()))
                        .unwrap_or_default()
                        .into_iter()
                        .map(|(_, ip)| ip.to_string())
                        .collect(),
                };
                ExportView {
                    name: e.name.clone(),
                    set: e.set.clone(),
                    volume: e.volume.clone(),
                    policy: e.policy,
                    nfs_port: e.nfs_port,
                    s3_port: e.s3_port,
                    active: set.and_then(|s| s.primary_node()),
                    epoch: set.map(|s| s.epoch),
                    addresses,
                }
            })
            .collect()
    })
}

/// `GET /v1/gateway/exports`: open like `/v1/status` (addresses only, no data).
pub fn router(node: Arc<NodeShared>) -> Router {
    Router::new()
        .route("/v1/gateway/exports", get(get_exports))
        .with_state(node)
}

async fn get_exports(State(node): State<Arc<NodeShared>>) -> Json<Vec<ExportView>> {
    Json(exports(&node))
}
