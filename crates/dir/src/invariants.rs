//! The namespace's invariants, checked on demand (tests, and after loading state from
//! disk).
//!
//! Owns: [`Namespace::check_invariants`]. Must never: repair anything; it only reports
//! the first violation it finds.

use crate::{chunks, Ino, Namespace};
use std::collections::BTreeMap;

impl Namespace {
    /// Checks that the state is whole: every volume's root is a directory that is its
    /// own parent; every other inode is reached from exactly one root through exactly
    /// one entry, and its parent is the directory holding it; link counts are right
    /// (files 1, directories 2 plus their subdirectories); only files have content,
    /// and it fits the volume's chunk size; no inode number is at or past the counter;
    /// the token memory is consistent.
    pub fn check_invariants(&self) -> Result<(), String> {
        let mut reached: BTreeMap<Ino, u64> = BTreeMap::new(); // inode -> its volume's chunk size
        for volume in self.volumes.values() {
            let root = self.inodes.get(&volume.root).ok_or_else(|| {
                format!("volume {:?}: root {} is missing", volume.name, volume.root)
            })?;
            if !root.is_dir() || root.parent != root.ino {
                return Err(format!("volume {:?}: bad root {root:?}", volume.name));
            }
            reached.insert(root.ino, volume.chunk_size);
            let mut pending = vec![root.ino];
            while let Some(dir) = pending.pop() {
                let mut subdirs = 0;
                for ((_, name), &ino) in self
                    .entries
                    .range((dir, String::new())..)
                    .take_while(|((p, _), _)| *p == dir)
                {
                    let inode = self
                        .inodes
                        .get(&ino)
                        .ok_or_else(|| format!("entry {dir}/{name:?} names missing inode {ino}"))?;
                    if reached.insert(ino, volume.chunk_size).is_some() {
                        return Err(format!("inode {ino} is reached twice (at {dir}/{name:?})"));
                    }
                    if inode.parent != dir {
                        return Err(format!(
                            "inode {ino} at {dir}/{name:?} says its parent is {}",
                            inode.parent
                        ));
                    }
                    if inode.is_dir() {
                        subdirs += 1;
                        pending.push(ino);
                    }
                }
                let inode = &self.inodes[&dir];
                if inode.nlink != 2 + subdirs {
                    return Err(format!(
                        "directory {dir} has nlink {} and {subdirs} subdirectories",
                        inode.nlink
                    ));
                }
            }
        }
        for ((dir, name), ino) in &self.entries {
            if !reached.contains_key(dir) {
                return Err(format!("entry {dir}/{name:?} -> {ino} hangs off no volume"));
            }
        }
        for (ino, inode) in &self.inodes {
            let chunk_size = reached
                .get(ino)
                .ok_or_else(|| format!("inode {ino} is reached from no volume"))?;
            if *ino != inode.ino || *ino >= self.next_ino {
                return Err(format!(
                    "inode {ino} is numbered {} (counter {})",
                    inode.ino, self.next_ino
                ));
            }
            let content_ok = if inode.is_dir() {
                inode.size == 0 && inode.chunks.is_empty()
            } else {
                inode.nlink == 1
                    && chunks::check(&inode.chunks, inode.size, *chunk_size, "").is_ok()
            };
            if !content_ok {
                return Err(format!("inode {ino} has bad content or links: {inode:?}"));
            }
        }
        self.tokens.check()
    }
}
