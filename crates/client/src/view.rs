//! Which member's status speaks for the cluster, and the figures every member reports
//! about itself put together.
//!
//! Owns: the choice among the members' answers and the sums. Must never prefer an
//! answer for its Raft term (a member alone raises its term with every election it
//! starts) or do I/O.

use keel_node::admin_api::{StatusView, TotalsView};

/// The view that speaks for the cluster: among the members that reach a quorum, the
/// leader's own (as they name it), else the one with the highest applied index; if
/// none reaches a quorum, the highest applied index (never the highest term). `views`
/// is not empty.
pub fn choose_view(views: &[StatusView]) -> &StatusView {
    let current: Vec<&StatusView> = views.iter().filter(|v| v.quorum).collect();
    if !current.is_empty() {
        let leader = current
            .iter()
            .max_by_key(|v| v.applied)
            .and_then(|v| v.leader);
        if let Some(own) = current
            .iter()
            .find(|v| leader.is_some() && v.answered_by == leader.unwrap_or_default())
        {
            return own;
        }
        return current
            .into_iter()
            .max_by_key(|v| (v.applied, v.at))
            .expect("not empty");
    }
    views
        .iter()
        .max_by_key(|v| (v.applied, v.at))
        .expect("views is not empty")
}

/// Puts each member's own capacity (its `local`) on its node, the objects and bytes of
/// each storage set (as its Primary counts them, else the member holding most), and
/// the cluster totals.
pub fn merge_capacity(view: &mut StatusView, views: &[StatusView]) {
    let own = |id: u64| {
        views
            .iter()
            .find(|v| v.answered_by == id)
            .and_then(|v| v.local.clone())
    };
    for n in &mut view.nodes {
        n.capacity = own(n.id);
    }
    let mut totals = TotalsView {
        nodes: view.nodes.len(),
        nodes_up: view.nodes.iter().filter(|n| n.state == "up").count(),
        ..Default::default()
    };
    for c in view.nodes.iter().filter_map(|n| n.capacity.as_ref()) {
        totals.disk_total_bytes += c.disk_total_bytes;
        totals.disk_used_bytes += c.disk_used_bytes;
        totals.disk_free_bytes += c.disk_free_bytes;
    }
    for s in view.sets.iter_mut().filter(|s| s.kind == "storage") {
        let usage_on = |n: u64| {
            view.nodes
                .iter()
                .find(|m| m.id == n)
                .and_then(|m| m.capacity.as_ref())
                .map(|c| {
                    c.sets
                        .iter()
                        .find(|u| u.set == s.id)
                        .map_or((0, 0), |u| (u.objects, u.bytes))
                })
        };
        let counted = s.primary_node().and_then(usage_on).or_else(|| {
            s.members
                .iter()
                .filter_map(|m| match m {
                    keel_core::MemberRef::Node(n) => usage_on(*n),
                    _ => None,
                })
                .max()
        });
        if let Some((objects, bytes)) = counted {
            s.objects = Some(objects);
            s.bytes = Some(bytes);
            totals.objects += objects;
            totals.bytes += bytes;
        }
    }
    view.totals = Some(totals);
}

#[cfg(test)]
mod tests {
    use super::*;
    use keel_node::admin_api::{CapacityView, NodeView, SetUsage, SetView};

    fn view(by: u64, leader: Option<u64>, term: u64, applied: u64, quorum: bool) -> StatusView {
        StatusView {
            cluster: "dev".into(),
            leader,
            term,
            answered_by: by,
            nodes: vec![],
            sets: vec![],
            quorum,
            applied,
            at: 0,
            progress: vec![],
            local: None,
            stale: false,
            unanswered: vec![],
            health: String::new(),
            reasons: vec![],
            totals: None,
            cache: None,
        }
    }

    #[test]
    fn an_isolated_member_with_a_higher_term_is_not_chosen() {
        let views = [
            view(3, Some(3), 40, 55, false),
            view(1, Some(1), 2, 60, true),
            view(2, Some(1), 2, 60, true),
        ];
        assert_eq!(choose_view(&views).answered_by, 1);
    }

    #[test]
    fn without_the_leader_s_answer_the_most_advanced_current_view_is_chosen() {
        let views = [
            view(2, Some(1), 2, 58, true),
            view(4, Some(1), 2, 60, true),
            view(3, None, 90, 99, false),
        ];
        assert_eq!(choose_view(&views).answered_by, 4);
    }

    #[test]
    fn with_no_quorum_anywhere_the_most_advanced_view_is_chosen_not_the_highest_term() {
        let views = [view(3, None, 90, 50, false), view(4, None, 12, 61, false)];
        let v = choose_view(&views);
        assert_eq!(v.answered_by, 4);
        assert!(!v.quorum);
    }

    #[test]
    fn capacity_goes_on_each_node_and_a_set_counts_its_primary_s_objects() {
        let node = |id: u64| NodeView {
            id,
            site: "1".into(),
            addr: String::new(),
            pid: 0,
            state: "up".into(),
            drained: false,
            roles: vec![],
            links: vec![],
            health: None,
            recent_failures: 0,
            up_since: None,
            failed_at: None,
            capacity: None,
        };
        let local = |objects: u64| CapacityView {
            data_dir: "/d".into(),
            disk_total_bytes: 100,
            disk_used_bytes: 40,
            disk_free_bytes: 60,
            sets: vec![SetUsage {
                set: "st-1".into(),
                objects,
                bytes: objects * 10,
            }],
        };
        let mut chosen = view(1, Some(1), 2, 60, true);
        chosen.nodes = vec![node(1), node(2), node(3)];
        chosen.sets = vec![SetView {
            id: "st-1".into(),
            kind: "storage".into(),
            composition: "nway".into(),
            epoch: keel_core::Epoch(1),
            primary: Some(keel_core::MemberRef::Node(2)),
            secondary: None,
            alternates: vec![],
            members: vec![keel_core::MemberRef::Node(1), keel_core::MemberRef::Node(2)],
            in_sync: vec![1, 2],
            failovers: 0,
            health_threshold: 50,
            lease_holder: None,
            replication: 2,
            changed_at: 0,
            objects: None,
            bytes: None,
            async_backlog: None,
        }];
        let mut one = chosen.clone();
        one.local = Some(local(7));
        let mut two = view(2, Some(1), 2, 60, true);
        two.local = Some(local(5));
        merge_capacity(&mut chosen, &[one, two]);
        assert_eq!(
            chosen.nodes[0].capacity.as_ref().map(|c| c.disk_free_bytes),
            Some(60)
        );
        assert!(chosen.nodes[2].capacity.is_none(), "node 3 did not answer");
        assert_eq!(
            (chosen.sets[0].objects, chosen.sets[0].bytes),
            (Some(5), Some(50))
        );
        let t = chosen.totals.expect("totals");
        assert_eq!(
            (t.nodes, t.nodes_up, t.disk_total_bytes, t.objects),
            (3, 3, 200, 5)
        );
    }
}
