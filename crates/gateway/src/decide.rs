//! Which export endpoints this node should listen on, given its view: a pure function
//! of the configuration, the view and the time, tested without processes or sockets.
//!
//! Active-passive: only the set's Active, only while it holds the set's lease, only
//! until `stop_before_lease_end` before that lease would run out, and only while its
//! own health reaches the set's threshold (below it, it gives up). Active-active:
//! every member the view lists as able to serve, on its own address, while its health
//! reaches the threshold.
//!
//! Must never: do I/O or read a clock (`now` is passed in).

use crate::control::GatewayView;
use keel_config::{ExportConfig, ExportPolicy};
use keel_core::NodeId;
use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// A protocol an export is served over.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    Nfs,
    S3,
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Nfs => "nfs",
            Protocol::S3 => "s3",
        })
    }
}

/// One listening socket of an export.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Endpoint {
    pub export: String,
    pub protocol: Protocol,
    pub addr: SocketAddr,
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} on {}", self.export, self.protocol, self.addr)
    }
}

/// What this node should serve now.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Plan {
    /// Each endpoint to listen on, with the instant it must stop unless the plan is
    /// renewed (active-passive: the lease's end less the margin; active-active: none).
    pub serve: BTreeMap<Endpoint, Option<Instant>>,
    /// When to decide again even if the view does not change: the earliest deadline.
    pub recheck_at: Option<Instant>,
    /// Sets this node is the Active of whose threshold its health is below: it gives
    /// up their exports and asks its Passive to take over.
    pub give_up: Vec<String>,
}

/// Decides what `me` serves: see the module header.
pub fn plan(
    exports: &[ExportConfig],
    me: NodeId,
    view: &GatewayView,
    now: Instant,
    stop_before_lease_end: Duration,
) -> Plan {
    let mut out = Plan::default();
    for e in exports {
        let Some(set) = view.sets.get(&e.set) else {
            continue;
        };
        let healthy = view.health >= set.health_threshold;
        let (ip, deadline) = match e.policy {
            ExportPolicy::ActivePassive => {
                if set.active != Some(me) {
                    continue;
                }
                if !healthy {
                    if !out.give_up.contains(&e.set) {
                        out.give_up.push(e.set.clone());
                    }
                    continue;
                }
                let Some(until) = set.lease_until else {
                    continue;
                };
                let Some(stop_at) = until.checked_sub(stop_before_lease_end) else {
                    continue;
                };
                if stop_at <= now {
                    continue;
                }
                (e.address, Some(stop_at))
            }
            ExportPolicy::ActiveActive => {
                let Some((_, ip)) = set.serving_members.iter().find(|(n, _)| *n == me) else {
                    continue;
                };
                if !healthy {
                    continue;
                }
                (*ip, None)
            }
        };
        let ports = [(Protocol::Nfs, e.nfs_port), (Protocol::S3, e.s3_port)];
        for (protocol, port) in ports {
            let Some(port) = port else { continue };
            let ep = Endpoint {
                export: e.name.clone(),
                protocol,
                addr: SocketAddr::new(ip, port),
            };
            out.serve.insert(ep, deadline);
        }
        if let Some(d) = deadline {
            out.recheck_at = Some(out.recheck_at.map_or(d, |r| r.min(d)));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::GatewaySetView;
    use keel_core::Epoch;
    use std::net::IpAddr;

    const MARGIN: Duration = Duration::from_millis(100);

    fn export(policy: ExportPolicy) -> ExportConfig {
        ExportConfig {
            name: "default".into(),
            set: "gw".into(),
            address: "127.0.10.1".parse().unwrap(),
            nfs_port: Some(7120),
            s3_port: Some(7121),
            volume: "default".into(),
            policy,
        }
    }

    fn ip(n: u8) -> IpAddr {
        IpAddr::from([127, 0, 1, n])
    }

    fn view(active: u64, lease_until: Option<Instant>, health: u8) -> GatewayView {
        let set = GatewaySetView {
            epoch: Epoch(3),
            active: Some(active),
            passive: Some(if active == 1 { 2 } else { 1 }),
            health_threshold: 50,
            serving_members: vec![(1, ip(1)), (2, ip(2))],
            lease_until,
        };
        GatewayView {
            health,
            sets: [("gw".to_string(), set)].into(),
        }
    }

    fn addrs(p: &Plan) -> Vec<String> {
        p.serve.keys().map(|e| e.addr.to_string()).collect()
    }

    #[test]
    fn the_active_serves_the_export_address_only_under_its_lease() {
        let now = Instant::now();
        let until = now + Duration::from_millis(400);
        let exports = [export(ExportPolicy::ActivePassive)];
        // --- Active with a lease: both protocols on the export address, until the
        // lease's end less the margin.
        let p = plan(&exports, 1, &view(1, Some(until), 100), now, MARGIN);
        assert_eq!(addrs(&p), ["127.0.10.1:7120", "127.0.10.1:7121"]);
        assert!(p.serve.values().all(|d| *d == Some(until - MARGIN)));
        assert_eq!(p.recheck_at, Some(until - MARGIN));
        assert!(p.give_up.is_empty());
        // --- the Passive serves nothing
        let p = plan(&exports, 2, &view(1, None, 100), now, MARGIN);
        assert!(p.serve.is_empty() && p.recheck_at.is_none());
        // --- Active without a lease yet (waiting for the old one to run out): nothing
        let p = plan(&exports, 1, &view(1, None, 100), now, MARGIN);
        assert!(p.serve.is_empty());
        // --- lease not renewed: stops `MARGIN` before it ends, not at its end
        let late = until - MARGIN;
        assert!(plan(&exports, 1, &view(1, Some(until), 100), late, MARGIN)
            .serve
            .is_empty());
        let just_before = late - Duration::from_millis(1);
        assert_eq!(
            plan(&exports, 1, &view(1, Some(until), 100), just_before, MARGIN)
                .serve
                .len(),
            2
        );
        // --- a lease shorter than the margin is never served under
        let short = now + MARGIN / 2;
        assert!(plan(&exports, 1, &view(1, Some(short), 100), now, MARGIN)
            .serve
            .is_empty());
    }

    #[test]
    fn an_active_below_its_health_threshold_gives_up() {
        let now = Instant::now();
        let until = now + Duration::from_millis(400);
        let exports = [export(ExportPolicy::ActivePassive)];
        let p = plan(&exports, 1, &view(1, Some(until), 49), now, MARGIN);
        assert!(p.serve.is_empty());
        assert_eq!(p.give_up, ["gw"]);
        // A Passive below the threshold has nothing to give up.
        assert!(plan(&exports, 2, &view(1, None, 10), now, MARGIN)
            .give_up
            .is_empty());
    }

    #[test]
    fn active_active_serves_on_every_able_member_without_a_lease() {
        let now = Instant::now();
        let exports = [export(ExportPolicy::ActiveActive)];
        let p1 = plan(&exports, 1, &view(1, None, 100), now, MARGIN);
        let p2 = plan(&exports, 2, &view(1, None, 100), now, MARGIN);
        assert_eq!(addrs(&p1), ["127.0.1.1:7120", "127.0.1.1:7121"]);
        assert_eq!(addrs(&p2), ["127.0.1.2:7120", "127.0.1.2:7121"]);
        assert!(p1.serve.values().all(Option::is_none));
        assert_eq!(p1.recheck_at, None);
        // A member the view does not list (failed, drained) serves nothing.
        let mut v = view(1, None, 100);
        v.sets
            .get_mut("gw")
            .unwrap()
            .serving_members
            .retain(|(n, _)| *n != 2);
        assert!(plan(&exports, 2, &v, now, MARGIN).serve.is_empty());
        // Below the threshold: nothing either.
        assert!(plan(&exports, 2, &view(1, None, 20), now, MARGIN)
            .serve
            .is_empty());
    }

    #[test]
    fn exports_of_sets_this_node_is_not_in_are_ignored() {
        let now = Instant::now();
        let mut e = export(ExportPolicy::ActivePassive);
        e.set = "other".into();
        let p = plan(
            &[e],
            1,
            &view(1, Some(now + Duration::from_secs(1)), 100),
            now,
            MARGIN,
        );
        assert_eq!(p, Plan::default());
    }
}
