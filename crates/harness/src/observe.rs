//! Reading a [`Cluster`] and asking it things: who leads, who is Primary and who acts,
//! what the replicated state and event log say, and admin requests.
//!
//! Owns: choosing which node to read or ask (the arbiter, or the freshest awake
//! replica) and bounded waits on what they show. Must never: change the cluster other
//! than through an admin request.

use crate::cluster::{lock, Cluster};
use crate::error::HarnessError;
use crate::wait::wait_for;
use keel_core::{
    ClusterError, ClusterState, Composition, Epoch, Event, FailoverSet, MemberRef, MemberState,
    NodeId, SetKind, SetSpec,
};
use keel_node::admin_api::{AdminReply, AdminRequest};
use keel_node::{AdminError, NodeShared};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long an admin request may take, retries included.
const ADMIN_WITHIN: Duration = Duration::from_secs(15);
/// How long one attempt of an admin request may take.
const ADMIN_ATTEMPT: Duration = Duration::from_secs(5);

impl Cluster {
    /// The node acting as arbiter (Raft leader with a fresh quorum), among awake nodes.
    pub fn leader(&self) -> Option<NodeId> {
        self.awake()
            .into_iter()
            .filter(|(_, n)| n.is_arbiter())
            .max_by_key(|(_, n)| n.db.current_term())
            .map(|(id, _)| id)
    }

    /// The awake replica that has applied the most.
    pub fn freshest(&self) -> Option<Arc<NodeShared>> {
        self.awake()
            .into_iter()
            .max_by_key(|(_, n)| *n.db.applied_watch().borrow())
            .map(|(_, n)| n)
    }

    /// Reads the freshest replica (an empty state if no node is awake).
    pub fn read<R>(&self, f: impl FnOnce(&ClusterState) -> R) -> R {
        match self.freshest() {
            Some(n) => n.db.read(f),
            None => f(&ClusterState::default()),
        }
    }

    pub fn set(&self, set: &str) -> Option<FailoverSet> {
        self.read(|s| s.sets.get(set).cloned())
    }

    /// The recorded Primary of `set`, if it is a node.
    pub fn primary(&self, set: &str) -> Option<NodeId> {
        self.set(set).and_then(|s| s.primary_node())
    }

    pub fn epoch(&self, set: &str) -> Epoch {
        self.set(set).map(|s| s.epoch).unwrap_or_default()
    }

    pub fn member_state(&self, id: NodeId) -> Option<MemberState> {
        self.read(|s| s.members.get(&id).map(|m| m.state))
    }

    /// Awake nodes that act as Primary of `set` right now, with their lease's epoch.
    pub fn acting(&self, set: &str) -> Vec<(NodeId, Epoch)> {
        let now = Instant::now();
        self.awake()
            .into_iter()
            .filter_map(|(id, n)| lock(&n.holder).acting(set, now).map(|e| (id, e)))
            .collect()
    }

    /// Waits until the recorded Primary of `set` acts in the current epoch, alone.
    pub async fn wait_acting(
        &self,
        set: &str,
        within: Duration,
    ) -> Result<(NodeId, Epoch), HarnessError> {
        wait_for(&format!("a Primary of set {set} acting"), within, || {
            let s = self.set(set)?;
            let p = s.primary_node()?;
            (self.acting(set) == [(p, s.epoch)]).then_some((p, s.epoch))
        })
        .await
    }

    /// Waits for a failover: until `set` is past epoch `from` and its new Primary acts
    /// in the current epoch, alone. Returns the new Primary and its epoch.
    pub async fn wait_failover(
        &self,
        set: &str,
        from: Epoch,
        within: Duration,
    ) -> Result<(NodeId, Epoch), HarnessError> {
        let what = format!("set {set} failed over from epoch {from}, its Primary acting");
        wait_for(&what, within, || {
            let s = self.set(set).filter(|s| s.epoch > from)?;
            let p = s.primary_node()?;
            (self.acting(set) == [(p, s.epoch)]).then_some((p, s.epoch))
        })
        .await
    }

    /// The freshest replica's event log.
    pub fn events(&self) -> Vec<Event> {
        self.read(|s| s.events.iter().cloned().collect())
    }

    /// The sequence number the next event will get: events from now on have this or more.
    pub fn next_event_seq(&self) -> u64 {
        self.read(|s| s.next_event_seq)
    }

    /// Waits for an event with `seq >= since` that `pred` accepts.
    pub async fn wait_event(
        &self,
        what: &str,
        within: Duration,
        since: u64,
        pred: impl Fn(&Event) -> bool,
    ) -> Result<Event, HarnessError> {
        wait_for(what, within, || {
            self.read(|s| s.events.iter().find(|e| e.seq >= since && pred(e)).cloned())
        })
        .await
    }

    /// Logs the events with `seq >= since`, one line each (for reading a test's log).
    pub fn log_events(&self, since: u64) {
        for e in self.events().iter().filter(|e| e.seq >= since) {
            tracing::info!(
                "event {} {} {} set={} node={} epoch={} {}",
                e.seq,
                e.time_rfc3339(),
                e.kind.as_str(),
                e.set.as_deref().unwrap_or("-"),
                e.node.map_or("-".into(), |n| n.to_string()),
                e.epoch.map_or("-".into(), |n| n.to_string()),
                e.detail
            );
        }
    }

    /// Runs an admin request on the arbiter (or any awake node, which forwards it),
    /// retrying while there is no leader.
    pub async fn admin(&self, req: AdminRequest) -> Result<AdminReply, HarnessError> {
        let deadline = tokio::time::Instant::now() + ADMIN_WITHIN;
        loop {
            let target = self
                .leader()
                .or_else(|| self.awake().first().map(|(id, _)| *id))
                .ok_or(HarnessError::NotRunning(0))?;
            let running = self
                .running
                .get(&target)
                .ok_or(HarnessError::NotRunning(target))?;
            let (node, r) = (running.shared.clone(), req.clone());
            let attempt = running
                .runtime
                .handle()
                .spawn(async move { keel_node::admin::execute(&node, r).await });
            let retry = match tokio::time::timeout(ADMIN_ATTEMPT, attempt).await {
                Ok(Ok(Ok(reply))) => return Ok(reply),
                Ok(Ok(Err(AdminError::NoLeader { message }))) => message,
                Ok(Ok(Err(e))) => return Err(e.into()),
                Ok(Err(e)) => e.to_string(),
                Err(_) => "attempt timed out".into(),
            };
            if tokio::time::Instant::now() >= deadline {
                return Err(HarnessError::Timeout {
                    what: format!("admin request {req:?}: {retry}"),
                    waited_ms: ADMIN_WITHIN.as_millis() as u64,
                });
            }
            tracing::debug!(%retry, "admin request retried");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Creates the N-way set `id` with `members` in preference order, and waits until
    /// its Primary acts. Returns the acting Primary and its epoch.
    pub async fn create_set(
        &self,
        id: &str,
        members: &[NodeId],
    ) -> Result<(NodeId, Epoch), HarnessError> {
        let spec = SetSpec {
            id: id.to_string(),
            kind: SetKind::Generic,
            composition: if members.len() == 1 {
                Composition::Single
            } else {
                Composition::NWay
            },
            members: members.iter().map(|n| MemberRef::Node(*n)).collect(),
            health_threshold: 50,
            auto_giveback_ms: None,
        };
        match self.admin(AdminRequest::CreateSet { spec }).await {
            // A retried request whose first attempt went through.
            Err(HarnessError::Admin(AdminError::Refused {
                error: ClusterError::SetExists { .. },
            })) => {}
            other => {
                other?;
            }
        }
        self.wait_acting(id, Duration::from_secs(10)).await
    }
}
