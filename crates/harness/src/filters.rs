//! The faults the in-memory network applies, as plain data: which nodes are crashed or
//! paused, which cables are cut, who is partitioned or isolated from whom, and how
//! much every message is delayed.
//!
//! Owns: the question "may a message from this node on this link reach that node on
//! that link, and after how long?". Must never: deliver anything or keep time; the
//! network ([`crate::MemNet`]) asks and acts.

use keel_core::{LinkName, NodeId};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// One kind of traffic, for filters that drop only that kind (a firewall rule on one
/// port).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Traffic {
    /// Request/response calls (internal RPC, TCP).
    Calls,
    /// Datagrams (heartbeats and their acknowledgements, UDP).
    Datagrams,
}

/// Which of a node's messages a [`Filters::blocked`] rule drops.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Way {
    /// What it sends (calls it makes, datagrams it sends).
    Out,
    /// What is sent to it.
    In,
    Both,
}

/// Every fault in force, settable at any time.
#[derive(Debug, Clone, Default)]
pub struct Filters {
    /// Processes gone: their ports refuse connections, their datagrams vanish.
    pub crashed: BTreeSet<NodeId>,
    /// Processes stopped (SIGSTOP): calls to them hang, datagrams to and from them vanish.
    pub paused: BTreeSet<NodeId>,
    /// Cut cables: every message on that link of that node is dropped, both ways.
    pub cut: BTreeSet<(NodeId, LinkName)>,
    /// One side of a partition; everyone else is the other side. Nothing crosses.
    pub partition: Option<BTreeSet<NodeId>>,
    /// Nodes that reach nobody and whom nobody reaches.
    pub isolated: BTreeSet<NodeId>,
    /// Traffic of one kind dropped at a node, one way or both (a firewall rule on one
    /// port); the other kind passes. A call is dropped with its answer.
    pub blocked: BTreeSet<(NodeId, Traffic, Way)>,
    /// A firewall `REJECT` rule at these nodes: connections to them are refused and
    /// datagrams to and from them dropped, while their processes run and the calls they
    /// make themselves still go out (a stateful firewall lets the answers in).
    pub rejecting: BTreeSet<NodeId>,
    /// Added to every message, each way.
    pub delay: Duration,
    /// Added to every message to or from that node, each way.
    pub node_delay: BTreeMap<NodeId, Duration>,
}

impl Filters {
    /// Can a message sent by `from` on `from_link` arrive at `to` on `to_link`? Says
    /// nothing of crashed or paused processes (see [`Filters::can_receive`]). A node
    /// always reaches itself.
    pub fn path_open(&self, from: NodeId, from_link: &str, to: NodeId, to_link: &str) -> bool {
        if from == to {
            return true;
        }
        let cut = |n: NodeId, l: &str| self.cut.iter().any(|(cn, cl)| *cn == n && cl == l);
        if cut(from, from_link) || cut(to, to_link) {
            return false;
        }
        if self.isolated.contains(&from) || self.isolated.contains(&to) {
            return false;
        }
        match &self.partition {
            Some(side) => side.contains(&from) == side.contains(&to),
            None => true,
        }
    }

    /// Is `kind` traffic sent by `from` to `to` dropped by a [`Filters::blocked`] rule?
    pub fn blocks(&self, kind: Traffic, from: NodeId, to: NodeId) -> bool {
        let rule = |n: NodeId, way: Way| {
            self.blocked.contains(&(n, kind, way)) || self.blocked.contains(&(n, kind, Way::Both))
        };
        from != to && (rule(from, Way::Out) || rule(to, Way::In))
    }

    /// Does the process of `node` run (neither crashed nor paused)?
    pub fn can_receive(&self, node: NodeId) -> bool {
        !self.crashed.contains(&node) && !self.paused.contains(&node)
    }

    /// How long a message between `a` and `b` takes, one way.
    pub fn delay_between(&self, a: NodeId, b: NodeId) -> Duration {
        let of = |n: NodeId| self.node_delay.get(&n).copied().unwrap_or_default();
        self.delay + of(a) + if a == b { Duration::ZERO } else { of(b) }
    }

    /// Lifts partitions and isolation (cut cables, crashes and pauses stay).
    pub fn heal(&mut self) {
        self.partition = None;
        self.isolated.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cut_cable_drops_only_its_own_link_both_ways() {
        let mut f = Filters::default();
        f.cut.insert((1, "b".into()));
        assert!(!f.path_open(1, "b", 2, "b"));
        assert!(!f.path_open(2, "b", 1, "b"));
        assert!(f.path_open(1, "a", 2, "a"));
        assert!(f.path_open(2, "b", 3, "b"));
    }

    #[test]
    fn partitions_and_isolation_cut_both_directions_until_healed() {
        let mut f = Filters {
            partition: Some([1, 2].into()),
            ..Default::default()
        };
        assert!(f.path_open(1, "a", 2, "a"));
        assert!(f.path_open(3, "a", 4, "a"));
        assert!(!f.path_open(1, "a", 3, "a"));
        assert!(!f.path_open(3, "a", 1, "a"));
        f.isolated.insert(4);
        assert!(!f.path_open(3, "a", 4, "a"));
        assert!(f.path_open(4, "a", 4, "a"), "a node always reaches itself");
        f.heal();
        assert!(f.path_open(1, "a", 3, "a") && f.path_open(3, "a", 4, "a"));
    }

    #[test]
    fn delays_add_up_per_node_and_globally() {
        let mut f = Filters {
            delay: Duration::from_millis(5),
            ..Default::default()
        };
        f.node_delay.insert(2, Duration::from_millis(20));
        assert_eq!(f.delay_between(1, 2), Duration::from_millis(25));
        assert_eq!(f.delay_between(1, 3), Duration::from_millis(5));
        f.paused.insert(3);
        assert!(!f.can_receive(3) && f.can_receive(1));
        f.blocked.insert((2, Traffic::Calls, Way::Both));
        assert!(f.blocks(Traffic::Calls, 1, 2) && f.blocks(Traffic::Calls, 2, 3));
        assert!(!f.blocks(Traffic::Datagrams, 1, 2) && !f.blocks(Traffic::Calls, 1, 3));
        f.blocked.insert((3, Traffic::Datagrams, Way::Out));
        assert!(f.blocks(Traffic::Datagrams, 3, 1) && !f.blocks(Traffic::Datagrams, 1, 3));
    }
}
