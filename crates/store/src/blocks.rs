//! Blocks and their checksums: an object is cut into [`BLOCK_SIZE`] blocks (the last
//! one may be short), each with a CRC32 recorded in the index.
//!
//! Owns: block arithmetic, CRC computation, and working out the new CRCs after a
//! change ([`Change::new_crcs`]) from the old CRCs, the written bytes and, only where a
//! block keeps some old bytes that cannot be carried over by extending its CRC, the old
//! block's bytes (asked for through a callback, which must verify them). Must never: do
//! I/O itself.

use crate::error::StoreError;
use std::ops::Range;
use std::sync::OnceLock;

/// Size of a checksummed block.
pub const BLOCK_SIZE: u64 = 64 * 1024;

static ZEROS: [u8; BLOCK_SIZE as usize] = [0; BLOCK_SIZE as usize];

/// Number of blocks of an object of `size` bytes.
pub(crate) fn block_count(size: u64) -> u64 {
    size.div_ceil(BLOCK_SIZE)
}

/// Byte range of block `index` in an object of `size` bytes.
pub(crate) fn block_span(index: u64, size: u64) -> Range<u64> {
    let start = index.saturating_mul(BLOCK_SIZE);
    start.min(size)..start.saturating_add(BLOCK_SIZE).min(size)
}

/// CRCs of a whole object held in memory.
pub(crate) fn crcs_of(data: &[u8]) -> Vec<u32> {
    data.chunks(BLOCK_SIZE as usize)
        .map(crc32fast::hash)
        .collect()
}

/// CRC of one block's bytes.
pub(crate) fn crc_of(bytes: &[u8]) -> u32 {
    crc32fast::hash(bytes)
}

/// A change to an object's bytes: it goes from `old_size` to `new_size` bytes, with
/// `data` written at `offset` (no data for a truncate). Bytes past `old_size` that
/// `data` does not cover read as zeros.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Change<'a> {
    pub old_size: u64,
    pub new_size: u64,
    pub offset: u64,
    pub data: &'a [u8],
}

impl Change<'_> {
    /// Bytes the object grows by (what the file system must find room for).
    pub(crate) fn added(&self) -> u64 {
        self.new_size.saturating_sub(self.old_size)
    }

    /// The object's CRCs after the change. `old_crcs` are the CRCs before it;
    /// `read_old(i)` must return the old bytes of block `i`, verified against
    /// `old_crcs[i]` (so that a change never blesses corrupt bytes with a fresh CRC).
    pub(crate) fn new_crcs(
        &self,
        old_crcs: &[u32],
        mut read_old: impl FnMut(u64) -> Result<Vec<u8>, StoreError>,
    ) -> Result<Vec<u32>, StoreError> {
        let count = block_count(self.new_size);
        let mut crcs: Vec<u32> = old_crcs.iter().copied().take(count as usize).collect();
        crcs.resize(count as usize, 0);
        for index in self.changed_blocks() {
            crcs[index as usize] = self.block_crc(index, old_crcs, &mut read_old)?;
        }
        Ok(crcs)
    }

    /// Blocks whose bytes or length change: those the data touches and those between
    /// the old and the new end. Every other block keeps its CRC.
    fn changed_blocks(&self) -> impl Iterator<Item = u64> {
        let count = block_count(self.new_size);
        let written = self.written_blocks();
        let resized = if self.old_size == self.new_size {
            0..0
        } else {
            let low = self.old_size.min(self.new_size);
            let high = self.old_size.max(self.new_size);
            low / BLOCK_SIZE..(high - 1) / BLOCK_SIZE + 1
        };
        let resized_only = resized.filter(move |i| !written.contains(i));
        self.written_blocks()
            .chain(resized_only)
            .filter(move |i| *i < count)
    }

    fn written_blocks(&self) -> Range<u64> {
        if self.data.is_empty() {
            return 0..0;
        }
        let last = self.offset + self.data.len() as u64 - 1;
        self.offset / BLOCK_SIZE..last / BLOCK_SIZE + 1
    }

    fn block_crc(
        &self,
        index: u64,
        old_crcs: &[u32],
        read_old: &mut impl FnMut(u64) -> Result<Vec<u8>, StoreError>,
    ) -> Result<u32, StoreError> {
        let span = block_span(index, self.new_size);
        let old_span = block_span(index, self.old_size);
        // Old bytes this block keeps: [span.start, old_end).
        let old_end = self.old_size.clamp(span.start, span.end);
        let write = self.offset..self.offset + self.data.len() as u64;
        let overwrites_all_old = write.start <= span.start && write.end >= old_end;
        let keeps_old = span.start < old_end && (self.data.is_empty() || !overwrites_all_old);
        let write_touches_old = !self.data.is_empty() && write.start < old_end;

        let mut hasher;
        if !keeps_old {
            if span.end - span.start == BLOCK_SIZE && !write_overlaps(&write, &span) {
                return Ok(zero_block_crc()); // a full block of a gap
            }
            hasher = crc32fast::Hasher::new();
            self.feed_new(&mut hasher, span.start..span.end);
        } else if !write_touches_old && old_end == old_span.end {
            // The whole old block stays as a prefix: extend its CRC, no read needed.
            let old_crc = old_crcs.get(index as usize).copied().unwrap_or(0);
            hasher = crc32fast::Hasher::new_with_initial(old_crc);
            self.feed_new(&mut hasher, old_end..span.end);
        } else {
            let mut prefix = read_old(index)?;
            prefix.truncate((old_end - span.start) as usize);
            if write_touches_old {
                let from = write.start.max(span.start);
                let to = write.end.min(old_end);
                let src = &self.data[(from - self.offset) as usize..(to - self.offset) as usize];
                prefix[(from - span.start) as usize..(to - span.start) as usize]
                    .copy_from_slice(src);
            }
            hasher = crc32fast::Hasher::new();
            hasher.update(&prefix);
            self.feed_new(&mut hasher, old_end..span.end);
        }
        Ok(hasher.finalize())
    }

    /// Feeds the bytes of `range`, all at or past the old end (or all overwritten):
    /// written data where the write covers them, zeros elsewhere.
    fn feed_new(&self, hasher: &mut crc32fast::Hasher, range: Range<u64>) {
        let write = self.offset..self.offset + self.data.len() as u64;
        let mut at = range.start;
        while at < range.end {
            let next = if write.contains(&at) {
                let to = write.end.min(range.end);
                hasher.update(&self.data[(at - write.start) as usize..(to - write.start) as usize]);
                to
            } else {
                let to = if at < write.start {
                    write.start.min(range.end)
                } else {
                    range.end
                };
                hasher.update(&ZEROS[..(to - at) as usize]);
                to
            };
            at = next;
        }
    }
}

fn write_overlaps(write: &Range<u64>, span: &Range<u64>) -> bool {
    write.start < span.end && write.end > span.start
}

/// CRC of a full block of zeros (a gap), computed once.
fn zero_block_crc() -> u32 {
    static CRC: OnceLock<u32> = OnceLock::new();
    *CRC.get_or_init(|| crc32fast::hash(&ZEROS))
}

#[cfg(test)]
mod tests {
    use super::*;

    const B: u64 = BLOCK_SIZE;

    /// Applies `change` to `old` in memory and checks the CRCs against a full rehash;
    /// returns how many old blocks had to be read.
    fn check(old: &[u8], change: Change<'_>) -> usize {
        let mut new = old.to_vec();
        new.resize(change.new_size as usize, 0);
        let at = change.offset as usize;
        new[at..at + change.data.len()].copy_from_slice(change.data);
        let mut reads = 0;
        let crcs = change
            .new_crcs(&crcs_of(old), |i| {
                reads += 1;
                let span = block_span(i, old.len() as u64);
                Ok(old[span.start as usize..span.end as usize].to_vec())
            })
            .unwrap();
        assert_eq!(crcs, crcs_of(&new), "{change:?}");
        reads
    }

    fn bytes(len: u64) -> Vec<u8> {
        (0..len).map(|i| (i * 7 + 3) as u8).collect()
    }

    #[test]
    fn crcs_after_changes_match_a_full_rehash() {
        let old = bytes(2 * B + 100);
        let size = old.len() as u64;
        let data = bytes(B + 50);
        let write = |offset: u64| Change {
            old_size: size,
            new_size: size.max(offset + data.len() as u64),
            offset,
            data: &data,
        };
        let resize = |new_size| Change {
            old_size: size,
            new_size,
            offset: new_size,
            data: &[],
        };
        // An append extends the last CRC: no read, even across a gap.
        assert_eq!(check(&old, write(size)), 0);
        assert_eq!(check(&old, write(5 * B + 3)), 0);
        assert_eq!(check(&old, resize(7 * B)), 0);
        // Overwriting part of a block needs its old bytes; a whole block does not.
        assert_eq!(check(&old, write(10)), 2);
        assert_eq!(check(&old, write(B)), 1);
        assert_eq!(check(&old, write(2 * B + 99)), 1);
        // A shrink inside a block rehashes the kept prefix; on a boundary it reads none.
        assert_eq!(check(&old, resize(B + 1)), 1);
        assert_eq!(check(&old, resize(B)), 0);
        assert_eq!(check(&old, resize(0)), 0);
        let empty = Change {
            old_size: 0,
            new_size: 0,
            offset: 0,
            data: &[],
        };
        assert_eq!(check(&[], empty), 0);
    }
}
