//! The object index: one redb file, `DIR/index.redb`.
//!
//! Tables (format 2):
//! - `meta`: `"format"` → on-disk format version ([`FORMAT_VERSION`]), checked on open.
//! - `objects_by_set`: (set id, object id as `u128`) → bincode [`ObjectMeta`] (live
//!   objects and tombstones). A record is scoped by its set: one node may hold an
//!   object for two sets at once (a rebalance between sets that share this node), and
//!   the two records (versions, tombstones) never meet. A set's objects are one key
//!   range, listed in id order without scanning other sets.
//! - `fences`: owned by [`crate::fence`]; created here with the others.
//!
//! Format 1 (one record per object id whatever the set, `objects` and `set_objects`)
//! is migrated on open by [`crate::migrate`].
//!
//! Every commit uses `Durability::Immediate`: when a method returns, the change is on
//! disk. Owns: the table layout, the format check, encoding of records. Must never:
//! touch data files (but for the migration it delegates), or decide whether a change
//! is allowed (versions, epochs, space): callers decide, the index records.

use crate::error::StoreError;
use crate::fence::FENCES;
use crate::meta::{ObjectMeta, ObjectStat};
use keel_core::ObjectId;
use redb::{Database, Durability, ReadableTable, TableDefinition, WriteTransaction};
use std::path::Path;

/// File name of the index inside the store's directory.
pub const INDEX_FILE: &str = "index.redb";

/// On-disk format written by this build (the index tables and the data file layout).
/// Bump it, and add a migration step in `Index::open`, whenever either changes shape.
/// 1: one record and one data file per object id. 2: per (set, object id).
pub const FORMAT_VERSION: u64 = 2;

pub(crate) const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
pub(crate) const OBJECTS: TableDefinition<(&str, u128), &[u8]> =
    TableDefinition::new("objects_by_set");

/// The open index.
pub(crate) struct Index {
    db: Database,
}

impl Index {
    /// Opens (or creates) `dir/index.redb`, creates missing tables, migrates an older
    /// format and checks the format version.
    pub(crate) fn open(dir: &Path) -> Result<Index, StoreError> {
        let db = Database::create(dir.join(INDEX_FILE))?;
        let found = {
            let txn = db.begin_read()?;
            match txn.open_table(META) {
                Ok(meta) => meta.get("format")?.map(|v| v.value()),
                Err(redb::TableError::TableDoesNotExist(_)) => None,
                Err(e) => return Err(e.into()),
            }
        };
        if found == Some(1) {
            crate::migrate::from_v1(dir, &db)?;
        }
        let txn = begin_durable(&db)?;
        {
            let mut meta = txn.open_table(META)?;
            let found = meta.get("format")?.map(|v| v.value());
            match found {
                None => {
                    meta.insert("format", FORMAT_VERSION)?;
                }
                Some(FORMAT_VERSION) => {}
                Some(found) => {
                    return Err(StoreError::Format {
                        found,
                        supported: FORMAT_VERSION,
                    })
                }
            }
            txn.open_table(OBJECTS)?;
            txn.open_table(FENCES)?;
        }
        txn.commit()?;
        Ok(Index { db })
    }

    pub(crate) fn db(&self) -> &Database {
        &self.db
    }

    /// The record of `id` in `set` (live or tombstone), if any.
    pub(crate) fn get(&self, set: &str, id: ObjectId) -> Result<Option<ObjectMeta>, StoreError> {
        let txn = self.db.begin_read()?;
        let objects = txn.open_table(OBJECTS)?;
        let found = objects.get((set, id.0))?;
        found.map(|v| decode(v.value())).transpose()
    }

    /// Records `meta` for `id` in `meta.set` durably, replacing any previous record of
    /// that set (records of other sets are untouched).
    pub(crate) fn put(&self, id: ObjectId, meta: &ObjectMeta) -> Result<(), StoreError> {
        let bytes = bincode::serialize(meta)?;
        let txn = begin_durable(&self.db)?;
        {
            let mut objects = txn.open_table(OBJECTS)?;
            objects.insert((meta.set.as_str(), id.0), bytes.as_slice())?;
        }
        txn.commit()?;
        Ok(())
    }

    /// Forgets `id` in `set` durably. No record is not an error.
    pub(crate) fn remove(&self, set: &str, id: ObjectId) -> Result<(), StoreError> {
        let txn = begin_durable(&self.db)?;
        {
            let mut objects = txn.open_table(OBJECTS)?;
            objects.remove((set, id.0))?;
        }
        txn.commit()?;
        Ok(())
    }

    /// Up to `limit` objects and tombstones of `set` with ids strictly after `after`,
    /// in id order. One read transaction: a consistent snapshot.
    pub(crate) fn list_set(
        &self,
        set: &str,
        after: Option<ObjectId>,
        limit: usize,
    ) -> Result<Vec<ObjectStat>, StoreError> {
        let start = match after {
            None => 0,
            Some(ObjectId(u128::MAX)) => return Ok(Vec::new()),
            Some(ObjectId(after)) => after + 1,
        };
        let txn = self.db.begin_read()?;
        let objects = txn.open_table(OBJECTS)?;
        let mut listed = Vec::new();
        for entry in objects.range((set, start)..=(set, u128::MAX))? {
            if listed.len() >= limit {
                break;
            }
            let (key, record) = entry?;
            let id = ObjectId(key.value().1);
            listed.push(decode(record.value())?.stat(id));
        }
        Ok(listed)
    }
}

/// Starts a write transaction that fsyncs on commit.
pub(crate) fn begin_durable(db: &Database) -> Result<WriteTransaction, StoreError> {
    let mut txn = db.begin_write()?;
    txn.set_durability(Durability::Immediate);
    Ok(txn)
}

pub(crate) fn decode(bytes: &[u8]) -> Result<ObjectMeta, StoreError> {
    Ok(bincode::deserialize(bytes)?)
}
