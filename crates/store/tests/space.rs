//! Full disks: an operation adding more than the free space (less the reserve) is
//! refused before anything is written, and a disk filling up in the middle of a write
//! is reported as `NoSpace` (with `put` leaving the old content intact).

mod common;

use common::{data_path, temp_store, v, SET};
use keel_core::ObjectId;
use keel_store::{check_space, StoreError, SPACE_RESERVE};

#[test]
fn the_admission_rule_keeps_the_reserve() {
    let free = 10 * SPACE_RESERVE;
    assert_eq!(check_space(free - SPACE_RESERVE, free), Ok(()));
    assert_eq!(
        check_space(free - SPACE_RESERVE + 1, free),
        Err(StoreError::NoSpace {
            needed: free - SPACE_RESERVE + 1,
            free
        })
    );
    assert_eq!(
        check_space(0, 0),
        Ok(()),
        "overwrites and shrinks always pass"
    );
    assert_eq!(
        check_space(1, SPACE_RESERVE / 2).unwrap_err().code(),
        "no_space"
    );
}

#[test]
fn growing_past_the_free_space_is_refused_and_writes_nothing() {
    let (_dir, store) = temp_store();
    assert!(store.free_bytes().unwrap() > 0, "statvfs answers");
    let id = ObjectId(1);
    store.write(SET, id, 0, b"keep", v(1, 1)).unwrap();

    // --- the file system has 1000 bytes beyond the reserve
    store
        .fail_points()
        .set_free_bytes(Some(SPACE_RESERVE + 1000));
    assert_eq!(store.free_bytes().unwrap(), SPACE_RESERVE + 1000);
    let no_space = StoreError::NoSpace {
        needed: 1001,
        free: SPACE_RESERVE + 1000,
    };
    // A gap counts: the object would grow by 1001 bytes.
    assert_eq!(
        store.write(SET, id, 1004, b"x", v(1, 2)),
        Err(no_space.clone())
    );
    assert_eq!(store.truncate(SET, id, 1005, v(1, 2)), Err(no_space));
    assert_eq!(
        store
            .put(SET, ObjectId(2), &[7; 1001], v(1, 1))
            .unwrap_err()
            .code(),
        "no_space"
    );
    let stat = store.stat(SET, id).unwrap().unwrap();
    assert_eq!((stat.size, stat.version), (4, v(1, 1)));
    assert_eq!(store.read(SET, id, 0, 10).unwrap(), b"keep");
    assert_eq!(store.stat(SET, ObjectId(2)).unwrap(), None);

    // Growth that fits, overwrites and shrinks still pass on a full disk.
    store.write(SET, id, 4, &[1; 1000], v(1, 3)).unwrap();
    store.fail_points().set_free_bytes(Some(0));
    store.write(SET, id, 0, b"KEEP", v(1, 4)).unwrap();
    store.truncate(SET, id, 2, v(1, 5)).unwrap();
    store.delete(SET, id, v(1, 6)).unwrap();
}

#[test]
fn a_disk_filling_up_during_put_leaves_the_old_content() {
    let (_dir, store) = temp_store();
    let id = ObjectId(3);
    store.put(SET, id, b"old content", v(1, 1)).unwrap();

    // --- the disk fills up while the new bytes are written
    store.fail_points().set_data_write_enospc(true);
    let err = store.put(SET, id, b"new content", v(1, 2)).unwrap_err();
    assert_eq!(err.code(), "no_space", "{err}");
    let temp = data_path(&store, id).with_extension("tmp");
    assert!(!temp.exists(), "temp file removed");
    assert_eq!(store.read(SET, id, 0, 100).unwrap(), b"old content");
    assert_eq!(store.stat(SET, id).unwrap().unwrap().version, v(1, 1));

    // A write at an offset is reported the same way; the index is not advanced.
    let err = store.write(SET, id, 3, b"X", v(1, 2)).unwrap_err();
    assert_eq!(err.code(), "no_space");
    assert_eq!(store.stat(SET, id).unwrap().unwrap().version, v(1, 1));

    // --- space is back
    store.fail_points().set_data_write_enospc(false);
    store.put(SET, id, b"new content", v(1, 2)).unwrap();
    assert_eq!(store.read(SET, id, 0, 100).unwrap(), b"new content");
}
