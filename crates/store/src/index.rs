//! The object index: one redb file, `DIR/index.redb`.
//!
//! Tables:
//! - `meta`: `"format"` → on-disk format version ([`FORMAT_VERSION`]), checked on open.
//! - `objects`: object id (`u128`) → bincode [`ObjectMeta`] (live objects and tombstones).
//! - `set_objects`: (set id, object id) → `()`, so that a set's objects are listed in id
//!   order without scanning every object. Kept in step with `objects` in the same
//!   transaction.
//! - `fences`: owned by [`crate::fence`]; created here with the others.
//!
//! Every commit uses `Durability::Immediate`: when a method returns, the change is on
//! disk. Owns: the table layout, the format check, encoding of records. Must never:
//! touch data files, or decide whether a change is allowed (versions, epochs, space):
//! callers decide, the index records.

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
pub const FORMAT_VERSION: u64 = 1;

const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const OBJECTS: TableDefinition<u128, &[u8]> = TableDefinition::new("objects");
const SET_OBJECTS: TableDefinition<(&str, u128), ()> = TableDefinition::new("set_objects");

/// The open index.
pub(crate) struct Index {
    db: Database,
}

impl Index {
    /// Opens (or creates) `dir/index.redb`, creates missing tables and checks the
    /// format version.
    pub(crate) fn open(dir: &Path) -> Result<Index, StoreError> {
        let db = Database::create(dir.join(INDEX_FILE))?;
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
            txn.open_table(SET_OBJECTS)?;
            txn.open_table(FENCES)?;
        }
        txn.commit()?;
        Ok(Index { db })
    }

    pub(crate) fn db(&self) -> &Database {
        &self.db
    }

    /// The record of `id` (live or tombstone), if any.
    pub(crate) fn get(&self, id: ObjectId) -> Result<Option<ObjectMeta>, StoreError> {
        let txn = self.db.begin_read()?;
        let objects = txn.open_table(OBJECTS)?;
        let found = objects.get(id.0)?;
        found.map(|v| decode(v.value())).transpose()
    }

    /// Records `meta` for `id` durably, replacing any previous record (and moving the
    /// object between sets if its set changed).
    pub(crate) fn put(&self, id: ObjectId, meta: &ObjectMeta) -> Result<(), StoreError> {
        let bytes = bincode::serialize(meta)?;
        let txn = begin_durable(&self.db)?;
        {
            let mut objects = txn.open_table(OBJECTS)?;
            let mut by_set = txn.open_table(SET_OBJECTS)?;
            let previous = objects.insert(id.0, bytes.as_slice())?;
            if let Some(previous) = previous {
                let previous: ObjectMeta = decode(previous.value())?;
                if previous.set != meta.set {
                    by_set.remove((previous.set.as_str(), id.0))?;
                }
            }
            by_set.insert((meta.set.as_str(), id.0), ())?;
        }
        txn.commit()?;
        Ok(())
    }

    /// Forgets `id` durably. No record is not an error.
    pub(crate) fn remove(&self, id: ObjectId) -> Result<(), StoreError> {
        let txn = begin_durable(&self.db)?;
        {
            let mut objects = txn.open_table(OBJECTS)?;
            let mut by_set = txn.open_table(SET_OBJECTS)?;
            let previous = objects.remove(id.0)?;
            if let Some(previous) = previous {
                let previous: ObjectMeta = decode(previous.value())?;
                by_set.remove((previous.set.as_str(), id.0))?;
            }
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
        let by_set = txn.open_table(SET_OBJECTS)?;
        let mut listed = Vec::new();
        for entry in by_set.range((set, start)..=(set, u128::MAX))? {
            if listed.len() >= limit {
                break;
            }
            let (key, _) = entry?;
            let id = ObjectId(key.value().1);
            let Some(record) = objects.get(id.0)? else {
                return Err(StoreError::index(format!(
                    "set {set:?} lists object {id}, which has no record"
                )));
            };
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

fn decode(bytes: &[u8]) -> Result<ObjectMeta, StoreError> {
    Ok(bincode::deserialize(bytes)?)
}
