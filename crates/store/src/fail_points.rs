//! Named fail points, compiled only with the `fail-points` cargo feature (this crate's
//! own tests enable it): they make a full disk reachable in a test.
//!
//! - `free_bytes`: pretend the file system has this many bytes free.
//! - `data_write_enospc`: make the next data-file writes fail with ENOSPC, as a disk
//!   filling up in the middle of a write would.
//!
//! Owns: the hooks' state. Must never: do anything in a build without the feature (the
//! hooks are then empty and inlined away).

#[cfg(feature = "fail-points")]
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Fail points of one store, armed through `ObjectStore::fail_points()`.
pub struct FailPoints {
    /// `u64::MAX` means "not armed".
    #[cfg(feature = "fail-points")]
    free_bytes: AtomicU64,
    #[cfg(feature = "fail-points")]
    data_write_enospc: AtomicBool,
}

#[cfg(feature = "fail-points")]
impl FailPoints {
    pub(crate) fn new() -> FailPoints {
        FailPoints {
            free_bytes: AtomicU64::new(u64::MAX),
            data_write_enospc: AtomicBool::new(false),
        }
    }

    /// Pretend `free` bytes are free (`None`: ask the file system again).
    pub fn set_free_bytes(&self, free: Option<u64>) {
        self.free_bytes
            .store(free.unwrap_or(u64::MAX), Ordering::SeqCst);
    }

    /// Make data-file writes fail with ENOSPC until disarmed.
    pub fn set_data_write_enospc(&self, armed: bool) {
        self.data_write_enospc.store(armed, Ordering::SeqCst);
    }

    pub(crate) fn free_bytes(&self) -> Option<u64> {
        Some(self.free_bytes.load(Ordering::SeqCst)).filter(|free| *free != u64::MAX)
    }

    pub(crate) fn before_data_write(&self) -> std::io::Result<()> {
        if self.data_write_enospc.load(Ordering::SeqCst) {
            return Err(std::io::Error::from_raw_os_error(libc::ENOSPC));
        }
        Ok(())
    }
}

#[cfg(not(feature = "fail-points"))]
impl FailPoints {
    pub(crate) fn new() -> FailPoints {
        FailPoints {}
    }

    #[inline(always)]
    pub(crate) fn free_bytes(&self) -> Option<u64> {
        None
    }

    #[inline(always)]
    pub(crate) fn before_data_write(&self) -> std::io::Result<()> {
        Ok(())
    }
}
