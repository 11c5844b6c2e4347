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
use keel_core::{ObjectId, SetId};
use keel_store::ObjectStore;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use wire::{StoreReply, StoreRequest};

pub use error::DataError;

/// Stripes of the per-object write lock (writes to one object are applied and
/// replicated one at a time, so replicas see them in version order).
const OBJECT_LOCK_STRIPES: usize = 64;

pub struct StorageService {
    pub store: Arc<ObjectStore>,
    object_locks: Vec<tokio::sync::Mutex<()>>,
    /// Per set: writes hold it shared; putting a replica back on the in-sync list
    /// holds it exclusively, so no write slips between the last copy and the list.
    gates: Mutex<HashMap<SetId, Arc<tokio::sync::RwLock<()>>>>,
    last_seq: AtomicU64,
    /// Asynchronous volumes: per set, the bounded backlog to the other sites.
    pub async_repl: async_repl::AsyncReplication,
    /// Stale epochs already reported as events, per set (one event per deposed epoch).
    pub(crate) stale_reported: Mutex<std::collections::HashSet<(SetId, keel_core::Epoch)>>,
}

impl StorageService {
    pub fn open(dir: &std::path::Path) -> Result<StorageService, DataError> {
        let store = ObjectStore::open(dir)?;
        Ok(StorageService {
            store: Arc::new(store),
            object_locks: (0..OBJECT_LOCK_STRIPES)
                .map(|_| tokio::sync::Mutex::new(()))
                .collect(),
            gates: Mutex::new(HashMap::new()),
            last_seq: AtomicU64::new(0),
            async_repl: async_repl::AsyncReplication::new(Default::default()),
            stale_reported: Mutex::new(Default::default()),
        })
    }

    /// Bounds the backlog of asynchronous volumes as the node config says.
    pub fn with_async_replication(mut self, cfg: keel_config::AsyncReplicationConfig) -> Self {
        self.async_repl = async_repl::AsyncReplication::new(cfg);
        self
    }

    pub(crate) fn object_lock(&self, id: ObjectId) -> &tokio::sync::Mutex<()> {
        &self.object_locks[(id.placement_hash() % OBJECT_LOCK_STRIPES as u64) as usize]
    }

    pub(crate) fn gate(&self, set: &str) -> Arc<tokio::sync::RwLock<()>> {
        let mut gates = self.gates.lock().unwrap_or_else(|e| e.into_inner());
        gates.entry(set.to_string()).or_default().clone()
    }

    /// The next write counter of this Primary: microseconds since the Unix epoch, or
    /// one more than the last if the clock has not moved, so a Primary that restarts
    /// in the same epoch still writes newer versions than before.
    pub(crate) fn next_seq(&self) -> u64 {
        let now = chrono::Utc::now().timestamp_micros().max(0) as u64;
        let mut last = self.last_seq.load(Ordering::Relaxed);
        loop {
            let next = now.max(last + 1);
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
        StoreRequest::Write(w) => primary::write(node, svc, w).await,
        StoreRequest::Replicate(r) => replica::apply(node, svc, r).await,
        StoreRequest::Read(r) => replica::read(node, svc, r).await,
        StoreRequest::Stat { id } => Ok(StoreReply::Stat(svc.blocking(move |s| s.stat(id)).await?)),
        StoreRequest::List { set, after, limit } => {
            let limit = (limit as usize).clamp(1, 10_000);
            Ok(StoreReply::List(
                svc.blocking(move |s| s.list_set(&set, after, limit))
                    .await?,
            ))
        }
        StoreRequest::Fetch { id } => replica::fetch(svc, id).await,
        StoreRequest::WhoHas { id, min_version } => {
            let stat = svc.blocking(move |s| s.stat(id)).await?;
            Ok(StoreReply::Stat(stat.filter(|st| {
                !st.deleted && min_version.is_none_or(|v| st.version >= v)
            })))
        }
        StoreRequest::JoinInSync { set, node: joiner } => {
            catchup::admit(node, svc, &set, joiner).await
        }
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
        Err(e) => Err(CallError::Unreachable {
            node: to,
            reason: e.to_string(),
        }),
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
