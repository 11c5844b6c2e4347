//! Identifiers and the epoch (the fencing token).

use serde::{Deserialize, Serialize};
use std::fmt;

/// A node's identity, unique in a cluster, never reused.
pub type NodeId = u64;

/// A failover set's name, e.g. `default` or `gw-vip-1`.
pub type SetId = String;

/// A link's name, e.g. `a` or `b`: one per redundant network.
pub type LinkName = String;

/// Milliseconds since the Unix epoch, as written by the configuration database leader.
pub type UnixMillis = i64;

/// A failover set's epoch. It grows by one on every change of Primary and is carried by
/// every operation done on the set's behalf; holders of an older epoch are fenced.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord,
)]
#[serde(transparent)]
pub struct Epoch(pub u64);

impl Epoch {
    pub fn next(self) -> Epoch {
        Epoch(self.0 + 1)
    }
}

impl fmt::Display for Epoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.0.to_string())
    }
}

/// A stored object's identity (a chunk of a file): 128 random bits, written as 32 hex
/// digits. Placement hashes it onto a storage failover set.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectId(pub u128);

impl ObjectId {
    /// A new random id (from the OS's randomness via the std hasher seed plus a clock
    /// and a counter, so two calls never collide within a process).
    pub fn random() -> ObjectId {
        use std::collections::hash_map::RandomState;
        use std::hash::{BuildHasher, Hasher};
        use std::sync::atomic::{AtomicU64, Ordering};
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let word = || {
            let mut h = RandomState::new().build_hasher();
            h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
            h.write_u128(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos()),
            );
            h.finish()
        };
        ObjectId(((word() as u128) << 64) | word() as u128)
    }

    /// A 64-bit hash of the id, for placement (the id is random, so its bits are).
    pub fn placement_hash(self) -> u64 {
        (self.0 as u64) ^ ((self.0 >> 64) as u64)
    }
}

impl fmt::Display for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

impl std::str::FromStr for ObjectId {
    type Err = String;
    fn from_str(s: &str) -> Result<ObjectId, String> {
        if s.len() != 32 {
            return Err(format!("an object id is 32 hex digits, not {s:?}"));
        }
        u128::from_str_radix(s, 16)
            .map(ObjectId)
            .map_err(|_| format!("an object id is 32 hex digits, not {s:?}"))
    }
}

impl Serialize for ObjectId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for ObjectId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<ObjectId, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A store's identity: 128 random bits made when a node's object store is first
/// created, written as 32 hex digits. A store whose disk was wiped or replaced gets a
/// new one, so the in-sync list of a storage set (which names stores, not only nodes)
/// can tell a node that restarted from a node that came back empty.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StoreId(pub u128);

impl StoreId {
    /// A new random identity (the same source as [`ObjectId::random`]).
    pub fn random() -> StoreId {
        StoreId(ObjectId::random().0)
    }
}

impl fmt::Display for StoreId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

impl std::str::FromStr for StoreId {
    type Err = String;
    fn from_str(s: &str) -> Result<StoreId, String> {
        let s = s.trim();
        if s.len() != 32 {
            return Err(format!("a store id is 32 hex digits, not {s:?}"));
        }
        u128::from_str_radix(s, 16)
            .map(StoreId)
            .map_err(|_| format!("a store id is 32 hex digits, not {s:?}"))
    }
}

impl Serialize for StoreId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for StoreId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<StoreId, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// An object's version: the epoch of the Primary that wrote it, then a counter the
/// Primary bumps on every write of the object. Ordered: a newer Primary's writes are
/// newer than anything an older one wrote.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord,
)]
pub struct Version {
    pub epoch: Epoch,
    pub seq: u64,
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.epoch.0, self.seq)
    }
}
