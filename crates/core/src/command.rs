//! Commands: the only way the configuration database changes. Each is a Raft log
//! entry; applying one is deterministic (time travels inside the command).

use crate::{
    BootType, ClusterError, ClusterSettings, Epoch, Event, FaultKind, LinkName, Member, MemberRef,
    MemberState, NodeId, SetId, SetSpec, StoreId, UnixMillis,
};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum ClusterCommand {
    /// Admit a member (after the compatibility check) or update its addresses.
    AddMember {
        member: Member,
        at: UnixMillis,
    },
    /// Forget a member for good. Refused while it is still named in a set.
    RemoveMember {
        node: NodeId,
        at: UnixMillis,
    },
    /// Move a member to a state. `Failed` also records the failure for the limit.
    SetMemberState {
        node: NodeId,
        state: MemberState,
        fault: Option<FaultKind>,
        reason: String,
        at: UnixMillis,
    },
    /// A member that was away reports back (boot service). It becomes `up` unless it
    /// is quarantined; it holds no role until the arbiter gives it one.
    MemberBack {
        node: NodeId,
        boot: BootType,
        /// The process that came back if it is a new one (it becomes the member's
        /// recorded process); `None` if the process that failed runs again, which
        /// ends that failure: a later death of it is a new failure.
        #[serde(default)]
        pid: Option<u32>,
        /// The store the node came back with (`None`: not reported, nothing changes).
        /// Another store than an in-sync list recorded for the node takes it off that
        /// list (event `store_replaced`).
        #[serde(default)]
        store: Option<StoreId>,
        at: UnixMillis,
    },
    /// An operator clears a quarantined member, and its failure history.
    ClearQuarantine {
        node: NodeId,
        at: UnixMillis,
    },
    Drain {
        node: NodeId,
        drained: bool,
        at: UnixMillis,
    },
    /// One link of a member went silent (or came back) while the member stayed up.
    LinkState {
        node: NodeId,
        link: LinkName,
        up: bool,
        detail: String,
        at: UnixMillis,
    },
    CreateSet {
        spec: SetSpec,
        at: UnixMillis,
    },
    DeleteSet {
        set: SetId,
        at: UnixMillis,
    },
    /// Arbitration: set the role holders of a set. Refused unless `expected_epoch` is
    /// the set's epoch. A new Primary bumps the epoch.
    AssignRoles {
        set: SetId,
        expected_epoch: Epoch,
        primary: Option<MemberRef>,
        secondary: Option<MemberRef>,
        alternates: Vec<MemberRef>,
        reason: String,
        at: UnixMillis,
    },
    /// Replace the in-sync list of a set (storage sets), fenced by epoch and a
    /// compare-and-set: refused with `InSyncChanged` unless the list is still
    /// `expected_in_sync` (as a set of nodes). A node added to the list is recorded
    /// with its store from `stores` (else the store its member record names); refused
    /// with `StoreChanged` if that is no longer the member's store.
    SetInSync {
        set: SetId,
        expected_epoch: Epoch,
        expected_in_sync: Vec<NodeId>,
        in_sync: Vec<NodeId>,
        #[serde(
            default,
            skip_serializing_if = "BTreeMap::is_empty",
            with = "crate::set::store_pairs"
        )]
        stores: BTreeMap<NodeId, StoreId>,
        at: UnixMillis,
    },
    UpdateSettings {
        settings: ClusterSettings,
    },
    /// Remember an admin request by its client-made id: first with no outcome (refused
    /// with `RequestSeen` if the id is known: a retry), then with its outcome. Only the
    /// last `REQUEST_MEMORY` ids are kept.
    RecordRequest {
        id: String,
        #[serde(default)]
        outcome: Option<Result<String, String>>,
        at: UnixMillis,
    },
    /// Change the members of a storage set (`keel layout apply --replicas N`): nodes
    /// appended (each catches up before it joins the in-sync list) or removed from the
    /// end (never the Primary, never the last in-sync member). Refused unless the
    /// members are still `expected_members`. The epoch does not change.
    SetMembers {
        set: SetId,
        expected_members: Vec<MemberRef>,
        members: Vec<MemberRef>,
        at: UnixMillis,
    },
    /// Replace the placement map (placement groups to storage sets). Refused unless
    /// the map is still at `expected_version`.
    SetPlacement {
        expected_version: u64,
        groups: Vec<SetId>,
        at: UnixMillis,
    },
    /// Append an event observed outside the state machine (a takeover, a refused join).
    RecordEvent {
        event: Event,
    },
    /// Access keys and the admin token (see [`crate::keys`]).
    Credentials(crate::keys::CredentialCommand),
}

/// The result of applying a command.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum ClusterResponse {
    Ok,
    /// The set's epoch after the command.
    Epoch {
        epoch: Epoch,
    },
    Refused {
        error: ClusterError,
    },
}

impl ClusterResponse {
    pub fn into_result(self) -> Result<Option<Epoch>, ClusterError> {
        match self {
            ClusterResponse::Ok => Ok(None),
            ClusterResponse::Epoch { epoch } => Ok(Some(epoch)),
            ClusterResponse::Refused { error } => Err(error),
        }
    }
}

impl From<Result<Option<Epoch>, ClusterError>> for ClusterResponse {
    fn from(r: Result<Option<Epoch>, ClusterError>) -> Self {
        match r {
            Ok(None) => ClusterResponse::Ok,
            Ok(Some(epoch)) => ClusterResponse::Epoch { epoch },
            Err(error) => ClusterResponse::Refused { error },
        }
    }
}
