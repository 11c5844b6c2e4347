//! Writes and reads at offsets: gaps, block boundaries, truncates, the end of an
//! object, and a randomized run checked against an in-memory model.

mod common;

use common::{pattern, temp_store, v, Rng, SET};
use keel_core::ObjectId;
use keel_store::{StoreError, BLOCK_SIZE, MAX_WRITE};

const B: u64 = BLOCK_SIZE;

#[test]
fn write_creates_and_read_returns_the_bytes() {
    let (_dir, store) = temp_store();
    let id = ObjectId(7);
    let stat = store.write(SET, id, 0, b"hello", v(1, 1)).unwrap();
    assert_eq!((stat.size, stat.version, stat.deleted), (5, v(1, 1), false));
    assert_eq!(stat.set, SET);
    assert_eq!(store.read(SET, id, 0, 5).unwrap(), b"hello");
    assert_eq!(store.read(SET, id, 1, 3).unwrap(), b"ell");
    store.write(SET, id, 5, b" world", v(1, 2)).unwrap();
    assert_eq!(store.read(SET, id, 0, 100).unwrap(), b"hello world");
    store.write(SET, id, 0, b"J", v(1, 3)).unwrap();
    assert_eq!(store.read(SET, id, 0, 11).unwrap(), b"Jello world");
    store.verify(SET, id).unwrap();
}

#[test]
fn a_gap_reads_as_zeros() {
    let (_dir, store) = temp_store();
    let id = ObjectId(1);
    store.write(SET, id, 0, b"ab", v(1, 1)).unwrap();
    // Past the first block and a whole block of gap.
    let offset = 2 * B + 100;
    let stat = store.write(SET, id, offset, b"cd", v(1, 2)).unwrap();
    assert_eq!(stat.size, offset + 2);
    let all = store.read(SET, id, 0, stat.size).unwrap();
    assert_eq!(&all[..2], b"ab");
    assert!(all[2..offset as usize].iter().all(|b| *b == 0));
    assert_eq!(&all[offset as usize..], b"cd");
    store.verify(SET, id).unwrap();

    // A first write far from zero creates a sparse object.
    let fresh = ObjectId(2);
    store.write(SET, fresh, 3 * B, b"x", v(1, 1)).unwrap();
    assert_eq!(store.read(SET, fresh, B - 1, 2).unwrap(), vec![0, 0]);
    assert_eq!(store.read(SET, fresh, 3 * B, 5).unwrap(), b"x");
}

#[test]
fn an_empty_write_past_the_end_extends_with_zeros() {
    let (_dir, store) = temp_store();
    let id = ObjectId(3);
    store.write(SET, id, 0, b"abc", v(1, 1)).unwrap();
    let stat = store.write(SET, id, B + 10, b"", v(1, 2)).unwrap();
    assert_eq!(stat.size, B + 10);
    assert_eq!(store.read(SET, id, B, 100).unwrap(), vec![0; 10]);
    store.verify(SET, id).unwrap();
}

#[test]
fn ranges_across_block_boundaries() {
    let (_dir, store) = temp_store();
    let id = ObjectId(4);
    let data = pattern((3 * B + 1234) as usize, 9);
    store.put(SET, id, &data, v(1, 1)).unwrap();
    for (offset, len) in [
        (B - 1, 2),
        (B - 10, B + 20),
        (0, 3 * B + 1234),
        (2 * B, B),
        (3 * B, 5000),
    ] {
        let end = (offset + len).min(data.len() as u64);
        assert_eq!(
            store.read(SET, id, offset, len).unwrap(),
            &data[offset as usize..end as usize],
            "read at {offset} of {len}"
        );
    }
    // Overwrite straddling two boundaries, then read it back whole.
    let patch = pattern((B + 200) as usize, 77);
    let mut expected = data.clone();
    expected[(B - 100) as usize..(2 * B + 100) as usize].copy_from_slice(&patch);
    store.write(SET, id, B - 100, &patch, v(1, 2)).unwrap();
    assert_eq!(
        store.read(SET, id, 0, expected.len() as u64).unwrap(),
        expected
    );
    store.verify(SET, id).unwrap();
}

#[test]
fn truncate_shrinks_and_grows() {
    let (_dir, store) = temp_store();
    let id = ObjectId(5);
    let data = pattern((2 * B + 500) as usize, 1);
    store.put(SET, id, &data, v(1, 1)).unwrap();

    let stat = store.truncate(SET, id, B + 7, v(1, 2)).unwrap();
    assert_eq!((stat.size, stat.version), (B + 7, v(1, 2)));
    assert_eq!(
        store.read(SET, id, 0, u64::MAX).unwrap(),
        &data[..(B + 7) as usize]
    );
    store.verify(SET, id).unwrap();

    let stat = store.truncate(SET, id, 3 * B, v(1, 3)).unwrap();
    assert_eq!(stat.size, 3 * B);
    let all = store.read(SET, id, 0, 3 * B).unwrap();
    assert_eq!(&all[..(B + 7) as usize], &data[..(B + 7) as usize]);
    assert!(all[(B + 7) as usize..].iter().all(|b| *b == 0));
    store.verify(SET, id).unwrap();

    store.truncate(SET, id, 0, v(1, 4)).unwrap();
    assert_eq!(store.read(SET, id, 0, 10).unwrap(), Vec::<u8>::new());
    store.verify(SET, id).unwrap();

    let missing = ObjectId(99);
    assert_eq!(
        store.truncate(SET, missing, 1, v(1, 1)),
        Err(StoreError::NotFound { id: missing })
    );
}

#[test]
fn reads_at_and_past_the_end() {
    let (_dir, store) = temp_store();
    let id = ObjectId(6);
    store.write(SET, id, 0, b"0123456789", v(1, 1)).unwrap();
    assert_eq!(store.read(SET, id, 10, 5).unwrap(), Vec::<u8>::new());
    assert_eq!(store.read(SET, id, 8, 5).unwrap(), b"89");
    assert_eq!(store.read(SET, id, 3, 0).unwrap(), Vec::<u8>::new());
    let err = store.read(SET, id, 11, 1).unwrap_err();
    assert_eq!(
        err,
        StoreError::PastEnd {
            id,
            offset: 11,
            size: 10
        }
    );
    assert_eq!(err.code(), "past_end");
    assert_eq!(
        store.read(SET, id, u64::MAX, u64::MAX).unwrap_err().code(),
        "past_end"
    );

    let empty = ObjectId(8);
    store.put(SET, empty, b"", v(1, 1)).unwrap();
    assert_eq!(store.read(SET, empty, 0, 100).unwrap(), Vec::<u8>::new());
    assert_eq!(store.read(SET, empty, 1, 1).unwrap_err().code(), "past_end");

    let missing = ObjectId(9);
    assert_eq!(
        store.read(SET, missing, 0, 1),
        Err(StoreError::NotFound { id: missing })
    );
}

#[test]
fn oversized_requests_are_refused_without_panicking() {
    let (_dir, store) = temp_store();
    let id = ObjectId(10);
    let too_big = vec![0u8; (MAX_WRITE + 1) as usize];
    assert_eq!(
        store
            .write(SET, id, 0, &too_big, v(1, 1))
            .unwrap_err()
            .code(),
        "too_large"
    );
    assert_eq!(
        store.put(SET, id, &too_big, v(1, 1)).unwrap_err().code(),
        "too_large"
    );
    assert_eq!(
        store
            .write(SET, id, u64::MAX, b"x", v(1, 1))
            .unwrap_err()
            .code(),
        "too_large"
    );
    assert_eq!(
        store
            .truncate(SET, id, u64::MAX, v(1, 1))
            .unwrap_err()
            .code(),
        "too_large"
    );
    assert_eq!(store.stat(SET, id).unwrap(), None, "nothing was written");
}

/// Random writes, truncates and puts against an in-memory model; every step is read
/// back whole and verified, so every CRC path (extend, merge, gap, shrink) is checked.
#[test]
fn random_changes_match_a_model() {
    let (_dir, store) = temp_store();
    let id = ObjectId(0xfeed);
    let mut model: Vec<u8> = Vec::new();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for step in 1..=200u64 {
        let version = v(1, step);
        match rng.below(10) {
            0..=5 => {
                let offset = rng.below(4 * B);
                let len = rng.below(B + B / 2) as usize;
                let data = pattern(len, step as u8);
                store.write(SET, id, offset, &data, version).unwrap();
                let end = offset as usize + len;
                if model.len() < end {
                    model.resize(end, 0);
                }
                model[offset as usize..end].copy_from_slice(&data);
            }
            6..=8 if store.stat(SET, id).unwrap().is_some() => {
                let size = rng.below(4 * B) as usize;
                store.truncate(SET, id, size as u64, version).unwrap();
                model.resize(size, 0);
            }
            _ => {
                let data = pattern(rng.below(3 * B) as usize, step as u8 ^ 0x55);
                store.put(SET, id, &data, version).unwrap();
                model = data;
            }
        }
        assert_eq!(
            store.read(SET, id, 0, u64::MAX).unwrap(),
            model,
            "step {step}"
        );
        store.verify(SET, id).unwrap();
        let offset = rng.below(model.len() as u64 + 1);
        let len = rng.below(2 * B);
        let end = (offset + len).min(model.len() as u64);
        assert_eq!(
            store.read(SET, id, offset, len).unwrap(),
            &model[offset as usize..end as usize],
            "step {step}: range {offset}+{len}"
        );
    }
}
