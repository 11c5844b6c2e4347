//! Starting and stopping a node: over any transport (`Node::start`, used by the
//! in-process harness), or over real sockets (`run`, used by `keel node`).

use crate::boot;
use crate::error::NodeError;
use crate::handler::NodeHandler;
use crate::node::NodeShared;
use crate::raft_net::NetRaftTransport;
use crate::{admin, arbiter, heartbeat, membership};
use keel_confdb::ConfDb;
use keel_config::NodeConfig;
use keel_net::{ClusterSecret, HttpsTransport, LinkFaults, NodeIdentity, Transport, UdpLinks};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;

/// A started node and its tasks.
pub struct Node {
    pub shared: Arc<NodeShared>,
    tasks: Vec<JoinHandle<()>>,
    fatal: tokio::sync::mpsc::Receiver<NodeError>,
}

/// What a node needs from outside: its transport and the keys from the cluster secret.
pub struct NodeIo {
    pub net: Arc<dyn Transport>,
    pub faults: LinkFaults,
    pub handler: Arc<NodeHandler>,
    pub admin_token: String,
    pub datagram_key: [u8; 32],
    /// The process id the node reports (`std::process::id()` for a real process; the
    /// in-process harness gives each simulated process its own).
    pub pid: u32,
}

impl Node {
    pub async fn start(cfg: NodeConfig, io: NodeIo) -> Result<Node, NodeError> {
        let data_err = |e: std::io::Error| NodeError::DataDir {
            path: cfg.data_dir.display().to_string(),
            reason: e.to_string(),
        };
        let boot = boot::detect(&cfg.data_dir).map_err(data_err)?;
        tracing::info!(node = cfg.id, ?boot, "starting");
        let raft_net = Arc::new(NetRaftTransport {
            net: io.net.clone(),
        });
        let db = ConfDb::open(
            &cfg.data_dir,
            cfg.id,
            keel_confdb::recommended_config(&cfg.cluster),
            raft_net,
        )
        .await
        .map_err(|e| NodeError::ConfDb(e.to_string()))?;
        let storage = if cfg.roles.contains(&keel_core::NodeRole::Storage) {
            let dir = cfg.data_dir.join("objects");
            Some(
                crate::storage::StorageService::open(&dir)
                    .map_err(|e| NodeError::DataDir {
                        path: dir.display().to_string(),
                        reason: e.to_string(),
                    })?
                    .with_async_replication(cfg.async_replication.clone()),
            )
        } else {
            None
        };
        let shared = Arc::new(NodeShared::new(
            cfg,
            boot,
            db,
            io.net,
            io.faults,
            io.admin_token,
            io.datagram_key,
            io.pid,
            storage,
        ));
        io.handler.install(shared.clone());
        let (fatal_tx, fatal) = tokio::sync::mpsc::channel(4);
        let t = &shared.cfg.timings;
        let mut tasks = vec![
            shared.health.spawn(
                shared.cfg.data_dir.clone(),
                Duration::from_millis(t.health_check_ms),
                Duration::from_millis(t.slow_threshold_ms),
            ),
            tokio::spawn(heartbeat::run(shared.clone())),
            tokio::spawn(arbiter::run(shared.clone())),
        ];
        if shared.storage.is_some() {
            tasks.push(tokio::spawn(crate::storage::catchup::run(shared.clone())));
            tasks.push(tokio::spawn(crate::storage::rebalance::run(shared.clone())));
            tasks.push(tokio::spawn(crate::storage::sweep::run(shared.clone())));
        }
        let joiner = shared.clone();
        let tx = fatal_tx.clone();
        tasks.push(tokio::spawn(async move {
            if let Err(e) = membership::join(joiner).await {
                let _ = tx.send(e).await;
            }
        }));
        if shared.cfg.discovery.multicast {
            let announcer = shared.clone();
            tasks.push(tokio::spawn(async move {
                if let Err(e) = membership::announce(announcer).await {
                    tracing::warn!("multicast discovery off: {e}");
                }
            }));
        }
        Ok(Node {
            shared,
            tasks,
            fatal,
        })
    }

    /// Resolves when the node cannot go on (e.g. its join was refused).
    pub async fn fatal(&mut self) -> NodeError {
        match self.fatal.recv().await {
            Some(e) => e,
            None => std::future::pending().await,
        }
    }

    /// Stops every task, closes the configuration database, and records a clean
    /// shutdown so the next start is a restart, not a return after failure.
    pub async fn stop(self) {
        for t in &self.tasks {
            t.abort();
        }
        if let Err(e) = self.shared.db.shutdown().await {
            tracing::warn!("configuration database shutdown: {e}");
        }
        if let Err(e) = boot::mark_clean_shutdown(&self.shared.cfg.data_dir) {
            tracing::warn!("could not record clean shutdown: {e}");
        }
    }
}

/// Runs a node on real sockets until `shutdown` resolves or the node fails, without
/// protocol servers (no export is served).
pub async fn run(
    cfg: NodeConfig,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), NodeError> {
    run_with_gateway(cfg, shutdown, None).await
}

/// Makes the protocol servers the gateway role starts exports with, once the node is
/// up (they may take what they need of it, e.g. its file service). Plugged in by the
/// caller: `keel node` (crates/keel/src/gateway_servers.rs).
pub type MakeExportServers =
    Box<dyn FnOnce(&Arc<NodeShared>) -> Arc<dyn keel_gateway::ExportServers> + Send>;

/// [`run`], with the gateway role serving `[gateway]`'s exports through `servers`
/// on a node with the `gateway` role.
pub async fn run_with_gateway(
    cfg: NodeConfig,
    shutdown: impl std::future::Future<Output = ()>,
    servers: Option<MakeExportServers>,
) -> Result<(), NodeError> {
    let secret =
        ClusterSecret::load(&cfg.secret_file).map_err(|e| NodeError::Secret(e.to_string()))?;
    let ips: Vec<_> = cfg.links.iter().map(|l| l.addr).collect();
    let identity =
        NodeIdentity::issue(&secret, cfg.id, &ips).map_err(|e| NodeError::Secret(e.to_string()))?;
    let faults = LinkFaults::new();
    let handler = NodeHandler::new();
    let on = |port: u16| -> Vec<(String, SocketAddr)> {
        cfg.links
            .iter()
            .map(|l| (l.name.clone(), SocketAddr::new(l.addr, port)))
            .collect()
    };
    let net_err = |e: keel_net::NetError| NodeError::Net(e.to_string());
    let udp = UdpLinks::bind(
        on(cfg.ports.heartbeat),
        secret.datagram_key(),
        handler.clone(),
        faults.clone(),
    )
    .map_err(net_err)?;
    let local: Vec<_> = cfg.links.iter().map(|l| (l.name.clone(), l.addr)).collect();
    let net = HttpsTransport::new(&identity, &local, faults.clone())
        .map_err(net_err)?
        .with_datagrams(udp);
    let rpc = keel_net::serve_rpc(
        on(cfg.ports.rpc),
        identity.server_config(),
        handler.clone(),
        faults.clone(),
    )
    .map_err(net_err)?;
    // The HTTP port (admin and native data API) speaks TLS only, with this node's
    // certificate under the cluster CA: plain HTTP gets no answer.
    let http_tls = axum_server::tls_rustls::RustlsConfig::from_config(
        identity
            .http_server_config()
            .map_err(|e| NodeError::Secret(e.to_string()))?,
    );
    let mut admin_listeners = vec![];
    for (_, addr) in on(cfg.ports.admin) {
        let l = std::net::TcpListener::bind(addr)
            .and_then(|l| l.set_nonblocking(true).map(|()| l))
            .map_err(|e| NodeError::Net(format!("admin port {addr}: {e}")))?;
        admin_listeners.push(l);
    }
    let io = NodeIo {
        net: Arc::new(net),
        faults,
        handler,
        admin_token: secret.admin_token(),
        datagram_key: secret.datagram_key(),
        pid: std::process::id(),
    };
    let mut node = Node::start(cfg, io).await?;
    let mut admin_tasks = vec![];
    for l in admin_listeners {
        // The native API: on nodes that store or serve data, not on a control-only
        // tiebreaker.
        let roles = &node.shared.cfg.roles;
        let mut app = admin::router(node.shared.clone());
        if roles.contains(&keel_core::NodeRole::Storage)
            || roles.contains(&keel_core::NodeRole::Gateway)
        {
            app = app.merge(crate::gateway::api::router(node.shared.clone()));
        }
        if roles.contains(&keel_core::NodeRole::Gateway) {
            app = app.merge(crate::gateway_control::router(node.shared.clone()));
        }
        let tls = http_tls.clone();
        admin_tasks.push(tokio::spawn(async move {
            let _ = axum_server::from_tcp_rustls(l, tls)
                .serve(app.into_make_service())
                .await;
        }));
    }
    let gateway = match servers {
        Some(make)
            if node
                .shared
                .cfg
                .roles
                .contains(&keel_core::NodeRole::Gateway) =>
        {
            let control = crate::gateway_control::NodeGatewayControl::start(node.shared.clone());
            let role = keel_gateway::GatewayRole::new(
                node.shared.cfg.gateway.clone(),
                control,
                make(&node.shared),
            );
            Some(role.spawn())
        }
        _ => None,
    };
    let result = tokio::select! {
        _ = shutdown => Ok(()),
        e = node.fatal() => Err(e),
    };
    if let Some(g) = gateway {
        g.stop().await;
    }
    for t in admin_tasks {
        t.abort();
    }
    rpc.shutdown().await;
    node.stop().await;
    result
}
