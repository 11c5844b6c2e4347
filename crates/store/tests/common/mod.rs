//! Helpers shared by the object store's integration tests: a store in a fresh temporary
//! directory, versions, recognizable bytes, and a small deterministic random generator.

#![allow(dead_code)] // each test file uses a different subset

use keel_core::{Epoch, ObjectId, Version};
use keel_store::ObjectStore;
use std::path::PathBuf;

pub const SET: &str = "set-a";

/// A store in its own temporary directory (removed when the `TempDir` drops).
pub fn temp_store() -> (tempfile::TempDir, ObjectStore) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = ObjectStore::open(dir.path()).expect("open store");
    (dir, store)
}

pub fn v(epoch: u64, seq: u64) -> Version {
    Version {
        epoch: Epoch(epoch),
        seq,
    }
}

/// `len` bytes that differ from block to block and from `seed` to `seed`.
pub fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ ((i >> 16) as u8))
        .collect()
}

/// Path of an object's data file in [`SET`] (the layout is part of the on-disk format).
pub fn data_path(store: &ObjectStore, id: ObjectId) -> PathBuf {
    data_path_in(store, SET, id)
}

/// Path of an object's data file in `set`.
pub fn data_path_in(store: &ObjectStore, set: &str, id: ObjectId) -> PathBuf {
    let hex = id.to_string();
    store
        .dir()
        .join("objects")
        .join(keel_store::set_dir_name(set))
        .join(&hex[..2])
        .join(hex)
}

/// xorshift64*: reproducible randomness without a dependency.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}
