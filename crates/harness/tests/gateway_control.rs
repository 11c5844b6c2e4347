//! The node's side of the gateway role (`keel_node::gateway_control`) in an in-process
//! cluster: the view shows the Active with its lease (and only to the Active), the
//! Passive as Passive; a health question over the cluster network reaches the Active
//! and names what it acts for; a takeover request fenced by an old epoch changes
//! nothing, one at the current epoch makes the Passive the Active, which then gets
//! the lease; and the role itself, on every node with a recording server, serves on
//! exactly one node and moves with a crash.

mod common;

use anyhow::{ensure, Context};
use common::*;
use keel_core::{Composition, Epoch, MemberRef, NodeId, SetKind, SetSpec};
use keel_gateway::{ExportServers, GatewayControl, GatewayRole, ServeError, ServeRequest, Serving};
use keel_harness::{wait_until, Cluster};
use keel_node::admin_api::AdminRequest;
use keel_node::gateway_control::NodeGatewayControl;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tracing::info;

async fn gateway_set(c: &Cluster) -> anyhow::Result<(NodeId, Epoch, NodeId)> {
    let spec = SetSpec {
        id: "gw".into(),
        kind: SetKind::Gateway,
        composition: Composition::NWay,
        members: c.ids().into_iter().map(MemberRef::Node).collect(),
        health_threshold: 50,
        auto_giveback_ms: None,
    };
    c.admin(AdminRequest::CreateSet { spec }).await?;
    let (p, e) = c.wait_acting("gw", STEP).await?;
    let s = c
        .set("gw")
        .and_then(|s| match s.secondary {
            Some(MemberRef::Node(n)) => Some(n),
            _ => None,
        })
        .context("gw has a Secondary")?;
    Ok((p, e, s))
}

#[tokio::test]
async fn the_view_health_questions_and_fenced_takeover() -> anyhow::Result<()> {
    init_tracing();
    let _one = serial().await;
    info!("--- start 3 nodes and gateway set gw");
    let c = Cluster::start(3).await?;
    let (p, e, s) = gateway_set(&c).await?;
    let active = NodeGatewayControl::start(c.node(p)?);
    let passive = NodeGatewayControl::start(c.node(s)?);

    info!("--- the Active sees its lease; the Passive sees itself Passive, no lease");
    wait_until("the Active's view to carry its lease", STEP, || {
        let v = active.view().borrow().clone();
        v.sets
            .get("gw")
            .is_some_and(|g| g.active == Some(p) && g.epoch == e && g.lease_until.is_some())
    })
    .await?;
    let v = passive.view().borrow().clone();
    let g = v.sets.get("gw").context("the Passive is a member of gw")?;
    ensure!(g.active == Some(p) && g.passive == Some(s) && g.lease_until.is_none());
    ensure!(g.serving_members.len() == 3, "{:?}", g.serving_members);

    info!("--- node {s} asks node {p} for its health");
    let h = passive
        .query_health(p, Duration::from_secs(2))
        .await
        .map_err(anyhow::Error::msg)?;
    ensure!(h.node == p, "{h:?}");
    ensure!(h.acting.contains(&("gw".to_string(), e)), "{h:?}");

    info!("--- a takeover fenced by another epoch is refused");
    let stale = passive.request_takeover("gw", Epoch(e.0 + 7), s).await;
    ensure!(stale.is_err(), "{stale:?}");
    ensure!(c.set("gw").and_then(|x| x.primary_node()) == Some(p));

    info!("--- a takeover at the current epoch makes node {s} the Active, with the lease");
    passive
        .request_takeover("gw", e, s)
        .await
        .map_err(anyhow::Error::msg)?;
    wait_until(
        &format!("node {s} to act as the Active under a lease"),
        STEP,
        || {
            let v = passive.view().borrow().clone();
            v.sets
                .get("gw")
                .is_some_and(|g| g.active == Some(s) && g.epoch > e && g.lease_until.is_some())
        },
    )
    .await?;
    wait_until("the old Active's view to lose the lease", STEP, || {
        let v = active.view().borrow().clone();
        v.sets
            .get("gw")
            .is_some_and(|g| g.active == Some(s) && g.lease_until.is_none())
    })
    .await?;
    c.shutdown().await;
    Ok(())
}

/// Records which nodes serve which endpoints.
#[derive(Clone, Default)]
struct Recorder {
    serving: Arc<Mutex<BTreeMap<(NodeId, String), ()>>>,
}

struct Served {
    key: (NodeId, String),
    serving: Arc<Mutex<BTreeMap<(NodeId, String), ()>>>,
}

#[async_trait::async_trait]
impl ExportServers for Recorder {
    async fn start(&self, req: ServeRequest) -> Result<Box<dyn Serving>, ServeError> {
        let key = (req.node, format!("{} {}", req.protocol, req.addr));
        let mut serving = self.serving.lock().unwrap_or_else(|e| e.into_inner());
        // One host: the address is free only when no other node listens on it.
        if serving.keys().any(|(n, ep)| *n != req.node && *ep == key.1) {
            return Err(ServeError::AddressInUse { addr: req.addr });
        }
        serving.insert(key.clone(), ());
        Ok(Box::new(Served {
            key,
            serving: self.serving.clone(),
        }))
    }
}

#[async_trait::async_trait]
impl Serving for Served {
    async fn stop(self: Box<Self>) {
        self.serving
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.key);
    }
}

impl Recorder {
    fn nodes(&self) -> Vec<NodeId> {
        let mut v: Vec<NodeId> = self
            .serving
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .keys()
            .map(|(n, _)| *n)
            .collect();
        v.dedup();
        v
    }
}

#[tokio::test]
async fn the_role_serves_on_the_active_alone_and_moves_with_a_crash() -> anyhow::Result<()> {
    init_tracing();
    let _one = serial().await;
    info!("--- start 3 nodes, gateway set gw, and the role on every node");
    let mut c = Cluster::start(3).await?;
    let (p, _, _) = gateway_set(&c).await?;
    let recorder = Recorder::default();
    let cfg = keel_config::GatewayConfig {
        exports: vec![keel_config::ExportConfig {
            name: "default".into(),
            set: "gw".into(),
            address: "127.0.10.1".parse()?,
            nfs_port: Some(7120),
            s3_port: Some(7121),
            volume: "default".into(),
            policy: keel_config::ExportPolicy::ActivePassive,
        }],
        ..Default::default()
    };
    let mut roles = BTreeMap::new();
    for id in c.ids() {
        let control = NodeGatewayControl::start(c.node(id)?);
        let role = GatewayRole::new(cfg.clone(), control, Arc::new(recorder.clone()));
        roles.insert(id, role.spawn());
    }
    wait_until("the Active to serve", STEP, || recorder.nodes() == [p]).await?;

    info!("--- crash node {p}: its role goes with it; another node serves");
    if let Some(r) = roles.remove(&p) {
        r.stop().await;
    }
    c.crash(p).await?;
    wait_until("another node to serve", STEP, || {
        let n = recorder.nodes();
        n.len() == 1 && n[0] != p
    })
    .await?;
    let now = c.set("gw").and_then(|s| s.primary_node());
    ensure!(now == Some(recorder.nodes()[0]), "{now:?}");
    for (_, r) in roles {
        r.stop().await;
    }
    c.shutdown().await;
    Ok(())
}
