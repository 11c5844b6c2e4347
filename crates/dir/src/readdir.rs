//! Listing a directory, a page at a time, in name order.
//!
//! Owns: [`Namespace::readdir`] and its page shapes. Must never: hold a cursor in the
//! namespace (the next page starts after a name, so paging survives changes between
//! pages and needs no state on any replica).

use crate::{DirError, FileKind, Ino, Namespace};
use keel_core::UnixMillis;
use serde::{Deserialize, Serialize};
use std::ops::Bound;

/// One entry of a directory listing.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct DirEntry {
    pub name: String,
    pub ino: Ino,
    pub kind: FileKind,
    pub size: u64,
    pub mtime: UnixMillis,
}

/// A page of a directory listing. `next` is the name to pass as `after` for the next
/// page, `None` on the last page.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct DirPage {
    pub entries: Vec<DirEntry>,
    pub next: Option<String>,
}

impl Namespace {
    /// Up to `limit` entries of the directory at `path`, in byte order of their names,
    /// starting after the name `after` (from the first with `None`).
    pub fn readdir(
        &self,
        volume: &str,
        path: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<DirPage, DirError> {
        let dir = self.resolve(&self.locate(volume, path)?, path)?;
        if !self.inode(dir).is_dir() {
            return Err(DirError::not_dir(path));
        }
        if limit == 0 {
            return Err(DirError::invalid_argument(
                path,
                "a page holds at least one entry",
            ));
        }
        let start = match after {
            Some(name) => Bound::Excluded((dir, name.to_owned())),
            None => Bound::Included((dir, String::new())),
        };
        let mut entries: Vec<DirEntry> = self
            .entries
            .range((start, Bound::Unbounded))
            .take_while(|((parent, _), _)| *parent == dir)
            .take(limit.saturating_add(1))
            .map(|((_, name), ino)| {
                let inode = self.inode(*ino);
                DirEntry {
                    name: name.clone(),
                    ino: *ino,
                    kind: inode.kind,
                    size: inode.size,
                    mtime: inode.mtime,
                }
            })
            .collect();
        let next = if entries.len() > limit {
            entries.truncate(limit);
            entries.last().map(|e| e.name.clone())
        } else {
            None
        };
        Ok(DirPage { entries, next })
    }
}
