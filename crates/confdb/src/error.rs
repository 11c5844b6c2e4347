//! Errors of the configuration database crate.
//!
//! Owns: [`ConfDbError`] (opening, storage and Raft failures), [`WriteError`] (what a
//! caller of a write or a linearizable read must react to) and [`TransportError`] (what
//! a [`crate::RaftTransport`] reports). Must never: decide policy (retry, forward);
//! callers do that from the variants.

use crate::types::{RaftPeer, StorageError};
use keel_core::NodeId;
use openraft::{AnyError, ErrorSubject, ErrorVerb, StorageIOError};
use std::path::PathBuf;

/// Why the configuration database could not be opened, read or stored.
#[derive(Debug, thiserror::Error)]
pub enum ConfDbError {
    #[error("cannot create the configuration database directory {path}: {source}")]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot open the configuration database {path}: {source}")]
    Open {
        path: PathBuf,
        source: redb::DatabaseError,
    },
    #[error("configuration database storage engine: {0}")]
    Redb(Box<redb::Error>),
    #[error("configuration database record cannot be encoded or decoded: {0}")]
    Encoding(#[from] serde_json::Error),
    #[error("configuration database on-disk format {found} is not supported (this build reads format {supported})")]
    UnsupportedFormat { found: u64, supported: u64 },
    #[error("invalid Raft configuration: {0}")]
    InvalidConfig(Box<openraft::ConfigError>),
    #[error("Raft storage: {0}")]
    Storage(Box<StorageError>),
    #[error("Raft: {0}")]
    Raft(String),
    #[error("storage task failed: {0}")]
    Task(String),
}

// redb reports each stage with its own error type; fold them into `redb::Error` so that
// `?` works on every call. Large errors are boxed to keep `Result`s small.
macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for ConfDbError {
            fn from(e: $t) -> Self {
                ConfDbError::Redb(Box::new(e.into()))
            }
        }
    )*};
}
from_redb!(
    redb::Error,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

impl From<openraft::ConfigError> for ConfDbError {
    fn from(e: openraft::ConfigError) -> Self {
        ConfDbError::InvalidConfig(Box::new(e))
    }
}

impl From<StorageError> for ConfDbError {
    fn from(e: StorageError) -> Self {
        ConfDbError::Storage(Box::new(e))
    }
}

impl ConfDbError {
    /// Maps this error to openraft's storage error, naming what was being done.
    /// openraft treats any storage error as fatal and stops the Raft node.
    pub(crate) fn into_storage(
        self,
        subject: ErrorSubject<NodeId>,
        verb: ErrorVerb,
    ) -> StorageError {
        match self {
            ConfDbError::Storage(e) => *e,
            other => StorageIOError::new(subject, verb, AnyError::new(&other)).into(),
        }
    }
}

/// Why a write (or a linearizable read) did not complete here.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WriteError {
    /// This node is not the leader. Send the request to `leader` (when known) instead.
    #[error("not the configuration database leader; the leader is {}", leader_name(.leader))]
    ForwardToLeader { leader: Option<(NodeId, RaftPeer)> },
    #[error("configuration database: {0}")]
    Other(String),
}

fn leader_name(leader: &Option<(NodeId, RaftPeer)>) -> String {
    match leader {
        Some((id, _)) => format!("node {id}"),
        None => "unknown".to_string(),
    }
}

/// What a [`crate::RaftTransport`] reports when a call fails.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransportError {
    /// The peer could not be reached on any link; openraft backs off before retrying.
    #[error("peer unreachable: {0}")]
    Unreachable(String),
    /// The peer was reached but failed to handle the call.
    #[error("peer failed the call: {0}")]
    Remote(String),
}
