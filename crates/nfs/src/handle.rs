//! NFS file handles: the 24 opaque bytes a client holds for a file or directory.
//!
//! Owns: the handle format. Must never: put anything in a handle that depends on the
//! serving process (start time, a counter, a memory address): a handle made by one
//! gateway must name the same inode on every gateway and after any restart, for as
//! long as the inode exists.
//!
//! Format (version 1, 24 bytes, integers big-endian):
//!
//! | bytes  | field                                                        |
//! |--------|--------------------------------------------------------------|
//! | 0..2   | magic `kn`                                                   |
//! | 2      | format version (1)                                           |
//! | 3      | reserved, 0                                                  |
//! | 4..12  | the volume's root inode (the export), 0 if it was not known  |
//! | 12..20 | the inode (cluster-wide, never reused)                       |
//! | 20..24 | CRC-32 of bytes 0..20                                        |
//!
//! Inode ids are unique across the cluster and never reused, so the inode alone
//! identifies the object and a removed object's handle can only ever be stale; the
//! volume root is carried for diagnosis and so that two volumes' handles never
//! collide even if a future format widened the id space per volume. The CRC tells a
//! corrupted or foreign handle (NFS3ERR_BADHANDLE) from a stale one (NFS3ERR_STALE).

use keel_fs::Ino;

/// The length of every handle of format 1.
pub const HANDLE_LEN: usize = 24;
const MAGIC: [u8; 2] = *b"kn";
/// The format this build writes; a different one is refused as a bad handle.
pub const FORMAT: u8 = 1;

/// What a handle names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileHandle {
    /// The volume's root inode, 0 if unknown when the handle was made.
    pub volume_root: Ino,
    pub ino: Ino,
}

/// Why bytes are not a handle of ours.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum HandleError {
    #[error("a handle of {0} bytes (ours have {HANDLE_LEN})")]
    Length(usize),
    #[error("not a keel handle (magic)")]
    Magic,
    #[error("handle format {0} (this build reads {FORMAT})")]
    Format(u8),
    #[error("handle checksum mismatch")]
    Checksum,
    #[error("handle names inode 0")]
    ZeroIno,
}

impl FileHandle {
    pub fn encode(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(HANDLE_LEN);
        b.extend_from_slice(&MAGIC);
        b.push(FORMAT);
        b.push(0);
        b.extend_from_slice(&self.volume_root.to_be_bytes());
        b.extend_from_slice(&self.ino.to_be_bytes());
        let crc = crc32fast::hash(&b);
        b.extend_from_slice(&crc.to_be_bytes());
        b
    }

    pub fn decode(b: &[u8]) -> Result<FileHandle, HandleError> {
        if b.len() != HANDLE_LEN {
            return Err(HandleError::Length(b.len()));
        }
        if b[0..2] != MAGIC {
            return Err(HandleError::Magic);
        }
        if b[2] != FORMAT {
            return Err(HandleError::Format(b[2]));
        }
        let crc = u32::from_be_bytes([b[20], b[21], b[22], b[23]]);
        if crc32fast::hash(&b[..20]) != crc {
            return Err(HandleError::Checksum);
        }
        let mut v = [0u8; 8];
        v.copy_from_slice(&b[4..12]);
        let volume_root = u64::from_be_bytes(v);
        v.copy_from_slice(&b[12..20]);
        let ino = u64::from_be_bytes(v);
        if ino == 0 {
            return Err(HandleError::ZeroIno);
        }
        Ok(FileHandle { volume_root, ino })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_fixed_bytes() {
        let h = FileHandle {
            volume_root: 7,
            ino: 0x0102_0304_0506_0708,
        };
        let b = h.encode();
        assert_eq!(b.len(), HANDLE_LEN);
        assert_eq!(FileHandle::decode(&b), Ok(h));
        // The format is a contract with every client holding a handle: it must not
        // drift between builds.
        assert_eq!(
            &b[..20],
            b"kn\x01\x00\0\0\0\0\0\0\0\x07\x01\x02\x03\x04\x05\x06\x07\x08"
        );
    }

    #[test]
    fn refuses_foreign_and_corrupt_bytes() {
        let good = FileHandle {
            volume_root: 1,
            ino: 2,
        }
        .encode();
        assert_eq!(
            FileHandle::decode(&good[..16]),
            Err(HandleError::Length(16))
        );
        assert_eq!(FileHandle::decode(&[]), Err(HandleError::Length(0)));
        let mut b = good.clone();
        b[0] = b'x';
        assert_eq!(FileHandle::decode(&b), Err(HandleError::Magic));
        let mut b = good.clone();
        b[2] = 2;
        assert_eq!(FileHandle::decode(&b), Err(HandleError::Format(2)));
        let mut b = good.clone();
        b[19] ^= 1;
        assert_eq!(FileHandle::decode(&b), Err(HandleError::Checksum));
        let zero = FileHandle {
            volume_root: 1,
            ino: 0,
        }
        .encode();
        assert_eq!(FileHandle::decode(&zero), Err(HandleError::ZeroIno));
    }
}
