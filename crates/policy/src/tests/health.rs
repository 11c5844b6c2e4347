//! Health monitoring: a Primary or Secondary below its set's threshold is failed.

use super::fixture::*;
use crate::{HealthReport, Input};
use keel_core::{ClusterCommand, EventKind, FaultKind, MemberState};

fn report(node: u64, score: u8, disk_ok: bool) -> Input {
    Input::Heard {
        node,
        health: HealthReport {
            score,
            disk_ok,
            latency_ms: 900,
        },
    }
}

fn fault_of(cmds: &[ClusterCommand]) -> Option<FaultKind> {
    cmds.iter().find_map(|c| match c {
        ClusterCommand::SetMemberState {
            state: MemberState::Failed,
            fault,
            ..
        } => *fault,
        _ => None,
    })
}

#[test]
fn a_slow_primary_is_failed_over() {
    let mut c = Cluster::new(&[1, 2, 3]);
    c.nway("a", &[1, 2, 3]);

    let cmds = c.decide(report(1, 30, true));
    assert_eq!(recorded(&cmds), vec![EventKind::FailureDetected]);
    assert_eq!(fault_of(&cmds), Some(FaultKind::Slow));
    let ClusterCommand::RecordEvent { event } = &cmds[0] else {
        unreachable!()
    };
    assert!(
        event
            .detail
            .starts_with("fault=slow health 30 below threshold 50 of set a"),
        "{}",
        event.detail
    );
    assert_eq!(c.roles("a"), holders(Some(2), Some(3), &[1]));

    tracing::info!("--- still slow: it stays failed");
    assert!(c.decide(report(1, 30, true)).is_empty());
    tracing::info!("--- healthy again: back as an alternate");
    c.decide(heard(1));
    assert_eq!(c.member_state(1), MemberState::Up);
    assert_eq!(c.roles("a"), holders(Some(2), Some(3), &[1]));
}

#[test]
fn a_secondary_with_a_failed_disk_is_replaced() {
    let mut c = Cluster::new(&[1, 2, 3]);
    c.nway("a", &[1, 2, 3]);

    let cmds = c.decide(report(2, 10, false));
    assert_eq!(fault_of(&cmds), Some(FaultKind::Disk));
    assert_eq!(c.roles("a"), holders(Some(1), Some(3), &[2]));
    assert_eq!(c.epoch("a"), 1);
}

#[test]
fn a_low_score_on_an_alternate_or_above_threshold_is_fine() {
    let mut c = Cluster::new(&[1, 2, 3]);
    c.nway("a", &[1, 2, 3]);

    assert!(
        c.decide(report(3, 10, true)).is_empty(),
        "an alternate serves nothing"
    );
    assert!(
        c.decide(report(1, 50, true)).is_empty(),
        "at the threshold is enough"
    );
    assert_eq!(c.member_state(3), MemberState::Up);
}
