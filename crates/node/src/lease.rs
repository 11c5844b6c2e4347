//! Leases: a Primary acts only while it holds a lease from the arbiter (the
//! configuration database leader), renewed with every heartbeat.
//!
//! Safety argument: the holder measures its lease from when it *sent* the request,
//! the arbiter from when it *received* it, so the holder's lease always ends first.
//! The arbiter grants a set's lease to one (node, epoch) at a time, only to the
//! Primary of the set's current epoch, and only after any other grant ran out. A newly
//! elected arbiter knows nothing of its predecessor's grants, so it grants nothing for
//! one lease period. Clocks are monotonic (`Instant`); only their rates must agree.
//!
//! Must never: grant to anyone but the current Primary, or grant twice at once.

use keel_core::{ClusterState, Epoch, MemberRef, NodeId, SetId};
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseDecision {
    /// Granted; `first` is true when this (node, epoch) did not hold it before: the
    /// moment a new Primary takes over.
    Granted { first: bool },
    /// Not yet: another grant has not run out, or the arbiter is new.
    Pending,
    /// Never for this request: the node is not the Primary of that epoch.
    Refused { current: Epoch },
}

#[derive(Debug, Clone, Copy)]
struct Grant {
    node: NodeId,
    epoch: Epoch,
    expires: Instant,
}

/// The arbiter's side.
#[derive(Debug)]
pub struct LeaseTable {
    lease: Duration,
    /// No grant before this: a new arbiter waits out its predecessor's grants.
    grants_from: Instant,
    /// The Raft term this arbiter was elected in: a table never outlives its term.
    pub term: u64,
    grants: HashMap<SetId, Grant>,
    /// Per set, members known to hold no lease from an earlier arbiter: they
    /// acknowledged a revocation, or their process is gone (connection refused).
    cleared: HashMap<SetId, BTreeSet<NodeId>>,
    /// Members whose process was seen gone: cleared for every set.
    void_everywhere: BTreeSet<NodeId>,
    started: Instant,
}

/// How long after a new arbiter starts an earlier one may still believe it arbitrates:
/// the freshness its quorum confirmation needs (the shortest election timeout).
pub const OLD_ARBITER_WINDOW: Duration =
    Duration::from_millis(crate::node::ARBITER_QUORUM_FRESH_MS);

impl LeaseTable {
    /// A table for an arbiter elected at `now`, granting nothing for `grace`.
    pub fn new(lease: Duration, grace: Duration, now: Instant, term: u64) -> LeaseTable {
        LeaseTable {
            lease,
            grants_from: now + grace,
            term,
            grants: HashMap::new(),
            cleared: HashMap::new(),
            void_everywhere: BTreeSet::new(),
            started: now,
        }
    }

    /// `epoch_seen` is when this node first saw the set's current epoch applied: no
    /// arbiter grants an older epoch after that entry was committed (plus the window
    /// of its quorum confirmation), so from `epoch_seen + window + lease` on only the
    /// current Primary can hold a grant for the set, from any arbiter.
    pub fn request(
        &mut self,
        state: &ClusterState,
        node: NodeId,
        set: &str,
        epoch: Epoch,
        epoch_seen: Instant,
        now: Instant,
    ) -> LeaseDecision {
        let Some(s) = state.sets.get(set) else {
            return LeaseDecision::Refused { current: Epoch(0) };
        };
        let eligible = state.members.get(&node).is_some_and(|m| m.eligible());
        if s.epoch != epoch || s.primary != Some(MemberRef::Node(node)) || !eligible {
            return LeaseDecision::Refused { current: s.epoch };
        }
        if now < self.grants_from {
            // Within the grace period only if no other member can hold an older grant.
            let cleared = self.cleared.get(set);
            let all_clear = s.members.iter().all(|m| match m {
                MemberRef::Node(n) => {
                    *n == node
                        || self.void_everywhere.contains(n)
                        || cleared.is_some_and(|c| c.contains(n))
                }
                MemberRef::Set(_) => true,
            });
            let settled = now >= epoch_seen + OLD_ARBITER_WINDOW + self.lease;
            if !all_clear && !settled {
                return LeaseDecision::Pending;
            }
        }
        let first = match self.grants.get(set) {
            Some(g) if g.node == node && g.epoch == epoch => false,
            Some(g) if g.expires > now => return LeaseDecision::Pending,
            _ => true,
        };
        self.grants.insert(
            set.to_string(),
            Grant {
                node,
                epoch,
                expires: now + self.lease,
            },
        );
        LeaseDecision::Granted { first }
    }

    /// `node`'s process was seen gone (connection refused on every link) at `seen`.
    /// Whatever it held from this arbiter is void. It holds nothing from an earlier
    /// arbiter either if it was seen gone once no earlier arbiter could still grant
    /// (its quorum confirmation, at most [`OLD_ARBITER_WINDOW`] old at our start,
    /// had run out): a process started after that never got an old grant.
    pub fn void_node(&mut self, node: NodeId, seen: Instant) {
        self.grants.retain(|_, g| g.node != node);
        if seen >= self.started + OLD_ARBITER_WINDOW {
            self.void_everywhere.insert(node);
        }
    }

    /// Whether an earlier arbiter may still be granting.
    pub fn old_arbiter_window_open(&self, now: Instant) -> bool {
        now < self.started + OLD_ARBITER_WINDOW
    }

    /// `node` holds no lease on `set` from an earlier arbiter.
    pub fn mark_cleared(&mut self, set: &str, node: NodeId) {
        self.cleared
            .entry(set.to_string())
            .or_default()
            .insert(node);
    }

    /// The holder gave the lease up (it was deposed or is shutting down).
    pub fn release(&mut self, node: NodeId, set: &str, epoch: Epoch) {
        if self
            .grants
            .get(set)
            .is_some_and(|g| g.node == node && g.epoch == epoch)
        {
            self.grants.remove(set);
        }
    }

    pub fn holder(&self, set: &str, now: Instant) -> Option<(NodeId, Epoch)> {
        self.grants
            .get(set)
            .filter(|g| g.expires > now)
            .map(|g| (g.node, g.epoch))
    }
}

/// The member's side: which leases it holds and until when.
#[derive(Debug)]
pub struct LeaseHolder {
    lease: Duration,
    /// Grants from arbiters of older terms are ignored (set by revocations).
    min_term: u64,
    sent: VecDeque<(u64, Instant)>,
    held: HashMap<SetId, (Epoch, Instant)>,
}

/// What an acknowledgement changed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct LeaseChanges {
    pub acquired: Vec<(SetId, Epoch)>,
    pub deposed: Vec<(SetId, Epoch)>,
}

impl LeaseHolder {
    pub fn new(lease: Duration) -> LeaseHolder {
        LeaseHolder {
            lease,
            min_term: 0,
            sent: VecDeque::new(),
            held: HashMap::new(),
        }
    }

    /// Remembers when heartbeat `seq` (carrying lease requests) was sent.
    pub fn sent(&mut self, seq: u64, at: Instant) {
        self.sent.push_back((seq, at));
        while self.sent.len() > 64 {
            self.sent.pop_front();
        }
    }

    /// Applies an arbiter's answer to heartbeat `seq`, granted in Raft term `term`.
    /// Grants from a term older than this node's own Raft term (`floor`) or than a
    /// revocation it acknowledged are ignored.
    pub fn on_ack(
        &mut self,
        floor: u64,
        term: u64,
        seq: u64,
        granted: &[(SetId, Epoch)],
        refused: &[(SetId, Epoch)],
        now: Instant,
    ) -> LeaseChanges {
        let mut changes = LeaseChanges::default();
        let sent = self
            .sent
            .iter()
            .find(|(s, _)| *s == seq)
            .filter(|_| term >= self.min_term.max(floor));
        if let Some(&(_, sent_at)) = sent {
            let until = sent_at + self.lease;
            for (set, epoch) in granted {
                if until <= now {
                    continue;
                }
                match self.held.get(set) {
                    // A renewal: extend, never shorten.
                    Some(&(e, u)) if e == *epoch => {
                        if until > u {
                            self.held.insert(set.clone(), (e, until));
                        }
                    }
                    _ => {
                        self.held.insert(set.clone(), (*epoch, until));
                        changes.acquired.push((set.clone(), *epoch));
                    }
                }
            }
        }
        for (set, _current) in refused {
            if let Some((held_epoch, _)) = self.held.remove(set) {
                changes.deposed.push((set.clone(), held_epoch));
            }
        }
        changes
    }

    /// The epoch this node acts as Primary in for `set`, if its lease is valid.
    pub fn acting(&self, set: &str, now: Instant) -> Option<Epoch> {
        self.held
            .get(set)
            .filter(|(_, until)| *until > now)
            .map(|(e, _)| *e)
    }

    /// Drops leases that ran out; returns them (each is a `lease_lost` event).
    pub fn expire(&mut self, now: Instant) -> Vec<(SetId, Epoch)> {
        let lost: Vec<_> = self
            .held
            .iter()
            .filter(|(_, (_, until))| *until <= now)
            .map(|(s, (e, _))| (s.clone(), *e))
            .collect();
        for (s, _) in &lost {
            self.held.remove(s);
        }
        lost
    }

    /// A newer arbiter's revocation: drop the lease on `set` unless it is for
    /// `keep`, and ignore grants from arbiters older than `term` from now on.
    pub fn revoke(&mut self, term: u64, set: &str, keep: Option<Epoch>) -> Option<Epoch> {
        self.min_term = self.min_term.max(term);
        match self.held.get(set) {
            Some((e, _)) if Some(*e) != keep => self.give_up(set),
            _ => None,
        }
    }

    /// Gives up a lease (the replica shows the node is no longer Primary).
    pub fn give_up(&mut self, set: &str) -> Option<Epoch> {
        self.held.remove(set).map(|(e, _)| e)
    }

    pub fn held(&self, now: Instant) -> Vec<(SetId, Epoch)> {
        let mut v: Vec<_> = self
            .held
            .iter()
            .filter(|(_, (_, u))| *u > now)
            .map(|(s, (e, _))| (s.clone(), *e))
            .collect();
        v.sort();
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keel_core::{ClusterCommand, Composition, LinkAddr, Member, MemberState, SetSpec};

    fn state() -> ClusterState {
        let mut st = ClusterState::default();
        for id in 1..=3 {
            let member = Member {
                id,
                site: "a".into(),
                links: vec![LinkAddr {
                    name: "a".into(),
                    ip: [127, 0, 1, id as u8].into(),
                }],
                rpc_port: 1,
                admin_port: 2,
                heartbeat_port: 3,
                roles: Default::default(),
                state: MemberState::Up,
                drained: false,
                failures: vec![],
                links_down: Default::default(),
                version: "t".into(),
                protocol: 1,
                pid: 0,
                last_failed_pid: None,
                features: vec![],
                last_boot: None,
                up_since: Some(0),
                store: None,
            };
            st.apply(ClusterCommand::AddMember { member, at: 0 });
        }
        let spec = SetSpec {
            id: "s".into(),
            kind: Default::default(),
            composition: Composition::NWay,
            members: (1..=3).map(MemberRef::Node).collect(),
            health_threshold: 50,
            auto_giveback_ms: None,
        };
        st.apply(ClusterCommand::CreateSet { spec, at: 0 });
        st
    }

    #[test]
    fn only_the_primary_of_the_current_epoch_gets_a_lease() {
        let st = state();
        let lease = Duration::from_millis(500);
        let t0 = Instant::now();
        let mut table = LeaseTable::new(lease, lease, t0, 1);
        // --- a new arbiter grants nothing for one lease period
        assert_eq!(
            table.request(&st, 1, "s", Epoch(1), t0, t0),
            LeaseDecision::Pending
        );
        let t1 = t0 + lease;
        assert_eq!(
            table.request(&st, 1, "s", Epoch(1), t1, t1),
            LeaseDecision::Granted { first: true }
        );
        assert_eq!(
            table.request(&st, 1, "s", Epoch(1), t1, t1),
            LeaseDecision::Granted { first: false }
        );
        assert_eq!(
            table.request(&st, 2, "s", Epoch(1), t1, t1),
            LeaseDecision::Refused { current: Epoch(1) }
        );
        assert_eq!(
            table.request(&st, 1, "s", Epoch(0), t1, t1),
            LeaseDecision::Refused { current: Epoch(1) }
        );
        // Within the grace period, only once every other member is cleared.
        let mut fresh = LeaseTable::new(lease, lease, t0, 2);
        fresh.mark_cleared("s", 2);
        assert_eq!(
            fresh.request(&st, 1, "s", Epoch(1), t0, t0),
            LeaseDecision::Pending
        );
        fresh.mark_cleared("s", 3);
        assert_eq!(
            fresh.request(&st, 1, "s", Epoch(1), t0, t0),
            LeaseDecision::Granted { first: true }
        );
    }

    #[test]
    fn a_new_primary_waits_until_the_old_grant_ran_out() {
        let mut st = state();
        let lease = Duration::from_millis(500);
        let t0 = Instant::now();
        let mut table = LeaseTable::new(lease, Duration::ZERO, t0, 1);
        assert!(matches!(
            table.request(&st, 1, "s", Epoch(1), t0, t0),
            LeaseDecision::Granted { .. }
        ));
        st.apply(ClusterCommand::AssignRoles {
            set: "s".into(),
            expected_epoch: Epoch(1),
            primary: Some(MemberRef::Node(2)),
            secondary: Some(MemberRef::Node(3)),
            alternates: vec![MemberRef::Node(1)],
            reason: "test".into(),
            at: 1,
        });
        let t1 = t0 + Duration::from_millis(100);
        assert_eq!(
            table.request(&st, 1, "s", Epoch(1), t1, t1),
            LeaseDecision::Refused { current: Epoch(2) }
        );
        assert_eq!(
            table.request(&st, 2, "s", Epoch(2), t1, t1),
            LeaseDecision::Pending
        );
        assert_eq!(table.holder("s", t1), Some((1, Epoch(1))));
        let t2 = t0 + lease + Duration::from_millis(1);
        assert_eq!(
            table.request(&st, 2, "s", Epoch(2), t2, t2),
            LeaseDecision::Granted { first: true }
        );
    }

    #[test]
    fn the_holder_counts_from_sending_and_gives_up_on_refusal() {
        let lease = Duration::from_millis(500);
        let mut h = LeaseHolder::new(lease);
        let t0 = Instant::now();
        h.sent(7, t0);
        let got = h.on_ack(
            0,
            1,
            7,
            &[("s".into(), Epoch(1))],
            &[],
            t0 + Duration::from_millis(40),
        );
        assert_eq!(got.acquired, vec![("s".to_string(), Epoch(1))]);
        assert_eq!(
            h.acting("s", t0 + Duration::from_millis(499)),
            Some(Epoch(1))
        );
        assert_eq!(h.acting("s", t0 + lease), None);
        let lost = h.expire(t0 + lease);
        assert_eq!(lost, vec![("s".to_string(), Epoch(1))]);
        h.sent(8, t0);
        h.on_ack(0, 1, 8, &[("s".into(), Epoch(1))], &[], t0);
        let ch = h.on_ack(0, 1, 8, &[], &[("s".into(), Epoch(2))], t0);
        assert_eq!(ch.deposed, vec![("s".to_string(), Epoch(1))]);
        assert_eq!(h.acting("s", t0), None);
        // A revocation by a newer arbiter drops the lease and shuts out older grants.
        h.sent(9, t0);
        h.on_ack(0, 1, 9, &[("s".into(), Epoch(2))], &[], t0);
        assert_eq!(h.revoke(2, "s", None), Some(Epoch(2)));
        h.sent(10, t0);
        assert!(h
            .on_ack(0, 1, 10, &[("s".into(), Epoch(2))], &[], t0)
            .acquired
            .is_empty());
        assert!(!h
            .on_ack(0, 2, 10, &[("s".into(), Epoch(2))], &[], t0)
            .acquired
            .is_empty());
        // An ack for a heartbeat never sent grants nothing.
        assert!(h
            .on_ack(0, 1, 99, &[("s".into(), Epoch(1))], &[], t0)
            .acquired
            .is_empty());
    }
}
