//! A node's own capacity: the disk holding its data directory (total, used, free) and
//! the live objects and bytes its storage holds per set, counted from its own index.
//!
//! Each node reports only itself, in its `/v1/status` answer (`local`); the client,
//! which asks every member for its status anyway, puts the figures together. No RPC
//! between members and no heartbeat field: the least intrusive way to get them.
//!
//! Owns: the count and a short cache of it. Must never write, lock an object, or run
//! on the async runtime (it scans the index: the caller uses `spawn_blocking`).

use crate::admin_api::{CapacityView, SetUsage};
use crate::node::NodeShared;
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a count is reused: a status poll every second must not rescan the index.
const CACHE_FOR: Duration = Duration::from_secs(2);

/// Objects read per index page while counting.
const PAGE: usize = 1024;

/// The last count and when it was taken.
#[derive(Default)]
pub struct CapacityCache(Mutex<Option<(Instant, CapacityView)>>);

impl CapacityCache {
    /// This node's capacity, counted at most every [`CACHE_FOR`]. Blocking.
    pub fn get(&self, node: &NodeShared) -> CapacityView {
        if let Some((at, view)) = &*self.0.lock().unwrap_or_else(|e| e.into_inner()) {
            if at.elapsed() < CACHE_FOR {
                return view.clone();
            }
        }
        let view = count(node);
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some((Instant::now(), view.clone()));
        view
    }
}

/// Counts now. A figure that cannot be read is left at 0 (and logged at debug).
fn count(node: &NodeShared) -> CapacityView {
    let dir = &node.cfg.data_dir;
    let (total, mut free) = disk(dir).unwrap_or_else(|e| {
        tracing::debug!("capacity: cannot read the disk of {}: {e}", dir.display());
        (0, 0)
    });
    let mut sets = vec![];
    if let Some(storage) = &node.storage {
        // The store's own figure honours its fail points (a test's full disk).
        if let Ok(f) = storage.store.free_bytes() {
            free = f.min(total.max(f));
        }
        let ids: Vec<String> = node.db.read(|s| s.sets.keys().cloned().collect());
        for set in ids {
            let usage = set_usage(&storage.store, &set);
            if usage.objects > 0 {
                sets.push(usage);
            }
        }
    }
    CapacityView {
        data_dir: dir.display().to_string(),
        disk_total_bytes: total,
        disk_used_bytes: total.saturating_sub(free),
        disk_free_bytes: free,
        sets,
    }
}

/// Live objects of `set` in this store and their bytes.
fn set_usage(store: &keel_store::ObjectStore, set: &str) -> SetUsage {
    let mut usage = SetUsage {
        set: set.to_string(),
        ..Default::default()
    };
    let mut after = None;
    loop {
        let page = match store.list_set(set, after, PAGE) {
            Ok(p) => p,
            Err(e) => {
                tracing::debug!(set, "capacity: cannot list the set: {e}");
                return usage;
            }
        };
        for o in page.iter().filter(|o| !o.deleted) {
            usage.objects += 1;
            usage.bytes += o.size;
        }
        if page.len() < PAGE {
            return usage;
        }
        after = page.last().map(|o| o.id);
    }
}

/// Total and free (to an unprivileged writer) bytes of the file system holding `path`.
pub fn disk(path: &Path) -> std::io::Result<(u64, u64)> {
    let c_path = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::other("path contains a NUL byte"))?;
    let mut stats = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `c_path` is a valid NUL-terminated string and `stats` points to writable
    // memory of the right type; statvfs fills it completely when it returns 0.
    let rc = unsafe { libc::statvfs(c_path.as_ptr(), stats.as_mut_ptr()) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: statvfs returned 0, so `stats` is initialized.
    let stats = unsafe { stats.assume_init() };
    #[allow(clippy::unnecessary_cast)] // the field types differ between platforms
    let frsize = stats.f_frsize as u64;
    #[allow(clippy::unnecessary_cast)]
    Ok((
        (stats.f_blocks as u64).saturating_mul(frsize),
        (stats.f_bavail as u64).saturating_mul(frsize),
    ))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_disk_of_a_temporary_directory_has_a_size() {
        let dir = tempfile::tempdir().unwrap();
        let (total, free) = super::disk(dir.path()).unwrap();
        assert!(total > 0 && free <= total);
    }

    #[test]
    fn a_missing_directory_is_an_error_not_a_panic() {
        assert!(super::disk(std::path::Path::new("/nonexistent/keel/dir")).is_err());
    }
}
