//! The locator: seed 001's object storage manager. It routes each object operation
//! to the Primary of the object's storage set, from this node's replica of the
//! placement map. When a storage node stops answering, the locator enters a failover
//! condition for that node (an event), stops using it, and finds the duplicate:
//!
//! 1. from the map: the set's other in-sync replicas (and, for writes, the new
//!    Primary once the arbiter has named one);
//! 2. by the site mapping rule: in a mirrored layout node i of one site pairs with
//!    node i of the other and their addresses differ only in the subnet part, so the
//!    counterpart's address is computed, not looked up (works with the control plane
//!    out of reach);
//! 3. by a search: "who has object X", asked of the storage nodes of the other sites
//!    first, then of the failed node's own site.
//!
//! Each failover condition, and where the duplicate was found, is an event. Every read
//! and search names the set it reads for: a storage node may hold the same object for
//! two sets while a rebalance moves it, and each set's copy is its own object.
//!
//! Must never: write anywhere but the set's Primary at its current epoch (a replica
//! found by the rule or the search serves reads only).

use crate::node::{now_ms, NodeShared};
use crate::storage::wire::{
    Durability, ReadRequest, StoreReply, StoreRequest, WriteOp, WriteRequest,
};
use crate::storage::{self, CallError, DataError};
use keel_core::{ClusterState, Event, EventKind, NodeId, NodeRole, ObjectId, SetId, Version};
use keel_net::PeerAddrs;
use keel_store::ObjectStat;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a write keeps looking for a Primary that takes it (a failover is well
/// under this).
const WRITE_DEADLINE: Duration = Duration::from_secs(15);
/// A node stays in the failover condition this long after it last failed a call.
const FAILOVER_HOLD: Duration = Duration::from_secs(2);

/// How the duplicate of an object was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FoundBy {
    Primary,
    Map,
    SiteMapping,
    Search,
}

impl FoundBy {
    pub fn as_str(self) -> &'static str {
        match self {
            FoundBy::Primary => "the primary",
            FoundBy::Map => "the placement map (an in-sync replica)",
            FoundBy::SiteMapping => "the site mapping rule",
            FoundBy::Search => "a search",
        }
    }
}

/// A multicast search: "who has object `id` of set `set` at `min_version` or newer?"
/// Holders answer point-to-point (RPC `found`) to `reply_to`. The set is part of the
/// question: a node may hold the same id for two sets (a rebalance under way), and a
/// read is for one of them.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct WhoHasQuery {
    pub cluster: String,
    pub query: u64,
    pub from: NodeId,
    pub reply_to: Vec<(String, SocketAddr)>,
    pub set: SetId,
    pub id: ObjectId,
    pub min_version: Option<Version>,
}

/// A holder's answer to a [`WhoHasQuery`].
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Found {
    pub query: u64,
    pub node: NodeId,
    pub stat: ObjectStat,
}

#[derive(Default)]
pub struct Locator {
    /// Nodes in the failover condition, with when they last failed a call.
    failed: Mutex<HashMap<NodeId, Instant>>,
    /// Multicast searches waiting for answers.
    searches: Mutex<HashMap<u64, tokio::sync::mpsc::UnboundedSender<Found>>>,
    next_query: std::sync::atomic::AtomicU64,
    /// (failed node, how) already reported as an event in this failover condition.
    reported: Mutex<std::collections::HashSet<(NodeId, FoundBy)>>,
}

impl Locator {
    /// Hands an answer to the search waiting for it (late answers are dropped).
    pub fn deliver(&self, found: Found) {
        let searches = self.searches.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(tx) = searches.get(&found.query) {
            let _ = tx.send(found);
        }
    }

    fn in_failover(&self, n: NodeId) -> bool {
        let failed = self.failed.lock().unwrap_or_else(|e| e.into_inner());
        failed.get(&n).is_some_and(|t| t.elapsed() < FAILOVER_HOLD)
    }

    /// Enters the failover condition for `n` (an event the first time).
    fn enter_failover(&self, node: &Arc<NodeShared>, n: NodeId, why: &str) {
        let fresh = {
            let mut failed = self.failed.lock().unwrap_or_else(|e| e.into_inner());
            let fresh = failed.get(&n).is_none_or(|t| t.elapsed() >= FAILOVER_HOLD);
            failed.insert(n, Instant::now());
            fresh
        };
        if fresh {
            self.reported
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .retain(|(f, _)| *f != n);
            node.metrics.locator_failovers.inc();
            tracing::warn!(
                failed = n,
                "locator: failover condition for node {n}: {why}"
            );
            record(
                node,
                Event::new(now_ms(), EventKind::LocatorFailover)
                    .node(n)
                    .detail(format!("node {} stops using node {n}: {why}", node.id())),
            );
        }
    }

    fn found(&self, node: &Arc<NodeShared>, failed: NodeId, by: FoundBy, at: NodeId, id: ObjectId) {
        let first = self
            .reported
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert((failed, by));
        if first {
            tracing::info!(failed, at, "locator: duplicate found by {}", by.as_str());
            record(
                node,
                Event::new(now_ms(), EventKind::LocatorFound)
                    .node(at)
                    .detail(format!(
                        "node {} found object {id}{} on node {at} by {}",
                        node.id(),
                        if failed == 0 {
                            String::new()
                        } else {
                            format!(" (of failed node {failed})")
                        },
                        by.as_str()
                    )),
            );
        }
    }
}

/// Records an event without waiting (and without failing when the control plane is
/// out of reach: the log line stays).
fn record(node: &Arc<NodeShared>, event: Event) {
    let node = node.clone();
    tokio::spawn(async move { node.record(event).await });
}

/// Where `id` lives: its set, the set's epoch, Primary and in-sync list.
fn route(
    s: &ClusterState,
    id: ObjectId,
) -> Result<(String, keel_core::Epoch, Option<NodeId>, Vec<NodeId>), DataError> {
    let set = s.placement.set_for(id).ok_or(DataError::NoLayout)?;
    let x = s.sets.get(set).ok_or(DataError::NoLayout)?;
    Ok((set.clone(), x.epoch, x.primary_node(), x.in_sync.clone()))
}

/// Writes to the Primary of `id`'s set; follows failovers until the deadline.
pub async fn write(
    node: &Arc<NodeShared>,
    id: ObjectId,
    op: WriteOp,
    durability: Durability,
) -> Result<ObjectStat, DataError> {
    let deadline = Instant::now() + WRITE_DEADLINE;
    let mut applied = node.db.applied_watch();
    let timeout = storage::primary::replicate_timeout(op.len()) * 3;
    loop {
        let (set, epoch, primary, _) = node.db.read(|s| route(s, id))?;
        let err = match primary {
            None => DataError::Unavailable {
                what: format!("object {id}"),
                tried: format!("storage set {set:?} has no Primary right now"),
            },
            Some(p) => {
                let req = StoreRequest::Write(WriteRequest {
                    set: set.clone(),
                    epoch,
                    id,
                    op: op.clone(),
                    durability,
                });
                // A paused Primary does not answer, and may never: give up on it as
                // soon as the arbiter has moved the set to a new epoch.
                let call = storage::call(node, p, req, timeout);
                let moved = epoch_moved(node, &set, epoch);
                let answer = tokio::select! {
                    r = call => r,
                    () = moved => Err(CallError::Unreachable {
                        node: p,
                        reason: format!("storage set {set:?} moved past epoch {epoch} while the write waited"),
                    }),
                    // Cut off from the control plane, this node would never see the
                    // set move: the client is better served by a member that does.
                    () = node.control_plane_lost() => return Err(lost(id)),
                };
                match answer {
                    Ok(StoreReply::Written(stat)) => return Ok(stat),
                    Ok(_) => {
                        return Err(DataError::Internal {
                            reason: "unexpected reply to a write".into(),
                        })
                    }
                    Err(CallError::Data(e)) if e.is_transient() => e,
                    Err(CallError::Data(e)) => return Err(e),
                    Err(e @ CallError::Unreachable { .. }) => {
                        node.locator.enter_failover(node, p, &e.to_string());
                        DataError::Unavailable {
                            what: format!("object {id}"),
                            tried: e.to_string(),
                        }
                    }
                }
            }
        };
        if Instant::now() >= deadline {
            return Err(err);
        }
        // Wait for the map to change (a new Primary), or retry shortly; a node cut
        // off from the control plane gives up (see above).
        tokio::select! {
            _ = tokio::time::timeout(Duration::from_millis(100), applied.changed()) => {}
            () = node.control_plane_lost() => return Err(lost(id)),
        }
    }
}

/// A write given up because this node does not reach the control plane.
fn lost(id: ObjectId) -> DataError {
    DataError::NoControlPlane {
        what: format!("a write of object {id} (this node does not reach a majority)"),
    }
}

/// Resolves once `set` is at another epoch than `epoch` (a new Primary), never if it
/// stays.
async fn epoch_moved(node: &NodeShared, set: &str, epoch: keel_core::Epoch) {
    let mut applied = node.db.applied_watch();
    loop {
        if node.db.read(|s| s.sets.get(set).map(|x| x.epoch)) != Some(epoch) {
            return;
        }
        if applied.changed().await.is_err() {
            return std::future::pending().await;
        }
    }
}

/// How long a read waits for the Primary before also asking an in-sync replica.
const HEDGE_AFTER: Duration = Duration::from_millis(200);

/// Reads a range of `id`: from the Primary, or from a duplicate found by the map,
/// the site mapping rule or a search.
pub async fn read(
    node: &Arc<NodeShared>,
    id: ObjectId,
    offset: u64,
    len: u64,
) -> Result<(Vec<u8>, Version, FoundBy), DataError> {
    let route_now = node.db.read(|s| route(s, id))?;
    match read_in(node, id, offset, len, route_now).await {
        Err(e) if e.code() == "not_found" || e.code() == "unavailable" => {
            // Not moved yet by a rebalance: the set of the previous map has it.
            let previous = node.db.read(|s| {
                let set = s.placement.previous_set_for(id)?;
                let x = s.sets.get(set)?;
                Some((set.clone(), x.epoch, x.primary_node(), x.in_sync.clone()))
            });
            match previous {
                Some(r) => read_in(node, id, offset, len, r).await.map_err(|_| e),
                None => Err(e),
            }
        }
        other => other,
    }
}

type Route = (String, keel_core::Epoch, Option<NodeId>, Vec<NodeId>);

async fn read_in(
    node: &Arc<NodeShared>,
    id: ObjectId,
    offset: u64,
    len: u64,
    route: Route,
) -> Result<(Vec<u8>, Version, FoundBy), DataError> {
    let (set, _, primary, in_sync) = route;
    let req = |set: &str| {
        StoreRequest::Read(ReadRequest {
            set: set.to_string(),
            id,
            offset,
            len,
        })
    };
    let timeout = storage::primary::replicate_timeout(len as usize);
    let mut tried = vec![];
    let mut failed_node = None;
    if let Some(p) = primary.filter(|p| !node.locator.in_failover(*p)) {
        // Hedged: if the Primary is slow to answer (paused, overloaded), an in-sync
        // replica is asked too, and the first good answer wins.
        let hedge_to = in_sync
            .iter()
            .copied()
            .find(|r| Some(*r) != primary && !node.locator.in_failover(*r));
        let first = storage::call(node, p, req(&set), timeout);
        let answer = match hedge_to {
            None => first.await,
            Some(r) => {
                let second = async {
                    tokio::time::sleep(HEDGE_AFTER).await;
                    storage::call(node, r, req(&set), timeout).await
                };
                tokio::pin!(first);
                tokio::pin!(second);
                tokio::select! {
                    a = &mut first => match a {
                        Ok(reply) => Ok(reply),
                        Err(e) => {
                            if matches!(e, CallError::Unreachable { .. }) {
                                node.locator.enter_failover(node, p, &e.to_string());
                            }
                            match second.await {
                                Ok(StoreReply::Data { version, data }) => {
                                    node.locator.found(node, p, FoundBy::Map, r, id);
                                    return Ok((data, version, FoundBy::Map));
                                }
                                _ => Err(e),
                            }
                        }
                    },
                    b = &mut second => match b {
                        Ok(StoreReply::Data { version, data }) => {
                            node.locator.found(node, p, FoundBy::Map, r, id);
                            return Ok((data, version, FoundBy::Map));
                        }
                        _ => first.await,
                    },
                }
            }
        };
        match answer {
            Ok(StoreReply::Data { version, data }) => return Ok((data, version, FoundBy::Primary)),
            Ok(_) => tried.push(format!("node {p}: unexpected reply")),
            Err(CallError::Data(e)) if !e.is_transient() && e.code() != "not_found" => {
                return Err(e)
            }
            Err(e) => {
                if matches!(e, CallError::Unreachable { .. }) {
                    node.locator.enter_failover(node, p, &e.to_string());
                }
                tried.push(e.to_string());
            }
        }
    }
    if let Some(p) = primary {
        failed_node = Some(p);
    }
    let failed = failed_node.unwrap_or(0);
    // With the control plane out of reach the map may be stale: the site mapping
    // rule, which needs no map, goes first then.
    let fresh = node.control_plane_fresh();
    if !fresh {
        if let Some(found) =
            by_site_mapping(node, failed_node, &set, id, offset, len, &mut tried).await
        {
            return Ok(found);
        }
    }
    // 1. The map: the set's other in-sync replicas.
    for r in in_sync.iter().copied().filter(|r| Some(*r) != primary) {
        if node.locator.in_failover(r) {
            continue;
        }
        match storage::call(node, r, req(&set), timeout).await {
            Ok(StoreReply::Data { version, data }) => {
                node.locator.found(node, failed, FoundBy::Map, r, id);
                return Ok((data, version, FoundBy::Map));
            }
            Ok(_) => {}
            Err(e) => {
                if matches!(e, CallError::Unreachable { .. }) {
                    node.locator.enter_failover(node, r, &e.to_string());
                }
                tried.push(e.to_string());
            }
        }
    }
    // 2. The site mapping rule.
    if fresh {
        if let Some(found) =
            by_site_mapping(node, failed_node, &set, id, offset, len, &mut tried).await
        {
            return Ok(found);
        }
    }
    // 3. A search: the other sites first, then the failed node's own.
    if let Some((at, _)) = search(node, &set, id, failed_node).await {
        match storage::call(node, at, req(&set), timeout).await {
            Ok(StoreReply::Data { version, data }) => {
                node.locator.found(node, failed, FoundBy::Search, at, id);
                return Ok((data, version, FoundBy::Search));
            }
            Ok(_) => {}
            Err(e) => tried.push(e.to_string()),
        }
    }
    Err(DataError::Unavailable {
        what: format!("object {id}"),
        tried: tried.join("; "),
    })
}

/// Reads from the counterparts of `failed` that the site mapping rule names.
async fn by_site_mapping(
    node: &Arc<NodeShared>,
    failed: Option<NodeId>,
    set: &str,
    id: ObjectId,
    offset: u64,
    len: u64,
    tried: &mut Vec<String>,
) -> Option<(Vec<u8>, Version, FoundBy)> {
    let p = failed.filter(|_| node.cfg.locator.site_mapping)?;
    let timeout = storage::primary::replicate_timeout(len as usize);
    for (to, addrs) in counterparts(node, p) {
        let req = StoreRequest::Read(ReadRequest {
            set: set.to_string(),
            id,
            offset,
            len,
        });
        let result = if to == node.id() {
            storage::call(node, to, req, timeout).await
        } else {
            storage::call_addrs(node, to, &addrs, req, timeout).await
        };
        match result {
            Ok(StoreReply::Data { version, data }) => {
                node.locator.found(node, p, FoundBy::SiteMapping, to, id);
                return Some((data, version, FoundBy::SiteMapping));
            }
            Ok(_) => {}
            Err(e) => tried.push(format!("site mapping rule {addrs:?}: {e}")),
        }
    }
    None
}

/// The site mapping rule: the addresses of `failed`'s counterparts in the other
/// sites — its own addresses with the subnet octet of each other site — with the
/// member found there (0 if the member list does not know it).
fn counterparts(node: &NodeShared, failed: NodeId) -> Vec<(NodeId, PeerAddrs)> {
    let k = node.cfg.locator.subnet_octet as usize;
    node.db.read(|s| {
        let Some(m) = s.members.get(&failed) else {
            return vec![];
        };
        let octet = |ip: &IpAddr| match ip {
            IpAddr::V4(v4) => Some(v4.octets()[k]),
            IpAddr::V6(_) => None,
        };
        let mine = m.links.first().and_then(|l| octet(&l.ip));
        let mut subnets: Vec<u8> = s
            .members
            .values()
            .filter(|o| o.site != m.site)
            .filter_map(|o| o.links.first().and_then(|l| octet(&l.ip)))
            .filter(|o| Some(*o) != mine)
            .collect();
        subnets.sort();
        subnets.dedup();
        subnets
            .into_iter()
            .map(|sub| {
                let links: Vec<(String, IpAddr)> =
                    m.links.iter().map(|l| (l.name.clone(), l.ip)).collect();
                let addrs = mapped_addresses(&links, k, sub, m.rpc_port);
                let to = s
                    .members
                    .values()
                    .find(|o| {
                        o.links
                            .iter()
                            .any(|l| addrs.iter().any(|(_, a)| a.ip() == l.ip))
                    })
                    .map_or(0, |o| o.id);
                (to, PeerAddrs(addrs))
            })
            .filter(|(_, a)| !a.0.is_empty())
            .collect()
    })
}

/// Answers a multicast search heard on the group (from the listening task: the
/// store lookup and the answer run on their own task).
pub fn answer_search(node: &Arc<NodeShared>, q: WhoHasQuery) {
    if q.cluster != node.cfg.cluster || node.storage.is_none() {
        return;
    }
    let node = node.clone();
    tokio::spawn(async move {
        let Some(svc) = node.storage.as_ref() else {
            return;
        };
        let (set, id) = (q.set.clone(), q.id);
        let Ok(Some(stat)) = svc.blocking(move |s| s.stat(&set, id)).await else {
            return;
        };
        if stat.deleted || q.min_version.is_some_and(|v| stat.version < v) {
            return;
        }
        let found = Found {
            query: q.query,
            node: node.id(),
            stat,
        };
        let body = crate::wire::encode(&found);
        let to = PeerAddrs(q.reply_to.clone());
        if let Err(e) = node
            .net
            .call(
                &to,
                crate::wire::method::FOUND,
                body,
                Duration::from_millis(500),
            )
            .await
        {
            tracing::debug!(asker = q.from, "could not answer a search: {e}");
        }
    });
}

/// The site mapping rule itself: each link address with octet `k` (the subnet part)
/// replaced by `subnet`, at `port`. IPv6 addresses have no such rule and are skipped.
pub fn mapped_addresses(
    links: &[(String, IpAddr)],
    k: usize,
    subnet: u8,
    port: u16,
) -> Vec<(String, SocketAddr)> {
    links
        .iter()
        .filter_map(|(name, ip)| match ip {
            IpAddr::V4(v4) if k < 4 => {
                let mut o = v4.octets();
                o[k] = subnet;
                Some((name.clone(), SocketAddr::new(IpAddr::from(o), port)))
            }
            _ => None,
        })
        .collect()
}

/// Asks the cluster network by multicast who has `id`; waits up to the search
/// timeout, preferring a holder in another site than `failed_site`.
async fn multicast_search(
    node: &Arc<NodeShared>,
    set: &str,
    id: ObjectId,
    failed: Option<NodeId>,
    failed_site: Option<String>,
) -> Option<(NodeId, ObjectStat)> {
    let mc = node.multicast.get()?;
    if !node.cfg.locator.multicast_search {
        return None;
    }
    let query = node
        .locator
        .next_query
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ^ (node.id() << 48);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    node.locator
        .searches
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(query, tx);
    let q = WhoHasQuery {
        cluster: node.cfg.cluster.clone(),
        query,
        from: node.id(),
        reply_to: crate::node::rpc_addrs(&node.member_record()).0,
        set: set.to_string(),
        id,
        min_version: None,
    };
    let msg = crate::membership::MulticastMessage::WhoHas(q);
    let mut best: Option<(NodeId, ObjectStat)> = None;
    if mc.announce(&crate::wire::encode(&msg)).is_ok() {
        let deadline =
            tokio::time::Instant::now() + Duration::from_millis(node.cfg.locator.search_timeout_ms);
        while let Ok(Some(f)) = tokio::time::timeout_at(deadline, rx.recv()).await {
            if Some(f.node) == failed {
                continue;
            }
            tracing::info!(%id, holder = f.node, version = %f.stat.version, "locator: multicast search answered");
            let site = node
                .db
                .read(|s| s.members.get(&f.node).map(|m| m.site.clone()));
            let other_site = site.is_some() && site != failed_site;
            if other_site {
                best = Some((f.node, f.stat));
                break;
            }
            best.get_or_insert((f.node, f.stat));
        }
    }
    node.locator
        .searches
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(&query);
    best
}

/// Searches for `id` of `set`: by multicast on the cluster network first, then point
/// to point, asking the storage nodes of the other sites than `failed`'s first, then
/// those of its own site. Returns the first that has it.
async fn search(
    node: &Arc<NodeShared>,
    set: &str,
    id: ObjectId,
    failed: Option<NodeId>,
) -> Option<(NodeId, ObjectStat)> {
    let failed_site = node.db.read(|s| {
        failed
            .and_then(|f| s.members.get(&f))
            .map(|m| m.site.clone())
    });
    if let Some(found) = multicast_search(node, set, id, failed, failed_site).await {
        return Some(found);
    }
    let (other_sites, same_site) = node.db.read(|s| {
        let failed_site = failed
            .and_then(|f| s.members.get(&f))
            .map(|m| m.site.clone());
        let storage: Vec<_> = s
            .members
            .values()
            .filter(|m| m.roles.contains(&NodeRole::Storage) && Some(m.id) != failed)
            .collect();
        let (same, other): (Vec<_>, Vec<_>) = storage
            .into_iter()
            .partition(|m| Some(&m.site) == failed_site.as_ref());
        (
            other.iter().map(|m| m.id).collect::<Vec<_>>(),
            same.iter().map(|m| m.id).collect::<Vec<_>>(),
        )
    });
    let timeout = Duration::from_millis(node.cfg.locator.search_timeout_ms);
    for group in [other_sites, same_site] {
        let asks = group.iter().map(|n| {
            let req = StoreRequest::WhoHas {
                set: set.to_string(),
                id,
                min_version: None,
            };
            async move { (*n, storage::call(node, *n, req, timeout).await) }
        });
        for (n, r) in futures::future::join_all(asks).await {
            if let Ok(StoreReply::Stat(Some(stat))) = r {
                return Some((n, stat));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_site_mapping_rule_changes_only_the_subnet_part() {
        let links = vec![
            ("a".to_string(), "127.0.1.2".parse().expect("ip")),
            ("b".to_string(), "127.1.1.2".parse().expect("ip")),
            ("v6".to_string(), "::1".parse().expect("ip")),
        ];
        let mapped = mapped_addresses(&links, 2, 2, 7100);
        assert_eq!(
            mapped,
            vec![
                ("a".to_string(), "127.0.2.2:7100".parse().expect("addr")),
                ("b".to_string(), "127.1.2.2:7100".parse().expect("addr")),
            ]
        );
    }

    #[test]
    fn another_octet_can_be_the_subnet_part() {
        let links = vec![("a".to_string(), "198.18.4.7".parse().expect("ip"))];
        let mapped = mapped_addresses(&links, 1, 19, 7100);
        assert_eq!(mapped[0].1, "198.19.4.7:7100".parse().expect("addr"));
    }
}
