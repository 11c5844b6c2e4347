//! The namespace: the state every directory replica holds, and its simple reads.
//!
//! Owns: the state's fields, its snapshot form (serde) and equality, and the reads by
//! name, path or inode number. Must never: change state outside the tracked
//! primitives of `changes.rs` (or incremental persistence loses the change).

use crate::changes::Dirty;
use crate::tokens::TokenMemory;
use crate::{DirError, Ino, Inode, NamespaceMeta, Remembered, Volume};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Every volume, inode and directory entry, the inode counter and the token memory.
///
/// Changed only by [`Namespace::apply`]. Serialized whole for Raft snapshots (the
/// record of pending changes is not part of it); compared with `==` on the state only.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct Namespace {
    pub(crate) volumes: BTreeMap<String, Volume>,
    pub(crate) inodes: BTreeMap<Ino, Inode>,
    /// `(directory, name) -> inode`.
    #[serde(with = "entry_list")]
    pub(crate) entries: BTreeMap<(Ino, String), Ino>,
    /// The next inode number to hand out; starts at 1.
    pub(crate) next_ino: Ino,
    pub(crate) tokens: TokenMemory,
    #[serde(skip)]
    pub(crate) dirty: Dirty,
}

impl Default for Namespace {
    fn default() -> Namespace {
        Namespace::from_parts([], [], [], [], NamespaceMeta::default())
    }
}

impl PartialEq for Namespace {
    fn eq(&self, other: &Namespace) -> bool {
        self.volumes == other.volumes
            && self.inodes == other.inodes
            && self.entries == other.entries
            && self.next_ino == other.next_ino
            && self.tokens == other.tokens
    }
}

impl Namespace {
    /// An empty namespace: no volumes.
    pub fn new() -> Namespace {
        Namespace::default()
    }

    pub fn volume(&self, name: &str) -> Option<&Volume> {
        self.volumes.get(name)
    }

    /// Every volume, by name.
    pub fn volumes(&self) -> impl Iterator<Item = &Volume> {
        self.volumes.values()
    }

    /// The inode at `path` in `volume` (`"/"` is the root).
    pub fn lookup(&self, volume: &str, path: &str) -> Result<Inode, DirError> {
        let ino = self.resolve(&self.locate(volume, path)?, path)?;
        Ok(self.inode(ino).clone())
    }

    /// The inode numbered `ino`, in whatever volume; `NotFound` names it `#ino`.
    pub fn getattr(&self, ino: Ino) -> Result<Inode, DirError> {
        self.inodes
            .get(&ino)
            .cloned()
            .ok_or_else(|| DirError::not_found(&format!("#{ino}")))
    }

    /// How many volumes and inodes (directories and files, roots included) there are.
    pub fn stats(&self) -> (usize, usize) {
        (self.volumes.len(), self.inodes.len())
    }

    /// Every object some file's chunk list refers to (for collecting orphans: an
    /// object no file refers to is garbage once old enough).
    pub fn referenced_objects(&self) -> std::collections::BTreeSet<keel_core::ObjectId> {
        self.inodes
            .values()
            .flat_map(|i| i.chunks.iter().map(|c| c.object))
            .collect()
    }

    /// How many idempotency tokens are remembered.
    pub fn remembered_tokens(&self) -> usize {
        self.tokens.len()
    }

    /// The reply remembered for an idempotency token, if it is.
    pub fn remembered(&self, token: u128) -> Option<&Remembered> {
        self.tokens.get(token)
    }

    /// An inode that an entry or a volume refers to. Missing means the state is
    /// corrupt, which no command can produce.
    pub(crate) fn inode(&self, ino: Ino) -> &Inode {
        self.inodes.get(&ino).unwrap_or_else(|| {
            panic!("directory state is corrupt: inode {ino} is referenced but missing")
        })
    }

    pub(crate) fn child(&self, dir: Ino, name: &str) -> Option<Ino> {
        self.entries.get(&(dir, name.to_owned())).copied()
    }

    /// Whether a directory has no entries.
    pub(crate) fn is_empty_dir(&self, dir: Ino) -> bool {
        self.entries
            .range((dir, String::new())..)
            .next()
            .is_none_or(|((parent, _), _)| *parent != dir)
    }
}

/// Entries in the snapshot form: a list of `(directory, name, inode)` (JSON maps
/// cannot have tuple keys).
mod entry_list {
    use crate::Ino;
    use serde::{Deserialize, Deserializer, Serializer};
    use std::collections::BTreeMap;

    pub fn serialize<S: Serializer>(
        entries: &BTreeMap<(Ino, String), Ino>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.collect_seq(entries.iter().map(|((dir, name), ino)| (dir, name, ino)))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<BTreeMap<(Ino, String), Ino>, D::Error> {
        let list = Vec::<(Ino, String, Ino)>::deserialize(d)?;
        Ok(list
            .into_iter()
            .map(|(dir, name, ino)| ((dir, name), ino))
            .collect())
    }
}
