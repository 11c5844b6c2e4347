//! The failure limit: too many failures inside the window quarantine a member until
//! an operator clears it.

use super::fixture::*;
use crate::Input;
use keel_core::{ClusterCommand, MemberState};

const MINUTE: i64 = 60_000;

#[test]
fn three_failures_in_the_window_quarantine_and_clear_brings_the_member_back() {
    let mut c = Cluster::new(&[1, 2, 3]);
    c.nway("a", &[1, 2, 3]);

    tracing::info!("--- two failures, each followed by a return");
    for _ in 0..2 {
        c.decide(crash(1));
        assert_eq!(c.member_state(1), MemberState::Failed);
        c.advance(MINUTE);
        c.decide(heard(1));
        assert_eq!(c.member_state(1), MemberState::Up);
        c.advance(MINUTE);
    }

    tracing::info!("--- the third failure exceeds the limit");
    let cmds = c.decide(crash(1));
    assert_eq!(
        states(&cmds),
        vec![(1, MemberState::Failed), (1, MemberState::Quarantined)]
    );
    let ClusterCommand::SetMemberState { reason, .. } = &cmds[2] else {
        panic!("{cmds:?}")
    };
    assert_eq!(reason, "failure limit exceeded: 3 failures in 600s");

    tracing::info!("--- heard or restarted: it stays quarantined and holds no role");
    assert!(c.decide(heard(1)).is_empty());
    c.decide(Input::Back {
        node: 1,
        boot: keel_core::BootType::Restart,
        pid: 0,
        store: None,
    });
    assert!(c.decide(Input::Tick).is_empty());
    assert_eq!(c.member_state(1), MemberState::Quarantined);
    assert_ne!(c.state.sets["a"].primary, Some(n(1)));

    tracing::info!("--- the operator clears it: failed, then back when heard");
    let cmds = c.decide(Input::Clear { node: 1 });
    assert!(matches!(
        &cmds[..],
        [ClusterCommand::ClearQuarantine { node: 1, .. }]
    ));
    assert_eq!(c.member_state(1), MemberState::Failed);
    let cmds = c.decide(heard(1));
    assert!(matches!(
        &cmds[0],
        ClusterCommand::MemberBack { node: 1, .. }
    ));
    assert_eq!(c.member_state(1), MemberState::Up);
    assert!(c.state.sets["a"].alternates.contains(&n(1)));

    tracing::info!("--- its history is gone: one more failure does not quarantine");
    c.decide(crash(1));
    assert_eq!(c.member_state(1), MemberState::Failed);
}

#[test]
fn failures_outside_the_window_do_not_count() {
    let mut c = Cluster::new(&[1, 2]);
    c.nway("a", &[1, 2]);

    c.decide(crash(1));
    c.decide(heard(1));
    tracing::info!("--- eleven minutes later: the first failure has left the window");
    c.advance(11 * MINUTE);
    c.decide(crash(1));
    c.decide(heard(1));
    c.advance(MINUTE);
    c.decide(crash(1));
    assert_eq!(c.member_state(1), MemberState::Failed);
    assert_eq!(c.state.recent_failures(1, c.now), 2);
}

#[test]
fn a_failure_limit_of_zero_never_quarantines() {
    let mut c = Cluster::new(&[1, 2]);
    c.nway("a", &[1, 2]);
    c.state.settings.failure_limit = 0;
    for _ in 0..5 {
        c.decide(crash(1));
        c.decide(heard(1));
    }
    assert_eq!(c.member_state(1), MemberState::Up);
}
