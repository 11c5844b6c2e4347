//! Reading objects: ranges verified block by block, and whole-object verification.
//!
//! Owns: [`ObjectStore::read`] and [`ObjectStore::verify`]. Every block a read touches
//! is read whole and checked against its CRC before any of its bytes are returned.
//! Must never: change a data file or the index, or return bytes it has not verified.

use crate::blocks::{block_count, BLOCK_SIZE};
use crate::error::StoreError;
use crate::files::{open_data, Blocks};
use crate::space::check_transfer;
use crate::store::ObjectStore;
use keel_core::ObjectId;

impl ObjectStore {
    /// Reads up to `len` bytes of `id` in `set` from `offset`, verifying the CRC of every block touched.
    ///
    /// - `offset` past the end: [`StoreError::PastEnd`]; `offset` at the end: empty.
    /// - A range running past the end returns the bytes that exist.
    /// - Missing or deleted object: [`StoreError::NotFound`].
    /// - More than [`crate::MAX_WRITE`] bytes to return (after clipping at the end):
    ///   [`StoreError::TooLarge`]; read large objects in pieces.
    /// - A block that does not match its CRC: [`StoreError::Corrupt`] naming it.
    pub fn read(
        &self,
        set: &str,
        id: ObjectId,
        offset: u64,
        len: u64,
    ) -> Result<Vec<u8>, StoreError> {
        let _shared = self.locks.read(id);
        let meta = self.live_record(set, id)?;
        if offset > meta.size {
            return Err(StoreError::PastEnd {
                id,
                offset,
                size: meta.size,
            });
        }
        let len = len.min(meta.size - offset);
        if len == 0 {
            return Ok(Vec::new());
        }
        check_transfer(len)?;
        let file = open_data(&self.layout.data_path(set, id), id, false)?;
        let blocks = Blocks {
            id,
            size: meta.size,
            crcs: &meta.block_crcs,
        };
        let end = offset + len;
        let mut out = Vec::with_capacity(len as usize);
        for index in offset / BLOCK_SIZE..=(end - 1) / BLOCK_SIZE {
            let bytes = blocks.read_verified(&file, index)?;
            let start = index * BLOCK_SIZE;
            let from = offset.saturating_sub(start) as usize;
            let to = (end - start).min(bytes.len() as u64) as usize;
            out.extend_from_slice(&bytes[from..to]);
        }
        Ok(out)
    }

    /// Verifies every block of `id` against its CRC: [`StoreError::Corrupt`] naming the
    /// first bad block, [`StoreError::NotFound`] if missing or deleted.
    pub fn verify(&self, set: &str, id: ObjectId) -> Result<(), StoreError> {
        let _shared = self.locks.read(id);
        let meta = self.live_record(set, id)?;
        let count = block_count(meta.size);
        if meta.block_crcs.len() as u64 != count {
            let block = count.min(meta.block_crcs.len() as u64);
            return Err(StoreError::Corrupt { id, block });
        }
        let file = open_data(&self.layout.data_path(set, id), id, false)?;
        let blocks = Blocks {
            id,
            size: meta.size,
            crcs: &meta.block_crcs,
        };
        for index in 0..count {
            blocks.read_verified(&file, index)?;
        }
        Ok(())
    }
}
