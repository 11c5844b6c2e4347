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
