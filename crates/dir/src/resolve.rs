//! Path resolution: from a volume and a path to inodes.
//!
//! Owns: walking directory entries and the errors a walk gives (`no_volume`,
//! `not_found`, `not_dir`, `invalid_name`), always naming the path as given. Must
//! never: change state (commands resolve everything first, then change).

use crate::name::{names_dir, parse_path};
use crate::{DirError, Ino, Namespace};

/// A parsed path in a volume.
pub(crate) struct Located {
    /// The volume's root directory.
    pub root: Ino,
    pub names: Vec<String>,
    /// The path ended with a slash: its target must be a directory.
    pub dir_only: bool,
}

impl Located {
    /// The last component, or `None` for the root.
    pub fn last(&self) -> Option<&str> {
        self.names.last().map(String::as_str)
    }

    /// Every component but the last.
    pub fn ancestors(&self) -> &[String] {
        &self.names[..self.names.len().saturating_sub(1)]
    }
}

impl Namespace {
    /// Validates `path` and finds `volume`'s root.
    pub(crate) fn locate(&self, volume: &str, path: &str) -> Result<Located, DirError> {
        let names = parse_path(path)?;
        let root = self
            .volumes
            .get(volume)
            .ok_or_else(|| DirError::NoVolume {
                volume: volume.into(),
            })?
            .root;
        Ok(Located {
            root,
            names,
            dir_only: names_dir(path),
        })
    }

    /// The inode a located path names; a trailing slash on a file is `NotDir`.
    pub(crate) fn resolve(&self, at: &Located, path: &str) -> Result<Ino, DirError> {
        let ino = self.walk(at.root, &at.names, path)?;
        if at.dir_only && !self.inode(ino).is_dir() {
            return Err(DirError::not_dir(path));
        }
        Ok(ino)
    }

    /// Follows `names` from `dir`: every step must be a directory holding the next.
    pub(crate) fn walk(&self, dir: Ino, names: &[String], path: &str) -> Result<Ino, DirError> {
        let (ino, found) = self.walk_existing(dir, names, path)?;
        if found < names.len() {
            return Err(DirError::not_found(path));
        }
        Ok(ino)
    }

    /// Follows `names` from `dir` as far as they exist: returns the deepest inode
    /// reached and how many names it took. When not all were found, the inode
    /// returned is a directory (the one missing the next name).
    pub(crate) fn walk_existing(
        &self,
        dir: Ino,
        names: &[String],
        path: &str,
    ) -> Result<(Ino, usize), DirError> {
        let mut at = dir;
        for (i, name) in names.iter().enumerate() {
            if !self.inode(at).is_dir() {
                return Err(DirError::not_dir(path));
            }
            match self.child(at, name) {
                Some(next) => at = next,
                None => return Ok((at, i)),
            }
        }
        Ok((at, names.len()))
    }

    /// The directory that holds (or would hold) the target of a non-root path.
    pub(crate) fn parent_dir(&self, at: &Located, path: &str) -> Result<Ino, DirError> {
        let parent = self.walk(at.root, at.ancestors(), path)?;
        if !self.inode(parent).is_dir() {
            return Err(DirError::not_dir(path));
        }
        Ok(parent)
    }

    /// Whether `dir` is `ancestor` or lies below it (following parent links up to the
    /// root, which is its own parent).
    pub(crate) fn is_within(&self, mut dir: Ino, ancestor: Ino) -> bool {
        loop {
            if dir == ancestor {
                return true;
            }
            let parent = self.inode(dir).parent;
            if parent == dir {
                return false;
            }
            dir = parent;
        }
    }
}
