//! `CreateVolume` and `DeleteVolume`: a volume and its root directory.
//!
//! Owns: volume-level validation (name, chunk size), idempotent creation and the
//! deletion of an empty volume. Must never: change an existing volume (its settings
//! are fixed at creation), or delete a volume that holds anything.

use crate::model::Owner;
use crate::{
    validate_volume_name, DirError, DirReply, DirResult, FileKind, Inode, Namespace, Replication,
    Volume, DEFAULT_CHUNK_SIZE, MAX_CHUNK_SIZE, MIN_CHUNK_SIZE,
};
use keel_core::UnixMillis;

/// The owner and mode of a new volume's root directory.
const ROOT_OWNER: Owner = Owner {
    mode: 0o755,
    uid: 0,
    gid: 0,
};

impl Namespace {
    pub(crate) fn create_volume(
        &mut self,
        name: String,
        chunk_size: Option<u64>,
        replication: Replication,
        at: UnixMillis,
    ) -> DirResult {
        validate_volume_name(&name)?;
        let chunk_size = chunk_size.unwrap_or(DEFAULT_CHUNK_SIZE);
        if !(MIN_CHUNK_SIZE..=MAX_CHUNK_SIZE).contains(&chunk_size) {
            return Err(DirError::invalid_argument(
                &name,
                format!("chunk size {chunk_size} is not between 4 KiB and 64 MiB"),
            ));
        }
        if let Some(existing) = self.volumes.get(&name) {
            return if existing.chunk_size == chunk_size && existing.replication == replication {
                Ok(DirReply::Volume(existing.clone()))
            } else {
                Err(DirError::exists(&name))
            };
        }
        let root = self.allocate_ino();
        self.put_inode(Inode::new(root, FileKind::Dir, ROOT_OWNER, root, at));
        let volume = Volume {
            name,
            root,
            chunk_size,
            replication,
            created_at: at,
        };
        self.put_volume(volume.clone());
        Ok(DirReply::Volume(volume))
    }
}

impl Namespace {
    pub(crate) fn delete_volume(&mut self, name: &str) -> DirResult {
        let root = self
            .volumes
            .get(name)
            .ok_or_else(|| DirError::NoVolume {
                volume: name.into(),
            })?
            .root;
        if !self.is_empty_dir(root) {
            return Err(DirError::not_empty(name));
        }
        self.remove_inode(root);
        self.remove_volume(name);
        Ok(DirReply::Done)
    }
}
