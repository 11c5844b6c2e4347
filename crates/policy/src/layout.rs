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

/// The commands that bring the storage layout in line with the members: new sets,
/// then the placement map. Empty when nothing changes.
pub fn plan(state: &ClusterState, replicas: usize, now: UnixMillis) -> Vec<ClusterCommand> {
    let mut by_site: BTreeMap<String, Vec<NodeId>> = BTreeMap::new();
    for m in state.members.values() {
        if m.roles.contains(&NodeRole::Storage) && !m.drained {
            by_site.entry(m.site.clone()).or_default().push(m.id);
        }
    }
    let mut cmds = vec![];
    let mut sets: Vec<SetId> = vec![];
    for (site, nodes) in &by_site {
        for n in nodes {
            let id = storage_set_id(*n);
            sets.push(id.clone());
            if state.sets.contains_key(&id) {
                continue;
            }
            let members = members_for(&by_site, site, *n, replicas);
            cmds.push(ClusterCommand::CreateSet {
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
        }
    }
    sets.sort();
    let groups = state.placement.rebalanced(&sets);
    if groups != state.placement.groups {
        cmds.push(ClusterCommand::SetPlacement {
            expected_version: state.placement.version,
            groups,
            at: now,
        });
    }
    cmds
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
