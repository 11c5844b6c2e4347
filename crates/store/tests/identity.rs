//! A store's identity: kept across reopens, new (with no stale records) when the
//! objects directory or the index is wiped or replaced.

mod common;

use common::{temp_store, v, SET};
use keel_core::{Epoch, ObjectId};
use keel_store::{ObjectStore, StoreOrigin, INDEX_FILE, OBJECTS_DIR, STORE_ID_FILE};

#[test]
fn a_store_keeps_its_identity_across_reopens() {
    let (dir, store) = temp_store();
    assert_eq!(store.origin(), &StoreOrigin::Created);
    let id = store.store_id();
    store.put(SET, ObjectId(1), b"one", v(1, 1)).unwrap();
    drop(store);
    let again = ObjectStore::open(dir.path()).unwrap();
    assert_eq!(again.store_id(), id);
    assert_eq!(again.origin(), &StoreOrigin::Same);
    assert_eq!(again.read(SET, ObjectId(1), 0, 10).unwrap(), b"one");
    let marker = std::fs::read_to_string(dir.path().join(OBJECTS_DIR).join(STORE_ID_FILE));
    assert_eq!(marker.unwrap().trim(), id.to_string());
}

#[test]
fn a_wiped_objects_directory_makes_a_new_store_without_stale_records() {
    let (dir, store) = temp_store();
    let old = store.store_id();
    store.put(SET, ObjectId(1), b"one", v(1, 1)).unwrap();
    store.delete(SET, ObjectId(1), v(1, 2)).unwrap();
    store.put(SET, ObjectId(2), b"two", v(1, 3)).unwrap();
    store.check_epoch(SET, Epoch(4)).unwrap();
    drop(store);
    std::fs::remove_dir_all(dir.path().join(OBJECTS_DIR)).unwrap();
    let store = ObjectStore::open(dir.path()).unwrap();
    assert_ne!(store.store_id(), old);
    assert!(
        matches!(store.origin(), StoreOrigin::Replaced { .. }),
        "{:?}",
        store.origin()
    );
    // It claims nothing it does not hold: no record, live or tombstone.
    assert_eq!(store.stat(SET, ObjectId(1)).unwrap(), None);
    assert_eq!(store.stat(SET, ObjectId(2)).unwrap(), None);
    assert!(store.list_set(SET, None, 100).unwrap().is_empty());
    // The epoch fence survives: a deposed Primary is still refused.
    assert_eq!(store.fence_epoch(SET).unwrap(), Epoch(4));
    // And it works as a store.
    store.put(SET, ObjectId(3), b"three", v(4, 1)).unwrap();
    assert_eq!(store.read(SET, ObjectId(3), 0, 10).unwrap(), b"three");
    let id = store.store_id();
    drop(store);
    assert_eq!(ObjectStore::open(dir.path()).unwrap().store_id(), id);
}

#[test]
fn a_wiped_index_makes_a_new_store() {
    let (dir, store) = temp_store();
    let old = store.store_id();
    store.put(SET, ObjectId(1), b"one", v(1, 1)).unwrap();
    drop(store);
    std::fs::remove_file(dir.path().join(INDEX_FILE)).unwrap();
    let store = ObjectStore::open(dir.path()).unwrap();
    assert_ne!(store.store_id(), old);
    assert!(matches!(store.origin(), StoreOrigin::Replaced { .. }));
    assert_eq!(store.stat(SET, ObjectId(1)).unwrap(), None);
}

#[test]
fn an_objects_directory_from_another_store_makes_a_new_store() {
    let (a_dir, a) = temp_store();
    let (b_dir, b) = temp_store();
    a.put(SET, ObjectId(1), b"a", v(1, 1)).unwrap();
    b.put(SET, ObjectId(2), b"b", v(1, 1)).unwrap();
    let (a_id, b_id) = (a.store_id(), b.store_id());
    drop((a, b));
    // Swap b's objects directory into a.
    let a_objects = a_dir.path().join(OBJECTS_DIR);
    std::fs::remove_dir_all(&a_objects).unwrap();
    std::fs::rename(b_dir.path().join(OBJECTS_DIR), &a_objects).unwrap();
    let store = ObjectStore::open(a_dir.path()).unwrap();
    assert_ne!(store.store_id(), a_id);
    assert_ne!(store.store_id(), b_id);
    assert_eq!(store.stat(SET, ObjectId(1)).unwrap(), None);
    assert_eq!(store.stat(SET, ObjectId(2)).unwrap(), None);
}

#[test]
fn a_store_from_before_identities_is_adopted_with_its_records() {
    let (dir, store) = temp_store();
    store.put(SET, ObjectId(1), b"one", v(1, 1)).unwrap();
    drop(store);
    // What a build before identities left: no identity in the index, no marker.
    {
        let db = redb::Database::create(dir.path().join(INDEX_FILE)).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let meta: redb::TableDefinition<&str, u64> = redb::TableDefinition::new("meta");
            let mut meta = txn.open_table(meta).unwrap();
            meta.remove("store_id_hi").unwrap();
            meta.remove("store_id_lo").unwrap();
        }
        txn.commit().unwrap();
    }
    std::fs::remove_file(dir.path().join(OBJECTS_DIR).join(STORE_ID_FILE)).unwrap();
    let store = ObjectStore::open(dir.path()).unwrap();
    assert_eq!(store.origin(), &StoreOrigin::Adopted);
    assert_eq!(store.read(SET, ObjectId(1), 0, 10).unwrap(), b"one");
    let id = store.store_id();
    drop(store);
    let again = ObjectStore::open(dir.path()).unwrap();
    assert_eq!((again.store_id(), again.origin()), (id, &StoreOrigin::Same));
}
