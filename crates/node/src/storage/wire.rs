//! Messages of the storage role: what a locator asks a set's Primary, what a Primary
//! asks its replicas, and what catch-up and search ask any storage node. Encoded with
//! bincode (data travels as raw bytes), answered with `Result<StoreReply, DataError>`.
//!
//! Owns the shapes only; must never carry behaviour.

use super::error::DataError;
use bytes::Bytes;
use keel_core::{Epoch, NodeId, ObjectId, SetId, StoreId, Version};
use keel_store::ObjectStat;
use serde::{Deserialize, Serialize};

/// The internal RPC method of every storage request.
pub const METHOD: &str = "store";

/// A change to one object.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub enum WriteOp {
    /// Replace the whole object. (`Bytes`: a write is cloned for every replica and
    /// every retry without copying the data.)
    Put(Bytes),
    /// Write at an offset.
    WriteAt {
        offset: u64,
        data: Bytes,
    },
    Truncate {
        size: u64,
    },
    Delete,
    /// Drop the object and its tombstone (catch-up: the Primary never had it).
    Forget,
}

impl WriteOp {
    pub fn len(&self) -> usize {
        match self {
            WriteOp::Put(d) | WriteOp::WriteAt { data: d, .. } => d.len(),
            _ => 0,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// When the Primary may acknowledge.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Durability {
    /// Durable on every in-sync replica (the default; synchronous across sites).
    #[default]
    AllInSync,
    /// Durable on the in-sync replicas of the Primary's own site; the other sites get
    /// the write in the background (a volume's asynchronous replication: a site lost
    /// before they do loses the write).
    LocalSite,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct WriteRequest {
    pub set: SetId,
    pub epoch: Epoch,
    pub id: ObjectId,
    pub op: WriteOp,
    pub durability: Durability,
}

/// A Primary's write, applied by a replica at the Primary's version.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct ReplicateRequest {
    pub set: SetId,
    pub epoch: Epoch,
    pub id: ObjectId,
    pub version: Version,
    pub op: WriteOp,
    /// Catch-up: replace whatever the replica has, even a newer version (a write its
    /// old Primary never acknowledged).
    #[serde(default)]
    pub force: bool,
    /// The store the Primary expects at the replica: the one the committed in-sync
    /// list recorded (or, in catch-up, the one the joiner reported). A replica with
    /// another store refuses with `StoreMismatch`. `None`: no store recorded.
    #[serde(default)]
    pub store: Option<StoreId>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct ReadRequest {
    pub set: SetId,
    pub id: ObjectId,
    pub offset: u64,
    pub len: u64,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub enum StoreRequest {
    Write(WriteRequest),
    Replicate(ReplicateRequest),
    Read(ReadRequest),
    /// The record of `id` in `set` (each set's copy is its own object).
    Stat {
        set: SetId,
        id: ObjectId,
    },
    /// Objects and tombstones of a set, by id, after `after`.
    List {
        set: SetId,
        after: Option<ObjectId>,
        limit: u32,
    },
    /// A whole object of `set` with its version (catch-up and repair).
    Fetch {
        set: SetId,
        id: ObjectId,
    },
    /// Search: does this node hold `id` for `set` at `min_version` or newer?
    WhoHas {
        set: SetId,
        id: ObjectId,
        min_version: Option<Version>,
    },
    /// A replica that has caught up asks the Primary to put it back on the in-sync
    /// list, naming the store it caught up on (the list records it).
    JoinInSync {
        set: SetId,
        node: NodeId,
        store: Option<StoreId>,
    },
    /// The identity of this node's object store: a catch-up checks that its source
    /// still has the store the in-sync list recorded for it.
    WhichStore,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub enum StoreReply {
    Written(ObjectStat),
    Data {
        version: Version,
        #[serde(with = "serde_bytes")]
        data: Vec<u8>,
    },
    Stat(Option<ObjectStat>),
    List(Vec<ObjectStat>),
    Object {
        stat: ObjectStat,
        #[serde(with = "serde_bytes")]
        data: Vec<u8>,
    },
    Done,
    Store(StoreId),
}

pub fn encode<T: Serialize>(v: &T) -> Vec<u8> {
    bincode::serialize(v).unwrap_or_default()
}

pub fn decode<'a, T: Deserialize<'a>>(b: &'a [u8]) -> Result<T, DataError> {
    bincode::deserialize(b).map_err(|e| DataError::BadRequest {
        reason: format!("malformed storage message: {e}"),
    })
}

/// A reply on the wire: the reply in bincode, or the error as JSON (errors are tagged
/// enums, which bincode cannot carry).
#[derive(Serialize, Deserialize)]
enum WireReply {
    Ok(StoreReply),
    Err(String),
}

pub fn encode_reply(r: Result<StoreReply, DataError>) -> Vec<u8> {
    let w = match r {
        Ok(reply) => WireReply::Ok(reply),
        Err(e) => WireReply::Err(serde_json::to_string(&e).unwrap_or_default()),
    };
    encode(&w)
}

pub fn decode_reply(b: &[u8]) -> Result<StoreReply, DataError> {
    match decode::<WireReply>(b)? {
        WireReply::Ok(reply) => Ok(reply),
        WireReply::Err(json) => {
            Err(
                serde_json::from_str(&json).unwrap_or_else(|e| DataError::Internal {
                    reason: format!("undecodable storage error {json:?}: {e}"),
                }),
            )
        }
    }
}
