//! The storage layout: which storage failover sets exist and which placement groups
//! each one holds, computed from the members that have the storage role.
//!
//! Rules (an operator applies a layout with `keel layout apply`, as Garage does):
//! - every storage node that is not drained leads one set, `st-<node>`;
//! - its other members are, in order: the node with the same index in each other
//!   site (the one-to-one mapping between storage centers of a mirrored layout, so
//!   a set's Primary and Secondary stand in different sites), then the next nodes of
//!   its own site, until the set has `replicas` members;
//! - sets that exist keep their members (a layout adds sets, it never reshapes one);
//! - the placement groups are spread evenly over the sets of non-drained nodes,
//!   moving as few groups as possible (see `PlacementMap::rebalanced`).
//!
//! Must never: do I/O, or produce a command the state machine would refuse.

use keel_core::{
    ClusterCommand, ClusterState, Composition, MemberRef, NodeId, NodeRole, SetId, SetKind,
    SetSpec, UnixMillis,
};
use std::collections::BTreeMap;

/// The id of the storage set node `n` leads.
pub fn storage_set_id(n: NodeId) -> SetId {
    format!("st-{n}")
}

/// The members of the set `node` leads: itself, its counterparts in the other sites,
/// then its neighbours in its own site; at most `replicas`.
fn members_for(
    by_site: &BTreeMap<String, Vec<NodeId>>,
    site: &str,
    node: NodeId,
    replicas: usize,
) -> Vec<NodeId> {
    let own = &by_site[site];
    let index = own.iter().position(|n| *n == node).unwrap_or(0);
    let mut out = vec![node];
    let sites: Vec<&String> = by_site.keys().collect();
    let here = sites.iter().position(|s| *s == site).unwrap_or(0);
    for k in 1..sites.len() {
        let other = &by_site[sites[(here + k) % sites.len()]];
        if !other.is_empty() {
            out.push(other[index % other.len()]);
        }
    }
    for k in 1..own.len() {
        out.push(own[(index + k) % own.len()]);
    }
    let mut seen = std::collections::BTreeSet::new();
    out.retain(|n| seen.insert(*n));
    out.truncate(replicas.max(1));
    out
}

/// What `keel layout apply` would do: the commands, and a line per change for a
/// person (`keel layout show`, and the answer of `apply`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LayoutPlan {
    pub commands: Vec<ClusterCommand>,
    /// One line per change: sets created, grown or shrunk, placement groups moved.
    pub changes: Vec<String>,
}

/// Why a layout cannot be applied as asked (one line; nothing was changed).
#[derive(thiserror::Error, Clone, Debug, PartialEq)]
#[error("{0}")]
pub struct LayoutRefused(pub String);

/// The commands that bring the storage layout in line with the members: new sets,
/// then the placement map. Empty when nothing changes. (The replication factor of
/// existing sets is left alone: see [`plan_full`].)
pub fn plan(state: &ClusterState, replicas: usize, now: UnixMillis) -> Vec<ClusterCommand> {
    plan_sets(state, replicas, now, false)
        .map(|p| p.commands)
        .unwrap_or_default()
}

/// The full plan of `keel layout apply --replicas N`: new sets, existing storage sets
/// brought to `replicas` members (nodes appended in the same order as a new set's:
/// counterparts in other sites, then neighbours; or removed from the end, never the
/// Primary nor the last in-sync member), then the placement map. Refused (nothing
/// to apply) when a set cannot be brought to `replicas` members.
pub fn plan_full(
    state: &ClusterState,
    replicas: usize,
    now: UnixMillis,
) -> Result<LayoutPlan, LayoutRefused> {
    plan_sets(state, replicas, now, true)
}

fn plan_sets(
    state: &ClusterState,
    replicas: usize,
    now: UnixMillis,
    resize: bool,
) -> Result<LayoutPlan, LayoutRefused> {
    let mut by_site: BTreeMap<String, Vec<NodeId>> = BTreeMap::new();
    for m in state.members.values() {
        if m.roles.contains(&NodeRole::Storage) && !m.drained {
            by_site.entry(m.site.clone()).or_default().push(m.id);
        }
    }
    let storage_nodes: usize = by_site.values().map(Vec::len).sum();
    let mut out = LayoutPlan::default();
    let mut sets: Vec<SetId> = vec![];
    for (site, nodes) in &by_site {
        for n in nodes {
            let id = storage_set_id(*n);
            sets.push(id.clone());
            let Some(existing) = state.sets.get(&id) else {
                let members = members_for(&by_site, site, *n, replicas);
                out.changes
                    .push(format!("create {id} with members {members:?}"));
                out.commands.push(ClusterCommand::CreateSet {
                    spec: SetSpec {
                        id,
                        kind: SetKind::Storage,
                        composition: if members.len() == 1 {
                            Composition::Single
                        } else {
                            Composition::NWay
                        },
                        members: members.into_iter().map(MemberRef::Node).collect(),
                        health_threshold: 50,
                        auto_giveback_ms: None,
                    },
                    at: now,
                });
                continue;
            };
            if !resize || existing.members.len() == replicas {
                continue;
            }
            let current = existing.member_nodes();
            let mut want = current.clone();
            if want.len() < replicas {
                for c in members_for(&by_site, site, *n, usize::MAX) {
                    if want.len() >= replicas {
                        break;
                    }
                    if !want.contains(&c) {
                        want.push(c);
                    }
                }
                if want.len() < replicas {
                    return Err(LayoutRefused(format!(
                        "--replicas {replicas}: {id} can have at most {} members: there are {storage_nodes} undrained storage nodes, and a set's members are distinct nodes",
                        want.len()
                    )));
                }
                let added: Vec<NodeId> = want[current.len()..].to_vec();
                let names: Vec<String> = added.iter().map(|n| n.to_string()).collect();
                out.changes.push(format!(
                    "grow {id} from {current:?} to {want:?} (node{} {} catch{} up before joining the in-sync list)",
                    if added.len() == 1 { "" } else { "s" },
                    names.join(", "),
                    if added.len() == 1 { "es" } else { "" },
                ));
            } else {
                let primary = existing.primary_node();
                while want.len() > replicas {
                    let last = want[want.len() - 1];
                    let rest = &want[..want.len() - 1];
                    let keeps_in_sync = existing.in_sync.iter().any(|m| rest.contains(m));
                    if primary == Some(last) || !keeps_in_sync {
                        return Err(LayoutRefused(format!(
                            "--replicas {replicas}: {id} cannot drop its last member {last} ({}): members are removed only from the end; move its Primary first (`keel takeover {id} --to N`)",
                            if primary == Some(last) {
                                "it is the Primary"
                            } else {
                                "it is the only in-sync member left"
                            }
                        )));
                    }
                    want.pop();
                }
                out.changes
                    .push(format!("shrink {id} from {current:?} to {want:?}"));
            }
            if want != current {
                out.commands.push(ClusterCommand::SetMembers {
                    set: id,
                    expected_members: existing.members.clone(),
                    members: want.into_iter().map(MemberRef::Node).collect(),
                    at: now,
                });
            }
        }
    }
    sets.sort();
    let groups = state.placement.rebalanced(&sets);
    if groups != state.placement.groups {
        let moved = if state.placement.groups.len() == groups.len() {
            groups
                .iter()
                .zip(&state.placement.groups)
                .filter(|(a, b)| a != b)
                .count()
        } else {
            groups.len()
        };
        out.changes.push(format!(
            "move {moved} of {} placement groups (placement map version {} -> {})",
            groups.len(),
            state.placement.version,
            state.placement.version + 1
        ));
        out.commands.push(ClusterCommand::SetPlacement {
            expected_version: state.placement.version,
            groups,
            at: now,
        });
    }
    Ok(out)
}

/// The current storage layout, one line per storage set (members, in-sync list,
/// Primary, placement groups), for `keel layout show`.
pub fn describe(state: &ClusterState) -> Vec<String> {
    let mut out = vec![format!(
        "placement map version {}: {} placement groups over {} storage sets; replication factor {}",
        state.placement.version,
        state.placement.groups.len(),
        state.placement.sets().len(),
        state.settings.storage_replicas
    )];
    for set in state.sets.values().filter(|s| s.kind == SetKind::Storage) {
        let groups = state
            .placement
            .groups
            .iter()
            .filter(|g| **g == set.id)
            .count();
        out.push(format!(
            "{}: members {:?}, in sync {:?}, primary {}, {groups} placement groups",
            set.id,
            set.member_nodes(),
            set.in_sync,
            set.primary_node()
                .map(|p| p.to_string())
                .unwrap_or_else(|| "none".into())
        ));
    }
    out
}

/// Whether node `n` could hold the Primary role of `set`: an up, undrained member, and
/// for a storage set one on the in-sync list (only those hold every acknowledged write).
fn eligible(state: &ClusterState, set: &keel_core::FailoverSet, n: NodeId) -> bool {
    let up = state
        .members
        .get(&n)
        .is_some_and(|m| !m.drained && m.state == keel_core::MemberState::Up);
    up && (set.kind != SetKind::Storage || set.in_sync.contains(&n))
}

/// The sets that draining (or removing) node `node` would leave without an eligible
/// Primary, with the reason for each: sets where `node` is the last up, undrained,
/// in-sync member. Empty when the drain is safe. A set that has no eligible member
/// already is not named (draining changes nothing for it).
pub fn drain_blockers(state: &ClusterState, node: NodeId) -> Vec<(SetId, String)> {
    let mut out = vec![];
    for set in state.sets.values() {
        if !set.has_member(&MemberRef::Node(node)) || !eligible(state, set, node) {
            continue;
        }
        let others = set
            .member_nodes()
            .into_iter()
            .filter(|m| *m != node && eligible(state, set, *m))
            .count();
        if others == 0 {
            let why = if set.kind == SetKind::Storage {
                format!("node {node} is its only up, in-sync member")
            } else {
                format!("node {node} is its only up member")
            };
            out.push((set.id.clone(), why));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::fixture::member;

    fn state(nodes: &[(NodeId, &str)]) -> ClusterState {
        let mut s = ClusterState::default();
        for (id, site) in nodes {
            let mut m = member(*id);
            m.site = site.to_string();
            s.members.insert(*id, m);
        }
        s
    }

    fn apply(s: &mut ClusterState, cmds: Vec<ClusterCommand>) {
        for c in cmds {
            assert!(s.apply(c.clone()).into_result().is_ok(), "{c:?} refused");
        }
    }

    #[test]
    fn mirrored_sites_pair_node_i_with_node_i() {
        let mut s = state(&[(1, "a"), (2, "a"), (3, "b"), (4, "b")]);
        let cmds = plan(&s, 2, 0);
        apply(&mut s, cmds);
        let m = |id: &str| s.sets[id].member_nodes();
        assert_eq!(m("st-1"), vec![1, 3]);
        assert_eq!(m("st-2"), vec![2, 4]);
        assert_eq!(m("st-3"), vec![3, 1]);
        assert_eq!(m("st-4"), vec![4, 2]);
        assert_eq!(s.sets["st-1"].in_sync, vec![1, 3]);
        assert_eq!(s.placement.version, 1);
        assert_eq!(s.placement.sets().len(), 4);
        assert!(plan(&s, 2, 0).is_empty(), "a second apply changes nothing");
    }

    #[test]
    fn one_site_takes_neighbours() {
        let mut s = state(&[(1, "a"), (2, "a"), (3, "a")]);
        let cmds = plan(&s, 3, 0);
        apply(&mut s, cmds);
        assert_eq!(s.sets["st-2"].member_nodes(), vec![2, 3, 1]);
    }

    #[test]
    fn a_single_node_gets_a_single_set() {
        let mut s = state(&[(1, "a")]);
        let cmds = plan(&s, 2, 0);
        apply(&mut s, cmds);
        assert_eq!(s.sets["st-1"].composition, Composition::Single);
    }

    #[test]
    fn replicas_grow_existing_sets_then_shrink_them_from_the_end() {
        let mut s = state(&[(1, "a"), (2, "a"), (3, "a")]);
        let cmds = plan(&s, 2, 0);
        apply(&mut s, cmds);
        let version = s.placement.version;
        // The plain plan leaves existing sets alone.
        assert!(plan(&s, 3, 0).is_empty());
        let p = plan_full(&s, 3, 0).unwrap();
        assert_eq!(p.commands.len(), 3, "{p:?}");
        assert!(
            p.changes[0].starts_with("grow st-1 from [1, 2] to [1, 2, 3]"),
            "{p:?}"
        );
        apply(&mut s, p.commands);
        assert_eq!(s.sets["st-1"].member_nodes(), vec![1, 2, 3]);
        assert_eq!(s.sets["st-2"].member_nodes(), vec![2, 3, 1]);
        // The new member is not in sync: it catches up first.
        assert_eq!(s.sets["st-1"].in_sync, vec![1, 2]);
        assert_eq!(s.placement.version, version, "no group moves");
        assert!(plan_full(&s, 3, 0).unwrap().commands.is_empty());
        // More members than nodes: refused, naming the set.
        let e = plan_full(&s, 4, 0).unwrap_err();
        assert!(e.0.contains("st-1 can have at most 3 members"), "{e}");
        // Shrink: from the end.
        let p = plan_full(&s, 2, 0).unwrap();
        apply(&mut s, p.commands);
        assert_eq!(s.sets["st-1"].member_nodes(), vec![1, 2]);
        assert_eq!(s.sets["st-1"].in_sync, vec![1, 2]);
        // Never the last in-sync member.
        s.sets.get_mut("st-1").unwrap().in_sync = vec![2];
        let e = plan_full(&s, 1, 0).unwrap_err();
        assert!(e.0.contains("st-1 cannot drop its last member 2"), "{e}");
    }

    #[test]
    fn the_state_machine_refuses_members_not_appended_or_dropping_the_primary() {
        let mut s = state(&[(1, "a"), (2, "a"), (3, "a")]);
        let cmds = plan(&s, 2, 0);
        apply(&mut s, cmds);
        let set = |members: Vec<NodeId>, expected: Vec<NodeId>| ClusterCommand::SetMembers {
            set: "st-1".into(),
            expected_members: expected.into_iter().map(MemberRef::Node).collect(),
            members: members.into_iter().map(MemberRef::Node).collect(),
            at: 1,
        };
        let refused = |s: &mut ClusterState, c| s.apply(c).into_result().is_err();
        assert!(refused(&mut s, set(vec![2, 1], vec![1, 2])), "reordered");
        assert!(
            refused(&mut s, set(vec![1, 2, 3], vec![1, 3])),
            "stale expectation"
        );
        assert!(
            refused(&mut s, set(vec![1, 2, 9], vec![1, 2])),
            "unknown node"
        );
        let primary = s.sets["st-1"].primary_node();
        if primary == Some(2) {
            assert!(
                refused(&mut s, set(vec![1], vec![1, 2])),
                "drops the Primary"
            );
        }
        assert!(!refused(&mut s, set(vec![1, 2, 3], vec![1, 2])));
        assert_eq!(s.sets["st-1"].composition, Composition::NWay);
    }

    #[test]
    fn describe_names_every_storage_set() {
        let mut s = state(&[(1, "a"), (2, "a")]);
        let cmds = plan(&s, 2, 0);
        apply(&mut s, cmds);
        let d = describe(&s);
        assert!(d[0].starts_with("placement map version 1"), "{d:?}");
        assert!(
            d.iter()
                .any(|l| l.starts_with("st-1: members [1, 2], in sync [1, 2]")),
            "{d:?}"
        );
        assert_eq!(d.len(), 3);
    }

    #[test]
    fn draining_the_only_in_sync_member_is_named() {
        let mut s = state(&[(1, "a"), (2, "a"), (3, "a")]);
        let cmds = plan(&s, 2, 0);
        apply(&mut s, cmds);
        for m in s.members.values_mut() {
            m.state = keel_core::MemberState::Up;
        }
        assert!(
            drain_blockers(&s, 1).is_empty(),
            "every set has another member"
        );
        s.sets.get_mut("st-1").unwrap().in_sync = vec![1];
        let b = drain_blockers(&s, 1);
        assert_eq!(b.len(), 1);
        assert_eq!(b[0].0, "st-1");
        assert!(b[0].1.contains("only up, in-sync member"), "{}", b[0].1);
        // The other member being down is as bad as it being out of sync.
        s.sets.get_mut("st-1").unwrap().in_sync = vec![1, 2];
        s.members.get_mut(&2).unwrap().state = keel_core::MemberState::Failed;
        let b = drain_blockers(&s, 1);
        assert_eq!(
            b.len(),
            1,
            "st-1 only: st-3 (members 3, 1) keeps node 3: {b:?}"
        );
        // A node that is already not eligible blocks nothing.
        assert!(drain_blockers(&s, 2).is_empty());
    }

    #[test]
    fn adding_a_node_adds_its_set_and_moves_a_share() {
        let mut s = state(&[(1, "a"), (2, "a")]);
        let cmds = plan(&s, 2, 0);
        apply(&mut s, cmds);
        let before = s.placement.groups.clone();
        s.members.insert(3, member(3));
        let cmds = plan(&s, 2, 0);
        apply(&mut s, cmds);
        assert!(s.sets.contains_key("st-3"));
        let moved = before
            .iter()
            .zip(&s.placement.groups)
            .filter(|(a, b)| a != b)
            .count();
        assert!(moved > 0 && moved <= 86, "moved {moved}");
        assert_eq!(s.placement.previous, before);
    }
}
