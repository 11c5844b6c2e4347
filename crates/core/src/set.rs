//! Failover sets: a group of members, one of them Primary, one Secondary and the rest
//! ordered Alternates, with an epoch that grows on every change of Primary.

use crate::{Epoch, NodeId, SetId, StoreId, UnixMillis};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// What a set owns. Decides nothing in the control plane; later parts key on it.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
#[serde(rename_all = "snake_case")]
pub enum SetKind {
    #[default]
    Generic,
    Storage,
    Directory,
    Gateway,
}

/// How a set is composed (seed 002: Single, N-way, Hierarchical).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum Composition {
    /// One member: failure is detected and reported, there is nobody to fail over to.
    Single,
    /// Several nodes: Primary, Secondary, ordered Alternates.
    #[serde(rename = "nway")]
    NWay,
    /// Members are other sets; the role holders are child sets, and a child set is
    /// available while it has an eligible Primary.
    Hierarchical,
}

/// A member of a set: a node, or for hierarchical sets another set.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[serde(untagged)]
pub enum MemberRef {
    Node(NodeId),
    Set(SetId),
}

impl fmt::Display for MemberRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MemberRef::Node(n) => write!(f, "{n}"),
            MemberRef::Set(s) => write!(f, "{s}"),
        }
    }
}

/// What an operator asks for when creating a set.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct SetSpec {
    pub id: SetId,
    #[serde(default)]
    pub kind: SetKind,
    pub composition: Composition,
    /// In order of preference: the first eligible becomes Primary, the next Secondary.
    pub members: Vec<MemberRef>,
    /// A member whose health score is below this is failed (0..=100).
    #[serde(default = "default_threshold")]
    pub health_threshold: u8,
    /// Give the Primary role back to the preferred member once it has been up this
    /// long. `None`: never give back automatically.
    #[serde(default)]
    pub auto_giveback_ms: Option<u64>,
}

fn default_threshold() -> u8 {
    50
}

/// A failover set as recorded in the configuration database.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct FailoverSet {
    pub id: SetId,
    pub kind: SetKind,
    pub composition: Composition,
    pub members: Vec<MemberRef>,
    pub primary: Option<MemberRef>,
    pub secondary: Option<MemberRef>,
    pub alternates: Vec<MemberRef>,
    pub epoch: Epoch,
    pub health_threshold: u8,
    pub auto_giveback_ms: Option<u64>,
    /// Members that hold a current copy of what the set owns (used by storage sets).
    #[serde(default)]
    pub in_sync: Vec<NodeId>,
    /// The store each in-sync node held when it was put on the list (a node with no
    /// entry had no store recorded). The list is a claim about disks: a node that comes
    /// back with another store leaves the list (see `ClusterState::apply`).
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        with = "store_pairs"
    )]
    pub in_sync_stores: BTreeMap<NodeId, StoreId>,
    /// How many times the Primary changed.
    #[serde(default)]
    pub failovers: u64,
    #[serde(default)]
    pub changed_at: UnixMillis,
}

impl FailoverSet {
    /// The preferred Primary: the first member listed.
    pub fn home(&self) -> Option<&MemberRef> {
        self.members.first()
    }

    pub fn primary_node(&self) -> Option<NodeId> {
        match self.primary {
            Some(MemberRef::Node(n)) => Some(n),
            _ => None,
        }
    }

    /// Every role holder in role order: Primary, Secondary, Alternates.
    pub fn role_order(&self) -> Vec<MemberRef> {
        self.primary
            .iter()
            .chain(self.secondary.iter())
            .chain(self.alternates.iter())
            .cloned()
            .collect()
    }

    pub fn has_member(&self, m: &MemberRef) -> bool {
        self.members.contains(m)
    }

    /// May `r` become Primary as far as the data is concerned? For a storage set only
    /// a member on its in-sync list holds every acknowledged write (an empty list: no
    /// member does, nobody may lead until one has caught up); other sets put no
    /// condition. This looks at the list only: [`crate::ClusterState::in_sync_allows`]
    /// also checks that the member still has the store the list recorded.
    pub fn in_sync_allows(&self, r: &MemberRef) -> bool {
        if self.kind != SetKind::Storage {
            return true;
        }
        matches!(r, MemberRef::Node(n) if self.in_sync.contains(n))
    }

    /// The store recorded for in-sync node `n` (`None`: none recorded).
    pub fn in_sync_store(&self, n: NodeId) -> Option<StoreId> {
        self.in_sync_stores.get(&n).copied()
    }

    /// The nodes of this set (its members that are nodes), in preference order.
    pub fn member_nodes(&self) -> Vec<NodeId> {
        self.members
            .iter()
            .filter_map(|m| match m {
                MemberRef::Node(n) => Some(*n),
                MemberRef::Set(_) => None,
            })
            .collect()
    }
}

/// A map of node to store, written as a list of `[node, store]` pairs: JSON map keys
/// are strings, which an enclosing tagged enum cannot turn back into node ids.
pub mod store_pairs {
    use crate::{NodeId, StoreId};
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use std::collections::BTreeMap;

    pub fn serialize<S: Serializer>(
        map: &BTreeMap<NodeId, StoreId>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        map.iter().collect::<Vec<_>>().serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<BTreeMap<NodeId, StoreId>, D::Error> {
        Ok(Vec::<(NodeId, StoreId)>::deserialize(d)?
            .into_iter()
            .collect())
    }
}
