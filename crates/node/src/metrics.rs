//! Prometheus metrics of a node, served at `/metrics` on the admin port.
//!
//! Owns the registry and the handles; must never decide anything from them.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LinkLabel {
    pub link: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SetLabel {
    pub set: String,
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
    /// Read barriers this node confirmed as leader (its own and its followers').
    pub read_barriers: Counter,
    /// Read barriers the native API ran on this node for (authenticated) requests.
    pub api_read_barriers: Counter,
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
            read_barriers: Counter::default(),
            api_read_barriers: Counter::default(),
            registry: Registry::default(),
        };
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
                "storage_bytes_written",
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
        Metrics { registry, ..m }
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
