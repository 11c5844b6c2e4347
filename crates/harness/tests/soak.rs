//! A randomized soak: on 5 nodes with two sets, one fault at a time (crash and
//! restart, pause and resume, isolation, a partition, a cut cable, a locally cut
//! link, a slow node) on a random node for a random while, then the cluster settles.
//! The sequence is fixed by a seed (`KEEL_SOAK_SEED` to replay another); the checker
//! must stay clean and epochs only grow.

mod common;

use anyhow::ensure;
use common::*;
use keel_core::{Epoch, MemberState, NodeId};
use keel_harness::{wait_until, Cluster};
use keel_node::admin_api::AdminRequest;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::time::{Duration, Instant};
use tracing::info;

/// How long faults are injected for.
const SOAK: Duration = Duration::from_secs(20);
/// How long the cluster may take to settle after a fault.
const SETTLE: Duration = Duration::from_secs(15);
const SEED: u64 = 0x6b65_656c;

const SETS: [(&str, [NodeId; 5]); 2] = [("s1", [1, 2, 3, 4, 5]), ("s2", [4, 5, 1, 2, 3])];

#[derive(Debug, Clone, Copy)]
enum Fault {
    Crash,
    Pause,
    Isolate,
    PartitionAlone,
    CutCable(&'static str),
    CutBothCables,
    CutLocally(&'static str),
    Slow,
}

const FAULTS: [Fault; 9] = [
    Fault::Crash,
    Fault::Pause,
    Fault::Isolate,
    Fault::PartitionAlone,
    Fault::CutCable("a"),
    Fault::CutCable("b"),
    Fault::CutBothCables,
    Fault::CutLocally("b"),
    Fault::Slow,
];

async fn inject(c: &mut Cluster, fault: Fault, n: NodeId) -> anyhow::Result<()> {
    match fault {
        Fault::Crash => c.crash(n).await?,
        Fault::Pause => c.pause(n).await?,
        Fault::Isolate => c.isolate(n),
        Fault::PartitionAlone => c.partition(&[n]),
        Fault::CutCable(link) => c.cut_link(n, link),
        Fault::CutBothCables => {
            c.cut_link(n, "a");
            c.cut_link(n, "b");
        }
        Fault::CutLocally(link) => c.cut_link_locally(n, link)?,
        Fault::Slow => c.set_node_delay(n, Duration::from_millis(40)),
    }
    Ok(())
}

async fn undo(c: &mut Cluster, fault: Fault, n: NodeId) -> anyhow::Result<()> {
    match fault {
        Fault::Crash => c.restart(n).await?,
        Fault::Pause => c.resume(n)?,
        Fault::Isolate | Fault::PartitionAlone => c.heal(),
        Fault::CutCable(link) => c.restore_link(n, link),
        Fault::CutBothCables => {
            c.restore_link(n, "a");
            c.restore_link(n, "b");
        }
        Fault::CutLocally(link) => c.restore_link_locally(n, link)?,
        Fault::Slow => c.set_node_delay(n, Duration::ZERO),
    }
    Ok(())
}

/// Waits until every node is up again and every set has an acting Primary; clears
/// members that reached the failure limit, as an operator would.
async fn settle(c: &Cluster) -> anyhow::Result<()> {
    wait_until("a leader, every node up or quarantined", SETTLE, || {
        c.leader().is_some()
            && c.read(|s| {
                s.members
                    .values()
                    .all(|m| matches!(m.state, MemberState::Up | MemberState::Quarantined))
            })
    })
    .await?;
    let quarantined: Vec<NodeId> = c.read(|s| {
        s.members
            .values()
            .filter(|m| m.state == MemberState::Quarantined)
            .map(|m| m.id)
            .collect()
    });
    for n in quarantined {
        info!("--- node {n} is quarantined: the operator clears it");
        c.admin(AdminRequest::Clear { node: n }).await?;
    }
    c.wait_ready(SETTLE).await?;
    for (set, _) in SETS {
        c.wait_acting(set, SETTLE).await?;
    }
    Ok(())
}

fn epochs(c: &Cluster) -> Vec<Epoch> {
    SETS.iter().map(|(set, _)| c.epoch(set)).collect()
}

#[tokio::test]
async fn a_randomized_soak_keeps_every_invariant() -> anyhow::Result<()> {
    init_tracing();
    let _one = serial().await;
    let seed = std::env::var("KEEL_SOAK_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(SEED);
    info!(seed, "--- start 5 nodes and two sets");
    let mut c = Cluster::start(5).await?;
    for (set, members) in SETS {
        c.create_set(set, &members).await?;
    }
    let checker = c.checker()?;
    let initial = epochs(&c);
    let mut last = initial.clone();
    let mut rng = StdRng::seed_from_u64(seed);
    let started = Instant::now();
    let mut round = 0;
    while started.elapsed() < SOAK {
        round += 1;
        let node = rng.gen_range(1..=5);
        let fault = FAULTS[rng.gen_range(0..FAULTS.len())];
        let hold = Duration::from_millis(rng.gen_range(300..2000));
        info!("--- round {round}: {fault:?} on node {node} for {hold:?}");
        inject(&mut c, fault, node).await?;
        // The fault lasts this long: part of the scenario, not a wait for a condition.
        tokio::time::sleep(hold).await;
        undo(&mut c, fault, node).await?;
        settle(&c).await?;
        let now = epochs(&c);
        ensure!(
            now.iter().zip(&last).all(|(n, l)| n >= l),
            "epochs went back: {last:?} -> {now:?}"
        );
        last = now;
    }
    info!(rounds = round, ?initial, ?last, "--- soak done");
    c.log_events(0);
    ensure!(round >= 3, "only {round} rounds in {SOAK:?}");
    finish(c, checker).await
}
