//! The configuration database's state machine: every member holds a replica of it.

use crate::{
    ClusterCommand, ClusterError, ClusterResponse, Composition, Epoch, Event, EventKind,
    FailoverSet, Member, MemberRef, MemberState, NodeId, PlacementMap, SetId, SetKind, StoreId,
    UnixMillis,
};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};

/// Cluster-wide policy settings, replicated like everything else.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(default)]
pub struct ClusterSettings {
    /// Failures within `failure_window_ms` that quarantine a member.
    pub failure_limit: u32,
    pub failure_window_ms: u64,
    /// Events kept in the replicated log (oldest dropped first).
    pub event_log_capacity: usize,
    /// Members of each storage set a layout creates (the replication factor).
    pub storage_replicas: usize,
}

impl Default for ClusterSettings {
    fn default() -> Self {
        ClusterSettings {
            failure_limit: 3,
            failure_window_ms: 10 * 60 * 1000,
            event_log_capacity: 10_000,
            storage_replicas: 2,
        }
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct ClusterState {
    pub members: BTreeMap<NodeId, Member>,
    pub sets: BTreeMap<SetId, FailoverSet>,
    pub events: VecDeque<Event>,
    pub next_event_seq: u64,
    pub settings: ClusterSettings,
    /// Where storage objects live (see [`PlacementMap`]).
    #[serde(default)]
    pub placement: PlacementMap,
    /// The last epoch of each deleted set: members may hold it in their fences, so a
    /// set re-created under the same id starts above it (never reused below an epoch
    /// its members have seen).
    #[serde(default)]
    pub retired_epochs: BTreeMap<SetId, Epoch>,
    /// Access keys and the rotated admin token (see [`crate::keys`]).
    #[serde(default)]
    pub credentials: crate::keys::Credentials,
    /// The last [`REQUEST_MEMORY`] admin requests by their client-made id, with their
    /// outcome once known: a retried request is answered from here, never applied
    /// twice (like the directory's idempotency tokens).
    #[serde(default)]
    pub requests: VecDeque<RequestRecord>,
}

/// Admin request ids remembered, at most (the oldest is forgotten first).
pub const REQUEST_MEMORY: usize = 1024;

/// One admin request the leader received (see [`ClusterCommand::RecordRequest`]).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct RequestRecord {
    pub id: String,
    pub at: UnixMillis,
    /// `None` while it runs (or if its executor died: the outcome is unknown);
    /// `Ok(answer)` or `Err(refusal)` once done.
    pub outcome: Option<Result<String, String>>,
}

impl ClusterState {
    /// Applies one command. Deterministic: the same commands give the same state on
    /// every replica.
    pub fn apply(&mut self, cmd: ClusterCommand) -> ClusterResponse {
        self.apply_inner(cmd).into()
    }

    /// A copy without the event log: what decision logic needs, cheap to clone.
    pub fn without_events(&self) -> ClusterState {
        ClusterState {
            members: self.members.clone(),
            sets: self.sets.clone(),
            events: VecDeque::new(),
            next_event_seq: self.next_event_seq,
            settings: self.settings.clone(),
            placement: self.placement.clone(),
            retired_epochs: self.retired_epochs.clone(),
            credentials: self.credentials.clone(),
            requests: self.requests.clone(),
        }
    }

    /// The record of admin request `id`, if it is remembered.
    pub fn request(&self, id: &str) -> Option<&RequestRecord> {
        self.requests.iter().rev().find(|r| r.id == id)
    }

    /// See [`ClusterCommand::RecordRequest`].
    fn record_request(
        &mut self,
        id: String,
        outcome: Option<Result<String, String>>,
        at: UnixMillis,
    ) -> Result<Option<Epoch>, ClusterError> {
        if id.is_empty() || id.len() > 64 {
            return Err(ClusterError::RequestSeen { id });
        }
        let known = self.requests.iter().position(|r| r.id == id);
        match (known, outcome) {
            (Some(_), None) => Err(ClusterError::RequestSeen { id }),
            (Some(i), Some(o)) => {
                if self.requests[i].outcome.is_none() {
                    self.requests[i].outcome = Some(o);
                }
                Ok(None)
            }
            (None, outcome) => {
                self.requests.push_back(RequestRecord { id, at, outcome });
                while self.requests.len() > REQUEST_MEMORY {
                    self.requests.pop_front();
                }
                Ok(None)
            }
        }
    }

    /// Failures of `node` inside the window ending at `now`.
    pub fn recent_failures(&self, node: NodeId, now: UnixMillis) -> usize {
        let window = self.settings.failure_window_ms as i64;
        self.members
            .get(&node)
            .map(|m| m.failures.iter().filter(|t| now - **t < window).count())
            .unwrap_or(0)
    }

    /// Can this member hold a role now? A node must be up and not drained; a child
    /// set must have an eligible node as Primary.
    pub fn ref_eligible(&self, r: &MemberRef) -> bool {
        match r {
            MemberRef::Node(n) => self.members.get(n).is_some_and(Member::eligible),
            MemberRef::Set(s) => self.sets.get(s).is_some_and(|set| {
                set.composition != Composition::Hierarchical
                    && set.primary.as_ref().is_some_and(|p| self.ref_eligible(p))
            }),
        }
    }

    /// May `r` become Primary of `set` as far as the data is concerned? It must be on
    /// the set's in-sync list (storage sets) and still have the store the list
    /// recorded for it: a node whose disk was wiped or replaced since holds nothing.
    pub fn in_sync_allows(&self, set: &FailoverSet, r: &MemberRef) -> bool {
        if !set.in_sync_allows(r) {
            return false;
        }
        match r {
            MemberRef::Node(n) if set.kind == SetKind::Storage => {
                let current = self.members.get(n).and_then(|m| m.store);
                set.in_sync_store(*n) == current
            }
            _ => true,
        }
    }

    /// Records the store `node` reports (`None`: not reported, nothing changes). Every
    /// storage set whose in-sync list recorded another store for it takes it off the
    /// list, with a `store_replaced` event saying why: the list names disks, and this
    /// disk has not caught up.
    fn note_store(&mut self, node: NodeId, store: Option<StoreId>, at: UnixMillis) {
        let Some(store) = store else {
            return;
        };
        let Some(m) = self.members.get_mut(&node) else {
            return;
        };
        let previous = m.store.replace(store);
        let mut left = vec![];
        for set in self.sets.values_mut() {
            if set.kind != SetKind::Storage || !set.in_sync.contains(&node) {
                continue;
            }
            if set.in_sync_store(node) == Some(store) {
                continue;
            }
            // A node that never reported a store, on a list that recorded none for it
            // (both written before stores had identities), names its store for the
            // first time: the list adopts it.
            if previous.is_none() && set.in_sync_store(node).is_none() {
                set.in_sync_stores.insert(node, store);
                continue;
            }
            set.in_sync.retain(|n| *n != node);
            set.in_sync_stores.remove(&node);
            set.changed_at = at;
            left.push((set.id.clone(), set.epoch, set.in_sync.clone()));
        }
        let was = previous.map_or_else(|| "none recorded".to_string(), |p| p.to_string());
        for (set, epoch, list) in left {
            self.push_event(
                Event::new(at, EventKind::StoreReplaced)
                    .set(set.clone())
                    .node(node)
                    .epoch(epoch)
                    .detail(format!(
                        "node {node} came back with a new store ({store}, was {was}): out of \
                         the in-sync list of {set} until it has caught up (in-sync {list:?})"
                    )),
            );
        }
    }

    /// `set` if its epoch is still `expected_epoch` (the fence of every role and
    /// in-sync change).
    fn fenced_set(&self, set: &SetId, expected_epoch: Epoch) -> Result<&FailoverSet, ClusterError> {
        let s = self
            .sets
            .get(set)
            .ok_or(ClusterError::UnknownSet { set: set.clone() })?;
        if s.epoch != expected_epoch {
            return Err(ClusterError::StaleEpoch {
                set: set.clone(),
                presented: expected_epoch,
                current: s.epoch,
            });
        }
        Ok(s)
    }

    /// The sets in which `node` holds any role, directly.
    pub fn sets_of(&self, node: NodeId) -> impl Iterator<Item = &FailoverSet> {
        let r = MemberRef::Node(node);
        self.sets.values().filter(move |s| s.has_member(&r))
    }

    pub fn push_event(&mut self, mut event: Event) {
        event.seq = self.next_event_seq;
        self.next_event_seq += 1;
        self.events.push_back(event);
        while self.events.len() > self.settings.event_log_capacity.max(1) {
            self.events.pop_front();
        }
    }

    fn member_mut(&mut self, node: NodeId) -> Result<&mut Member, ClusterError> {
        self.members
            .get_mut(&node)
            .ok_or(ClusterError::UnknownNode { node })
    }

    fn apply_inner(&mut self, cmd: ClusterCommand) -> Result<Option<Epoch>, ClusterError> {
        match cmd {
            ClusterCommand::AddMember { member, at } => {
                let id = member.id;
                let store = member.store;
                let rejoin = self.members.contains_key(&id);
                let detail = format!(
                    "site {} links {} version {}",
                    member.site,
                    member
                        .links
                        .iter()
                        .map(|l| format!("{}={}", l.name, l.ip))
                        .collect::<Vec<_>>()
                        .join(","),
                    member.version
                );
                match self.members.get_mut(&id) {
                    Some(existing) => {
                        // A known member re-announcing itself: refresh addresses, keep
                        // its state and history.
                        existing.links = member.links;
                        existing.rpc_port = member.rpc_port;
                        existing.admin_port = member.admin_port;
                        existing.heartbeat_port = member.heartbeat_port;
                        existing.version = member.version;
                        existing.protocol = member.protocol;
                        existing.features = member.features;
                        existing.roles = member.roles;
                        existing.pid = member.pid;
                    }
                    None => {
                        self.members.insert(id, member);
                    }
                }
                self.note_store(id, store, at);
                if !rejoin {
                    self.push_event(
                        Event::new(at, EventKind::NodeJoined)
                            .node(id)
                            .detail(detail),
                    );
                }
                Ok(None)
            }
            ClusterCommand::RemoveMember { node, at } => {
                if !self.members.contains_key(&node) {
                    return Err(ClusterError::UnknownNode { node });
                }
                if let Some(set) = self.sets_of(node).next() {
                    return Err(ClusterError::StillInSet {
                        node,
                        set: set.id.clone(),
                    });
                }
                self.members.remove(&node);
                self.push_event(Event::new(at, EventKind::NodeRemoved).node(node));
                Ok(None)
            }
            ClusterCommand::SetMemberState {
                node,
                state,
                fault,
                reason,
                at,
            } => {
                let window = self.settings.failure_window_ms as i64;
                let m = self.member_mut(node)?;
                if m.state == state {
                    return Ok(None);
                }
                m.state = state;
                let kind = match state {
                    MemberState::Failed => {
                        m.last_failed_pid = Some(m.pid);
                        m.failures.retain(|t| at - *t < window);
                        m.failures.push(at);
                        m.up_since = None;
                        EventKind::NodeFailed
                    }
                    MemberState::Quarantined => {
                        m.up_since = None;
                        EventKind::NodeQuarantined
                    }
                    MemberState::Suspect => EventKind::NodeSuspect,
                    MemberState::Up => {
                        m.up_since = Some(at);
                        EventKind::NodeUp
                    }
                    MemberState::Joining => EventKind::NodeJoined,
                };
                let mut detail = reason;
                if let Some(f) = fault {
                    detail = format!(
                        "fault={} {detail}",
                        serde_json::to_value(f)
                            .unwrap_or_default()
                            .as_str()
                            .unwrap_or("")
                    );
                }
                self.push_event(
                    Event::new(at, kind)
                        .node(node)
                        .detail(detail.trim().to_string()),
                );
                Ok(None)
            }
            ClusterCommand::MemberBack {
                node,
                boot,
                pid,
                store,
                at,
            } => {
                self.member_mut(node)?;
                self.note_store(node, store, at);
                let m = self.member_mut(node)?;
                // A repeated report of a member already up (same process) changes
                // nothing an operator needs to read again: no second `node_back`.
                let repeated = m.state == MemberState::Up && pid.is_none_or(|p| p == m.pid);
                m.last_boot = Some(boot);
                match pid {
                    Some(p) if p != m.pid => m.pid = p,
                    _ => m.last_failed_pid = None,
                }
                let quarantined = m.state == MemberState::Quarantined;
                if !quarantined {
                    m.state = MemberState::Up;
                    if !repeated {
                        m.up_since = Some(at);
                    }
                }
                let detail = format!(
                    "boot={}{}",
                    serde_json::to_value(boot)
                        .unwrap_or_default()
                        .as_str()
                        .unwrap_or(""),
                    if quarantined {
                        ", stays quarantined until cleared"
                    } else {
                        ""
                    }
                );
                if !repeated {
                    self.push_event(
                        Event::new(at, EventKind::NodeBack)
                            .node(node)
                            .detail(detail),
                    );
                }
                Ok(None)
            }
            ClusterCommand::ClearQuarantine { node, at } => {
                let m = self.member_mut(node)?;
                m.failures.clear();
                if m.state == MemberState::Quarantined {
                    m.state = MemberState::Failed;
                }
                self.push_event(
                    Event::new(at, EventKind::NodeCleared)
                        .node(node)
                        .detail("failure history cleared; re-integrates when heard from"),
                );
                Ok(None)
            }
            ClusterCommand::Drain { node, drained, at } => {
                let m = self.member_mut(node)?;
                m.drained = drained;
                let kind = if drained {
                    EventKind::NodeDrained
                } else {
                    EventKind::NodeUndrained
                };
                self.push_event(Event::new(at, kind).node(node));
                Ok(None)
            }
            ClusterCommand::LinkState {
                node,
                link,
                up,
                detail,
                at,
            } => {
                let m = self.member_mut(node)?;
                let changed = if up {
                    m.links_down.remove(&link)
                } else {
                    m.links_down.insert(link.clone())
                };
                if changed {
                    let kind = if up {
                        EventKind::LinkUp
                    } else {
                        EventKind::LinkDown
                    };
                    self.push_event(
                        Event::new(at, kind)
                            .node(node)
                            .detail(format!("link {link}: {detail}")),
                    );
                }
                Ok(None)
            }
            ClusterCommand::CreateSet { spec, at } => self.create_set(spec, at),
            ClusterCommand::RecordRequest { id, outcome, at } => {
                self.record_request(id, outcome, at)
            }
            ClusterCommand::SetMembers {
                set,
                expected_members,
                members,
                at,
            } => self.set_members(set, expected_members, members, at),
            ClusterCommand::DeleteSet { set, at } => {
                if self
                    .sets
                    .values()
                    .any(|s| s.members.contains(&MemberRef::Set(set.clone())))
                {
                    return Err(ClusterError::InvalidSet {
                        set,
                        reason: "it is a member of a hierarchical set".into(),
                    });
                }
                let removed = self
                    .sets
                    .remove(&set)
                    .ok_or(ClusterError::UnknownSet { set: set.clone() })?;
                let retired = self.retired_epochs.entry(set.clone()).or_default();
                *retired = (*retired).max(removed.epoch);
                self.push_event(
                    Event::new(at, EventKind::SetDeleted)
                        .set(set)
                        .epoch(removed.epoch)
                        .detail(format!(
                            "a set re-created under this id starts above epoch {}",
                            removed.epoch
                        )),
                );
                Ok(None)
            }
            ClusterCommand::AssignRoles {
                set,
                expected_epoch,
                primary,
                secondary,
                alternates,
                reason,
                at,
            } => self.assign_roles(
                set,
                expected_epoch,
                primary,
                secondary,
                alternates,
                reason,
                at,
            ),
            ClusterCommand::SetInSync {
                set,
                expected_epoch,
                expected_in_sync,
                in_sync,
                stores,
                at,
            } => self.set_in_sync(set, expected_epoch, expected_in_sync, in_sync, stores, at),
            ClusterCommand::SetPlacement {
                expected_version,
                groups,
                at,
            } => {
                if self.placement.version != expected_version {
                    return Err(ClusterError::StalePlacement {
                        presented: expected_version,
                        current: self.placement.version,
                    });
                }
                if let Some(bad) = groups.iter().find(|s| !self.sets.contains_key(*s)) {
                    return Err(ClusterError::UnknownSet { set: bad.clone() });
                }
                let previous = std::mem::replace(&mut self.placement.groups, groups);
                self.placement.previous = previous;
                self.placement.version += 1;
                let version = self.placement.version;
                self.push_event(Event::new(at, EventKind::PlacementChanged).detail(format!(
                    "placement map version {version}: {} storage sets",
                    self.placement.sets().len()
                )));
                Ok(None)
            }
            ClusterCommand::UpdateSettings { settings } => {
                self.settings = settings;
                Ok(None)
            }
            ClusterCommand::RecordEvent { event } => {
                self.push_event(event);
                Ok(None)
            }
            ClusterCommand::Credentials(cmd) => self.credentials.apply(cmd).map(|()| None),
        }
    }

    fn set_in_sync(
        &mut self,
        set: SetId,
        expected_epoch: Epoch,
        expected_in_sync: Vec<NodeId>,
        in_sync: Vec<NodeId>,
        stores: BTreeMap<NodeId, StoreId>,
        at: UnixMillis,
    ) -> Result<Option<Epoch>, ClusterError> {
        let s = self.fenced_set(&set, expected_epoch)?;
        let as_set = |v: &[NodeId]| v.iter().copied().collect::<std::collections::BTreeSet<_>>();
        if as_set(&s.in_sync) != as_set(&expected_in_sync) {
            return Err(ClusterError::InSyncChanged {
                set,
                expected: expected_in_sync,
                current: s.in_sync.clone(),
            });
        }
        if let Some(p) = s.primary_node().filter(|p| !in_sync.contains(p)) {
            return Err(ClusterError::InvalidSet {
                set,
                reason: format!("the in-sync list must keep the Primary ({p})"),
            });
        }
        if let Some(n) = in_sync
            .iter()
            .find(|n| !s.has_member(&MemberRef::Node(**n)))
        {
            return Err(ClusterError::UnknownMember {
                set,
                member: n.to_string(),
            });
        }
        let removed: Vec<NodeId> = s
            .in_sync
            .iter()
            .copied()
            .filter(|n| !in_sync.contains(n))
            .collect();
        let added: Vec<NodeId> = in_sync
            .iter()
            .copied()
            .filter(|n| !s.in_sync.contains(n))
            .collect();
        // A node joins the list with the store it caught up on, which must still be
        // the one it has.
        let mut added_stores = BTreeMap::new();
        for n in &added {
            let current = self.members.get(n).and_then(|m| m.store);
            match (stores.get(n).copied(), current) {
                (Some(presented), Some(current)) if presented != current => {
                    return Err(ClusterError::StoreChanged {
                        node: *n,
                        presented,
                        current,
                    })
                }
                (Some(store), _) | (None, Some(store)) => {
                    added_stores.insert(*n, store);
                }
                (None, None) => {}
            }
        }
        let s = self.sets.get_mut(&set).expect("checked above");
        s.in_sync_stores.retain(|n, _| in_sync.contains(n));
        s.in_sync_stores.extend(added_stores);
        s.in_sync = in_sync;
        s.changed_at = at;
        let epoch = s.epoch;
        if !removed.is_empty() || !added.is_empty() {
            let list = s.in_sync.clone();
            self.push_event(
                Event::new(at, EventKind::InSyncChanged)
                    .set(set)
                    .epoch(epoch)
                    .detail(format!(
                        "in-sync {list:?} (removed {removed:?}, added {added:?})"
                    )),
            );
        }
        Ok(Some(epoch))
    }

    /// See [`ClusterCommand::SetMembers`].
    fn set_members(
        &mut self,
        set: SetId,
        expected_members: Vec<MemberRef>,
        members: Vec<MemberRef>,
        at: UnixMillis,
    ) -> Result<Option<Epoch>, ClusterError> {
        let invalid = |reason: String| ClusterError::InvalidSet {
            set: set.clone(),
            reason,
        };
        let s = self
            .sets
            .get(&set)
            .ok_or(ClusterError::UnknownSet { set: set.clone() })?;
        if s.kind != crate::SetKind::Storage {
            return Err(invalid(
                "only a storage set's members change this way".into(),
            ));
        }
        if s.members != expected_members {
            return Err(invalid(format!(
                "its members changed (now {:?}): reload and retry",
                s.member_nodes()
            )));
        }
        let grows = members.len() >= s.members.len() && members.starts_with(&s.members);
        let shrinks = members.len() < s.members.len() && s.members.starts_with(&members);
        if !grows && !shrinks {
            return Err(invalid(
                "members are only appended, or removed from the end".into(),
            ));
        }
        let mut seen = std::collections::BTreeSet::new();
        for m in &members {
            let MemberRef::Node(n) = m else {
                return Err(invalid("members of a storage set are nodes".into()));
            };
            if !seen.insert(*n) {
                return Err(invalid(format!("member {n} is listed twice")));
            }
            if !self.members.contains_key(n) {
                return Err(ClusterError::UnknownMember {
                    set,
                    member: n.to_string(),
                });
            }
        }
        if let Some(p) = s.primary.as_ref().filter(|p| !members.contains(p)) {
            return Err(invalid(format!("the Primary ({p}) stays a member")));
        }
        let kept: Vec<NodeId> = s
            .in_sync
            .iter()
            .copied()
            .filter(|n| members.contains(&MemberRef::Node(*n)))
            .collect();
        if kept.is_empty() {
            return Err(invalid("at least one in-sync member stays".into()));
        }
        let before = s.member_nodes();
        let s = self.sets.get_mut(&set).expect("checked above");
        let added: Vec<MemberRef> = members
            .iter()
            .filter(|m| !s.members.contains(m))
            .cloned()
            .collect();
        s.composition = if members.len() == 1 {
            Composition::Single
        } else {
            Composition::NWay
        };
        s.in_sync = kept;
        let in_sync = s.in_sync.clone();
        s.in_sync_stores.retain(|n, _| in_sync.contains(n));
        if s.secondary.as_ref().is_some_and(|m| !members.contains(m)) {
            s.secondary = None;
        }
        s.alternates.retain(|m| members.contains(m));
        s.alternates.extend(added);
        s.members = members;
        s.changed_at = at;
        let (epoch, after) = (s.epoch, s.member_nodes());
        self.push_event(
            Event::new(at, EventKind::RolesChanged)
                .set(set)
                .epoch(epoch)
                .detail(format!(
                    "members {before:?} -> {after:?} (a new member catches up before it joins the in-sync list)"
                )),
        );
        Ok(Some(epoch))
    }

    fn create_set(
        &mut self,
        spec: crate::SetSpec,
        at: UnixMillis,
    ) -> Result<Option<Epoch>, ClusterError> {
        let id = spec.id.clone();
        let invalid = |reason: &str| ClusterError::InvalidSet {
            set: id.clone(),
            reason: reason.to_string(),
        };
        if self.sets.contains_key(&id) {
            return Err(ClusterError::SetExists { set: id });
        }
        if id.is_empty()
            || id.len() > 64
            || !id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(invalid("a set id is 1 to 64 letters, digits, '-' or '_'"));
        }
        if spec.members.is_empty() {
            return Err(invalid("a set needs at least one member"));
        }
        if spec.health_threshold > 100 {
            return Err(invalid("health_threshold is 0..=100"));
        }
        let mut seen = std::collections::BTreeSet::new();
        for m in &spec.members {
            if !seen.insert(m.clone()) {
                return Err(invalid(&format!("member {m} is listed twice")));
            }
            let known = match (spec.composition, m) {
                (Composition::Hierarchical, MemberRef::Set(s)) => self.sets.contains_key(s),
                (Composition::Hierarchical, MemberRef::Node(_)) => {
                    return Err(invalid("members of a hierarchical set are sets"))
                }
                (_, MemberRef::Node(n)) => self.members.contains_key(n),
                (_, MemberRef::Set(_)) => {
                    return Err(invalid("members of a single or N-way set are nodes"))
                }
            };
            if !known {
                return Err(ClusterError::UnknownMember {
                    set: id,
                    member: m.to_string(),
                });
            }
        }
        match spec.composition {
            Composition::Single if spec.members.len() != 1 => {
                return Err(invalid("a single set has exactly one member"))
            }
            Composition::NWay | Composition::Hierarchical if spec.members.len() < 2 => {
                return Err(invalid(
                    "an N-way or hierarchical set needs at least two members",
                ))
            }
            _ => {}
        }
        // Initial arbitration: eligible members in the order given.
        let (eligible, rest): (Vec<_>, Vec<_>) = spec
            .members
            .iter()
            .cloned()
            .partition(|m| self.ref_eligible(m));
        let mut order = eligible.into_iter();
        let primary = order.next();
        let secondary = order.next();
        let mut alternates: Vec<MemberRef> = order.collect();
        alternates.extend(rest);
        // Above the last epoch of a deleted set of the same id: its members' fences
        // may hold that epoch. Without a Primary the set stays at the retired epoch
        // (nobody acts in it); the first assignment moves above it.
        let retired = self.retired_epochs.get(&id).copied().unwrap_or_default();
        let epoch = if primary.is_some() {
            retired.next()
        } else {
            retired
        };
        // A new storage set holds nothing yet: every member is in sync.
        let in_sync = if spec.kind == crate::SetKind::Storage {
            spec.members
                .iter()
                .filter_map(|m| match m {
                    MemberRef::Node(n) => Some(*n),
                    MemberRef::Set(_) => None,
                })
                .collect()
        } else {
            vec![]
        };
        // Each member is in sync with the store it has now.
        let in_sync_stores = in_sync
            .iter()
            .filter_map(|n| self.members.get(n).and_then(|m| m.store).map(|st| (*n, st)))
            .collect();
        let set = FailoverSet {
            id: id.clone(),
            kind: spec.kind,
            composition: spec.composition,
            members: spec.members,
            primary: primary.clone(),
            secondary,
            alternates,
            epoch,
            health_threshold: spec.health_threshold,
            auto_giveback_ms: spec.auto_giveback_ms,
            in_sync,
            in_sync_stores,
            failovers: 0,
            changed_at: at,
        };
        self.sets.insert(id.clone(), set);
        let detail = match &primary {
            Some(p) => format!("primary {p}"),
            None => "no eligible member yet".to_string(),
        };
        self.push_event(
            Event::new(at, EventKind::SetCreated)
                .set(id)
                .epoch(epoch)
                .detail(detail),
        );
        Ok(Some(epoch))
    }

    #[allow(clippy::too_many_arguments)]
    fn assign_roles(
        &mut self,
        set: SetId,
        expected_epoch: Epoch,
        primary: Option<MemberRef>,
        secondary: Option<MemberRef>,
        alternates: Vec<MemberRef>,
        reason: String,
        at: UnixMillis,
    ) -> Result<Option<Epoch>, ClusterError> {
        let s = self.fenced_set(&set, expected_epoch)?;
        let holders: Vec<&MemberRef> = primary
            .iter()
            .chain(secondary.iter())
            .chain(alternates.iter())
            .collect();
        let mut seen = std::collections::BTreeSet::new();
        for h in &holders {
            if !s.has_member(h) {
                return Err(ClusterError::UnknownMember {
                    set,
                    member: h.to_string(),
                });
            }
            if !seen.insert((*h).clone()) {
                return Err(ClusterError::InvalidSet {
                    set,
                    reason: format!("member {h} holds two roles"),
                });
            }
        }
        for r in primary.iter().chain(secondary.iter()) {
            if !self.ref_eligible(r) {
                let node = match r {
                    MemberRef::Node(n) => *n,
                    MemberRef::Set(_) => 0,
                };
                return Err(ClusterError::NotEligible {
                    node,
                    reason: format!("{r} is not up, or is drained or quarantined"),
                });
            }
        }
        if s.primary != primary {
            if let Some(p) = primary.as_ref().filter(|p| !self.in_sync_allows(s, p)) {
                return Err(ClusterError::NotEligible {
                    node: match p {
                        MemberRef::Node(n) => *n,
                        MemberRef::Set(_) => 0,
                    },
                    reason: format!(
                        "{p} is not on the in-sync list of storage set {set:?} ({:?}) with \
                         the store it has now: it may lack acknowledged writes",
                        s.in_sync
                    ),
                });
            }
        }
        let s = self.sets.get_mut(&set).expect("checked above");
        let new_primary = s.primary != primary;
        if new_primary {
            s.epoch = s.epoch.next();
            s.failovers += 1;
        }
        let old = s.primary.clone();
        s.primary = primary.clone();
        s.secondary = secondary;
        s.alternates = alternates;
        s.changed_at = at;
        let epoch = s.epoch;
        let kind = if new_primary {
            EventKind::FailoverDecided
        } else {
            EventKind::RolesChanged
        };
        let who = |r: &Option<MemberRef>| {
            r.as_ref()
                .map(|p| p.to_string())
                .unwrap_or_else(|| "none".into())
        };
        let detail = if old == primary {
            format!("primary stays {}: {reason}", who(&primary))
        } else {
            format!("primary {} -> {}: {reason}", who(&old), who(&primary))
        };
        let mut ev = Event::new(at, kind).set(set).epoch(epoch).detail(detail);
        if let Some(MemberRef::Node(n)) = primary {
            ev = ev.node(n);
        }
        self.push_event(ev);
        Ok(Some(epoch))
    }
}

#[cfg(test)]
mod request_memory_tests {
    use super::*;

    fn record(s: &mut ClusterState, id: &str, outcome: Option<Result<String, String>>) -> bool {
        s.apply(ClusterCommand::RecordRequest {
            id: id.into(),
            outcome,
            at: 1,
        })
        .into_result()
        .is_ok()
    }

    #[test]
    fn a_request_id_is_received_once_and_keeps_its_outcome() {
        let mut s = ClusterState::default();
        assert!(record(&mut s, "r1", None));
        assert!(
            !record(&mut s, "r1", None),
            "a retry is refused: RequestSeen"
        );
        assert_eq!(s.request("r1").unwrap().outcome, None);
        assert!(record(&mut s, "r1", Some(Ok("node 3 drained".into()))));
        assert_eq!(
            s.request("r1").unwrap().outcome,
            Some(Ok("node 3 drained".into()))
        );
        // The first outcome stays.
        assert!(record(&mut s, "r1", Some(Err("late".into()))));
        assert_eq!(
            s.request("r1").unwrap().outcome,
            Some(Ok("node 3 drained".into()))
        );
        assert!(!record(&mut s, "", None), "an empty id is refused");
        assert_eq!(s.without_events().requests, s.requests);
    }

    #[test]
    fn the_memory_is_bounded() {
        let mut s = ClusterState::default();
        for i in 0..REQUEST_MEMORY + 10 {
            assert!(record(&mut s, &format!("r{i}"), Some(Ok(String::new()))));
        }
        assert_eq!(s.requests.len(), REQUEST_MEMORY);
        assert!(s.request("r0").is_none(), "the oldest is forgotten");
        assert!(s.request(&format!("r{}", REQUEST_MEMORY + 9)).is_some());
    }
}
