//! A file's chunk list: checking one, truncating one, and which objects a change frees.
//!
//! Owns: the arithmetic of chunk `i` covering `[i * chunk_size, i * chunk_size + len)`.
//! Must never: overflow (hostile sizes are refused, not wrapped).

use crate::{ChunkRef, DirError};
use keel_core::ObjectId;
use std::collections::BTreeSet;

/// Checks a new chunk list: every chunk holds 1 to `chunk_size` bytes and ends within
/// `size`, and no object appears twice.
pub(crate) fn check(
    chunks: &[ChunkRef],
    size: u64,
    chunk_size: u64,
    path: &str,
) -> Result<(), DirError> {
    let mut seen = BTreeSet::new();
    for (i, chunk) in chunks.iter().enumerate() {
        let bad = |reason: String| DirError::invalid_argument(path, format!("chunk {i}: {reason}"));
        if chunk.len == 0 || chunk.len > chunk_size {
            return Err(bad(format!(
                "length {} is not between 1 and the chunk size {chunk_size}",
                chunk.len
            )));
        }
        let end = (i as u64)
            .checked_mul(chunk_size)
            .and_then(|start| start.checked_add(chunk.len));
        if end.is_none_or(|end| end > size) {
            return Err(bad(format!("ends past the file size {size}")));
        }
        if !seen.insert(chunk.object) {
            return Err(bad(format!("object {} appears twice", chunk.object)));
        }
    }
    Ok(())
}

/// Cuts `chunks` to a file of `size` bytes: drops chunks starting at or past `size` and
/// shortens the one that straddles it. Returns the dropped chunks.
pub(crate) fn truncate(chunks: &mut Vec<ChunkRef>, size: u64, chunk_size: u64) -> Vec<ChunkRef> {
    // Chunks below `keep` start before `size`; no overflow: `size / chunk_size` is at
    // most `u64::MAX / chunk_size`.
    let keep = size.div_ceil(chunk_size);
    let keep = usize::try_from(keep)
        .unwrap_or(usize::MAX)
        .min(chunks.len());
    let dropped = chunks.split_off(keep);
    if let Some(last) = chunks.last_mut() {
        let start = (keep as u64 - 1) * chunk_size;
        last.len = last.len.min(size - start);
    }
    dropped
}

/// The objects `old` references that `new` does not, sorted.
pub(crate) fn freed(old: &[ChunkRef], new: &[ChunkRef]) -> Vec<ObjectId> {
    let kept: BTreeSet<ObjectId> = new.iter().map(|c| c.object).collect();
    let gone: BTreeSet<ObjectId> = old
        .iter()
        .map(|c| c.object)
        .filter(|o| !kept.contains(o))
        .collect();
    gone.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(id: u128, len: u64) -> ChunkRef {
        ChunkRef {
            object: ObjectId(id),
            len,
        }
    }

    #[test]
    fn check_refuses_bad_lists() {
        assert!(check(&[chunk(1, 10), chunk(2, 5)], 15, 10, "/f").is_ok());
        assert!(
            check(&[chunk(1, 3), chunk(2, 5)], 100, 10, "/f").is_ok(),
            "holes are fine"
        );
        for (chunks, size) in [
            (vec![chunk(1, 11)], 100),
            (vec![chunk(1, 0)], 100),
            (vec![chunk(1, 10), chunk(2, 5)], 14),
            (vec![chunk(1, 10), chunk(1, 5)], 15),
        ] {
            let err = check(&chunks, size, 10, "/f").unwrap_err();
            assert_eq!(err.code(), "invalid_argument", "{err}");
        }
        let many = vec![chunk(1, 1); 2];
        assert!(check(&many, u64::MAX, u64::MAX, "/f").is_err());
    }

    #[test]
    fn truncate_drops_and_shortens() {
        let mut chunks = vec![chunk(1, 10), chunk(2, 10), chunk(3, 4)];
        assert_eq!(truncate(&mut chunks, 15, 10), vec![chunk(3, 4)]);
        assert_eq!(chunks, vec![chunk(1, 10), chunk(2, 5)]);
        assert_eq!(truncate(&mut chunks, 20, 10), vec![]);
        assert_eq!(chunks, vec![chunk(1, 10), chunk(2, 5)]);
        assert_eq!(truncate(&mut chunks, 10, 10), vec![chunk(2, 5)]);
        assert_eq!(truncate(&mut chunks, 0, 10), vec![chunk(1, 10)]);
        assert!(chunks.is_empty());
        let mut short = vec![chunk(1, 3)];
        assert_eq!(truncate(&mut short, u64::MAX, 10), vec![]);
        assert_eq!(short, vec![chunk(1, 3)]);
    }

    #[test]
    fn freed_is_what_the_new_list_drops() {
        let old = [chunk(3, 1), chunk(1, 1), chunk(2, 1)];
        assert_eq!(freed(&old, &[chunk(1, 1)]), vec![ObjectId(2), ObjectId(3)]);
        assert_eq!(freed(&old, &old), vec![]);
    }
}
