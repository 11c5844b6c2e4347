//! The arbiter: runs on the configuration database leader only. It watches every
//! member (silence per link, health), characterizes faults with probes and self-tests,
//! feeds what it sees to the policy manager, and writes the decisions through Raft.
//! Arbitration is a Raft write: there is no second election protocol.
//!
//! Must never: decide anything itself (the policy manager does), or act on a stale
//! snapshot after a write (every decision is computed on a fresh one).

use crate::error::AdminError;
use crate::lease::LeaseTable;
use crate::node::{now_ms, rpc_addrs, NodeShared};
use crate::wire::{self, method, SelfTestReply};
use keel_core::{ClusterCommand, ClusterResponse, Event, EventKind, MemberState, NodeId};
use keel_net::NetError;
use keel_policy::{HealthReport, Input, Probe, SelfTest, Timings};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const TICK: Duration = Duration::from_millis(20);
const CONFIRM_EVERY: Duration = Duration::from_millis(30);
const PROBE_TIMEOUT: Duration = Duration::from_millis(100);
const REARBITRATE_EVERY: Duration = Duration::from_millis(200);

pub fn timings(node: &NodeShared) -> Timings {
    Timings {
        suspect_after_ms: node.cfg.timings.suspect_after_ms,
        fail_after_ms: node.cfg.timings.fail_after_ms,
    }
}

/// Runs one input through the policy manager and writes its decisions in order.
/// Serialized: decisions are always computed on the state the previous ones left.
pub async fn decide_and_write(
    node: &NodeShared,
    input: &Input,
) -> Result<Vec<ClusterResponse>, AdminError> {
    decide_and_write_fenced(node, input, None).await
}

/// Like [`decide_and_write`], refused with `StaleEpoch` (naming both epochs) unless the
/// set named in `fence` is still at that epoch when the decision is taken.
pub async fn decide_and_write_fenced(
    node: &NodeShared,
    input: &Input,
    fence: Option<(keel_core::SetId, keel_core::Epoch)>,
) -> Result<Vec<ClusterResponse>, AdminError> {
    let _turn = node.decide_lock.lock().await;
    let state = node.snapshot();
    if let Input::Back {
        node: id,
        pid,
        boot,
        ..
    } = input
    {
        let m = state.members.get(id);
        tracing::debug!(node = id, pid, ?boot, recorded_pid = m.map(|m| m.pid), last_failed_pid = ?m.and_then(|m| m.last_failed_pid), state = ?m.map(|m| m.state), "boot report");
    }
    if let Some((set, presented)) = fence {
        let current = state.sets.get(&set).map(|s| s.epoch).unwrap_or_default();
        if current != presented {
            let error = keel_core::ClusterError::StaleEpoch {
                set,
                presented,
                current,
            };
            return Err(AdminError::Refused { error });
        }
    }
    let commands = keel_policy::decide(&state, input, now_ms(), &timings(node))
        .map_err(|e| AdminError::bad(e.to_string()))?;
    let mut out = vec![];
    for cmd in commands {
        count(node, &state, &cmd);
        let r = node.db.write(cmd).await.map_err(|e| AdminError::NoLeader {
            message: e.to_string(),
        })?;
        if let ClusterResponse::Refused { error } = &r {
            tracing::warn!(%error, "decision refused by the configuration database");
            return Err(AdminError::Refused {
                error: error.clone(),
            });
        }
        out.push(r);
    }
    Ok(out)
}

/// Counts a decision in the metrics: failures, changes of Primary (compared with the
/// state the decision was taken on), link events.
fn count(node: &NodeShared, state: &keel_core::ClusterState, cmd: &ClusterCommand) {
    let m = &node.metrics;
    let counter = match cmd {
        ClusterCommand::SetMemberState {
            state: MemberState::Failed,
            ..
        } => &m.failures_detected,
        ClusterCommand::AssignRoles { set, primary, .. }
            if state.sets.get(set).map(|s| &s.primary) != Some(primary) =>
        {
            &m.failovers_decided
        }
        ClusterCommand::LinkState { .. } => &m.link_events,
        _ => return,
    };
    counter.inc();
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[derive(Default)]
struct Detector {
    /// Probe of a silent member: started at, and the result once known.
    probes: HashMap<NodeId, (Instant, Option<Probe>)>,
    /// When each member's latest probe result came in.
    probe_done: HashMap<NodeId, Instant>,
    /// Self-tests in flight, per (member, silent link).
    self_tests: HashMap<(NodeId, String), Instant>,
}

/// The arbiter loop. Idle while this node is not the leader.
pub async fn run(node: Arc<NodeShared>) {
    // Leadership is confirmed by a quorum continuously, apart from the detector's work.
    let confirmer = node.clone();
    let _confirm = AbortOnDrop(tokio::spawn(async move {
        let mut tick = tokio::time::interval(CONFIRM_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tick.tick().await;
            confirmer.confirm_leadership().await;
        }
    }));
    let det = Arc::new(Mutex::new(Detector::default()));
    let (results_tx, mut results_rx) = tokio::sync::mpsc::unbounded_channel::<Input>();
    let mut last_rearbitrate = Instant::now();
    let mut last_election: Option<Instant> = None;
    // While set, this node's own random election timer is off (see `hurry_election`).
    let mut timer_held: Option<Instant> = None;
    let mut leader_known: Option<(NodeId, Instant)> = None;
    // The term whose election this node recorded: a quorum confirmation that lapses
    // for a moment rebuilds the lease table, but the election is recorded once.
    let mut announced_term = 0u64;
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tick.tick().await;
        let leader = node.is_arbiter();
        node.metrics.is_leader.set(leader as i64);
        node.metrics.raft_term.set(node.db.current_term() as i64);
        if !leader {
            // A quorum confirmation that lapsed for a moment (a loaded machine) in a
            // term this node still leads keeps the lease table: no other arbiter can
            // have granted meanwhile (it would need a higher term, and a quorum that
            // accepted it could not confirm this one again), so the grants it knows of
            // are all there are. It grants nothing until confirmed again; with a new
            // term it starts afresh, waiting out every earlier grant.
            if node.db.leader() != Some(node.id()) {
                node.arbiter
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .take();
            }
            // Followers probe silent members too, so that a newly elected arbiter
            // finds the fault already characterized; their inputs are not theirs to use.
            let _ = detect(&node, &det, &results_tx, false);
            while results_rx.try_recv().is_ok() {}
            hurry_election(
                &node,
                &det,
                &mut last_election,
                &mut leader_known,
                &mut timer_held,
            );
            continue;
        }
        if timer_held.take().is_some() {
            node.db.raft().runtime_config().elect(true);
        }
        let became = {
            let mut a = node.arbiter.lock().unwrap_or_else(|e| e.into_inner());
            let became = a.as_ref().is_none_or(|t| t.term != node.db.current_term());
            if became {
                let lease = Duration::from_millis(node.cfg.timings.lease_ms);
                let grace = lease + Duration::from_millis(crate::node::ARBITER_GRACE_EXTRA_MS);
                *a = Some(LeaseTable::new(
                    lease,
                    grace,
                    Instant::now(),
                    node.db.current_term(),
                ));
            }
            became
        };
        if became {
            start_revocations(&node);
        }
        if became && node.db.current_term() > announced_term {
            announced_term = node.db.current_term();
            let ev = Event::new(now_ms(), EventKind::LeaderElected)
                .node(node.id())
                .detail(format!(
                    "term {}: arbiter; grants no lease for {} ms",
                    node.db.current_term(),
                    node.cfg.timings.lease_ms + crate::node::ARBITER_GRACE_EXTRA_MS
                ));
            node.record(ev).await;
        }
        let mut inputs = detect(&node, &det, &results_tx, true);
        while let Ok(i) = results_rx.try_recv() {
            inputs.push(i);
        }
        if last_rearbitrate.elapsed() >= REARBITRATE_EVERY {
            last_rearbitrate = Instant::now();
            inputs.push(Input::Tick);
            let n = node.clone();
            tokio::spawn(async move { crate::membership::reconcile_raft(&n).await });
        }
        for input in inputs {
            if let Err(e) = decide_and_write(&node, &input).await {
                tracing::debug!(?input, "arbiter input not applied: {e}");
            }
        }
    }
}

/// Looks at every member once; returns what the policy manager must hear now, and
/// starts probes and self-tests whose results arrive later through `results`.
fn detect(
    node: &Arc<NodeShared>,
    det: &Arc<Mutex<Detector>>,
    results: &tokio::sync::mpsc::UnboundedSender<Input>,
    arbiter: bool,
) -> Vec<Input> {
    let t = &node.cfg.timings;
    let (suspect, fail, hb) = (
        Duration::from_millis(t.suspect_after_ms),
        Duration::from_millis(t.fail_after_ms),
        Duration::from_millis(t.heartbeat_ms),
    );
    let now = Instant::now();
    let me = node.id();
    let state = node.snapshot();
    let mut inputs = vec![];
    let own = node.health.current();
    let my_state = state.members.get(&me).map(|m| m.state);
    // The arbiter hears itself: a failed arbiter that is alive came back.
    if own.score < 100
        || my_state.is_some_and(|s| s != MemberState::Up && s != MemberState::Quarantined)
    {
        inputs.push(Input::Heard {
            node: me,
            health: report(own),
        });
    }
    let my_dead_links = if arbiter {
        own_links(node, &state, &mut inputs, now)
    } else {
        Default::default()
    };
    let mut d = det.lock().unwrap_or_else(|e| e.into_inner());
    for m in state.members.values().filter(|m| m.id != me) {
        let silent = node.tracker.silent_all(m.id, now);
        // A heartbeat from a new process: the member came back (boot service), even
        // if nobody noticed it was gone.
        if let Some((pid, boot, store)) = node.tracker.incarnation(m.id) {
            let away = matches!(
                m.state,
                MemberState::Up | MemberState::Suspect | MemberState::Failed
            );
            if away && pid != 0 && m.pid != 0 && pid != m.pid && silent < suspect {
                inputs.push(Input::Back {
                    node: m.id,
                    boot,
                    pid,
                    store,
                });
                continue;
            }
        }
        match m.state {
            MemberState::Up | MemberState::Suspect if silent >= suspect => {
                // Probe once per silence, and again if an earlier probe is a second old.
                let probe = match d.probes.get(&m.id) {
                    Some((started, p)) if now.duration_since(*started) < Duration::from_secs(1) => {
                        *p
                    }
                    _ => {
                        start_probe(node, det, m.id, rpc_addrs(m));
                        d.probes.insert(m.id, (now, None)).and_then(|(_, p)| p)
                    }
                };
                // Give a probe in flight its time before characterizing the fault.
                let probing = probe.is_none()
                    && d.probes
                        .get(&m.id)
                        .is_some_and(|(t, _)| now.duration_since(*t) < PROBE_TIMEOUT + TICK);
                if silent >= fail && probing {
                    continue;
                }
                if silent >= fail || m.state == MemberState::Up {
                    // A process that answers RPC is alive: heartbeats are lost, not the member.
                    if probe == Some(Probe::NotProbed) {
                        continue;
                    }
                    let probe = probe.unwrap_or(Probe::NoAnswer);
                    inputs.push(Input::Silent {
                        node: m.id,
                        silent_ms: silent.as_millis() as u64,
                        probe,
                    });
                }
            }
            MemberState::Suspect | MemberState::Failed | MemberState::Joining
                if silent < suspect =>
            {
                d.probes.remove(&m.id);
                let health = node.tracker.health(m.id).unwrap_or_default();
                inputs.push(Input::Heard {
                    node: m.id,
                    health: report(health),
                });
            }
            MemberState::Up => {
                d.probes.remove(&m.id);
                if let Some(h) = node.tracker.health(m.id).filter(|h| h.score < 100) {
                    inputs.push(Input::Heard {
                        node: m.id,
                        health: report(h),
                    });
                }
                // One link silent while another carries heartbeats: self-test over a live link.
                for link in &m.links {
                    if node.cfg.links.iter().all(|l| l.name != link.name)
                        || my_dead_links.contains(&link.name)
                    {
                        continue;
                    }
                    let on = node.tracker.silent_on(m.id, &link.name, now);
                    let down = m.links_down.contains(&link.name);
                    if on >= fail && !down && silent < suspect {
                        let key = (m.id, link.name.clone());
                        if d.self_tests
                            .get(&key)
                            .is_some_and(|t| now.duration_since(*t) < Duration::from_secs(1))
                        {
                            continue;
                        }
                        d.self_tests.insert(key, now);
                        let live = m
                            .links
                            .iter()
                            .find(|l| {
                                l.name != link.name
                                    && node.tracker.silent_on(m.id, &l.name, now) < 2 * hb
                            })
                            .map(|l| l.name.clone());
                        if let (Some(live), true) = (live, arbiter) {
                            start_self_test(
                                node,
                                m.id,
                                rpc_addrs(m),
                                link.name.clone(),
                                live,
                                results.clone(),
                            );
                        }
                    } else if down && on < 2 * hb {
                        inputs.push(Input::LinkHeard {
                            node: m.id,
                            link: link.name.clone(),
                        });
                    }
                }
            }
            _ => {}
        }
    }
    inputs
}

fn report(h: wire::Health) -> HealthReport {
    HealthReport {
        score: h.score,
        disk_ok: h.disk_ok,
        latency_ms: h.latency_ms,
    }
}

/// Characterizes a silent member: a refused connection means the process is gone
/// (crash) for the policy manager; no answer means it hangs or its host is gone; an
/// answer means it lives. A refused connection voids no lease (a firewall REJECT rule
/// refuses too): only an answer from another process of the member proves the holder
/// of its grants gone (see `lease.rs`).
fn start_probe(
    node: &Arc<NodeShared>,
    det: &Arc<Mutex<Detector>>,
    target: NodeId,
    addrs: keel_net::PeerAddrs,
) {
    let (node, det) = (node.clone(), det.clone());
    tokio::spawn(async move {
        let asked = Instant::now();
        let r = node
            .net
            .call(&addrs, method::PING, vec![], PROBE_TIMEOUT)
            .await;
        let probe = match &r {
            Ok(_) => Probe::NotProbed,
            Err(NetError::Refused) => Probe::Refused,
            Err(_) => Probe::NoAnswer,
        };
        if let Ok(pong) =
            r.and_then(|(_, body)| wire::decode::<wire::Pong>(&body).map_err(|_| NetError::Refused))
        {
            if let Some(t) = node
                .arbiter
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .as_mut()
            {
                t.void_superseded(target, pong.incarnation, asked);
            }
        }
        let mut d = det.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(slot) = d.probes.get_mut(&target) {
            slot.1 = Some(probe);
            d.probe_done.insert(target, Instant::now());
        }
    });
}

/// Asks a member, over a link that still works, to test itself.
fn start_self_test(
    node: &Arc<NodeShared>,
    target: NodeId,
    addrs: keel_net::PeerAddrs,
    silent_link: String,
    live_link: String,
    results: tokio::sync::mpsc::UnboundedSender<Input>,
) {
    let node = node.clone();
    tokio::spawn(async move {
        let body = wire::encode(&silent_link);
        let r = node
            .net
            .call_on_link(
                &addrs,
                &live_link,
                method::SELF_TEST,
                body,
                Duration::from_millis(300),
            )
            .await;
        let (self_test, whose) = match r.as_deref().map(wire::decode::<SelfTestReply>) {
            // It hears others on that link, or its end is not cut: the fault is ours.
            Ok(Ok(reply)) if reply.health.score > 0 && !reply.link_silent_here => {
                (SelfTest::Passed, node.id())
            }
            Ok(Ok(reply)) if reply.health.score > 0 => (SelfTest::Passed, target),
            _ => (SelfTest::Failed, target),
        };
        let _ = results.send(Input::LinkSilent {
            node: whose,
            link: silent_link,
            self_test,
        });
    });
}

/// A new arbiter asks every member of every set to drop leases an earlier arbiter
/// granted (but the current Primary's own), so it can grant before its grace period
/// ends. A member that does not answer (refused connections included) is not cleared:
/// the grace period is waited out for its sets.
fn start_revocations(node: &Arc<NodeShared>) {
    let term = node.db.current_term();
    let state = node.snapshot();
    let grace =
        Duration::from_millis(node.cfg.timings.lease_ms + crate::node::ARBITER_GRACE_EXTRA_MS);
    for set in state.sets.values() {
        let keep = set.primary_node().map(|p| (p, set.epoch));
        for m in &set.members {
            let keel_core::MemberRef::Node(id) = m else {
                continue;
            };
            let (node, set_id, id) = (node.clone(), set.id.clone(), *id);
            tokio::spawn(async move {
                let deadline = Instant::now() + grace;
                while Instant::now() < deadline {
                    match revoke_one(&node, term, &set_id, id, keep).await {
                        Revoked::Cleared => {
                            if let Some(t) = node
                                .arbiter
                                .lock()
                                .unwrap_or_else(|e| e.into_inner())
                                .as_mut()
                                .filter(|t| t.term == term)
                            {
                                t.mark_cleared(&set_id, id);
                            }
                            return;
                        }
                        Revoked::Holds => return,
                        // A refused connection is no proof that the member holds
                        // nothing (a firewall REJECT rule refuses too): ask again, and
                        // failing an answer, the grace period is waited out.
                        Revoked::NotYet => {}
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            });
        }
    }
}

enum Revoked {
    /// The member holds no lease from an earlier arbiter, and will take none.
    Cleared,
    /// It still holds the kept (current Primary's) lease: it is cleared only for itself.
    Holds,
    /// No answer yet, or its Raft has not seen the new term yet.
    NotYet,
}

async fn revoke_one(
    node: &NodeShared,
    term: u64,
    set: &str,
    id: NodeId,
    keep: Option<(NodeId, keel_core::Epoch)>,
) -> Revoked {
    let kept = keep.is_some_and(|(n, _)| n == id);
    if id == node.id() {
        let keep = keep.filter(|(n, _)| *n == id).map(|(_, e)| e);
        let mut holder = node.holder.lock().unwrap_or_else(|e| e.into_inner());
        holder.revoke(term, set, keep);
        return if kept && holder.acting(set, Instant::now()).is_some() {
            Revoked::Holds
        } else {
            Revoked::Cleared
        };
    }
    let Some(addrs) = node.addrs_of(id) else {
        return Revoked::NotYet;
    };
    let body = wire::encode(&wire::Revoke {
        term,
        set: set.to_string(),
        keep,
    });
    match node
        .net
        .call(&addrs, method::REVOKE, body, Duration::from_millis(300))
        .await
    {
        Ok((_, reply)) if reply == b"clear" => Revoked::Cleared,
        Ok((_, reply)) if reply == b"holds" => Revoked::Holds,
        Ok(_) => Revoked::NotYet,
        Err(e) => {
            tracing::debug!(node = id, set, "revocation unanswered: {e}");
            Revoked::NotYet
        }
    }
}

/// A follower that hears nothing from the Raft leader on any link starts an election as
/// soon as the other followers will vote (openraft's followers refuse until their
/// leader lease, the longest election timeout, has run out), instead of waiting for a
/// random timeout after a first refused round. Followers go one after another, in id
/// order, so that they do not split the vote.
///
/// Silence counts from when this node learned who leads at the earliest: a node that
/// just joined has not heard a leader it did not know of, and must not depose it. A
/// silent leader that answers this node's probe is alive (the heartbeats are lost, maybe
/// this node's own): deposing it would only start an election storm.
fn hurry_election(
    node: &NodeShared,
    det: &Mutex<Detector>,
    last: &mut Option<Instant>,
    known: &mut Option<(NodeId, Instant)>,
    timer_held: &mut Option<Instant>,
) {
    let me = node.id();
    let release = |held: &mut Option<Instant>| {
        if held.take().is_some() {
            node.db.raft().runtime_config().elect(true);
        }
    };
    let now = Instant::now();
    // Our pre-vote (openraft 0.9 has none): a voter that hears fewer than a majority of
    // the voters, itself included, could not win an election, and each attempt would
    // only raise its term — with which, once healed, it would depose the healthy
    // leader. It stands for none (its timer held, no hurried election) until it hears
    // a majority again. A leader that is really gone is replaced all the same: the
    // majority that elects the next one hears itself.
    if node.db.admission() == keel_confdb::AdmissionState::Admitted && !hears_a_majority(node, now)
    {
        if timer_held.is_none() {
            node.db.raft().runtime_config().elect(false);
            tracing::info!("hears fewer than a majority of the voters: stands for no election");
        }
        *timer_held = Some(now);
        return;
    }
    let Some(leader) = node.db.leader().filter(|l| *l != me) else {
        release(timer_held);
        return;
    };
    let known_since = match *known {
        Some((l, since)) if l == leader => since,
        _ => {
            *known = Some((leader, now));
            now
        }
    };
    let voters: Vec<NodeId> = node.db.voters().into_iter().collect();
    // A node whose configuration database store is new stands for no election.
    if !voters.contains(&me) || node.db.admission() != keel_confdb::AdmissionState::Admitted {
        release(timer_held);
        return;
    }
    let rank = voters.iter().filter(|v| **v != leader && **v < me).count() as u64;
    let lease = node.db.raft().config().election_timeout_max;
    let wait = Duration::from_millis(lease + 15 + 40 * rank);
    let silent = node
        .tracker
        .silent_all(leader, now)
        .min(now.duration_since(known_since));
    // Only the first in line keeps its own random election timer while the leader is
    // silent: the others hold theirs for a while, so that the vote is not split by a
    // rival candidacy at the same moment. They campaign after it, in turn.
    let suspect = Duration::from_millis(node.cfg.timings.suspect_after_ms);
    if rank > 0 && silent >= suspect && timer_held.is_none() {
        node.db.raft().runtime_config().elect(false);
        *timer_held = Some(now + Duration::from_millis(lease + 400 + 40 * rank));
    }
    if timer_held.is_some_and(|until| now >= until) || silent < suspect {
        release(timer_held);
    }
    // The other followers refuse to vote until their Raft leader lease, counted from
    // the leader's last append, has run out; appends are what this node can time.
    let since_append = node
        .last_append
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .map_or(silent, |t| now.duration_since(t));
    if silent < wait || since_append < wait || last.is_some_and(|t| t.elapsed() < wait) {
        return;
    }
    // Followers go one after another from the moment the probe told them the leader is
    // gone, not all at once when it did (which would split the vote).
    let (probe, done) = {
        let d = det.lock().unwrap_or_else(|e| e.into_inner());
        (
            d.probes.get(&leader).and_then(|(_, p)| *p),
            d.probe_done.get(&leader).copied(),
        )
    };
    if !matches!(probe, Some(Probe::Refused | Probe::NoAnswer))
        || done.is_none_or(|t| now < t + Duration::from_millis(40 * rank))
    {
        return;
    }
    *last = Some(Instant::now());
    tracing::info!(leader, "leader silent on every link: starting an election");
    let raft = node.db.raft().clone();
    tokio::spawn(async move {
        let _ = raft.trigger().elect().await;
    });
}

/// Whether this node hears a majority of the configuration database's voters (itself
/// included, and counting a voter heard on any link within `suspect_after_ms`). True
/// for a node that is no voter: it stands for no election anyway.
fn hears_a_majority(node: &NodeShared, now: Instant) -> bool {
    let me = node.id();
    let voters = node.db.voters();
    if !voters.contains(&me) {
        return true;
    }
    let window = Duration::from_millis(node.cfg.timings.suspect_after_ms);
    let heard = voters
        .iter()
        .filter(|v| **v == me || node.tracker.silent_all(**v, now) < window)
        .count();
    heard * 2 > voters.len()
}

/// The arbiter's own links: one on which every other up member (two or more) is silent
/// while heard on another link is this node's own fault — a `link_down` for this node,
/// not for all the others. Returns those links; adds the inputs for changes.
fn own_links(
    node: &NodeShared,
    state: &keel_core::ClusterState,
    inputs: &mut Vec<Input>,
    now: Instant,
) -> std::collections::BTreeSet<String> {
    let t = &node.cfg.timings;
    let (suspect, fail, hb) = (
        Duration::from_millis(t.suspect_after_ms),
        Duration::from_millis(t.fail_after_ms),
        Duration::from_millis(t.heartbeat_ms),
    );
    let me = node.id();
    let Some(mine) = state.members.get(&me) else {
        return Default::default();
    };
    let mut dead = std::collections::BTreeSet::new();
    for link in &node.cfg.links {
        let peers: Vec<NodeId> = state
            .members
            .values()
            .filter(|m| m.id != me && m.state == MemberState::Up && m.link(&link.name).is_some())
            .map(|m| m.id)
            .collect();
        let all_silent = peers.len() >= 2
            && peers.iter().all(|p| {
                node.tracker.silent_on(*p, &link.name, now) >= fail
                    && node.tracker.silent_all(*p, now) < suspect
            });
        let someone_heard = peers
            .iter()
            .any(|p| node.tracker.silent_on(*p, &link.name, now) < 2 * hb);
        if all_silent {
            dead.insert(link.name.clone());
            if !mine.links_down.contains(&link.name) {
                inputs.push(Input::LinkSilent {
                    node: me,
                    link: link.name.clone(),
                    self_test: SelfTest::Passed,
                });
            }
        } else if someone_heard && mine.links_down.contains(&link.name) {
            inputs.push(Input::LinkHeard {
                node: me,
                link: link.name.clone(),
            });
        }
    }
    dead
}
