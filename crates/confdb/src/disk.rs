//! The configuration database's one redb file, `DIR/raft.redb`, shared (as an
//! `Arc<Database>`) by the Raft log store and the state machine store.
//!
//! One file rather than two: a node has one fsync stream to reason about, one file to
//! back up, and redb serializes write transactions anyway. The log and the state
//! machine use disjoint tables, listed here with the on-disk format version.
//!
//! Owns: the table layout, the format version check, opening the file, and running
//! blocking redb work off the async executor. Must never: interpret Raft semantics
//! (that is [`crate::log_store`] and [`crate::state_machine`]).

use crate::error::ConfDbError;
use redb::{Database, ReadableTable, TableDefinition};
use std::path::Path;
use std::sync::Arc;

/// File name of the configuration database inside its directory.
pub const DB_FILE: &str = "raft.redb";

/// On-disk format written by this build (2: the directory's `ns_*` tables and
/// commands wrapped in [`crate::Command`]; there is no migration from 1, which was
/// never released). Bump it, and add a migration step in
/// [`open_database`], whenever a table or a record changes shape.
pub const FORMAT_VERSION: u64 = 2;

/// `"format"` → format version (u64 as JSON).
pub(crate) const FORMAT: TableDefinition<&str, &[u8]> = TableDefinition::new("format");
/// Raft log: index → JSON `Entry`.
pub(crate) const LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("raft_log");
/// Log store records: `vote`, `committed`, `last_purged` → JSON.
pub(crate) const LOG_META: TableDefinition<&str, &[u8]> = TableDefinition::new("raft_log_meta");
/// State machine records: `last_applied`, `membership`, `state` (the cluster state
/// without its event log) → JSON.
pub(crate) const SM_META: TableDefinition<&str, &[u8]> = TableDefinition::new("sm_meta");
/// The replicated event log: event seq → JSON `Event`.
pub(crate) const SM_EVENTS: TableDefinition<u64, &[u8]> = TableDefinition::new("sm_events");
/// The directory (namespace), stored incrementally: volume name → JSON `Volume`.
pub(crate) const NS_VOLUMES: TableDefinition<&str, &[u8]> = TableDefinition::new("ns_volumes");
/// Inode number → JSON `Inode`.
pub(crate) const NS_INODES: TableDefinition<u64, &[u8]> = TableDefinition::new("ns_inodes");
/// `(directory inode, name)` → inode number.
pub(crate) const NS_ENTRIES: TableDefinition<(u64, &str), u64> = TableDefinition::new("ns_entries");
/// Idempotency token → JSON `Remembered` reply.
pub(crate) const NS_TOKENS: TableDefinition<u128, &[u8]> = TableDefinition::new("ns_tokens");
/// The current snapshot: `meta` → JSON `SnapshotMeta`, `data` → snapshot bytes.
pub(crate) const SNAPSHOT: TableDefinition<&str, &[u8]> = TableDefinition::new("sm_snapshot");

/// Opens (or creates) `dir/raft.redb`, creates missing tables and checks the format.
pub fn open_database(dir: &Path) -> Result<Arc<Database>, ConfDbError> {
    std::fs::create_dir_all(dir).map_err(|source| ConfDbError::CreateDir {
        path: dir.to_path_buf(),
        source,
    })?;
    let path = dir.join(DB_FILE);
    let db = Database::create(&path).map_err(|source| ConfDbError::Open { path, source })?;
    let mut txn = db.begin_write()?;
    txn.set_durability(redb::Durability::Immediate);
    {
        let mut format = txn.open_table(FORMAT)?;
        let found = match format.get("format")? {
            Some(v) => Some(serde_json::from_slice::<u64>(v.value())?),
            None => None,
        };
        match found {
            None => {
                format.insert("format", serde_json::to_vec(&FORMAT_VERSION)?.as_slice())?;
            }
            Some(FORMAT_VERSION) => {}
            Some(found) => {
                return Err(ConfDbError::UnsupportedFormat {
                    found,
                    supported: FORMAT_VERSION,
                })
            }
        }
        txn.open_table(LOG)?;
        txn.open_table(LOG_META)?;
        txn.open_table(SM_META)?;
        txn.open_table(SM_EVENTS)?;
        txn.open_table(SNAPSHOT)?;
        txn.open_table(NS_VOLUMES)?;
        txn.open_table(NS_INODES)?;
        txn.open_table(NS_ENTRIES)?;
        txn.open_table(NS_TOKENS)?;
    }
    txn.commit()?;
    Ok(Arc::new(db))
}

/// Starts a write transaction that fsyncs on commit.
pub(crate) fn begin_durable(db: &Database) -> Result<redb::WriteTransaction, ConfDbError> {
    let mut txn = db.begin_write()?;
    txn.set_durability(redb::Durability::Immediate);
    Ok(txn)
}

/// Reads and decodes one JSON record of a `&str`-keyed table.
pub(crate) fn get_json<T, Tbl>(table: &Tbl, key: &str) -> Result<Option<T>, ConfDbError>
where
    T: serde::de::DeserializeOwned,
    Tbl: ReadableTable<&'static str, &'static [u8]>,
{
    match table.get(key)? {
        Some(v) => Ok(Some(serde_json::from_slice(v.value())?)),
        None => Ok(None),
    }
}

/// Runs blocking redb work (reads, commits with fsync) on tokio's blocking pool so the
/// Raft core task never stalls an executor thread.
pub(crate) async fn blocking<T, F>(work: F) -> Result<T, ConfDbError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, ConfDbError> + Send + 'static,
{
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| ConfDbError::Task(e.to_string()))?
}
