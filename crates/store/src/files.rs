//! Data files: where an object's bytes live and the file system calls that make them
//! durable.
//!
//! Layout (format 2): `DIR/objects/set-<set>/<first 2 hex digits>/<32 hex digits of the
//! id>`, one directory per storage set, so that a node holds one copy of an object per
//! set it is a member of (during a rebalance between two sets that share this node, the
//! new set's copy and the old set's are two files). `<set>` is the set id with every
//! byte but ASCII letters, digits, `-` and `_` written as `%XX`. A whole-object replace
//! goes through `<32 hex digits>.tmp` in the same directory. Format 1 had no set
//! directory (`DIR/objects/<2 hex>/<32 hex>`); `crate::migrate` moves such files. Owns: paths,
//! creating the fan-out directories (fsyncing their parent), fsyncing directories after
//! a create, rename or unlink, and positioned reads of verified blocks. Must never:
//! touch the index or decide whether a change is allowed.

use crate::blocks::{block_span, crc_of};
use crate::error::StoreError;
use keel_core::ObjectId;
use std::fs::{File, OpenOptions};
use std::io::ErrorKind;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// Directory under the store's directory that holds the data files.
pub const OBJECTS_DIR: &str = "objects";

/// Paths of the data files under one store directory.
pub(crate) struct Layout {
    objects: PathBuf,
}

impl Layout {
    /// Creates `dir/objects` if missing.
    pub(crate) fn create(dir: &Path) -> Result<Layout, StoreError> {
        let objects = dir.join(OBJECTS_DIR);
        if create_dir(&objects)? {
            sync_dir(dir)?;
        }
        Ok(Layout { objects })
    }

    /// The directory of `set`'s data files.
    pub(crate) fn set_dir(&self, set: &str) -> PathBuf {
        self.objects.join(set_dir_name(set))
    }

    /// The fan-out directory holding `id`'s data file in `set`.
    pub(crate) fn fan_out(&self, set: &str, id: ObjectId) -> PathBuf {
        self.set_dir(set).join(&id.to_string()[..2])
    }

    pub(crate) fn data_path(&self, set: &str, id: ObjectId) -> PathBuf {
        self.fan_out(set, id).join(id.to_string())
    }

    pub(crate) fn temp_path(&self, set: &str, id: ObjectId) -> PathBuf {
        self.fan_out(set, id).join(format!("{id}.tmp"))
    }

    /// Creates `id`'s set and fan-out directories if missing, durably.
    pub(crate) fn prepare_dir(&self, set: &str, id: ObjectId) -> Result<(), StoreError> {
        if create_dir(&self.set_dir(set))? {
            sync_dir(&self.objects)?;
        }
        if create_dir(&self.fan_out(set, id))? {
            sync_dir(&self.set_dir(set))?;
        }
        Ok(())
    }
}

/// The name of a set's directory: `set-` and the set id, every byte but ASCII
/// letters, digits, `-` and `_` escaped as `%XX` (so no id can name `..` or a path).
pub fn set_dir_name(set: &str) -> String {
    let mut name = String::from("set-");
    for b in set.bytes() {
        if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' {
            name.push(b as char);
        } else {
            name.push_str(&format!("%{b:02X}"));
        }
    }
    name
}

/// Creates `path`; false if it already existed.
pub(crate) fn create_dir(path: &Path) -> Result<bool, StoreError> {
    match std::fs::create_dir(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(StoreError::io(
            format!("creating directory {}", path.display()),
            &e,
        )),
    }
}

/// Makes a create, rename or unlink in `dir` durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| StoreError::io(format!("syncing directory {}", dir.display()), &e))
}

/// Opens an existing object's data file for reading (and writing). A missing file
/// under a live record means the data is lost: reported as corruption of block 0, to
/// be repaired from a replica.
pub(crate) fn open_data(path: &Path, id: ObjectId, write: bool) -> Result<File, StoreError> {
    match OpenOptions::new().read(true).write(write).open(path) {
        Ok(file) => Ok(file),
        Err(e) if e.kind() == ErrorKind::NotFound => Err(StoreError::Corrupt { id, block: 0 }),
        Err(e) => Err(StoreError::io(format!("opening {}", path.display()), &e)),
    }
}

/// Creates (or empties) a data file.
pub(crate) fn create_data(path: &Path) -> Result<File, StoreError> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .map_err(|e| StoreError::io(format!("creating {}", path.display()), &e))
}

/// Removes a file; a missing one is not an error. True if it existed.
pub(crate) fn remove_file(path: &Path) -> Result<bool, StoreError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
        Err(e) => Err(StoreError::io(format!("removing {}", path.display()), &e)),
    }
}

/// An object's stored shape, enough to read and verify its blocks.
#[derive(Clone, Copy)]
pub(crate) struct Blocks<'a> {
    pub id: ObjectId,
    pub size: u64,
    pub crcs: &'a [u32],
}

impl Blocks<'_> {
    /// Reads block `index` from `file` and verifies it against its CRC. A short file or
    /// a mismatch is [`StoreError::Corrupt`] naming the block.
    pub(crate) fn read_verified(&self, file: &File, index: u64) -> Result<Vec<u8>, StoreError> {
        let span = block_span(index, self.size);
        let mut bytes = vec![0; (span.end - span.start) as usize];
        let corrupt = StoreError::Corrupt {
            id: self.id,
            block: index,
        };
        match file.read_exact_at(&mut bytes, span.start) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::UnexpectedEof => return Err(corrupt),
            Err(e) => return Err(StoreError::io(format!("reading object {}", self.id), &e)),
        }
        match self.crcs.get(index as usize) {
            Some(&crc) if crc == crc_of(&bytes) => Ok(bytes),
            _ => Err(corrupt),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::set_dir_name;

    #[test]
    fn set_directories_cannot_escape() {
        assert_eq!(set_dir_name("st-1"), "set-st-1");
        assert_eq!(set_dir_name("a_B9"), "set-a_B9");
        assert_eq!(set_dir_name(".."), "set-%2E%2E");
        assert_eq!(set_dir_name("a/b"), "set-a%2Fb");
        assert_eq!(set_dir_name(""), "set-");
        assert_ne!(set_dir_name("a%2F"), set_dir_name("a/"));
    }
}
