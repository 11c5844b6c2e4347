//! keel's directory: the namespace of volumes, directories and files, as a pure
//! state machine that Raft replicates.
//!
//! Owns: the model ([`Volume`], [`Inode`], directory entries), the commands that change
//! it ([`DirCommand`], applied by [`Namespace::apply`]), the reads gateways need
//! ([`Namespace::lookup`], [`Namespace::readdir`], ...), name and path validation, the
//! idempotency-token memory, the record of what each command changed (for incremental
//! persistence, [`Namespace::take_changes`]) and the sharding seam ([`ShardMap`]).
//!
//! Must never: do I/O, read a clock or draw randomness (time and ids travel inside
//! commands), or iterate a hash map where order can show: applying the same commands
//! must give the same state, byte for byte, on every replica.

mod apply;
mod by_ino;
mod changes;
mod chunks;
mod command;
pub mod directory;
mod error;
mod invariants;
mod model;
mod name;
mod namespace;
mod ops;
mod readdir;
mod resolve;
mod tokens;

pub use changes::{Changes, NamespaceMeta};
pub use command::{ChunkChange, DirCommand, DirReply, DirResult, Expected};
pub use directory::{ShardId, ShardMap, SingleShard};
pub use error::DirError;
pub use model::{
    ChunkRef, FileKind, Ino, Inode, Replication, Volume, DEFAULT_CHUNK_SIZE, MAX_CHUNK_SIZE,
    MIN_CHUNK_SIZE,
};
pub use name::{parse_path, validate_name, validate_volume_name, CONTROL_RULE, MAX_NAME_BYTES};
pub use namespace::Namespace;
pub use readdir::{DirEntry, DirPage};
pub use tokens::{Remembered, TOKEN_MEMORY};
