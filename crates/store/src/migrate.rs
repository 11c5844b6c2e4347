//! Migration of an older on-disk format to [`crate::FORMAT_VERSION`].
//!
//! 1 → 2: records were keyed by object id alone (`objects`: id → record, with the set
//! inside it, and `set_objects`: (set, id) → ()), data files at
//! `objects/<2 hex>/<32 hex>`. Format 2 keys records by (set, id) and puts data files
//! under the set's directory (see `files.rs`). Steps, each safe to repeat after a
//! crash: (1) every data file is renamed to its format-2 path (a file already moved is
//! skipped), the directories synced; (2) one transaction writes the records under
//! their new keys, drops the old tables and records format 2. Until (2) commits the
//! store reads as format 1 and the next open runs the migration again. Files with no
//! record (a crash's orphans of format 1) stay in the old directories, unread.
//!
//! Owns: the migration chain. Must never: drop a record or a data file, or record a
//! new format before everything it describes is in place.

use crate::error::StoreError;
use crate::files::{create_dir, set_dir_name, sync_dir, OBJECTS_DIR};
use crate::index::{begin_durable, decode, META, OBJECTS};
use redb::{Database, ReadableTable, TableDefinition};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

const OBJECTS_V1: TableDefinition<u128, &[u8]> = TableDefinition::new("objects");
const SET_OBJECTS_V1: TableDefinition<(&str, u128), ()> = TableDefinition::new("set_objects");

/// Migrates a format-1 store in `dir` (index `db`) to format 2.
pub(crate) fn from_v1(dir: &Path, db: &Database) -> Result<(), StoreError> {
    let objects = dir.join(OBJECTS_DIR);
    let records: Vec<(u128, Vec<u8>)> = {
        let txn = db.begin_read()?;
        let table = txn.open_table(OBJECTS_V1)?;
        let mut out = vec![];
        for entry in table.iter()? {
            let (id, bytes) = entry?;
            out.push((id.value(), bytes.value().to_vec()));
        }
        out
    };
    tracing::info!(
        dir = %dir.display(),
        objects = records.len(),
        "object store: migrating format 1 to 2 (records per set)"
    );
    let mut synced: BTreeSet<PathBuf> = BTreeSet::new();
    for (id, bytes) in &records {
        let meta = decode(bytes)?;
        let hex = keel_core::ObjectId(*id).to_string();
        let old = objects.join(&hex[..2]).join(&hex);
        if !old.exists() {
            continue; // a tombstone, or already moved by an interrupted migration
        }
        let set_dir = objects.join(set_dir_name(&meta.set));
        let fan_out = set_dir.join(&hex[..2]);
        if create_dir(&set_dir)? {
            sync_dir(&objects)?;
        }
        if create_dir(&fan_out)? {
            sync_dir(&set_dir)?;
        }
        std::fs::rename(&old, fan_out.join(&hex))
            .map_err(|e| StoreError::io(format!("moving {}", old.display()), &e))?;
        synced.insert(fan_out);
        synced.insert(objects.join(&hex[..2]));
    }
    for d in &synced {
        sync_dir(d)?;
    }
    let txn = begin_durable(db)?;
    {
        let mut new = txn.open_table(OBJECTS)?;
        for (id, bytes) in &records {
            let meta = decode(bytes)?;
            new.insert((meta.set.as_str(), *id), bytes.as_slice())?;
        }
        let mut meta = txn.open_table(META)?;
        meta.insert("format", crate::FORMAT_VERSION)?;
    }
    txn.delete_table(OBJECTS_V1)?;
    txn.delete_table(SET_OBJECTS_V1)?;
    txn.commit()?;
    // Empty format-1 fan-out directories are left behind harmlessly; remove them.
    for d in synced
        .iter()
        .filter(|d| d.parent() == Some(objects.as_path()))
    {
        let _ = std::fs::remove_dir(d);
    }
    Ok(())
}
