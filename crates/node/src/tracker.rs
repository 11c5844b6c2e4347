//! What this node has heard from its peers: when, on which link, and their last
//! reported health. Fed by heartbeat datagrams; read by the arbiter's detector.
//!
//! Must never decide anything: it only records and answers "how long silent".

use crate::wire::Health;
use keel_core::{BootType, LinkName, NodeId};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A peer's process id, boot type and object store identity, as its heartbeats say.
pub type Incarnation = (u32, BootType, Option<keel_core::StoreId>);

/// The pseudo-link under which a grace period is recorded.
const GRACE: &str = "(grace)";

#[derive(Debug)]
struct Seen {
    links: HashMap<LinkName, Instant>,
    health: Health,
    incarnation: Option<Incarnation>,
}

#[derive(Debug)]
pub struct PeerTracker {
    started: Instant,
    peers: Mutex<HashMap<NodeId, Seen>>,
}

impl PeerTracker {
    pub fn new() -> PeerTracker {
        PeerTracker {
            started: Instant::now(),
            peers: Mutex::new(HashMap::new()),
        }
    }

    pub fn heard(
        &self,
        node: NodeId,
        link: &str,
        health: Health,
        incarnation: Incarnation,
        at: Instant,
    ) {
        let mut peers = self.peers.lock().unwrap_or_else(|e| e.into_inner());
        let seen = peers.entry(node).or_insert_with(|| Seen {
            links: HashMap::new(),
            health,
            incarnation: None,
        });
        seen.health = health;
        seen.incarnation = Some(incarnation);
        seen.links.insert(link.to_string(), at);
    }

    /// Silence on every link: time since the newest heartbeat on any link. A peer
    /// never heard counts as heard when the tracker started (a grace period).
    pub fn silent_all(&self, node: NodeId, now: Instant) -> Duration {
        let peers = self.peers.lock().unwrap_or_else(|e| e.into_inner());
        let last = peers
            .get(&node)
            .and_then(|s| s.links.values().max().copied())
            .unwrap_or(self.started);
        now.saturating_duration_since(last)
    }

    /// Silence on one link.
    pub fn silent_on(&self, node: NodeId, link: &str, now: Instant) -> Duration {
        let peers = self.peers.lock().unwrap_or_else(|e| e.into_inner());
        let last = peers
            .get(&node)
            .and_then(|s| s.links.get(link).copied())
            .unwrap_or(self.started);
        now.saturating_duration_since(last)
    }

    /// Counts `node` as heard until `until` (a grace period for a member just
    /// admitted, whose heartbeats start once its replica has caught up).
    pub fn grace(&self, node: NodeId, until: Instant) {
        let mut peers = self.peers.lock().unwrap_or_else(|e| e.into_inner());
        let seen = peers.entry(node).or_insert_with(|| Seen {
            links: HashMap::new(),
            health: Health::default(),
            incarnation: None,
        });
        let last = seen.links.entry(GRACE.to_string()).or_insert(until);
        *last = (*last).max(until);
    }

    /// Has a heartbeat of `node` ever arrived (a grace period does not count)?
    pub fn ever_heard(&self, node: NodeId) -> bool {
        let peers = self.peers.lock().unwrap_or_else(|e| e.into_inner());
        peers
            .get(&node)
            .is_some_and(|s| s.links.keys().any(|l| l != GRACE))
    }

    /// The process id, boot type and store of `node`'s latest heartbeat.
    pub fn incarnation(&self, node: NodeId) -> Option<Incarnation> {
        let peers = self.peers.lock().unwrap_or_else(|e| e.into_inner());
        peers.get(&node).and_then(|s| s.incarnation)
    }

    pub fn health(&self, node: NodeId) -> Option<Health> {
        let peers = self.peers.lock().unwrap_or_else(|e| e.into_inner());
        peers.get(&node).map(|s| s.health)
    }

    /// When tracking started: the end of the grace period for peers never heard.
    pub fn since(&self) -> Instant {
        self.started
    }
}

impl Default for PeerTracker {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn silence_is_per_link_and_overall() {
        let t = PeerTracker::new();
        let t0 = Instant::now();
        let inc = (7, BootType::FirstBoot, None);
        t.heard(2, "a", Health::default(), inc, t0);
        t.heard(
            2,
            "b",
            Health::default(),
            inc,
            t0 + Duration::from_millis(50),
        );
        assert_eq!(t.incarnation(2), Some(inc));
        let now = t0 + Duration::from_millis(300);
        assert_eq!(t.silent_all(2, now), Duration::from_millis(250));
        assert_eq!(t.silent_on(2, "a", now), Duration::from_millis(300));
        assert!(t.silent_all(9, now) <= now - t.since());
    }
}
