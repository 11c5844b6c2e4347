//! The sharding seam: which Raft group holds a volume's namespace.
//!
//! Today one group holds every volume ([`SingleShard`]). Every [`crate::DirCommand`]
//! names exactly one volume ([`crate::DirCommand::volume`]) and no command spans two,
//! so a volume is the unit a later split moves between groups; gateways route each
//! command and read through a [`ShardMap`] from the start so that the split changes
//! only the map.
//!
//! Must never: do I/O or hold state that changes per request (a map is consulted on
//! every operation and must answer at once, the same way on every gateway for a given
//! configuration).

/// The number of a Raft group holding part of the namespace.
pub type ShardId = u32;

/// Where a volume's namespace lives.
pub trait ShardMap: Send + Sync {
    /// The group holding `volume` (whether or not the volume exists).
    fn shard_of(&self, volume: &str) -> ShardId;
}

/// One group for everything: shard 0.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SingleShard;

impl ShardMap for SingleShard {
    fn shard_of(&self, _volume: &str) -> ShardId {
        0
    }
}
