//! Corrective action after a member failure: promotion, epochs, characterization.

use super::fixture::*;
use crate::{Input, Probe};
use keel_core::{ClusterCommand, Composition, EventKind, MemberState};

#[test]
fn crash_of_the_primary_promotes_the_secondary_and_bumps_the_epoch() {
    let mut c = Cluster::new(&[1, 2, 3]);
    c.nway("a", &[1, 2, 3]);
    assert_eq!(c.roles("a"), holders(Some(1), Some(2), &[3]));
    assert_eq!(c.epoch("a"), 1);

    tracing::info!("--- the primary's process dies");
    let cmds = c.decide(crash(1));

    assert_eq!(recorded(&cmds), vec![EventKind::FailureDetected]);
    let ClusterCommand::RecordEvent { event } = &cmds[0] else {
        panic!("{cmds:?}")
    };
    assert!(
        event.detail.starts_with("fault=crash silent 312ms"),
        "{}",
        event.detail
    );
    assert_eq!(states(&cmds), vec![(1, MemberState::Failed)]);
    let ClusterCommand::AssignRoles {
        expected_epoch,
        reason,
        ..
    } = assignments(&cmds)[0]
    else {
        unreachable!()
    };
    assert_eq!(expected_epoch.0, 1);
    assert!(reason.contains("primary 1 failed (crash)"), "{reason}");
    assert_eq!(c.roles("a"), holders(Some(2), Some(3), &[1]));
    assert_eq!(c.epoch("a"), 2);
}

#[test]
fn the_first_eligible_alternate_becomes_secondary() {
    let mut c = Cluster::new(&[1, 2, 3, 4, 5]);
    c.nway("a", &[1, 2, 3, 4, 5]);

    tracing::info!("--- alternate 3 fails first: nothing changes but its state");
    let cmds = c.decide(crash(3));
    assert!(assignments(&cmds).is_empty());

    tracing::info!("--- the secondary fails: 4, the first eligible alternate, replaces it");
    let cmds = c.decide(crash(2));
    let ClusterCommand::AssignRoles { reason, .. } = assignments(&cmds)[0] else {
        unreachable!()
    };
    assert!(reason.contains("secondary 2 failed (crash)"), "{reason}");
    assert_eq!(c.roles("a"), holders(Some(1), Some(4), &[3, 5, 2]));
    assert_eq!(c.epoch("a"), 1, "a new secondary does not change the epoch");
}

#[test]
fn silence_without_a_refused_port_is_a_hang() {
    for probe in [Probe::NoAnswer, Probe::NotProbed] {
        let mut c = Cluster::new(&[1, 2]);
        c.nway("a", &[1, 2]);
        let cmds = c.decide(Input::Silent {
            node: 1,
            silent_ms: 400,
            probe,
        });
        let ClusterCommand::SetMemberState { fault, .. } = &cmds[1] else {
            panic!("{cmds:?}")
        };
        assert_eq!(*fault, Some(keel_core::FaultKind::Hang));
        assert_eq!(c.roles("a"), holders(Some(2), None, &[1]));
    }
}

#[test]
fn short_silence_makes_a_member_suspect_and_changes_no_role() {
    let mut c = Cluster::new(&[1, 2, 3]);
    c.nway("a", &[1, 2, 3]);

    tracing::info!("--- below the suspect timeout: nothing");
    assert!(c
        .decide(Input::Silent {
            node: 1,
            silent_ms: 100,
            probe: Probe::NotProbed
        })
        .is_empty());

    tracing::info!("--- past it: suspect, and a tick leaves the set alone");
    let cmds = c.decide(Input::Silent {
        node: 1,
        silent_ms: 160,
        probe: Probe::NotProbed,
    });
    assert_eq!(states(&cmds), vec![(1, MemberState::Suspect)]);
    assert!(c.decide(Input::Tick).is_empty());
    assert_eq!(c.roles("a"), holders(Some(1), Some(2), &[3]));

    tracing::info!("--- heard again: up");
    assert_eq!(states(&c.decide(heard(1))), vec![(1, MemberState::Up)]);
    assert_eq!(c.epoch("a"), 1);
}

#[test]
fn a_suspect_secondary_makes_way_when_the_primary_fails() {
    let mut c = Cluster::new(&[1, 2, 3]);
    c.nway("a", &[1, 2, 3]);
    c.decide(Input::Silent {
        node: 2,
        silent_ms: 200,
        probe: Probe::NotProbed,
    });

    c.decide(crash(1));
    assert_eq!(c.roles("a"), holders(Some(3), None, &[1, 2]));
}

#[test]
fn a_failure_in_several_sets_applies_cleanly_in_one_batch() {
    let mut c = Cluster::new(&[1, 2, 3, 4]);
    c.nway("a", &[2, 1, 3]);
    c.nway("b", &[1, 2, 4]);
    c.nway("c", &[3, 4, 2]);

    tracing::info!("--- node 2 is primary of a, secondary of b, alternate of c");
    let cmds = c.decide(crash(2));
    assert_eq!(assignments(&cmds).len(), 2, "{cmds:?}");
    assert_eq!(c.roles("a"), holders(Some(1), Some(3), &[2]));
    assert_eq!(c.roles("b"), holders(Some(1), Some(4), &[2]));
    assert_eq!(c.roles("c"), holders(Some(3), Some(4), &[2]));
    assert_eq!((c.epoch("a"), c.epoch("b"), c.epoch("c")), (2, 1, 1));
}

#[test]
fn with_nobody_left_the_primary_slot_is_emptied_and_fenced() {
    let mut c = Cluster::new(&[1, 2]);
    c.nway("a", &[1, 2]);
    c.decide(crash(1));
    c.decide(crash(2));
    assert_eq!(c.roles("a"), holders(None, None, &[1, 2]));
    assert_eq!(c.epoch("a"), 3);
}

#[test]
fn a_single_set_never_changes_roles() {
    let mut c = Cluster::new(&[1]);
    c.set("solo", Composition::Single, vec![n(1)], None);

    tracing::info!("--- the only member crashes: the failure is recorded, the roles stay");
    let cmds = c.decide(crash(1));
    assert_eq!(recorded(&cmds), vec![EventKind::FailureDetected]);
    assert!(assignments(&cmds).is_empty());
    assert!(c.decide(Input::Tick).is_empty());
    assert_eq!(c.roles("solo"), holders(Some(1), None, &[]));

    tracing::info!("--- it comes back: still its primary, same epoch");
    assert!(assignments(&c.decide(heard(1))).is_empty());
    assert_eq!(c.epoch("solo"), 1);
}

#[test]
fn a_failed_member_heard_again_is_not_failed_twice() {
    let mut c = Cluster::new(&[1, 2]);
    c.nway("a", &[1, 2]);
    c.decide(crash(1));
    assert!(c.decide(crash(1)).is_empty());
    assert_eq!(c.state.members[&1].failures.len(), 1);
}
