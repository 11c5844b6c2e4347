//! A stand-in for the redb tables the configuration database keeps the namespace in:
//! one JSON row per volume, inode, entry and token, plus the meta row. Written only
//! from `take_changes`, read back only through `from_parts`: the persistence contract.

use keel_dir::{Changes, Ino, Namespace, NamespaceMeta};
use std::collections::BTreeMap;

#[derive(Default)]
pub struct Store {
    volumes: BTreeMap<String, Vec<u8>>,
    inodes: BTreeMap<Ino, Vec<u8>>,
    entries: BTreeMap<(Ino, String), Ino>,
    tokens: BTreeMap<u128, Vec<u8>>,
    meta: Option<Vec<u8>>,
    /// Rows written, to show that writes are incremental.
    pub rows_written: usize,
}

fn upsert<K: Ord, V>(table: &mut BTreeMap<K, V>, key: K, value: Option<V>) {
    match value {
        Some(v) => table.insert(key, v),
        None => table.remove(&key),
    };
}

fn parse<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> T {
    serde_json::from_slice(bytes).unwrap()
}

fn json<T: serde::Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).unwrap()
}

impl Store {
    /// Writes what changed (as the state machine does after an apply batch).
    pub fn write(&mut self, changes: Changes, meta: NamespaceMeta) {
        self.rows_written += changes.volumes.len()
            + changes.inodes.len()
            + changes.entries.len()
            + changes.tokens.len();
        for (k, v) in changes.volumes {
            upsert(&mut self.volumes, k, v.as_ref().map(json));
        }
        for (k, v) in changes.inodes {
            upsert(&mut self.inodes, k, v.as_ref().map(json));
        }
        for (k, v) in changes.entries {
            upsert(&mut self.entries, k, v);
        }
        for (k, v) in changes.tokens {
            upsert(&mut self.tokens, k, v.as_ref().map(json));
        }
        if changes.meta_changed {
            self.meta = Some(json(&meta));
        }
    }

    /// Takes the namespace's changes and writes them.
    pub fn sync(&mut self, ns: &mut Namespace) {
        let changes = ns.take_changes();
        self.write(changes, ns.meta());
    }

    /// Loads a namespace from the rows.
    pub fn load(&self) -> Namespace {
        let meta = self.meta.as_deref().map(parse).unwrap_or_default();
        Namespace::from_parts(
            self.volumes.values().map(|v| parse(v)),
            self.inodes.values().map(|v| parse(v)),
            self.entries.iter().map(|(k, v)| (k.clone(), *v)),
            self.tokens.iter().map(|(k, v)| (*k, parse(v))),
            meta,
        )
    }
}
