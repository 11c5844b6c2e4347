//! The gateway role's loops: one binds and closes export endpoints as [`plan`] says
//! (and, as the Active, gives up below its health threshold); the other is the
//! Passive's health watch of its Active. Both report every step to the event log.
//!
//! Owns: the running protocol servers of this node. Must never: keep an endpoint of
//! an active-passive export open past the plan's deadline (the lease's end less the
//! margin) — it is closed before anything else is done; block its loop on the event
//! log or the control plane (those calls run in their own tasks).

use crate::control::{GatewayControl, GatewayView};
use crate::decide::{plan, Endpoint};
use crate::hold::Holder;
use crate::server::{ExportServers, OwnerGuard, ServeRequest, Serving};
use crate::watch::{ActiveWatch, ASK_AGAIN_AFTER};
use keel_config::{ExportConfig, GatewayConfig};
use keel_core::{Epoch, Event, EventKind, NodeId, SetId, UnixMillis};
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// How soon a failed bind (the address still held by its previous owner) is tried
/// again.
const RETRY_BIND: Duration = Duration::from_millis(50);

/// The gateway role of one node.
pub struct GatewayRole {
    cfg: GatewayConfig,
    control: Arc<dyn GatewayControl>,
    servers: Arc<dyn ExportServers>,
    holder: Holder,
}

/// The running role; [`RoleHandle::stop`] closes every endpoint.
pub struct RoleHandle {
    stop: Option<oneshot::Sender<()>>,
    serve: Option<JoinHandle<()>>,
    watch: JoinHandle<()>,
}

impl RoleHandle {
    /// Stops the role: every endpoint is closed before this returns.
    pub async fn stop(mut self) {
        self.watch.abort();
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.serve.take() {
            let _ = t.await;
        }
    }
}

impl Drop for RoleHandle {
    fn drop(&mut self) {
        self.watch.abort();
        if let Some(t) = &self.serve {
            t.abort();
        }
    }
}

struct Running {
    handle: Box<dyn Serving>,
    owner: OwnerGuard,
}

fn now_ms() -> UnixMillis {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as UnixMillis)
}

impl GatewayRole {
    pub fn new(
        cfg: GatewayConfig,
        control: Arc<dyn GatewayControl>,
        servers: Arc<dyn ExportServers>,
    ) -> GatewayRole {
        GatewayRole {
            holder: Holder::new(&cfg.hold),
            cfg,
            control,
            servers,
        }
    }

    /// Starts both loops.
    pub fn spawn(self) -> RoleHandle {
        let role = Arc::new(self);
        let (stop, stopped) = oneshot::channel();
        let serve = tokio::spawn(role.clone().serve_loop(stopped));
        let watch = tokio::spawn(role.watch_loop());
        RoleHandle {
            stop: Some(stop),
            serve: Some(serve),
            watch,
        }
    }

    fn export(&self, name: &str) -> Option<&ExportConfig> {
        self.cfg.exports.iter().find(|e| e.name == name)
    }

    /// Records `event` in its own task: the loops never wait for the event log.
    fn record(&self, event: Event) {
        let control = self.control.clone();
        tokio::spawn(async move { control.record(event).await });
    }

    fn margin(&self) -> Duration {
        Duration::from_millis(self.cfg.stop_before_lease_end_ms)
    }

    async fn serve_loop(self: Arc<Self>, mut stopped: oneshot::Receiver<()>) {
        let me = self.control.node();
        let mut views = self.control.view();
        let mut serving: BTreeMap<Endpoint, Running> = BTreeMap::new();
        let mut failing: BTreeMap<Endpoint, String> = BTreeMap::new();
        let mut gave_up: BTreeMap<SetId, (Epoch, Instant)> = BTreeMap::new();
        // Addresses this node added to its interface, each with an export using it.
        let mut held: BTreeMap<IpAddr, String> = BTreeMap::new();
        self.remove_stale(me).await;
        loop {
            let view = views.borrow_and_update().clone();
            let now = Instant::now();
            let p = plan(&self.cfg.exports, me, &view, now, self.margin());

            // Close first: an endpoint past its deadline is closed before anything
            // else happens.
            let gone: Vec<Endpoint> = serving
                .keys()
                .filter(|e| !p.serve.contains_key(*e))
                .cloned()
                .collect();
            for ep in gone {
                if let Some(r) = serving.remove(&ep) {
                    r.owner.revoke();
                    r.handle.stop().await;
                    let why = self.why_stopped(&ep, me, &view, Instant::now());
                    tracing::warn!(endpoint = %ep, "stopped serving: {why}");
                    self.record(
                        self.event(EventKind::GatewayStopped, &ep, me, &view)
                            .detail(format!("node {me} stopped serving export {ep}: {why}")),
                    );
                }
            }
            // Then the addresses no endpoint of the plan uses any more.
            let want = self.moving_addresses(&p.serve);
            let drop: Vec<IpAddr> = held
                .keys()
                .filter(|a| !want.contains_key(*a))
                .copied()
                .collect();
            for addr in drop {
                if let Some(export) = held.remove(&addr) {
                    let why = format!("it stopped serving export {export}");
                    self.release(addr, &export, me, &view, &why).await;
                }
            }
            for (ep, r) in &serving {
                r.owner.extend(p.serve.get(ep).copied().flatten());
            }
            failing.retain(|ep, _| p.serve.contains_key(ep));

            let mut retry_at = None;
            for (addr, export) in &want {
                if held.contains_key(addr) {
                    continue;
                }
                if self.acquire(*addr, export, me, &view).await {
                    held.insert(*addr, export.clone());
                } else {
                    retry_at = Some(Instant::now() + RETRY_BIND);
                }
            }
            for (ep, deadline) in &p.serve {
                if serving.contains_key(ep) {
                    continue;
                }
                let Some(export) = self.export(&ep.export) else {
                    continue;
                };
                if want.contains_key(&ep.addr.ip()) && !held.contains_key(&ep.addr.ip()) {
                    continue;
                }
                let owner = OwnerGuard::new(*deadline);
                let req = ServeRequest {
                    export: ep.export.clone(),
                    volume: export.volume.clone(),
                    protocol: ep.protocol,
                    addr: ep.addr,
                    node: me,
                    owner: owner.clone(),
                };
                match self.servers.start(req).await {
                    Ok(handle) => {
                        tracing::info!(endpoint = %ep, "serving");
                        let waited = failing
                            .remove(ep)
                            .map(|e| format!(" (after waiting: {e})"))
                            .unwrap_or_default();
                        self.record(self.event(EventKind::GatewayServing, ep, me, &view).detail(
                            format!("node {me} serves export {ep} ({:?}){waited}", export.policy),
                        ));
                        serving.insert(ep.clone(), Running { handle, owner });
                    }
                    Err(e) => {
                        let e = e.to_string();
                        if failing.get(ep) != Some(&e) {
                            tracing::warn!(endpoint = %ep, "cannot serve yet: {e}");
                            failing.insert(ep.clone(), e);
                        }
                        retry_at = Some(Instant::now() + RETRY_BIND);
                    }
                }
            }

            for set in &p.give_up {
                self.give_up(set, me, &view, &mut gave_up);
            }

            let wake = [p.recheck_at, retry_at].into_iter().flatten().min();
            tokio::select! {
                _ = &mut stopped => break,
                changed = views.changed() => {
                    if changed.is_err() {
                        break;
                    }
                }
                _ = sleep_until(wake) => {}
            }
        }
        for (_, r) in std::mem::take(&mut serving) {
            r.owner.revoke();
            r.handle.stop().await;
        }
        let view = views.borrow().clone();
        for (addr, export) in std::mem::take(&mut held) {
            self.release(addr, &export, me, &view, "the gateway role is stopping")
                .await;
        }
    }

    /// The addresses of the plan's active-passive endpoints that this node must add
    /// to its interface (none when it holds addresses on loopback), with an export
    /// each.
    fn moving_addresses(
        &self,
        serve: &BTreeMap<Endpoint, Option<Instant>>,
    ) -> BTreeMap<IpAddr, String> {
        if self.holder.interface().is_none() {
            return BTreeMap::new();
        }
        serve
            .keys()
            .filter(|ep| {
                self.export(&ep.export)
                    .is_some_and(|e| e.policy == keel_config::ExportPolicy::ActivePassive)
            })
            .map(|ep| (ep.addr.ip(), ep.export.clone()))
            .collect()
    }

    /// A new incarnation removes every export address from its interface before
    /// anything else: a previous one that was killed could not (see ARCHITECTURE.md,
    /// the gateway failover path).
    async fn remove_stale(&self, me: NodeId) {
        let Some(iface) = self.holder.interface() else {
            return;
        };
        let addrs: BTreeSet<IpAddr> = self
            .cfg
            .exports
            .iter()
            .filter(|e| e.policy == keel_config::ExportPolicy::ActivePassive)
            .map(|e| e.address)
            .collect();
        for addr in addrs {
            match self.holder.remove(addr).await {
                Ok(true) => {
                    let detail = format!(
                        "node {me} removed stale address {addr} from {iface} at start-up (left by a previous incarnation)"
                    );
                    tracing::warn!("{detail}");
                    self.record(
                        Event::new(now_ms(), EventKind::AddressRemoved)
                            .node(me)
                            .detail(detail),
                    );
                }
                Ok(false) => {}
                Err(e) => tracing::warn!("removing stale address {addr} from {iface}: {e}"),
            }
        }
    }

    /// Adds `addr` (export `export`'s) to the interface and announces it; false if
    /// that failed (tried again shortly).
    async fn acquire(&self, addr: IpAddr, export: &str, me: NodeId, view: &GatewayView) -> bool {
        let iface = self.holder.interface().unwrap_or_default();
        match self.holder.add(addr).await {
            Ok(_) => {
                tracing::info!("added {addr} to {iface}");
                self.record(self.addr_event(EventKind::AddressAdded, export, me, view).detail(
                    format!(
                        "node {me} added {addr} (export {export}) to interface {iface} and announces it with gratuitous ARP"
                    ),
                ));
                true
            }
            Err(e) => {
                tracing::warn!("cannot add {addr} to {iface}: {e}");
                false
            }
        }
    }

    /// Removes `addr` from the interface, after its endpoints closed.
    async fn release(&self, addr: IpAddr, export: &str, me: NodeId, view: &GatewayView, why: &str) {
        let iface = self.holder.interface().unwrap_or_default();
        match self.holder.remove(addr).await {
            Ok(_) => {
                tracing::info!("removed {addr} from {iface}: {why}");
                self.record(
                    self.addr_event(EventKind::AddressRemoved, export, me, view)
                        .detail(format!(
                            "node {me} removed {addr} (export {export}) from interface {iface}: {why}"
                        )),
                );
            }
            Err(e) => tracing::error!("cannot remove {addr} from {iface}: {e}"),
        }
    }

    fn addr_event(&self, kind: EventKind, export: &str, me: NodeId, view: &GatewayView) -> Event {
        let mut ev = Event::new(now_ms(), kind).node(me);
        if let Some(e) = self.export(export) {
            ev = ev.set(e.set.clone());
            if let Some(s) = view.sets.get(&e.set) {
                ev = ev.epoch(s.epoch);
            }
        }
        ev
    }

    /// The Active's health fell below `set`'s threshold: ask the control plane to
    /// hand the set to its Passive (once per epoch, again after [`ASK_AGAIN_AFTER`]).
    fn give_up(
        &self,
        set: &str,
        me: NodeId,
        view: &GatewayView,
        asked: &mut BTreeMap<SetId, (Epoch, Instant)>,
    ) {
        let Some(s) = view.sets.get(set) else { return };
        let now = Instant::now();
        if asked
            .get(set)
            .is_some_and(|(e, t)| *e == s.epoch && now.duration_since(*t) < ASK_AGAIN_AFTER)
        {
            return;
        }
        asked.insert(set.to_string(), (s.epoch, now));
        let to = s.passive.filter(|p| *p != me);
        let detail = format!(
            "node {me} (Active) has health {}, below set {set}'s threshold {}: it stopped serving and {}",
            view.health,
            s.health_threshold,
            match to {
                Some(p) => format!("asks the control plane to hand over to node {p} (Passive)"),
                None => "has no Passive to hand over to".to_string(),
            }
        );
        tracing::warn!(set, "{detail}");
        self.record(
            Event::new(now_ms(), EventKind::GatewayGaveUp)
                .set(set)
                .node(me)
                .epoch(s.epoch)
                .detail(detail),
        );
        if let Some(to) = to {
            let control = self.control.clone();
            let (set, epoch) = (set.to_string(), s.epoch);
            tokio::spawn(async move {
                if let Err(e) = control.request_takeover(&set, epoch, to).await {
                    tracing::warn!(set, "handing over to node {to} was refused: {e}");
                }
            });
        }
    }

    fn event(&self, kind: EventKind, ep: &Endpoint, me: NodeId, view: &GatewayView) -> Event {
        self.addr_event(kind, &ep.export, me, view)
    }

    /// Why `ep` is no longer in the plan, in words.
    fn why_stopped(&self, ep: &Endpoint, me: NodeId, view: &GatewayView, now: Instant) -> String {
        let Some(export) = self.export(&ep.export) else {
            return "the export is no longer configured".into();
        };
        let Some(s) = view.sets.get(&export.set) else {
            return format!("it is no longer a member of set {}", export.set);
        };
        if view.health < s.health_threshold {
            return format!(
                "its health {} is below the threshold {}",
                view.health, s.health_threshold
            );
        }
        match export.policy {
            keel_config::ExportPolicy::ActiveActive => {
                "it may not serve now (failed, drained or quarantined)".into()
            }
            keel_config::ExportPolicy::ActivePassive => {
                if s.active != Some(me) {
                    format!(
                        "it is no longer the Active of set {} (epoch {}, Active {})",
                        export.set,
                        s.epoch,
                        s.active.map_or("none".into(), |a| a.to_string())
                    )
                } else {
                    match s.lease_until {
                        None => "it no longer holds the set's lease".into(),
                        Some(u) => format!(
                            "its lease was not renewed (it runs out in {} ms; endpoints close {} ms before)",
                            u.saturating_duration_since(now).as_millis(),
                            self.cfg.stop_before_lease_end_ms
                        ),
                    }
                }
            }
        }
    }

    /// The Passive's watch: every `health_poll_ms`, each Active this node is the
    /// Passive of is asked for its health; a failed Active is reported to the control
    /// plane with a takeover request.
    async fn watch_loop(self: Arc<Self>) {
        let me = self.control.node();
        let views = self.control.view();
        let deadline = Duration::from_millis(self.cfg.health_deadline_ms);
        let budget = Duration::from_millis(self.cfg.detect_after_ms);
        let mut tick = tokio::time::interval(Duration::from_millis(self.cfg.health_poll_ms));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut watches: BTreeMap<SetId, ActiveWatch> = BTreeMap::new();
        loop {
            tick.tick().await;
            let view = views.borrow().clone();
            let now = Instant::now();
            let watched: BTreeMap<&SetId, (Epoch, NodeId, u8)> = view
                .sets
                .iter()
                .filter(|(_, s)| s.passive == Some(me))
                .filter_map(|(id, s)| {
                    let a = s.active.filter(|a| *a != me)?;
                    Some((id, (s.epoch, a, s.health_threshold)))
                })
                .collect();
            watches.retain(|id, w| watched.get(id).is_some_and(|(e, a, _)| w.watches(*e, *a)));
            for (id, (e, a, _)) in &watched {
                watches
                    .entry((*id).clone())
                    .or_insert_with(|| ActiveWatch::new(*e, *a, now));
            }
            let actives: BTreeSet<NodeId> = watches.values().map(|w| w.active).collect();
            let questions = actives.into_iter().map(|a| {
                let control = self.control.clone();
                async move {
                    let asked = control.query_health(a, deadline);
                    let answer = match tokio::time::timeout(deadline * 2, asked).await {
                        Ok(Ok(h)) if h.node == a => Ok(h.score),
                        Ok(Ok(h)) => Err(format!("node {} answered in its place", h.node)),
                        Ok(Err(e)) => Err(e),
                        Err(_) => Err(format!("no answer within {} ms", deadline.as_millis())),
                    };
                    (a, answer)
                }
            });
            let answers: BTreeMap<NodeId, Result<u8, String>> =
                futures::future::join_all(questions)
                    .await
                    .into_iter()
                    .collect();
            let now = Instant::now();
            for (id, w) in watches.iter_mut() {
                let Some((_, _, threshold)) = watched.get(id) else {
                    continue;
                };
                let answer = answers
                    .get(&w.active)
                    .cloned()
                    .unwrap_or_else(|| Err("not asked".into()));
                let Some(reason) = w.observe(answer, *threshold, budget, now) else {
                    continue;
                };
                if view.health < *threshold {
                    tracing::warn!(set = id, "{reason}, but this Passive's own health {} is below the threshold: not asking to take over", view.health);
                    continue;
                }
                self.ask_takeover(id, w.epoch, me, reason);
            }
        }
    }

    fn ask_takeover(&self, set: &str, epoch: Epoch, me: NodeId, reason: String) {
        let detail = format!("node {me} (Passive) asks to take over: {reason}");
        tracing::warn!(set, "{detail}");
        self.record(
            Event::new(now_ms(), EventKind::GatewayTakeoverAsked)
                .set(set)
                .node(me)
                .epoch(epoch)
                .detail(detail),
        );
        let control = self.control.clone();
        let set = set.to_string();
        tokio::spawn(async move {
            match control.request_takeover(&set, epoch, me).await {
                Ok(()) => tracing::info!(set, "takeover granted: node {me} is the Active"),
                Err(e) => tracing::warn!(set, "takeover not granted: {e}"),
            }
        });
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}
