//! Reads by inode number, for gateways that name files by inode (NFS file handles):
//! which volume an inode is in, its path, a name in a directory, a directory's
//! entries with their inodes.
//!
//! Owns: following `Inode::parent` links to a volume's root. Must never: change state,
//! or loop on a corrupt parent chain (the walk is bounded by the number of inodes).
//! Cost: finding an inode's name scans its parent's entries (the entries are keyed by
//! `(directory, name)`), so [`Namespace::path_of`] is linear in the size of the
//! directories on the way; commands that name a file by inode
//! ([`crate::DirCommand::WriteChunks`]) need no path.

use crate::{DirError, Ino, Inode, Namespace};
use std::ops::Bound;

impl Namespace {
    /// The volume root an inode lies under (following parent links), if it exists.
    pub fn root_of(&self, ino: Ino) -> Option<Ino> {
        let mut at = ino;
        for _ in 0..=self.inodes.len() {
            let parent = self.inodes.get(&at)?.parent;
            if parent == at {
                return Some(at);
            }
            at = parent;
        }
        None
    }

    /// The name of the volume an inode lies in, if it exists.
    pub fn volume_of(&self, ino: Ino) -> Option<String> {
        let root = self.root_of(ino)?;
        self.volumes
            .values()
            .find(|v| v.root == root)
            .map(|v| v.name.clone())
    }

    /// The name `ino` has in its parent directory (`None` for a root or a missing
    /// inode).
    pub fn name_of(&self, ino: Ino) -> Option<String> {
        let parent = self.inodes.get(&ino)?.parent;
        if parent == ino {
            return None;
        }
        self.entries
            .range((parent, String::new())..)
            .take_while(|((dir, _), _)| *dir == parent)
            .find(|(_, child)| **child == ino)
            .map(|((_, name), _)| name.clone())
    }

    /// The volume and absolute path (`"/"` for a root) of an inode; `NotFound`
    /// (naming `#ino`) if it does not exist.
    pub fn path_of(&self, ino: Ino) -> Result<(String, String), DirError> {
        let gone = || DirError::not_found(&format!("#{ino}"));
        let volume = self.volume_of(ino).ok_or_else(gone)?;
        let mut names = Vec::new();
        let mut at = ino;
        loop {
            let parent = self.inodes.get(&at).ok_or_else(gone)?.parent;
            if parent == at {
                break;
            }
            names.push(self.name_of(at).ok_or_else(gone)?);
            at = parent;
        }
        names.reverse();
        Ok((volume, format!("/{}", names.join("/"))))
    }

    /// The inode named `name` in directory `dir`: `NotFound` if the directory is
    /// missing or has no such entry, `NotDir` if `dir` is a file.
    pub fn child_inode(&self, dir: Ino, name: &str) -> Result<Inode, DirError> {
        let shown = format!("#{dir}/{name}");
        let d = self
            .inodes
            .get(&dir)
            .ok_or_else(|| DirError::not_found(&shown))?;
        if !d.is_dir() {
            return Err(DirError::not_dir(&shown));
        }
        let ino = self
            .child(dir, name)
            .ok_or_else(|| DirError::not_found(&shown))?;
        Ok(self.inode(ino).clone())
    }

    /// Up to `limit` entries of directory `dir` after the name `after`, in byte order
    /// of their names, with their inodes; the flag says more follow.
    pub fn list(
        &self,
        dir: Ino,
        after: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<(String, Inode)>, bool), DirError> {
        let shown = format!("#{dir}");
        let d = self
            .inodes
            .get(&dir)
            .ok_or_else(|| DirError::not_found(&shown))?;
        if !d.is_dir() {
            return Err(DirError::not_dir(&shown));
        }
        let start = match after {
            Some(name) => Bound::Excluded((dir, name.to_owned())),
            None => Bound::Included((dir, String::new())),
        };
        let mut out: Vec<(String, Inode)> = self
            .entries
            .range((start, Bound::Unbounded))
            .take_while(|((parent, _), _)| *parent == dir)
            .take(limit.saturating_add(1))
            .map(|((_, name), ino)| (name.clone(), self.inode(*ino).clone()))
            .collect();
        let more = out.len() > limit;
        out.truncate(limit);
        Ok((out, more))
    }
}
