//! The operations behind the commands, one per file, and the steps they share.
//!
//! Owns: creating an inode under a directory and stamping a directory's times. Must
//! never: change state before every check of the command passed (each operation
//! resolves and validates first, then changes), so that a failed command changes
//! nothing.

use crate::model::Owner;
use crate::{FileKind, Ino, Inode, Namespace};
use keel_core::UnixMillis;

pub(crate) mod mkdir;
pub(crate) mod put;
pub(crate) mod remove;
pub(crate) mod rename;
pub(crate) mod setattr;
pub(crate) mod volume;
pub(crate) mod write;

impl Namespace {
    /// Creates an inode named `name` in directory `dir` (which must not hold `name`).
    pub(crate) fn create_inode(
        &mut self,
        dir: Ino,
        name: &str,
        kind: FileKind,
        owner: Owner,
        at: UnixMillis,
    ) -> Ino {
        let ino = self.allocate_ino();
        self.put_inode(Inode::new(ino, kind, owner, dir, at));
        self.put_entry(dir, name, ino);
        if kind == FileKind::Dir {
            self.inode_mut(dir).nlink += 1;
        }
        self.touch_dir(dir, at);
        ino
    }

    /// Creates the directories `names` below `dir`, each in the previous one; returns
    /// the last (or `dir` if there are none).
    pub(crate) fn create_dirs(
        &mut self,
        mut dir: Ino,
        names: &[String],
        owner: Owner,
        at: UnixMillis,
    ) -> Ino {
        for name in names {
            dir = self.create_inode(dir, name, FileKind::Dir, owner, at);
        }
        dir
    }

    /// A directory's entries changed at `at`.
    pub(crate) fn touch_dir(&mut self, dir: Ino, at: UnixMillis) {
        let inode = self.inode_mut(dir);
        inode.mtime = at;
        inode.ctime = at;
    }
}
