//! Prometheus metrics of a node, served at `/metrics` on the admin port.
//!
//! Owns the registry and the handles; must never decide anything from them.
//!
//! Names follow Prometheus conventions: a unit suffix (`_bytes`, `_seconds`), counters
//! end in `_total` (added by the encoder), histograms of durations in seconds. Gauges
//! that describe state (disk, objects per set, in-sync sizes, member states, acting
//! Primary) are refreshed when `/metrics` is scraped ([`Metrics::refresh`]), so a
//! scrape never shows a lease that ran out before it.

use crate::admin_api::CapacityView;
use keel_core::{ClusterState, MemberRef, NodeId, SetId};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::future::Future;
use std::time::Instant;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LinkLabel {
    pub link: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SetLabel {
    pub set: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MemberStateLabel {
    pub node: String,
    pub state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BuildLabel {
    pub version: String,
}

/// Buckets of the latency histograms: 0.5 ms to about 16 s.
fn latency_buckets() -> impl Iterator<Item = f64> {
    exponential_buckets(0.0005, 2.0, 16)
}

fn latency() -> Histogram {
    Histogram::new(latency_buckets())
}

pub struct Metrics {
    registry: Registry,
    pub heartbeats_sent: Family<LinkLabel, Counter>,
    pub heartbeats_received: Family<LinkLabel, Counter>,
    pub is_leader: Gauge,
    pub raft_term: Gauge,
    pub failures_detected: Counter,
    pub failovers_decided: Counter,
    pub link_events: Counter,
    pub leases_lost: Counter,
    pub set_epoch: Family<SetLabel, Gauge>,
    pub acting_primary: Family<SetLabel, Gauge>,
    pub health_score: Gauge,
    /// Storage: writes this node acknowledged as a Primary, and their bytes.
    pub writes_acknowledged: Counter,
    pub bytes_written: Counter,
    /// Storage: writes this node refused as a Primary (any typed error).
    pub writes_refused: Counter,
    /// Storage: replicas this node took off an in-sync list.
    pub in_sync_shrinks: Counter,
    /// Storage: objects copied by catch-up and by rebalance, and repaired.
    pub objects_caught_up: Counter,
    pub objects_rebalanced: Counter,
    pub objects_repaired: Counter,
    /// Locator: failover conditions entered for a storage node.
    pub locator_failovers: Counter,
    /// Latencies (seconds): a storage write handled as Primary (put), a read served,
    /// the Primary's local write (its fsync included), and its replication round.
    pub put_seconds: Histogram,
    pub get_seconds: Histogram,
    pub local_write_seconds: Histogram,
    pub replication_seconds: Histogram,
    /// Refreshed at scrape time (see [`Metrics::refresh`]).
    pub disk_total_bytes: Gauge,
    pub disk_used_bytes: Gauge,
    pub disk_free_bytes: Gauge,
    pub set_objects: Family<SetLabel, Gauge>,
    pub set_bytes: Family<SetLabel, Gauge>,
    pub set_in_sync: Family<SetLabel, Gauge>,
    pub set_members: Family<SetLabel, Gauge>,
    pub member_state: Family<MemberStateLabel, Gauge>,
    pub build_info: Family<BuildLabel, Gauge>,
    /// Storage, asynchronous volumes: per set, the bytes and writes this node (as
    /// Primary) acknowledged and has not yet replicated to the other sites.
    pub async_backlog_bytes: Family<SetLabel, Gauge>,
    pub async_backlog_writes: Family<SetLabel, Gauge>,
    /// Read barriers this node confirmed as leader (its own and its followers').
    pub read_barriers: Counter,
    /// Read barriers the native API ran on this node for (authenticated) requests.
    pub api_read_barriers: Counter,
    /// The hits and misses of the gateways' caches on this node (they count into it,
    /// see [`crate::fileservice::NodeFiles::cache_counters`]), and their ratios.
    pub gateway_cache: std::sync::Arc<keel_fs::cache::CacheCounters>,
    pub cache_data_hit_ratio: Gauge<f64, std::sync::atomic::AtomicU64>,
    pub cache_dir_hit_ratio: Gauge<f64, std::sync::atomic::AtomicU64>,
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("keel");
        let m = Metrics {
            heartbeats_sent: Family::default(),
            heartbeats_received: Family::default(),
            is_leader: Gauge::default(),
            raft_term: Gauge::default(),
            failures_detected: Counter::default(),
            failovers_decided: Counter::default(),
            link_events: Counter::default(),
            leases_lost: Counter::default(),
            set_epoch: Family::default(),
            acting_primary: Family::default(),
            health_score: Gauge::default(),
            writes_acknowledged: Counter::default(),
            bytes_written: Counter::default(),
            writes_refused: Counter::default(),
            in_sync_shrinks: Counter::default(),
            objects_caught_up: Counter::default(),
            objects_rebalanced: Counter::default(),
            objects_repaired: Counter::default(),
            locator_failovers: Counter::default(),
            put_seconds: latency(),
            get_seconds: latency(),
            local_write_seconds: latency(),
            replication_seconds: latency(),
            disk_total_bytes: Gauge::default(),
            disk_used_bytes: Gauge::default(),
            disk_free_bytes: Gauge::default(),
            set_objects: Family::default(),
            set_bytes: Family::default(),
            set_in_sync: Family::default(),
            set_members: Family::default(),
            member_state: Family::default(),
            build_info: Family::default(),
            async_backlog_bytes: Family::default(),
            async_backlog_writes: Family::default(),
            read_barriers: Counter::default(),
            api_read_barriers: Counter::default(),
            gateway_cache: Default::default(),
            cache_data_hit_ratio: Gauge::default(),
            cache_dir_hit_ratio: Gauge::default(),
            registry: Registry::default(),
        };
        m.build_info
            .get_or_create(&BuildLabel {
                version: env!("CARGO_PKG_VERSION").to_string(),
            })
            .set(1);
        registry.register(
            "read_barriers",
            "Read barriers confirmed with a quorum by this node as leader",
            m.read_barriers.clone(),
        );
        registry.register(
            "api_read_barriers",
            "Read barriers the native API ran on this node for authenticated requests",
            m.api_read_barriers.clone(),
        );
        registry.register(
            "gateway_cache_data_hit_ratio",
            "Share of file block reads the gateways' data caches served (0 before any)",
            m.cache_data_hit_ratio.clone(),
        );
        registry.register(
            "gateway_cache_dir_hit_ratio",
            "Share of attribute and name lookups the gateways' directory caches served (0 before any)",
            m.cache_dir_hit_ratio.clone(),
        );
        registry.register(
            "heartbeats_sent",
            "Heartbeat datagrams sent, per link",
            m.heartbeats_sent.clone(),
        );
        registry.register(
            "heartbeats_received",
            "Heartbeat datagrams received, per link",
            m.heartbeats_received.clone(),
        );
        registry.register(
            "is_leader",
            "1 if this node is the configuration database leader (the arbiter)",
            m.is_leader.clone(),
        );
        registry.register(
            "raft_term",
            "Current configuration database term",
            m.raft_term.clone(),
        );
        registry.register(
            "failures_detected",
            "Member failures detected by this node as arbiter",
            m.failures_detected.clone(),
        );
        registry.register(
            "failovers_decided",
            "Primary changes decided by this node as arbiter",
            m.failovers_decided.clone(),
        );
        registry.register(
            "link_events",
            "Link down/up events raised by this node as arbiter",
            m.link_events.clone(),
        );
        registry.register(
            "leases_lost",
            "Primary leases this node let run out",
            m.leases_lost.clone(),
        );
        registry.register(
            "set_epoch",
            "Epoch of each failover set in this node's replica",
            m.set_epoch.clone(),
        );
        registry.register(
            "acting_primary",
            "1 while this node holds the set's lease and acts as Primary",
            m.acting_primary.clone(),
        );
        registry.register(
            "storage_async_backlog_bytes",
            "Bytes acknowledged by this Primary not yet replicated to the other sites",
            m.async_backlog_bytes.clone(),
        );
        registry.register(
            "storage_async_backlog_writes",
            "Writes acknowledged by this Primary not yet replicated to the other sites",
            m.async_backlog_writes.clone(),
        );
        registry.register(
            "health_score",
            "This node's own health score (0-100)",
            m.health_score.clone(),
        );
        let counters: [(&str, &str, &Counter); 8] = [
            (
                "storage_writes_acknowledged",
                "Writes acknowledged by this node as a storage set's Primary",
                &m.writes_acknowledged,
            ),
            (
                "storage_written_bytes",
                "Bytes of the writes this node acknowledged as Primary",
                &m.bytes_written,
            ),
            (
                "storage_writes_refused",
                "Writes this node refused as Primary (a typed error)",
                &m.writes_refused,
            ),
            (
                "storage_in_sync_shrinks",
                "Replicas this node took off a set's in-sync list",
                &m.in_sync_shrinks,
            ),
            (
                "storage_objects_caught_up",
                "Objects this node copied while catching up",
                &m.objects_caught_up,
            ),
            (
                "storage_objects_rebalanced",
                "Objects this node moved to their new set after a layout change",
                &m.objects_rebalanced,
            ),
            (
                "storage_objects_repaired",
                "Objects whose checksum failed here and were repaired from a replica",
                &m.objects_repaired,
            ),
            (
                "locator_failovers",
                "Failover conditions this node's locator entered for a storage node",
                &m.locator_failovers,
            ),
        ];
        for (name, help, c) in counters {
            registry.register(name, help, c.clone());
        }
        let histograms: [(&str, &str, &Histogram); 4] = [
            (
                "storage_put_duration_seconds",
                "Storage writes handled by this node as Primary, from request to answer",
                &m.put_seconds,
            ),
            (
                "storage_get_duration_seconds",
                "Storage reads served by this node",
                &m.get_seconds,
            ),
            (
                "storage_fsync_duration_seconds",
                "The Primary's local durable write of each storage write (its fsync included)",
                &m.local_write_seconds,
            ),
            (
                "storage_replication_duration_seconds",
                "The Primary's synchronous replication round to its in-sync replicas",
                &m.replication_seconds,
            ),
        ];
        for (name, help, h) in histograms {
            registry.register(name, help, h.clone());
        }
        let gauges: [(&str, &str, &Gauge); 3] = [
            (
                "disk_total_bytes",
                "Size of the file system holding this node's data directory",
                &m.disk_total_bytes,
            ),
            (
                "disk_used_bytes",
                "Bytes used on the file system holding this node's data directory",
                &m.disk_used_bytes,
            ),
            (
                "disk_free_bytes",
                "Bytes free (to an unprivileged writer) on that file system",
                &m.disk_free_bytes,
            ),
        ];
        for (name, help, g) in gauges {
            registry.register(name, help, g.clone());
        }
        registry.register(
            "storage_set_objects",
            "Live objects of each storage set held on this node",
            m.set_objects.clone(),
        );
        registry.register(
            "storage_set_bytes",
            "Bytes of the live objects of each storage set held on this node",
            m.set_bytes.clone(),
        );
        registry.register(
            "set_in_sync_members",
            "Members on each storage set's in-sync list, in this node's replica",
            m.set_in_sync.clone(),
        );
        registry.register(
            "set_members",
            "Node members of each set (a storage set's replication factor)",
            m.set_members.clone(),
        );
        registry.register(
            "member_state",
            "1 for each member's current state (up, suspect, failed, quarantined, joining), in this node's replica",
            m.member_state.clone(),
        );
        registry.register(
            "build_info",
            "Always 1; the label carries the keel version",
            m.build_info.clone(),
        );
        Metrics { registry, ..m }
    }

    /// Runs `f` and observes its duration in `h`.
    pub async fn time<T>(h: &Histogram, f: impl Future<Output = T>) -> T {
        let started = Instant::now();
        let out = f.await;
        h.observe(started.elapsed().as_secs_f64());
        out
    }

    /// Sets the state gauges from this node's replica (`state`), its own counts
    /// (`capacity`) and the sets whose lease it holds right now (`acting`: set and
    /// epoch). A set is shown acting only if the replica still names this node its
    /// Primary at that epoch: a lease that ran out or a role that moved reads 0 at
    /// once, not at the next heartbeat.
    /// The gateway caches' counts and ratios now.
    pub fn cache_view(&self) -> crate::admin_api::CacheView {
        let s = self.gateway_cache.snapshot();
        crate::admin_api::CacheView {
            data_hits: s.data_hits,
            data_misses: s.data_misses,
            data_hit_ratio: s.data_hit_ratio(),
            dir_hits: s.dir_hits,
            dir_misses: s.dir_misses,
            dir_hit_ratio: s.dir_hit_ratio(),
        }
    }

    pub fn refresh(
        &self,
        me: NodeId,
        state: &ClusterState,
        capacity: Option<&CapacityView>,
        acting: &[(SetId, keel_core::Epoch)],
    ) {
        let cache = self.cache_view();
        self.cache_data_hit_ratio.set(cache.data_hit_ratio);
        self.cache_dir_hit_ratio.set(cache.dir_hit_ratio);
        if let Some(c) = capacity {
            self.disk_total_bytes.set(c.disk_total_bytes as i64);
            self.disk_used_bytes.set(c.disk_used_bytes as i64);
            self.disk_free_bytes.set(c.disk_free_bytes as i64);
            self.set_objects.clear();
            self.set_bytes.clear();
            for u in &c.sets {
                let label = SetLabel { set: u.set.clone() };
                self.set_objects.get_or_create(&label).set(u.objects as i64);
                self.set_bytes.get_or_create(&label).set(u.bytes as i64);
            }
        }
        self.set_in_sync.clear();
        self.set_members.clear();
        self.acting_primary.clear();
        for s in state.sets.values() {
            let label = SetLabel { set: s.id.clone() };
            let nodes = s
                .members
                .iter()
                .filter(|m| matches!(m, MemberRef::Node(_)))
                .count();
            self.set_members.get_or_create(&label).set(nodes as i64);
            if s.kind == keel_core::SetKind::Storage {
                self.set_in_sync
                    .get_or_create(&label)
                    .set(s.in_sync.len() as i64);
            }
            let acts = s.primary == Some(MemberRef::Node(me))
                && acting.iter().any(|(set, e)| *set == s.id && *e == s.epoch);
            self.acting_primary.get_or_create(&label).set(acts as i64);
        }
        self.member_state.clear();
        for m in state.members.values() {
            self.member_state
                .get_or_create(&MemberStateLabel {
                    node: m.id.to_string(),
                    state: m.state.as_str().to_string(),
                })
                .set(1);
        }
    }

    pub fn encode(&self) -> String {
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
