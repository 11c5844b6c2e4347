//! Detection and re-integration: what the failure detector and the boot service
//! report, turned into member states and corrective action.
//!
//! Owns: suspect and failed transitions, the failure limit (quarantine), link
//! failures, and a member's return. Must never: fail a member over because of one
//! silent link, or give a returning member a role other than the arbiter's choice.

use crate::arbitrate::Cause;
use crate::batch::Batch;
use crate::characterize::{self, fault_name};
use crate::{HealthReport, PolicyError, Probe, SelfTest, Timings};
use keel_core::{
    BootType, ClusterCommand, Event, EventKind, FaultKind, LinkName, MemberState, NodeId, StoreId,
};

/// Silent on every link: `fail_after_ms` or more while up or suspect fails the member
/// (`crash` or `hang` by the probe); `suspect_after_ms` or more while up makes it
/// suspect, and nothing else.
pub(crate) fn silent(
    b: &mut Batch,
    node: NodeId,
    silent_ms: u64,
    probe: Probe,
    timings: &Timings,
) -> Result<(), PolicyError> {
    let state = b.member(node)?.state;
    if silent_ms >= timings.fail_after_ms {
        let probe_said = match probe {
            Probe::Refused => "; connection refused",
            Probe::NoAnswer => "; probe unanswered",
            Probe::NotProbed => "",
        };
        let reason = format!("silent {silent_ms}ms on every link{probe_said}");
        fail_member(b, node, characterize::silent_fault(probe), reason)
    } else if silent_ms >= timings.suspect_after_ms && state == MemberState::Up {
        b.push(ClusterCommand::SetMemberState {
            node,
            state: MemberState::Suspect,
            fault: None,
            reason: format!("silent {silent_ms}ms on every link"),
            at: b.now,
        })
    } else {
        Ok(())
    }
}

/// A heartbeat with the member's health. Suspect becomes up. Failed comes back
/// (return after failure, as an Alternate) if its health would let it hold a role.
/// Quarantined and joining members are left as they are. An up Primary or Secondary
/// whose score is below its set's threshold is failed (`disk` or `slow`).
pub(crate) fn heard(b: &mut Batch, node: NodeId, health: &HealthReport) -> Result<(), PolicyError> {
    match b.member(node)?.state {
        MemberState::Quarantined | MemberState::Joining => Ok(()),
        MemberState::Failed => {
            if !characterize::fit_to_return(&b.state, node, health) {
                return Ok(());
            }
            come_back(b, node, BootType::ReturnAfterFailure, None, None)
        }
        state @ (MemberState::Up | MemberState::Suspect) => {
            if let Some((fault, reason)) = characterize::health_failure(&b.state, node, health) {
                return fail_member(b, node, fault, reason);
            }
            if state == MemberState::Suspect {
                b.push(ClusterCommand::SetMemberState {
                    node,
                    state: MemberState::Up,
                    fault: None,
                    reason: "heard again".into(),
                    at: b.now,
                })?;
            }
            Ok(())
        }
    }
}

/// One link silent while another carries heartbeats. Self-test passed: the link is
/// recorded down (once) and nothing else happens; a link failure alone never fails a
/// member over. Self-test failed: a member failure (`hang`).
pub(crate) fn link_silent(
    b: &mut Batch,
    node: NodeId,
    link: &LinkName,
    self_test: SelfTest,
) -> Result<(), PolicyError> {
    let member = b.member(node)?;
    if member.link(link).is_none() {
        return Err(PolicyError::UnknownLink {
            node,
            link: link.clone(),
        });
    }
    match characterize::link_fault(self_test) {
        FaultKind::Link if member.links_down.contains(link) => Ok(()),
        FaultKind::Link => b.push(ClusterCommand::LinkState {
            node,
            link: link.clone(),
            up: false,
            detail: "silent while another link carries heartbeats; self-test passed".into(),
            at: b.now,
        }),
        fault => {
            let others: Vec<&str> = member
                .links
                .iter()
                .map(|l| l.name.as_str())
                .filter(|l| l != link)
                .collect();
            let over = if others.is_empty() {
                "another link".to_string()
            } else {
                format!("link {}", others.join(","))
            };
            let reason = format!("link {link} silent, self-test over {over} failed");
            fail_member(b, node, fault, reason)
        }
    }
}

/// Heartbeats again on a link that was recorded down.
pub(crate) fn link_heard(b: &mut Batch, node: NodeId, link: &LinkName) -> Result<(), PolicyError> {
    let member = b.member(node)?;
    if member.link(link).is_none() {
        return Err(PolicyError::UnknownLink {
            node,
            link: link.clone(),
        });
    }
    if !member.links_down.contains(link) {
        return Ok(());
    }
    b.push(ClusterCommand::LinkState {
        node,
        link: link.clone(),
        up: true,
        detail: "heartbeats again".into(),
        at: b.now,
    })
}

/// Boot service: a node (re)started. Quarantined: recorded, and it stays
/// quarantined. Otherwise it is up again and placed as an Alternate of every set
/// that lists it; it never resumes a role by itself.
///
/// A member that returns after a failure the arbiter had not detected yet (it was
/// restarted faster than the failure timeout: its boot type is a return after failure,
/// it is still up, and the process that ran before, `member.pid`, is not the one whose
/// failure was last recorded) failed all the same: the failure is detected now,
/// recorded and counted toward the failure limit. A process's death is counted once.
pub(crate) fn back(
    b: &mut Batch,
    node: NodeId,
    boot: BootType,
    pid: u32,
    store: Option<StoreId>,
) -> Result<(), PolicyError> {
    let m = b.member(node)?;
    let undetected = boot == BootType::ReturnAfterFailure
        && matches!(m.state, MemberState::Up | MemberState::Suspect)
        && pid != 0
        && m.pid != pid
        && m.last_failed_pid != Some(m.pid);
    if undetected {
        fail_member(
            b,
            node,
            FaultKind::Crash,
            format!(
                "restarted (pid {} -> {pid}) after a failure before it was detected",
                m.pid
            ),
        )?;
    }
    let pid = (pid != 0).then_some(pid);
    if b.member(node)?.state == MemberState::Quarantined {
        return b.push(ClusterCommand::MemberBack {
            node,
            boot,
            pid,
            store,
            at: b.now,
        });
    }
    come_back(b, node, boot, pid, store)
}

/// `pid`: the process that came back, if it is a new one; `None` when the process
/// that failed is running again (a paused process resumed).
fn come_back(
    b: &mut Batch,
    node: NodeId,
    boot: BootType,
    pid: Option<u32>,
    store: Option<StoreId>,
) -> Result<(), PolicyError> {
    b.push(ClusterCommand::MemberBack {
        node,
        boot,
        pid,
        store,
        at: b.now,
    })?;
    b.rearbitrate_around(node, true, None)
}

/// Fails an up or suspect member: `FailureDetected`, `failed` with the fault, and
/// `quarantined` when its failures inside the window reach the limit (a limit of 0
/// never quarantines). Then corrective action in every set around it.
pub(crate) fn fail_member(
    b: &mut Batch,
    node: NodeId,
    fault: FaultKind,
    reason: String,
) -> Result<(), PolicyError> {
    if !matches!(
        b.member(node)?.state,
        MemberState::Up | MemberState::Suspect
    ) {
        return Ok(());
    }
    let name = fault_name(fault);
    b.record(
        Event::new(b.now, EventKind::FailureDetected)
            .node(node)
            .detail(format!("fault={name} {reason}")),
    )?;
    b.push(ClusterCommand::SetMemberState {
        node,
        state: MemberState::Failed,
        fault: Some(fault),
        reason,
        at: b.now,
    })?;
    let mut cause = format!("failed ({name})");
    let limit = b.state.settings.failure_limit as usize;
    let failures = b.state.recent_failures(node, b.now);
    if limit > 0 && failures >= limit {
        let window_s = b.state.settings.failure_window_ms / 1000;
        b.push(ClusterCommand::SetMemberState {
            node,
            state: MemberState::Quarantined,
            fault: None,
            reason: format!("failure limit exceeded: {failures} failures in {window_s}s"),
            at: b.now,
        })?;
        cause.push_str(", quarantined");
    }
    let cause: Cause = Some((node, &cause));
    b.rearbitrate_around(node, false, cause)
}
