//! The health verdict of a status view: `HEALTH_OK`, `HEALTH_WARN` or `HEALTH_ERR`,
//! and the reasons, in plain words.
//!
//! Owns: the rules below, as a pure function of the view (its `at` is "now"). Must
//! never do I/O or look at anything but the view, so that tests pin every rule.
//!
//! - ERR: the view is stale (no answering member reaches a quorum: nothing can be
//!   decided, and what is shown may be out of date); a set without a Primary.
//! - WARN: a storage set with fewer in-sync members that are up than members (its
//!   replication factor); a member failed, quarantined, suspect or joining; a drained member; a
//!   catch-up or rebalance in progress; a member the view calls up that did not
//!   answer the client.
//! - OK otherwise.

use keel_node::admin_api::StatusView;
use serde::Serialize;

#[derive(Serialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Health {
    #[serde(rename = "HEALTH_OK")]
    Ok,
    #[serde(rename = "HEALTH_WARN")]
    Warn,
    #[serde(rename = "HEALTH_ERR")]
    Err,
}

impl Health {
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Ok => "HEALTH_OK",
            Health::Warn => "HEALTH_WARN",
            Health::Err => "HEALTH_ERR",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    pub health: Health,
    /// The worst first.
    pub reasons: Vec<String>,
}

/// The verdict on `view` (with `view.stale` already set by the client).
pub fn verdict(view: &StatusView) -> Verdict {
    let now = view.at;
    let mut errs = vec![];
    let mut warns = vec![];
    if view.stale || !view.quorum {
        errs.push(format!(
            "no quorum: node {} (the best answer) cannot reach a majority of the configuration database; this view may be stale",
            view.answered_by
        ));
    } else if view.leader.is_none() {
        errs.push("no configuration database leader (election in progress?)".to_string());
    }
    for s in &view.sets {
        if s.primary.is_none() {
            errs.push(format!(
                "set {} has no Primary: it serves nothing until one is eligible",
                s.id
            ));
        }
        if s.kind == "storage" {
            // An in-sync member that is not up holds no copy anyone can read now, even
            // while the list (changed by the Primary at its next write) still names it.
            let state_of = |n: u64| {
                view.nodes
                    .iter()
                    .find(|v| v.id == n)
                    .map(|v| v.state.as_str())
            };
            let copies = s
                .in_sync
                .iter()
                .filter(|n| state_of(**n).is_none_or(|st| st == "up"))
                .count();
            if copies < s.replication {
                let missing: Vec<String> = s
                    .members
                    .iter()
                    .filter_map(|m| match m {
                        keel_core::MemberRef::Node(n) if !s.in_sync.contains(n) => {
                            Some(format!("node {n} out of sync"))
                        }
                        keel_core::MemberRef::Node(n) => state_of(*n)
                            .filter(|st| *st != "up")
                            .map(|st| format!("node {n} {st}")),
                        _ => None,
                    })
                    .collect();
                warns.push(format!(
                    "set {}: {copies} of {} members in sync and up{}",
                    s.id,
                    s.replication,
                    if missing.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", missing.join(", "))
                    }
                ));
            }
        }
    }
    for s in &view.sets {
        if let Some(b) = s.async_backlog.as_ref().filter(|b| b.writes > 0) {
            warns.push(format!(
                "set {}: {} writes ({} bytes) acknowledged and not yet on the other sites{}",
                s.id,
                b.writes,
                b.bytes,
                if b.lagging.is_empty() {
                    String::new()
                } else {
                    format!(
                        "; writes held while node(s) {:?} leave the in-sync list",
                        b.lagging
                    )
                }
            ));
        }
    }
    for n in &view.nodes {
        let since = |t: Option<i64>| {
            t.map(|t| format!(" {} ago", age(now - t)))
                .unwrap_or_default()
        };
        match n.state.as_str() {
            "up" => {}
            "failed" => warns.push(format!("node {} failed{}", n.id, since(n.failed_at))),
            "quarantined" => warns.push(format!(
                "node {} quarantined (failed too often{}; `keel node clear {}` re-admits it)",
                n.id,
                n.failed_at
                    .map(|t| format!(", last {} ago", age(now - t)))
                    .unwrap_or_default(),
                n.id
            )),
            "suspect" => warns.push(format!("node {} suspect (not heard from lately)", n.id)),
            other => warns.push(format!("node {} {other}", n.id)),
        }
        if n.state == "up" && view.unanswered.contains(&n.id) {
            warns.push(format!(
                "node {} does not answer (its status could not be read)",
                n.id
            ));
        }
        if n.drained {
            warns.push(format!(
                "node {} drained (holds no Primary or Secondary role)",
                n.id
            ));
        }
    }
    for p in &view.progress {
        let what = if p.kind == "catch_up" {
            "catch-up"
        } else {
            "rebalance"
        };
        let on = p.node.map(|n| format!(" on node {n}")).unwrap_or_default();
        warns.push(format!(
            "{what} of set {}{on} in progress for {}: {}",
            p.set,
            age(now - p.since),
            p.detail
        ));
    }
    let health = if !errs.is_empty() {
        Health::Err
    } else if !warns.is_empty() {
        Health::Warn
    } else {
        Health::Ok
    };
    errs.extend(warns);
    Verdict {
        health,
        reasons: errs,
    }
}

/// A duration in milliseconds, the way a person says it: `12s`, `5m`, `3h`, `2d`
/// (negative durations, from clocks that differ, read `0s`).
pub fn age(ms: i64) -> String {
    let s = ms.max(0) / 1000;
    match s {
        0..=99 => format!("{s}s"),
        100..=5999 => format!("{}m", s / 60),
        6000..=172_799 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86_400),
    }
}

/// Bytes the way a person reads them: `512 B`, `1.5 KiB`, `20.0 GiB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keel_core::{Epoch, MemberRef};
    use keel_node::admin_api::{NodeView, ProgressView, SetView};

    const NOW: i64 = 1_000_000_000;

    fn node(id: u64, state: &str) -> NodeView {
        NodeView {
            id,
            site: "1".into(),
            addr: format!("127.0.1.{id}"),
            pid: 100 + id as u32,
            state: state.into(),
            drained: false,
            roles: vec![],
            links: vec![],
            health: None,
            recent_failures: 0,
            up_since: Some(NOW - 300_000),
            failed_at: None,
            capacity: None,
        }
    }

    fn storage_set(id: &str, members: &[u64], in_sync: &[u64], primary: Option<u64>) -> SetView {
        SetView {
            id: id.into(),
            kind: "storage".into(),
            composition: "nway".into(),
            epoch: Epoch(1),
            primary: primary.map(MemberRef::Node),
            secondary: None,
            alternates: vec![],
            members: members.iter().map(|n| MemberRef::Node(*n)).collect(),
            in_sync: in_sync.to_vec(),
            failovers: 0,
            health_threshold: 50,
            lease_holder: None,
            replication: members.len(),
            changed_at: NOW,
            objects: None,
            bytes: None,
            async_backlog: None,
        }
    }

    fn healthy() -> StatusView {
        StatusView {
            cluster: "dev".into(),
            leader: Some(1),
            term: 2,
            answered_by: 1,
            nodes: vec![node(1, "up"), node(2, "up"), node(3, "up")],
            sets: vec![
                storage_set("st-1", &[1, 2], &[1, 2], Some(1)),
                storage_set("st-2", &[2, 3], &[2, 3], Some(2)),
            ],
            quorum: true,
            applied: 40,
            at: NOW,
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
    fn a_healthy_cluster_is_ok_with_no_reasons() {
        let v = verdict(&healthy());
        assert_eq!(v.health, Health::Ok);
        assert!(v.reasons.is_empty(), "{:?}", v.reasons);
    }

    #[test]
    fn a_stale_view_is_an_error_that_says_no_quorum() {
        let mut s = healthy();
        s.stale = true;
        s.quorum = false;
        let v = verdict(&s);
        assert_eq!(v.health, Health::Err);
        assert!(v.reasons[0].contains("no quorum"), "{:?}", v.reasons);
        assert!(v.reasons[0].contains("stale"), "{:?}", v.reasons);
    }

    #[test]
    fn a_set_without_a_primary_is_an_error_naming_it() {
        let mut s = healthy();
        s.sets[1].primary = None;
        let v = verdict(&s);
        assert_eq!(v.health, Health::Err);
        assert!(v
            .reasons
            .iter()
            .any(|r| r.contains("st-2") && r.contains("no Primary")));
    }

    #[test]
    fn a_failed_node_and_its_short_set_are_warnings_with_ages() {
        let mut s = healthy();
        s.nodes[1].state = "failed".into();
        s.nodes[1].failed_at = Some(NOW - 12_000);
        s.sets[0].in_sync = vec![1];
        let v = verdict(&s);
        assert_eq!(v.health, Health::Warn);
        assert!(
            v.reasons.contains(&"node 2 failed 12s ago".to_string()),
            "{:?}",
            v.reasons
        );
        assert!(
            v.reasons.contains(
                &"set st-1: 1 of 2 members in sync and up (node 2 out of sync)".to_string()
            ),
            "{:?}",
            v.reasons
        );
    }

    #[test]
    fn a_failed_member_still_on_the_in_sync_list_does_not_count_as_a_copy() {
        let mut s = healthy();
        s.nodes[2].state = "failed".into();
        let v = verdict(&s);
        assert_eq!(v.health, Health::Warn);
        assert!(
            v.reasons
                .contains(&"set st-2: 1 of 2 members in sync and up (node 3 failed)".to_string()),
            "{:?}",
            v.reasons
        );
    }

    #[test]
    fn quarantined_and_drained_nodes_are_warnings() {
        let mut s = healthy();
        s.nodes[0].drained = true;
        s.nodes[2].state = "quarantined".into();
        let v = verdict(&s);
        assert_eq!(v.health, Health::Warn);
        assert!(v.reasons.iter().any(|r| r.starts_with("node 1 drained")));
        assert!(v
            .reasons
            .iter()
            .any(|r| r.starts_with("node 3 quarantined")));
    }

    #[test]
    fn a_catch_up_in_progress_is_a_warning_with_its_progress() {
        let mut s = healthy();
        s.progress.push(ProgressView {
            kind: "catch_up".into(),
            set: "st-1".into(),
            node: Some(2),
            detail: "catch-up: 3/10 objects, 300 bytes".into(),
            since: NOW - 5 * 60_000,
        });
        let v = verdict(&s);
        assert_eq!(v.health, Health::Warn);
        assert_eq!(
            v.reasons,
            vec!["catch-up of set st-1 on node 2 in progress for 5m: catch-up: 3/10 objects, 300 bytes"]
        );
    }

    #[test]
    fn a_member_up_in_the_view_that_does_not_answer_is_a_warning() {
        let mut s = healthy();
        s.unanswered = vec![3];
        let v = verdict(&s);
        assert_eq!(v.health, Health::Warn);
        assert_eq!(
            v.reasons,
            vec!["node 3 does not answer (its status could not be read)"]
        );
    }

    #[test]
    fn errors_come_before_warnings() {
        let mut s = healthy();
        s.nodes[2].state = "failed".into();
        s.sets[1].primary = None;
        let v = verdict(&s);
        assert_eq!(v.health, Health::Err);
        assert!(v.reasons[0].contains("no Primary"), "{:?}", v.reasons);
    }

    #[test]
    fn ages_and_sizes_read_like_a_person_says_them() {
        assert_eq!(age(12_400), "12s");
        assert_eq!(age(5 * 60_000), "5m");
        assert_eq!(age(3 * 3_600_000), "3h");
        assert_eq!(age(3 * 86_400_000), "3d");
        assert_eq!(age(-5), "0s");
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1536), "1.5 KiB");
    }
}
