//! Three configuration database replicas in one process, joined by an in-memory
//! transport that can isolate a node: election, replication, failover of the leader,
//! and a restart that catches up from the node's own directory and a snapshot.

mod common;

use common::memnet::{MemNet, MemTransport};
use common::{add_member, record_event};
use keel_confdb::{recommended_config, AdmissionState, ConfDb, RaftPeer, WriteError, DB_FILE};
use keel_core::{ClusterCommand, ClusterResponse, ClusterState, NodeId};
use openraft::{Config, SnapshotPolicy};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tempfile::TempDir;
use tokio::time::{timeout, Instant};

/// How long any condition may take before the test fails.
const DEADLINE: Duration = Duration::from_secs(20);

struct Cluster {
    net: Arc<MemNet>,
    dirs: HashMap<NodeId, TempDir>,
}

fn test_config() -> Config {
    Config {
        // Snapshot often and keep no log behind it, so a returning node needs a snapshot.
        snapshot_policy: SnapshotPolicy::LogsSinceLast(20),
        max_in_snapshot_log_to_keep: 0,
        purge_batch_size: 1,
        ..recommended_config("keel-test")
    }
}

fn peer(id: NodeId) -> RaftPeer {
    RaftPeer::new([(
        "a".to_string(),
        format!("127.0.1.{id}:7000").parse().expect("addr"),
    )])
}

impl Cluster {
    async fn start(ids: &[NodeId]) -> anyhow::Result<Cluster> {
        let mut cluster = Cluster {
            net: Arc::default(),
            dirs: HashMap::new(),
        };
        for &id in ids {
            cluster.dirs.insert(id, tempfile::tempdir()?);
            cluster.open(id).await?;
        }
        Ok(cluster)
    }

    async fn open(&self, id: NodeId) -> anyhow::Result<ConfDb> {
        let dir: &Path = self.dirs[&id].path();
        let transport = Arc::new(MemTransport {
            me: id,
            net: self.net.clone(),
        });
        let db = ConfDb::open(dir, id, test_config(), transport).await?;
        self.net
            .nodes
            .lock()
            .expect("net lock")
            .insert(id, db.clone());
        Ok(db)
    }

    async fn stop(&self, id: NodeId) -> anyhow::Result<()> {
        let db = self.net.nodes.lock().expect("net lock").remove(&id);
        if let Some(db) = db {
            db.shutdown().await?;
        }
        Ok(())
    }

    fn node(&self, id: NodeId) -> ConfDb {
        self.net.node(id).expect("node is running")
    }

    /// Running, reachable nodes.
    fn reachable(&self) -> Vec<ConfDb> {
        let mut nodes: Vec<ConfDb> = self
            .net
            .nodes
            .lock()
            .expect("net lock")
            .values()
            .cloned()
            .collect();
        nodes.retain(|n| !self.net.is_cut(n.node_id(), n.node_id()));
        nodes.sort_by_key(|n| n.node_id());
        nodes
    }

    /// Writes through whichever reachable node is leader, following redirects.
    async fn write(&self, cmd: ClusterCommand) -> anyhow::Result<ClusterResponse> {
        let start = Instant::now();
        let mut target: Option<NodeId> = None;
        loop {
            anyhow::ensure!(start.elapsed() < DEADLINE, "no leader accepted the write");
            let nodes = self.reachable();
            let node = target
                .and_then(|t| nodes.iter().find(|n| n.node_id() == t).cloned())
                .or_else(|| {
                    nodes
                        .iter()
                        .find(|n| n.leader() == Some(n.node_id()))
                        .cloned()
                })
                .unwrap_or_else(|| nodes[0].clone());
            let mut metrics = node.raft().metrics();
            match timeout(Duration::from_secs(2), node.write(cmd.clone())).await {
                Ok(Ok(response)) => return Ok(response),
                Ok(Err(WriteError::ForwardToLeader {
                    leader: Some((id, _)),
                })) if id != node.node_id() => target = Some(id),
                // No leader known, or a stale one: wait for the next metrics change.
                Ok(Err(_)) | Err(_) => {
                    target = None;
                    let _ = timeout(Duration::from_millis(300), metrics.changed()).await;
                }
            }
        }
    }

    /// The leader every reachable node names, once they all name the same one and it
    /// names itself. openraft 0.9 orders leaders by (term, node id): two candidates of
    /// one term can each win in turn (the second with a vote the first no longer
    /// holds), so right after an election the nodes may briefly name different ones.
    async fn agreed_leader(&self) -> anyhow::Result<NodeId> {
        let start = Instant::now();
        loop {
            let nodes = self.reachable();
            let leaders: BTreeSet<Option<NodeId>> = nodes.iter().map(|n| n.leader()).collect();
            if let [Some(leader)] = leaders.iter().copied().collect::<Vec<_>>()[..] {
                if nodes.iter().any(|n| n.node_id() == leader) {
                    return Ok(leader);
                }
            }
            anyhow::ensure!(
                start.elapsed() < DEADLINE,
                "the reachable nodes do not agree on a leader: {leaders:?}"
            );
            let mut metrics = nodes[0].raft().metrics();
            let _ = timeout(Duration::from_millis(50), metrics.changed()).await;
        }
    }

    /// The leader's applied index, once the reachable nodes agree on a leader.
    async fn leader_applied(&self) -> anyhow::Result<(NodeId, u64)> {
        let leader = self.agreed_leader().await?;
        Ok((leader, *self.node(leader).applied_watch().borrow()))
    }
}

async fn wait_applied(db: &ConfDb, index: u64) -> anyhow::Result<()> {
    let mut watch = db.applied_watch();
    timeout(DEADLINE, async {
        while *watch.borrow_and_update() < index {
            watch.changed().await?;
        }
        anyhow::Ok(())
    })
    .await
    .map_err(|_| anyhow::anyhow!("node {} did not apply index {index} in time", db.node_id()))?
}

async fn wait_leader(
    db: &ConfDb,
    accept: impl Fn(NodeId) -> bool + Send + Sync,
) -> anyhow::Result<NodeId> {
    let metrics = db
        .raft()
        .wait(Some(DEADLINE))
        .metrics(
            |m| m.current_leader.is_some_and(&accept),
            "an acceptable leader",
        )
        .await?;
    metrics
        .current_leader
        .ok_or_else(|| anyhow::anyhow!("no leader"))
}

fn state(db: &ConfDb) -> ClusterState {
    db.read(|s| s.clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_elect_replicate_fail_over_and_catch_up() -> anyhow::Result<()> {
    common::init_tracing();
    let ids = [1, 2, 3];
    let cluster = Cluster::start(&ids).await?;

    tracing::info!("--- initialize the group and elect a leader");
    // Every first member initializes: a store created empty votes only once it is
    // known to hold what the cluster committed (see `admission.rs`), and the creators
    // of a group are.
    let members: BTreeMap<NodeId, RaftPeer> = ids.iter().map(|&id| (id, peer(id))).collect();
    for id in ids {
        cluster.node(id).initialize(members.clone()).await?;
    }
    cluster.node(1).initialize(members).await?; // a second initialize is a no-op
    let first_leader = cluster.agreed_leader().await?;

    tracing::info!("--- write through the leader; every replica converges");
    for id in ids {
        assert_eq!(cluster.write(add_member(id)).await?, ClusterResponse::Ok);
    }
    for n in 0..10 {
        cluster.write(record_event(n)).await?;
    }
    let follower = ids
        .into_iter()
        .find(|&id| id != first_leader)
        .expect("a follower");
    match cluster.node(follower).write(record_event(99)).await {
        Err(WriteError::ForwardToLeader {
            leader: Some((id, peer_of)),
        }) => {
            assert_eq!((id, peer_of), (first_leader, peer(first_leader)));
        }
        other => panic!("a follower must redirect writes, got {other:?}"),
    }
    let (_, index) = cluster.leader_applied().await?;
    for id in ids {
        wait_applied(&cluster.node(id), index).await?;
    }
    let reference = state(&cluster.node(first_leader));
    assert_eq!(reference.members.len(), 3);
    assert_eq!(reference.events.len(), 13);
    for id in ids {
        assert_eq!(state(&cluster.node(id)), reference, "replica {id} diverges");
    }
    let read = cluster
        .node(first_leader)
        .linearizable_read(|s| s.members.len())
        .await?;
    assert_eq!(read, 3);

    tracing::info!("--- isolate the leader {first_leader}: another is elected and writes go on");
    cluster.net.set_isolated(first_leader, true);
    let others: Vec<NodeId> = ids.into_iter().filter(|&id| id != first_leader).collect();
    let second_leader = wait_leader(&cluster.node(others[0]), |l| l != first_leader).await?;
    for n in 10..15 {
        cluster.write(record_event(n)).await?;
    }
    let (leader, index) = cluster.leader_applied().await?;
    assert_ne!(leader, first_leader);
    for &id in &others {
        wait_applied(&cluster.node(id), index).await?;
    }
    assert!(cluster.node(second_leader).current_term() > 1);

    tracing::info!("--- heal: the old leader follows and catches up");
    cluster.net.set_isolated(first_leader, false);
    wait_leader(&cluster.node(first_leader), |l| l != first_leader).await?;
    wait_applied(&cluster.node(first_leader), index).await?;
    assert_eq!(
        state(&cluster.node(first_leader)),
        state(&cluster.node(second_leader))
    );

    tracing::info!("--- restart a follower; it reloads its state and catches up by snapshot");
    let (leader, _) = cluster.leader_applied().await?;
    let restarted = ids
        .into_iter()
        .find(|&id| id != leader)
        .expect("a follower");
    let before = state(&cluster.node(restarted));
    let before_index = *cluster.node(restarted).applied_watch().borrow();
    cluster.stop(restarted).await?;
    for n in 15..60 {
        cluster.write(record_event(n)).await?;
    }
    // The leader snapshots and purges the entries the stopped node misses, so it can
    // only catch up by receiving a snapshot.
    cluster
        .node(leader)
        .raft()
        .wait(Some(DEADLINE))
        .metrics(
            |m| m.purged.is_some_and(|p| p.index > before_index + 1),
            "the leader purged the entries the stopped node misses",
        )
        .await?;
    let reopened = cluster.open(restarted).await?;
    assert_eq!(
        state(&reopened),
        before,
        "state persisted across the restart"
    );
    let (leader, index) = cluster.leader_applied().await?;
    wait_applied(&reopened, index).await?;
    let expected = state(&cluster.node(leader));
    assert_eq!(expected.events.len(), 13 + 5 + 45);
    assert_eq!(state(&reopened), expected);
    let snapshot = reopened.raft().metrics().borrow().snapshot;
    assert!(
        snapshot.is_some_and(|s| s.index > before_index + 1),
        "the returning node installed a snapshot: {snapshot:?}"
    );

    for id in ids {
        cluster.stop(id).await?;
    }
    Ok(())
}

/// Deliverable 2 of issue 7: a voter whose store is wiped comes back with an empty log
/// and no vote. openraft 0.9 would let it vote for any candidate, so a candidate that
/// misses committed entries could win with its vote and lose them. Here entries are
/// committed on the leader and the voter to be wiped while a third voter is cut off;
/// the wiped voter comes back next to the lagging one with the leader away: no leader
/// may be elected from the two (before the fix the lagging one won with the wiped one's
/// vote), and once the leader is back the wiped voter catches up, votes again, and no
/// committed entry is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_voter_whose_store_was_wiped_votes_only_once_caught_up() -> anyhow::Result<()> {
    common::init_tracing();
    let ids = [1, 2, 3];
    let cluster = Cluster::start(&ids).await?;
    let members: BTreeMap<NodeId, RaftPeer> = ids.iter().map(|&id| (id, peer(id))).collect();
    for id in ids {
        cluster.node(id).initialize(members.clone()).await?;
    }
    for id in ids {
        cluster.write(add_member(id)).await?;
    }
    let leader = cluster.agreed_leader().await?;
    let others: Vec<NodeId> = ids.into_iter().filter(|&id| id != leader).collect();
    let (wiped, lagging) = (others[0], others[1]);

    tracing::info!("--- cut node {lagging} off; commit entries on {leader} and {wiped}");
    cluster.net.set_isolated(lagging, true);
    for n in 100..110 {
        cluster.write(record_event(n)).await?;
    }
    let (_, committed) = cluster.leader_applied().await?;
    wait_applied(&cluster.node(wiped), committed).await?;
    let expected_events = state(&cluster.node(leader)).events.len();

    tracing::info!("--- wipe node {wiped}'s store; it comes back next to {lagging}, {leader} away");
    cluster.stop(wiped).await?;
    std::fs::remove_file(cluster.dirs[&wiped].path().join(DB_FILE))?;
    cluster.net.set_isolated(leader, true);
    let fresh = cluster.open(wiped).await?;
    assert_eq!(
        fresh.admission(),
        AdmissionState::Unadmitted { floor: None }
    );
    cluster.net.set_isolated(lagging, false);

    tracing::info!("--- {lagging} campaigns; {wiped} must not vote for it");
    let vote = serde_json::to_vec(&openraft::raft::VoteRequest::<NodeId>::new(
        openraft::Vote::new(1000, lagging),
        None,
    ))?;
    let refused = fresh.handle_raft("vote", &vote).await;
    assert!(refused.is_err(), "a new store granted a vote: {refused:?}");
    // Several election timeouts: neither of the two may become leader.
    let window = Instant::now() + Duration::from_secs(3);
    while Instant::now() < window {
        for id in [wiped, lagging] {
            let node = cluster.node(id);
            assert_ne!(
                node.leader(),
                Some(id),
                "node {id} was elected without the committed entries"
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    tracing::info!("--- {leader} is back: {wiped} catches up, votes again, nothing is lost");
    cluster.net.set_isolated(leader, false);
    // Whoever leads now holds every committed entry: {lagging} (whose term climbed
    // while it campaigned) may win once it has caught up from {leader}; the check that
    // matters is that no committed entry is missing below.
    let (new_leader, index) = cluster.leader_applied().await?;
    wait_applied(&fresh, index).await?;
    let deadline = Instant::now() + DEADLINE;
    while fresh.admission() != AdmissionState::Admitted {
        anyhow::ensure!(Instant::now() < deadline, "node {wiped} never admitted");
        // Appends (heartbeats every 40 ms) re-check the admission.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let reference = state(&cluster.node(new_leader));
    assert_eq!(
        reference.events.len(),
        expected_events,
        "the leader {new_leader} misses committed entries"
    );
    for id in ids {
        wait_applied(&cluster.node(id), index).await?;
        assert_eq!(state(&cluster.node(id)), reference, "replica {id} diverges");
    }
    for id in ids {
        cluster.stop(id).await?;
    }
    Ok(())
}
