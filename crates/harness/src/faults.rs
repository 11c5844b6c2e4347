//! Fault injection on a [`Cluster`] besides crashes: pausing a process (SIGSTOP),
//! cutting cables, partitions, isolation and delays.
//!
//! Owns: turning "what happens to the cluster" into network filters and runtime
//! pauses, each announced in the log. Must never: touch a node's state directly.

use crate::cluster::Cluster;
use crate::error::HarnessError;
use crate::filters::{Traffic, Way};
use keel_core::NodeId;
use std::time::Duration;

impl Cluster {
    /// Pauses node `id` (SIGSTOP): none of its tasks or timers run, calls to it time
    /// out, datagrams to and from it are lost. Returns once it is stopped.
    pub async fn pause(&mut self, id: NodeId) -> Result<(), HarnessError> {
        let running = self
            .running
            .get_mut(&id)
            .ok_or(HarnessError::NotRunning(id))?;
        tracing::info!(node = id, "harness: pause");
        self.net.update(|f| {
            f.paused.insert(id);
        });
        running.runtime.pause().await
    }

    /// Lets a paused node go on (SIGCONT): everything that was due runs, late.
    pub fn resume(&mut self, id: NodeId) -> Result<(), HarnessError> {
        let running = self
            .running
            .get_mut(&id)
            .ok_or(HarnessError::NotRunning(id))?;
        tracing::info!(node = id, "harness: resume");
        running.runtime.resume();
        self.net.update(|f| {
            f.paused.remove(&id);
        });
        Ok(())
    }

    /// Is node `id` running but paused?
    pub fn is_paused(&self, id: NodeId) -> bool {
        self.running.get(&id).is_some_and(|r| r.runtime.is_paused())
    }

    /// Cuts the cable of `link` at node `id`: nothing is sent or received on it, and
    /// the node is not told (it must find out from the silence).
    pub fn cut_link(&self, id: NodeId, link: &str) {
        tracing::info!(node = id, link, "harness: cable cut");
        self.net.update(|f| {
            f.cut.insert((id, link.to_string()));
        });
    }

    /// Reconnects a cable cut by [`Cluster::cut_link`].
    pub fn restore_link(&self, id: NodeId, link: &str) {
        tracing::info!(node = id, link, "harness: cable restored");
        self.net.update(|f| {
            f.cut.retain(|(n, l)| !(*n == id && l == link));
        });
    }

    /// Cuts `link` inside node `id`, as `keel fault link` does: the node knows, and
    /// neither sends nor receives on it.
    pub fn cut_link_locally(&self, id: NodeId, link: &str) -> Result<(), HarnessError> {
        let running = self.running.get(&id).ok_or(HarnessError::NotRunning(id))?;
        running.faults.cut(link);
        Ok(())
    }

    /// Restores a link cut by [`Cluster::cut_link_locally`].
    pub fn restore_link_locally(&self, id: NodeId, link: &str) -> Result<(), HarnessError> {
        let running = self.running.get(&id).ok_or(HarnessError::NotRunning(id))?;
        running.faults.restore(link);
        Ok(())
    }

    /// Drops every message of one kind that node `id` sends, receives, or both (a
    /// firewall rule on the RPC or the heartbeat port); the other kind passes.
    pub fn block(&self, id: NodeId, kind: Traffic, way: Way) {
        tracing::info!(node = id, ?kind, ?way, "harness: block");
        self.net.update(|f| {
            f.blocked.insert((id, kind, way));
        });
    }

    /// Lifts a [`Cluster::block`].
    pub fn unblock(&self, id: NodeId, kind: Traffic, way: Way) {
        tracing::info!(node = id, ?kind, ?way, "harness: unblock");
        self.net.update(|f| {
            f.blocked.remove(&(id, kind, way));
        });
    }

    /// Partitions `side` from every other node, both ways, on every link.
    pub fn partition(&self, side: &[NodeId]) {
        tracing::info!(?side, "harness: partition");
        self.net.update(|f| {
            f.partition = Some(side.iter().copied().collect());
        });
    }

    /// Isolates node `id`: it reaches nobody and nobody reaches it.
    pub fn isolate(&self, id: NodeId) {
        tracing::info!(node = id, "harness: isolate");
        self.net.update(|f| {
            f.isolated.insert(id);
        });
    }

    /// Lifts every partition and isolation (cut cables stay cut).
    pub fn heal(&self) {
        tracing::info!("harness: heal partitions");
        self.net.update(|f| f.heal());
    }

    /// Delays every message by `delay`, each way.
    pub fn set_delay(&self, delay: Duration) {
        tracing::info!(?delay, "harness: delay every message");
        self.net.update(|f| f.delay = delay);
    }

    /// Delays every message to or from node `id` by `delay`, each way.
    pub fn set_node_delay(&self, id: NodeId, delay: Duration) {
        tracing::info!(node = id, ?delay, "harness: delay a node's messages");
        self.net.update(|f| {
            f.node_delay.insert(id, delay);
        });
    }
}
