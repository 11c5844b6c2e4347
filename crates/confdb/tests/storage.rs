//! The redb log store and state machine: openraft's storage suite, and durability
//! across a close and reopen.

mod common;

use common::{add_member, record_event};
use keel_confdb::types::{Entry, LogId, StorageError, Vote};
use keel_confdb::{open_database, LogStore, StateMachineStore, TypeConfig};
use keel_core::{ClusterCommand, ClusterResponse, ClusterSettings, ClusterState};
use openraft::storage::{RaftLogStorage, RaftLogStorageExt, RaftStateMachine};
use openraft::testing::{log_id, StoreBuilder, Suite};
use openraft::{
    CommittedLeaderId, EntryPayload, Membership, RaftLogReader, RaftSnapshotBuilder, StorageIOError,
};
use std::collections::BTreeSet;
use tempfile::TempDir;

struct RedbStoreBuilder;

impl StoreBuilder<TypeConfig, LogStore, StateMachineStore, TempDir> for RedbStoreBuilder {
    async fn build(&self) -> Result<(TempDir, LogStore, StateMachineStore), StorageError> {
        let dir = tempfile::tempdir().map_err(|e| StorageIOError::write(&e))?;
        let db = open_database(dir.path()).map_err(|e| StorageIOError::write(&e))?;
        let sm = StateMachineStore::open(db.clone())
            .await
            .map_err(|e| StorageIOError::write(&e))?;
        Ok((dir, LogStore::new(db), sm))
    }
}

#[test]
fn passes_openraft_storage_suite() -> anyhow::Result<()> {
    common::init_tracing();
    Suite::test_all(RedbStoreBuilder)?;
    Ok(())
}

fn entry(term: u64, index: u64, payload: EntryPayload<TypeConfig>) -> Entry {
    Entry {
        log_id: log_id(term, 1, index),
        payload,
    }
}

fn normal(term: u64, index: u64, cmd: ClusterCommand) -> Entry {
    entry(term, index, EntryPayload::Normal(cmd.into()))
}

async fn open(dir: &TempDir) -> anyhow::Result<(LogStore, StateMachineStore)> {
    let db = open_database(dir.path())?;
    Ok((
        LogStore::new(db.clone()),
        StateMachineStore::open(db).await?,
    ))
}

fn state_of(sm: &StateMachineStore) -> ClusterState {
    sm.read(|a| a.state.clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_state_and_snapshot_survive_reopen() -> anyhow::Result<()> {
    common::init_tracing();
    let dir = tempfile::tempdir()?;
    let voters: BTreeSet<u64> = [1, 2, 3].into_iter().collect();
    let membership = Membership::new(vec![voters], None);

    tracing::info!("--- write a vote, log entries and apply them, evicting events");
    let mut entries = vec![
        entry(1, 1, EntryPayload::Blank),
        entry(1, 2, EntryPayload::Membership(membership.clone())),
        normal(
            1,
            3,
            ClusterCommand::UpdateSettings {
                settings: ClusterSettings {
                    event_log_capacity: 5,
                    ..Default::default()
                },
            },
        ),
    ];
    entries.extend((4..=6).map(|i| normal(1, i, add_member(i))));
    entries.extend((7..=12).map(|i| normal(2, i, record_event(i))));
    let (expected, committed) = {
        let (mut log, mut sm) = open(&dir).await?;
        log.save_vote(&Vote::new_committed(2, 1)).await?;
        log.blocking_append(entries.clone()).await?;
        log.save_committed(Some(log_id(2, 1, 12))).await?;
        let responses = sm.apply(entries[..8].to_vec()).await?;
        assert!(
            responses
                .iter()
                .all(|r| *r == keel_confdb::Reply::Cluster(ClusterResponse::Ok)),
            "{responses:?}"
        );
        let snapshot = sm.get_snapshot_builder().await.build_snapshot().await?;
        assert_eq!(snapshot.meta.last_log_id, Some(log_id(2, 1, 8)));
        sm.apply(entries[8..].to_vec()).await?;
        let state = state_of(&sm);
        assert_eq!(state.members.len(), 3);
        assert_eq!(
            state.events.len(),
            5,
            "events beyond the capacity are evicted"
        );
        assert_eq!(state.events.front().map(|e| e.seq), Some(4));
        (state, log_id(2, 1, 12))
    };

    tracing::info!(
        "--- reopen: vote, log, committed, applied state, events and snapshot are intact"
    );
    let (mut log, mut sm) = open(&dir).await?;
    assert_eq!(log.read_vote().await?, Some(Vote::new_committed(2, 1)));
    assert_eq!(log.read_committed().await?, Some(committed));
    let state = log.get_log_state().await?;
    assert_eq!(state.last_log_id, Some(committed));
    assert_eq!(state.last_purged_log_id, None);
    assert_eq!(log.try_get_log_entries(0..100).await?, entries);
    let (applied, stored_membership) = sm.applied_state().await?;
    assert_eq!(applied, Some(committed));
    assert_eq!(stored_membership.membership(), &membership);
    assert_eq!(stored_membership.log_id(), &Some(log_id(1, 1, 2)));
    assert_eq!(state_of(&sm), expected);
    let snapshot = sm.get_current_snapshot().await?.expect("snapshot kept");
    assert_eq!(snapshot.meta.last_log_id, Some(log_id(2, 1, 8)));

    tracing::info!("--- purge and truncate, reopen again");
    log.purge(log_id(1, 1, 5)).await?;
    log.truncate(log_id(2, 1, 11)).await?;
    drop((log, sm));
    let (mut log, _sm) = open(&dir).await?;
    let state = log.get_log_state().await?;
    assert_eq!(state.last_purged_log_id, Some(log_id(1, 1, 5)));
    assert_eq!(state.last_log_id, Some(log_id(2, 1, 10)));
    let kept: Vec<u64> = log
        .try_get_log_entries(..)
        .await?
        .iter()
        .map(|e| e.log_id.index)
        .collect();
    assert_eq!(kept, (6..=10).collect::<Vec<_>>());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn installed_snapshot_replaces_state_durably() -> anyhow::Result<()> {
    common::init_tracing();
    let (leader_dir, follower_dir) = (tempfile::tempdir()?, tempfile::tempdir()?);
    let (_, mut leader) = open(&leader_dir).await?;
    leader
        .apply(
            (1..=4)
                .map(|i| normal(1, i, add_member(i)))
                .collect::<Vec<_>>(),
        )
        .await?;
    let snapshot = leader.get_snapshot_builder().await.build_snapshot().await?;

    tracing::info!("--- the follower had diverging state; the snapshot replaces all of it");
    {
        let (_, mut follower) = open(&follower_dir).await?;
        follower
            .apply(
                (1..=2)
                    .map(|i| normal(1, i, record_event(i)))
                    .collect::<Vec<_>>(),
            )
            .await?;
        let mut watch = follower.applied_watch();
        follower
            .install_snapshot(&snapshot.meta, snapshot.snapshot.clone())
            .await?;
        assert_eq!(*watch.borrow_and_update(), 4);
        assert_eq!(state_of(&follower), state_of(&leader));
    }

    tracing::info!("--- reopen the follower");
    let (_, mut follower) = open(&follower_dir).await?;
    assert_eq!(state_of(&follower), state_of(&leader));
    assert_eq!(
        follower.applied_state().await?.0,
        Some(LogId::new(CommittedLeaderId::new(1, 1), 4))
    );
    let current = follower
        .get_current_snapshot()
        .await?
        .expect("installed snapshot kept");
    assert_eq!(current.meta, snapshot.meta);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn applied_directory_changes_are_announced_once_durable() -> anyhow::Result<()> {
    use keel_confdb::Command;
    use keel_confdb::DirApplied;
    use keel_dir::{DirCommand, Replication};
    common::init_tracing();
    let dir = tempfile::tempdir()?;
    let (_log, mut sm) = open(&dir).await?;
    let mut rx = sm.dir_changes().subscribe();
    let dir_entry =
        |index, cmd: DirCommand| entry(1, index, EntryPayload::Normal(Command::Dir(cmd)));
    sm.apply(vec![
        dir_entry(
            1,
            DirCommand::CreateVolume {
                name: "v".into(),
                chunk_size: None,
                replication: Replication::Sync,
                at: 1,
            },
        ),
        dir_entry(
            2,
            DirCommand::Mkdir {
                volume: "v".into(),
                path: "/d".into(),
                mode: 0o755,
                uid: 0,
                gid: 0,
                parents: false,
                at: 2,
                token: None,
            },
        ),
    ])
    .await?;
    let got = rx.try_recv()?;
    assert_eq!(
        *got,
        DirApplied::Changed {
            volumes: vec!["v".into()],
            inodes: vec![1, 2],
            dirs: vec![1],
        }
    );
    // A batch without directory commands announces nothing.
    sm.apply(vec![entry(1, 3, EntryPayload::Blank)]).await?;
    assert!(rx.try_recv().is_err());
    Ok(())
}
