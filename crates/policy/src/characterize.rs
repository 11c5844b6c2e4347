//! Fault characterization: what kind of fault an observation means, and whether a
//! member's own health report is good enough for the roles it holds.
//!
//! Owns: the mapping from detector observations to [`FaultKind`] and the comparison
//! of health scores with set thresholds. Must never: change state or choose roles.

use crate::{HealthReport, Probe, SelfTest};
use keel_core::{ClusterState, FaultKind, MemberRef, NodeId};

/// A member silent on every link: `crash` if its port refuses connections (the
/// process is gone), `hang` if the probe got no answer or none was made.
pub fn silent_fault(probe: Probe) -> FaultKind {
    match probe {
        Probe::Refused => FaultKind::Crash,
        Probe::NoAnswer | Probe::NotProbed => FaultKind::Hang,
    }
}

/// One link silent while another carries heartbeats: `link` if the self-test over
/// the other link passed (a link failure, never a failover), `hang` if it failed.
pub fn link_fault(self_test: SelfTest) -> FaultKind {
    match self_test {
        SelfTest::Passed => FaultKind::Link,
        SelfTest::Failed => FaultKind::Hang,
    }
}

/// A health report measured against one threshold: `None` while the score reaches
/// it; below it, `disk` if the disk check failed, otherwise `slow`.
///
/// The score already accounts for the disk, so a failed disk check alone (with a
/// score the node still rates acceptable) is not a failure.
pub fn health_fault(health: &HealthReport, threshold: u8) -> Option<FaultKind> {
    if health.score >= threshold {
        None
    } else if !health.disk_ok {
        Some(FaultKind::Disk)
    } else {
        Some(FaultKind::Slow)
    }
}

/// The name a fault goes by in events (`crash`, `hang`, ...).
pub fn fault_name(fault: FaultKind) -> &'static str {
    match fault {
        FaultKind::Crash => "crash",
        FaultKind::Hang => "hang",
        FaultKind::Link => "link",
        FaultKind::Disk => "disk",
        FaultKind::Slow => "slow",
    }
}

/// The health failure of `node`, if any: its score is below the threshold of a set
/// in which it is Primary or Secondary (the strictest such set is named).
pub(crate) fn health_failure(
    state: &ClusterState,
    node: NodeId,
    health: &HealthReport,
) -> Option<(FaultKind, String)> {
    let me = MemberRef::Node(node);
    let (set, threshold, fault) = state
        .sets_of(node)
        .filter(|s| s.primary.as_ref() == Some(&me) || s.secondary.as_ref() == Some(&me))
        .filter_map(|s| {
            health_fault(health, s.health_threshold).map(|f| (s, s.health_threshold, f))
        })
        .max_by_key(|(_, threshold, _)| *threshold)?;
    let disk = if health.disk_ok {
        "disk ok"
    } else {
        "disk check failed"
    };
    let reason = format!(
        "health {} below threshold {threshold} of set {}; {disk}, latency {}ms",
        health.score, set.id, health.latency_ms
    );
    Some((fault, reason))
}

/// May a failed member that is heard again come back? Only if its disk works and its
/// score reaches the threshold of every set that lists it: otherwise it would be
/// failed again as soon as it holds a role, and counted toward its failure limit.
pub(crate) fn fit_to_return(state: &ClusterState, node: NodeId, health: &HealthReport) -> bool {
    health.disk_ok
        && state
            .sets_of(node)
            .all(|s| health_fault(health, s.health_threshold).is_none())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn silence_with_a_refused_port_is_a_crash_otherwise_a_hang() {
        assert_eq!(silent_fault(Probe::Refused), FaultKind::Crash);
        assert_eq!(silent_fault(Probe::NoAnswer), FaultKind::Hang);
        assert_eq!(silent_fault(Probe::NotProbed), FaultKind::Hang);
    }

    #[test]
    fn a_passed_self_test_means_the_link_failed_not_the_member() {
        assert_eq!(link_fault(SelfTest::Passed), FaultKind::Link);
        assert_eq!(link_fault(SelfTest::Failed), FaultKind::Hang);
    }

    #[test]
    fn health_below_threshold_is_disk_or_slow() {
        let report = |score, disk_ok| HealthReport {
            score,
            disk_ok,
            latency_ms: 5,
        };
        assert_eq!(health_fault(&report(50, true), 50), None);
        assert_eq!(health_fault(&report(49, true), 50), Some(FaultKind::Slow));
        assert_eq!(health_fault(&report(10, false), 50), Some(FaultKind::Disk));
        assert_eq!(health_fault(&report(90, false), 50), None);
    }

    #[test]
    fn fault_names_match_the_wire_names() {
        assert_eq!(fault_name(FaultKind::Crash), "crash");
        assert_eq!(fault_name(FaultKind::Slow), "slow");
    }
}
