//! Many threads at once: writers to different objects proceed in parallel, writers to
//! one object are serialized, and readers never see a half-done change.

mod common;

use common::{pattern, temp_store, v, SET};
use keel_core::ObjectId;
use keel_store::{ObjectStore, BLOCK_SIZE};

#[test]
fn the_store_is_shareable() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<ObjectStore>();
}

#[test]
fn writers_to_different_objects_in_parallel() {
    let (_dir, store) = temp_store();
    std::thread::scope(|scope| {
        for thread in 0..6u128 {
            let store = &store;
            scope.spawn(move || {
                for n in 0..8u128 {
                    let id = ObjectId(thread << 64 | n);
                    for seq in 0..4u64 {
                        let data = pattern(20_000, (thread as u8) ^ seq as u8);
                        store
                            .write(SET, id, seq * 20_000, &data, v(1, seq))
                            .unwrap();
                    }
                }
            });
        }
    });
    let all = store.list_set(SET, None, 1000).unwrap();
    assert_eq!(all.len(), 48);
    for stat in all {
        assert_eq!(stat.size, 80_000);
        store.verify(SET, stat.id).unwrap();
        let thread = (stat.id.0 >> 64) as u8;
        let third = store.read(SET, stat.id, 40_000, 20_000).unwrap();
        assert_eq!(third, pattern(20_000, thread ^ 2));
    }
}

#[test]
fn writers_to_one_object_are_serialized() {
    let (_dir, store) = temp_store();
    let id = ObjectId(42);
    let piece = BLOCK_SIZE / 2 + 7; // pieces share blocks, so CRC updates must not race
    std::thread::scope(|scope| {
        for thread in 0..4u64 {
            let store = &store;
            scope.spawn(move || {
                for n in 0..5u64 {
                    let slot = n * 4 + thread;
                    let data = pattern(piece as usize, slot as u8);
                    // Same version for all: equal versions are admitted.
                    store.write(SET, id, slot * piece, &data, v(1, 1)).unwrap();
                    let _ = store.read(SET, id, 0, 3 * BLOCK_SIZE).unwrap();
                }
            });
        }
    });
    store.verify(SET, id).unwrap();
    for slot in 0..20 {
        assert_eq!(
            store.read(SET, id, slot * piece, piece).unwrap(),
            pattern(piece as usize, slot as u8),
            "slot {slot}"
        );
    }
}
