//! The storage role: this node as an intelligent storage node. It keeps objects in its
//! local [`ObjectStore`], applies writes as the Primary of a storage set and
//! replicates them to the set's in-sync replicas before acknowledging
//! (primary-backup), applies its Primaries' writes as a replica, serves reads, repairs
//! corrupt objects from a replica, and catches up by version when it comes back.
//!
//! Must never: acknowledge a write that is not durable on every in-sync replica (or
//! whose replica could not be taken off the list through Raft), act as Primary without
//! the set's lease, or accept an operation carrying an older epoch than it has seen.

mod ack_check;
pub mod async_repl;
pub mod catchup;
pub mod error;
pub mod primary;
pub mod rebalance;
pub mod replica;
pub mod sweep;
pub mod wire;

use crate::node::NodeShared;
use keel_core::{Epoch, ObjectId, SetId, Version};
use keel_store::ObjectStore;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use wire::{StoreReply, StoreRequest};

use crate::metrics::Metrics;
pub use error::DataError;

/// Stripes of each role's per-object lock.
const OBJECT_LOCK_STRIPES: usize = 64;

/// Per-object locks of one role, striped by (set, object).
///
/// The Primary role holds its lock across the replicate RPC (writes to one object are
/// applied and replicated one at a time, so replicas see them in version order). The
/// replica role (applying a Primary's write, catch-up's copies) holds its own lock only
/// around local store calls, never across an RPC. The two roles never share a lock: a
/// node that is the Primary of one set and a replica of another, facing a peer in the
/// mirror position, would otherwise wait for that peer while the peer waits for it
/// (each Primary holding a stripe its own replica role needs), until the replicate
/// timeout evicted both from in-sync.
pub(crate) struct RoleLocks {
    stripes: Vec<tokio::sync::Mutex<()>>,
}

impl RoleLocks {
    fn new() -> RoleLocks {
        RoleLocks {
            stripes: (0..OBJECT_LOCK_STRIPES)
                .map(|_| tokio::sync::Mutex::new(()))
                .collect(),
        }
    }

    /// The lock of `id` in `set`.
    pub(crate) fn of(&self, set: &str, id: ObjectId) -> &tokio::sync::Mutex<()> {
        &self.stripes[stripe_of(set, id)]
    }
}

/// The stripe of (set, object).
fn stripe_of(set: &str, id: ObjectId) -> usize {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    set.hash(&mut h);
    id.0.hash(&mut h);
    (h.finish() % OBJECT_LOCK_STRIPES as u64) as usize
}

pub struct StorageService {
    pub store: Arc<ObjectStore>,
    /// The Primary role's object locks (held across replication).
    pub(crate) primary_locks: RoleLocks,
    /// The replica role's object locks (never held across an RPC).
    pub(crate) replica_locks: RoleLocks,
    /// Per set: writes hold it shared; putting a replica back on the in-sync list
    /// holds it exclusively, so no write slips between the last copy and the list.
    gates: Mutex<HashMap<SetId, Arc<tokio::sync::RwLock<()>>>>,
    last_seq: AtomicU64,
    /// Asynchronous volumes: per set, the bounded backlog to the other sites.
    pub async_repl: async_repl::AsyncReplication,
    /// Stale epochs already reported as events, per set (one event per deposed epoch).
    pub(crate) stale_reported: Mutex<std::collections::HashSet<(SetId, keel_core::Epoch)>>,
    /// What the orphan sweep has seen unreferenced, and since when by this node's
    /// monotonic clock (see `sweep.rs`).
    pub(crate) sweep_seen: Mutex<sweep::Seen>,
}

impl StorageService {
    pub fn open(dir: &std::path::Path) -> Result<StorageService, DataError> {
        let store = ObjectStore::open(dir)?;
        Ok(StorageService {
            store: Arc::new(store),
            primary_locks: RoleLocks::new(),
            replica_locks: RoleLocks::new(),
            gates: Mutex::new(HashMap::new()),
            last_seq: AtomicU64::new(0),
            async_repl: async_repl::AsyncReplication::new(Default::default()),
            stale_reported: Mutex::new(Default::default()),
            sweep_seen: Mutex::new(Default::default()),
        })
    }

    /// Bounds the backlog of asynchronous volumes as the node config says.
    pub fn with_async_replication(mut self, cfg: keel_config::AsyncReplicationConfig) -> Self {
        self.async_repl = async_repl::AsyncReplication::new(cfg);
        self
    }

    pub(crate) fn gate(&self, set: &str) -> Arc<tokio::sync::RwLock<()>> {
        let mut gates = self.gates.lock().unwrap_or_else(|e| e.into_inner());
        gates.entry(set.to_string()).or_default().clone()
    }

    /// The version of this Primary's next change to an object whose local record is at
    /// `current` (None: no record), in `epoch`: always above `current` within the
    /// epoch, whatever the wall clock does (see [`next_version`]).
    pub(crate) fn next_version(&self, epoch: Epoch, current: Option<Version>) -> Version {
        let now = chrono::Utc::now().timestamp_micros().max(0) as u64;
        next_version(epoch, current, self.next_seq(now))
    }

    /// The next write counter of this Primary: microseconds since the Unix epoch, or
    /// one more than the last if the clock has not moved (or stepped back), so a
    /// Primary that restarts in the same epoch still writes newer versions than before.
    fn next_seq(&self, now: u64) -> u64 {
        let mut last = self.last_seq.load(Ordering::Relaxed);
        loop {
            let next = now.max(last.saturating_add(1));
            match self
                .last_seq
                .compare_exchange(last, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return next,
                Err(seen) => last = seen,
            }
        }
    }

    /// The ids of this node's objects and tombstones of `set` that `keep` selects,
    /// read page by page (only the selected ids are held).
    pub(crate) async fn select(
        &self,
        set: &SetId,
        mut keep: impl FnMut(&keel_store::ObjectStat) -> bool,
    ) -> Result<Vec<ObjectId>, DataError> {
        const PAGE: usize = 1000;
        let mut out = vec![];
        let mut after = None;
        loop {
            let page = {
                let set = set.clone();
                self.blocking(move |s| s.list_set(&set, after, PAGE))
                    .await?
            };
            after = page.last().map(|s| s.id);
            out.extend(page.iter().filter(|o| keep(o)).map(|o| o.id));
            if page.len() < PAGE {
                return Ok(out);
            }
        }
    }

    /// Runs a blocking store call on the blocking pool.
    pub(crate) async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&ObjectStore) -> Result<T, keel_store::StoreError> + Send + 'static,
    ) -> Result<T, DataError> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || f(&store))
            .await
            .map_err(|e| DataError::Internal {
                reason: format!("storage task failed: {e}"),
            })?
            .map_err(DataError::from)
    }
}

/// A Primary's version for a change in `epoch` of an object at `current`, given the
/// counter `seq` it drew from its clock: the counter, raised above `current` when
/// `current` is of the same epoch (a clock stepped back, or a previous Primary of the
/// epoch — this node before a restart — whose clock ran ahead). A `current` of an
/// older epoch is below any version of `epoch` already.
pub(crate) fn next_version(epoch: Epoch, current: Option<Version>, seq: u64) -> Version {
    let seq = match current {
        Some(c) if c.epoch == epoch => seq.max(c.seq.saturating_add(1)),
        _ => seq,
    };
    Version { epoch, seq }
}

/// Answers one storage request addressed to this node. (Boxed: a Primary's write
/// calls its replicas through [`call`], which may answer here.)
pub fn handle(
    node: &Arc<NodeShared>,
    req: StoreRequest,
) -> futures::future::BoxFuture<'_, Result<StoreReply, DataError>> {
    Box::pin(handle_inner(node, req))
}

async fn handle_inner(node: &Arc<NodeShared>, req: StoreRequest) -> Result<StoreReply, DataError> {
    let Some(svc) = node.storage.as_ref() else {
        return Err(DataError::BadRequest {
            reason: format!("node {} has no storage role", node.id()),
        });
    };
    match req {
        StoreRequest::Write(w) => {
            Metrics::time(&node.metrics.put_seconds, primary::write(node, svc, w)).await
        }
        StoreRequest::Replicate(r) => replica::apply(node, svc, r).await,
        StoreRequest::Read(r) => {
            Metrics::time(&node.metrics.get_seconds, replica::read(node, svc, r)).await
        }
        StoreRequest::Stat { set, id } => Ok(StoreReply::Stat(
            svc.blocking(move |s| s.stat(&set, id)).await?,
        )),
        StoreRequest::List { set, after, limit } => {
            let limit = (limit as usize).clamp(1, 10_000);
            Ok(StoreReply::List(
                svc.blocking(move |s| s.list_set(&set, after, limit))
                    .await?,
            ))
        }
        StoreRequest::Fetch { set, id } => replica::fetch(svc, set, id).await,
        StoreRequest::WhoHas {
            set,
            id,
            min_version,
        } => {
            let stat = svc.blocking(move |s| s.stat(&set, id)).await?;
            Ok(StoreReply::Stat(stat.filter(|st| {
                !st.deleted && min_version.is_none_or(|v| st.version >= v)
            })))
        }
        StoreRequest::JoinInSync {
            set,
            node: joiner,
            store,
        } => catchup::admit(node, svc, &set, joiner, store).await,
        StoreRequest::WhichStore => Ok(StoreReply::Store(svc.store.store_id())),
    }
}

/// Sends a storage request to `to` (or answers it here if `to` is this node).
pub async fn call(
    node: &Arc<NodeShared>,
    to: keel_core::NodeId,
    req: StoreRequest,
    timeout: std::time::Duration,
) -> Result<StoreReply, CallError> {
    if to == node.id() {
        return handle(node, req).await.map_err(CallError::Data);
    }
    let addrs = node.addrs_of(to).ok_or(CallError::Unreachable {
        node: to,
        reason: "not a member".into(),
    })?;
    call_addrs(node, to, &addrs, req, timeout).await
}

/// Sends a storage request to explicit addresses (the site mapping rule computes
/// them without the member list).
pub async fn call_addrs(
    node: &Arc<NodeShared>,
    to: keel_core::NodeId,
    addrs: &keel_net::PeerAddrs,
    req: StoreRequest,
    timeout: std::time::Duration,
) -> Result<StoreReply, CallError> {
    match node
        .net
        .call(addrs, wire::METHOD, wire::encode(&req), timeout)
        .await
    {
        Ok((_, body)) => wire::decode_reply(&body).map_err(CallError::Data),
        Err(e) => Err(call_error(to, e)),
    }
}

/// What a transport failure of a call to `to` means. A body too large for the peer's
/// RPC server is a refusal of this request (the same on every replica: one limit), so
/// it fails the write like the store's own `TooLarge`; never a sign that the peer is
/// down (which would take it off the in-sync list).
fn call_error(to: keel_core::NodeId, e: keel_net::NetError) -> CallError {
    match e {
        keel_net::NetError::TooLarge { bytes, limit } => CallError::Data(DataError::Store {
            error: keel_store::StoreError::TooLarge {
                requested: bytes,
                max: limit,
            },
        }),
        e => CallError::Unreachable {
            node: to,
            reason: e.to_string(),
        },
    }
}

/// A storage call's failure: the peer answered with an error, or did not answer.
#[derive(Debug)]
pub enum CallError {
    Data(DataError),
    Unreachable {
        node: keel_core::NodeId,
        reason: String,
    },
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Data(e) => write!(f, "{e}"),
            CallError::Unreachable { node, reason } => write!(f, "node {node}: {reason}"),
        }
    }
}

impl std::error::Error for CallError {}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(epoch: u64, seq: u64) -> Version {
        Version {
            epoch: Epoch(epoch),
            seq,
        }
    }

    #[test]
    fn a_new_version_is_above_the_current_one_whatever_the_clock() {
        // The clock stepped back (or another Primary of the epoch ran ahead): the new
        // version still goes above the object's.
        assert_eq!(next_version(Epoch(4), Some(v(4, 1_000)), 10), v(4, 1_001));
        assert_eq!(
            next_version(Epoch(4), Some(v(4, u64::MAX)), 10),
            v(4, u64::MAX)
        );
        // The clock is ahead: it is used.
        assert_eq!(next_version(Epoch(4), Some(v(4, 5)), 10), v(4, 10));
        // An older epoch's version is below any of this epoch already.
        assert_eq!(next_version(Epoch(4), Some(v(3, 1_000)), 10), v(4, 10));
        assert_eq!(next_version(Epoch(4), None, 10), v(4, 10));
        assert!(next_version(Epoch(4), Some(v(3, 1_000)), 10) > v(3, 1_000));
    }

    #[test]
    fn the_counter_never_goes_back() {
        let dir = tempfile::tempdir().expect("temp dir");
        let svc = StorageService::open(dir.path()).expect("store");
        let first = svc.next_seq(1_000);
        let stepped_back = svc.next_seq(10);
        assert!(stepped_back > first);
    }

    #[test]
    fn the_roles_lock_different_mutexes() {
        let dir = tempfile::tempdir().expect("temp dir");
        let svc = StorageService::open(dir.path()).expect("store");
        let id = ObjectId(42);
        let held = svc.primary_locks.of("st-1", id).try_lock().expect("free");
        assert!(
            svc.replica_locks.of("st-1", id).try_lock().is_ok(),
            "the replica role waits for nothing the Primary role holds"
        );
        drop(held);
    }

    #[test]
    fn a_body_too_large_for_a_replica_fails_the_write_and_evicts_no_one() {
        let refused = call_error(
            2,
            keel_net::NetError::TooLarge {
                bytes: 70 << 20,
                limit: 65 << 20,
            },
        );
        assert!(matches!(
            refused,
            CallError::Data(DataError::Store {
                error: keel_store::StoreError::TooLarge { .. }
            })
        ));
        let sorted = primary::refusals_fail_the_write(
            &"st-1".to_string(),
            Epoch(1),
            vec![
                (2, refused),
                (3, call_error(3, keel_net::NetError::Timeout)),
            ],
        );
        assert!(
            matches!(&sorted, Err(e) if e.code() == "too_large"),
            "{sorted:?}"
        );
        assert!(matches!(
            call_error(3, keel_net::NetError::Refused),
            CallError::Unreachable { node: 3, .. }
        ));
    }

    #[test]
    fn the_limits_agree_end_to_end() {
        use wire::{ReplicateRequest, WriteOp};
        // A volume's largest chunk is what the store takes in one operation...
        assert_eq!(keel_dir::MAX_CHUNK_SIZE, keel_store::MAX_WRITE);
        // ...and a replicate request carrying it, with the longest set id, fits the
        // RPC body limit.
        let req = StoreRequest::Replicate(ReplicateRequest {
            set: "s".repeat(64),
            epoch: Epoch(u64::MAX),
            id: ObjectId(u128::MAX),
            version: v(u64::MAX, u64::MAX),
            op: WriteOp::WriteAt {
                offset: u64::MAX,
                data: vec![0u8; keel_dir::MAX_CHUNK_SIZE as usize].into(),
            },
            force: true,
            store: Some(keel_core::StoreId(u128::MAX)),
        });
        let body = wire::encode(&req).len();
        assert!(
            body <= keel_net::MAX_BODY_BYTES,
            "{body} > {}",
            keel_net::MAX_BODY_BYTES
        );
    }
}
