//! Asynchronous replication to other sites (volumes with `replication = "async"`):
//! the Primary acknowledges a write once it is durable on the in-sync replicas of its
//! own site and sends it to the other sites' replicas in the background.
//!
//! Owns, per storage set: the backlog of acknowledged writes not yet on the remote
//! replicas, bounded in bytes and in writes (`[async_replication]` in the node
//! config; when full, new writes wait: backpressure, then a refusal after
//! `wait_ms`), published as the `keel_storage_async_backlog_{bytes,writes}` gauges and
//! in `status`; and the remote replicas that missed a background write while the
//! in-sync list still names them ("lagging"). While a set has a lagging replica, no
//! write of the set is acknowledged: writes wait for the shrink that takes it off the
//! list (retried until it commits or the Primary is deposed), and are refused after
//! `wait_ms`.
//!
//! Must never: let the backlog grow past its bounds (a single write larger than the
//! byte bound goes alone), or let a set acknowledge a write while a remote replica
//! known to have missed an acknowledged write is still on its in-sync list.

use super::DataError;
use crate::metrics::{Metrics, SetLabel};
use keel_config::AsyncReplicationConfig;
use keel_core::{NodeId, SetId};
use prometheus_client::metrics::gauge::Gauge;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a background shrink waits between attempts.
const SHRINK_RETRY: Duration = Duration::from_millis(200);

/// A set's backlog as `status` shows it (on the set's Primary).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct BacklogView {
    /// Bytes acknowledged and not yet on the remote replicas.
    pub bytes: u64,
    /// Writes acknowledged and not yet on the remote replicas.
    pub writes: u64,
    /// Remote replicas that missed a write and are being taken off the in-sync list;
    /// the set's writes wait meanwhile.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lagging: Vec<NodeId>,
}

/// The pure bookkeeping of one set's backlog.
#[derive(Debug, Default)]
struct Backlog {
    bytes: u64,
    writes: u64,
    /// Remote replicas that missed a background write, with why; cleared once the
    /// in-sync list no longer names them.
    lagging: BTreeMap<NodeId, String>,
}

/// What a write that wants room in the backlog must do.
#[derive(Debug, PartialEq, Eq)]
enum Admit {
    Go,
    /// The backlog is full: wait for room.
    Full,
}

impl Backlog {
    /// Takes room for `bytes` if there is some. A write larger than the byte bound
    /// goes alone, when nothing else is in flight.
    fn admit(&mut self, bytes: u64, cfg: &AsyncReplicationConfig) -> Admit {
        let fits_bytes = self.writes == 0 || self.bytes + bytes <= cfg.backlog_bytes;
        if !fits_bytes || self.writes >= cfg.backlog_writes {
            return Admit::Full;
        }
        self.bytes += bytes;
        self.writes += 1;
        Admit::Go
    }

    fn finish(&mut self, bytes: u64) {
        self.bytes = self.bytes.saturating_sub(bytes);
        self.writes = self.writes.saturating_sub(1);
    }

    fn view(&self) -> BacklogView {
        BacklogView {
            bytes: self.bytes,
            writes: self.writes,
            lagging: self.lagging.keys().copied().collect(),
        }
    }
}

#[derive(Default)]
struct SetBacklog {
    state: Mutex<Backlog>,
    changed: tokio::sync::Notify,
}

/// Every set's backlog on this node (as Primary).
pub struct AsyncReplication {
    cfg: AsyncReplicationConfig,
    sets: Mutex<HashMap<SetId, Arc<SetBacklog>>>,
}

/// Room taken in a set's backlog by one write; given back when dropped: by [`settle`]
/// once the background write is done, or at once if the write fails before it starts.
pub struct Ticket {
    set: SetId,
    bytes: u64,
    backlog: Arc<SetBacklog>,
    /// The set's backlog gauges (bytes, writes).
    gauges: (Gauge, Gauge),
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut b = self.backlog.state.lock().unwrap_or_else(|e| e.into_inner());
        b.finish(self.bytes);
        self.gauges.0.set(b.bytes as i64);
        self.gauges.1.set(b.writes as i64);
        drop(b);
        self.backlog.changed.notify_waiters();
    }
}

impl AsyncReplication {
    pub fn new(cfg: AsyncReplicationConfig) -> AsyncReplication {
        AsyncReplication {
            cfg,
            sets: Mutex::new(HashMap::new()),
        }
    }

    fn set(&self, set: &str) -> Arc<SetBacklog> {
        let mut sets = self.sets.lock().unwrap_or_else(|e| e.into_inner());
        sets.entry(set.to_string()).or_default().clone()
    }

    fn existing(&self, set: &str) -> Option<Arc<SetBacklog>> {
        let sets = self.sets.lock().unwrap_or_else(|e| e.into_inner());
        sets.get(set).cloned()
    }

    /// The backlog of `set`, if this node has had one.
    pub fn view(&self, set: &str) -> Option<BacklogView> {
        self.existing(set)
            .map(|b| b.state.lock().unwrap_or_else(|e| e.into_inner()).view())
    }

    /// Waits while a remote replica of `set` that missed a write is still on the
    /// in-sync list; refuses the write after `wait_ms`. Every write of the set passes
    /// here before it starts and again before it is acknowledged.
    pub async fn hold_while_lagging(&self, set: &str) -> Result<(), DataError> {
        let Some(backlog) = self.existing(set) else {
            return Ok(());
        };
        let deadline = Instant::now() + Duration::from_millis(self.cfg.wait_ms);
        loop {
            let changed = backlog.changed.notified();
            let lagging = {
                let b = backlog.state.lock().unwrap_or_else(|e| e.into_inner());
                b.lagging.iter().next().map(|(n, why)| (*n, why.clone()))
            };
            let Some((node, why)) = lagging else {
                return Ok(());
            };
            if tokio::time::timeout_at(deadline.into(), changed)
                .await
                .is_err()
            {
                return Err(DataError::InSyncShrinkFailed {
                    set: set.to_string(),
                    node,
                    reason: format!(
                        "it missed an asynchronous write ({why}) and is not yet off the in-sync list"
                    ),
                });
            }
        }
    }

    /// Takes room for a write of `bytes` in `set`'s backlog, waiting while it is full
    /// (backpressure); refuses after `wait_ms`.
    pub async fn reserve(
        &self,
        metrics: &Metrics,
        set: &str,
        bytes: u64,
    ) -> Result<Ticket, DataError> {
        let backlog = self.set(set);
        let deadline = Instant::now() + Duration::from_millis(self.cfg.wait_ms);
        loop {
            let changed = backlog.changed.notified();
            {
                let mut b = backlog.state.lock().unwrap_or_else(|e| e.into_inner());
                if b.admit(bytes, &self.cfg) == Admit::Go {
                    let gauges = gauges(metrics, set);
                    gauges.0.set(b.bytes as i64);
                    gauges.1.set(b.writes as i64);
                    return Ok(Ticket {
                        set: set.to_string(),
                        bytes,
                        backlog: backlog.clone(),
                        gauges,
                    });
                }
            }
            if tokio::time::timeout_at(deadline.into(), changed)
                .await
                .is_err()
            {
                let b = backlog
                    .state
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .view();
                return Err(DataError::Unavailable {
                    what: format!("a write to storage set {set:?}"),
                    tried: format!(
                        "the backlog to the other sites stayed full for {} ms ({} writes, {} bytes; bounds {} writes, {} bytes)",
                        self.cfg.wait_ms, b.writes, b.bytes, self.cfg.backlog_writes, self.cfg.backlog_bytes
                    ),
                });
            }
        }
    }
}

/// The backlog gauges of `set` (bytes, writes).
fn gauges(metrics: &Metrics, set: &str) -> (Gauge, Gauge) {
    let label = SetLabel {
        set: set.to_string(),
    };
    (
        metrics.async_backlog_bytes.get_or_create(&label).clone(),
        metrics.async_backlog_writes.get_or_create(&label).clone(),
    )
}

/// Ends a background write: `missed` are the remote replicas that did not take it.
/// They are lagging (the set's writes wait) until `shrink` has taken them off the
/// in-sync list; it is retried until it commits or says the Primary is deposed or the
/// set is gone (the set's writes are refused then anyway). Then the ticket's room is
/// given back.
pub async fn settle<F, Fut>(ticket: Ticket, missed: Vec<(NodeId, String)>, shrink: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<(), DataError>>,
{
    let set = ticket.set.clone();
    if !missed.is_empty() {
        {
            let mut b = ticket
                .backlog
                .state
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            for (n, why) in &missed {
                b.lagging.insert(*n, why.clone());
            }
        }
        tracing::warn!(set, ?missed, "remote replica missed an asynchronous write: holding the set's writes until it is off the in-sync list");
        loop {
            match shrink().await {
                Ok(()) => break,
                Err(e @ (DataError::NotPrimary { .. } | DataError::BadRequest { .. })) => {
                    tracing::warn!(
                        set,
                        "asynchronous replication: {e}; no longer this node's to shrink"
                    );
                    break;
                }
                Err(e) => {
                    tracing::error!(
                        set,
                        "asynchronous replication: shrink failed, retrying: {e}"
                    );
                    tokio::time::sleep(SHRINK_RETRY).await;
                }
            }
        }
        let mut b = ticket
            .backlog
            .state
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        for (n, _) in &missed {
            b.lagging.remove(n);
        }
    }
    drop(ticket);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(bytes: u64, writes: u64, wait_ms: u64) -> AsyncReplicationConfig {
        AsyncReplicationConfig {
            backlog_bytes: bytes,
            backlog_writes: writes,
            wait_ms,
        }
    }

    #[test]
    fn the_backlog_is_bounded_in_bytes_and_writes() {
        let c = cfg(100, 3, 10);
        let mut b = Backlog::default();
        // A write larger than the byte bound goes alone.
        assert_eq!(b.admit(500, &c), Admit::Go);
        assert_eq!(b.admit(1, &c), Admit::Full);
        b.finish(500);
        assert_eq!(b.admit(60, &c), Admit::Go);
        assert_eq!(b.admit(50, &c), Admit::Full);
        assert_eq!(b.admit(20, &c), Admit::Go);
        assert_eq!(b.admit(20, &c), Admit::Go);
        assert_eq!(b.admit(0, &c), Admit::Full, "three writes in flight");
        assert_eq!(
            b.view(),
            BacklogView {
                bytes: 100,
                writes: 3,
                lagging: vec![]
            }
        );
    }

    #[tokio::test]
    async fn a_full_backlog_makes_writes_wait_then_refuses() {
        let metrics = Metrics::new();
        let r = AsyncReplication::new(cfg(100, 1, 200));
        let t = r.reserve(&metrics, "s", 10).await.unwrap();
        assert_eq!(r.view("s").unwrap().writes, 1);
        assert!(metrics
            .encode()
            .contains("keel_storage_async_backlog_writes{set=\"s\"} 1"));
        // --- a second write waits for room, and gets it when the first is done
        let r = Arc::new(r);
        let waiting = tokio::spawn({
            let r = r.clone();
            async move { r.reserve(&Metrics::new(), "s", 10).await }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        drop(t);
        let second = waiting.await.unwrap().unwrap();
        // --- a write that finds no room within wait_ms is refused
        let e = r.reserve(&metrics, "s", 10).await.err().unwrap();
        assert_eq!(e.code(), "unavailable", "{e}");
        // --- a ticket dropped (the write failed before its background copy) gives
        // its room back
        drop(second);
        assert_eq!(r.view("s").unwrap(), BacklogView::default());
        assert!(metrics
            .encode()
            .contains("keel_storage_async_backlog_writes{set=\"s\"} 0"));
    }

    #[tokio::test]
    async fn a_lagging_replica_holds_the_sets_writes_until_it_is_off_the_list() {
        let r = Arc::new(AsyncReplication::new(cfg(100, 10, 200)));
        let metrics = Metrics::new();
        let t = r.reserve(&metrics, "s", 10).await.unwrap();
        r.hold_while_lagging("s").await.unwrap();
        t.backlog
            .state
            .lock()
            .unwrap()
            .lagging
            .insert(2, "unreachable".into());
        assert_eq!(r.view("s").unwrap().lagging, vec![2]);
        // --- while node 2 is lagging, a write waits, then is refused
        let e = r.hold_while_lagging("s").await.err().unwrap();
        assert_eq!(e.code(), "in_sync_shrink_failed", "{e}");
        // --- once it is off the list, the writes go on
        let waiting = tokio::spawn({
            let r = r.clone();
            async move { r.hold_while_lagging("s").await }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        t.backlog.state.lock().unwrap().lagging.clear();
        t.backlog.changed.notify_waiters();
        waiting.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn a_missed_background_write_is_shrunk_until_the_shrink_commits() {
        let r = Arc::new(AsyncReplication::new(cfg(100, 10, 5_000)));
        let metrics = Metrics::new();
        let t = r.reserve(&metrics, "s", 10).await.unwrap();
        let attempts = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let (go_tx, go_rx) = tokio::sync::watch::channel(false);
        let settling = tokio::spawn({
            let attempts = attempts.clone();
            async move {
                settle(t, vec![(2, "unreachable".into())], || {
                    let attempts = attempts.clone();
                    let mut go = go_rx.clone();
                    async move {
                        attempts.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        if *go.borrow_and_update() {
                            Ok(())
                        } else {
                            Err(DataError::NoControlPlane {
                                what: "shrink".into(),
                            })
                        }
                    }
                })
                .await
            }
        });
        // --- the shrink fails (no control plane): node 2 stays lagging, writes wait
        while attempts.load(std::sync::atomic::Ordering::SeqCst) < 2 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(r.view("s").unwrap().lagging, vec![2]);
        let held = tokio::spawn({
            let r = r.clone();
            async move { r.hold_while_lagging("s").await }
        });
        tokio::task::yield_now().await;
        assert!(!held.is_finished());
        // --- the control plane is back: the shrink commits, the writes go on
        go_tx.send(true).unwrap();
        settling.await.unwrap();
        held.await.unwrap().unwrap();
        assert_eq!(r.view("s").unwrap(), BacklogView::default());
    }
}
