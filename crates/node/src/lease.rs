//! Leases: a Primary acts only while it holds a lease from the arbiter (the
//! configuration database leader), renewed with every heartbeat.
//!
//! Safety argument: the holder measures its lease from when it *sent* the request,
//! the arbiter from when it *received* it, so the holder's lease always ends first.
//! The arbiter grants a set's lease to one (node, incarnation, epoch) at a time, only
//! to the Primary of the set's current epoch, and only after any other grant ran out.
//! A newly elected arbiter knows nothing of its predecessor's grants, so it grants
//! nothing for one lease period. Clocks are monotonic (`Instant`); only their rates
//! must agree.
//!
//! Every grant has a [`GrantId`] (the arbiter's term and a number it never reuses in
//! that term), and everything that refers to a grant names it: a release drops only
//! the grant it names, so a duplicated or late release (a heartbeat is sent on every
//! link) never voids a newer grant of the same (set, epoch); a holder never takes back
//! a grant it released. Every grant is made to one process (its incarnation, drawn at
//! random when the process starts): an answer addressed to another incarnation is
//! ignored, and a restarted process is never credited with its predecessor's grant.
//!
//! A grant is voided early only on evidence that its holder process is gone and cannot
//! act: another incarnation of the same node answered the arbiter's ping (its RPC and
//! heartbeat ports are held by one process at a time, so the holder is gone and cannot
//! come back). A refused connection is no such evidence (a firewall REJECT rule gives
//! it too): the grant is then waited out.
//!
//! Must never: grant to anyone but the current Primary, or grant twice at once.

use keel_core::{ClusterState, Epoch, MemberRef, NodeId, SetId};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::time::{Duration, Instant};

/// Names one grant: the granting arbiter's Raft term and a number it never reuses in
/// that term. Renewals keep the id; a grant made after a release or an expiry gets a
/// new one.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GrantId {
    pub term: u64,
    pub n: u64,
}

/// A lease the holder gave up, as carried in its heartbeats.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Release {
    pub set: SetId,
    pub epoch: Epoch,
    pub grant: GrantId,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseDecision {
    /// Granted; `first` is true when this grant is new (not a renewal): the moment a
    /// new Primary (or a new process of it) takes over.
    Granted { first: bool, id: GrantId },
    /// Not yet: another grant has not run out, or the arbiter is new.
    Pending,
    /// Never for this request: the node is not the Primary of that epoch.
    Refused { current: Epoch },
}

#[derive(Debug, Clone, Copy)]
struct Grant {
    node: NodeId,
    incarnation: u64,
    epoch: Epoch,
    id: GrantId,
    /// When this grant (this id) was first made.
    made: Instant,
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
    /// The next grant number in this term.
    next_grant: u64,
    /// Per set, members known to hold no lease from an earlier arbiter: they
    /// acknowledged a revocation.
    cleared: HashMap<SetId, BTreeSet<NodeId>>,
    /// When the arbiter last asked each node which process answers.
    confirming: HashMap<NodeId, Instant>,
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
            next_grant: 1,
            cleared: HashMap::new(),
            confirming: HashMap::new(),
            started: now,
        }
    }

    /// `node`'s process `incarnation` asks for `set`'s lease at `epoch`.
    ///
    /// `epoch_seen` is when this node first saw the set's current epoch applied: no
    /// arbiter grants an older epoch after that entry was committed (plus the window
    /// of its quorum confirmation), so from `epoch_seen + window + lease` on only the
    /// current Primary can hold a grant for the set, from any arbiter.
    #[allow(clippy::too_many_arguments)]
    pub fn request(
        &mut self,
        state: &ClusterState,
        node: NodeId,
        incarnation: u64,
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
                MemberRef::Node(n) => *n == node || cleared.is_some_and(|c| c.contains(n)),
                MemberRef::Set(_) => true,
            });
            let settled = now >= epoch_seen + OLD_ARBITER_WINDOW + self.lease;
            if !all_clear && !settled {
                return LeaseDecision::Pending;
            }
        }
        let (first, id, made) = match self.grants.get(set) {
            // A renewal: the same process, the same epoch, the same grant.
            Some(g) if g.node == node && g.incarnation == incarnation && g.epoch == epoch => {
                (false, g.id, g.made)
            }
            // Someone else's, or another process's of the same node: wait it out.
            Some(g) if g.expires > now => return LeaseDecision::Pending,
            _ => {
                let id = GrantId {
                    term: self.term,
                    n: self.next_grant,
                };
                self.next_grant += 1;
                (true, id, now)
            }
        };
        self.grants.insert(
            set.to_string(),
            Grant {
                node,
                incarnation,
                epoch,
                id,
                made,
                expires: now + self.lease,
            },
        );
        LeaseDecision::Granted { first, id }
    }

    /// Process `alive` of `node` answered a question the arbiter asked at `asked`.
    /// Any other process of `node` granted a lease before `asked` existed then, and
    /// one process at a time holds a node's ports: it was gone when `alive`
    /// answered, and a process does not come back. Its grants are void. Returns how
    /// many were voided.
    pub fn void_superseded(&mut self, node: NodeId, alive: u64, asked: Instant) -> usize {
        let before = self.grants.len();
        self.grants
            .retain(|_, g| g.node != node || g.incarnation == alive || g.made >= asked);
        before - self.grants.len()
    }

    /// Whether to ask `node` now which process answers (at most every 100 ms).
    pub fn may_confirm(&mut self, node: NodeId, now: Instant) -> bool {
        let due = self
            .confirming
            .get(&node)
            .is_none_or(|t| now >= *t + Duration::from_millis(100));
        if due {
            self.confirming.insert(node, now);
        }
        due
    }

    /// Whether some grant to `node` was made to another process than `incarnation`
    /// and has not run out: a new process of `node` then waits for it, unless the
    /// arbiter can prove the old one gone (see [`LeaseTable::void_superseded`]).
    pub fn held_by_other_incarnation(&self, node: NodeId, incarnation: u64, now: Instant) -> bool {
        self.grants
            .values()
            .any(|g| g.node == node && g.incarnation != incarnation && g.expires > now)
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

    /// The holder gave up the grant it names (it was deposed, its lease lapsed, or it
    /// is shutting down). A release that names another grant — a late or duplicated
    /// copy of an older heartbeat — changes nothing.
    pub fn release(&mut self, node: NodeId, release: &Release) {
        if self
            .grants
            .get(&release.set)
            .is_some_and(|g| g.node == node && g.epoch == release.epoch && g.id == release.grant)
        {
            self.grants.remove(&release.set);
        }
    }

    pub fn holder(&self, set: &str, now: Instant) -> Option<(NodeId, Epoch)> {
        self.grants
            .get(set)
            .filter(|g| g.expires > now)
            .map(|g| (g.node, g.epoch))
    }
}

#[derive(Debug, Clone, Copy)]
struct Held {
    epoch: Epoch,
    grant: GrantId,
    until: Instant,
}

/// How many released grant ids a holder remembers (to ignore late answers naming
/// them): far more than can be in flight within one lease.
const RELEASED_MEMORY: usize = 256;

/// The member's side: which leases this process holds and until when.
#[derive(Debug)]
pub struct LeaseHolder {
    lease: Duration,
    /// This process: answers addressed to another incarnation are ignored.
    incarnation: u64,
    /// Grants from arbiters of older terms are ignored (set by revocations).
    min_term: u64,
    sent: VecDeque<(u64, Instant)>,
    held: HashMap<SetId, Held>,
    /// Grants this process gave up, each with the last heartbeat sent before it did:
    /// an answer to that heartbeat or an earlier one (a late answer) never gives it
    /// back. A later heartbeat's answer renewing it means the arbiter never got the
    /// release and holds the grant for this process: it is taken again.
    released_ids: VecDeque<(GrantId, u64)>,
    /// The last heartbeat sent (with lease requests).
    last_sent: u64,
    /// Releases not yet carried by a heartbeat.
    to_release: Vec<Release>,
}

/// What an acknowledgement changed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct LeaseChanges {
    pub acquired: Vec<(SetId, Epoch)>,
    pub deposed: Vec<(SetId, Epoch)>,
}

/// An arbiter's answer to one heartbeat, as the holder reads it.
#[derive(Debug, Clone, Copy)]
pub struct AckView<'a> {
    /// The incarnation the answer is addressed to.
    pub to: u64,
    /// The granting arbiter's Raft term.
    pub term: u64,
    /// The heartbeat it answers.
    pub seq: u64,
    pub granted: &'a [(SetId, Epoch, GrantId)],
    pub refused: &'a [(SetId, Epoch)],
}

impl LeaseHolder {
    pub fn new(lease: Duration, incarnation: u64) -> LeaseHolder {
        LeaseHolder {
            lease,
            incarnation,
            min_term: 0,
            sent: VecDeque::new(),
            held: HashMap::new(),
            released_ids: VecDeque::new(),
            last_sent: 0,
            to_release: vec![],
        }
    }

    pub fn incarnation(&self) -> u64 {
        self.incarnation
    }

    /// Remembers when heartbeat `seq` (carrying lease requests) was sent.
    pub fn sent(&mut self, seq: u64, at: Instant) {
        self.last_sent = self.last_sent.max(seq);
        self.sent.push_back((seq, at));
        while self.sent.len() > 64 {
            self.sent.pop_front();
        }
    }

    fn released(&mut self, set: &str, h: Held) {
        self.released_ids.push_back((h.grant, self.last_sent));
        while self.released_ids.len() > RELEASED_MEMORY {
            self.released_ids.pop_front();
        }
        self.to_release.push(Release {
            set: set.to_string(),
            epoch: h.epoch,
            grant: h.grant,
        });
    }

    /// Applies an arbiter's answer. Answers addressed to another process, grants from
    /// a term older than this node's own Raft term (`floor`) or than a revocation it
    /// acknowledged, and grants this process already released are ignored.
    pub fn on_ack(&mut self, floor: u64, ack: AckView<'_>, now: Instant) -> LeaseChanges {
        let mut changes = LeaseChanges::default();
        if ack.to != self.incarnation {
            return changes;
        }
        let sent = self
            .sent
            .iter()
            .find(|(s, _)| *s == ack.seq)
            .filter(|_| ack.term >= self.min_term.max(floor));
        if let Some(&(_, sent_at)) = sent {
            let until = sent_at + self.lease;
            for (set, epoch, grant) in ack.granted {
                let late = self
                    .released_ids
                    .iter()
                    .any(|(g, before)| g == grant && ack.seq <= *before);
                if until <= now || late {
                    continue;
                }
                match self.held.get(set) {
                    // A renewal: extend, never shorten. A new grant at the same epoch
                    // (a new arbiter's) replaces the old one's id.
                    Some(h) if h.epoch == *epoch => {
                        let until = until.max(h.until);
                        self.held.insert(
                            set.clone(),
                            Held {
                                epoch: *epoch,
                                grant: *grant,
                                until,
                            },
                        );
                    }
                    _ => {
                        self.held.insert(
                            set.clone(),
                            Held {
                                epoch: *epoch,
                                grant: *grant,
                                until,
                            },
                        );
                        changes.acquired.push((set.clone(), *epoch));
                    }
                }
            }
        }
        for (set, _current) in ack.refused {
            if let Some(h) = self.held.remove(set) {
                self.released(set, h);
                changes.deposed.push((set.clone(), h.epoch));
            }
        }
        changes
    }

    /// The epoch this node acts as Primary in for `set`, if its lease is valid.
    pub fn acting(&self, set: &str, now: Instant) -> Option<Epoch> {
        self.held
            .get(set)
            .filter(|h| h.until > now)
            .map(|h| h.epoch)
    }

    /// When this process's lease on `set` runs out, if it holds one.
    pub fn until(&self, set: &str) -> Option<Instant> {
        self.held.get(set).map(|h| h.until)
    }

    /// Drops leases that ran out; returns them (each is a `lease_lost` event).
    pub fn expire(&mut self, now: Instant) -> Vec<(SetId, Epoch)> {
        let lost: Vec<(SetId, Held)> = self
            .held
            .iter()
            .filter(|(_, h)| h.until <= now)
            .map(|(s, h)| (s.clone(), *h))
            .collect();
        for (s, h) in &lost {
            self.held.remove(s);
            self.released(s, *h);
        }
        lost.into_iter().map(|(s, h)| (s, h.epoch)).collect()
    }

    /// A newer arbiter's revocation: drop the lease on `set` unless it is for
    /// `keep`, and ignore grants from arbiters older than `term` from now on.
    pub fn revoke(&mut self, term: u64, set: &str, keep: Option<Epoch>) -> Option<Epoch> {
        self.min_term = self.min_term.max(term);
        match self.held.get(set) {
            Some(h) if Some(h.epoch) != keep => self.give_up(set),
            _ => None,
        }
    }

    /// Gives up a lease (the replica shows the node is no longer Primary).
    pub fn give_up(&mut self, set: &str) -> Option<Epoch> {
        let h = self.held.remove(set)?;
        self.released(set, h);
        Some(h.epoch)
    }

    /// The releases the next heartbeat carries.
    pub fn take_releases(&mut self) -> Vec<Release> {
        std::mem::take(&mut self.to_release)
    }

    pub fn held(&self, now: Instant) -> Vec<(SetId, Epoch)> {
        let mut v: Vec<_> = self
            .held
            .iter()
            .filter(|(_, h)| h.until > now)
            .map(|(s, h)| (s.clone(), h.epoch))
            .collect();
        v.sort();
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keel_core::{ClusterCommand, Composition, LinkAddr, Member, MemberState, SetSpec};

    const A: u64 = 0xA;
    const B: u64 = 0xB;

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

    fn granted(d: LeaseDecision) -> (bool, GrantId) {
        match d {
            LeaseDecision::Granted { first, id } => (first, id),
            other => panic!("expected a grant, got {other:?}"),
        }
    }

    fn ack<'a>(
        to: u64,
        term: u64,
        seq: u64,
        granted: &'a [(SetId, Epoch, GrantId)],
        refused: &'a [(SetId, Epoch)],
    ) -> AckView<'a> {
        AckView {
            to,
            term,
            seq,
            granted,
            refused,
        }
    }

    fn gid(n: u64) -> GrantId {
        GrantId { term: 1, n }
    }

    #[test]
    fn only_the_primary_of_the_current_epoch_gets_a_lease() {
        let st = state();
        let lease = Duration::from_millis(500);
        let t0 = Instant::now();
        let mut table = LeaseTable::new(lease, lease, t0, 1);
        // --- a new arbiter grants nothing for one lease period
        assert_eq!(
            table.request(&st, 1, A, "s", Epoch(1), t0, t0),
            LeaseDecision::Pending
        );
        let t1 = t0 + lease;
        let (first, id) = granted(table.request(&st, 1, A, "s", Epoch(1), t1, t1));
        assert!(first);
        assert_eq!(
            table.request(&st, 1, A, "s", Epoch(1), t1, t1),
            LeaseDecision::Granted { first: false, id }
        );
        assert_eq!(
            table.request(&st, 2, A, "s", Epoch(1), t1, t1),
            LeaseDecision::Refused { current: Epoch(1) }
        );
        assert_eq!(
            table.request(&st, 1, A, "s", Epoch(0), t1, t1),
            LeaseDecision::Refused { current: Epoch(1) }
        );
        // Within the grace period, only once every other member is cleared.
        let mut fresh = LeaseTable::new(lease, lease, t0, 2);
        fresh.mark_cleared("s", 2);
        assert_eq!(
            fresh.request(&st, 1, A, "s", Epoch(1), t0, t0),
            LeaseDecision::Pending
        );
        fresh.mark_cleared("s", 3);
        assert!(granted(fresh.request(&st, 1, A, "s", Epoch(1), t0, t0)).0);
    }

    #[test]
    fn a_new_primary_waits_until_the_old_grant_ran_out() {
        let mut st = state();
        let lease = Duration::from_millis(500);
        let t0 = Instant::now();
        let mut table = LeaseTable::new(lease, Duration::ZERO, t0, 1);
        granted(table.request(&st, 1, A, "s", Epoch(1), t0, t0));
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
            table.request(&st, 1, A, "s", Epoch(1), t1, t1),
            LeaseDecision::Refused { current: Epoch(2) }
        );
        assert_eq!(
            table.request(&st, 2, A, "s", Epoch(2), t1, t1),
            LeaseDecision::Pending
        );
        assert_eq!(table.holder("s", t1), Some((1, Epoch(1))));
        let t2 = t0 + lease + Duration::from_millis(1);
        assert!(granted(table.request(&st, 2, A, "s", Epoch(2), t2, t2)).0);
    }

    /// Item 7(a): a heartbeat goes out on every link; the copy on the slow link,
    /// carrying the release of a first grant, arrives after the same (node, set,
    /// epoch) got a second grant. Before grants had ids it dropped the second grant,
    /// and the arbiter then granted the set to a new Primary while the old one held it.
    #[test]
    fn a_late_copy_of_a_release_never_drops_a_newer_grant() {
        let mut st = state();
        let lease = Duration::from_millis(500);
        let t0 = Instant::now();
        let mut table = LeaseTable::new(lease, Duration::ZERO, t0, 1);
        let (_, g1) = granted(table.request(&st, 1, A, "s", Epoch(1), t0, t0));
        let release = Release {
            set: "s".into(),
            epoch: Epoch(1),
            grant: g1,
        };
        // --- the copy of the release on link a arrives: the grant is dropped
        table.release(1, &release);
        assert_eq!(table.holder("s", t0), None);
        // --- node 1 asks again (still Primary of epoch 1): a new grant
        let (first, g2) = granted(table.request(&st, 1, A, "s", Epoch(1), t0, t0));
        assert!(first);
        assert_ne!(g1, g2);
        // --- the copy on link b arrives late: it names g1, not g2
        table.release(1, &release);
        assert_eq!(table.holder("s", t0), Some((1, Epoch(1))));
        // --- so a new Primary still waits for g2 to run out
        st.apply(ClusterCommand::AssignRoles {
            set: "s".into(),
            expected_epoch: Epoch(1),
            primary: Some(MemberRef::Node(2)),
            secondary: Some(MemberRef::Node(3)),
            alternates: vec![MemberRef::Node(1)],
            reason: "test".into(),
            at: 1,
        });
        assert_eq!(
            table.request(&st, 2, A, "s", Epoch(2), t0, t0),
            LeaseDecision::Pending
        );
        // --- the release that names g2 does drop it
        table.release(
            1,
            &Release {
                set: "s".into(),
                epoch: Epoch(1),
                grant: g2,
            },
        );
        assert!(granted(table.request(&st, 2, A, "s", Epoch(2), t0, t0)).0);
    }

    /// Item 7(a), the holder's half: a late answer granting a lease the holder has
    /// given up (and released) does not give it back.
    #[test]
    fn a_holder_never_takes_back_a_grant_it_released() {
        let lease = Duration::from_millis(500);
        let t0 = Instant::now();
        let mut h = LeaseHolder::new(lease, A);
        h.sent(1, t0);
        h.sent(2, t0);
        let g = [("s".to_string(), Epoch(1), gid(1))];
        assert_eq!(h.on_ack(0, ack(A, 1, 1, &g, &[]), t0).acquired.len(), 1);
        assert_eq!(h.give_up("s"), Some(Epoch(1)));
        assert_eq!(
            h.take_releases(),
            vec![Release {
                set: "s".into(),
                epoch: Epoch(1),
                grant: gid(1)
            }]
        );
        // --- the answer to heartbeat 2 (sent before the release) arrives late
        assert!(h.on_ack(0, ack(A, 1, 2, &g, &[]), t0).acquired.is_empty());
        assert_eq!(h.acting("s", t0), None);
        // --- a new grant (a new id) is taken
        h.sent(3, t0);
        let g2 = [("s".to_string(), Epoch(1), gid(2))];
        assert_eq!(h.on_ack(0, ack(A, 1, 3, &g2, &[]), t0).acquired.len(), 1);
        // --- and if the release is lost, the arbiter renews the released grant for a
        // later heartbeat: the holder takes it again rather than asking forever
        assert_eq!(h.give_up("s"), Some(Epoch(1)));
        h.take_releases();
        h.sent(4, t0);
        assert_eq!(h.on_ack(0, ack(A, 1, 4, &g2, &[]), t0).acquired.len(), 1);
    }

    /// Item 7(b): a restarted process numbers its heartbeats from 1 again; an answer
    /// to its predecessor's heartbeat with the same number must not give it a lease.
    #[test]
    fn an_answer_to_another_incarnation_grants_nothing() {
        let lease = Duration::from_millis(500);
        let t0 = Instant::now();
        let mut h = LeaseHolder::new(lease, B);
        h.sent(1, t0);
        let g = [("s".to_string(), Epoch(1), gid(1))];
        assert!(h.on_ack(0, ack(A, 1, 1, &g, &[]), t0).acquired.is_empty());
        assert_eq!(h.acting("s", t0), None);
        assert_eq!(h.on_ack(0, ack(B, 1, 1, &g, &[]), t0).acquired.len(), 1);
    }

    /// Item 7(b), the arbiter's half: a new process of the Primary's node is no
    /// renewal of its predecessor's grant. It waits for that grant to run out, or for
    /// proof that the predecessor is gone (it answered the arbiter's ping itself).
    #[test]
    fn a_new_incarnation_is_not_credited_with_its_predecessors_grant() {
        let st = state();
        let lease = Duration::from_millis(500);
        let t0 = Instant::now();
        let mut table = LeaseTable::new(lease, Duration::ZERO, t0, 1);
        let (_, g1) = granted(table.request(&st, 1, A, "s", Epoch(1), t0, t0));
        assert_eq!(
            table.request(&st, 1, B, "s", Epoch(1), t0, t0),
            LeaseDecision::Pending
        );
        assert!(table.held_by_other_incarnation(1, B, t0));
        // --- once the old grant ran out, B gets a grant of its own
        let t1 = t0 + lease;
        let (first, g2) = granted(table.request(&st, 1, B, "s", Epoch(1), t1, t1));
        assert!(first);
        assert_ne!(g1, g2);
        // --- or at once, when B proved A gone
        let mut table = LeaseTable::new(lease, Duration::ZERO, t0, 1);
        granted(table.request(&st, 1, A, "s", Epoch(1), t0, t0));
        let asked = t0 + Duration::from_millis(1);
        assert_eq!(table.void_superseded(1, A, asked), 0);
        // An answer to a question asked before the grant was made proves nothing.
        assert_eq!(
            table.void_superseded(1, B, t0 - Duration::from_millis(1)),
            0
        );
        assert_eq!(table.void_superseded(1, B, asked), 1);
        assert!(granted(table.request(&st, 1, B, "s", Epoch(1), t0, t0)).0);
    }

    #[test]
    fn the_holder_counts_from_sending_and_gives_up_on_refusal() {
        let lease = Duration::from_millis(500);
        let mut h = LeaseHolder::new(lease, A);
        let t0 = Instant::now();
        let g = |n| [("s".to_string(), Epoch(1), gid(n))];
        h.sent(7, t0);
        let got = h.on_ack(0, ack(A, 1, 7, &g(1), &[]), t0 + Duration::from_millis(40));
        assert_eq!(got.acquired, vec![("s".to_string(), Epoch(1))]);
        assert_eq!(
            h.acting("s", t0 + Duration::from_millis(499)),
            Some(Epoch(1))
        );
        assert_eq!(h.acting("s", t0 + lease), None);
        let lost = h.expire(t0 + lease);
        assert_eq!(lost, vec![("s".to_string(), Epoch(1))]);
        assert_eq!(h.take_releases().len(), 1);
        h.sent(8, t0);
        h.on_ack(0, ack(A, 1, 8, &g(2), &[]), t0);
        let ch = h.on_ack(0, ack(A, 1, 8, &[], &[("s".into(), Epoch(2))]), t0);
        assert_eq!(ch.deposed, vec![("s".to_string(), Epoch(1))]);
        assert_eq!(h.acting("s", t0), None);
        // A revocation by a newer arbiter drops the lease and shuts out older grants.
        h.sent(9, t0);
        let g3 = [("s".to_string(), Epoch(2), gid(3))];
        h.on_ack(0, ack(A, 1, 9, &g3, &[]), t0);
        assert_eq!(h.revoke(2, "s", None), Some(Epoch(2)));
        h.sent(10, t0);
        let g4 = [("s".to_string(), Epoch(2), gid(4))];
        assert!(h.on_ack(0, ack(A, 1, 10, &g4, &[]), t0).acquired.is_empty());
        let g5 = [("s".to_string(), Epoch(2), GrantId { term: 2, n: 1 })];
        assert!(!h.on_ack(0, ack(A, 2, 10, &g5, &[]), t0).acquired.is_empty());
        // An ack for a heartbeat never sent grants nothing.
        h.give_up("s");
        let g6 = [("s".to_string(), Epoch(2), GrantId { term: 2, n: 2 })];
        assert!(h.on_ack(0, ack(A, 2, 99, &g6, &[]), t0).acquired.is_empty());
    }
}
