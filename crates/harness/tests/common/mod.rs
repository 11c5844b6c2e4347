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

/// Whether the test set's first Primary is the configuration database leader.
#[allow(dead_code)] // Each test binary uses part of this module.
pub enum PrimaryIs {
    Leader,
    NotLeader,
}

/// Starts 3 nodes and set `s` whose first Primary is (or is not) the leader; returns
/// the cluster, that Primary and the set's epoch.
#[allow(dead_code)]
pub async fn three_nodes_and_a_set(
    primary: PrimaryIs,
) -> anyhow::Result<(Cluster, keel_core::NodeId, keel_core::Epoch)> {
    let c = Cluster::start(3).await?;
    let want = match primary {
        PrimaryIs::Leader => c.leader().ok_or_else(|| anyhow::anyhow!("no leader"))?,
        PrimaryIs::NotLeader => not_the_leader(&c)?,
    };
    let (first, epoch) = c.create_set("s", &members_with_first(&c, want)).await?;
    anyhow::ensure!(
        first == want,
        "node {want} should be the first Primary, not {first}"
    );
    Ok((c, want, epoch))
}

/// Waits until `node` is up again and an Alternate of `set`.
#[allow(dead_code)]
pub async fn wait_back_as_alternate(
    cluster: &Cluster,
    set: &str,
    node: keel_core::NodeId,
) -> anyhow::Result<()> {
    keel_harness::wait_until("node back up as an Alternate", STEP, || {
        cluster.member_state(node) == Some(keel_core::MemberState::Up)
            && is_alternate(cluster, set, node)
    })
    .await?;
    Ok(())
}
