//! keel's storage node: the local object store.
//!
//! Objects are mutable byte arrays identified by a storage failover set and an
//! [`ObjectId`](keel_core::ObjectId): the same id in two sets is two objects. [`ObjectStore`] keeps them in one data
//! file each, with a CRC32 per [`BLOCK_SIZE`] block, a version per object, tombstones
//! for deletes, and the highest epoch accepted per set, all recorded in a redb index.
//! See [`store`] for the durability rules and what a crash can leave.
//!
//! Owns: everything on the node's local disk under the store's directory. Must never:
//! talk to other nodes, decide placement or roles, or repair an object by itself (it
//! reports [`StoreError::Corrupt`]; the caller repairs from a replica). The API is
//! synchronous and blocking: async callers use `spawn_blocking`.

mod blocks;
mod error;
mod fail_points;
mod fence;
mod files;
mod forget;
mod identity;
mod index;
mod locks;
mod meta;
mod migrate;
mod read;
mod replace;
mod space;
pub mod store;
mod write;

pub use blocks::BLOCK_SIZE;
pub use error::StoreError;
pub use fail_points::FailPoints;
pub use files::{set_dir_name, OBJECTS_DIR};
pub use identity::{Origin as StoreOrigin, STORE_ID_FILE};
pub use index::{FORMAT_VERSION, INDEX_FILE};
pub use meta::{ObjectMeta, ObjectStat};
pub use space::{check_space, MAX_OBJECT_SIZE, MAX_WRITE, SPACE_RESERVE};
pub use store::ObjectStore;
