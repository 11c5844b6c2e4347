//! Operator requests: takeover, drain, undrain, clear.
//!
//! Owns: checking the request's arguments (a typed error names what is wrong) and
//! the graceful role changes it asks for. Must never: give a role to an ineligible
//! member, or lift a quarantine other than by an explicit clear.

use crate::arbitrate::{self, describe};
use crate::batch::Batch;
use crate::PolicyError;
use keel_core::{ClusterCommand, Event, EventKind, MemberRef, NodeId, SetId};

/// Graceful takeover of `set` by `to`, an eligible member of it: `TakeoverRequested`,
/// then `to` becomes Primary and the old Primary its Secondary (if eligible). A
/// takeover by the current Primary changes nothing.
pub(crate) fn takeover(b: &mut Batch, set_id: &SetId, to: &MemberRef) -> Result<(), PolicyError> {
    let set = b
        .state
        .sets
        .get(set_id)
        .ok_or_else(|| PolicyError::UnknownSet {
            set: set_id.clone(),
        })?;
    if !set.has_member(to) {
        return Err(PolicyError::NotAMember {
            set: set_id.clone(),
            member: to.clone(),
        });
    }
    if !b.state.ref_eligible(to) {
        return Err(PolicyError::NotEligible {
            set: set_id.clone(),
            member: to.clone(),
            reason: describe(&b.state, to, None),
        });
    }
    if !b.state.in_sync_allows(set, to) {
        return Err(PolicyError::NotEligible {
            set: set_id.clone(),
            member: to.clone(),
            reason: format!(
                "not in sync (in-sync list {:?}): it may lack acknowledged writes",
                set.in_sync
            ),
        });
    }
    if set.primary.as_ref() == Some(to) {
        return Ok(());
    }
    let old = set
        .primary
        .as_ref()
        .map_or_else(|| "none".to_string(), MemberRef::to_string);
    let event = Event::new(b.now, EventKind::TakeoverRequested)
        .set(set_id.clone())
        .epoch(set.epoch)
        .detail(format!("operator asks: primary {old} -> {to}"));
    let event = match to {
        MemberRef::Node(n) => event.node(*n),
        MemberRef::Set(_) => event,
    };
    b.record(event)?;
    let set = &b.state.sets[set_id];
    let plan = arbitrate::takeover(&b.state, set, to);
    let cmd = plan.roles.assign(set, plan.reason, b.now);
    b.push(cmd)
}

/// Drain: the node is marked drained, then taken off every Primary and Secondary role
/// (a drained Primary hands over to its Secondary). A Single set keeps its member.
pub(crate) fn drain(b: &mut Batch, node: NodeId) -> Result<(), PolicyError> {
    if !b.member(node)?.drained {
        b.push(ClusterCommand::Drain {
            node,
            drained: true,
            at: b.now,
        })?;
    }
    b.rearbitrate_around(node, false, None)
}

/// Undrain: the node may hold roles again; it stays an Alternate until arbitration
/// needs it (an empty slot, a takeover, a giveback).
pub(crate) fn undrain(b: &mut Batch, node: NodeId) -> Result<(), PolicyError> {
    if !b.member(node)?.drained {
        return Ok(());
    }
    b.push(ClusterCommand::Drain {
        node,
        drained: false,
        at: b.now,
    })
}

/// Clear: the quarantine and the failure history go; a quarantined node becomes
/// failed and re-integrates when next heard from.
pub(crate) fn clear(b: &mut Batch, node: NodeId) -> Result<(), PolicyError> {
    b.member(node)?;
    b.push(ClusterCommand::ClearQuarantine { node, at: b.now })
}
