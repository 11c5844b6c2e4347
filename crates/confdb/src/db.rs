//! [`ConfDb`]: the configuration database as the rest of keel sees it. Opens the redb
//! file, starts the Raft node, and offers reads of the local replica, writes through
//! Raft, membership changes and a watch of applied changes.
//!
//! Must never: hold the replica lock across an `.await`, retry or forward requests by
//! itself (callers get [`WriteError::ForwardToLeader`] and decide), or block on I/O
//! outside the blocking pool.

use crate::admission::{Admission, AdmissionState};
use crate::disk::{blocking, open_database};
use crate::error::{ConfDbError, WriteError};
use crate::log_store::LogStore;
use crate::network::{NetworkFactory, RaftTransport};
use crate::state_machine::{SharedApplied, StateMachineStore};
use crate::types::{Command, Raft, RaftPeer, Reply};
use keel_core::{ClusterCommand, ClusterResponse, ClusterState, NodeId};
use keel_dir::{DirCommand, DirResult, Namespace};
use openraft::error::{
    CheckIsLeaderError, ClientWriteError, ForwardToLeader, InitializeError, RaftError,
};
use openraft::{Config, SnapshotPolicy};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio::sync::watch;

/// The openraft configuration keel recommends: 40 ms heartbeats, elections after 300 to
/// 350 ms of silence (openraft's followers also refuse to vote for another candidate
/// until 350 ms after they last heard their leader: its "leader lease"), a snapshot
/// every 1000 applied entries, 100 entries kept behind it. keel's nodes start an
/// election themselves, in turn, as soon as that lease has run out and their own probe
/// found the leader gone (`keel-node`'s arbiter), so the random timeouts are a backstop.
pub fn recommended_config(cluster_name: &str) -> Config {
    Config {
        cluster_name: cluster_name.to_string(),
        heartbeat_interval: 40,
        election_timeout_min: 300,
        election_timeout_max: 350,
        snapshot_policy: SnapshotPolicy::LogsSinceLast(1000),
        max_in_snapshot_log_to_keep: 100,
        // openraft's default (200 ms) is for sending *and installing* the last
        // snapshot segment: with a directory of a few thousand files a follower that
        // fell behind the snapshot could never install it, and never caught up again
        // (found by `keel dev chaos`: the term climbed to 348, every member's reads
        // ended "control plane out of reach"). Bounded by the transport's snapshot
        // RPC timeout (`keel-node`'s `raft_net.rs`, 60 s).
        install_snapshot_timeout: INSTALL_SNAPSHOT_TIMEOUT_MS,
        snapshot_max_chunk_size: 1024 * 1024,
        ..Default::default()
    }
}

/// How long a follower may take to receive and install the last snapshot segment.
pub const INSTALL_SNAPSHOT_TIMEOUT_MS: u64 = 30_000;

/// A handle on this node's replica of the configuration database. Cheap to clone.
#[derive(Clone)]
pub struct ConfDb {
    inner: Arc<Inner>,
}

struct Inner {
    node_id: NodeId,
    raft: Raft,
    applied: SharedApplied,
    applied_rx: watch::Receiver<u64>,
    dir_tx: tokio::sync::broadcast::Sender<Arc<crate::DirApplied>>,
    /// The redb file, held by Raft's tasks; gone once they have all stopped.
    db: Weak<redb::Database>,
    /// Whether this node's store may vote (see [`crate::admission`]).
    admission: Admission,
}

/// How long [`ConfDb::shutdown`] waits for Raft's tasks to release the redb file.
const RELEASE_TIMEOUT: Duration = Duration::from_secs(5);

impl ConfDb {
    /// Opens (or creates) the database in `dir` (file `dir/raft.redb`) and starts the
    /// Raft node `node_id`. See [`recommended_config`] for `config`.
    pub async fn open(
        dir: &Path,
        node_id: NodeId,
        config: Config,
        transport: Arc<dyn RaftTransport>,
    ) -> Result<ConfDb, ConfDbError> {
        let config = Arc::new(config.validate()?);
        let dir = dir.to_path_buf();
        let created = !dir.join(crate::disk::DB_FILE).exists();
        let db = blocking(move || open_database(&dir)).await?;
        let weak_db = Arc::downgrade(&db);
        let admission = Admission::open(db.clone(), created).await?;
        let log = LogStore::new(db.clone());
        let sm = StateMachineStore::open(db).await?;
        let applied = sm.shared();
        let applied_rx = sm.applied_watch();
        let dir_tx = sm.dir_changes();
        let raft = Raft::new(node_id, config, NetworkFactory::new(transport), log, sm)
            .await
            .map_err(|e| ConfDbError::Raft(e.to_string()))?;
        if admission.state() != AdmissionState::Admitted {
            tracing::warn!(
                node = node_id,
                "configuration database store is new: no vote and no election until it has caught up with the cluster"
            );
            raft.runtime_config().elect(false);
        }
        Ok(ConfDb {
            inner: Arc::new(Inner {
                node_id,
                raft,
                applied,
                applied_rx,
                dir_tx,
                db: weak_db,
                admission,
            }),
        })
    }

    /// Whether this node may vote and stand for election: not while its store is new
    /// and has not caught up with what the cluster had committed (see
    /// [`crate::admission`]).
    pub fn admission(&self) -> AdmissionState {
        self.inner.admission.state()
    }

    /// Admits the node if its store is new and it has applied up to the commit index
    /// the leader had when it came back (or `force`, for the creator of a new group).
    /// Returns true if this call admitted it; elections are enabled again then.
    pub(crate) async fn admit_if_caught_up(&self, force: bool) -> Result<bool, ConfDbError> {
        let applied = *self.inner.applied_rx.borrow();
        let admitted = self
            .inner
            .admission
            .admit_if_caught_up(applied, force)
            .await?;
        if admitted {
            tracing::info!(
                node = self.inner.node_id,
                applied,
                "configuration database store caught up: votes and stands for election again"
            );
            self.inner.raft.runtime_config().elect(true);
        }
        Ok(admitted)
    }

    pub(crate) fn note_leader_commit(&self, index: u64) {
        self.inner.admission.leader_commit(index);
    }

    pub fn node_id(&self) -> NodeId {
        self.inner.node_id
    }

    /// The underlying Raft node, for metrics and operations this facade does not wrap.
    pub fn raft(&self) -> &Raft {
        &self.inner.raft
    }

    /// Reads the local replica. It may lag the leader; see [`ConfDb::linearizable_read`].
    pub fn read<R>(&self, f: impl FnOnce(&ClusterState) -> R) -> R {
        // A panic while applying poisons the lock; Raft stops then, but the last state
        // stays readable for diagnosis.
        let applied = self
            .inner
            .applied
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        f(&applied.state)
    }

    /// Reads the local replica after confirming with a quorum that this node is the
    /// leader and has applied everything committed before the call.
    pub async fn linearizable_read<R>(
        &self,
        f: impl FnOnce(&ClusterState) -> R,
    ) -> Result<R, WriteError> {
        match self.inner.raft.ensure_linearizable().await {
            Ok(_) => Ok(self.read(f)),
            Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(to))) => {
                Err(self.forward(to))
            }
            Err(e) => Err(WriteError::Other(e.to_string())),
        }
    }

    /// Proposes `cmd` and waits until it is committed and applied here (the leader).
    /// A refused command is a successful write whose response is `Refused`.
    pub async fn write(&self, cmd: ClusterCommand) -> Result<ClusterResponse, WriteError> {
        let response = self
            .inner
            .raft
            .client_write(Command::Cluster(cmd))
            .await
            .map_err(|e| self.write_error(e))?;
        Ok(response.data.into_cluster())
    }

    /// Like [`ConfDb::write`], with the index of the log entry that carried the
    /// command: a follower that forwarded the write waits until its own replica has
    /// applied that index before acting on it.
    pub async fn write_indexed(
        &self,
        cmd: ClusterCommand,
    ) -> Result<(ClusterResponse, u64), WriteError> {
        let response = self
            .inner
            .raft
            .client_write(Command::Cluster(cmd))
            .await
            .map_err(|e| self.write_error(e))?;
        Ok((response.data.into_cluster(), response.log_id.index))
    }

    /// Proposes a directory command and waits until it is applied here (the leader).
    pub async fn write_dir(&self, cmd: DirCommand) -> Result<DirResult, WriteError> {
        let response = self
            .inner
            .raft
            .client_write(Command::Dir(cmd))
            .await
            .map_err(|e| self.write_error(e))?;
        match response.data {
            Reply::Dir(r) => Ok(r),
            Reply::Cluster(r) => Err(WriteError::Other(format!(
                "a directory command got a cluster reply: {r:?}"
            ))),
        }
    }

    /// Reads the local replica of the directory. It may lag the leader (and, with the
    /// control plane out of reach, be stale).
    pub fn read_dir<R>(&self, f: impl FnOnce(&Namespace) -> R) -> R {
        let applied = self
            .inner
            .applied
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        f(&applied.namespace)
    }

    /// Makes `members` the first voters of a new group. Succeeds without change if the
    /// group is already initialized (on this node).
    pub async fn initialize(&self, members: BTreeMap<NodeId, RaftPeer>) -> Result<(), ConfDbError> {
        match self.inner.raft.initialize(members).await {
            Ok(()) => {
                // The creator of a group has nothing to catch up with.
                self.admit_if_caught_up(true).await?;
                Ok(())
            }
            Err(RaftError::APIError(InitializeError::NotAllowed(_))) => Ok(()),
            Err(e) => Err(ConfDbError::Raft(e.to_string())),
        }
    }

    /// Adds (or updates the addresses of) a learner; returns once the membership entry is
    /// committed, without waiting for the learner to catch up.
    pub async fn add_learner(&self, id: NodeId, peer: RaftPeer) -> Result<(), WriteError> {
        self.inner
            .raft
            .add_learner(id, peer, false)
            .await
            .map_err(|e| self.write_error(e))?;
        Ok(())
    }

    /// Makes `voters` the voter set. Each must already be a member (learner or voter);
    /// voters left out stay on as learners, so they keep a replica.
    pub async fn change_voters(&self, voters: BTreeSet<NodeId>) -> Result<(), WriteError> {
        self.inner
            .raft
            .change_membership(voters, true)
            .await
            .map_err(|e| self.write_error(e))?;
        Ok(())
    }

    /// The voters of the group as this node's Raft knows them, in id order.
    pub fn voters(&self) -> BTreeSet<NodeId> {
        self.inner
            .raft
            .metrics()
            .borrow()
            .membership_config
            .membership()
            .voter_ids()
            .collect()
    }

    /// The leader this node currently knows of.
    pub fn leader(&self) -> Option<NodeId> {
        self.inner.raft.metrics().borrow().current_leader
    }

    pub fn current_term(&self) -> u64 {
        self.inner.raft.metrics().borrow().current_term
    }

    /// The index of the last entry applied to the local replica. Await `changed()` on
    /// the receiver to learn of new changes; it reports an error once Raft has stopped.
    pub fn applied_watch(&self) -> watch::Receiver<u64> {
        self.inner.applied_rx.clone()
    }

    /// What of the directory each batch this replica applies changed, from now on
    /// (announced once the batch is durable here, whichever node proposed it). A
    /// receiver that lags must assume everything changed.
    pub fn dir_changes(&self) -> tokio::sync::broadcast::Receiver<Arc<crate::DirApplied>> {
        self.inner.dir_tx.subscribe()
    }

    /// Stops the Raft node and waits (up to 5 s) until its tasks have closed the redb
    /// file, so the directory can be opened again. Other clones of this handle fail
    /// their calls afterwards.
    pub async fn shutdown(&self) -> Result<(), ConfDbError> {
        self.inner
            .raft
            .shutdown()
            .await
            .map_err(|e| ConfDbError::Raft(e.to_string()))?;
        // Raft's state machine worker and replication tasks end shortly after its core
        // task; nothing signals their end but the last reference to the file going away.
        let deadline = tokio::time::Instant::now() + RELEASE_TIMEOUT;
        while self.inner.db.strong_count() > 0 {
            if tokio::time::Instant::now() >= deadline {
                tracing::warn!(
                    node = self.inner.node_id,
                    "Raft tasks still hold the configuration database after shutdown"
                );
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        Ok(())
    }

    fn write_error(&self, e: RaftError<NodeId, ClientWriteError<NodeId, RaftPeer>>) -> WriteError {
        match e {
            RaftError::APIError(ClientWriteError::ForwardToLeader(to)) => self.forward(to),
            other => WriteError::Other(other.to_string()),
        }
    }

    /// Builds the redirect, filling in the leader's addresses from the membership when
    /// openraft did not.
    fn forward(&self, to: ForwardToLeader<NodeId, RaftPeer>) -> WriteError {
        let leader = to.leader_id.and_then(|id| {
            let peer = to.leader_node.or_else(|| {
                let metrics = self.inner.raft.metrics();
                let metrics = metrics.borrow();
                metrics
                    .membership_config
                    .membership()
                    .get_node(&id)
                    .cloned()
            });
            peer.map(|p| (id, p))
        });
        WriteError::ForwardToLeader { leader }
    }
}
