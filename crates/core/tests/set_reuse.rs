//! A deleted set's id is never reused below an epoch its members have seen: the state
//! machine remembers the last epoch of every deleted set, and a set re-created under
//! that id starts above it.

use keel_core::{
    ClusterCommand, ClusterError, ClusterResponse, ClusterState, Composition, Epoch, Member,
    MemberRef, SetKind, SetSpec,
};

/// An up member with storage and gateway roles (built from its JSON form, so fields
/// with defaults need not be named).
fn member(id: u64) -> Member {
    serde_json::from_value(serde_json::json!({
        "id": id,
        "site": "a",
        "links": [{"name": "a", "ip": format!("127.0.1.{id}")}],
        "rpc_port": 7000,
        "admin_port": 7001,
        "heartbeat_port": 7002,
        "roles": ["storage", "gateway"],
        "state": "up",
        "version": "0.1.0",
        "protocol": 1,
    }))
    .expect("a member")
}

fn cluster(nodes: &[u64]) -> ClusterState {
    let mut st = ClusterState::default();
    for n in nodes {
        let r = st.apply(ClusterCommand::AddMember {
            member: member(*n),
            at: 0,
        });
        assert!(r.into_result().is_ok());
    }
    st
}

fn storage_set(id: &str, members: &[u64]) -> SetSpec {
    SetSpec {
        id: id.into(),
        kind: SetKind::Storage,
        composition: Composition::NWay,
        members: members.iter().map(|n| MemberRef::Node(*n)).collect(),
        health_threshold: 50,
        auto_giveback_ms: None,
    }
}

fn create(st: &mut ClusterState, spec: SetSpec) -> Result<Option<Epoch>, ClusterError> {
    st.apply(ClusterCommand::CreateSet { spec, at: 1 })
        .into_result()
}

/// Moves the Primary of `set` to the next member `times` times (each bumps the epoch).
fn fail_over(st: &mut ClusterState, set: &str, times: usize) {
    for _ in 0..times {
        let s = st.sets[set].clone();
        let r = st.apply(ClusterCommand::AssignRoles {
            set: set.into(),
            expected_epoch: s.epoch,
            primary: s.secondary.clone(),
            secondary: s.primary.clone(),
            alternates: s.alternates.clone(),
            reason: "test".into(),
            at: 2,
        });
        assert!(matches!(r, ClusterResponse::Epoch { .. }), "{r:?}");
    }
}

#[test]
fn a_re_created_set_starts_above_the_deleted_sets_last_epoch() {
    let mut st = cluster(&[1, 2]);
    assert_eq!(
        create(&mut st, storage_set("st-1", &[1, 2])),
        Ok(Some(Epoch(1)))
    );
    fail_over(&mut st, "st-1", 4);
    assert_eq!(st.sets["st-1"].epoch, Epoch(5));

    let r = st.apply(ClusterCommand::DeleteSet {
        set: "st-1".into(),
        at: 3,
    });
    assert_eq!(r, ClusterResponse::Ok);
    assert_eq!(st.retired_epochs.get("st-1"), Some(&Epoch(5)));

    assert_eq!(
        create(&mut st, storage_set("st-1", &[2, 1])),
        Ok(Some(Epoch(6)))
    );
    assert_eq!(st.sets["st-1"].epoch, Epoch(6));
    // Another id is not affected.
    assert_eq!(
        create(&mut st, storage_set("st-2", &[2, 1])),
        Ok(Some(Epoch(1)))
    );
}

#[test]
fn the_memory_survives_several_deletions_and_a_snapshot() {
    let mut st = cluster(&[1, 2]);
    create(&mut st, storage_set("st-1", &[1, 2])).expect("create");
    fail_over(&mut st, "st-1", 2); // epoch 3
    st.apply(ClusterCommand::DeleteSet {
        set: "st-1".into(),
        at: 3,
    });
    assert_eq!(
        create(&mut st, storage_set("st-1", &[1, 2])),
        Ok(Some(Epoch(4)))
    );
    st.apply(ClusterCommand::DeleteSet {
        set: "st-1".into(),
        at: 4,
    });
    assert_eq!(st.retired_epochs.get("st-1"), Some(&Epoch(4)));

    // The state as a snapshot carries it (and one written before it existed reads).
    let json = serde_json::to_value(&st).expect("to json");
    let mut back: ClusterState = serde_json::from_value(json.clone()).expect("from json");
    assert_eq!(back.retired_epochs, st.retired_epochs);
    assert_eq!(
        create(&mut back, storage_set("st-1", &[1, 2])),
        Ok(Some(Epoch(5)))
    );
    let mut old = json;
    old.as_object_mut()
        .expect("an object")
        .remove("retired_epochs");
    let old: ClusterState = serde_json::from_value(old).expect("an older snapshot");
    assert!(old.retired_epochs.is_empty());
    // Without events too (what decision logic works on).
    assert_eq!(st.without_events().retired_epochs, st.retired_epochs);
}

#[test]
fn a_re_created_set_without_an_eligible_member_stays_at_the_retired_epoch() {
    let mut st = cluster(&[1, 2]);
    create(&mut st, storage_set("st-1", &[1, 2])).expect("create");
    fail_over(&mut st, "st-1", 2); // epoch 3
    st.apply(ClusterCommand::DeleteSet {
        set: "st-1".into(),
        at: 3,
    });
    for n in [1, 2] {
        st.apply(ClusterCommand::SetMemberState {
            node: n,
            state: keel_core::MemberState::Failed,
            fault: None,
            reason: "test".into(),
            at: 4,
        });
    }
    // Nobody can act in epoch 3 (no Primary); the first assignment moves above it.
    assert_eq!(
        create(&mut st, storage_set("st-1", &[1, 2])),
        Ok(Some(Epoch(3)))
    );
    assert!(st.sets["st-1"].primary.is_none());
}

#[test]
fn deleting_an_unknown_set_remembers_nothing() {
    let mut st = cluster(&[1]);
    let r = st.apply(ClusterCommand::DeleteSet {
        set: "nope".into(),
        at: 1,
    });
    assert!(matches!(r, ClusterResponse::Refused { .. }), "{r:?}");
    assert!(st.retired_epochs.is_empty());
}
