//! Shared by the harness's tests: logging, one heavy test at a time, and the checks
//! every test ends with.

#![allow(dead_code)]

use keel_harness::{Cluster, InvariantChecker, Violation};
use std::time::Duration;

/// A deadline for one step of a test (a failover, a restart, a return).
pub const STEP: Duration = Duration::from_secs(10);

pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,openraft=warn,keel_confdb=warn".into()),
        )
        .with_test_writer()
        .try_init();
}

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Runs cluster tests one at a time: each starts several nodes, and two at once on two
/// cores would starve their heartbeats.
pub async fn serial() -> tokio::sync::MutexGuard<'static, ()> {
    SERIAL.lock().await
}

/// Stops the checker and the cluster; fails with every violation found.
pub async fn finish(cluster: Cluster, checker: InvariantChecker) -> anyhow::Result<()> {
    let violations: Vec<Violation> = checker.finish();
    if !violations.is_empty() {
        cluster.log_events(0);
    }
    cluster.shutdown().await;
    if !violations.is_empty() {
        let list: Vec<String> = violations.iter().map(|v| format!("  - {v}")).collect();
        anyhow::bail!("safety invariants violated:\n{}", list.join("\n"));
    }
    Ok(())
}

/// The members of a set in preference order, `first` first, then the others by id.
pub fn members_with_first(cluster: &Cluster, first: keel_core::NodeId) -> Vec<keel_core::NodeId> {
    let mut ids = vec![first];
    ids.extend(cluster.ids().into_iter().filter(|n| *n != first));
    ids
}

/// A node that is not the leader (the highest id that is not).
pub fn not_the_leader(cluster: &Cluster) -> anyhow::Result<keel_core::NodeId> {
    let leader = cluster.leader();
    cluster
        .ids()
        .into_iter()
        .rev()
        .find(|n| Some(*n) != leader)
        .ok_or_else(|| anyhow::anyhow!("every node leads?"))
}

/// Is `node` an Alternate of `set` (on the freshest replica)?
pub fn is_alternate(cluster: &Cluster, set: &str, node: keel_core::NodeId) -> bool {
    cluster
        .set(set)
        .is_some_and(|s| s.alternates.contains(&keel_core::MemberRef::Node(node)))
}
