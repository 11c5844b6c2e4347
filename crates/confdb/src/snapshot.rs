//! Snapshots of the configuration database: building them from a copy of the applied
//! state, storing the current one in redb so it survives a restart, and installing one
//! received from the leader.
//!
//! Format: the JSON of `{ "meta": SnapshotMeta, "state": ClusterState, "namespace":
//! Namespace }`.
//!
//! Must never: change the in-memory replica (the state machine does that after
//! [`install`] returns), or let an older snapshot replace a newer stored one.

use crate::disk::{begin_durable, get_json, SM_EVENTS, SM_META, SNAPSHOT};
use crate::error::ConfDbError;
use crate::namespace_store::EncodedChanges;
use crate::state_machine::{encode_state_without_events, Applied};
use crate::types::{Snapshot, SnapshotMeta, StorageError, TypeConfig};
use keel_core::ClusterState;
use keel_dir::Namespace;
use openraft::{ErrorSubject, ErrorVerb, RaftSnapshotBuilder};
use redb::Database;
use serde::{Deserialize, Serialize};
use std::io::Cursor;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

#[derive(Serialize)]
struct PayloadRef<'a> {
    meta: &'a SnapshotMeta,
    state: &'a ClusterState,
    namespace: &'a Namespace,
}

#[derive(Deserialize)]
struct Payload {
    state: ClusterState,
    #[serde(default)]
    namespace: Namespace,
}

/// Builds a snapshot from a copy of the state taken when openraft asked for a builder.
pub struct SnapshotBuilder {
    db: Arc<Database>,
    applied: Applied,
}

impl SnapshotBuilder {
    pub(crate) fn new(db: Arc<Database>, applied: Applied) -> SnapshotBuilder {
        SnapshotBuilder { db, applied }
    }
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot, StorageError> {
        let last = self.applied.last_applied;
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let snapshot_id = match last {
            Some(l) => format!("{}-{}-{nanos}", l.leader_id, l.index),
            None => format!("none-{nanos}"),
        };
        let meta = SnapshotMeta {
            last_log_id: last,
            last_membership: self.applied.membership.clone(),
            snapshot_id,
        };
        let data = serde_json::to_vec(&PayloadRef {
            meta: &meta,
            state: &self.applied.state,
            namespace: &self.applied.namespace,
        })
        .map_err(|e| {
            ConfDbError::from(e).into_storage(
                ErrorSubject::Snapshot(Some(meta.signature())),
                ErrorVerb::Write,
            )
        })?;
        let db = self.db.clone();
        let (store_meta, store_data) = (meta.clone(), data.clone());
        crate::disk::blocking(move || store_current(&db, &store_meta, &store_data))
            .await
            .map_err(|e| {
                e.into_storage(
                    ErrorSubject::Snapshot(Some(meta.signature())),
                    ErrorVerb::Write,
                )
            })?;
        tracing::info!(snapshot = %meta, bytes = data.len(), "built a configuration database snapshot");
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        })
    }
}

/// Stores `meta`/`data` as the current snapshot unless a newer one is already stored.
fn store_current(db: &Database, meta: &SnapshotMeta, data: &[u8]) -> Result<(), ConfDbError> {
    let txn = begin_durable(db)?;
    {
        let mut table = txn.open_table(SNAPSHOT)?;
        let stored: Option<SnapshotMeta> = get_json(&table, "meta")?;
        if stored.is_some_and(|s| s.last_log_id > meta.last_log_id) {
            return Ok(());
        }
        table.insert("meta", serde_json::to_vec(meta)?.as_slice())?;
        table.insert("data", data)?;
    }
    txn.commit()?;
    Ok(())
}

/// Durably replaces the state machine (state, events, last applied, membership) and the
/// current snapshot with a snapshot received from the leader. Returns the new state.
pub(crate) fn install(
    db: &Database,
    meta: &SnapshotMeta,
    data: Vec<u8>,
) -> Result<(ClusterState, Namespace), ConfDbError> {
    let payload = serde_json::from_slice::<Payload>(&data)?;
    let mut state = payload.state;
    let mut namespace = payload.namespace;
    let rows = EncodedChanges::encode(namespace.all_as_changes(), namespace.meta(), true)?;
    let txn = begin_durable(db)?;
    {
        let mut events = txn.open_table(SM_EVENTS)?;
        events.retain(|_, _| false)?;
        for event in &state.events {
            events.insert(event.seq, serde_json::to_vec(event)?.as_slice())?;
        }
        let mut sm = txn.open_table(SM_META)?;
        sm.insert("state", encode_state_without_events(&mut state)?.as_slice())?;
        sm.insert(
            "last_applied",
            serde_json::to_vec(&meta.last_log_id)?.as_slice(),
        )?;
        sm.insert(
            "membership",
            serde_json::to_vec(&meta.last_membership)?.as_slice(),
        )?;
        let mut snapshot = txn.open_table(SNAPSHOT)?;
        snapshot.insert("meta", serde_json::to_vec(meta)?.as_slice())?;
        snapshot.insert("data", data.as_slice())?;
    }
    rows.write(&txn)?;
    txn.commit()?;
    Ok((state, namespace))
}

/// The current snapshot, if one was built or installed.
pub(crate) fn current(db: &Database) -> Result<Option<Snapshot>, ConfDbError> {
    let txn = db.begin_read()?;
    let table = txn.open_table(SNAPSHOT)?;
    let meta: Option<SnapshotMeta> = get_json(&table, "meta")?;
    let data = table.get("data")?.map(|v| v.value().to_vec());
    Ok(match (meta, data) {
        (Some(meta), Some(data)) => Some(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        }),
        _ => None,
    })
}
