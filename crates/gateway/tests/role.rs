//! The gateway role's loops against a scripted node (no processes, no cluster): it
//! serves only as the Active under a lease, closes before the lease ends when it is
//! not renewed, closes at once when deposed, gives up below its health threshold, and
//! as the Passive asks for takeover when the Active is silent or unhealthy; with
//! `gateway.hold = { interface }` (root only), it adds and removes the address with
//! the listeners.

use keel_config::{ExportConfig, ExportPolicy, GatewayConfig};
use keel_core::{Epoch, Event, EventKind, NodeId};
use keel_gateway::{
    Endpoint, ExportServers, GatewayControl, GatewayRole, GatewaySetView, GatewayView,
    HealthAnswer, OwnerGuard, ServeError, ServeRequest, Serving,
};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;

const MARGIN_MS: u64 = 100;

struct Script {
    me: NodeId,
    view: watch::Sender<GatewayView>,
    answers: Mutex<BTreeMap<NodeId, Result<u8, String>>>,
    takeovers: Mutex<Vec<(String, Epoch, NodeId)>>,
    events: Mutex<Vec<Event>>,
}

#[async_trait::async_trait]
impl GatewayControl for Script {
    fn node(&self) -> NodeId {
        self.me
    }
    fn view(&self) -> watch::Receiver<GatewayView> {
        self.view.subscribe()
    }
    async fn query_health(&self, node: NodeId, _: Duration) -> Result<HealthAnswer, String> {
        let a = self.answers.lock().unwrap().get(&node).cloned();
        match a.unwrap_or_else(|| Err("refused".into())) {
            Ok(score) => Ok(HealthAnswer {
                node,
                score,
                acting: vec![],
            }),
            Err(e) => Err(e),
        }
    }
    async fn request_takeover(&self, set: &str, epoch: Epoch, to: NodeId) -> Result<(), String> {
        self.takeovers
            .lock()
            .unwrap()
            .push((set.to_string(), epoch, to));
        Ok(())
    }
    async fn record(&self, event: Event) {
        self.events.lock().unwrap().push(event);
    }
}

/// Records what is started and stopped; each start hands back the owner guard.
#[derive(Default)]
struct Servers {
    running: Arc<Mutex<BTreeMap<Endpoint, OwnerGuard>>>,
    stops: Arc<Mutex<Vec<Endpoint>>>,
}

struct Running {
    ep: Endpoint,
    running: Arc<Mutex<BTreeMap<Endpoint, OwnerGuard>>>,
    stops: Arc<Mutex<Vec<Endpoint>>>,
}

#[async_trait::async_trait]
impl ExportServers for Servers {
    async fn start(&self, req: ServeRequest) -> Result<Box<dyn Serving>, ServeError> {
        let ep = Endpoint {
            export: req.export.clone(),
            protocol: req.protocol,
            addr: req.addr,
        };
        self.running.lock().unwrap().insert(ep.clone(), req.owner);
        Ok(Box::new(Running {
            ep,
            running: self.running.clone(),
            stops: self.stops.clone(),
        }))
    }
}

#[async_trait::async_trait]
impl Serving for Running {
    async fn stop(self: Box<Self>) {
        self.running.lock().unwrap().remove(&self.ep);
        self.stops.lock().unwrap().push(self.ep.clone());
    }
}

fn cfg() -> GatewayConfig {
    GatewayConfig {
        health_poll_ms: 20,
        health_deadline_ms: 20,
        detect_after_ms: 100,
        stop_before_lease_end_ms: MARGIN_MS,
        hold: Default::default(),
        exports: vec![ExportConfig {
            name: "default".into(),
            set: "gw".into(),
            address: "127.0.10.1".parse().unwrap(),
            nfs_port: Some(7120),
            s3_port: Some(7121),
            volume: "default".into(),
            policy: ExportPolicy::ActivePassive,
        }],
    }
}

fn view(active: NodeId, passive: NodeId, lease_until: Option<Instant>, health: u8) -> GatewayView {
    let set = GatewaySetView {
        epoch: Epoch(4),
        active: Some(active),
        passive: Some(passive),
        health_threshold: 50,
        serving_members: vec![],
        lease_until,
    };
    GatewayView {
        health,
        sets: [("gw".to_string(), set)].into(),
    }
}

fn start(me: NodeId, v: GatewayView) -> (Arc<Script>, Servers, keel_gateway::RoleHandle) {
    start_with(cfg(), me, v)
}

fn start_with(
    cfg: GatewayConfig,
    me: NodeId,
    v: GatewayView,
) -> (Arc<Script>, Servers, keel_gateway::RoleHandle) {
    let (tx, _) = watch::channel(v);
    let script = Arc::new(Script {
        me,
        view: tx,
        answers: Mutex::new(BTreeMap::new()),
        takeovers: Mutex::new(vec![]),
        events: Mutex::new(vec![]),
    });
    let servers = Servers::default();
    let handle = GatewayRole::new(
        cfg,
        script.clone(),
        Arc::new(Servers {
            running: servers.running.clone(),
            stops: servers.stops.clone(),
        }),
    )
    .spawn();
    (script, servers, handle)
}

async fn wait(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn kinds(s: &Script) -> Vec<EventKind> {
    s.events.lock().unwrap().iter().map(|e| e.kind).collect()
}

#[tokio::test]
async fn the_active_serves_under_its_lease_and_closes_before_it_ends() {
    let lease = Duration::from_millis(400);
    let (script, servers, handle) = start(1, view(1, 2, Some(Instant::now() + lease), 100));
    wait("both endpoints served", || {
        servers.running.lock().unwrap().len() == 2
    })
    .await;
    let addrs: Vec<String> = servers
        .running
        .lock()
        .unwrap()
        .keys()
        .map(|e| e.addr.to_string())
        .collect();
    assert_eq!(addrs, ["127.0.10.1:7120", "127.0.10.1:7121"]);

    // --- renewals keep it serving, with a guard that follows the lease
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        script
            .view
            .send_replace(view(1, 2, Some(Instant::now() + lease), 100));
    }
    assert!(servers.stops.lock().unwrap().is_empty());
    let guards: Vec<OwnerGuard> = servers.running.lock().unwrap().values().cloned().collect();
    assert!(guards.iter().all(OwnerGuard::owns));

    // --- no more renewals: closed, and the guards refuse from the lease's end less the
    // margin on, whenever the loop gets to run
    let until = Instant::now() + lease;
    script.view.send_replace(view(1, 2, Some(until), 100));
    wait("both endpoints closed", || {
        servers.running.lock().unwrap().is_empty()
    })
    .await;
    assert_eq!(servers.stops.lock().unwrap().len(), 2);
    assert!(guards.iter().all(|g| !g.owns()));
    wait("the stop events", || {
        kinds(&script)
            .iter()
            .filter(|k| **k == EventKind::GatewayStopped)
            .count()
            == 2
    })
    .await;
    let detail = script.events.lock().unwrap().last().unwrap().detail.clone();
    assert!(detail.contains("not renewed"), "{detail}");
    handle.stop().await;
}

#[tokio::test]
async fn a_deposed_active_closes_at_once_and_stop_closes_everything() {
    let far = Some(Instant::now() + Duration::from_secs(30));
    let (script, servers, handle) = start(1, view(1, 2, far, 100));
    wait("served", || servers.running.lock().unwrap().len() == 2).await;
    // --- the replica shows node 2 Active (node 1's lease has not run out yet)
    script.view.send_replace(view(2, 1, None, 100));
    wait("closed", || servers.running.lock().unwrap().is_empty()).await;
    // --- Active again: served again; stopping the role closes it
    script.view.send_replace(view(1, 2, far, 100));
    wait("served again", || {
        servers.running.lock().unwrap().len() == 2
    })
    .await;
    handle.stop().await;
    assert!(servers.running.lock().unwrap().is_empty());
    assert_eq!(servers.stops.lock().unwrap().len(), 4);
}

#[tokio::test]
async fn an_active_below_its_threshold_gives_up_to_its_passive() {
    let far = Some(Instant::now() + Duration::from_secs(30));
    let (script, servers, handle) = start(1, view(1, 2, far, 100));
    wait("served", || servers.running.lock().unwrap().len() == 2).await;
    script.view.send_replace(view(1, 2, far, 30));
    wait("closed", || servers.running.lock().unwrap().is_empty()).await;
    wait("a handover request", || {
        !script.takeovers.lock().unwrap().is_empty()
    })
    .await;
    assert_eq!(
        script.takeovers.lock().unwrap()[0],
        ("gw".to_string(), Epoch(4), 2)
    );
    wait("the event", || {
        kinds(&script).contains(&EventKind::GatewayGaveUp)
    })
    .await;
    handle.stop().await;
}

#[tokio::test]
async fn the_passive_asks_for_takeover_when_the_active_is_silent_or_unhealthy() {
    // --- node 2 is the Passive; the Active (1) answers healthy: nothing asked
    let (script, servers, handle) = start(2, view(1, 2, None, 100));
    script.answers.lock().unwrap().insert(1, Ok(90));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(script.takeovers.lock().unwrap().is_empty());
    assert!(servers.running.lock().unwrap().is_empty());
    // --- the Active stops answering: asked once the detection budget has passed
    script
        .answers
        .lock()
        .unwrap()
        .insert(1, Err("connection refused".into()));
    wait("a takeover request", || {
        !script.takeovers.lock().unwrap().is_empty()
    })
    .await;
    assert_eq!(
        script.takeovers.lock().unwrap()[0],
        ("gw".to_string(), Epoch(4), 2)
    );
    wait("the event", || {
        kinds(&script).contains(&EventKind::GatewayTakeoverAsked)
    })
    .await;
    handle.stop().await;

    // --- an unhealthy answer asks at once
    let (script, _servers, handle) = start(2, view(1, 2, None, 100));
    script.answers.lock().unwrap().insert(1, Ok(10));
    wait("a takeover request", || {
        !script.takeovers.lock().unwrap().is_empty()
    })
    .await;
    let detail = script.events.lock().unwrap()[0].detail.clone();
    assert!(detail.contains("health 10"), "{detail}");
    handle.stop().await;
}

/// A network namespace with a veth pair `d0`/`d1` (up), deleted on drop.
struct Netns(String);

impl Netns {
    fn new() -> Option<Netns> {
        let name = format!("kgwhold{}", std::process::id());
        let ip = |args: &[&str]| {
            std::process::Command::new("ip")
                .args(args)
                .status()
                .is_ok_and(|s| s.success())
        };
        if !ip(&["netns", "add", &name]) {
            return None;
        }
        let ns = Netns(name);
        let ok = ip(&[
            "-n", &ns.0, "link", "add", "d0", "type", "veth", "peer", "name", "d1",
        ]) && ip(&["-n", &ns.0, "link", "set", "d1", "up"])
            && ip(&["-n", &ns.0, "link", "set", "d0", "up"]);
        ok.then_some(ns)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip")
            .args(["netns", "del", &self.0])
            .status();
    }
}

/// `gateway.hold = { interface = "d0" }`, in a namespace of its own (root only): a
/// stale copy of the address is removed at start-up; the Active adds the address to
/// d0 only with a lease and before it binds; without renewals it closes the listeners
/// and then removes the address; events name the interface, address and epoch.
#[test]
fn an_interface_holder_adds_the_address_under_the_lease_and_removes_it() {
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: needs root (a network namespace, netlink, AF_PACKET)");
        return;
    }
    let Some(ns) = Netns::new() else {
        eprintln!("skipped: cannot make a network namespace with a veth pair");
        return;
    };
    let addr: std::net::Ipv4Addr = "198.18.140.9".parse().unwrap();
    let result = keel_addr::block_in_namespace(&ns.0, move || async move {
        let on_d0 = || async move {
            keel_addr::addresses("d0")
                .await
                .unwrap()
                .iter()
                .any(|(a, _)| *a == addr)
        };
        // A stale copy, as a killed incarnation leaves it.
        keel_addr::add("d0", addr, 32).await.unwrap();
        let mut c = cfg();
        c.hold = keel_config::AddressHold::Interface("d0".into());
        c.exports[0].address = addr.into();
        let (script, servers, handle) = start_with(c, 1, view(2, 1, None, 100));

        // --- the Passive removes the stale copy at start-up and adds nothing
        let deadline = Instant::now() + Duration::from_secs(10);
        while on_d0().await {
            assert!(Instant::now() < deadline, "the stale address stayed");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        wait("address_removed (stale)", || {
            kinds(&script).contains(&EventKind::AddressRemoved)
        })
        .await;
        assert!(servers.running.lock().unwrap().is_empty());

        // --- Active with a lease: the address goes on d0, then the endpoints open
        let lease = Duration::from_millis(600);
        script
            .view
            .send_replace(view(1, 2, Some(Instant::now() + lease), 100));
        wait("both endpoints served", || {
            servers.running.lock().unwrap().len() == 2
        })
        .await;
        assert!(on_d0().await, "serving without the address on d0");
        let added = script
            .events
            .lock()
            .unwrap()
            .iter()
            .find(|e| e.kind == EventKind::AddressAdded)
            .cloned()
            .expect("address_added");
        assert_eq!(added.epoch, Some(Epoch(4)));
        assert!(
            added.detail.contains("d0") && added.detail.contains("198.18.140.9"),
            "{}",
            added.detail
        );

        // --- no renewal: listeners closed, then the address removed
        let deadline = Instant::now() + Duration::from_secs(10);
        while on_d0().await {
            assert!(
                Instant::now() < deadline,
                "the address stayed after the lease"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(servers.running.lock().unwrap().is_empty());
        assert_eq!(servers.stops.lock().unwrap().len(), 2);
        let removals = || {
            kinds(&script)
                .into_iter()
                .filter(|k| *k == EventKind::AddressRemoved)
        };
        wait("address_removed (lease not renewed)", || {
            removals().count() == 2
        })
        .await;
        handle.stop().await;
    });
    result.expect("the namespace's thread");
}
