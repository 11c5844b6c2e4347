//! `Unlink` and `Rmdir`: removing a file or an empty directory.
//!
//! Owns: dropping an entry and its inode, and reporting the objects a removed file
//! held. Must never: remove a non-empty directory or a volume's root.

use crate::{chunks, DirError, DirReply, DirResult, Ino, Namespace};
use keel_core::{ObjectId, UnixMillis};

impl Namespace {
    pub(crate) fn unlink(&mut self, volume: &str, path: &str, at: UnixMillis) -> DirResult {
        let target = self.locate(volume, path)?;
        let Some(name) = target.last() else {
            return Err(DirError::is_dir(path));
        };
        let dir = self.parent_dir(&target, path)?;
        let ino = self
            .child(dir, name)
            .ok_or_else(|| DirError::not_found(path))?;
        if self.inode(ino).is_dir() {
            return Err(DirError::is_dir(path));
        }
        if target.dir_only {
            return Err(DirError::not_dir(path));
        }
        let freed = self.drop_entry(dir, name, ino, at);
        Ok(DirReply::Freed { inode: None, freed })
    }

    pub(crate) fn rmdir(&mut self, volume: &str, path: &str, at: UnixMillis) -> DirResult {
        let target = self.locate(volume, path)?;
        let Some(name) = target.last() else {
            return Err(DirError::invalid_argument(
                path,
                "a volume's root cannot be removed",
            ));
        };
        let dir = self.parent_dir(&target, path)?;
        let ino = self
            .child(dir, name)
            .ok_or_else(|| DirError::not_found(path))?;
        if !self.inode(ino).is_dir() {
            return Err(DirError::not_dir(path));
        }
        if !self.is_empty_dir(ino) {
            return Err(DirError::not_empty(path));
        }
        self.drop_entry(dir, name, ino, at);
        Ok(DirReply::Done)
    }

    /// Removes entry `name` (naming `ino`, a file or an empty directory) from `dir`,
    /// and the inode once nothing links to it. Returns the objects that frees.
    pub(crate) fn drop_entry(
        &mut self,
        dir: Ino,
        name: &str,
        ino: Ino,
        at: UnixMillis,
    ) -> Vec<ObjectId> {
        self.remove_entry(dir, name);
        self.touch_dir(dir, at);
        let inode = self.inode_mut(ino);
        if inode.is_dir() {
            self.remove_inode(ino);
            self.inode_mut(dir).nlink -= 1;
            return Vec::new();
        }
        inode.nlink -= 1;
        inode.ctime = at;
        if inode.nlink > 0 {
            return Vec::new();
        }
        let gone = self.remove_inode(ino);
        chunks::freed(&gone.chunks, &[])
    }
}
