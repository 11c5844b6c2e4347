//! Detecting damaged data: a flipped byte is reported as `Corrupt` naming its block by
//! reads and by `verify`, a partial write never blesses a damaged block, and a `put` of
//! the good bytes (from a replica) repairs the object.

mod common;

use common::{data_path, pattern, temp_store, v, SET};
use keel_core::ObjectId;
use keel_store::{StoreError, BLOCK_SIZE};
use std::os::unix::fs::FileExt;

const B: u64 = BLOCK_SIZE;

fn flip_byte(store: &keel_store::ObjectStore, id: ObjectId, at: u64) {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(data_path(store, id))
        .unwrap();
    let mut byte = [0u8];
    file.read_exact_at(&mut byte, at).unwrap();
    file.write_all_at(&[byte[0] ^ 0x01], at).unwrap();
}

#[test]
fn a_flipped_byte_is_detected_and_a_put_repairs_it() {
    let (_dir, store) = temp_store();
    let id = ObjectId(0xabc);
    let good = pattern((3 * B + 10) as usize, 4);
    store.put(SET, id, &good, v(1, 1)).unwrap();
    flip_byte(&store, id, 2 * B + 5);

    let corrupt = StoreError::Corrupt { id, block: 2 };
    assert_eq!(store.verify(SET, id), Err(corrupt.clone()));
    assert_eq!(store.read(SET, id, 2 * B, 10), Err(corrupt.clone()));
    assert_eq!(store.read(SET, id, B, 2 * B), Err(corrupt.clone()));
    assert_eq!(corrupt.code(), "corrupt");
    // Blocks that are intact still read.
    assert_eq!(
        store.read(SET, id, 0, 2 * B).unwrap(),
        &good[..(2 * B) as usize]
    );
    assert_eq!(
        store.read(SET, id, 3 * B, 10).unwrap(),
        &good[(3 * B) as usize..]
    );

    // A partial write into the damaged block is refused rather than giving the
    // damaged bytes a fresh CRC; a write elsewhere proceeds.
    assert_eq!(
        store.write(SET, id, 2 * B + 100, b"x", v(1, 2)),
        Err(corrupt.clone())
    );
    store.write(SET, id, 0, b"y", v(1, 2)).unwrap();
    // A shrink that keeps part of the damaged block is refused too.
    assert_eq!(store.truncate(SET, id, 2 * B + 1, v(1, 3)), Err(corrupt));

    // The repair: the good bytes from a replica, at the replica's (same) version.
    let mut repaired = good.clone();
    repaired[0] = b'y';
    store.put(SET, id, &repaired, v(1, 2)).unwrap();
    store.verify(SET, id).unwrap();
    assert_eq!(store.read(SET, id, 0, u64::MAX).unwrap(), repaired);
}

#[test]
fn a_missing_or_short_data_file_is_corruption() {
    let (_dir, store) = temp_store();
    let id = ObjectId(0xdef);
    store
        .put(SET, id, &pattern((2 * B) as usize, 1), v(1, 1))
        .unwrap();
    // A crash between a shrink of the file and the index commit leaves it short.
    std::fs::OpenOptions::new()
        .write(true)
        .open(data_path(&store, id))
        .unwrap()
        .set_len(B + 1)
        .unwrap();
    assert_eq!(
        store.verify(SET, id),
        Err(StoreError::Corrupt { id, block: 1 })
    );
    assert_eq!(store.read(SET, id, 0, 10).unwrap().len(), 10);

    std::fs::remove_file(data_path(&store, id)).unwrap();
    assert_eq!(
        store.read(SET, id, 0, 10),
        Err(StoreError::Corrupt { id, block: 0 })
    );
    assert_eq!(
        store.write(SET, id, 0, b"x", v(1, 2)),
        Err(StoreError::Corrupt { id, block: 0 })
    );
    store.put(SET, id, b"back", v(1, 1)).unwrap();
    assert_eq!(store.read(SET, id, 0, 10).unwrap(), b"back");
}

/// A crash after a file was extended but before its index commit leaves bytes past the
/// recorded end; they were never acknowledged and must not show through a later gap.
#[test]
fn unacknowledged_bytes_past_the_end_never_show() {
    let (_dir, store) = temp_store();
    let id = ObjectId(0x123);
    store.write(SET, id, 0, b"abc", v(1, 1)).unwrap();
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(data_path(&store, id))
        .unwrap();
    file.write_all_at(b"GARBAGE", 3).unwrap();
    store.write(SET, id, 20, b"z", v(1, 2)).unwrap();
    let mut expected = b"abc".to_vec();
    expected.resize(20, 0);
    expected.push(b'z');
    assert_eq!(store.read(SET, id, 0, 100).unwrap(), expected);
    store.verify(SET, id).unwrap();
}
