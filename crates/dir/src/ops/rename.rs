//! `Rename`: move an entry within a volume, atomically replacing a destination.
//!
//! Owns: POSIX rename rules (file over file, directory over empty directory, nothing
//! into its own subtree), parent links and directory link counts. Must never: leave
//! the state half-moved (all checks come before the first change), or move a
//! directory below itself (it would cut the subtree off its root).

use crate::{DirError, DirReply, DirResult, Namespace};
use keel_core::UnixMillis;

impl Namespace {
    pub(crate) fn rename(
        &mut self,
        volume: &str,
        from: &str,
        to: &str,
        at: UnixMillis,
    ) -> DirResult {
        let source = self.locate(volume, from)?;
        let dest = self.locate(volume, to)?;
        let Some(from_name) = source.last() else {
            return Err(DirError::invalid_argument(
                from,
                "a volume's root cannot be moved",
            ));
        };
        let Some(to_name) = dest.last() else {
            return Err(DirError::invalid_argument(
                to,
                "a volume's root cannot be replaced",
            ));
        };
        let from_dir = self.parent_dir(&source, from)?;
        let moved = self
            .child(from_dir, from_name)
            .ok_or_else(|| DirError::not_found(from))?;
        let moving_dir = self.inode(moved).is_dir();
        if !moving_dir && source.dir_only {
            return Err(DirError::not_dir(from));
        }
        if !moving_dir && dest.dir_only {
            return Err(DirError::not_dir(to));
        }
        let to_dir = self.parent_dir(&dest, to)?;
        let replaced = self.child(to_dir, to_name);
        if replaced == Some(moved) {
            // Onto itself: nothing to do (POSIX).
            return Ok(DirReply::Freed {
                inode: Some(self.inode(moved).clone()),
                freed: Vec::new(),
            });
        }
        if moving_dir && self.is_within(to_dir, moved) {
            return Err(DirError::invalid_argument(
                to,
                format!("cannot move directory {from:?} into itself"),
            ));
        }
        if let Some(old) = replaced {
            match (moving_dir, self.inode(old).is_dir()) {
                (false, true) => return Err(DirError::is_dir(to)),
                (true, false) => return Err(DirError::not_dir(to)),
                (true, true) if !self.is_empty_dir(old) => return Err(DirError::not_empty(to)),
                _ => {}
            }
        }

        let freed = match replaced {
            Some(old) => self.drop_entry(to_dir, to_name, old, at),
            None => Vec::new(),
        };
        self.remove_entry(from_dir, from_name);
        self.put_entry(to_dir, to_name, moved);
        self.touch_dir(from_dir, at);
        self.touch_dir(to_dir, at);
        if moving_dir && from_dir != to_dir {
            self.inode_mut(from_dir).nlink -= 1;
            self.inode_mut(to_dir).nlink += 1;
        }
        let inode = self.inode_mut(moved);
        inode.parent = to_dir;
        inode.ctime = at;
        Ok(DirReply::Freed {
            inode: Some(inode.clone()),
            freed,
        })
    }
}
