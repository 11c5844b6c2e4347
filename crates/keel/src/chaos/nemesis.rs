//! The chaos nemesis: one fault at a time, chosen by a seeded random generator,
//! injected, held for a bounded time, healed, and waited out (every node up, every
//! storage set's in-sync list full again, with a deadline) before the next. It stops
//! by itself when its time is up.
//!
//! Faults: SIGKILL or SIGSTOP of a storage set's Primary or of the Raft leader; one
//! link of a node cut, or both (the node is isolated); a node's object store deleted
//! while it is down; a storage node added (a new process, `layout apply`, rebalance),
//! then drained and the layout applied again (its groups move back out), then
//! undrained and applied again, in turn.
//!
//! Owns: choosing and timing faults. Must never: leave a fault in place when it
//! returns, or wait without a deadline.

use super::cluster::ChaosCluster;
use anyhow::Result;
use keel_core::NodeId;
use keel_node::admin_api::{AdminRequest, StatusView};
use keel_node::data_invariant::DataViolation;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

/// How long a rebalance may go without moving anything before the objects it has not
/// moved are taken as lost.
const NO_PROGRESS: Duration = Duration::from_secs(20);
/// How long the cluster may take to be whole again after a fault is healed.
pub const HEAL_DEADLINE: Duration = Duration::from_secs(90);

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum FaultKind {
    KillPrimary,
    PausePrimary,
    KillLeader,
    PauseLeader,
    CutOneLink,
    CutBothLinks,
    WipeDisk,
    AddOrRemoveNode,
}

impl FaultKind {
    pub fn name(self) -> &'static str {
        match self {
            FaultKind::KillPrimary => "sigkill_primary",
            FaultKind::PausePrimary => "sigstop_primary",
            FaultKind::KillLeader => "sigkill_leader",
            FaultKind::PauseLeader => "sigstop_leader",
            FaultKind::CutOneLink => "link_cut_single",
            FaultKind::CutBothLinks => "link_cut_double",
            FaultKind::WipeDisk => "disk_wiped",
            FaultKind::AddOrRemoveNode => "storage_node_added_or_removed",
        }
    }

    /// Every kind with its weight in the draw.
    const WEIGHTS: [(FaultKind, u32); 8] = [
        (FaultKind::KillPrimary, 4),
        (FaultKind::PausePrimary, 3),
        (FaultKind::KillLeader, 2),
        (FaultKind::PauseLeader, 2),
        (FaultKind::CutOneLink, 2),
        (FaultKind::CutBothLinks, 3),
        (FaultKind::WipeDisk, 2),
        (FaultKind::AddOrRemoveNode, 2),
    ];
}

/// What the nemesis did.
#[derive(Default, Debug)]
pub struct NemesisLog {
    pub injected: BTreeMap<&'static str, u64>,
    /// One line per fault, with when it was injected (ms from the start).
    pub timeline: Vec<String>,
    /// Faults after which the cluster was not whole again within the deadline.
    pub heal_timeouts: Vec<String>,
    /// In-sync violations found at the quiescent points between faults (each once).
    pub in_sync_violations: BTreeSet<DataViolation>,
    /// The fault after which each was first seen.
    pub in_sync_examples: Vec<String>,
}

/// The state of the added storage node across faults.
#[derive(Default)]
enum Extra {
    #[default]
    None,
    /// Added and holding placement groups.
    In(NodeId),
    /// Drained: its groups moved out.
    Out(NodeId),
}

pub struct Nemesis {
    rng: StdRng,
    extra: Extra,
    started: Instant,
    pub log: NemesisLog,
}

impl Nemesis {
    pub fn new(seed: u64) -> Nemesis {
        Nemesis {
            rng: StdRng::seed_from_u64(seed),
            extra: Extra::None,
            started: Instant::now(),
            log: NemesisLog::default(),
        }
    }

    fn hold(&mut self, lo_ms: u64, hi_ms: u64) -> Duration {
        Duration::from_millis(self.rng.gen_range(lo_ms..=hi_ms))
    }

    fn draw(&mut self) -> FaultKind {
        let total: u32 = FaultKind::WEIGHTS.iter().map(|(_, w)| w).sum();
        let mut x = self.rng.gen_range(0..total);
        for (k, w) in FaultKind::WEIGHTS {
            if x < w {
                return k;
            }
            x -= w;
        }
        FaultKind::KillPrimary
    }

    /// Runs faults until `until` (a fault started before it is finished and healed).
    pub async fn run(&mut self, cluster: &mut ChaosCluster, until: Instant) -> Result<()> {
        while Instant::now() < until {
            let kind = self.draw();
            let at = self.started.elapsed().as_millis();
            let what = match self.inject(cluster, kind).await {
                Ok(Some(what)) => what,
                Ok(None) => continue,
                Err(e) => {
                    eprintln!(
                        "[chaos] nemesis: {} could not be injected: {e:#}",
                        kind.name()
                    );
                    let _ = cluster.heal_processes();
                    continue;
                }
            };
            *self.log.injected.entry(kind.name()).or_insert(0) += 1;
            let line = format!("{at} ms: {what}");
            eprintln!("[chaos] nemesis: {what}: healed");
            self.log.timeline.push(line);
            match wait_whole(cluster, HEAL_DEADLINE).await {
                Err(e) => {
                    eprintln!("[chaos] nemesis: after {what}: {e:#}");
                    self.log.heal_timeouts.push(format!("after {what}: {e:#}"));
                }
                Ok(()) => self.check(cluster, &what).await,
            }
            let gap = self.hold(300, 1500);
            tokio::time::sleep(gap).await;
        }
        Ok(())
    }

    /// The data invariant at this quiescent point; new violations are recorded.
    async fn check(&mut self, cluster: &ChaosCluster, after: &str) {
        match super::checker::check_quiescent(cluster).await {
            Ok(found) => {
                let mut new = 0;
                for v in found {
                    if self.log.in_sync_violations.insert(v.clone()) {
                        new += 1;
                        let line = format!("after \"{after}\": {v}");
                        if new <= 3 {
                            eprintln!("[chaos] data invariant broken {line}");
                        }
                        if self.log.in_sync_examples.len() < 20 {
                            self.log.in_sync_examples.push(line);
                        }
                    }
                }
                if new > 3 {
                    eprintln!("[chaos] ... and {} more in-sync violations", new - 3);
                }
            }
            Err(e) => eprintln!("[chaos] data invariant not checked after {after}: {e}"),
        }
    }

    /// Injects one fault and heals it. `None`: nothing to do it to right now.
    async fn inject(&mut self, c: &mut ChaosCluster, kind: FaultKind) -> Result<Option<String>> {
        let status = c.status().await?;
        let primaries: Vec<(String, NodeId)> = status
            .sets
            .iter()
            .filter(|s| s.kind == "storage")
            .filter_map(|s| s.primary_node().map(|p| (s.id.clone(), p)))
            .collect();
        let storage = c.storage_ids();
        Ok(Some(match kind {
            FaultKind::KillPrimary | FaultKind::KillLeader => {
                let Some((what, n)) = self.target(kind, &status, &primaries) else {
                    return Ok(None);
                };
                eprintln!("[chaos] nemesis: SIGKILL node {n} ({what})");
                c.kill(n)?;
                tokio::time::sleep(self.hold(500, 3000)).await;
                c.restart(n)?;
                format!("SIGKILL node {n} ({what}), restarted")
            }
            FaultKind::PausePrimary | FaultKind::PauseLeader => {
                let Some((what, n)) = self.target(kind, &status, &primaries) else {
                    return Ok(None);
                };
                eprintln!("[chaos] nemesis: SIGSTOP node {n} ({what})");
                c.pause(n)?;
                tokio::time::sleep(self.hold(500, 3000)).await;
                c.resume(n)?;
                format!("SIGSTOP node {n} ({what}), SIGCONT")
            }
            FaultKind::CutOneLink | FaultKind::CutBothLinks => {
                let n = *c.ids().choose(&mut self.rng).unwrap_or(&1);
                let links: Vec<&str> = if kind == FaultKind::CutBothLinks {
                    vec!["a", "b"]
                } else {
                    vec![*["a", "b"].choose(&mut self.rng).unwrap_or(&"a")]
                };
                eprintln!(
                    "[chaos] nemesis: node {n}: link {} down",
                    links.join(" and ")
                );
                for l in &links {
                    c.client.fault_link(n, l, false).await?;
                }
                tokio::time::sleep(self.hold(500, 4000)).await;
                for l in &links {
                    restore_link(c, n, l).await;
                }
                format!("node {n}: link {} cut, restored", links.join(" and "))
            }
            FaultKind::WipeDisk => {
                let Some(n) = storage.choose(&mut self.rng).copied() else {
                    return Ok(None);
                };
                eprintln!("[chaos] nemesis: SIGKILL node {n}, delete its object store, restart it");
                c.kill(n)?;
                c.wipe_store(n)?;
                tokio::time::sleep(self.hold(200, 1000)).await;
                c.restart(n)?;
                format!("node {n}: store wiped while down, restarted")
            }
            FaultKind::AddOrRemoveNode => self.add_or_remove(c).await?,
        }))
    }

    /// The node a kill or pause goes to: a random storage Primary, or the leader.
    fn target(
        &mut self,
        kind: FaultKind,
        status: &StatusView,
        primaries: &[(String, NodeId)],
    ) -> Option<(String, NodeId)> {
        match kind {
            FaultKind::KillLeader | FaultKind::PauseLeader => {
                status.leader.map(|l| ("the Raft leader".to_string(), l))
            }
            _ => primaries
                .choose(&mut self.rng)
                .map(|(set, p)| (format!("Primary of {set}"), *p)),
        }
    }

    /// Adds a storage node (first time), drains it, or undrains it, then applies the
    /// layout and waits for the rebalance to be done.
    async fn add_or_remove(&mut self, c: &mut ChaosCluster) -> Result<String> {
        let what = match self.extra {
            Extra::None => {
                eprintln!("[chaos] nemesis: adding a storage node");
                let n = c.add_node().await?;
                self.extra = Extra::In(n);
                format!("storage node {n} added, layout applied")
            }
            Extra::In(n) => {
                eprintln!("[chaos] nemesis: draining storage node {n}");
                c.client
                    .admin(&AdminRequest::Drain {
                        node: n,
                        force: true,
                    })
                    .await?;
                self.extra = Extra::Out(n);
                format!("storage node {n} drained, layout applied")
            }
            Extra::Out(n) => {
                eprintln!("[chaos] nemesis: undraining storage node {n}");
                c.client.admin(&AdminRequest::Undrain { node: n }).await?;
                self.extra = Extra::In(n);
                format!("storage node {n} undrained, layout applied")
            }
        };
        let reply = c
            .client
            .admin(&AdminRequest::ApplyLayout {
                replicas: None,
                dry_run: false,
            })
            .await?;
        eprintln!("[chaos] nemesis: {}", reply.message);
        if let Err(e) = wait_rebalanced(c, HEAL_DEADLINE).await {
            eprintln!("[chaos] nemesis: {e:#}");
            self.log.heal_timeouts.push(format!("after {what}: {e:#}"));
        }
        Ok(what)
    }
}

/// Restores a link, retrying while the node is busy (a few attempts).
async fn restore_link(c: &ChaosCluster, n: NodeId, link: &str) {
    for _ in 0..20 {
        if c.client.fault_link(n, link, true).await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    eprintln!("[chaos] nemesis: could not restore link {link} of node {n}");
}

/// Waits (bounded) until every object a file refers to is in the set the placement
/// map names (the rebalance moved it), as the members' storage listings show.
pub async fn wait_rebalanced(c: &ChaosCluster, within: Duration) -> Result<()> {
    let deadline = Instant::now() + within;
    let mut last = String::new();
    // The fewest objects still away seen, and since when: no progress for a while
    // means they will not come (lost), not that the rebalance is slow.
    let mut best: Option<(usize, Instant)> = None;
    while Instant::now() < deadline {
        match c.client.data_snapshot().await {
            Ok(sets) => {
                let lost = keel_node::data_invariant::check(&sets)
                    .into_iter()
                    .filter(|v| matches!(v, DataViolation::Lost { .. }))
                    .count();
                if lost == 0 {
                    return Ok(());
                }
                last = format!("{lost} referenced objects on no member of their set");
                match best {
                    Some((n, _)) if lost < n => best = Some((lost, Instant::now())),
                    None => best = Some((lost, Instant::now())),
                    Some((_, since)) if since.elapsed() > NO_PROGRESS => {
                        anyhow::bail!("{last}, none moved in {NO_PROGRESS:?}")
                    }
                    Some(_) => {}
                }
            }
            Err(e) => last = e.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    anyhow::bail!("rebalance not done within {within:?}: {last}")
}

/// Ok if every node is up and every storage set's in-sync list holds each of its
/// members, else what is missing; quarantined nodes are cleared (an operator would).
pub async fn whole(c: &ChaosCluster) -> Result<(), String> {
    let s = c.status().await.map_err(|e| e.to_string())?;
    for n in s.nodes.iter().filter(|n| n.state == "quarantined") {
        eprintln!("[chaos] node {} is quarantined: clearing it", n.id);
        let _ = c.client.admin(&AdminRequest::Clear { node: n.id }).await;
    }
    let down: Vec<String> = s
        .nodes
        .iter()
        .filter(|n| n.state != "up")
        .map(|n| format!("node {} {}", n.id, n.state))
        .collect();
    let short: Vec<String> = s
        .sets
        .iter()
        .filter(|x| x.kind == "storage")
        .filter_map(|x| {
            let missing: Vec<NodeId> = x
                .members
                .iter()
                .filter_map(|m| match m {
                    keel_core::MemberRef::Node(n) => Some(*n),
                    _ => None,
                })
                .filter(|n| !x.in_sync.contains(n))
                .collect();
            (!missing.is_empty()).then(|| format!("{} lacks {missing:?}", x.id))
        })
        .collect();
    if down.is_empty() && short.is_empty() && s.leader.is_some() {
        Ok(())
    } else {
        Err(format!("{} {}", down.join(", "), short.join(", ")))
    }
}

/// Waits until [`whole`], or fails after `within` with what was still missing.
pub async fn wait_whole(c: &mut ChaosCluster, within: Duration) -> Result<()> {
    let deadline = Instant::now() + within;
    loop {
        for n in c.reap()? {
            eprintln!("[chaos] node {n} had exited by itself: restarted");
        }
        let last = match whole(c).await {
            Ok(()) => return Ok(()),
            Err(e) => e,
        };
        if Instant::now() > deadline {
            anyhow::bail!("not whole within {within:?}: {last}");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
