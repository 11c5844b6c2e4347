//! Space and size limits: how many bytes one operation may move, how large an object
//! may grow, and whether the file system has room for what an operation adds.
//!
//! Owns: [`MAX_WRITE`], [`MAX_OBJECT_SIZE`], [`SPACE_RESERVE`], the admission rule
//! ([`check_space`], pure, so it can be tested with any numbers), reading the free
//! space (statvfs), and turning an OS "disk full" into [`StoreError::NoSpace`]. Must
//! never: write anything.

use crate::error::{is_no_space, StoreError};
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// The most bytes one `write`, `put` or `read` moves: the largest chunk a volume may
/// use ([`keel_core::limits::MAX_CHUNK_SIZE`], one constant for every layer).
pub const MAX_WRITE: u64 = keel_core::limits::MAX_CHUNK_SIZE;

/// The largest object: bounds offsets (and the per-block CRC list in the index, at most
/// 1 Mi CRCs).
pub const MAX_OBJECT_SIZE: u64 = 64 * 1024 * 1024 * 1024;

/// Free space kept back: an operation that would leave less than this free is refused,
/// so the index (and the file system) always has room to commit and to delete.
pub const SPACE_RESERVE: u64 = 64 * 1024 * 1024;

/// Admits an operation that adds `needed` bytes when the file system has `free` bytes
/// free: it must leave [`SPACE_RESERVE`] free. Adding nothing is always admitted.
pub fn check_space(needed: u64, free: u64) -> Result<(), StoreError> {
    if needed > 0 && needed > free.saturating_sub(SPACE_RESERVE) {
        return Err(StoreError::NoSpace { needed, free });
    }
    Ok(())
}

/// Refuses one transfer larger than [`MAX_WRITE`].
pub(crate) fn check_transfer(len: u64) -> Result<(), StoreError> {
    if len > MAX_WRITE {
        return Err(StoreError::TooLarge {
            requested: len,
            max: MAX_WRITE,
        });
    }
    Ok(())
}

/// The end of `len` bytes at `offset`, refused past [`MAX_OBJECT_SIZE`].
pub(crate) fn checked_end(offset: u64, len: u64) -> Result<u64, StoreError> {
    match offset.checked_add(len) {
        Some(end) if end <= MAX_OBJECT_SIZE => Ok(end),
        _ => Err(StoreError::TooLarge {
            requested: offset.saturating_add(len),
            max: MAX_OBJECT_SIZE,
        }),
    }
}

/// Bytes available to an unprivileged writer on the file system holding `path`.
pub(crate) fn free_bytes(path: &Path) -> Result<u64, StoreError> {
    let context = || format!("reading free space of {}", path.display());
    let c_path = CString::new(path.as_os_str().as_bytes()).map_err(|_| StoreError::Io {
        context: context(),
        message: "path contains a NUL byte".to_string(),
    })?;
    let mut stats = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `c_path` is a valid NUL-terminated string and `stats` points to writable
    // memory of the right type; statvfs fills it completely when it returns 0.
    let rc = unsafe { libc::statvfs(c_path.as_ptr(), stats.as_mut_ptr()) };
    if rc != 0 {
        return Err(StoreError::io(context(), &std::io::Error::last_os_error()));
    }
    // SAFETY: statvfs returned 0, so `stats` is initialized.
    let stats = unsafe { stats.assume_init() };
    #[allow(clippy::unnecessary_cast)] // the field types differ between platforms
    Ok((stats.f_bavail as u64).saturating_mul(stats.f_frsize as u64))
}

/// Maps an I/O error met while adding `needed` bytes: a full disk becomes
/// [`StoreError::NoSpace`] (with the free space now), anything else
/// [`StoreError::Io`] with `context`.
pub(crate) fn io_error(dir: &Path, needed: u64, context: &str, e: &std::io::Error) -> StoreError {
    if is_no_space(e) {
        StoreError::NoSpace {
            needed,
            free: free_bytes(dir).unwrap_or(0),
        }
    } else {
        StoreError::io(context, e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn space_check_keeps_the_reserve() {
        let gib = 1024 * 1024 * 1024;
        assert_eq!(check_space(0, 0), Ok(()));
        assert_eq!(check_space(1, gib), Ok(()));
        assert_eq!(check_space(gib - SPACE_RESERVE, gib), Ok(()));
        assert_eq!(
            check_space(gib - SPACE_RESERVE + 1, gib),
            Err(StoreError::NoSpace {
                needed: gib - SPACE_RESERVE + 1,
                free: gib
            })
        );
        assert!(check_space(1, SPACE_RESERVE).is_err());
        assert!(check_space(1, 10).is_err());
    }

    #[test]
    fn ends_are_bounded() {
        assert_eq!(checked_end(10, 5), Ok(15));
        assert!(checked_end(u64::MAX, 1).is_err());
        assert!(checked_end(MAX_OBJECT_SIZE, 1).is_err());
        assert!(check_transfer(MAX_WRITE + 1).is_err());
    }
}
