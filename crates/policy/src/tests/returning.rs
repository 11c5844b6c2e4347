//! Restart and re-integration: a returning member waits as an Alternate.

use super::fixture::*;
use crate::Input;
use keel_core::{BootType, MemberState};

fn back(node: u64, boot: BootType) -> Input {
    Input::Back {
        node,
        boot,
        pid: 0,
        store: None,
    }
}

#[test]
fn a_returning_member_becomes_an_alternate_and_never_primary_by_itself() {
    let mut c = Cluster::new(&[1, 2, 3, 4]);
    c.nway("a", &[1, 2, 3, 4]);

    tracing::info!("--- the home member 1 crashes");
    c.decide(crash(1));
    assert_eq!(c.roles("a"), holders(Some(2), Some(3), &[4, 1]));

    tracing::info!("--- it restarts: up, last alternate, no new epoch");
    let cmds = c.decide(back(1, BootType::ReturnAfterFailure));
    assert!(assignments(&cmds).is_empty(), "{cmds:?}");
    assert_eq!(c.member_state(1), MemberState::Up);
    assert_eq!(c.roles("a"), holders(Some(2), Some(3), &[4, 1]));

    tracing::info!("--- ticks do not give it back (no auto-giveback)");
    c.advance(3_600_000);
    assert!(c.decide(Input::Tick).is_empty());
    assert_eq!(c.epoch("a"), 2);

    tracing::info!("--- the primary fails: the secondary, not the home member, takes over");
    c.decide(crash(2));
    assert_eq!(c.roles("a"), holders(Some(3), Some(4), &[1, 2]));
}

#[test]
fn a_returning_member_moves_behind_the_other_alternates() {
    let mut c = Cluster::new(&[1, 2, 3, 4, 5]);
    c.nway("a", &[1, 2, 3, 4, 5]);
    c.decide(crash(3));
    c.decide(heard(3));
    assert_eq!(c.roles("a"), holders(Some(1), Some(2), &[4, 5, 3]));
}

#[test]
fn a_returning_member_fills_an_empty_secondary_slot() {
    let mut c = Cluster::new(&[1, 2]);
    c.nway("a", &[1, 2]);
    c.decide(crash(2));
    assert_eq!(c.roles("a"), holders(Some(1), None, &[2]));

    c.decide(back(2, BootType::Restart));
    assert_eq!(c.roles("a"), holders(Some(1), Some(2), &[]));
    assert_eq!(c.epoch("a"), 1);
}

#[test]
fn a_returning_member_is_primary_only_when_nobody_else_is_eligible() {
    let mut c = Cluster::new(&[1, 2, 3]);
    c.nway("a", &[1, 2, 3]);
    c.decide(crash(1));
    c.decide(crash(2));
    c.decide(crash(3));
    assert_eq!(c.roles("a"), holders(None, None, &[1, 2, 3]));

    c.decide(back(2, BootType::ReturnAfterFailure));
    assert_eq!(c.roles("a"), holders(Some(2), None, &[1, 3]));
    c.decide(heard(1));
    assert_eq!(c.roles("a"), holders(Some(2), Some(1), &[3]));
}

#[test]
fn a_primary_that_restarted_unnoticed_hands_over_its_role() {
    let mut c = Cluster::new(&[1, 2, 3]);
    c.nway("a", &[1, 2, 3]);

    tracing::info!("--- 1 restarts faster than the failure timeout and reports back");
    c.decide(back(1, BootType::Restart));
    assert_eq!(c.roles("a"), holders(Some(2), Some(3), &[1]));
    assert_eq!(c.epoch("a"), 2);
}

#[test]
fn a_quarantined_member_that_restarts_stays_quarantined() {
    let mut c = Cluster::new(&[1, 2]);
    c.nway("a", &[1, 2]);
    c.state.settings.failure_limit = 1;
    c.decide(crash(1));
    assert_eq!(c.member_state(1), MemberState::Quarantined);

    let cmds = c.decide(back(1, BootType::ReturnAfterFailure));
    assert_eq!(cmds.len(), 1, "MemberBack only: {cmds:?}");
    assert_eq!(c.member_state(1), MemberState::Quarantined);
    assert!(c.decide(heard(1)).is_empty());
}

#[test]
fn a_restart_faster_than_detection_is_a_failure_counted_once() {
    let mut c = Cluster::new(&[1, 2, 3]);
    c.nway("a", &[1, 2, 3]);
    c.apply(keel_core::ClusterCommand::AddMember {
        member: pid(member(1), 100),
        at: 0,
    });

    tracing::info!("--- process 100 of the Primary dies; process 101 reports before detection");
    let cmds = c.decide(Input::Back {
        node: 1,
        boot: BootType::ReturnAfterFailure,
        pid: 101,
        store: None,
    });
    assert!(
        recorded(&cmds).contains(&keel_core::EventKind::FailureDetected),
        "{cmds:?}"
    );
    assert_eq!(c.roles("a"), holders(Some(2), Some(3), &[1]));
    assert_eq!(c.state.members[&1].failures.len(), 1);

    tracing::info!("--- the same report again (a retried join) counts nothing");
    c.apply(keel_core::ClusterCommand::AddMember {
        member: pid(member(1), 101),
        at: 0,
    });
    let again = c.decide(Input::Back {
        node: 1,
        boot: BootType::ReturnAfterFailure,
        pid: 101,
        store: None,
    });
    assert!(
        !recorded(&again).contains(&keel_core::EventKind::FailureDetected),
        "{again:?}"
    );
    assert_eq!(c.state.members[&1].failures.len(), 1);
}

#[test]
fn a_death_noticed_by_silence_is_not_counted_again_by_the_boot_report() {
    let mut c = Cluster::new(&[1, 2, 3]);
    c.nway("a", &[1, 2, 3]);
    c.apply(keel_core::ClusterCommand::AddMember {
        member: pid(member(1), 100),
        at: 0,
    });

    tracing::info!(
        "--- silence fails process 100; heartbeats of process 101 bring the member back"
    );
    c.decide(crash(1));
    let back = Input::Back {
        node: 1,
        boot: BootType::ReturnAfterFailure,
        pid: 101,
        store: None,
    };
    let cmds = c.decide(back.clone());
    assert!(
        !recorded(&cmds).contains(&keel_core::EventKind::FailureDetected),
        "{cmds:?}"
    );
    assert_eq!(c.member_state(1), MemberState::Up);

    tracing::info!("--- then process 101's own boot report arrives: no second failure");
    let cmds = c.decide(back);
    assert!(
        !recorded(&cmds).contains(&keel_core::EventKind::FailureDetected),
        "{cmds:?}"
    );
    assert_eq!(c.state.members[&1].failures.len(), 1);
}

#[test]
fn a_process_that_failed_resumed_and_then_died_fails_again() {
    let mut c = Cluster::new(&[1, 2, 3]);
    c.nway("a", &[1, 2, 3]);
    c.apply(keel_core::ClusterCommand::AddMember {
        member: pid(member(1), 100),
        at: 0,
    });

    tracing::info!("--- process 100 hangs (failed), then resumes (heard again)");
    c.decide(crash(1));
    c.decide(heard(1));
    assert_eq!(c.member_state(1), MemberState::Up);

    tracing::info!("--- then it dies and process 101 reports before the silence is noticed");
    let cmds = c.decide(Input::Back {
        node: 1,
        boot: BootType::ReturnAfterFailure,
        pid: 101,
        store: None,
    });
    assert!(
        recorded(&cmds).contains(&keel_core::EventKind::FailureDetected),
        "{cmds:?}"
    );
    assert_eq!(c.state.members[&1].failures.len(), 2);
    assert_eq!(c.state.members[&1].pid, 101);
}

fn pid(mut m: keel_core::Member, pid: u32) -> keel_core::Member {
    m.pid = pid;
    m
}

#[test]
fn a_storage_primary_whose_store_was_replaced_steps_down_to_an_in_sync_member() {
    use keel_core::{ClusterCommand, Composition, SetKind, SetSpec, StoreId};
    let mut c = Cluster::new(&[1, 2]);
    let report = |c: &mut Cluster, node: u64, store: u128| {
        c.apply(ClusterCommand::MemberBack {
            node,
            boot: BootType::ReturnAfterFailure,
            pid: None,
            store: Some(StoreId(store)),
            at: c.now,
        });
    };
    report(&mut c, 1, 10);
    report(&mut c, 2, 20);
    let spec = SetSpec {
        id: "st-1".into(),
        kind: SetKind::Storage,
        composition: Composition::NWay,
        members: vec![n(1), n(2)],
        health_threshold: 50,
        auto_giveback_ms: None,
    };
    c.apply(ClusterCommand::CreateSet { spec, at: c.now });
    assert_eq!(c.roles("st-1"), holders(Some(1), Some(2), &[]));

    tracing::info!("--- node 1 restarts on a wiped disk before anyone saw it fail");
    report(&mut c, 1, 11);
    assert_eq!(c.state.sets["st-1"].in_sync, vec![2]);

    tracing::info!("--- arbitration: the in-sync member 2 takes over, epoch + 1");
    let epoch = c.epoch("st-1");
    c.decide(Input::Tick);
    assert_eq!(c.roles("st-1").0, Some(n(2)));
    assert_eq!(c.epoch("st-1"), epoch + 1);
}
