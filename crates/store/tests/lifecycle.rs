//! An object's life: versions, idempotent replays, delete and tombstones, listing a
//! set for catch-up, and everything surviving a close and reopen.

mod common;

use common::{data_path, pattern, temp_store, v, SET};
use keel_core::ObjectId;
use keel_store::{ObjectStat, ObjectStore, StoreError};
use std::os::unix::fs::MetadataExt;

#[test]
fn older_versions_are_refused_and_change_nothing() {
    let (_dir, store) = temp_store();
    let id = ObjectId(1);
    store.put(SET, id, b"new", v(2, 5)).unwrap();
    let refused = StoreError::OlderVersion {
        id,
        presented: v(2, 4),
        current: v(2, 5),
    };
    assert_eq!(
        store.write(SET, id, 0, b"old", v(2, 4)),
        Err(refused.clone())
    );
    assert_eq!(store.put(SET, id, b"old", v(2, 4)), Err(refused.clone()));
    assert_eq!(store.truncate(SET, id, 0, v(2, 4)), Err(refused.clone()));
    assert_eq!(store.delete(SET, id, v(2, 4)), Err(refused));
    // An older epoch's write is older whatever its counter.
    assert_eq!(
        store
            .write(SET, id, 0, b"old", v(1, 99))
            .unwrap_err()
            .code(),
        "older_version"
    );
    assert_eq!(store.read(SET, id, 0, 10).unwrap(), b"new");
    assert_eq!(store.stat(SET, id).unwrap().unwrap().version, v(2, 5));
    // A newer epoch with a smaller counter is newer.
    store.write(SET, id, 0, b"N", v(3, 0)).unwrap();
    assert_eq!(store.read(SET, id, 0, 10).unwrap(), b"New");
}

#[test]
fn a_replayed_put_is_a_no_op() {
    let (_dir, store) = temp_store();
    let id = ObjectId(2);
    let first = store.put(SET, id, b"same", v(1, 1)).unwrap();
    let inode = || std::fs::metadata(data_path(&store, id)).unwrap().ino();
    let before = inode();
    let again = store.put(SET, id, b"same", v(1, 1)).unwrap();
    assert_eq!(first, again);
    assert_eq!(before, inode(), "the data file was not replaced");
    // The same version with other bytes is a repair: it rewrites.
    store.put(SET, id, b"fixed", v(1, 1)).unwrap();
    assert_eq!(store.read(SET, id, 0, 10).unwrap(), b"fixed");
}

#[test]
fn delete_leaves_a_tombstone_until_purged() {
    let (_dir, store) = temp_store();
    let id = ObjectId(3);
    store.put(SET, id, b"doomed", v(1, 1)).unwrap();
    store.delete(SET, id, v(1, 2)).unwrap();
    assert!(!data_path(&store, id).exists(), "data file removed");
    let tombstone = store.stat(SET, id).unwrap().unwrap();
    assert_eq!(
        (tombstone.deleted, tombstone.size, tombstone.version),
        (true, 0, v(1, 2))
    );
    assert_eq!(store.read(SET, id, 0, 1), Err(StoreError::NotFound { id }));
    assert_eq!(store.verify(SET, id), Err(StoreError::NotFound { id }));
    // Deleting again is fine; an old write replayed after the delete is refused.
    store.delete(SET, id, v(1, 2)).unwrap();
    assert_eq!(
        store.write(SET, id, 0, b"x", v(1, 1)).unwrap_err().code(),
        "older_version"
    );

    // A delete of an object never seen still records the tombstone.
    let unseen = ObjectId(4);
    store.delete(SET, unseen, v(1, 7)).unwrap();
    assert!(store.stat(SET, unseen).unwrap().unwrap().deleted);

    // A newer write recreates the object from nothing.
    store.write(SET, id, 2, b"re", v(1, 3)).unwrap();
    assert_eq!(store.read(SET, id, 0, 10).unwrap(), b"\0\0re");

    assert_eq!(
        store.purge_tombstone(SET, id),
        Err(StoreError::NotDeleted { id })
    );
    store.purge_tombstone(SET, unseen).unwrap();
    assert_eq!(store.stat(SET, unseen).unwrap(), None);
    store.purge_tombstone(SET, unseen).unwrap();
    assert!(store
        .list_set(SET, None, 10)
        .unwrap()
        .iter()
        .all(|s| s.id != unseen));
}

#[test]
fn list_set_pages_in_id_order_with_tombstones() {
    let (_dir, store) = temp_store();
    let ids: Vec<ObjectId> = [50u128, 3, 1 << 100, 7, 12, 900].map(ObjectId).to_vec();
    for (n, id) in ids.iter().enumerate() {
        store.put(SET, *id, &pattern(n, 0), v(1, n as u64)).unwrap();
    }
    store
        .put("other-set", ObjectId(5), b"elsewhere", v(1, 1))
        .unwrap();
    store.delete(SET, ObjectId(12), v(1, 10)).unwrap();

    let mut listed: Vec<ObjectStat> = Vec::new();
    let mut after = None;
    loop {
        let page = store.list_set(SET, after, 4).unwrap();
        assert!(page.len() <= 4);
        let Some(last) = page.last() else { break };
        after = Some(last.id);
        listed.extend(page);
    }
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(listed.iter().map(|s| s.id).collect::<Vec<_>>(), sorted);
    let twelve = listed.iter().find(|s| s.id == ObjectId(12)).unwrap();
    assert!(twelve.deleted && twelve.version == v(1, 10));
    assert_eq!(
        store.list_set(SET, Some(ObjectId(12)), 2).unwrap()[0].id,
        ObjectId(50)
    );
    assert!(store
        .list_set(SET, Some(ObjectId(u128::MAX)), 10)
        .unwrap()
        .is_empty());
    assert!(store.list_set(SET, None, 0).unwrap().is_empty());
    assert!(store.list_set("no-such-set", None, 10).unwrap().is_empty());
    assert_eq!(store.list_set("other-set", None, 10).unwrap().len(), 1);

    // The same id written under another set is another object: both sets list it.
    store
        .write("other-set", ObjectId(7), 0, b"second", v(1, 20))
        .unwrap();
    assert!(store
        .list_set(SET, None, 10)
        .unwrap()
        .iter()
        .any(|s| s.id == ObjectId(7)));
    assert_eq!(store.list_set("other-set", None, 10).unwrap().len(), 2);
}

#[test]
fn everything_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let big = pattern(200_000, 3);
    {
        let store = ObjectStore::open(dir.path()).unwrap();
        store.put(SET, ObjectId(1), &big, v(1, 1)).unwrap();
        store.write(SET, ObjectId(2), 10, b"tail", v(1, 2)).unwrap();
        store.truncate(SET, ObjectId(1), 150_000, v(1, 3)).unwrap();
        store.delete(SET, ObjectId(3), v(1, 4)).unwrap();
    }
    let store = ObjectStore::open(dir.path()).unwrap();
    assert_eq!(
        store.read(SET, ObjectId(1), 0, u64::MAX).unwrap(),
        &big[..150_000]
    );
    store.verify(SET, ObjectId(1)).unwrap();
    assert_eq!(
        store.read(SET, ObjectId(2), 0, 100).unwrap(),
        b"\0\0\0\0\0\0\0\0\0\0tail"
    );
    assert_eq!(
        store.stat(SET, ObjectId(1)).unwrap().unwrap().version,
        v(1, 3)
    );
    assert!(store.stat(SET, ObjectId(3)).unwrap().unwrap().deleted);
    assert_eq!(store.list_set(SET, None, 10).unwrap().len(), 3);
    assert_eq!(store.dir(), dir.path());
}

#[test]
fn an_unknown_format_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    drop(ObjectStore::open(dir.path()).unwrap());
    {
        let db = redb::Database::open(dir.path().join(keel_store::INDEX_FILE)).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let table: redb::TableDefinition<&str, u64> = redb::TableDefinition::new("meta");
            txn.open_table(table).unwrap().insert("format", 99).unwrap();
        }
        txn.commit().unwrap();
    }
    let err = ObjectStore::open(dir.path())
        .err()
        .expect("format 99 refused");
    assert_eq!(
        err,
        StoreError::Format {
            found: 99,
            supported: keel_store::FORMAT_VERSION
        }
    );
    assert_eq!(err.code(), "format");
}
