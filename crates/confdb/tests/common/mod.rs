//! Helpers shared by the configuration database tests: commands to write and log setup.

#![allow(dead_code)]

pub mod memnet;

use keel_core::{
    ClusterCommand, Event, EventKind, LinkAddr, Member, MemberState, NodeId, NodeRole,
};

pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "warn,keel_confdb=info".into()),
        )
        .with_test_writer()
        .try_init();
}

pub fn member(id: NodeId) -> Member {
    Member {
        id,
        site: "a".into(),
        links: vec![LinkAddr {
            name: "a".into(),
            ip: format!("127.0.1.{id}").parse().expect("valid ip"),
        }],
        rpc_port: 7000,
        admin_port: 7001,
        heartbeat_port: 7002,
        roles: [NodeRole::Control].into_iter().collect(),
        state: MemberState::Up,
        drained: false,
        failures: vec![],
        links_down: Default::default(),
        version: "0.1.0".into(),
        protocol: keel_core::PROTOCOL_VERSION,
        pid: 0,
        last_failed_pid: None,
        features: vec![],
        last_boot: None,
        up_since: None,
        store: None,
    }
}

pub fn add_member(id: NodeId) -> ClusterCommand {
    ClusterCommand::AddMember {
        member: member(id),
        at: 1_700_000_000_000 + id as i64,
    }
}

pub fn record_event(n: u64) -> ClusterCommand {
    ClusterCommand::RecordEvent {
        event: Event::new(1_700_000_000_000 + n as i64, EventKind::TakenOver)
            .detail(format!("event {n}")),
    }
}
