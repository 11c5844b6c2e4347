//! Heartbeats: sent every period to every member on every link both share, carrying
//! the sender's health and its lease requests; the arbiter answers lease requests with
//! an acknowledgement on the link the heartbeat came in on.
//!
//! Must never block: datagrams are fire-and-forget.

use crate::lease::{AckView, LeaseDecision};
use crate::metrics::{LinkLabel, SetLabel};
use crate::node::{now_ms, NodeShared};
use crate::wire::{self, Datagram, Heartbeat, HeartbeatAck};
use keel_core::{Event, EventKind, MemberRef, NodeId};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Sends heartbeats and keeps this node's leases, forever.
pub async fn run(node: Arc<NodeShared>) {
    let mut tick = tokio::time::interval(Duration::from_millis(node.cfg.timings.heartbeat_ms));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut applied = node.db.applied_watch();
    let mut asked = vec![];
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            changed = applied.changed() => {
                // A new role: ask for the lease now rather than at the next period.
                if changed.is_err() || lease_requests(&node, &node.snapshot()) == asked {
                    if changed.is_err() {
                        tick.tick().await;
                    }
                    continue;
                }
            }
        }
        asked = beat(&node).await;
    }
}

/// Sets for which this node's replica says it is Primary (and eligible), with epochs.
fn lease_requests(
    node: &NodeShared,
    state: &keel_core::ClusterState,
) -> Vec<(keel_core::SetId, keel_core::Epoch)> {
    let me = node.id();
    if !state.members.get(&me).is_some_and(|m| m.eligible()) {
        return vec![];
    }
    state
        .sets
        .values()
        .filter(|s| s.primary == Some(MemberRef::Node(me)))
        .map(|s| (s.id.clone(), s.epoch))
        .collect()
}

/// One heartbeat round; returns the lease requests it carried.
async fn beat(node: &Arc<NodeShared>) -> Vec<(keel_core::SetId, keel_core::Epoch)> {
    let me = node.id();
    let now = Instant::now();
    let health = node.health.current();
    node.metrics.health_score.set(health.score as i64);
    let state = node.snapshot();
    let lease_requests = lease_requests(node, &state);
    for s in state.sets.values() {
        node.epoch_seen(&s.id, s.epoch);
        node.fence.observe(&s.id, s.epoch);
        node.metrics
            .set_epoch
            .get_or_create(&SetLabel { set: s.id.clone() })
            .set(s.epoch.0 as i64);
    }

    // Leases: give up those the replica no longer backs, and let lapsed ones go. The
    // holder keeps what it gave up, by grant, for this heartbeat to release.
    let (lost, given_up, released) = {
        let mut holder = node.holder.lock().unwrap_or_else(|e| e.into_inner());
        let mut given_up = vec![];
        for (set, epoch) in holder.held(now) {
            if !lease_requests.contains(&(set.clone(), epoch)) {
                holder.give_up(&set);
                given_up.push((set, epoch));
            }
        }
        let lost = holder.expire(now);
        (lost, given_up, holder.take_releases())
    };
    for (set, _) in lost.iter().chain(given_up.iter()) {
        node.metrics
            .acting_primary
            .get_or_create(&SetLabel { set: set.clone() })
            .set(0);
    }
    for (set, epoch) in lost {
        node.metrics.leases_lost.inc();
        tracing::warn!(set, %epoch, "lease ran out: no longer acting as Primary");
        let n = node.clone();
        tokio::spawn(async move {
            let ev = Event::new(now_ms(), EventKind::LeaseLost)
                .set(set)
                .node(me)
                .epoch(epoch)
                .detail("lease not renewed in time: stopped acting as Primary");
            n.record(ev).await;
        });
    }

    let seq = node.next_seq();
    if !lease_requests.is_empty() {
        node.holder
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .sent(seq, now);
    }
    let hb = Heartbeat {
        cluster: node.cfg.cluster.clone(),
        from: me,
        pid: node.pid,
        boot: node.boot,
        store: node.store_id(),
        incarnation: node.incarnation(),
        seq,
        health,
        lease_requests: lease_requests.clone(),
        released,
    };
    // The arbiter answers its own requests without the network.
    if node.is_arbiter() {
        release(node, &hb);
        let ack = answer_leases(node, &hb);
        on_ack(node, &ack);
    }
    let payload = wire::encode_datagram(&Datagram::Heartbeat(hb));
    for m in state.members.values().filter(|m| m.id != me) {
        for link in &node.cfg.links {
            let Some(peer_link) = m.link(&link.name) else {
                continue;
            };
            let to = SocketAddr::new(peer_link.ip, m.heartbeat_port);
            node.net.send_datagram(&link.name, to, &payload);
            node.metrics
                .heartbeats_sent
                .get_or_create(&LinkLabel {
                    link: link.name.clone(),
                })
                .inc();
        }
    }
    lease_requests
}

/// Handles one datagram that arrived on `link`.
pub fn on_datagram(node: &Arc<NodeShared>, link: &str, from: SocketAddr, payload: &[u8]) {
    let Some(d) = wire::decode_datagram(payload) else {
        return;
    };
    match d {
        Datagram::Heartbeat(hb) => {
            if hb.cluster != node.cfg.cluster || hb.from == node.id() {
                return;
            }
            node.tracker.heard(
                hb.from,
                link,
                hb.health,
                (hb.pid, hb.boot, hb.store),
                Instant::now(),
            );
            node.metrics
                .heartbeats_received
                .get_or_create(&LinkLabel {
                    link: link.to_string(),
                })
                .inc();
            if !hb.released.is_empty() && node.is_arbiter() {
                release(node, &hb);
            }
            if !hb.lease_requests.is_empty() && node.is_arbiter() {
                let ack = answer_leases(node, &hb);
                node.net
                    .send_datagram(link, from, &wire::encode_datagram(&Datagram::Ack(ack)));
            }
        }
        Datagram::Ack(ack) => {
            // Only an arbiter grants; the datagram is authenticated by the cluster key.
            if ack.cluster == node.cfg.cluster {
                on_ack(node, &ack);
            }
        }
    }
}

/// The arbiter forgets grants their holder gave up.
fn release(node: &NodeShared, hb: &Heartbeat) {
    if let Some(t) = node
        .arbiter
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .as_mut()
    {
        for r in &hb.released {
            t.release(hb.from, r);
        }
    }
}

/// The arbiter's answer to a heartbeat's lease requests.
fn answer_leases(node: &Arc<NodeShared>, hb: &Heartbeat) -> HeartbeatAck {
    let now = Instant::now();
    let mut ack = HeartbeatAck {
        cluster: node.cfg.cluster.clone(),
        from: node.id(),
        term: 0,
        to: hb.incarnation,
        seq: hb.seq,
        granted: vec![],
        refused: vec![],
    };
    let mut taken_over: Vec<(String, keel_core::Epoch, NodeId)> = vec![];
    let mut confirm = false;
    {
        let mut arbiter = node.arbiter.lock().unwrap_or_else(|e| e.into_inner());
        let Some(table) = arbiter
            .as_mut()
            .filter(|t| t.term == node.db.current_term())
        else {
            return ack;
        };
        // Holders ignore grants from a term older than theirs: say which term grants.
        ack.term = table.term;
        node.db.read(|state| {
            for (set, epoch) in &hb.lease_requests {
                let seen = state
                    .sets
                    .get(set)
                    .map(|s| node.epoch_seen(set, s.epoch))
                    .unwrap_or(now);
                match table.request(state, hb.from, hb.incarnation, set, *epoch, seen, now) {
                    LeaseDecision::Granted { first, id } => {
                        ack.granted.push((set.clone(), *epoch, id));
                        if first {
                            taken_over.push((set.clone(), *epoch, hb.from));
                        }
                    }
                    LeaseDecision::Pending => {
                        confirm |= table.held_by_other_incarnation(hb.from, hb.incarnation, now)
                            && table.may_confirm(hb.from, now);
                    }
                    LeaseDecision::Refused { current } => ack.refused.push((set.clone(), current)),
                }
            }
        });
    }
    if confirm {
        confirm_incarnation(node, hb.from, hb.incarnation);
    }
    for (set, epoch, holder) in taken_over {
        // A new arbiter re-granting the same Primary is no takeover.
        let known = node.db.read(|s| {
            s.events.iter().rev().take(512).any(|e| {
                e.kind == EventKind::TakenOver
                    && e.set.as_deref() == Some(set.as_str())
                    && e.epoch == Some(epoch)
            })
        });
        if known {
            continue;
        }
        let n = node.clone();
        tokio::spawn(async move {
            let ev = Event::new(now_ms(), EventKind::TakenOver)
                .set(set)
                .node(holder)
                .epoch(epoch)
                .detail(format!("node {holder} holds the lease and acts as Primary"));
            n.record(ev).await;
        });
    }
    ack
}

/// A new process of `target` asks for a lease an earlier process of it holds: ask
/// `target` which process answers. If the new one does, the earlier one is gone (one
/// process at a time holds a node's ports) and its grants are void; otherwise they are
/// waited out.
fn confirm_incarnation(node: &Arc<NodeShared>, target: NodeId, incarnation: u64) {
    let Some(addrs) = node.addrs_of(target) else {
        return;
    };
    let node = node.clone();
    tokio::spawn(async move {
        let asked = Instant::now();
        let reply = node
            .net
            .call(
                &addrs,
                wire::method::PING,
                vec![],
                Duration::from_millis(100),
            )
            .await;
        let Ok((_, body)) = reply else {
            return;
        };
        let Ok(pong) = wire::decode::<wire::Pong>(&body) else {
            return;
        };
        if pong.incarnation != incarnation {
            return;
        }
        let voided = node
            .arbiter
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_mut()
            .map_or(0, |t| t.void_superseded(target, incarnation, asked));
        if voided > 0 {
            tracing::info!(
                node = target,
                voided,
                "a new process of the node answered: its predecessor's leases are void"
            );
        }
    });
}

fn on_ack(node: &Arc<NodeShared>, ack: &HeartbeatAck) {
    let now = Instant::now();
    let changes = node
        .holder
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .on_ack(
            node.db.current_term(),
            AckView {
                to: ack.to,
                term: ack.term,
                seq: ack.seq,
                granted: &ack.granted,
                refused: &ack.refused,
            },
            now,
        );
    for (set, epoch) in &changes.acquired {
        node.fence.observe(set, *epoch);
        node.metrics
            .acting_primary
            .get_or_create(&SetLabel { set: set.clone() })
            .set(1);
        tracing::info!(set, %epoch, "lease granted: acting as Primary");
    }
    for (set, epoch) in &changes.deposed {
        node.metrics
            .acting_primary
            .get_or_create(&SetLabel { set: set.clone() })
            .set(0);
        tracing::warn!(set, %epoch, "lease refused: deposed, no longer Primary");
    }
    for (set, current) in &ack.refused {
        node.fence.observe(set, *current);
    }
}
