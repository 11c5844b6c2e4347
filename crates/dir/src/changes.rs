//! Incremental persistence: the record of what commands changed, and rebuilding a
//! namespace from stored parts.
//!
//! Owns: the only primitives that change the state (each marks what it touched),
//! [`Namespace::take_changes`], [`Namespace::meta`] and [`Namespace::from_parts`].
//! The contract: storing every [`Changes`] taken (upserting `Some`, deleting `None`)
//! plus the latest [`NamespaceMeta`], then calling `from_parts` on what is stored,
//! gives a namespace equal to the live one. Must never: decide anything; that is the
//! commands' job.

use crate::tokens::{Remembered, TokenMemory};
use crate::{DirResult, Ino, Inode, Namespace, Volume};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// What changed since the last [`Namespace::take_changes`], as final values:
/// `Some` = the key's value now (insert or overwrite), `None` = the key is gone.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Changes {
    pub volumes: BTreeMap<String, Option<Volume>>,
    pub inodes: BTreeMap<Ino, Option<Inode>>,
    /// `(directory, name) -> inode`.
    pub entries: BTreeMap<(Ino, String), Option<Ino>>,
    /// Remembered replies of idempotency tokens (`None`: forgotten).
    pub tokens: BTreeMap<u128, Option<Remembered>>,
    /// [`Namespace::meta`] changed and must be stored again.
    pub meta_changed: bool,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        self.volumes.is_empty()
            && self.inodes.is_empty()
            && self.entries.is_empty()
            && self.tokens.is_empty()
            && !self.meta_changed
    }
}

/// The namespace's counters: small, stored as one value.
/// Its default is an empty namespace's.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct NamespaceMeta {
    /// The next inode number to hand out (inode numbers start at 1).
    pub next_ino: Ino,
    /// The sequence number the next remembered token gets.
    pub next_token_seq: u64,
}

impl Default for NamespaceMeta {
    fn default() -> NamespaceMeta {
        NamespaceMeta {
            next_ino: 1,
            next_token_seq: 0,
        }
    }
}

/// The keys touched since the last `take_changes` (values are read at take time).
#[derive(Clone, Debug, Default)]
pub(crate) struct Dirty {
    volumes: BTreeSet<String>,
    inodes: BTreeSet<Ino>,
    entries: BTreeSet<(Ino, String)>,
    tokens: BTreeSet<u128>,
    meta: bool,
}

impl Namespace {
    /// What changed since the last call (or since the namespace was built), and
    /// forgets it. Take it after applying a batch of commands and store it with the
    /// batch's last applied log id.
    pub fn take_changes(&mut self) -> Changes {
        let dirty = std::mem::take(&mut self.dirty);
        Changes {
            volumes: dirty
                .volumes
                .into_iter()
                .map(|name| {
                    let volume = self.volumes.get(&name).cloned();
                    (name, volume)
                })
                .collect(),
            inodes: dirty
                .inodes
                .into_iter()
                .map(|ino| (ino, self.inodes.get(&ino).cloned()))
                .collect(),
            entries: dirty
                .entries
                .into_iter()
                .map(|key| {
                    let ino = self.entries.get(&key).copied();
                    (key, ino)
                })
                .collect(),
            tokens: dirty
                .tokens
                .into_iter()
                .map(|token| (token, self.tokens.get(token).cloned()))
                .collect(),
            meta_changed: dirty.meta,
        }
    }

    /// Every row of the namespace as changes (all `Some`, `meta_changed` set), for
    /// writing a whole namespace, e.g. an installed snapshot, into emptied tables. The
    /// record of pending changes is dropped: this subsumes it.
    pub fn all_as_changes(&mut self) -> Changes {
        self.dirty = Dirty::default();
        Changes {
            volumes: self
                .volumes
                .iter()
                .map(|(name, v)| (name.clone(), Some(v.clone())))
                .collect(),
            inodes: self
                .inodes
                .iter()
                .map(|(ino, i)| (*ino, Some(i.clone())))
                .collect(),
            entries: self
                .entries
                .iter()
                .map(|(key, ino)| (key.clone(), Some(*ino)))
                .collect(),
            tokens: self
                .tokens
                .iter()
                .map(|(token, r)| (token, Some(r.clone())))
                .collect(),
            meta_changed: true,
        }
    }

    pub fn meta(&self) -> NamespaceMeta {
        NamespaceMeta {
            next_ino: self.next_ino,
            next_token_seq: self.tokens.next_seq(),
        }
    }

    /// Rebuilds a namespace from stored parts (keys are inside the values, except for
    /// entries and tokens). Nothing is recorded as changed.
    pub fn from_parts(
        volumes: impl IntoIterator<Item = Volume>,
        inodes: impl IntoIterator<Item = Inode>,
        entries: impl IntoIterator<Item = ((Ino, String), Ino)>,
        tokens: impl IntoIterator<Item = (u128, Remembered)>,
        meta: NamespaceMeta,
    ) -> Namespace {
        Namespace {
            volumes: volumes.into_iter().map(|v| (v.name.clone(), v)).collect(),
            inodes: inodes.into_iter().map(|i| (i.ino, i)).collect(),
            entries: entries.into_iter().collect(),
            next_ino: meta.next_ino,
            tokens: TokenMemory::from_parts(meta.next_token_seq, tokens),
            dirty: Dirty::default(),
        }
    }

    // The tracked primitives. Every change of state goes through one of these.

    pub(crate) fn allocate_ino(&mut self) -> Ino {
        let ino = self.next_ino;
        self.next_ino += 1;
        self.dirty.meta = true;
        ino
    }

    pub(crate) fn put_volume(&mut self, volume: Volume) {
        self.dirty.volumes.insert(volume.name.clone());
        self.volumes.insert(volume.name.clone(), volume);
    }

    pub(crate) fn remove_volume(&mut self, name: &str) {
        self.dirty.volumes.insert(name.to_owned());
        self.volumes.remove(name);
    }

    pub(crate) fn put_inode(&mut self, inode: Inode) {
        self.dirty.inodes.insert(inode.ino);
        self.inodes.insert(inode.ino, inode);
    }

    /// An inode to change in place. Panics if it is missing, like [`Namespace::inode`].
    pub(crate) fn inode_mut(&mut self, ino: Ino) -> &mut Inode {
        self.dirty.inodes.insert(ino);
        self.inodes
            .get_mut(&ino)
            .unwrap_or_else(|| panic!("directory state is corrupt: inode {ino} is missing"))
    }

    pub(crate) fn remove_inode(&mut self, ino: Ino) -> Inode {
        self.dirty.inodes.insert(ino);
        self.inodes
            .remove(&ino)
            .unwrap_or_else(|| panic!("directory state is corrupt: inode {ino} is missing"))
    }

    pub(crate) fn put_entry(&mut self, dir: Ino, name: &str, ino: Ino) {
        let key = (dir, name.to_owned());
        self.dirty.entries.insert(key.clone());
        self.entries.insert(key, ino);
    }

    pub(crate) fn remove_entry(&mut self, dir: Ino, name: &str) {
        let key = (dir, name.to_owned());
        self.entries.remove(&key);
        self.dirty.entries.insert(key);
    }

    pub(crate) fn remember(&mut self, token: u128, response: DirResult) {
        self.dirty.tokens.insert(token);
        self.dirty.meta = true;
        if let Some(forgotten) = self.tokens.remember(token, response) {
            self.dirty.tokens.insert(forgotten);
        }
    }
}
