//! Records scoped by set: one node may hold an object for two storage sets at once (a
//! rebalance between sets that share it), and nothing done for one set touches the
//! other's copy. And the migration of a format-1 store, whose records were per id.

mod common;

use common::*;
use keel_core::ObjectId;
use keel_store::{ObjectMeta, ObjectStore, StoreError, FORMAT_VERSION, INDEX_FILE};

const OLD: &str = "st-1";
const NEW: &str = "st-4";

#[test]
fn one_id_in_two_sets_is_two_objects() {
    let (_dir, store) = temp_store();
    let id = ObjectId(0xabc);
    // The old set's copy at a high version of its epoch; the new set's at a low one
    // of another epoch: versions are compared within a set only.
    store.put(OLD, id, b"old set", v(7, 900)).unwrap();
    store.put(NEW, id, b"new set", v(1, 5)).unwrap();
    assert_eq!(store.read(OLD, id, 0, 100).unwrap(), b"old set");
    assert_eq!(store.read(NEW, id, 0, 100).unwrap(), b"new set");
    assert_eq!(store.stat(NEW, id).unwrap().unwrap().version, v(1, 5));
    assert_ne!(data_path_in(&store, OLD, id), data_path_in(&store, NEW, id));

    // The old set's delete (a rebalance's last step) leaves the new set's copy.
    store.delete(OLD, id, v(7, 901)).unwrap();
    assert_eq!(store.read(OLD, id, 0, 1), Err(StoreError::NotFound { id }));
    assert_eq!(store.read(NEW, id, 0, 100).unwrap(), b"new set");
    store.verify(NEW, id).unwrap();
    assert!(data_path_in(&store, NEW, id).exists());

    // A catch-up of the old set (forget, purge) leaves it too.
    store.purge_tombstone(OLD, id).unwrap();
    store.forget(OLD, id).unwrap();
    assert_eq!(store.stat(OLD, id).unwrap(), None);
    assert_eq!(store.read(NEW, id, 0, 100).unwrap(), b"new set");

    // And the other way round.
    store.put(OLD, id, b"back", v(8, 1)).unwrap();
    store.forget(NEW, id).unwrap();
    assert_eq!(store.read(OLD, id, 0, 100).unwrap(), b"back");
    assert_eq!(store.stat(NEW, id).unwrap(), None);
    assert_eq!(store.list_set(OLD, None, 10).unwrap().len(), 1);
    assert!(store.list_set(NEW, None, 10).unwrap().is_empty());
}

#[test]
fn an_older_version_in_another_set_is_not_refused() {
    let (_dir, store) = temp_store();
    let id = ObjectId(1);
    store.write(OLD, id, 0, b"x", v(3, 50)).unwrap();
    store.write(NEW, id, 0, b"y", v(1, 1)).unwrap();
    store.truncate(NEW, id, 0, v(1, 2)).unwrap();
    assert_eq!(
        store.write(OLD, id, 0, b"z", v(3, 49)),
        Err(StoreError::OlderVersion {
            id,
            presented: v(3, 49),
            current: v(3, 50)
        })
    );
}

#[test]
fn sets_with_unusual_ids_stay_inside_the_store() {
    let (dir, store) = temp_store();
    let id = ObjectId(9);
    for set in ["..", "a/b", "", "%2E"] {
        store.put(set, id, set.as_bytes(), v(1, 1)).unwrap();
    }
    for set in ["..", "a/b", "", "%2E"] {
        assert_eq!(store.read(set, id, 0, 10).unwrap(), set.as_bytes());
        assert!(data_path_in(&store, set, id).starts_with(dir.path().join("objects")));
    }
}

/// Writes a format-1 store by hand: records keyed by id, data at objects/<2>/<32>.
fn format_1_store(dir: &std::path::Path, objects: &[(ObjectId, &str, &[u8], bool)]) {
    let db = redb::Database::create(dir.join(INDEX_FILE)).unwrap();
    let txn = db.begin_write().unwrap();
    {
        let meta: redb::TableDefinition<&str, u64> = redb::TableDefinition::new("meta");
        txn.open_table(meta).unwrap().insert("format", 1).unwrap();
        let table: redb::TableDefinition<u128, &[u8]> = redb::TableDefinition::new("objects");
        let by_set: redb::TableDefinition<(&str, u128), ()> =
            redb::TableDefinition::new("set_objects");
        let mut table = txn.open_table(table).unwrap();
        let mut by_set = txn.open_table(by_set).unwrap();
        for (id, set, data, deleted) in objects {
            let record = ObjectMeta {
                set: set.to_string(),
                size: data.len() as u64,
                version: v(1, 1),
                block_crcs: if *deleted {
                    vec![]
                } else {
                    vec![crc32fast::hash(data)]
                },
                deleted: *deleted,
            };
            let bytes = bincode::serialize(&record).unwrap();
            table.insert(id.0, bytes.as_slice()).unwrap();
            by_set.insert((*set, id.0), ()).unwrap();
            if !deleted {
                let hex = id.to_string();
                let fan_out = dir.join("objects").join(&hex[..2]);
                std::fs::create_dir_all(&fan_out).unwrap();
                std::fs::write(fan_out.join(&hex), data).unwrap();
            }
        }
    }
    txn.commit().unwrap();
}

#[test]
fn a_format_1_store_is_migrated_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b, gone) = (ObjectId(1), ObjectId(0xff << 120), ObjectId(3));
    format_1_store(
        dir.path(),
        &[
            (a, OLD, b"one", false),
            (b, NEW, b"two", false),
            (gone, OLD, b"", true),
        ],
    );
    for _ in 0..2 {
        // Twice: a migrated store opens as format 2 with nothing to do.
        let store = ObjectStore::open(dir.path()).unwrap();
        assert_eq!(store.read(OLD, a, 0, 10).unwrap(), b"one");
        assert_eq!(store.read(NEW, b, 0, 10).unwrap(), b"two");
        store.verify(NEW, b).unwrap();
        assert!(store.stat(OLD, gone).unwrap().unwrap().deleted);
        assert_eq!(store.stat(NEW, a).unwrap(), None);
        assert_eq!(store.list_set(OLD, None, 10).unwrap().len(), 2);
        assert!(data_path_in(&store, OLD, a).exists());
    }
    assert!(!dir.path().join("objects").join("00").exists());
    let db = redb::Database::open(dir.path().join(INDEX_FILE)).unwrap();
    let txn = db.begin_read().unwrap();
    let meta: redb::TableDefinition<&str, u64> = redb::TableDefinition::new("meta");
    let format = txn
        .open_table(meta)
        .unwrap()
        .get("format")
        .unwrap()
        .unwrap();
    assert_eq!(format.value(), FORMAT_VERSION);
}

#[test]
fn a_migration_interrupted_after_moving_files_runs_again() {
    let dir = tempfile::tempdir().unwrap();
    let a = ObjectId(0x42);
    format_1_store(dir.path(), &[(a, OLD, b"moved early", false)]);
    // As if a crash came after the rename but before the index commit.
    let hex = a.to_string();
    let moved = dir
        .path()
        .join("objects")
        .join(keel_store::set_dir_name(OLD))
        .join(&hex[..2]);
    std::fs::create_dir_all(&moved).unwrap();
    std::fs::rename(
        dir.path().join("objects").join(&hex[..2]).join(&hex),
        moved.join(&hex),
    )
    .unwrap();
    let store = ObjectStore::open(dir.path()).unwrap();
    assert_eq!(store.read(OLD, a, 0, 100).unwrap(), b"moved early");
}
