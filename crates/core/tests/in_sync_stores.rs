//! The in-sync list of a storage set names stores, not only nodes: a node that comes
//! back with another store leaves the list (with an event saying why), a `SetInSync`
//! is a compare-and-set on the list its writer saw, and only a member that still has
//! the store the list recorded may become Primary.

use keel_core::{
    BootType, ClusterCommand, ClusterError, ClusterState, Composition, Epoch, EventKind, LinkAddr,
    Member, MemberRef, MemberState, NodeId, SetKind, SetSpec, StoreId,
};
use std::collections::BTreeMap;

fn member(id: NodeId, store: u128) -> Member {
    Member {
        id,
        site: "a".into(),
        links: vec![LinkAddr {
            name: "a".into(),
            ip: format!("127.0.1.{id}").parse().unwrap(),
        }],
        rpc_port: 7000,
        admin_port: 7001,
        heartbeat_port: 7002,
        roles: Default::default(),
        state: MemberState::Up,
        drained: false,
        failures: vec![],
        links_down: Default::default(),
        version: "t".into(),
        protocol: keel_core::PROTOCOL_VERSION,
        pid: 100 + id as u32,
        last_failed_pid: None,
        features: vec![],
        last_boot: None,
        up_since: Some(0),
        store: Some(StoreId(store)),
    }
}

/// Three up members (stores 1001, 1002, 1003) and storage set `st-1` = {1, 2}.
fn cluster() -> ClusterState {
    let mut s = ClusterState::default();
    for id in 1..=3 {
        let r = s.apply(ClusterCommand::AddMember {
            member: member(id, 1000 + id as u128),
            at: 1,
        });
        assert_eq!(r.into_result(), Ok(None));
    }
    let spec = SetSpec {
        id: "st-1".into(),
        kind: SetKind::Storage,
        composition: Composition::NWay,
        members: vec![MemberRef::Node(1), MemberRef::Node(2)],
        health_threshold: 50,
        auto_giveback_ms: None,
    };
    s.apply(ClusterCommand::CreateSet { spec, at: 2 })
        .into_result()
        .unwrap();
    s
}

#[test]
fn a_new_set_records_each_members_store() {
    let s = cluster();
    let set = &s.sets["st-1"];
    assert_eq!(set.in_sync, vec![1, 2]);
    assert_eq!(set.in_sync_store(1), Some(StoreId(1001)));
    assert_eq!(set.in_sync_store(2), Some(StoreId(1002)));
}

#[test]
fn a_member_back_with_a_new_store_leaves_the_in_sync_list_with_an_event() {
    let mut s = cluster();
    // The same store after a restart: nothing changes.
    s.apply(ClusterCommand::MemberBack {
        node: 2,
        boot: BootType::ReturnAfterFailure,
        pid: Some(500),
        store: Some(StoreId(1002)),
        at: 3,
    })
    .into_result()
    .unwrap();
    assert_eq!(s.sets["st-1"].in_sync, vec![1, 2]);
    assert!(!s.events.iter().any(|e| e.kind == EventKind::StoreReplaced));
    // Its disk was wiped: a new store.
    s.apply(ClusterCommand::MemberBack {
        node: 2,
        boot: BootType::ReturnAfterFailure,
        pid: Some(501),
        store: Some(StoreId(77)),
        at: 4,
    })
    .into_result()
    .unwrap();
    let set = &s.sets["st-1"];
    assert_eq!(set.in_sync, vec![1]);
    assert_eq!(set.in_sync_store(2), None);
    assert_eq!(s.members[&2].store, Some(StoreId(77)));
    let ev = s
        .events
        .iter()
        .find(|e| e.kind == EventKind::StoreReplaced)
        .expect("an event says why node 2 left");
    assert_eq!(ev.node, Some(2));
    assert_eq!(ev.set.as_deref(), Some("st-1"));
    assert!(ev.detail.contains("new store"), "{}", ev.detail);
    assert!(
        ev.detail.contains("until it has caught up"),
        "{}",
        ev.detail
    );
}

#[test]
fn an_add_member_with_a_new_store_leaves_the_in_sync_list_too() {
    let mut s = cluster();
    s.apply(ClusterCommand::AddMember {
        member: member(2, 88),
        at: 5,
    })
    .into_result()
    .unwrap();
    assert_eq!(s.sets["st-1"].in_sync, vec![1]);
    assert!(s.events.iter().any(|e| e.kind == EventKind::StoreReplaced));
}

#[test]
fn set_in_sync_is_a_compare_and_set_on_the_list_the_writer_saw() {
    let mut s = cluster();
    let set = "st-1".to_string();
    // Two shrinks computed from the same list [1, 2]: the second must be refused.
    let shrink = |expected: Vec<NodeId>, in_sync: Vec<NodeId>| ClusterCommand::SetInSync {
        set: set.clone(),
        expected_epoch: Epoch(1),
        expected_in_sync: expected,
        in_sync,
        stores: BTreeMap::new(),
        at: 6,
    };
    s.apply(shrink(vec![1, 2], vec![1])).into_result().unwrap();
    let refused = s.apply(shrink(vec![1, 2], vec![1, 2])).into_result();
    assert_eq!(
        refused,
        Err(ClusterError::InSyncChanged {
            set: set.clone(),
            expected: vec![1, 2],
            current: vec![1],
        })
    );
    assert_eq!(s.sets["st-1"].in_sync, vec![1]);
    // Order does not matter: the list is compared as a set of nodes.
    s.apply(shrink(vec![1], vec![1, 2])).into_result().unwrap();
    s.apply(shrink(vec![2, 1], vec![1])).into_result().unwrap();
}

#[test]
fn a_node_rejoins_with_the_store_it_caught_up_on_or_not_at_all() {
    let mut s = cluster();
    s.apply(ClusterCommand::MemberBack {
        node: 2,
        boot: BootType::ReturnAfterFailure,
        pid: Some(501),
        store: Some(StoreId(77)),
        at: 4,
    })
    .into_result()
    .unwrap();
    let grow = |store: u128| ClusterCommand::SetInSync {
        set: "st-1".into(),
        expected_epoch: Epoch(1),
        expected_in_sync: vec![1],
        in_sync: vec![1, 2],
        stores: [(2, StoreId(store))].into_iter().collect(),
        at: 7,
    };
    // Caught up on an older store than the one it has now: refused.
    assert_eq!(
        s.apply(grow(1002)).into_result(),
        Err(ClusterError::StoreChanged {
            node: 2,
            presented: StoreId(1002),
            current: StoreId(77),
        })
    );
    s.apply(grow(77)).into_result().unwrap();
    assert_eq!(s.sets["st-1"].in_sync_store(2), Some(StoreId(77)));
}

#[test]
fn promotion_is_refused_to_a_member_whose_store_was_replaced() {
    let mut s = cluster();
    // A replica of the state in which node 2's new store is recorded but the list
    // still names it (the state machine never leaves it so; the check stands alone).
    s.members.get_mut(&2).unwrap().store = Some(StoreId(99));
    let set = s.sets["st-1"].clone();
    assert!(set.in_sync_allows(&MemberRef::Node(2)), "on the list");
    assert!(
        !s.in_sync_allows(&set, &MemberRef::Node(2)),
        "not that store"
    );
    assert!(s.in_sync_allows(&set, &MemberRef::Node(1)));
    let refused = s
        .apply(ClusterCommand::AssignRoles {
            set: "st-1".into(),
            expected_epoch: Epoch(1),
            primary: Some(MemberRef::Node(2)),
            secondary: Some(MemberRef::Node(1)),
            alternates: vec![],
            reason: "test".into(),
            at: 8,
        })
        .into_result();
    assert!(
        matches!(refused, Err(ClusterError::NotEligible { node: 2, .. })),
        "{refused:?}"
    );
    assert_eq!(s.sets["st-1"].primary, Some(MemberRef::Node(1)));
}

#[test]
fn an_empty_in_sync_list_lets_nobody_lead_a_storage_set() {
    let mut s = cluster();
    let set = s.sets.get_mut("st-1").unwrap();
    set.in_sync.clear();
    set.in_sync_stores.clear();
    let set = s.sets["st-1"].clone();
    assert!(!s.in_sync_allows(&set, &MemberRef::Node(1)));
}

#[test]
fn store_ids_print_and_parse_as_32_hex_digits() {
    let id = StoreId(0xabc);
    assert_eq!(id.to_string(), "00000000000000000000000000000abc");
    assert_eq!(id.to_string().parse::<StoreId>(), Ok(id));
    assert!("xyz".parse::<StoreId>().is_err());
    assert_ne!(StoreId::random(), StoreId::random());
    let json = serde_json::to_string(&id).unwrap();
    assert_eq!(serde_json::from_str::<StoreId>(&json).unwrap(), id);
}

#[test]
fn commands_and_state_with_stores_survive_the_log_encoding() {
    let mut s = cluster();
    let cmd = ClusterCommand::SetInSync {
        set: "st-1".into(),
        expected_epoch: Epoch(1),
        expected_in_sync: vec![1, 2],
        in_sync: vec![1, 2],
        stores: [(2, StoreId(1002))].into_iter().collect(),
        at: 9,
    };
    let json = serde_json::to_vec(&cmd).unwrap();
    let back: ClusterCommand = serde_json::from_slice(&json).unwrap();
    assert_eq!(back, cmd);
    let back = ClusterCommand::MemberBack {
        node: 2,
        boot: BootType::Restart,
        pid: None,
        store: Some(StoreId(5)),
        at: 1,
    };
    let json = serde_json::to_vec(&back).unwrap();
    assert_eq!(
        serde_json::from_slice::<ClusterCommand>(&json).unwrap(),
        back
    );
    s.apply(cmd).into_result().unwrap();
    let json = serde_json::to_vec(&s).unwrap();
    let state: ClusterState = serde_json::from_slice(&json).unwrap();
    assert_eq!(
        state.sets["st-1"].in_sync_stores,
        s.sets["st-1"].in_sync_stores
    );
    assert_eq!(state.members[&2].store, Some(StoreId(1002)));
}

#[test]
fn a_first_store_report_on_a_list_that_recorded_none_is_adopted() {
    let mut s = cluster();
    // As written before stores had identities: no store on the member or the list.
    s.members.get_mut(&2).unwrap().store = None;
    s.sets.get_mut("st-1").unwrap().in_sync_stores.remove(&2);
    s.apply(ClusterCommand::MemberBack {
        node: 2,
        boot: BootType::Restart,
        pid: None,
        store: Some(StoreId(5)),
        at: 3,
    })
    .into_result()
    .unwrap();
    assert_eq!(s.sets["st-1"].in_sync, vec![1, 2]);
    assert_eq!(s.sets["st-1"].in_sync_store(2), Some(StoreId(5)));
    // From then on another store is a replaced one.
    s.apply(ClusterCommand::MemberBack {
        node: 2,
        boot: BootType::Restart,
        pid: None,
        store: Some(StoreId(6)),
        at: 4,
    })
    .into_result()
    .unwrap();
    assert_eq!(s.sets["st-1"].in_sync, vec![1]);
}
