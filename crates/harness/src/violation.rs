//! What the invariant checkers can find: each variant is a broken safety invariant of
//! the control plane (sampled by `checker.rs`) or of the data (checked at quiescent
//! points by `data.rs`), with the evidence needed to read it.
//!
//! Must never: carry anything but evidence (no behaviour, no references into nodes).

use keel_core::{Epoch, MemberRef, NodeId, SetId};
use keel_node::data_invariant::DataViolation;
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Violation {
    /// More than one node acted as Primary of `set` at the same instant (`at_ms` after
    /// the checker started), each with the epoch of its lease.
    TwoActing {
        set: SetId,
        acting: Vec<(NodeId, Epoch)>,
        at_ms: u64,
    },
    /// `node` acted as Primary of `set` in `epoch`, whose Primary the replicas record
    /// as `recorded`.
    ActingNotPrimary {
        set: SetId,
        node: NodeId,
        epoch: Epoch,
        recorded: Option<MemberRef>,
        at_ms: u64,
    },
    /// Two different Primaries were recorded for the same (set, epoch): `first` was
    /// seen before, `second` on `node`'s replica.
    TwoPrimaries {
        set: SetId,
        epoch: Epoch,
        first: Option<MemberRef>,
        second: Option<MemberRef>,
        node: NodeId,
    },
    /// `node`'s replica showed the epoch of `set` go back from `from` to `to`.
    EpochWentBack {
        node: NodeId,
        set: SetId,
        from: Epoch,
        to: Epoch,
        at_ms: u64,
    },
    /// The checker's own thread failed: nothing it sampled can be trusted.
    CheckerFailed,
    /// The stores of a storage set break the data invariant.
    Data(DataViolation),
    /// An acknowledged file could not be read back.
    Unreadable { path: String, reason: String },
    /// An acknowledged file read back other bytes (`got` of them, `want` expected).
    WrongRead {
        path: String,
        got: usize,
        want: usize,
    },
}

impl Violation {
    /// What makes two reports the same violation (reported once).
    pub fn key(&self) -> String {
        match self {
            Violation::TwoActing { set, acting, .. } => format!("acting {set} {acting:?}"),
            Violation::ActingNotPrimary {
                set, node, epoch, ..
            } => format!("not-primary {set} {node} {epoch}"),
            Violation::TwoPrimaries {
                set, epoch, second, ..
            } => format!("primaries {set} {epoch} {second:?}"),
            Violation::EpochWentBack {
                node,
                set,
                from,
                to,
                ..
            } => format!("back {node} {set} {from} {to}"),
            Violation::CheckerFailed => "checker".into(),
            Violation::Data(d) => format!("data {d:?}"),
            Violation::Unreadable { path, .. } => format!("unreadable {path}"),
            Violation::WrongRead { path, .. } => format!("wrong {path}"),
        }
    }
}

fn who(m: &Option<MemberRef>) -> String {
    m.as_ref().map_or_else(|| "none".into(), |m| m.to_string())
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Violation::TwoActing { set, acting, at_ms } => {
                let nodes: Vec<String> = acting
                    .iter()
                    .map(|(n, e)| format!("node {n} (epoch {e})"))
                    .collect();
                write!(
                    f,
                    "at {at_ms} ms, {} acted as Primary of set {set} at once",
                    nodes.join(" and ")
                )
            }
            Violation::ActingNotPrimary {
                set,
                node,
                epoch,
                recorded,
                at_ms,
            } => write!(
                f,
                "at {at_ms} ms, node {node} acted as Primary of set {set} in epoch {epoch}, \
                 whose recorded Primary is {}",
                who(recorded)
            ),
            Violation::TwoPrimaries {
                set,
                epoch,
                first,
                second,
                node,
            } => write!(
                f,
                "set {set} epoch {epoch} has two Primaries: {} was recorded, then node {node}'s \
                 replica says {}",
                who(first),
                who(second)
            ),
            Violation::EpochWentBack {
                node,
                set,
                from,
                to,
                at_ms,
            } => write!(
                f,
                "at {at_ms} ms, node {node}'s replica showed set {set} going back from epoch \
                 {from} to epoch {to}"
            ),
            Violation::CheckerFailed => write!(f, "the invariant checker's thread panicked"),
            Violation::Data(d) => write!(f, "{d}"),
            Violation::Unreadable { path, reason } => {
                write!(f, "acknowledged file {path} cannot be read back: {reason}")
            }
            Violation::WrongRead { path, got, want } => write!(
                f,
                "acknowledged file {path} reads back other bytes ({got} bytes, {want} acknowledged)"
            ),
        }
    }
}
