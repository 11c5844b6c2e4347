//! [`Cluster`]: nodes `1..=n` of one cluster, each a real [`keel_node::Node`] on its
//! own runtime ([`NodeRuntime`]), talking over one [`MemNet`], with their data in a
//! tempdir. This file owns starting, crashing and restarting processes; fault
//! injection is in `faults.rs`, reading the cluster's state in `observe.rs`.
//!
//! Must never: reach into a node other than through its public state, or run a node's
//! work on the test's runtime.

use crate::checker::{InvariantChecker, Processes};
use crate::config::node_config;
use crate::error::HarnessError;
use crate::net::{MemNet, NodeAddrs};
use crate::runtime::NodeRuntime;
use crate::wait::wait_until;
use keel_config::{NodeConfig, TimingsConfig};
use keel_core::{MemberState, NodeId};
use keel_net::{Handler, LinkFaults};
use keel_node::{Node, NodeHandler, NodeIo, NodeShared};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// The admin token of every harness cluster.
pub const ADMIN_TOKEN: &str = "harness-admin-token";
const DATAGRAM_KEY: [u8; 32] = [7; 32];

/// How to start a cluster.
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// Nodes `1..=nodes`, all control nodes.
    pub nodes: NodeId,
    pub timings: TimingsConfig,
    /// How long the cluster may take to elect a leader and bring every node up.
    pub start_within: Duration,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        ClusterOptions {
            nodes: 3,
            timings: TimingsConfig::default(),
            start_within: Duration::from_secs(30),
        }
    }
}

/// A running process of a node.
pub(crate) struct Running {
    pub runtime: NodeRuntime,
    /// Kept so the node's task handles live as long as its process.
    pub _node: Node,
    pub shared: Arc<NodeShared>,
    pub faults: LinkFaults,
}

pub struct Cluster {
    pub(crate) net: Arc<MemNet>,
    pub(crate) configs: BTreeMap<NodeId, NodeConfig>,
    pub(crate) running: BTreeMap<NodeId, Running>,
    /// The process of every running node, for the checker.
    pub(crate) processes: Processes,
    /// The pid the next process reports: every process has its own, as on a host.
    next_pid: u32,
    dir: tempfile::TempDir,
}

impl Cluster {
    /// Starts nodes `1..=nodes` with the default timings and waits until a leader
    /// exists and every node is up.
    pub async fn start(nodes: NodeId) -> Result<Cluster, HarnessError> {
        Cluster::start_with(ClusterOptions {
            nodes,
            ..Default::default()
        })
        .await
    }

    pub async fn start_with(opts: ClusterOptions) -> Result<Cluster, HarnessError> {
        let dir = tempfile::Builder::new().prefix("keel-harness-").tempdir()?;
        let configs = (1..=opts.nodes)
            .map(|id| (id, node_config(dir.path(), id, opts.nodes, &opts.timings)))
            .collect();
        let mut cluster = Cluster {
            net: MemNet::new(),
            configs,
            running: BTreeMap::new(),
            processes: Arc::new(Mutex::new(BTreeMap::new())),
            next_pid: 1000,
            dir,
        };
        tracing::info!(nodes = opts.nodes, dir = %cluster.dir.path().display(), "harness: starting a cluster");
        for id in 1..=opts.nodes {
            cluster.launch(id).await?;
        }
        cluster.wait_ready(opts.start_within).await?;
        Ok(cluster)
    }

    /// Starts a process of node `id` on its data directory (first start or restart).
    async fn launch(&mut self, id: NodeId) -> Result<(), HarnessError> {
        let cfg = self
            .configs
            .get(&id)
            .cloned()
            .ok_or(HarnessError::UnknownNode(id))?;
        let runtime = NodeRuntime::spawn(id)?;
        let faults = LinkFaults::new();
        let handler = NodeHandler::new();
        let addrs = NodeAddrs {
            node: id,
            links: cfg.links.iter().map(|l| (l.name.clone(), l.addr)).collect(),
            rpc_port: cfg.ports.rpc,
            heartbeat_port: cfg.ports.heartbeat,
        };
        let as_handler: Arc<dyn Handler> = handler.clone();
        let transport = self
            .net
            .attach(&addrs, as_handler, faults.clone(), runtime.handle());
        let io = NodeIo {
            net: Arc::new(transport),
            faults: faults.clone(),
            handler,
            admin_token: ADMIN_TOKEN.into(),
            datagram_key: DATAGRAM_KEY,
            pid: self.next_pid,
        };
        self.next_pid += 1;
        let start_failed = |reason: String| HarnessError::NodeStart { node: id, reason };
        let node = runtime
            .handle()
            .spawn(Node::start(cfg, io))
            .await
            .map_err(|e| start_failed(e.to_string()))?
            .map_err(|e| start_failed(e.to_string()))?;
        let shared = node.shared.clone();
        lock(&self.processes).insert(id, shared.clone());
        self.running.insert(
            id,
            Running {
                runtime,
                _node: node,
                shared,
                faults,
            },
        );
        Ok(())
    }

    /// Waits until a leader exists, every node is a voter and is up, on the freshest
    /// replica.
    pub async fn wait_ready(&self, within: Duration) -> Result<(), HarnessError> {
        let n = self.configs.len();
        wait_until("a leader, every node a voter and up", within, || {
            let Some(leader) = self.leader().and_then(|l| self.node(l).ok()) else {
                return false;
            };
            let voters = leader
                .db
                .raft()
                .metrics()
                .borrow()
                .membership_config
                .membership()
                .voter_ids()
                .count();
            voters == n
                && leader.db.read(|s| {
                    s.members.len() == n && s.members.values().all(|m| m.state == MemberState::Up)
                })
        })
        .await
    }

    /// Crashes node `id` (SIGKILL): its process and every task of it are gone at once,
    /// its addresses refuse connections, nothing it had in flight arrives. Its data
    /// directory stays, without a clean-shutdown marker.
    pub async fn crash(&mut self, id: NodeId) -> Result<(), HarnessError> {
        let mut running = self
            .running
            .remove(&id)
            .ok_or(HarnessError::NotRunning(id))?;
        tracing::info!(node = id, "harness: crash");
        // Stopped first, so that nothing of it runs once its ports refuse connections
        // (an arbiter may take that as proof that it holds no lease any more).
        running.runtime.pause().await?;
        lock(&self.processes).remove(&id);
        self.net.update(|f| {
            f.crashed.insert(id);
            f.paused.remove(&id);
        });
        running.runtime.kill().await;
        Ok(())
    }

    /// Starts a new process of a crashed node on the same data directory.
    pub async fn restart(&mut self, id: NodeId) -> Result<(), HarnessError> {
        if self.running.contains_key(&id) {
            return Err(HarnessError::Runtime(format!("node {id} is still running")));
        }
        tracing::info!(node = id, "harness: restart");
        self.launch(id).await
    }

    /// Runs `work` on node `id`'s process, as a request the node serves would run (a
    /// client of its gateway): it stops while the node is paused and is dropped, with
    /// the process, when the node crashes (its handle then reports it cancelled).
    pub fn spawn_on<F>(
        &self,
        id: NodeId,
        work: F,
    ) -> Result<tokio::task::JoinHandle<F::Output>, HarnessError>
    where
        F: std::future::Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let running = self.running.get(&id).ok_or(HarnessError::NotRunning(id))?;
        Ok(running.runtime.handle().spawn(work))
    }

    /// Starts an [`InvariantChecker`] on every process of this cluster.
    pub fn checker(&self) -> Result<InvariantChecker, HarnessError> {
        InvariantChecker::start(self.processes.clone())
    }

    /// The network, for filters the cluster has no shortcut for.
    /// Node `id`'s data directory (its object store is `objects/` in it).
    pub fn data_dir(&self, id: NodeId) -> Option<&std::path::Path> {
        self.configs.get(&id).map(|c| c.data_dir.as_path())
    }

    pub fn net(&self) -> &Arc<MemNet> {
        &self.net
    }

    /// Every node of the cluster, running or not.
    pub fn ids(&self) -> Vec<NodeId> {
        self.configs.keys().copied().collect()
    }

    /// The running process of `id` (paused or not).
    pub fn node(&self, id: NodeId) -> Result<Arc<NodeShared>, HarnessError> {
        self.running
            .get(&id)
            .map(|r| r.shared.clone())
            .ok_or(HarnessError::NotRunning(id))
    }

    /// Running nodes whose process is not paused.
    pub fn awake(&self) -> Vec<(NodeId, Arc<NodeShared>)> {
        self.running
            .iter()
            .filter(|(_, r)| !r.runtime.is_paused())
            .map(|(id, r)| (*id, r.shared.clone()))
            .collect()
    }

    /// Stops every process and removes the data directories.
    pub async fn shutdown(mut self) {
        for (_, r) in std::mem::take(&mut self.running) {
            r.runtime.kill().await;
        }
    }
}

impl Drop for Cluster {
    /// A cluster dropped while nodes still run was left by a failing test: its event
    /// log is the first thing to read.
    fn drop(&mut self) {
        if !self.running.is_empty() {
            tracing::warn!("cluster dropped without shutdown (a failed test?); its events:");
            self.log_events(0);
        }
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
