//! Size limits that several crates must agree on, defined once.
//!
//! A volume's chunk size ([`MAX_CHUNK_SIZE`] at most) bounds the largest object a
//! gateway writes; the object store accepts one transfer of that size
//! (`keel_store::MAX_WRITE` is this constant); the internal RPC server accepts a body of
//! one chunk plus the envelope of the request that carries it ([`MAX_RPC_BODY`]). So a
//! chunk a volume accepts always fits the store and the RPC of every replica, and a
//! refusal for size is a property of the request, never of one replica.
//!
//! Owns: the constants. Must never: depend on anything.

/// The largest chunk a volume may use, and the most bytes one storage write, put or
/// read moves (64 MiB).
pub const MAX_CHUNK_SIZE: u64 = 64 * 1024 * 1024;

/// Room for the envelope around a chunk in one RPC body (set id, ids, version, the
/// encoding's lengths): far more than it needs.
pub const RPC_ENVELOPE_MARGIN: u64 = 1024 * 1024;

/// The largest internal RPC request body: one chunk and its envelope.
pub const MAX_RPC_BODY: u64 = MAX_CHUNK_SIZE + RPC_ENVELOPE_MARGIN;
