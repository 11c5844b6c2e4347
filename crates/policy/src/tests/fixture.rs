//! A small cluster to decide against: every decision is applied to the test's own
//! state (asserting it is never refused) and the invariants are checked after each
//! batch.

use crate::{decide, HealthReport, Input, PolicyError, Probe, Timings};
use keel_core::{
    ClusterCommand, ClusterResponse, ClusterState, Composition, Epoch, EventKind, LinkAddr, Member,
    MemberRef, MemberState, NodeId, NodeRole, SetKind, SetSpec, UnixMillis,
};
use std::collections::BTreeSet;

/// A node as a set member.
pub fn n(id: NodeId) -> MemberRef {
    MemberRef::Node(id)
}

/// A child set as a member of a hierarchical set.
pub fn s(id: &str) -> MemberRef {
    MemberRef::Set(id.to_string())
}

/// An up member with two links, `a` and `b`.
pub fn member(id: NodeId) -> Member {
    let link = |name: &str, subnet: u8| LinkAddr {
        name: name.to_string(),
        ip: format!("127.0.{subnet}.{id}")
            .parse()
            .expect("test address"),
    };
    Member {
        id,
        site: "a".into(),
        links: vec![link("a", 1), link("b", 2)],
        rpc_port: 7000,
        admin_port: 7001,
        heartbeat_port: 7002,
        roles: BTreeSet::from([NodeRole::Storage, NodeRole::Gateway]),
        state: MemberState::Up,
        drained: false,
        failures: vec![],
        links_down: BTreeSet::new(),
        version: "0.1.0".into(),
        protocol: 1,
        pid: 0,
        last_failed_pid: None,
        features: vec![],
        last_boot: None,
        up_since: Some(0),
        store: None,
    }
}

pub fn crash(node: NodeId) -> Input {
    Input::Silent {
        node,
        silent_ms: 312,
        probe: Probe::Refused,
    }
}

pub fn heard(node: NodeId) -> Input {
    Input::Heard {
        node,
        health: HealthReport::healthy(),
    }
}

/// The roles of a set, for assertions: (primary, secondary, alternates).
pub type Holders = (Option<MemberRef>, Option<MemberRef>, Vec<MemberRef>);

pub struct Cluster {
    pub state: ClusterState,
    pub now: UnixMillis,
    pub timings: Timings,
}

impl Cluster {
    /// Up members `nodes`, no sets, at an arbitrary `now`.
    pub fn new(nodes: &[NodeId]) -> Cluster {
        let mut c = Cluster {
            state: ClusterState::default(),
            now: 1_000_000,
            timings: Timings::default(),
        };
        for id in nodes {
            c.apply(ClusterCommand::AddMember {
                member: member(*id),
                at: 0,
            });
        }
        c
    }

    pub fn set(
        &mut self,
        id: &str,
        composition: Composition,
        members: Vec<MemberRef>,
        giveback: Option<u64>,
    ) {
        let spec = SetSpec {
            id: id.into(),
            kind: SetKind::Generic,
            composition,
            members,
            health_threshold: 50,
            auto_giveback_ms: giveback,
        };
        self.apply(ClusterCommand::CreateSet { spec, at: self.now });
    }

    pub fn nway(&mut self, id: &str, nodes: &[NodeId]) {
        self.set(
            id,
            Composition::NWay,
            nodes.iter().copied().map(n).collect(),
            None,
        );
    }

    pub fn apply(&mut self, cmd: ClusterCommand) -> ClusterResponse {
        let response = self.state.apply(cmd.clone());
        assert!(
            !matches!(response, ClusterResponse::Refused { .. }),
            "refused: {cmd:?} -> {response:?}"
        );
        response
    }

    /// Decides `input` now, applies every command, checks the invariants.
    pub fn try_decide(&mut self, input: Input) -> Result<Vec<ClusterCommand>, PolicyError> {
        let before = self.state.clone();
        let commands = decide(&self.state, &input, self.now, &self.timings)?;
        for cmd in &commands {
            self.apply(cmd.clone());
        }
        check_invariants(&before, &self.state, &input);
        Ok(commands)
    }

    pub fn decide(&mut self, input: Input) -> Vec<ClusterCommand> {
        let label = format!("{input:?}");
        self.try_decide(input)
            .unwrap_or_else(|e| panic!("{label}: {e}"))
    }

    pub fn advance(&mut self, ms: i64) {
        self.now += ms;
    }

    pub fn roles(&self, set: &str) -> Holders {
        let s = &self.state.sets[set];
        (s.primary.clone(), s.secondary.clone(), s.alternates.clone())
    }

    pub fn epoch(&self, set: &str) -> u64 {
        self.state.sets[set].epoch.0
    }

    pub fn member_state(&self, node: NodeId) -> MemberState {
        self.state.members[&node].state
    }
}

/// Holders in the shape `roles` returns, for `assert_eq!`.
pub fn holders(
    primary: Option<NodeId>,
    secondary: Option<NodeId>,
    alternates: &[NodeId],
) -> Holders {
    (
        primary.map(n),
        secondary.map(n),
        alternates.iter().copied().map(n).collect(),
    )
}

/// The AssignRoles commands of a batch.
pub fn assignments(commands: &[ClusterCommand]) -> Vec<&ClusterCommand> {
    commands
        .iter()
        .filter(|c| matches!(c, ClusterCommand::AssignRoles { .. }))
        .collect()
}

/// The kinds of the events a batch records explicitly.
pub fn recorded(commands: &[ClusterCommand]) -> Vec<EventKind> {
    commands
        .iter()
        .filter_map(|c| match c {
            ClusterCommand::RecordEvent { event } => Some(event.kind),
            _ => None,
        })
        .collect()
}

/// The states a batch moves members to.
pub fn states(commands: &[ClusterCommand]) -> Vec<(NodeId, MemberState)> {
    commands
        .iter()
        .filter_map(|c| match c {
            ClusterCommand::SetMemberState { node, state, .. } => Some((*node, *state)),
            _ => None,
        })
        .collect()
}

/// Invariants after every batch: epochs never decrease; every member of a set holds
/// exactly one role; Primary and Secondary are eligible whenever they changed; a link
/// failure fails nobody over.
pub fn check_invariants(before: &ClusterState, after: &ClusterState, input: &Input) {
    for (id, set) in &after.sets {
        if let Some(old) = before.sets.get(id) {
            assert!(
                set.epoch >= old.epoch,
                "epoch of {id} went back: {:?} -> {:?}",
                old.epoch,
                set.epoch
            );
            if set.primary != old.primary {
                assert!(
                    set.epoch > old.epoch,
                    "primary of {id} changed without a new epoch"
                );
            }
        }
        let order = set.role_order();
        let listed: BTreeSet<&MemberRef> = order.iter().collect();
        assert_eq!(
            order.len(),
            set.members.len(),
            "{id}: {order:?} vs {:?}",
            set.members
        );
        assert_eq!(
            listed,
            set.members.iter().collect(),
            "{id}: each member exactly once"
        );
        assert!(set.epoch >= Epoch(u64::from(set.primary.is_some())));
    }
    if matches!(
        input,
        Input::LinkSilent {
            self_test: crate::SelfTest::Passed,
            ..
        }
    ) {
        for (id, set) in &after.sets {
            assert_eq!(
                set.epoch, before.sets[id].epoch,
                "a link failure moved {id}"
            );
        }
        for (id, m) in &after.members {
            assert_eq!(
                m.state, before.members[id].state,
                "a link failure changed {id}'s state"
            );
        }
    }
}
