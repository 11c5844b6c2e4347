//! Membership and discovery: candidates find the cluster by seed list and multicast
//! announcements, ask the leader to be admitted, and are admitted only after a
//! compatibility check (cluster name, protocol version, features). Admitted nodes
//! become learners of the configuration database; control nodes then become voters.
//!
//! Must never admit a candidate that failed the check, or change Raft membership
//! concurrently.

use crate::arbiter::decide_and_write;
use crate::error::NodeError;
use crate::node::{now_ms, peer_of, rpc_addrs, NodeShared};
use crate::wire::{self, method, JoinReply, JoinRequest};
use keel_core::{ClusterCommand, Event, EventKind, NodeId, NodeRole};
use keel_net::PeerAddrs;
use keel_policy::Input;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// Why a candidate is incompatible, or None if it may join.
pub fn compatibility(req: &JoinRequest, cluster: &str) -> Option<String> {
    if req.cluster != cluster {
        return Some(format!(
            "cluster {:?}, this cluster is {cluster:?}",
            req.cluster
        ));
    }
    if req.member.protocol != keel_core::PROTOCOL_VERSION {
        return Some(format!(
            "protocol version {}, this cluster speaks {}",
            req.member.protocol,
            keel_core::PROTOCOL_VERSION
        ));
    }
    let missing: Vec<&str> = keel_core::FEATURES
        .iter()
        .copied()
        .filter(|f| !req.member.features.iter().any(|g| g == f))
        .collect();
    if !missing.is_empty() {
        return Some(format!("missing features: {}", missing.join(", ")));
    }
    None
}

/// The leader's side of a join.
pub async fn handle_join(node: &Arc<NodeShared>, req: JoinRequest) -> JoinReply {
    let id = req.member.id;
    if let Some(reason) = compatibility(&req, &node.cfg.cluster) {
        let first = node
            .refusals
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert((id, reason.clone()));
        if first && node.is_leader() {
            let ev = Event::new(now_ms(), EventKind::JoinRefused)
                .node(id)
                .detail(format!("candidate refused: {reason}"));
            node.record(ev).await;
        }
        return JoinReply::Refused { reason };
    }
    if !node.is_leader() {
        let leader = node.db.leader();
        let leader_rpc = leader
            .and_then(|l| node.addrs_of(l))
            .map(|a| a.0)
            .unwrap_or_default();
        return JoinReply::NotLeader { leader, leader_rpc };
    }
    // Heartbeats from a new member start once its replica caught up: give it time.
    node.tracker
        .grace(id, std::time::Instant::now() + Duration::from_secs(2));
    let (known, repeat) = node.db.read(|s| match s.members.get(&id) {
        Some(m) => (
            true,
            m.pid == req.member.pid && m.state != keel_core::MemberState::Joining,
        ),
        None => (false, false),
    });
    // A voter whose configuration database store is new (its `raft.redb` was deleted
    // or its disk replaced: it boots for the first time) has lost its log and its
    // vote: it goes back to being a learner, and is a voter again only once caught up.
    // (A retried join of the same process is not news.)
    let new_process = node
        .db
        .read(|s| s.members.get(&id).map(|m| m.pid))
        .is_some_and(|pid| pid != req.member.pid);
    let new_store =
        req.boot == keel_core::BootType::FirstBoot && new_process && node.db.voters().contains(&id);
    let back = Input::Back {
        node: id,
        boot: req.boot,
        pid: req.member.pid,
        store: req.member.store,
    };
    // A known member's boot report is judged against its previous process, so it goes
    // before the record is refreshed; a new member must be recorded first. A retried
    // join of the same process reports nothing twice.
    let mut reported = repeat;
    if known && !repeat {
        reported = report_boot(node, &back).await;
    }
    let mut member = req.member.clone();
    member.state = keel_core::MemberState::Joining;
    let add = ClusterCommand::AddMember {
        member: member.clone(),
        at: now_ms(),
    };
    if let Err(e) = node.db.write(add).await {
        tracing::warn!(node = id, "join not recorded: {e}");
        return JoinReply::NotLeader {
            leader: None,
            leader_rpc: vec![],
        };
    }
    if !known {
        reported = report_boot(node, &back).await;
    }
    let n = node.clone();
    tokio::spawn(async move {
        if new_store {
            if let Err(e) = readmit_as_learner(&n, id).await {
                tracing::warn!(
                    node = id,
                    "could not take the voter with a new store off the voters: {e}"
                );
            }
        }
        let voter = member.roles.contains(&NodeRole::Control);
        if let Err(e) = admit_to_raft(&n, id, peer_of(&member), voter).await {
            tracing::warn!(
                node = id,
                "could not add to the configuration database: {e}"
            );
        }
    });
    if !reported {
        // The candidate asks again; the arbiter's reconciliation covers Raft membership.
        return JoinReply::NotLeader {
            leader: Some(node.id()),
            leader_rpc: vec![],
        };
    }
    JoinReply::Admitted { leader: node.id() }
}

async fn report_boot(node: &NodeShared, back: &Input) -> bool {
    match decide_and_write(node, back).await {
        Ok(_) => true,
        Err(e) => {
            tracing::warn!(?back, "boot report not applied: {e}");
            false
        }
    }
}

/// Brings Raft membership in line with the recorded members: every member a learner,
/// every control member a voter. Run by the arbiter now and then, so that a change
/// lost to a leader change at the wrong moment is made again.
pub async fn reconcile_raft(node: &NodeShared) {
    let Ok(_one) = node.membership_lock.try_lock() else {
        return;
    };
    let members: Vec<(NodeId, keel_confdb::RaftPeer, bool)> = node.db.read(|s| {
        s.members
            .values()
            .map(|m| (m.id, peer_of(m), m.roles.contains(&NodeRole::Control)))
            .collect()
    });
    for (id, peer, voter) in members {
        if let Err(e) = admit_locked(node, id, peer, voter).await {
            tracing::debug!(node = id, "membership reconciliation: {e}");
            return;
        }
    }
}

/// Takes voter `id`, whose configuration database store is new, off the voters: it
/// stays a learner (and keeps receiving the log) until it has caught up, when
/// [`admit_locked`] promotes it again. Records a `voter_readmitted` event.
async fn readmit_as_learner(node: &NodeShared, id: NodeId) -> Result<(), String> {
    let _one = node.membership_lock.lock().await;
    let mut voters = node.db.voters();
    if !voters.remove(&id) {
        return Ok(());
    }
    if voters.is_empty() {
        return Err("it is the only voter".into());
    }
    node.db
        .change_voters(voters)
        .await
        .map_err(|e| e.to_string())?;
    tracing::warn!(
        node = id,
        "voter came back with a new configuration database store: a learner until caught up"
    );
    node.record(
        Event::new(now_ms(), EventKind::VoterReadmitted)
            .node(id)
            .detail(format!(
                "node {id} came back with a new configuration database store (its Raft log and vote are gone): removed from the voters, re-admitted as a learner; a voter again once it has caught up"
            )),
    )
    .await;
    Ok(())
}

/// Whether learner `id` holds everything this leader has applied (so it may become a
/// voter without its vote endangering committed entries).
fn caught_up(node: &NodeShared, id: NodeId) -> bool {
    let metrics = node.db.raft().metrics().borrow().clone();
    let applied = metrics.last_applied.map_or(0, |l| l.index);
    metrics
        .replication
        .as_ref()
        .and_then(|r| r.get(&id).copied())
        .flatten()
        .is_some_and(|matched| matched.index >= applied)
}

/// Makes `id` a learner, then a voter if it is a control node.
async fn admit_to_raft(
    node: &NodeShared,
    id: NodeId,
    peer: keel_confdb::RaftPeer,
    voter: bool,
) -> Result<(), String> {
    let _one = node.membership_lock.lock().await;
    admit_locked(node, id, peer, voter).await
}

/// Makes `id` a learner, then a voter if it is a control node, once it has caught up
/// (membership lock held); until then, the arbiter's reconciliation tries again.
async fn admit_locked(
    node: &NodeShared,
    id: NodeId,
    peer: keel_confdb::RaftPeer,
    voter: bool,
) -> Result<(), String> {
    let membership = node.db.raft().metrics().borrow().membership_config.clone();
    let m = membership.membership();
    let known = m.nodes().any(|(n, p)| *n == id && *p == peer);
    if !known {
        tokio::time::timeout(Duration::from_secs(30), node.db.add_learner(id, peer))
            .await
            .map_err(|_| "timed out adding learner".to_string())?
            .map_err(|e| e.to_string())?;
    }
    let voters: BTreeSet<NodeId> = m.voter_ids().collect();
    if voter && !voters.contains(&id) {
        if !caught_up(node, id) {
            tracing::debug!(node = id, "not caught up yet: a learner for now");
            return Ok(());
        }
        let mut new = voters.clone();
        new.insert(id);
        node.db
            .change_voters(new)
            .await
            .map_err(|e| e.to_string())?;
        tracing::info!(node = id, "promoted to configuration database voter");
    }
    Ok(())
}

/// Removes a node from the configuration database's membership (it must hold no set).
pub async fn remove_from_raft(node: &NodeShared, id: NodeId) -> Result<(), String> {
    let _one = node.membership_lock.lock().await;
    let mut voters = node.db.voters();
    voters.remove(&id);
    if voters.is_empty() {
        return Err("cannot remove the last voter".into());
    }
    node.db
        .change_voters(voters)
        .await
        .map_err(|e| e.to_string())?;
    node.db
        .raft()
        .change_membership(openraft::ChangeMembers::RemoveNodes([id].into()), false)
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// The candidate's side: asks seeds, multicast-discovered peers and known members
/// until admitted. The bootstrap node creates the cluster if nobody answers.
pub async fn join(node: Arc<NodeShared>) -> Result<(), NodeError> {
    let req = JoinRequest {
        cluster: node.cfg.cluster.clone(),
        member: node.member_record(),
        boot: node.boot,
    };
    let body = wire::encode(&req);
    let mut round = 0u32;
    loop {
        round += 1;
        if node.is_leader() {
            match handle_join(&node, req.clone()).await {
                JoinReply::Admitted { .. } if admitted_here(&node).await => return Ok(()),
                JoinReply::Admitted { .. } => {}
                JoinReply::Refused { reason } => return Err(NodeError::JoinRefused(reason)),
                JoinReply::NotLeader { .. } => {}
            }
        }
        let mut targets = join_targets(&node);
        let mut asked = 0;
        while let Some(addrs) = targets.pop() {
            asked += 1;
            if asked > 16 {
                break;
            }
            let Ok((_, reply)) = node
                .net
                .call(
                    &addrs,
                    method::JOIN,
                    body.clone(),
                    Duration::from_millis(800),
                )
                .await
            else {
                continue;
            };
            match wire::decode::<JoinReply>(&reply) {
                Ok(JoinReply::Admitted { leader }) => {
                    if admitted_here(&node).await {
                        tracing::info!(leader, "admitted to the cluster");
                        return Ok(());
                    }
                    break;
                }
                Ok(JoinReply::Refused { reason }) => return Err(NodeError::JoinRefused(reason)),
                Ok(JoinReply::NotLeader { leader_rpc, .. }) if !leader_rpc.is_empty() => {
                    targets.push(PeerAddrs(leader_rpc));
                }
                _ => {}
            }
        }
        let uninitialized = node.db.voters().is_empty();
        if node.cfg.discovery.bootstrap && uninitialized && round >= 3 {
            tracing::info!("no cluster answered: creating one (bootstrap)");
            let me = [(node.id(), node.raft_peer())].into_iter().collect();
            node.db
                .initialize(me)
                .await
                .map_err(|e| NodeError::ConfDb(e.to_string()))?;
            node.record(
                Event::new(now_ms(), EventKind::ClusterCreated)
                    .node(node.id())
                    .detail(format!("cluster {:?}", node.cfg.cluster)),
            )
            .await;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// Waits (up to 3 s) until this node's own replica shows it admitted and past
/// `joining`: the boot report was applied and has reached this replica.
async fn admitted_here(node: &NodeShared) -> bool {
    let me = node.id();
    let mut applied = node.db.applied_watch();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    loop {
        let done = node.db.read(|s| {
            s.members
                .get(&me)
                .is_some_and(|m| m.state != keel_core::MemberState::Joining)
        });
        if done {
            return true;
        }
        if tokio::time::timeout_at(deadline, applied.changed())
            .await
            .is_err()
        {
            return false;
        }
    }
}

fn join_targets(node: &NodeShared) -> Vec<PeerAddrs> {
    let me = node.id();
    // A seed is an address, not a member: try it over each local link in order (a
    // transport only calls over links it has).
    let mut targets: Vec<PeerAddrs> = node
        .cfg
        .discovery
        .seeds
        .iter()
        .map(|s| {
            PeerAddrs(
                node.cfg
                    .links
                    .iter()
                    .map(|l| (l.name.clone(), *s))
                    .collect(),
            )
        })
        .collect();
    targets.extend(
        node.discovered
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|(id, _)| **id != me)
            .map(|(_, a)| a.clone()),
    );
    node.db.read(|s| {
        targets.extend(s.members.values().filter(|m| m.id != me).map(rpc_addrs));
        if let Some(l) = node.db.leader().and_then(|l| s.members.get(&l)) {
            targets.push(rpc_addrs(l));
        }
    });
    targets
}

/// What travels on the cluster's multicast group.
#[derive(Serialize, Deserialize, Debug, Clone)]
pub enum MulticastMessage {
    /// Discovery: who is here.
    Announce(Announcement),
    /// The locator's search: who has this object?
    WhoHas(crate::locator::WhoHasQuery),
}

/// A multicast announcement: who is here and where to reach it.
#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct Announcement {
    pub cluster: String,
    pub node: NodeId,
    pub rpc: Vec<(String, SocketAddr)>,
    pub member: bool,
}

/// Announces this node by multicast on its first link and records what it hears.
pub async fn announce(node: Arc<NodeShared>) -> Result<(), NodeError> {
    let Some(std::net::IpAddr::V4(iface)) = node.cfg.links.first().map(|l| l.addr) else {
        return Ok(());
    };
    let listener = node.clone();
    let on_announce = move |_from: SocketAddr, payload: Vec<u8>| {
        let a = match wire::decode::<MulticastMessage>(&payload) {
            Ok(MulticastMessage::Announce(a)) => a,
            Ok(MulticastMessage::WhoHas(q)) => {
                crate::locator::answer_search(&listener, q);
                return;
            }
            Err(_) => return,
        };
        if a.cluster != listener.cfg.cluster || a.node == listener.id() {
            return;
        }
        let mut d = listener
            .discovered
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if d.insert(a.node, PeerAddrs(a.rpc.clone())).is_none() {
            tracing::info!(node = a.node, member = a.member, "discovered by multicast");
        }
    };
    let key = node.datagram_key;
    let mc = Arc::new(
        keel_net::MulticastAnnouncer::start(
            node.cfg.discovery.multicast_group,
            iface,
            key,
            on_announce,
        )
        .map_err(|e| NodeError::Net(format!("multicast: {e}")))?,
    );
    let _ = node.multicast.set(mc.clone());
    let mut tick = tokio::time::interval(Duration::from_millis(
        node.cfg.discovery.announce_interval_ms,
    ));
    loop {
        tick.tick().await;
        let a = Announcement {
            cluster: node.cfg.cluster.clone(),
            node: node.id(),
            rpc: rpc_addrs(&node.member_record()).0,
            member: node.db.read(|s| s.members.contains_key(&node.id())),
        };
        if let Err(e) = mc.announce(&wire::encode(&MulticastMessage::Announce(a))) {
            tracing::debug!("multicast announce: {e}");
        }
    }
}
