//! Whole-object changes: replace (`put`), delete (leaving a tombstone) and purging a
//! tombstone.
//!
//! `put` is atomic: the new bytes go to a temp file in the object's directory, which is
//! synced, renamed over the data file, and the directory synced, before the index is
//! committed. On any failure the temp file is removed and the old content is intact.
//! `delete` commits its tombstone before unlinking the data file (see
//! [`crate::store`]). Owns: [`ObjectStore::put`], [`ObjectStore::delete`],
//! [`ObjectStore::purge_tombstone`]. Must never: accept an older version than the
//! stored one, or purge a live object.

use crate::blocks::crcs_of;
use crate::error::StoreError;
use crate::files::{create_data, open_data, remove_file, sync_dir};
use crate::meta::{refuse_older, ObjectMeta, ObjectStat};
use crate::space::{check_transfer, io_error};
use crate::store::ObjectStore;
use keel_core::{ObjectId, Version};
use std::io::Write;
use std::os::unix::fs::FileExt;

impl ObjectStore {
    /// Replaces the whole object with `data` (creating it, also over a tombstone),
    /// atomically, at `version`. The same version with the same bytes already on disk
    /// is a no-op success; the same version with other bytes rewrites them (a repair).
    /// Refused: an older version, more than [`crate::MAX_WRITE`] bytes, no room for a
    /// second copy of the object while the temp file exists.
    pub fn put(
        &self,
        set: &str,
        id: ObjectId,
        data: &[u8],
        version: Version,
    ) -> Result<ObjectStat, StoreError> {
        check_transfer(data.len() as u64)?;
        let _exclusive = self.locks.write(id);
        let record = self.index.get(set, id)?;
        refuse_older(id, record.as_ref(), version)?;
        let crcs = crcs_of(data);
        if let Some(meta) = &record {
            if self.already_stored(set, id, meta, data, version, &crcs) {
                return Ok(meta.stat(id));
            }
        }
        let needed = data.len() as u64;
        self.admit_space(needed)?;

        self.layout.prepare_dir(set, id)?;
        let temp = self.layout.temp_path(set, id);
        let context = format!("writing object {id}");
        let written = create_data(&temp).and_then(|mut file| {
            self.fail_points
                .before_data_write()
                .and_then(|()| file.write_all(data))
                .and_then(|()| file.sync_data())
                .map_err(|e| io_error(&self.dir, needed, &context, &e))
        });
        let renamed = written.and_then(|()| {
            std::fs::rename(&temp, self.layout.data_path(set, id))
                .map_err(|e| StoreError::io(format!("renaming {}", temp.display()), &e))
        });
        if let Err(e) = renamed {
            if let Err(cleanup) = remove_file(&temp) {
                tracing::warn!(%id, error = %cleanup, "temp file of a failed put left behind");
            }
            return Err(e);
        }
        sync_dir(&self.layout.fan_out(set, id))?;
        self.commit(set, id, needed, version, crcs)
    }

    /// Deletes the object's data and leaves a tombstone at `version`, also for an
    /// object this store never had (so a replicated delete is remembered). Deleting a
    /// tombstone again at the same or a newer version succeeds.
    pub fn delete(&self, set: &str, id: ObjectId, version: Version) -> Result<(), StoreError> {
        let _exclusive = self.locks.write(id);
        let record = self.index.get(set, id)?;
        refuse_older(id, record.as_ref(), version)?;
        let tombstone = ObjectMeta::tombstone(set, version);
        if record.as_ref() != Some(&tombstone) {
            self.index.put(id, &tombstone)?;
        }
        // After the commit: a crash here leaves only an orphan file. Always tried, so a
        // retried delete removes what a failed one left.
        if remove_file(&self.layout.data_path(set, id))? {
            sync_dir(&self.layout.fan_out(set, id))?;
        }
        Ok(())
    }

    /// Forgets the tombstone of `id` in `set` (when every replica has it, catch-up no
    /// longer needs it).
    /// No record: success. A live object: [`StoreError::NotDeleted`].
    pub fn purge_tombstone(&self, set: &str, id: ObjectId) -> Result<(), StoreError> {
        let _exclusive = self.locks.write(id);
        match self.index.get(set, id)? {
            None => return Ok(()),
            Some(meta) if !meta.deleted => return Err(StoreError::NotDeleted { id }),
            Some(_) => {}
        }
        if remove_file(&self.layout.data_path(set, id))? {
            sync_dir(&self.layout.fan_out(set, id))?;
        }
        self.index.remove(set, id)
    }

    /// Whether `id` is live at `version` with exactly `data` on disk (index and file),
    /// so that a replayed `put` has nothing to do. Any doubt (a read error, corrupt
    /// bytes) answers no, and the put rewrites the object.
    fn already_stored(
        &self,
        set: &str,
        id: ObjectId,
        meta: &ObjectMeta,
        data: &[u8],
        version: Version,
        crcs: &[u32],
    ) -> bool {
        if meta.deleted
            || meta.version != version
            || meta.size != data.len() as u64
            || meta.block_crcs != crcs
        {
            return false;
        }
        let Ok(file) = open_data(&self.layout.data_path(set, id), id, false) else {
            return false;
        };
        let mut on_disk = vec![0; data.len()];
        file.read_exact_at(&mut on_disk, 0).is_ok() && on_disk == data
    }
}
