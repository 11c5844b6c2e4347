//! `WriteChunks` (a write at an offset, by inode) and the check of `Expect`.
//!
//! Owns: compare-and-swap of chunks (each replaced only if it is still what the
//! proposer read) and the expectation check that fences path commands proposed by
//! inode. Must never: change anything when one expectation fails, let a chunk list
//! grow with a gap, or put back an object the file no longer references.

use crate::{chunks, ChunkChange, DirError, DirReply, DirResult, Expected, Ino, Namespace};
use keel_core::UnixMillis;

impl Namespace {
    pub(crate) fn write_chunks(
        &mut self,
        volume: &str,
        ino: Ino,
        changes: &[ChunkChange],
        size: u64,
        at: UnixMillis,
    ) -> DirResult {
        let shown = format!("#{ino}");
        let chunk_size = self
            .volumes
            .get(volume)
            .ok_or_else(|| DirError::NoVolume {
                volume: volume.into(),
            })?
            .chunk_size;
        let Some(file) = self.inodes.get(&ino) else {
            return Err(DirError::not_found(&shown));
        };
        if file.is_dir() {
            return Err(DirError::is_dir(&shown));
        }
        if self.volume_of(ino).as_deref() != Some(volume) {
            return Err(DirError::not_found(&shown));
        }
        let mut new_chunks = file.chunks.clone();
        let mut replaced = Vec::new();
        for change in changes {
            let index = usize::try_from(change.index).unwrap_or(usize::MAX);
            let current = new_chunks.get(index).copied();
            if current != change.expect {
                return Err(DirError::moved(
                    &shown,
                    format!(
                        "chunk {} is {:?}, the write expected {:?}",
                        change.index, current, change.expect
                    ),
                ));
            }
            match current {
                Some(old) => {
                    replaced.push(old);
                    new_chunks[index] = change.chunk;
                }
                None if index == new_chunks.len() => new_chunks.push(change.chunk),
                None => {
                    return Err(DirError::invalid_argument(
                        &shown,
                        format!(
                            "chunk {} would leave a gap after chunk {}",
                            change.index,
                            new_chunks.len()
                        ),
                    ))
                }
            }
        }
        let new_size = size.max(file.size);
        chunks::check(&new_chunks, new_size, chunk_size, &shown)?;
        let freed = chunks::freed(&replaced, &new_chunks);
        let file = self.inode_mut(ino);
        file.chunks = new_chunks;
        file.size = new_size;
        file.generation += 1;
        file.md5 = None;
        file.mtime = at;
        file.ctime = at;
        Ok(DirReply::Freed {
            inode: Some(file.clone()),
            freed,
        })
    }

    /// Checks every expectation of an `Expect` against the current state.
    pub(crate) fn check_expected(&self, volume: &str, expect: &[Expected]) -> Result<(), DirError> {
        for e in expect {
            let at = self.locate(volume, &e.path)?;
            let found = self.walk_existing(at.root, &at.names, &e.path).ok();
            match found {
                // Inode 0 (never handed out) expects the path to name nothing.
                Some((_, n)) if e.ino == 0 && n < at.names.len() => {}
                Some((ino, n)) if n == at.names.len() && ino == e.ino => {}
                _ => {
                    return Err(DirError::moved(
                        &e.path,
                        match e.ino {
                            0 => "it names something now".to_string(),
                            ino => format!("it no longer names inode {ino}"),
                        },
                    ))
                }
            }
        }
        Ok(())
    }
}
