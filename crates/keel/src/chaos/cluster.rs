//! The chaos run's own dev cluster: the node processes (started as `keel dev up`
//! starts them, with `dev.rs`), and every way the nemesis touches them: SIGKILL,
//! SIGSTOP/SIGCONT, a restart with `keel node --config`, a wiped store, one more
//! storage node. Unlike `dev up` it restarts nothing by itself: the nemesis heals each
//! fault, and a node that exits on its own is noticed, counted and restarted.
//!
//! Owns: the child processes and `cluster.json`. Must never: leave a process behind
//! (every exit path goes through [`ChaosCluster::shutdown`], and the nodes die with
//! this process), or signal a process it did not start.

use crate::dev::{self, Supervised};
use anyhow::{bail, Context, Result};
use keel_client::Client;
use keel_core::NodeId;
use keel_node::admin_api::StatusView;
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Members per storage set.
pub const REPLICAS: usize = 2;

pub struct ChaosCluster {
    pub dir: PathBuf,
    nodes: Vec<Supervised>,
    pub client: Client,
    /// Nodes paused with SIGSTOP (resumed before anything else at shutdown).
    stopped: BTreeSet<NodeId>,
    /// Nodes killed by the nemesis and not restarted yet.
    killed: BTreeSet<NodeId>,
    /// Nodes that exited without being killed, noticed by [`ChaosCluster::reap`].
    pub unexpected_exits: Vec<String>,
}

impl ChaosCluster {
    /// Prepares `dir` (like `keel dev up`), starts every node, creates the `default`
    /// set and the storage layout, and waits until every Primary acts.
    pub async fn start(
        dir: &std::path::Path,
        nodes: u8,
        sites: u8,
        base_port: u16,
    ) -> Result<ChaosCluster> {
        let (home, mut procs) = dev::prepare(dir, nodes, sites, base_port)?;
        let dir = home;
        for s in &mut procs {
            dev::spawn(s)?;
        }
        dev::cluster_file(&dir, &procs).save(&dir)?;
        let client = Client::open(&dir)?;
        let mut cluster = ChaosCluster {
            dir,
            nodes: procs,
            client,
            stopped: BTreeSet::new(),
            killed: BTreeSet::new(),
            unexpected_exits: vec![],
        };
        let setup = async {
            dev::wait_ready(&cluster.client, cluster.nodes.len()).await?;
            dev::ensure_data_key(&cluster.client, &cluster.dir).await?;
            dev::ensure_default_set(&cluster.client, dev::default_members(&cluster.nodes)).await?;
            dev::apply_layout(&cluster.client, REPLICAS).await?;
            dev::wait_acting(&cluster.client).await?;
            Ok::<(), anyhow::Error>(())
        };
        if let Err(e) = setup.await {
            cluster.shutdown();
            return Err(e);
        }
        // With the data key ensure_data_key wrote into cluster.json.
        cluster.client = Client::open(&cluster.dir)?;
        Ok(cluster)
    }

    fn node_mut(&mut self, id: NodeId) -> Result<&mut Supervised> {
        self.nodes
            .iter_mut()
            .find(|s| s.cfg.id == id)
            .with_context(|| format!("no node {id}"))
    }

    fn pid(&mut self, id: NodeId) -> Result<i32> {
        let s = self.node_mut(id)?;
        match &s.child {
            Some(c) => Ok(c.id() as i32),
            None => bail!("node {id} is not running"),
        }
    }

    /// Every node id, the control-only tiebreaker included.
    pub fn ids(&self) -> Vec<NodeId> {
        self.nodes.iter().map(|s| s.cfg.id).collect()
    }

    /// Nodes with the storage role.
    pub fn storage_ids(&self) -> Vec<NodeId> {
        self.nodes
            .iter()
            .filter(|s| s.cfg.roles.contains(&keel_core::NodeRole::Storage))
            .map(|s| s.cfg.id)
            .collect()
    }

    /// SIGKILL, and waits for the process to be gone.
    pub fn kill(&mut self, id: NodeId) -> Result<()> {
        let pid = self.pid(id)?;
        if self.stopped.remove(&id) {
            unsafe { libc::kill(pid, libc::SIGCONT) };
        }
        unsafe { libc::kill(pid, libc::SIGKILL) };
        let s = self.node_mut(id)?;
        if let Some(mut c) = s.child.take() {
            let _ = c.wait();
        }
        self.killed.insert(id);
        self.save()
    }

    pub fn pause(&mut self, id: NodeId) -> Result<()> {
        let pid = self.pid(id)?;
        unsafe { libc::kill(pid, libc::SIGSTOP) };
        self.stopped.insert(id);
        Ok(())
    }

    pub fn resume(&mut self, id: NodeId) -> Result<()> {
        let pid = self.pid(id)?;
        unsafe { libc::kill(pid, libc::SIGCONT) };
        self.stopped.remove(&id);
        Ok(())
    }

    /// Starts a killed node again on its data directory (`keel node --config`).
    pub fn restart(&mut self, id: NodeId) -> Result<()> {
        let s = self.node_mut(id)?;
        if s.child.is_none() {
            dev::spawn(s)?;
        }
        self.killed.remove(&id);
        self.save()
    }

    /// Deletes a killed node's object store (its disk "replaced"); the Raft log stays.
    pub fn wipe_store(&mut self, id: NodeId) -> Result<()> {
        let s = self.node_mut(id)?;
        if s.child.is_some() {
            bail!("node {id} must be down before its store is wiped");
        }
        let store = s.cfg.data_dir.join("objects");
        if store.exists() {
            std::fs::remove_dir_all(&store)
                .with_context(|| format!("deleting {}", store.display()))?;
        }
        Ok(())
    }

    /// Starts one more storage node in site 1 and waits until it is a member that is
    /// up. Returns its id.
    pub async fn add_node(&mut self) -> Result<NodeId> {
        let cfgs: Vec<keel_config::NodeConfig> = self.nodes.iter().map(|s| s.cfg.clone()).collect();
        let cfg = dev::extra_node(&self.dir, &cfgs, 1);
        let id = cfg.id;
        let exe = self.nodes[0].exe.clone();
        let mut s = dev::supervised(&self.dir, &exe, cfg)?;
        dev::spawn(&mut s)?;
        self.nodes.push(s);
        self.save()?;
        self.client = Client::open(&self.dir)?;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(st) = self.client.status().await {
                if st.nodes.iter().any(|n| n.id == id && n.state == "up") {
                    return Ok(id);
                }
            }
            if Instant::now() > deadline {
                bail!("node {id} was not admitted within 60 s");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Notices nodes that exited without being killed; restarts them. Returns their ids.
    pub fn reap(&mut self) -> Result<Vec<NodeId>> {
        let mut gone = vec![];
        for s in self.nodes.iter_mut() {
            if let Some(c) = s.child.as_mut() {
                if let Ok(Some(status)) = c.try_wait() {
                    self.unexpected_exits
                        .push(format!("node {} exited by itself: {status}", s.cfg.id));
                    s.child = None;
                    gone.push(s.cfg.id);
                }
            }
        }
        for id in &gone {
            self.restart(*id)?;
        }
        Ok(gone)
    }

    /// Undoes every process fault: resumes paused nodes, restarts killed ones.
    pub fn heal_processes(&mut self) -> Result<()> {
        for id in std::mem::take(&mut self.stopped) {
            if let Ok(pid) = self.pid(id) {
                unsafe { libc::kill(pid, libc::SIGCONT) };
            }
        }
        for id in std::mem::take(&mut self.killed) {
            self.restart(id)?;
        }
        Ok(())
    }

    pub async fn status(&self) -> Result<StatusView> {
        Ok(self.client.status().await?)
    }

    fn save(&self) -> Result<()> {
        dev::cluster_file(&self.dir, &self.nodes).save(&self.dir)?;
        Ok(())
    }

    /// Stops every node (SIGCONT first for paused ones, then SIGTERM, then SIGKILL).
    pub fn shutdown(&mut self) {
        for id in std::mem::take(&mut self.stopped) {
            if let Ok(pid) = self.pid(id) {
                unsafe { libc::kill(pid, libc::SIGCONT) };
            }
        }
        dev::stop_all(&mut self.nodes);
        let mut file = dev::cluster_file(&self.dir, &self.nodes);
        file.supervisor_pid = None;
        let _ = file.save(&self.dir);
    }
}

impl Drop for ChaosCluster {
    fn drop(&mut self) {
        if self.nodes.iter().any(|s| s.child.is_some()) {
            self.shutdown();
        }
    }
}
