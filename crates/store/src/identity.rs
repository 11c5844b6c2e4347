//! The store's identity: a random [`StoreId`] made when the store is first created,
//! kept twice — in the index (`meta` table, keys `store_id_hi`/`store_id_lo`) and in a
//! marker file inside the objects directory (`objects/STORE_ID`, 32 hex digits) — so
//! that losing either half is seen at the next open.
//!
//! At open: both present and equal, the store is the one it was. Otherwise the disk
//! under it changed (objects directory wiped or replaced, index wiped, a store restored
//! from elsewhere) and this is a NEW store: it gets a new identity, and every index
//! record but the epoch fences is dropped, so the store never claims an object it does
//! not hold. (Fences are kept: an epoch once seen still fences a deposed Primary.) Data
//! files left without a record are never read and are replaced by the next put of
//! their id.
//!
//! Order of the writes: the index first (records dropped and the new id, one durable
//! transaction), then the marker (temp file, fsync, rename, fsync the directory). A
//! crash between the two leaves them disagreeing: the next open makes yet another
//! identity, which is safe (the store is empty either way).
//!
//! Owns: the identity's two copies and the decision "same store or new store". Must
//! never: keep a record when the identity changes, or give an existing store a new
//! identity while both copies agree. It runs before `Index::open` and knows no table
//! of the index but `meta` and `fences` (it drops every other table by listing them),
//! so changes to the index's object tables do not concern it.

use crate::error::StoreError;
use crate::files::{sync_dir, OBJECTS_DIR};
use crate::index::INDEX_FILE;
use keel_core::StoreId;
use redb::{Database, Durability, ReadableTableMetadata, TableDefinition, TableHandle};
use std::io::ErrorKind;
use std::path::Path;

/// The marker file inside the objects directory.
pub const STORE_ID_FILE: &str = "STORE_ID";

const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const HI: &str = "store_id_hi";
const LO: &str = "store_id_lo";
/// Tables kept when the identity changes (the format and the epoch fences).
const KEPT_TABLES: &[&str] = &["meta", "fences"];

/// How the store's identity was found at open.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    /// The index and the marker agree: the store is the one it was.
    Same,
    /// Nothing on disk: a first start.
    Created,
    /// A store written by a build before identities (records, no identity anywhere):
    /// it gets one and keeps its records.
    Adopted,
    /// The disk changed under the store; it is a new store. Says what was found.
    Replaced { reason: String },
}

/// Finds (or makes) the identity of the store in `dir`, before the index is opened.
pub(crate) fn establish(dir: &Path) -> Result<(StoreId, Origin), StoreError> {
    let objects = dir.join(OBJECTS_DIR);
    std::fs::create_dir_all(&objects)
        .map_err(|e| StoreError::io(format!("creating {}", objects.display()), &e))?;
    let index_existed = dir.join(INDEX_FILE).exists();
    let db = Database::create(dir.join(INDEX_FILE))?;
    let recorded = read_recorded(&db)?;
    let marker = read_marker(&objects)?;
    let origin = match (recorded, marker) {
        (Some(a), Some(b)) if a == b => return Ok((a, Origin::Same)),
        (None, None) if !index_existed || !has_records(&db)? => Origin::Created,
        // Only a build before identities leaves records without an identity: this one
        // records the identity in the index before anything else.
        (None, None) => Origin::Adopted,
        (Some(a), Some(b)) => Origin::Replaced {
            reason: format!("the index belongs to store {a}, the objects directory to {b}"),
        },
        (Some(a), None) => Origin::Replaced {
            reason: format!(
                "the objects directory of store {a} is gone or was replaced (no {STORE_ID_FILE})"
            ),
        },
        (None, Some(b)) => Origin::Replaced {
            reason: format!("the index of store {b} is gone or was replaced"),
        },
    };
    let id = StoreId::random();
    record(&db, id, origin != Origin::Adopted)?;
    drop(db);
    write_marker(&objects, id)?;
    if let Origin::Replaced { reason } = &origin {
        tracing::warn!(store = %id, "a new store: {reason}; its old records are dropped");
    }
    Ok((id, origin))
}

fn read_recorded(db: &Database) -> Result<Option<StoreId>, StoreError> {
    let txn = db.begin_read()?;
    let meta = match txn.open_table(META) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let hi = meta.get(HI)?.map(|v| v.value());
    let lo = meta.get(LO)?.map(|v| v.value());
    Ok(match (hi, lo) {
        (Some(hi), Some(lo)) => Some(StoreId(((hi as u128) << 64) | lo as u128)),
        _ => None,
    })
}

/// Does the index hold any table besides the kept ones with a row in it?
fn has_records(db: &Database) -> Result<bool, StoreError> {
    let txn = db.begin_read()?;
    for handle in txn.list_tables()? {
        if KEPT_TABLES.contains(&handle.name()) {
            continue;
        }
        let table = txn.open_untyped_table(handle)?;
        if table.len()? > 0 {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Records `id` and (if `drop_records`) drops every table but the kept ones, in one
/// durable transaction.
fn record(db: &Database, id: StoreId, drop_records: bool) -> Result<(), StoreError> {
    let mut txn = db.begin_write()?;
    txn.set_durability(Durability::Immediate);
    if drop_records {
        let stale: Vec<_> = txn
            .list_tables()?
            .filter(|h| !KEPT_TABLES.contains(&h.name()))
            .collect();
        for handle in stale {
            txn.delete_table(handle)?;
        }
        let multimaps: Vec<_> = txn.list_multimap_tables()?.collect();
        for handle in multimaps {
            txn.delete_multimap_table(handle)?;
        }
    }
    {
        let mut meta = txn.open_table(META)?;
        meta.insert(HI, (id.0 >> 64) as u64)?;
        meta.insert(LO, id.0 as u64)?;
    }
    txn.commit()?;
    Ok(())
}

fn read_marker(objects: &Path) -> Result<Option<StoreId>, StoreError> {
    let path = objects.join(STORE_ID_FILE);
    match std::fs::read_to_string(&path) {
        // An unreadable marker is no marker: the store is new.
        Ok(text) => Ok(text.trim().parse().ok()),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(StoreError::io(format!("reading {}", path.display()), &e)),
    }
}

fn write_marker(objects: &Path, id: StoreId) -> Result<(), StoreError> {
    use std::io::Write;
    let path = objects.join(STORE_ID_FILE);
    let temp = objects.join(format!("{STORE_ID_FILE}.tmp"));
    let io = |what: &str, p: &Path, e: std::io::Error| {
        StoreError::io(format!("{what} {}", p.display()), &e)
    };
    let mut f = std::fs::File::create(&temp).map_err(|e| io("creating", &temp, e))?;
    f.write_all(format!("{id}\n").as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(|e| io("writing", &temp, e))?;
    std::fs::rename(&temp, &path).map_err(|e| io("renaming", &temp, e))?;
    sync_dir(objects)
}
