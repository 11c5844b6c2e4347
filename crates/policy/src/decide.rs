//! The policy manager's entry point: one input in, the commands to write out.
//!
//! Owns: dispatching an input to its rule, and the periodic tick. Must never: do
//! I/O or read a clock; the same state, input and `now` always give the same
//! commands.

use crate::batch::Batch;
use crate::{arbitrate, detect, operator, Input, PolicyError, Timings};
use keel_core::{ClusterCommand, ClusterState, Event, EventKind, SetId, UnixMillis};

/// Decides what `input` means for the cluster: the commands the runtime writes
/// through Raft, in order. Each was applied to a copy of `state` as it was decided,
/// so every `AssignRoles` carries the epoch it will meet. An empty list: nothing to
/// do. An error: an operator request with bad arguments (or a bug, see
/// [`PolicyError::DecisionRefused`]); nothing is to be written.
pub fn decide(
    state: &ClusterState,
    input: &Input,
    now: UnixMillis,
    timings: &Timings,
) -> Result<Vec<ClusterCommand>, PolicyError> {
    let mut b = Batch::new(state, now);
    match input {
        Input::Silent {
            node,
            silent_ms,
            probe,
        } => detect::silent(&mut b, *node, *silent_ms, *probe, timings)?,
        Input::Heard { node, health } => detect::heard(&mut b, *node, health)?,
        Input::LinkSilent {
            node,
            link,
            self_test,
        } => detect::link_silent(&mut b, *node, link, *self_test)?,
        Input::LinkHeard { node, link } => detect::link_heard(&mut b, *node, link)?,
        Input::Back {
            node,
            boot,
            pid,
            store,
        } => detect::back(&mut b, *node, *boot, *pid, *store)?,
        Input::Takeover { set, to } => operator::takeover(&mut b, set, to)?,
        Input::Drain { node } => operator::drain(&mut b, *node)?,
        Input::Undrain { node } => operator::undrain(&mut b, *node)?,
        Input::Clear { node } => operator::clear(&mut b, *node)?,
        Input::Tick => tick(&mut b)?,
    }
    Ok(b.into_commands())
}

/// Periodic re-arbitration: every set is re-arbitrated (empty roles filled, failed
/// holders replaced), then each set with `auto_giveback_ms` gives the Primary back to
/// its home member once that member has been up long enough (`Giveback` event).
fn tick(b: &mut Batch) -> Result<(), PolicyError> {
    b.rearbitrate_all()?;
    let ids: Vec<SetId> = b.state.sets.keys().cloned().collect();
    for id in ids {
        let set = &b.state.sets[&id];
        let Some(plan) = arbitrate::giveback(&b.state, set, b.now) else {
            continue;
        };
        let event = Event::new(b.now, EventKind::Giveback)
            .set(id.clone())
            .epoch(set.epoch)
            .detail(plan.reason.clone());
        let cmd = plan.roles.assign(set, plan.reason, b.now);
        b.record(event)?;
        b.push(cmd)?;
    }
    Ok(())
}
