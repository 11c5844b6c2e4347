//! The event log says each thing once: a member reported back while it is already up
//! (the same process, a repeated boot report) records no second `node_back`, and
//! keeps its `up_since`.

use keel_core::{
    BootType, ClusterCommand, ClusterState, EventKind, FaultKind, Member, MemberState,
};

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
        "pid": 40,
    }))
    .expect("a member")
}

fn back(st: &mut ClusterState, pid: Option<u32>, at: i64) {
    let r = st.apply(ClusterCommand::MemberBack {
        node: 1,
        boot: BootType::ReturnAfterFailure,
        pid,
        store: None,
        at,
    });
    assert!(r.into_result().is_ok());
}

fn node_backs(st: &ClusterState) -> usize {
    st.events
        .iter()
        .filter(|e| e.kind == EventKind::NodeBack)
        .count()
}

#[test]
fn a_failed_member_coming_back_is_recorded_once_however_often_it_is_reported() {
    let mut st = ClusterState::default();
    assert!(st
        .apply(ClusterCommand::AddMember {
            member: member(1),
            at: 0,
        })
        .into_result()
        .is_ok());
    assert!(st
        .apply(ClusterCommand::SetMemberState {
            node: 1,
            state: MemberState::Failed,
            fault: Some(FaultKind::Crash),
            reason: "killed".into(),
            at: 10,
        })
        .into_result()
        .is_ok());
    back(&mut st, Some(41), 20);
    back(&mut st, None, 30);
    back(&mut st, Some(41), 40);
    assert_eq!(node_backs(&st), 1, "{:?}", st.events);
    assert_eq!(st.members[&1].up_since, Some(20));
    // A new process is news.
    back(&mut st, Some(42), 50);
    assert_eq!(node_backs(&st), 2);
}
