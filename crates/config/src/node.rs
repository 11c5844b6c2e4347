//! The schema of `keel.toml`. Every field is documented; every section has defaults.

use keel_core::{NodeId, NodeRole};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr, SocketAddrV4};
use std::path::PathBuf;

/// One node's configuration.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// This node's identity: unique in the cluster, never reused. Not 0.
    pub id: NodeId,
    /// The cluster's name; a node refuses peers of another cluster.
    #[serde(default = "default_cluster")]
    pub cluster: String,
    /// The site (data center, room, rack) this node stands in, e.g. `a`.
    pub site: String,
    /// Where the node keeps the configuration database and its own state.
    pub data_dir: PathBuf,
    /// The cluster secret: a PEM file holding the cluster CA's certificate and key,
    /// mode 0600. Joining needs it; internal RPC is mutual TLS under this CA.
    pub secret_file: PathBuf,
    /// What this node hosts: any of `control`, `storage`, `gateway`.
    #[serde(default = "default_roles")]
    pub roles: BTreeSet<NodeRole>,
    /// The networks this node is on, in order of preference. Two or more make
    /// redundant links: a silent link alone is then a link failure, not a failover.
    pub links: Vec<LinkConfig>,
    #[serde(default)]
    pub ports: PortsConfig,
    #[serde(default)]
    pub discovery: DiscoveryConfig,
    #[serde(default)]
    pub timings: TimingsConfig,
    #[serde(default)]
    pub locator: LocatorConfig,
    #[serde(default)]
    pub async_replication: AsyncReplicationConfig,
    #[serde(default)]
    pub dev: DevConfig,
    #[serde(default)]
    pub http: HttpConfig,
    /// The gateway role: the exports this node serves when it is their gateway set's
    /// Active (`[gateway]`, `[[gateway.exports]]`).
    #[serde(default)]
    pub gateway: GatewayConfig,
    /// The cluster's DNS and failover by name (seed 004, `[dns]`).
    #[serde(default)]
    pub dns: DnsConfig,
}

/// Failover by name (seed 004): the cluster's authoritative DNS server (`keel-dns`)
/// and the gateways it names. `<name>.<zone>` is a gateway's primary data address (its
/// home node's first link); `<name><suffix>.<zone>` is the address of the member
/// serving it on its secondary data port after a takeover (none before: NODATA).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DnsConfig {
    /// Where this node serves the cluster's DNS (UDP and TCP); none: it does not.
    pub listen: Option<SocketAddr>,
    /// The cluster's zone. Default `keel.test`.
    pub zone: String,
    /// Appended to a gateway's name to make its failover name. Default `-failover`.
    pub suffix: String,
    /// TTL of the answers (s). Default 1: a failover name changes on a takeover.
    pub ttl_secs: u32,
    /// The gateways named in the zone, the same list on every node.
    pub gateways: Vec<DnsGatewayConfig>,
}

impl Default for DnsConfig {
    fn default() -> Self {
        DnsConfig {
            listen: None,
            zone: "keel.test".to_string(),
            suffix: "-failover".to_string(),
            ttl_secs: 1,
            gateways: vec![],
        }
    }
}

/// One gateway named in the cluster's DNS.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DnsGatewayConfig {
    /// Its DNS label (letters, digits, '-').
    pub name: String,
    /// The gateway failover set whose Active serves it.
    pub set: String,
    /// The node it belongs to: `<name>` is this node's address.
    pub home: NodeId,
    /// The secondary data port: the partner opens it on its own address when it
    /// serves this gateway in place of `home`, and closes it when it gives it back.
    pub secondary_port: u16,
}

/// The gateway role (nodes with `gateway` in `roles`): the exports, and how the
/// members of a gateway failover set watch each other (seed 000).
///
/// An export is served by the Active (the Primary) of its gateway set, and only while
/// that node holds the set's lease: it binds the export's address when it becomes
/// Active with a lease and closes it `stop_before_lease_end_ms` before the lease
/// would run out unrenewed. The Passive (the Secondary) asks the Active for its health
/// every `health_poll_ms`; when the answer is below the set's `health_threshold`, or
/// no answer came for `detect_after_ms`, it asks the control plane to take over. The
/// Active gives up (asks the control plane to hand over to its Passive) when its own
/// health falls below the threshold.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct GatewayConfig {
    /// How often the Passive asks the Active for its health (ms). Default 100.
    pub health_poll_ms: u64,
    /// How long one health question may take before it counts as unanswered (ms).
    /// Default 250.
    pub health_deadline_ms: u64,
    /// The Active unanswered this long (since its last answer): the Passive asks for
    /// takeover (ms). Default 1000: a process that is gone is the arbiter's to detect
    /// (silent heartbeats, `timings.fail_after_ms`, 350 ms); the Passive's questions
    /// add what heartbeats do not show — an Active whose health is below the threshold,
    /// or whose process still beats but no longer answers requests — without taking
    /// a loaded but working Active for a failed one.
    pub detect_after_ms: u64,
    /// The Active closes its export listeners this long before its lease would run
    /// out unrenewed (ms); must be below `timings.lease_ms`. Default 100.
    pub stop_before_lease_end_ms: u64,
    /// How this node holds the addresses of its active-passive exports while it
    /// serves them: `hold = "loopback"` (default: the address must already be local,
    /// e.g. in 127.0.0.0/8, and only the owner binds it; `keel dev up`) or
    /// `hold = { interface = "NAME" }`: the owner adds the address (as a /32) to
    /// interface NAME over netlink once the control plane gave it the lease, announces
    /// it with gratuitous ARP, and removes it when it stops serving (at the latest
    /// `stop_before_lease_end_ms` before its lease ends). Per node: interface names
    /// are the host's. Needs CAP_NET_ADMIN and CAP_NET_RAW.
    pub hold: AddressHold,
    /// The exports, the same list on every gateway node of the cluster.
    pub exports: Vec<ExportConfig>,
}

/// How a gateway node holds its active-passive export addresses (see
/// [`GatewayConfig::hold`]).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum AddressHold {
    /// The address is local already; the owner only binds it.
    #[default]
    Loopback,
    /// The owner adds the address to this interface and removes it (netlink).
    Interface(String),
}

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig {
            health_poll_ms: 100,
            health_deadline_ms: 250,
            detect_after_ms: 1000,
            stop_before_lease_end_ms: 100,
            hold: AddressHold::Loopback,
            exports: vec![],
        }
    }
}

/// How an export is served by its gateway set (seed 002: port failover policies).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "kebab-case")]
pub enum ExportPolicy {
    /// One path at a time: the Active alone listens on the export's address; the
    /// address moves to the new Active on failover.
    #[default]
    ActivePassive,
    /// Every path at once: every eligible member of the set serves the export on its
    /// own address (its first link's); clients get the list and spread requests.
    ActiveActive,
}

/// One export: a volume served over NFS and/or S3 by a gateway set.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ExportConfig {
    /// The export's name (the NFS export path is `/NAME`).
    pub name: String,
    /// The gateway failover set (kind `gateway`) that serves it.
    pub set: String,
    /// The export address (active-passive): only the set's current Active listens on
    /// it. On one host (`keel dev up`) a loopback address such as `127.0.10.1`.
    pub address: IpAddr,
    /// NFSv3 port (portmap, mount and NFS on one TCP port); none: no NFS.
    #[serde(default)]
    pub nfs_port: Option<u16>,
    /// S3 port; none: no S3.
    #[serde(default)]
    pub s3_port: Option<u16>,
    /// The volume exported (the S3 bucket of the same name). Default `default`.
    #[serde(default = "default_volume")]
    pub volume: String,
    /// `active-passive` (default) or `active-active`.
    #[serde(default)]
    pub policy: ExportPolicy,
}

fn default_volume() -> String {
    "default".to_string()
}

/// The HTTP port (admin API and native data API). Changes need the admin token; data
/// needs an access key. These switches close the reads that are open by default.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// `GET /v1/status` answers without a token.
    pub open_status: bool,
    /// `GET /v1/events` answers without a token.
    pub open_events: bool,
    /// `GET /metrics` answers without a token.
    pub open_metrics: bool,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            open_status: true,
            open_events: true,
            open_metrics: true,
        }
    }
}

/// Volumes with asynchronous replication (`replication = "async"`): the Primary
/// acknowledges a write once it is durable on the in-sync replicas of its own site, and
/// sends it to the other sites' in the background. These bound that background work
/// per storage set, so a remote site never lags by more than this.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AsyncReplicationConfig {
    /// Bytes of acknowledged writes a set's Primary may have in flight to remote
    /// replicas. When full, new writes of the set wait (backpressure). A single write
    /// larger than this goes alone, when nothing else is in flight.
    pub backlog_bytes: u64,
    /// Acknowledged writes a set's Primary may have in flight to remote replicas.
    pub backlog_writes: u64,
    /// How long a write waits for room in the backlog, or for a lagging remote
    /// replica to be taken off the in-sync list, before it is refused (ms).
    pub wait_ms: u64,
}

impl Default for AsyncReplicationConfig {
    fn default() -> Self {
        AsyncReplicationConfig {
            backlog_bytes: 256 * 1024 * 1024,
            backlog_writes: 1024,
            wait_ms: 10_000,
        }
    }
}

/// How the locator (the object storage manager of seed 001) finds the duplicate of
/// an object when the storage node that should hold it stops answering: first the
/// refreshed placement map, then the site mapping rule, then a search.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LocatorConfig {
    /// Use the site mapping rule: in a mirrored layout node i of one site pairs with
    /// node i of the other, and their addresses differ only in the subnet part. Works
    /// without the control plane.
    pub site_mapping: bool,
    /// Which octet of an IPv4 address is that subnet part (0-based): 2 for
    /// `127.0.S.N` or `198.18.S.N`.
    pub subnet_octet: u8,
    /// Ask the cluster network by UDP multicast ("who has object X at version v or
    /// newer") before asking storage nodes one by one.
    pub multicast_search: bool,
    /// How long a search waits for answers, per step.
    pub search_timeout_ms: u64,
}

impl Default for LocatorConfig {
    fn default() -> Self {
        LocatorConfig {
            site_mapping: true,
            subnet_octet: 2,
            multicast_search: true,
            search_timeout_ms: 300,
        }
    }
}

/// One network link of a node.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LinkConfig {
    /// A short name, the same on every node for the same network, e.g. `a`, `b`.
    pub name: String,
    /// This node's address on that network; every port listens on it.
    pub addr: IpAddr,
}

/// Ports, the same on every address of the node.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct PortsConfig {
    /// Internal RPC (configuration database, joins, self-tests): mutual TLS.
    pub rpc: u16,
    /// Heartbeats (UDP, authenticated with a key derived from the cluster secret).
    pub heartbeat: u16,
    /// Admin API and Prometheus `/metrics` (HTTP). Changes need the admin token.
    pub admin: u16,
}

impl Default for PortsConfig {
    fn default() -> Self {
        PortsConfig {
            rpc: 7100,
            heartbeat: 7101,
            admin: 7180,
        }
    }
}

/// How a node finds the cluster.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DiscoveryConfig {
    /// RPC addresses (`ip:port`) of members to ask for admission.
    pub seeds: Vec<SocketAddr>,
    /// Announce this node and listen for others by UDP multicast on the first link.
    pub multicast: bool,
    /// Multicast group and port for announcements.
    pub multicast_group: SocketAddrV4,
    /// Create the cluster: set on exactly one node at cluster creation. That node, if
    /// its data dir is empty and no seed answers as a member of a running cluster,
    /// initializes the configuration database with itself as the only voter; every
    /// other node joins through discovery and control nodes are promoted to voters.
    pub bootstrap: bool,
    /// How often to announce (ms).
    pub announce_interval_ms: u64,
}

impl Default for DiscoveryConfig {
    fn default() -> Self {
        DiscoveryConfig {
            seeds: vec![],
            multicast: true,
            multicast_group: SocketAddrV4::new([239, 255, 70, 1].into(), 7199),
            bootstrap: false,
            announce_interval_ms: 1000,
        }
    }
}

/// Failure detection and lease timings. Defaults detect a crash in about 350 ms.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TimingsConfig {
    /// Heartbeat period on every link (ms).
    pub heartbeat_ms: u64,
    /// Silent this long on every link: suspect (ms).
    pub suspect_after_ms: u64,
    /// Silent this long on every link: failed, and failed over (ms).
    pub fail_after_ms: u64,
    /// A Primary's lease: it stops acting this long after its last renewal was sent
    /// unless renewed; the arbiter lets a new Primary act only after the old lease has
    /// run out (ms). Must exceed 2 × heartbeat_ms.
    pub lease_ms: u64,
    /// Health checks (disk write, latency) period (ms).
    pub health_check_ms: u64,
    /// A latency check slower than this lowers the health score (ms).
    pub slow_threshold_ms: u64,
}

impl Default for TimingsConfig {
    fn default() -> Self {
        TimingsConfig {
            heartbeat_ms: 100,
            suspect_after_ms: 200,
            fail_after_ms: 350,
            lease_ms: 500,
            health_check_ms: 1000,
            slow_threshold_ms: 500,
        }
    }
}

/// Switches for development clusters only.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct DevConfig {
    /// Allow `keel fault link` to cut this node's links. Set by `keel dev up`; refused
    /// everywhere else.
    pub faults: bool,
    /// Pretend to speak another protocol version (tests of the compatibility check).
    pub protocol_override: Option<u32>,
}

fn default_cluster() -> String {
    "keel".to_string()
}

fn default_roles() -> BTreeSet<NodeRole> {
    [NodeRole::Control, NodeRole::Storage, NodeRole::Gateway].into()
}
