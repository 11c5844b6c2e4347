//! The admin request and status shapes shared by the node's admin API and the CLI.

use keel_core::{Epoch, Event, MemberRef, NodeId, SetId, SetSpec};
use serde::{Deserialize, Serialize};

/// A change an operator asks for. Executed by the configuration database leader; any
/// member accepts it and forwards it there.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum AdminRequest {
    CreateSet {
        spec: SetSpec,
    },
    DeleteSet {
        set: SetId,
        /// Delete even a storage set that the placement map names or that holds
        /// objects.
        #[serde(default)]
        force: bool,
    },
    /// Graceful manual takeover.
    Takeover {
        set: SetId,
        to: MemberRef,
        /// Only if the set is still at this epoch (fencing for operators and scripts).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        epoch: Option<Epoch>,
    },
    Drain {
        node: NodeId,
        /// Drain even when a set would be left without an eligible Primary.
        #[serde(default)]
        force: bool,
    },
    Undrain {
        node: NodeId,
    },
    /// Clear a quarantined node.
    Clear {
        node: NodeId,
    },
    /// Remove a node for good (it must hold no set membership).
    Remove {
        node: NodeId,
    },
    /// Apply the storage layout: a storage set led by each storage node, and the
    /// placement groups spread over them (see `keel_policy::layout`).
    ApplyLayout {
        /// Members per new storage set (the replication factor); default: the
        /// cluster's setting (2).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        replicas: Option<usize>,
        /// Change nothing: answer the current layout and what `apply` would change
        /// (`keel layout show`).
        #[serde(default)]
        dry_run: bool,
    },
    /// Record an access key (drawn by the member that took the request).
    CreateKey {
        key: keel_core::AccessKey,
    },
    /// Revoke an access key.
    DeleteKey {
        id: String,
    },
    /// Make the token with this SHA-256 (hex) the admin token.
    SetAdminToken {
        sha256: String,
    },
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct AdminReply {
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epoch: Option<Epoch>,
}

/// A local-only dev fault: cut or restore one of this node's links.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct LinkFaultRequest {
    pub link: String,
    pub up: bool,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct LinkView {
    pub name: String,
    pub ip: String,
    pub down: bool,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct NodeView {
    pub id: NodeId,
    pub site: String,
    pub addr: String,
    pub pid: u32,
    pub state: String,
    pub drained: bool,
    pub roles: Vec<String>,
    pub links: Vec<LinkView>,
    /// Health score as the answering node last heard it (absent if never heard).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<u8>,
    pub recent_failures: usize,
    /// When the member last became `up` (ms since the Unix epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub up_since: Option<i64>,
    /// When its last failure was recorded (ms since the Unix epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_at: Option<i64>,
    /// Its disk and objects, as the member itself reported them (filled by the
    /// client from the member's own answer; absent if it did not answer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity: Option<CapacityView>,
}

/// One node's disk and the objects its storage holds, as it counts them itself.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
pub struct CapacityView {
    /// The node's data directory.
    pub data_dir: String,
    /// The file system holding it: total, used and free (to an unprivileged writer).
    pub disk_total_bytes: u64,
    pub disk_used_bytes: u64,
    pub disk_free_bytes: u64,
    /// Live objects and their bytes per storage set held here.
    #[serde(default)]
    pub sets: Vec<SetUsage>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
pub struct SetUsage {
    pub set: SetId,
    pub objects: u64,
    pub bytes: u64,
}

/// A catch-up or a rebalance not yet done, from the event log.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct ProgressView {
    /// `catch_up` or `rebalance`.
    pub kind: String,
    pub set: SetId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<NodeId>,
    /// The last event's wording (`12/40 objects moved ...`).
    pub detail: String,
    /// When it started or last reported (ms since the Unix epoch).
    pub since: i64,
}

/// Cluster-wide figures summed over the members that answered.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
pub struct TotalsView {
    pub nodes: usize,
    pub nodes_up: usize,
    pub disk_total_bytes: u64,
    pub disk_used_bytes: u64,
    pub disk_free_bytes: u64,
    /// Live objects and bytes, counted once per set (from its Primary, else the member
    /// holding most).
    pub objects: u64,
    pub bytes: u64,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct SetView {
    pub id: SetId,
    pub kind: String,
    pub composition: String,
    pub epoch: Epoch,
    pub primary: Option<MemberRef>,
    pub secondary: Option<MemberRef>,
    pub alternates: Vec<MemberRef>,
    pub members: Vec<MemberRef>,
    pub in_sync: Vec<NodeId>,
    pub failovers: u64,
    pub health_threshold: u8,
    /// The lease holder, as the arbiter knows it (present only in the leader's answer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_holder: Option<NodeId>,
    /// Storage sets: members wanted (the replication factor it was laid out with).
    #[serde(default)]
    pub replication: usize,
    /// When its roles last changed (ms since the Unix epoch).
    #[serde(default)]
    pub changed_at: i64,
    /// Storage sets: live objects and bytes (filled by the client from its members'
    /// own counts; absent if none answered).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub objects: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
    /// Asynchronous volumes: what the answering node, as the set's Primary, has
    /// acknowledged and not yet replicated to the other sites (present only if it has
    /// had such writes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub async_backlog: Option<crate::storage::async_repl::BacklogView>,
}

impl SetView {
    /// The Primary if it is a node.
    pub fn primary_node(&self) -> Option<NodeId> {
        match self.primary {
            Some(MemberRef::Node(n)) => Some(n),
            _ => None,
        }
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct StatusView {
    pub cluster: String,
    /// The configuration database leader, as the answering node knows it.
    pub leader: Option<NodeId>,
    pub term: u64,
    /// The node that answered.
    pub answered_by: NodeId,
    pub nodes: Vec<NodeView>,
    pub sets: Vec<SetView>,
    /// Does the answering member reach a quorum of the configuration database (it
    /// leads with a fresh quorum confirmation, or hears a leader and a majority)? A
    /// view from a member that does not may be stale.
    #[serde(default)]
    pub quorum: bool,
    /// The answering member's applied log index (how far its view goes).
    #[serde(default)]
    pub applied: u64,
    /// When it answered (ms since the Unix epoch, its clock).
    #[serde(default)]
    pub at: i64,
    /// Catch-ups and rebalances in progress.
    #[serde(default)]
    pub progress: Vec<ProgressView>,
    /// The answering member's own disk and objects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local: Option<CapacityView>,
    /// Set by the client: no member that reaches a quorum answered, so this view may
    /// be out of date.
    #[serde(default)]
    pub stale: bool,
    /// Set by the client: members that did not answer it.
    #[serde(default)]
    pub unanswered: Vec<NodeId>,
    /// Set by the client: `HEALTH_OK`, `HEALTH_WARN` or `HEALTH_ERR`, and why.
    #[serde(default)]
    pub health: String,
    #[serde(default)]
    pub reasons: Vec<String>,
    /// Set by the client: figures summed over the members that answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub totals: Option<TotalsView>,
    /// The answering member's gateway caches: hits, misses and hit ratios.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache: Option<CacheView>,
}

/// The gateway caches of a node (every cache its gateways stack over its file service).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
pub struct CacheView {
    pub data_hits: u64,
    pub data_misses: u64,
    pub data_hit_ratio: f64,
    /// Attributes and lookups.
    pub dir_hits: u64,
    pub dir_misses: u64,
    pub dir_hit_ratio: f64,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct EventsPage {
    pub events: Vec<Event>,
    /// Pass as `since` to get the events after these.
    pub next: u64,
}

/// One node's own objects of a storage set, for checking the data invariant from
/// outside (`GET /v1/storage/{set}/objects` on the admin API, with the admin token):
/// what this node's store holds, and which objects of the set the files of this
/// node's directory replica refer to.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct StorageObjectsView {
    /// The node that answered (the objects are on its disk).
    pub node: NodeId,
    pub set: SetId,
    /// Every object and tombstone of the set in this node's store, by id.
    pub objects: Vec<keel_store::ObjectStat>,
    /// Objects the placement map puts in this set that a file of this node's
    /// directory replica refers to.
    pub referenced: Vec<keel_core::ObjectId>,
    /// Whether the directory replica was brought up to date (a read barrier) before
    /// `referenced` was read; false when the control plane was out of reach.
    pub fresh: bool,
}

/// `POST /v1/keys`: a new access key.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
pub struct NewKeyRequest {
    pub name: String,
    /// The volumes it may use; empty: every volume.
    #[serde(default)]
    pub volumes: Vec<String>,
    #[serde(default)]
    pub read_only: bool,
}

/// An access key as `GET /v1/keys` lists it: never its secret.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct KeyView {
    pub id: String,
    pub name: String,
    pub volumes: Vec<String>,
    pub read_only: bool,
    pub created_at: keel_core::UnixMillis,
}

impl KeyView {
    pub fn of(k: &keel_core::AccessKey) -> KeyView {
        KeyView {
            id: k.id.clone(),
            name: k.name.clone(),
            volumes: k.volumes.clone(),
            read_only: k.read_only,
            created_at: k.created_at,
        }
    }
}

/// The answer to `POST /v1/keys`: the only time the secret is shown.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct NewKey {
    pub key: KeyView,
    pub secret: String,
}

/// The answer to `POST /v1/admin/token`: the new admin token, shown once.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct NewToken {
    pub token: String,
}
