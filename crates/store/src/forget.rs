//! Forgetting an object outright: its index record (live or tombstone) and its data
//! file, whatever its version. Catch-up and repair use it before copying the
//! Primary's version over a local one that is newer but was never acknowledged (a
//! write of a deposed Primary), which `put` would refuse as an older version.
//!
//! Must never: be used on a path that replays client writes (it ignores versions).

use crate::files::{remove_file, sync_dir};
use crate::{ObjectStore, StoreError};
use keel_core::ObjectId;

impl ObjectStore {
    /// Removes every trace of `id` in `set` (its copies in other sets stay). No
    /// record: success.
    pub fn forget(&self, set: &str, id: ObjectId) -> Result<(), StoreError> {
        let _exclusive = self.locks.write(id);
        if self.index.get(set, id)?.is_none() {
            return Ok(());
        }
        self.index.remove(set, id)?;
        if remove_file(&self.layout.data_path(set, id))? {
            sync_dir(&self.layout.fan_out(set, id))?;
        }
        Ok(())
    }
}
