//! `Mkdir`: a directory, and with `parents` its missing ancestors.
//!
//! Owns: directory creation by path. Must never: create anything when the command
//! fails (ancestors are created only once the whole path checked out).

use crate::model::Owner;
use crate::{DirError, DirReply, DirResult, Namespace};
use keel_core::UnixMillis;

impl Namespace {
    pub(crate) fn mkdir(
        &mut self,
        volume: &str,
        path: &str,
        owner: Owner,
        parents: bool,
        at: UnixMillis,
    ) -> DirResult {
        let target = self.locate(volume, path)?;
        let (deepest, found) = self.walk_existing(target.root, &target.names, path)?;
        if found == target.names.len() {
            let existing = self.inode(deepest);
            return if parents && existing.is_dir() {
                Ok(DirReply::Inode(existing.clone()))
            } else {
                Err(DirError::exists(path))
            };
        }
        if !parents && found + 1 < target.names.len() {
            return Err(DirError::not_found(path));
        }
        let dir = self.create_dirs(deepest, &target.names[found..], owner, at);
        Ok(DirReply::Inode(self.inode(dir).clone()))
    }
}
