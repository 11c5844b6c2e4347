//! Why the directory refused a command or a read.
//!
//! Owns: the one error enum of the crate and its stable codes. Must never: carry a
//! message spanning lines (paths are quoted, so a newline in a name is escaped).

use serde::{Deserialize, Serialize};

/// A directory error. Stable: errors travel over the wire (inside remembered
/// responses, too) and map to POSIX errnos and HTTP statuses in the gateways; the
/// serde tag is the same string as [`DirError::code`].
///
/// `path` is the path of the command or read as given; for volume-level errors
/// (a volume's name or settings) it is the volume's name.
#[derive(thiserror::Error, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(tag = "code", rename_all = "snake_case")]
pub enum DirError {
    #[error("{path:?}: no such file or directory")]
    NotFound { path: String },
    #[error("{path:?}: already exists")]
    Exists { path: String },
    #[error("{path:?}: not a directory")]
    NotDir { path: String },
    #[error("{path:?}: is a directory")]
    IsDir { path: String },
    #[error("{path:?}: directory not empty")]
    NotEmpty { path: String },
    #[error("{path:?}: invalid name: {reason}")]
    InvalidName { path: String, reason: String },
    #[error("{path:?}: invalid argument: {reason}")]
    InvalidArgument { path: String, reason: String },
    #[error("no volume {volume:?}")]
    NoVolume { volume: String },
    /// A fenced command's expectation failed: `path` no longer names the inode the
    /// proposer resolved it to (it was renamed, removed or replaced since), or a chunk
    /// is no longer what the proposer read. Nothing changed; resolve again and retry.
    #[error("{path:?}: changed since it was read: {reason}")]
    Moved { path: String, reason: String },
}

impl DirError {
    /// The stable code: `not_found`, `exists`, `not_dir`, `is_dir`, `not_empty`,
    /// `invalid_name`, `invalid_argument`, `no_volume` or `moved`.
    pub fn code(&self) -> &'static str {
        match self {
            DirError::NotFound { .. } => "not_found",
            DirError::Exists { .. } => "exists",
            DirError::NotDir { .. } => "not_dir",
            DirError::IsDir { .. } => "is_dir",
            DirError::NotEmpty { .. } => "not_empty",
            DirError::InvalidName { .. } => "invalid_name",
            DirError::InvalidArgument { .. } => "invalid_argument",
            DirError::NoVolume { .. } => "no_volume",
            DirError::Moved { .. } => "moved",
        }
    }

    pub(crate) fn not_found(path: &str) -> DirError {
        DirError::NotFound { path: path.into() }
    }

    pub(crate) fn exists(path: &str) -> DirError {
        DirError::Exists { path: path.into() }
    }

    pub(crate) fn not_dir(path: &str) -> DirError {
        DirError::NotDir { path: path.into() }
    }

    pub(crate) fn is_dir(path: &str) -> DirError {
        DirError::IsDir { path: path.into() }
    }

    pub(crate) fn not_empty(path: &str) -> DirError {
        DirError::NotEmpty { path: path.into() }
    }

    pub(crate) fn invalid_name(path: &str, reason: impl Into<String>) -> DirError {
        DirError::InvalidName {
            path: path.into(),
            reason: reason.into(),
        }
    }

    pub(crate) fn moved(path: &str, reason: impl Into<String>) -> DirError {
        DirError::Moved {
            path: path.into(),
            reason: reason.into(),
        }
    }

    pub(crate) fn invalid_argument(path: &str, reason: impl Into<String>) -> DirError {
        DirError::InvalidArgument {
            path: path.into(),
            reason: reason.into(),
        }
    }
}
