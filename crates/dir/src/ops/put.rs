//! `PutFile`: create a file or replace its whole content in one step.
//!
//! Owns: the content swap (chunks, size, generation, times) and the objects it frees.
//! Must never: touch a directory's content, or keep a reference to a freed object.

use crate::model::Owner;
use crate::{chunks, ChunkRef, DirError, DirReply, DirResult, FileKind, Namespace};
use keel_core::UnixMillis;

/// The mode of directories `create_parents` makes.
const PARENT_MODE: u32 = 0o755;

/// A file's new content.
pub(crate) struct Content {
    pub size: u64,
    pub chunks: Vec<ChunkRef>,
    pub md5: Option<[u8; 16]>,
    pub meta: std::collections::BTreeMap<String, String>,
}

impl Namespace {
    pub(crate) fn put_file(
        &mut self,
        volume: &str,
        path: &str,
        content: Content,
        owner: Owner,
        create_parents: bool,
        at: UnixMillis,
    ) -> DirResult {
        let target = self.locate(volume, path)?;
        let chunk_size = self.volumes[volume].chunk_size;
        chunks::check(&content.chunks, content.size, chunk_size, path)?;
        let Some(name) = target.last().map(str::to_owned) else {
            return Err(DirError::is_dir(path));
        };
        let (deepest, found) = self.walk_existing(target.root, target.ancestors(), path)?;
        let missing = &target.ancestors()[found..];
        if !missing.is_empty() && !create_parents {
            return Err(DirError::not_found(path));
        }
        if !self.inode(deepest).is_dir() {
            return Err(DirError::not_dir(path));
        }
        // With ancestors missing, `deepest` is not the parent and the file is new.
        let existing = match missing.is_empty() {
            true => self.child(deepest, &name),
            false => None,
        };
        match existing {
            Some(ino) if self.inode(ino).is_dir() => Err(DirError::is_dir(path)),
            Some(_) if target.dir_only => Err(DirError::not_dir(path)),
            Some(ino) => {
                let file = self.inode_mut(ino);
                let freed = chunks::freed(&file.chunks, &content.chunks);
                file.size = content.size;
                file.chunks = content.chunks;
                file.md5 = content.md5;
                file.meta = content.meta;
                file.generation += 1;
                file.mtime = at;
                file.ctime = at;
                Ok(DirReply::Freed {
                    inode: Some(file.clone()),
                    freed,
                })
            }
            None if target.dir_only => Err(DirError::is_dir(path)),
            None => {
                let parent_owner = Owner {
                    mode: PARENT_MODE,
                    ..owner
                };
                let dir = self.create_dirs(deepest, missing, parent_owner, at);
                let ino = self.create_inode(dir, &name, FileKind::File, owner, at);
                let file = self.inode_mut(ino);
                file.size = content.size;
                file.chunks = content.chunks;
                file.md5 = content.md5;
                file.meta = content.meta;
                Ok(DirReply::Freed {
                    inode: Some(file.clone()),
                    freed: Vec::new(),
                })
            }
        }
    }
}
