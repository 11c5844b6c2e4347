//! The policy manager's inputs: what the failure detector, the boot service, the
//! operator and the periodic timer report.
//!
//! Owns: the shape of an observation and the detection timings. Must never: carry
//! state or time of its own; `now` is passed to [`crate::decide`] beside the input.

use keel_core::{BootType, LinkName, MemberRef, NodeId, SetId, StoreId};
use serde::{Deserialize, Serialize};

/// Detection timeouts, as the runtime's failure detector applies them.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(default)]
pub struct Timings {
    /// Silent on every link this long: the member is `suspect` (no failover yet).
    pub suspect_after_ms: u64,
    /// Silent on every link this long: the member is `failed` and failed over.
    pub fail_after_ms: u64,
}

impl Default for Timings {
    fn default() -> Self {
        Timings {
            suspect_after_ms: 150,
            fail_after_ms: 300,
        }
    }
}

/// What a direct probe of a silent member's port found.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Probe {
    /// The TCP connect was refused: the process is gone (`crash`).
    Refused,
    /// The connect or the reply timed out: paused, deadlocked or unreachable (`hang`).
    NoAnswer,
    /// No probe was made (`hang`).
    NotProbed,
}

/// A member's own view of its health, carried in its heartbeats.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct HealthReport {
    /// 0..=100. Already accounts for the process, the disk, backend reachability and
    /// latency; compared with each set's `health_threshold`.
    pub score: u8,
    /// The data directory can be written.
    pub disk_ok: bool,
    /// The member's recent request latency.
    pub latency_ms: u32,
}

impl HealthReport {
    /// A member in perfect health.
    pub fn healthy() -> HealthReport {
        HealthReport {
            score: 100,
            disk_ok: true,
            latency_ms: 1,
        }
    }
}

/// The result of a self-test sent to a member over another of its links.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum SelfTest {
    /// The member works to its specification: the silent link is at fault.
    Passed,
    /// The member does not work: a member failure (`hang`).
    Failed,
}

/// One observation or request. Each is decided on its own, against the current
/// replicated state.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(tag = "input", rename_all = "snake_case")]
pub enum Input {
    /// The arbiter heard nothing from `node` on any link for `silent_ms`.
    Silent {
        node: NodeId,
        silent_ms: u64,
        probe: Probe,
    },
    /// A heartbeat arrived (on any link) with the node's own health.
    Heard { node: NodeId, health: HealthReport },
    /// One link of `node` is silent while another carries heartbeats; the self-test
    /// over the other link gave `self_test`.
    LinkSilent {
        node: NodeId,
        link: LinkName,
        self_test: SelfTest,
    },
    /// Heartbeats arrive again on a link.
    LinkHeard { node: NodeId, link: LinkName },
    /// Boot service: a node (re)started and reports its boot type, with the new
    /// process's id (0 if unknown) and the identity of its object store (`None`: not
    /// known, e.g. no storage role): another store than the one recorded takes the
    /// node off the in-sync lists that named the old one.
    Back {
        node: NodeId,
        boot: BootType,
        #[serde(default)]
        pid: u32,
        #[serde(default)]
        store: Option<StoreId>,
    },
    /// Operator: graceful manual takeover of `set` by `to`.
    Takeover { set: SetId, to: MemberRef },
    /// Operator: take the node off every Primary and Secondary role.
    Drain { node: NodeId },
    /// Operator: let the node hold roles again (it stays an Alternate until chosen).
    Undrain { node: NodeId },
    /// Operator: clear a quarantined node and its failure history.
    Clear { node: NodeId },
    /// Periodic re-arbitration (fill empty roles, auto-giveback).
    Tick,
}
