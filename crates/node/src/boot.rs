//! The boot service's local half: how did this node come up?
//!
//! A data directory with no configuration database is a first boot. A `clean-shutdown`
//! marker, written as the last act of an orderly stop and removed at start, means a
//! restart; its absence means the previous run ended abruptly: a return after failure.
//! Whatever the type, a node never resumes a Primary role by itself: the arbiter decides.

use keel_core::BootType;
use std::io;
use std::path::Path;

const MARKER: &str = "clean-shutdown";
const DB_FILE: &str = "raft.redb";

/// Determines the boot type and removes the marker (so a crash from now on is seen as
/// one at the next start).
pub fn detect(data_dir: &Path) -> io::Result<BootType> {
    std::fs::create_dir_all(data_dir)?;
    let marker = data_dir.join(MARKER);
    let boot = if !data_dir.join(DB_FILE).exists() {
        BootType::FirstBoot
    } else if marker.exists() {
        BootType::Restart
    } else {
        BootType::ReturnAfterFailure
    };
    if marker.exists() {
        std::fs::remove_file(&marker)?;
        sync_dir(data_dir)?;
    }
    Ok(boot)
}

/// Records an orderly stop. Call after everything else is flushed.
pub fn mark_clean_shutdown(data_dir: &Path) -> io::Result<()> {
    let f = std::fs::File::create(data_dir.join(MARKER))?;
    f.sync_all()?;
    sync_dir(data_dir)
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_boot_restart_and_return_after_failure() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(detect(d.path()).unwrap(), BootType::FirstBoot);
        std::fs::write(d.path().join(DB_FILE), b"x").unwrap();
        assert_eq!(detect(d.path()).unwrap(), BootType::ReturnAfterFailure);
        mark_clean_shutdown(d.path()).unwrap();
        assert_eq!(detect(d.path()).unwrap(), BootType::Restart);
        assert_eq!(detect(d.path()).unwrap(), BootType::ReturnAfterFailure);
    }
}
