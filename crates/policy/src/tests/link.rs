//! Redundant links: one silent link is a link failure, never a failover, unless the
//! self-test over another link fails.

use super::fixture::*;
use crate::{Input, PolicyError, SelfTest};
use keel_core::{ClusterCommand, FaultKind, MemberState};

fn link_silent(node: u64, link: &str, self_test: SelfTest) -> Input {
    Input::LinkSilent {
        node,
        link: link.into(),
        self_test,
    }
}

#[test]
fn a_silent_link_with_a_passed_self_test_fails_nobody_over() {
    let mut c = Cluster::new(&[1, 2, 3]);
    c.nway("a", &[1, 2, 3]);

    tracing::info!("--- link b of the primary goes quiet, the self-test over a passes");
    let cmds = c.decide(link_silent(1, "b", SelfTest::Passed));
    assert_eq!(cmds.len(), 1, "{cmds:?}");
    assert!(matches!(
        &cmds[0],
        ClusterCommand::LinkState {
            node: 1,
            up: false,
            ..
        }
    ));
    assert!(assignments(&cmds).is_empty());
    assert!(states(&cmds).is_empty());
    assert_eq!(c.member_state(1), MemberState::Up);

    tracing::info!("--- reported again: already down, nothing");
    assert!(c.decide(link_silent(1, "b", SelfTest::Passed)).is_empty());
    assert!(c.decide(Input::Tick).is_empty());
    assert_eq!(c.roles("a"), holders(Some(1), Some(2), &[3]));

    tracing::info!("--- heartbeats on b again");
    let cmds = c.decide(Input::LinkHeard {
        node: 1,
        link: "b".into(),
    });
    assert!(matches!(
        &cmds[..],
        [ClusterCommand::LinkState { up: true, .. }]
    ));
    assert!(c
        .decide(Input::LinkHeard {
            node: 1,
            link: "b".into()
        })
        .is_empty());
}

#[test]
fn a_failed_self_test_fails_the_member_over() {
    let mut c = Cluster::new(&[1, 2, 3]);
    c.nway("a", &[1, 2, 3]);

    let cmds = c.decide(link_silent(1, "b", SelfTest::Failed));
    let ClusterCommand::SetMemberState {
        state,
        fault,
        reason,
        ..
    } = &cmds[1]
    else {
        panic!("{cmds:?}")
    };
    assert_eq!(
        (*state, *fault),
        (MemberState::Failed, Some(FaultKind::Hang))
    );
    assert!(reason.contains("self-test over link a failed"), "{reason}");
    assert_eq!(c.roles("a"), holders(Some(2), Some(3), &[1]));
    assert_eq!(c.epoch("a"), 2);
}

#[test]
fn an_unknown_link_or_node_is_an_error() {
    let mut c = Cluster::new(&[1]);
    let err = c
        .try_decide(link_silent(1, "z", SelfTest::Passed))
        .unwrap_err();
    assert_eq!(
        err,
        PolicyError::UnknownLink {
            node: 1,
            link: "z".into()
        }
    );
    let err = c
        .try_decide(link_silent(9, "a", SelfTest::Passed))
        .unwrap_err();
    assert_eq!(err.to_string(), "unknown node 9");
}
