//! A running node: the shared state every task of the node works on.
//!
//! Owns the wiring between the configuration database, the transport, the health
//! monitor, the peer tracker and the leases. Must never do blocking I/O on the runtime
//! or hold a lock across an `.await`.

use crate::admin_api::{LinkView, NodeView, ProgressView, SetView, StatusView};
use crate::health::HealthMonitor;
use crate::lease::{LeaseHolder, LeaseTable};
use crate::metrics::Metrics;
use crate::tracker::PeerTracker;
use crate::wire::{self, method};
use keel_confdb::{ConfDb, RaftPeer, WriteError};
use keel_config::NodeConfig;
use keel_core::{
    BootType, ClusterCommand, ClusterResponse, ClusterState, EpochFence, Event, LinkAddr, Member,
    MemberState, NodeId, UnixMillis,
};
use keel_net::{LinkFaults, PeerAddrs, Transport};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Everything a node's tasks share.
pub struct NodeShared {
    pub cfg: NodeConfig,
    pub boot: BootType,
    pub db: ConfDb,
    pub net: Arc<dyn Transport>,
    pub faults: LinkFaults,
    pub health: HealthMonitor,
    pub tracker: PeerTracker,
    /// This process's leases (and its incarnation, drawn at random at start).
    pub holder: Mutex<LeaseHolder>,
    /// When this node first saw each set's current epoch (see `LeaseTable::request`).
    epoch_seen:
        Mutex<std::collections::HashMap<keel_core::SetId, (keel_core::Epoch, std::time::Instant)>>,
    /// When this node last received a Raft append (a leader's heartbeat or entries):
    /// followers' Raft leader lease counts from it.
    pub last_append: Mutex<Option<std::time::Instant>>,
    /// When a quorum last confirmed this node's leadership, and in which term.
    confirmed: Mutex<Option<(std::time::Instant, u64)>>,
    /// Present while this node is the arbiter (configuration database leader).
    pub arbiter: Mutex<Option<LeaseTable>>,
    pub fence: EpochFence,
    pub metrics: Metrics,
    pub admin_token: String,
    /// Key authenticating heartbeat and multicast datagrams (from the cluster secret).
    pub datagram_key: [u8; 32],
    pub pid: u32,
    /// Serializes the arbiter's decisions: each is computed on the state the previous
    /// one left.
    pub decide_lock: tokio::sync::Mutex<()>,
    /// Serializes configuration database membership changes (one at a time in Raft).
    pub membership_lock: tokio::sync::Mutex<()>,
    /// Members and candidates heard by multicast: node id to RPC addresses.
    pub discovered: Mutex<std::collections::BTreeMap<NodeId, PeerAddrs>>,
    /// Join refusals already recorded (node, reason), so a retrying candidate does not
    /// flood the event log.
    pub refusals: Mutex<std::collections::BTreeSet<(NodeId, String)>>,
    /// The storage role (objects on this node's disk), if the node has it.
    pub storage: Option<crate::storage::StorageService>,
    /// Routes object operations to storage sets and finds duplicates on failure.
    pub locator: crate::locator::Locator,
    /// The multicast group membership, once discovery has joined it (the locator's
    /// search asks there first).
    pub multicast: std::sync::OnceLock<Arc<keel_net::MulticastAnnouncer>>,
    /// This node's disk and object counts, recounted at most every two seconds.
    pub capacity: crate::capacity::CapacityCache,
    seq: AtomicU64,
}

/// How fresh the leader's last quorum confirmation must be for it to arbitrate: the
/// shortest Raft election timeout. The members that confirmed refuse to vote for
/// anyone else for the longest election timeout (openraft's leader lease), so no new
/// leader can be elected while this one still arbitrates.
pub const ARBITER_QUORUM_FRESH_MS: u64 = 100;

/// How long a newly elected arbiter waits before granting leases, beyond one lease:
/// the longest Raft election timeout, covering grants its predecessor made while it
/// still believed it led.
pub const ARBITER_GRACE_EXTRA_MS: u64 = 350;

/// How long a configuration change written through [`NodeShared::write`] may take to
/// commit before it is reported as failed (its fate is then unknown: it may still
/// commit, or be dropped by the next leader).
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a directory change may take to commit before it is reported as refused
/// for want of a control plane (its fate is then unknown: a retry with the same
/// idempotency token finds out).
pub const DIR_WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a read barrier may take before the read is served marked stale.
pub const READ_BARRIER_TIMEOUT: Duration = Duration::from_secs(2);

/// Why [`NodeShared::following_leader`] gave up.
#[derive(Debug)]
enum Followed {
    /// The limit passed with no answer.
    TimedOut,
    /// This node does not reach the control plane.
    Lost,
    /// The last attempt's failure.
    Failed(String),
}

pub fn now_ms() -> UnixMillis {
    chrono::Utc::now().timestamp_millis()
}

impl NodeShared {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        cfg: NodeConfig,
        boot: BootType,
        db: ConfDb,
        net: Arc<dyn Transport>,
        faults: LinkFaults,
        admin_token: String,
        datagram_key: [u8; 32],
        pid: u32,
        storage: Option<crate::storage::StorageService>,
    ) -> NodeShared {
        let lease = Duration::from_millis(cfg.timings.lease_ms);
        NodeShared {
            boot,
            db,
            net,
            faults,
            health: HealthMonitor::new(),
            tracker: PeerTracker::new(),
            holder: Mutex::new(LeaseHolder::new(lease, rand::random::<u64>() | 1)),
            confirmed: Mutex::new(None),
            last_append: Mutex::new(None),
            epoch_seen: Mutex::new(Default::default()),
            arbiter: Mutex::new(None),
            fence: EpochFence::default(),
            metrics: Metrics::new(),
            admin_token,
            datagram_key,
            pid,
            decide_lock: tokio::sync::Mutex::new(()),
            membership_lock: tokio::sync::Mutex::new(()),
            discovered: Mutex::new(Default::default()),
            refusals: Mutex::new(Default::default()),
            storage,
            locator: Default::default(),
            multicast: Default::default(),
            capacity: Default::default(),
            seq: AtomicU64::new(1),
            cfg,
        }
    }

    pub fn id(&self) -> NodeId {
        self.cfg.id
    }

    /// This process (see `lease.rs`): a restarted node is another incarnation.
    pub fn incarnation(&self) -> u64 {
        self.holder
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .incarnation()
    }

    pub fn next_seq(&self) -> u64 {
        self.seq.fetch_add(1, Ordering::Relaxed)
    }

    /// This node as a member record (what it announces when it joins).
    pub fn member_record(&self) -> Member {
        Member {
            id: self.cfg.id,
            site: self.cfg.site.clone(),
            links: self
                .cfg
                .links
                .iter()
                .map(|l| LinkAddr {
                    name: l.name.clone(),
                    ip: l.addr,
                })
                .collect(),
            rpc_port: self.cfg.ports.rpc,
            admin_port: self.cfg.ports.admin,
            heartbeat_port: self.cfg.ports.heartbeat,
            roles: self.cfg.roles.clone(),
            state: MemberState::Joining,
            drained: false,
            failures: vec![],
            links_down: Default::default(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            protocol: self
                .cfg
                .dev
                .protocol_override
                .unwrap_or(keel_core::PROTOCOL_VERSION),
            features: keel_core::FEATURES.iter().map(|s| s.to_string()).collect(),
            pid: self.pid,
            last_failed_pid: None,
            last_boot: None,
            up_since: None,
            store: self.store_id(),
        }
    }

    /// The identity of this node's object store (`None` without the storage role).
    pub fn store_id(&self) -> Option<keel_core::StoreId> {
        self.storage.as_ref().map(|s| s.store.store_id())
    }

    pub fn raft_peer(&self) -> RaftPeer {
        peer_of(&self.member_record())
    }

    pub fn is_leader(&self) -> bool {
        self.db.leader() == Some(self.cfg.id)
    }

    /// May this node act as the arbiter (detect, decide, grant leases) right now? Only
    /// while a quorum confirmed its leadership (a round trip started less than the
    /// shortest election timeout ago, see [`confirm_leadership`]): a deposed or paused
    /// leader that has not noticed yet stops granting before anyone else can have been
    /// elected. Raft metrics alone are not enough: after a pause they are stale.
    pub fn is_arbiter(&self) -> bool {
        let confirmed = *self.confirmed.lock().unwrap_or_else(|e| e.into_inner());
        confirmed.is_some_and(|(at, term)| {
            at.elapsed() < Duration::from_millis(ARBITER_QUORUM_FRESH_MS)
                && term == self.db.current_term()
        })
    }

    /// When this node first saw `set` at `epoch` (now, if this is the first look).
    /// Always at or after the moment the entry was committed.
    pub fn epoch_seen(&self, set: &str, epoch: keel_core::Epoch) -> std::time::Instant {
        let mut seen = self.epoch_seen.lock().unwrap_or_else(|e| e.into_inner());
        match seen.get(set) {
            Some((e, at)) if *e == epoch => *at,
            _ => {
                let now = std::time::Instant::now();
                seen.insert(set.to_string(), (epoch, now));
                now
            }
        }
    }

    /// Confirms leadership with a quorum round trip; records when it started.
    pub async fn confirm_leadership(&self) {
        let started = std::time::Instant::now();
        let term = self.db.current_term();
        let ok = self.db.leader() == Some(self.cfg.id)
            && self.db.raft().ensure_linearizable().await.is_ok();
        let mut c = self.confirmed.lock().unwrap_or_else(|e| e.into_inner());
        *c = if ok { Some((started, term)) } else { None };
    }

    /// The configuration database's state without its event log (cheap to clone).
    pub fn snapshot(&self) -> ClusterState {
        self.db.read(ClusterState::without_events)
    }

    /// RPC addresses of a member, per link, in preference order.
    pub fn addrs_of(&self, node: NodeId) -> Option<PeerAddrs> {
        self.db.read(|s| s.members.get(&node).map(rpc_addrs))
    }

    /// Writes a command through the leader: locally if this node leads, else
    /// forwarded over internal RPC. Returns once the command is committed AND this
    /// node's replica has applied it, so what the caller reads next in its replica
    /// includes the change (a Primary that changed its set's in-sync list replicates
    /// to the new list, never to the one before). An error means the outcome is
    /// unknown: the command may still commit.
    pub async fn write(&self, cmd: ClusterCommand) -> Result<ClusterResponse, String> {
        let started = std::time::Instant::now();
        // A leader that lost its quorum would wait for ever (a Primary shrinking its
        // in-sync list would then block its set's writes for good): bound the wait.
        // A leader that stops answering (paused) is left as soon as another is
        // elected; the command is sent again to the new one (a command applied twice
        // is fenced by its epoch, or is an event recorded twice).
        let once = |deadline: tokio::time::Instant| {
            let cmd = cmd.clone();
            async move {
                match self.db.write_indexed(cmd.clone()).await {
                    Ok(r) => Ok(r),
                    Err(WriteError::ForwardToLeader { leader }) => {
                        let (_, peer) = leader.ok_or("no configuration database leader")?;
                        let addrs = PeerAddrs(peer.rpc.clone());
                        let body = wire::encode(&wire::ForwardedWrite { command: cmd });
                        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                        let (_, reply) = self
                            .net
                            .call(&addrs, method::WRITE, body, left)
                            .await
                            .map_err(|e| e.to_string())?;
                        let reply: wire::ForwardedWriteReply = wire::decode(&reply)?;
                        Ok((reply.response, reply.index))
                    }
                    Err(e) => Err(e.to_string()),
                }
            }
        };
        let (response, index) = self
            .following_leader(WRITE_TIMEOUT, true, once)
            .await
            .map_err(|e| match e {
                Followed::TimedOut => {
                    format!("not committed within {WRITE_TIMEOUT:?} (no quorum reachable?)")
                }
                Followed::Lost => "this node does not reach the control plane".to_string(),
                Followed::Failed(e) => e,
            })?;
        let left = WRITE_TIMEOUT.saturating_sub(started.elapsed()) + Duration::from_secs(1);
        if !self.applied_here(index, left).await {
            return Err(format!(
                "committed at log index {index} but not applied by this node's replica \
                 within {left:?}"
            ));
        }
        Ok(response)
    }

    /// Waits (up to `timeout`) until this node's replica has applied log `index`.
    pub async fn applied_here(&self, index: u64, timeout: Duration) -> bool {
        let mut applied = self.db.applied_watch();
        let caught_up = async {
            while *applied.borrow_and_update() < index {
                if applied.changed().await.is_err() {
                    return false;
                }
            }
            true
        };
        tokio::time::timeout(timeout, caught_up)
            .await
            .unwrap_or(false)
    }

    /// Writes a directory command through the leader (locally or forwarded).
    pub async fn write_dir(
        &self,
        cmd: keel_dir::DirCommand,
    ) -> Result<keel_dir::DirResult, crate::storage::DataError> {
        let unreachable = |what: String| crate::storage::DataError::NoControlPlane { what };
        // A leader that lost its quorum would wait for ever: bound the wait. A leader
        // that stops answering (paused) is left as soon as another is elected, and a
        // command with an idempotency token is sent to the new one (the token makes a
        // second application return the first one's result); one without a token
        // keeps waiting on the first leader, since it might apply twice.
        let once = |deadline: tokio::time::Instant| {
            let cmd = cmd.clone();
            async move {
                match self.db.write_dir(cmd.clone()).await {
                    Ok(r) => Ok(Ok(r)),
                    Err(WriteError::ForwardToLeader { leader }) => {
                        let (_, peer) = leader.ok_or("no leader".to_string())?;
                        let addrs = PeerAddrs(peer.rpc.clone());
                        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                        let (_, reply) = self
                            .net
                            .call(&addrs, method::WRITE_DIR, wire::encode(&cmd), left)
                            .await
                            .map_err(|e| e.to_string())?;
                        let r: Result<keel_dir::DirResult, String> =
                            wire::decode(&reply).map_err(|e| format!("a broken answer: {e}"))?;
                        // The leader answered: its refusal is final here.
                        Ok(r)
                    }
                    Err(e) => Err(e.to_string()),
                }
            }
        };
        match self
            .following_leader(DIR_WRITE_TIMEOUT, cmd.token().is_some(), once)
            .await
        {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(e)) => Err(unreachable(format!("a directory change ({e})"))),
            Err(Followed::TimedOut) => Err(unreachable(format!(
                "a directory change (not committed within {DIR_WRITE_TIMEOUT:?})"
            ))),
            Err(Followed::Lost) => Err(unreachable(
                "a directory change (this node does not reach a majority)".to_string(),
            )),
            Err(Followed::Failed(e)) => Err(unreachable(format!("a directory change ({e})"))),
        }
    }

    /// Runs `once` (a write committed locally or forwarded to the leader) until it
    /// answers, within `limit`. A node that does not reach the control plane for
    /// longer than the detection floor gives up ([`Followed::Lost`]), so that the
    /// client asks a member that does. With `resend`, a leader that does not answer
    /// is left as soon as this node's replica names another (a new election: the
    /// old leader is paused, cut off or deposed) and `once` runs again against the
    /// new one; a failure that came back quickly is retried too, until the limit.
    async fn following_leader<T, F, Fut>(
        &self,
        limit: Duration,
        resend: bool,
        mut once: F,
    ) -> Result<T, Followed>
    where
        F: FnMut(tokio::time::Instant) -> Fut,
        Fut: std::future::Future<Output = Result<T, String>>,
    {
        let deadline = tokio::time::Instant::now() + limit;
        let mut last = None;
        loop {
            let leader = self.db.leader();
            let attempt = tokio::time::timeout_at(deadline, once(deadline));
            let changed = async {
                if resend {
                    self.leader_changed(leader).await
                } else {
                    std::future::pending().await
                }
            };
            tokio::select! {
                r = attempt => match r {
                    Ok(Ok(v)) => return Ok(v),
                    Ok(Err(e)) => {
                        last = Some(e);
                        if tokio::time::Instant::now() >= deadline {
                            break;
                        }
                        // No leader yet, or it refused the forward: an election
                        // is in progress; wait for it (or a moment) and ask again.
                        let _ = tokio::time::timeout(
                            Duration::from_millis(50),
                            self.leader_changed(leader),
                        )
                        .await;
                    }
                    Err(_) => break,
                },
                () = changed => {
                    tracing::debug!(?leader, now = ?self.db.leader(), "leader changed during a write: sending it to the new one");
                }
                () = self.control_plane_lost() => return Err(Followed::Lost),
            }
            if tokio::time::Instant::now() >= deadline {
                break;
            }
        }
        Err(last.map_or(Followed::TimedOut, Followed::Failed))
    }

    /// Resolves once this node's replica names another leader than `leader` (or none).
    pub async fn leader_changed(&self, leader: Option<NodeId>) {
        let mut metrics = self.db.raft().metrics();
        loop {
            if metrics.borrow_and_update().current_leader != leader {
                return;
            }
            if metrics.changed().await.is_err() {
                return std::future::pending().await;
            }
        }
    }

    /// Resolves once this node has not reached the control plane (see
    /// [`NodeShared::control_plane_fresh`]) for the detection floor
    /// (`fail_after_ms`) without a break: it is cut off, or leads without a quorum.
    /// A lapse shorter than that (a quorum confirmation late under load) is not
    /// enough. Never for a node with nothing to judge by (no leader heard since it
    /// started, or not a voter).
    pub async fn control_plane_lost(&self) {
        let floor = Duration::from_millis(self.cfg.timings.fail_after_ms);
        let mut since: Option<std::time::Instant> = None;
        loop {
            // As `control_plane_fresh`, with the detection floor for a window.
            // A leader counts a quorum confirmation that old as fresh here, not the
            // arbiter's 100 ms: a confirmation late under load is no reason to send
            // clients away.
            let fresh = if self.is_leader() {
                let confirmed = *self.confirmed.lock().unwrap_or_else(|e| e.into_inner());
                confirmed.is_some_and(|(at, term)| {
                    at.elapsed() < floor && term == self.db.current_term()
                })
            } else {
                // A node that has never heard a leader since it started (it is joining,
                // or just restarted), or that is no voter, has nothing to judge by:
                // its writes keep their own deadline, as before.
                let last = *self.last_append.lock().unwrap_or_else(|e| e.into_inner());
                let voter = self.db.voters().contains(&self.id());
                match last {
                    None => true,
                    Some(_) if !voter => true,
                    Some(t) => {
                        self.db.leader().is_some()
                            && t.elapsed() < floor
                            && self.hears_voter_majority(floor)
                    }
                }
            };
            if fresh {
                since = None;
            } else if since.get_or_insert_with(std::time::Instant::now).elapsed() >= floor {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Brings this node's replica of the configuration database (and so of the
    /// directory) up to what the leader had committed when the call began, so a read
    /// after it sees every write acknowledged before it (read-after-write across
    /// gateways). The leader confirms its leadership with a quorum and reports its
    /// applied index (a Raft read index); a follower waits until it has applied as
    /// much. Returns false, for the caller to serve the read marked stale, when the
    /// control plane is out of reach or the barrier cannot complete in time.
    pub async fn read_barrier(&self) -> bool {
        let deadline = std::time::Instant::now() + READ_BARRIER_TIMEOUT;
        loop {
            if !self.control_plane_fresh() {
                return false;
            }
            // A leader that just died fails the call: a new one is usually elected
            // within the barrier's time, so ask again rather than read stale.
            if let Some(index) = self.read_index().await {
                let mut applied = self.db.applied_watch();
                let caught_up = async {
                    while *applied.borrow_and_update() < index {
                        if applied.changed().await.is_err() {
                            return false;
                        }
                    }
                    true
                };
                let left = deadline.saturating_duration_since(std::time::Instant::now());
                return tokio::time::timeout(left, caught_up).await.unwrap_or(false);
            }
            if std::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The leader's read index: its applied index once a quorum confirmed it leads.
    async fn read_index(&self) -> Option<u64> {
        if self.is_leader() {
            self.metrics.read_barriers.inc();
            let confirm = self.db.raft().ensure_linearizable();
            return match tokio::time::timeout(READ_BARRIER_TIMEOUT, confirm).await {
                Ok(Ok(log_id)) => Some(log_id.map_or(0, |l| l.index)),
                _ => None,
            };
        }
        let leader = self.db.leader();
        let addrs = leader.and_then(|l| self.addrs_of(l))?;
        let call = self
            .net
            .call(&addrs, method::READ_INDEX, vec![], READ_BARRIER_TIMEOUT);
        // A leader that stops answering (paused) is left as soon as another is
        // elected: the caller asks again, the new one.
        let answer = tokio::select! {
            r = call => r,
            () = self.leader_changed(leader) => return None,
        };
        match answer.map(|(_, body)| wire::decode::<Result<u64, String>>(&body)) {
            Ok(Ok(Ok(index))) => Some(index),
            _ => None,
        }
    }

    /// Is this node's replica of the configuration database (and the directory)
    /// current? True while a leader is known and was heard within a second (or this
    /// node leads with a fresh quorum). Reads served otherwise are marked stale.
    pub fn control_plane_fresh(&self) -> bool {
        if self.is_leader() {
            return self.is_arbiter();
        }
        let window = Duration::from_secs(1);
        self.db.leader().is_some()
            && self
                .last_append
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .is_some_and(|t| t.elapsed() < window)
            && self.hears_voter_majority(window)
    }

    /// Does this node hear a majority of the configuration database's voters (itself
    /// included) within `window`? A leader that lost its quorum keeps sending appends:
    /// its followers must not take them for a working control plane.
    fn hears_voter_majority(&self, window: Duration) -> bool {
        let voters = self.db.voters();
        let now = std::time::Instant::now();
        let heard = voters
            .iter()
            .filter(|v| **v == self.id() || self.tracker.silent_all(**v, now) < window)
            .count();
        heard * 2 > voters.len()
    }

    /// Appends an event to the replicated log, best effort.
    pub async fn record(&self, event: Event) {
        if let Err(e) = self
            .write(ClusterCommand::RecordEvent {
                event: event.clone(),
            })
            .await
        {
            tracing::warn!(?event, "could not record event: {e}");
        }
    }

    /// Does this node reach a quorum of the configuration database now? A leader
    /// whose leadership a quorum confirmed within a second; a follower that hears a
    /// leader and a majority of the voters (see [`NodeShared::control_plane_fresh`]).
    /// Looser than [`NodeShared::is_arbiter`] (100 ms): this only says whether the
    /// node's view of the cluster can be trusted as current, for `status`.
    pub fn reaches_quorum(&self) -> bool {
        if !self.is_leader() {
            return self.control_plane_fresh();
        }
        let confirmed = *self.confirmed.lock().unwrap_or_else(|e| e.into_inner());
        confirmed.is_some_and(|(at, term)| {
            at.elapsed() < Duration::from_secs(1) && term == self.db.current_term()
        })
    }

    pub fn status(&self) -> StatusView {
        let now = std::time::Instant::now();
        let quorum = self.reaches_quorum();
        let applied = *self.db.applied_watch().borrow();
        let leases: Vec<(String, Option<NodeId>)> = {
            let arbiter = self.arbiter.lock().unwrap_or_else(|e| e.into_inner());
            self.db.read(|s| {
                s.sets
                    .keys()
                    .map(|k| {
                        (
                            k.clone(),
                            arbiter.as_ref().and_then(|t| t.holder(k, now)).map(|h| h.0),
                        )
                    })
                    .collect()
            })
        };
        let (leader, term) = (self.db.leader(), self.db.current_term());
        let me = self.cfg.id;
        let my_health = self.health.current();
        self.db.read(|s| {
            let now_ms = now_ms();
            StatusView {
                cluster: self.cfg.cluster.clone(),
                leader,
                term,
                answered_by: me,
                nodes: s
                    .members
                    .values()
                    .map(|m| NodeView {
                        id: m.id,
                        site: m.site.clone(),
                        addr: m.primary_ip().map(|ip| ip.to_string()).unwrap_or_default(),
                        pid: m.pid,
                        state: m.state.as_str().to_string(),
                        drained: m.drained,
                        roles: m
                            .roles
                            .iter()
                            .map(|r| format!("{r:?}").to_lowercase())
                            .collect(),
                        links: m
                            .links
                            .iter()
                            .map(|l| LinkView {
                                name: l.name.clone(),
                                ip: l.ip.to_string(),
                                down: m.links_down.contains(&l.name),
                            })
                            .collect(),
                        health: if m.id == me {
                            Some(my_health.score)
                        } else {
                            self.tracker.health(m.id).map(|h| h.score)
                        },
                        recent_failures: s.recent_failures(m.id, now_ms),
                        up_since: m.up_since,
                        failed_at: m.failures.last().copied(),
                        capacity: None,
                    })
                    .collect(),
                sets: s
                    .sets
                    .values()
                    .map(|set| SetView {
                        id: set.id.clone(),
                        kind: enum_str(&set.kind),
                        composition: enum_str(&set.composition),
                        epoch: set.epoch,
                        primary: set.primary.clone(),
                        secondary: set.secondary.clone(),
                        alternates: set.alternates.clone(),
                        members: set.members.clone(),
                        in_sync: set.in_sync.clone(),
                        failovers: set.failovers,
                        health_threshold: set.health_threshold,
                        lease_holder: leases
                            .iter()
                            .find(|(k, _)| *k == set.id)
                            .and_then(|(_, h)| *h),
                        replication: set
                            .members
                            .iter()
                            .filter(|m| matches!(m, keel_core::MemberRef::Node(_)))
                            .count(),
                        changed_at: set.changed_at,
                        objects: None,
                        bytes: None,
                        async_backlog: self
                            .storage
                            .as_ref()
                            .and_then(|st| st.async_repl.view(&set.id)),
                    })
                    .collect(),
                quorum,
                applied,
                at: now_ms,
                progress: progress(&s.events),
                local: None,
                cache: None,
                stale: false,
                unanswered: vec![],
                health: String::new(),
                reasons: vec![],
                totals: None,
            }
        })
    }
}

/// Catch-ups and rebalances started (or reporting progress) and not yet done, per
/// set and node, from the event log.
fn progress(events: &std::collections::VecDeque<Event>) -> Vec<ProgressView> {
    use keel_core::EventKind as K;
    let mut open: std::collections::BTreeMap<(&'static str, String, Option<NodeId>), ProgressView> =
        Default::default();
    for e in events {
        let (kind, done) = match e.kind {
            K::CatchUpStarted => ("catch_up", false),
            K::CatchUpDone => ("catch_up", true),
            K::RebalanceProgress => ("rebalance", false),
            K::RebalanceDone => ("rebalance", true),
            _ => continue,
        };
        let Some(set) = e.set.clone() else { continue };
        let key = (kind, set.clone(), e.node);
        if done {
            open.remove(&key);
        } else {
            let since = open.get(&key).map_or(e.time, |p| p.since);
            open.insert(
                key,
                ProgressView {
                    kind: kind.to_string(),
                    set,
                    node: e.node,
                    detail: e.detail.clone(),
                    since,
                },
            );
        }
    }
    open.into_values().collect()
}

fn enum_str<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// A member's RPC addresses, one per link, in order.
pub fn rpc_addrs(m: &Member) -> PeerAddrs {
    PeerAddrs(
        m.links
            .iter()
            .map(|l| (l.name.clone(), std::net::SocketAddr::new(l.ip, m.rpc_port)))
            .collect(),
    )
}

pub fn peer_of(m: &Member) -> RaftPeer {
    RaftPeer {
        rpc: rpc_addrs(m).0,
    }
}
