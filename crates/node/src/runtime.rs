//! Starting and stopping a node: over any transport (`Node::start`, used by the
//! in-process harness), or over real sockets (`run`, used by `keel node`).
//!
//! Owns which runtime runs what. `run` gives a node two: the process's runtime for the
//! data path (the native API, storage requests, replication, catch-up, rebalance) and a
//! small dedicated control runtime of its own threads for what failure detection and
//! leases depend on — Raft (its core, replication to followers, its RPC both ways),
//! heartbeats sent and received, the arbiter (detection, leadership confirmation, lease
//! grants and revocations), and the health checks. Must never run data-path work on
//! the control runtime: a heartbeat or a Raft append must not wait behind a copy, a
//! checksum or an fsync of bulk data.

use crate::boot;
use crate::error::NodeError;
use crate::handler::NodeHandler;
use crate::node::NodeShared;
use crate::raft_net::NetRaftTransport;
use crate::wire::method;
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

/// The RPC methods of the control plane: served, and called, on the control runtime
/// over connections of their own (see `keel_net::HttpsTransport::with_control_methods`).
pub const CONTROL_METHODS: &[&str] = &[
    method::RAFT_APPEND,
    method::RAFT_VOTE,
    method::RAFT_SNAPSHOT,
    method::PING,
    method::SELF_TEST,
    method::REVOKE,
    // The Passive gateway's health question: under load it must not queue behind
    // data copies, or a working Active is taken for a failed one (seen in a run: a
    // takeover asked after 1.4 s of an overloaded Active's data queue).
    crate::gateway_control::HEALTH_METHOD,
];

/// Worker threads of the control runtime.
const CONTROL_THREADS: usize = 2;

/// How much nicer than the process the data path's threads run (see
/// [`lower_data_thread_priority`]).
const DATA_NICE: i32 = 10;

/// The real-time round-robin priority of the control runtime's threads (1 is the lowest
/// of 99; corosync, for the same purpose, runs at 99).
const CONTROL_RT_PRIORITY: i32 = 10;

/// How the control runtime's threads are scheduled, as [`raise_control_thread_priority`]
/// managed it on the last thread it ran on.
static CONTROL_SCHEDULING: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(0);

/// Raises the calling thread (a control runtime thread) above everything the machine
/// runs at normal priority: real-time round-robin scheduling at
/// [`CONTROL_RT_PRIORITY`] where the process may (root, `CAP_SYS_NICE`, or an
/// `RLIMIT_RTPRIO` that allows it), else the process's priority, with the data path's
/// threads below it. Measured on a 2-core machine saturated by puts and builds: a
/// heartbeat round needing 1 ms of CPU waited 75–230 ms on the run queue at normal
/// priority; the kernel's real-time throttling (95% of a period by default) bounds
/// what a runaway control thread could take.
fn raise_control_thread_priority() {
    let param = libc::sched_param {
        sched_priority: CONTROL_RT_PRIORITY,
    };
    // SAFETY: pid 0 is the calling thread; `param` outlives the call.
    let ok = unsafe { libc::sched_setscheduler(0, libc::SCHED_RR, &param) } == 0;
    CONTROL_SCHEDULING.store(if ok { 1 } else { 2 }, std::sync::atomic::Ordering::Relaxed);
}

/// Lowers the calling thread's CPU priority by [`DATA_NICE`]: `keel node` calls it on
/// every thread of its data runtime (workers and blocking pool), so that on a saturated
/// machine the control runtime's threads, left at the process's priority, run first.
/// Only lowers (which needs no privilege); failing, the thread keeps its priority.
pub fn lower_data_thread_priority() {
    // SAFETY: gettid, getpriority and setpriority act on the calling thread only and
    // touch no memory.
    unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        *libc::__errno_location() = 0;
        let current = libc::getpriority(libc::PRIO_PROCESS, tid);
        if current == -1 && *libc::__errno_location() != 0 {
            return;
        }
        let _ = libc::setpriority(libc::PRIO_PROCESS, tid, (current + DATA_NICE).min(19));
    }
}

impl Node {
    /// Starts a node with every task on the current runtime.
    pub async fn start(cfg: NodeConfig, io: NodeIo) -> Result<Node, NodeError> {
        Node::start_on(cfg, io, None).await
    }

    /// Starts a node; with `control`, Raft, heartbeats, the arbiter and the health
    /// checks run there, everything else on the current runtime.
    pub async fn start_on(
        cfg: NodeConfig,
        io: NodeIo,
        control: Option<tokio::runtime::Handle>,
    ) -> Result<Node, NodeError> {
        let control = control.unwrap_or_else(tokio::runtime::Handle::current);
        let data_err = |e: std::io::Error| NodeError::DataDir {
            path: cfg.data_dir.display().to_string(),
            reason: e.to_string(),
        };
        let boot = boot::detect(&cfg.data_dir).map_err(data_err)?;
        tracing::info!(node = cfg.id, ?boot, "starting");
        let raft_net = Arc::new(NetRaftTransport {
            net: io.net.clone(),
        });
        // Raft's tasks run on the runtime that opens it.
        let (dir, id, raft_cfg) = (
            cfg.data_dir.clone(),
            cfg.id,
            keel_confdb::recommended_config(&cfg.cluster),
        );
        let db = control
            .spawn(async move { ConfDb::open(&dir, id, raft_cfg, raft_net).await })
            .await
            .map_err(|e| NodeError::ConfDb(e.to_string()))?
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
        let health = {
            let _on = control.enter();
            shared.health.spawn(
                shared.cfg.data_dir.clone(),
                Duration::from_millis(t.health_check_ms),
                Duration::from_millis(t.slow_threshold_ms),
            )
        };
        let mut tasks = vec![
            health,
            control.spawn(heartbeat::run(shared.clone())),
            control.spawn(arbiter::run(shared.clone())),
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
    let control = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(CONTROL_THREADS)
        .thread_name("keel-control")
        .on_thread_start(raise_control_thread_priority)
        .enable_all()
        .build()
        .map_err(|e| NodeError::Net(format!("cannot start the control runtime: {e}")))?;
    let result = run_with(cfg, shutdown, control.handle().clone(), servers).await;
    // Dropping a runtime may block, which an async context must not do.
    control.shutdown_background();
    result
}

async fn run_with(
    cfg: NodeConfig,
    shutdown: impl std::future::Future<Output = ()>,
    control: tokio::runtime::Handle,
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
    // Datagram receivers and the RPC listeners run on the control runtime (the RPC
    // server hands every connection but control ones over to this, the data, runtime).
    let data = tokio::runtime::Handle::current();
    let on_control = control.enter();
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
        .with_control_methods(CONTROL_METHODS)
        .with_datagrams(udp);
    let rpc = keel_net::serve_rpc_on(
        on(cfg.ports.rpc),
        identity.server_config(),
        handler.clone(),
        faults.clone(),
        data,
    )
    .map_err(net_err)?;
    drop(on_control);
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
    let mut node = Node::start_on(cfg, io, Some(control.clone())).await?;
    match CONTROL_SCHEDULING.load(std::sync::atomic::Ordering::Relaxed) {
        1 => tracing::info!(
            priority = CONTROL_RT_PRIORITY,
            "control runtime: real-time round-robin scheduling"
        ),
        _ => tracing::warn!(
            "control runtime: normal scheduling (no permission for real-time priority); only the data path's threads run below it"
        ),
    }
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
    let mut for_dns: Option<(
        Arc<dyn keel_gateway::GatewayControl>,
        Arc<dyn keel_gateway::ExportServers>,
    )> = None;
    let gateway = match servers {
        Some(make)
            if node
                .shared
                .cfg
                .roles
                .contains(&keel_core::NodeRole::Gateway) =>
        {
            let control = crate::gateway_control::NodeGatewayControl::start(node.shared.clone());
            let servers = make(&node.shared);
            for_dns = Some((control.clone(), servers.clone()));
            let role =
                keel_gateway::GatewayRole::new(node.shared.cfg.gateway.clone(), control, servers);
            Some(role.spawn())
        }
        _ => None,
    };
    // Failover by name (seed 004): the cluster's DNS and the secondary ports.
    let dns = crate::dns_hook::DnsHook::start(node.shared.clone(), for_dns).await?;
    let result = tokio::select! {
        _ = shutdown => Ok(()),
        e = node.fatal() => Err(e),
    };
    dns.stop().await;
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
