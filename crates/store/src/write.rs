//! Changing objects in place: writes at an offset and truncates.
//!
//! Order of every change: check the version, the size limits and the free space; work
//! out the new CRCs (reading and verifying only the old blocks that keep some old bytes
//! and cannot have their CRC extended); write or resize the file; `sync_data`; fsync
//! the directory if the file was created; commit the index. An error before the file
//! is touched changes nothing; an error after (including a full disk, reported as
//! [`StoreError::NoSpace`]) may leave part of the change in the file, which then reads
//! as [`StoreError::Corrupt`] until repaired — see [`crate::store`].
//!
//! Owns: [`ObjectStore::write`] and [`ObjectStore::truncate`]. Must never: shrink or
//! replace an object on a write, or accept a version older than the stored one.

use crate::blocks::Change;
use crate::error::StoreError;
use crate::files::{create_data, open_data, sync_dir, Blocks};
use crate::meta::{refuse_older, ObjectMeta, ObjectStat};
use crate::space::{check_transfer, checked_end, io_error};
use crate::store::ObjectStore;
use keel_core::{ObjectId, Version};
use std::fs::File;
use std::os::unix::fs::FileExt;

impl ObjectStore {
    /// Writes `data` at `offset`, extending the object (a gap reads as zeros) or
    /// creating it (also over a tombstone) if absent; records `version`.
    /// Refused: an older version than the stored one ([`StoreError::OlderVersion`]),
    /// more than [`crate::MAX_WRITE`] bytes or an end past [`crate::MAX_OBJECT_SIZE`]
    /// ([`StoreError::TooLarge`]), growth the disk has no room for
    /// ([`StoreError::NoSpace`]).
    pub fn write(
        &self,
        set: &str,
        id: ObjectId,
        offset: u64,
        data: &[u8],
        version: Version,
    ) -> Result<ObjectStat, StoreError> {
        check_transfer(data.len() as u64)?;
        let end = checked_end(offset, data.len() as u64)?;
        let _exclusive = self.locks.write(id);
        let record = self.index.get(set, id)?;
        refuse_older(id, record.as_ref(), version)?;
        let live = record.filter(|meta| !meta.deleted);
        let (old_size, old_crcs) = live
            .as_ref()
            .map_or((0, &[][..]), |meta| (meta.size, &meta.block_crcs[..]));
        let change = Change {
            old_size,
            new_size: old_size.max(end),
            offset,
            data,
        };
        self.admit_space(change.added())?;

        let path = self.layout.data_path(set, id);
        let file = if live.is_some() {
            let file = open_data(&path, id, true)?;
            self.drop_unacknowledged_tail(&file, id, old_size)?;
            file
        } else {
            self.layout.prepare_dir(set, id)?;
            create_data(&path)?
        };
        let crcs = self.changed_crcs(&file, id, &change, old_crcs)?;
        let context = format!("writing object {id}");
        let growth = change.added();
        self.fail_points
            .before_data_write()
            .and_then(|()| write_durably(&file, data, offset, change.new_size))
            .map_err(|e| io_error(&self.dir, growth, &context, &e))?;
        if live.is_none() {
            sync_dir(&self.layout.fan_out(set, id))?;
        }
        self.commit(set, id, change.new_size, version, crcs)
    }

    /// Sets the object's size to `size`: shrinking drops the tail, growing adds zeros.
    /// Refused: a missing or deleted object ([`StoreError::NotFound`]), an older
    /// version, a size past [`crate::MAX_OBJECT_SIZE`], growth the disk has no room for.
    pub fn truncate(
        &self,
        set: &str,
        id: ObjectId,
        size: u64,
        version: Version,
    ) -> Result<ObjectStat, StoreError> {
        checked_end(size, 0)?;
        let _exclusive = self.locks.write(id);
        let meta = self.live_record(set, id)?;
        refuse_older(id, Some(&meta), version)?;
        let change = Change {
            old_size: meta.size,
            new_size: size,
            offset: size,
            data: &[],
        };
        self.admit_space(change.added())?;

        let file = open_data(&self.layout.data_path(set, id), id, true)?;
        self.drop_unacknowledged_tail(&file, id, meta.size)?;
        let crcs = self.changed_crcs(&file, id, &change, &meta.block_crcs)?;
        let context = format!("resizing object {id}");
        file.set_len(size)
            .and_then(|()| file.sync_data())
            .map_err(|e| io_error(&self.dir, change.added(), &context, &e))?;
        self.commit(set, id, size, version, crcs)
    }

    /// The CRCs after `change`, reading (and verifying) old blocks from `file` only
    /// where needed.
    fn changed_crcs(
        &self,
        file: &File,
        id: ObjectId,
        change: &Change<'_>,
        old_crcs: &[u32],
    ) -> Result<Vec<u32>, StoreError> {
        let old = Blocks {
            id,
            size: change.old_size,
            crcs: old_crcs,
        };
        change.new_crcs(old_crcs, |index| old.read_verified(file, index))
    }

    /// Cuts bytes past the recorded size: left by a change whose index commit never
    /// happened (a crash), never acknowledged, and they must not show through a gap.
    fn drop_unacknowledged_tail(
        &self,
        file: &File,
        id: ObjectId,
        size: u64,
    ) -> Result<(), StoreError> {
        let context = || format!("resizing object {id}");
        let len = file
            .metadata()
            .map_err(|e| StoreError::io(context(), &e))?
            .len();
        if len > size {
            file.set_len(size)
                .map_err(|e| StoreError::io(context(), &e))?;
        }
        Ok(())
    }

    /// Records the object's new state durably.
    pub(crate) fn commit(
        &self,
        set: &str,
        id: ObjectId,
        size: u64,
        version: Version,
        block_crcs: Vec<u32>,
    ) -> Result<ObjectStat, StoreError> {
        let meta = ObjectMeta {
            set: set.to_string(),
            size,
            version,
            block_crcs,
            deleted: false,
        };
        self.index.put(id, &meta)?;
        Ok(meta.stat(id))
    }
}

/// Writes `data` at `offset`, extends the file to `size` if the data ends short of it
/// (an empty write past the end), and syncs the data.
fn write_durably(file: &File, data: &[u8], offset: u64, size: u64) -> std::io::Result<()> {
    file.write_all_at(data, offset)?;
    if size > file.metadata()?.len() {
        file.set_len(size)?;
    }
    file.sync_data()
}
