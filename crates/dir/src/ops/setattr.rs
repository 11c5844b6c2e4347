//! `SetAttr`: mode, owner, times and size (truncate or sparse growth).
//!
//! Owns: attribute changes and the objects a truncation frees. Must never: give a
//! directory a size, or keep a chunk that lies wholly past a file's end.

use crate::{chunks, DirError, DirReply, DirResult, Namespace};
use keel_core::UnixMillis;

/// The attributes to change; `None` leaves one as it is.
pub(crate) struct Attrs {
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub size: Option<u64>,
    pub atime: Option<UnixMillis>,
    pub mtime: Option<UnixMillis>,
}

impl Namespace {
    pub(crate) fn set_attr(
        &mut self,
        volume: &str,
        path: &str,
        attrs: Attrs,
        at: UnixMillis,
    ) -> DirResult {
        let target = self.locate(volume, path)?;
        let ino = self.resolve(&target, path)?;
        if attrs.size.is_some() && self.inode(ino).is_dir() {
            return Err(DirError::is_dir(path));
        }
        let chunk_size = self.volumes[volume].chunk_size;
        let inode = self.inode_mut(ino);
        let mut freed = Vec::new();
        if let Some(size) = attrs.size {
            let dropped = chunks::truncate(&mut inode.chunks, size, chunk_size);
            freed = chunks::freed(&dropped, &[]);
            if size != inode.size {
                inode.size = size;
                inode.generation += 1;
            }
            // The content may have changed: the MD5 of the last put no longer holds.
            inode.md5 = None;
            inode.mtime = at;
        }
        if let Some(mode) = attrs.mode {
            inode.mode = mode & 0o7777;
        }
        if let Some(uid) = attrs.uid {
            inode.uid = uid;
        }
        if let Some(gid) = attrs.gid {
            inode.gid = gid;
        }
        if let Some(atime) = attrs.atime {
            inode.atime = atime;
        }
        if let Some(mtime) = attrs.mtime {
            inode.mtime = mtime;
        }
        inode.ctime = at;
        Ok(DirReply::Freed {
            inode: Some(inode.clone()),
            freed,
        })
    }
}
