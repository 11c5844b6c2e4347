//! Failover by name (seed 004), the node's side: a small hook, apart from the gateway
//! role, that
//!
//! - hands `keel-dns` its narrow view ([`keel_dns::GatewayNames`], in a watch) computed
//!   from this node's replica of the configuration database: `<name>` → the gateway's
//!   home node's first-link address; `<name><suffix>` → the Active of the gateway's set
//!   when that is not the home node (a partner took over), else nothing;
//! - opens the secondary data port of a gateway on this node's own address while this
//!   node is the Active of the gateway's set in place of its home node and holds the
//!   set's lease (until `stop_before_lease_end_ms` before it ends, as the gateway role
//!   does for export addresses), and closes it when that stops (giveback, lost lease).
//!   It serves the set's first export through the same protocol servers as the role.
//!
//! Must never: keep a secondary port open without the set's lease or past its deadline,
//! or give the DNS server anything but the names and addresses it serves.

use crate::error::NodeError;
use crate::node::NodeShared;
use keel_config::{DnsConfig, ExportConfig};
use keel_core::{ClusterState, NodeId};
use keel_dns::{DnsServer, DnsSettings, GatewayAddrs, GatewayNames};
use keel_gateway::{
    ExportServers, GatewayControl, GatewayView, OwnerGuard, Protocol, ServeRequest, Serving,
};
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// How often the names and the secondary ports are looked at again.
const TICK: Duration = Duration::from_millis(50);

fn v4(ip: Option<IpAddr>) -> Option<Ipv4Addr> {
    match ip {
        Some(IpAddr::V4(a)) => Some(a),
        _ => None,
    }
}

/// The DNS server's view, from the configuration database's state.
pub fn names_of(dns: &DnsConfig, s: &ClusterState) -> GatewayNames {
    let mut out = GatewayNames::default();
    for g in &dns.gateways {
        let primary = v4(s.members.get(&g.home).and_then(|m| m.primary_ip()));
        let failover = s
            .sets
            .get(&g.set)
            .and_then(|set| set.primary_node())
            .filter(|active| *active != g.home)
            .and_then(|active| s.members.get(&active))
            .filter(|m| m.eligible())
            .and_then(|m| v4(m.primary_ip()));
        out.gateways.insert(
            g.name.to_ascii_lowercase(),
            GatewayAddrs { primary, failover },
        );
    }
    out
}

/// One secondary data port to serve.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Secondary {
    pub export: String,
    pub volume: String,
    pub protocol: Protocol,
    pub addr: SocketAddr,
    /// Serve until then unless renewed.
    pub until: Instant,
}

/// The secondary ports `me` (first-link address `my_ip`) serves now, by gateway name:
/// pure, see the module header.
pub fn secondary_plan(
    dns: &DnsConfig,
    exports: &[ExportConfig],
    me: NodeId,
    my_ip: IpAddr,
    view: &GatewayView,
    now: Instant,
    margin: Duration,
) -> BTreeMap<String, Secondary> {
    let mut out = BTreeMap::new();
    for g in dns.gateways.iter().filter(|g| g.home != me) {
        let Some(set) = view.sets.get(&g.set) else {
            continue;
        };
        if set.active != Some(me) || view.health < set.health_threshold {
            continue;
        }
        let Some(until) = set.lease_until.and_then(|u| u.checked_sub(margin)) else {
            continue;
        };
        if until <= now {
            continue;
        }
        let Some(e) = exports.iter().find(|e| e.set == g.set) else {
            continue;
        };
        let protocol = if e.nfs_port.is_some() {
            Protocol::Nfs
        } else {
            Protocol::S3
        };
        out.insert(
            g.name.clone(),
            Secondary {
                export: e.name.clone(),
                volume: e.volume.clone(),
                protocol,
                addr: SocketAddr::new(my_ip, g.secondary_port),
                until,
            },
        );
    }
    out
}

/// The running hook; [`DnsHook::stop`] closes the DNS server and every secondary port.
pub struct DnsHook {
    server: Option<DnsServer>,
    names: Option<JoinHandle<()>>,
    ports: Option<(tokio::sync::oneshot::Sender<()>, JoinHandle<()>)>,
}

impl DnsHook {
    /// Starts what `[dns]` asks of this node: the DNS server (if `dns.listen`) and,
    /// with the gateway role's control and servers, the secondary ports.
    pub async fn start(
        node: Arc<NodeShared>,
        gateway: Option<(Arc<dyn GatewayControl>, Arc<dyn ExportServers>)>,
    ) -> Result<DnsHook, NodeError> {
        let dns = node.cfg.dns.clone();
        let mut hook = DnsHook {
            server: None,
            names: None,
            ports: None,
        };
        if let Some(listen) = dns.listen {
            let (tx, rx) = watch::channel(node.db.read(|s| names_of(&dns, s)));
            let settings = DnsSettings {
                listen,
                zone: dns.zone.clone(),
                suffix: dns.suffix.clone(),
                ttl_secs: dns.ttl_secs,
            };
            let server = DnsServer::start(&settings, rx)
                .await
                .map_err(|e| NodeError::Net(e.to_string()))?;
            let n = node.clone();
            hook.names = Some(tokio::spawn(async move {
                loop {
                    let names = n.db.read(|s| names_of(&dns, s));
                    tx.send_if_modified(|old| {
                        let changed = *old != names;
                        *old = names;
                        changed
                    });
                    tokio::time::sleep(TICK).await;
                }
            }));
            hook.server = Some(server);
        }
        if let Some((control, servers)) = gateway {
            if !node.cfg.dns.gateways.is_empty() {
                let (stop, stopped) = tokio::sync::oneshot::channel();
                let task = tokio::spawn(ports_loop(node, control, servers, stopped));
                hook.ports = Some((stop, task));
            }
        }
        Ok(hook)
    }

    pub async fn stop(mut self) {
        if let Some(t) = self.names.take() {
            t.abort();
        }
        if let Some((stop, task)) = self.ports.take() {
            let _ = stop.send(());
            let _ = task.await;
        }
        if let Some(s) = self.server.take() {
            s.stop().await;
        }
    }
}

struct Open {
    spec: Secondary,
    handle: Box<dyn Serving>,
    owner: OwnerGuard,
}

async fn ports_loop(
    node: Arc<NodeShared>,
    control: Arc<dyn GatewayControl>,
    servers: Arc<dyn ExportServers>,
    mut stopped: tokio::sync::oneshot::Receiver<()>,
) {
    let me = node.id();
    let Some(my_ip) = node.cfg.links.first().map(|l| l.addr) else {
        return;
    };
    let margin = Duration::from_millis(node.cfg.gateway.stop_before_lease_end_ms);
    let mut views = control.view();
    let mut open: BTreeMap<String, Open> = BTreeMap::new();
    loop {
        let view = views.borrow_and_update().clone();
        let plan = secondary_plan(
            &node.cfg.dns,
            &node.cfg.gateway.exports,
            me,
            my_ip,
            &view,
            Instant::now(),
            margin,
        );
        // Close first: what the plan no longer holds, or holds elsewhere.
        let closing: Vec<String> = open
            .iter()
            .filter(|(name, o)| plan.get(*name).is_none_or(|p| p.addr != o.spec.addr))
            .map(|(name, _)| name.clone())
            .collect();
        for name in closing {
            if let Some(o) = open.remove(&name) {
                o.owner.revoke();
                o.handle.stop().await;
                tracing::info!("dns: closed the secondary port of {name} ({})", o.spec.addr);
            }
        }
        for (name, spec) in plan {
            if let Some(o) = open.get_mut(&name) {
                o.owner.extend(Some(spec.until));
                o.spec.until = spec.until;
                continue;
            }
            let owner = OwnerGuard::new(Some(spec.until));
            let req = ServeRequest {
                export: spec.export.clone(),
                volume: spec.volume.clone(),
                protocol: spec.protocol,
                addr: spec.addr,
                node: me,
                owner: owner.clone(),
            };
            match servers.start(req).await {
                Ok(handle) => {
                    tracing::info!(
                        "dns: opened the secondary port of {name} ({} {} on {})",
                        spec.export,
                        spec.protocol,
                        spec.addr
                    );
                    open.insert(
                        name,
                        Open {
                            spec,
                            handle,
                            owner,
                        },
                    );
                }
                Err(e) => tracing::warn!("dns: cannot open {name}'s secondary port: {e}"),
            }
        }
        // Wake for a new view, the nearest deadline, or the next tick.
        let next = open.values().map(|o| o.spec.until).min().map_or(TICK, |d| {
            d.saturating_duration_since(Instant::now()).min(TICK)
        });
        tokio::select! {
            _ = &mut stopped => break,
            _ = views.changed() => {}
            _ = tokio::time::sleep(next) => {}
        }
    }
    for (_, o) in open {
        o.owner.revoke();
        o.handle.stop().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keel_config::{DnsGatewayConfig, ExportPolicy};
    use keel_gateway::GatewaySetView;

    fn cfg() -> (DnsConfig, Vec<ExportConfig>) {
        let dns = DnsConfig {
            gateways: vec![DnsGatewayConfig {
                name: "gw1".into(),
                set: "gw".into(),
                home: 1,
                secondary_port: 7199,
            }],
            ..DnsConfig::default()
        };
        let exports = vec![ExportConfig {
            name: "default".into(),
            set: "gw".into(),
            address: "127.0.10.1".parse().unwrap(),
            nfs_port: Some(7120),
            s3_port: None,
            volume: "default".into(),
            policy: ExportPolicy::ActivePassive,
        }];
        (dns, exports)
    }

    fn view(active: NodeId, lease_until: Option<Instant>) -> GatewayView {
        let mut v = GatewayView {
            health: 100,
            ..GatewayView::default()
        };
        v.sets.insert(
            "gw".into(),
            GatewaySetView {
                epoch: Default::default(),
                active: Some(active),
                passive: None,
                health_threshold: 50,
                serving_members: vec![],
                lease_until,
            },
        );
        v
    }

    #[test]
    fn the_partner_opens_the_secondary_port_only_with_a_lease() {
        let (dns, exports) = cfg();
        let now = Instant::now();
        let ip: IpAddr = "127.0.0.12".parse().unwrap();
        let m = Duration::from_millis(100);
        let lease = Some(now + Duration::from_secs(2));
        // Node 2 took over node 1's gateway, with a lease: open on its own address.
        let p = secondary_plan(&dns, &exports, 2, ip, &view(2, lease), now, m);
        let s = p.get("gw1").expect("planned");
        assert_eq!(s.addr, SocketAddr::new(ip, 7199));
        assert_eq!(s.protocol, Protocol::Nfs);
        assert_eq!(s.until, now + Duration::from_secs(2) - m);
        // No lease, a lease within the margin, not the Active, or the home node itself:
        // closed.
        assert!(secondary_plan(&dns, &exports, 2, ip, &view(2, None), now, m).is_empty());
        let short = Some(now + Duration::from_millis(50));
        assert!(secondary_plan(&dns, &exports, 2, ip, &view(2, short), now, m).is_empty());
        assert!(secondary_plan(&dns, &exports, 2, ip, &view(1, lease), now, m).is_empty());
        assert!(secondary_plan(&dns, &exports, 1, ip, &view(1, lease), now, m).is_empty());
        // Below its health threshold it does not take the partner's clients.
        let mut sick = view(2, lease);
        sick.health = 10;
        assert!(secondary_plan(&dns, &exports, 2, ip, &sick, now, m).is_empty());
    }
}
