//! [`MemNet`]: an in-memory network keyed by socket address. Every node attaches its
//! RPC and heartbeat addresses (one per link) with its handler and the runtime its
//! process runs on; the network routes calls and datagrams between them through the
//! [`Filters`] in force.
//!
//! Owns: the address book, the incarnation of every attached node (so that nothing
//! from a crashed process is ever delivered), and the filters. Must never: run a
//! handler on another runtime than its node's (a paused node must handle nothing), or
//! deliver a datagram the filters drop.

use crate::filters::{Filters, Traffic};
use crate::transport::MemTransport;
use keel_core::{LinkName, NodeId};
use keel_net::{Handler, LinkFaults};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::runtime::Handle;
use tokio::sync::mpsc;

/// Where a node listens: its links and ports.
#[derive(Debug, Clone)]
pub struct NodeAddrs {
    pub node: NodeId,
    pub links: Vec<(LinkName, IpAddr)>,
    pub rpc_port: u16,
    pub heartbeat_port: u16,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Port {
    Rpc,
    Heartbeat,
}

#[derive(Debug, Clone)]
struct Endpoint {
    node: NodeId,
    link: LinkName,
    port: Port,
}

/// A node's current process as the network knows it.
#[derive(Clone)]
struct Attached {
    incarnation: u64,
    handler: Arc<dyn Handler>,
    runtime: Handle,
    faults: LinkFaults,
    inbox: mpsc::UnboundedSender<Datagram>,
    addrs: NodeAddrs,
}

struct Datagram {
    link: LinkName,
    from: SocketAddr,
    payload: Vec<u8>,
    at: tokio::time::Instant,
}

/// Where a call goes, as the network decides it.
pub(crate) enum CallRoute {
    /// Nothing listens there: the process is gone. Refused at once.
    Refused,
    /// The packets are lost (cut cable, partition, isolation): the caller hears nothing.
    Lost,
    /// The callee has cut that link itself: it answers that the link is down.
    LinkDownThere(LinkName),
    /// Delivered to `handler` on the callee's runtime, on the callee's `link`.
    Deliver {
        to: NodeId,
        link: LinkName,
        handler: Arc<dyn Handler>,
        runtime: Handle,
        delay: Duration,
    },
}

#[derive(Default)]
struct NetState {
    endpoints: HashMap<SocketAddr, Endpoint>,
    nodes: HashMap<NodeId, Attached>,
    filters: Filters,
    incarnations: u64,
}

impl NetState {
    /// Is `node`'s process `incarnation` the live one?
    fn current(&self, node: NodeId, incarnation: u64) -> bool {
        !self.filters.crashed.contains(&node)
            && self
                .nodes
                .get(&node)
                .is_some_and(|a| a.incarnation == incarnation)
    }
}

/// The in-memory network. Shared by every node of a cluster.
#[derive(Default)]
pub struct MemNet {
    state: Mutex<NetState>,
}

impl MemNet {
    pub fn new() -> Arc<MemNet> {
        Arc::new(MemNet::default())
    }

    fn lock(&self) -> MutexGuard<'_, NetState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Attaches a new process of `addrs.node` (first start or restart): its addresses
    /// now reach `handler`, run on `runtime`. Returns that process's transport. A
    /// crashed or paused mark on the node is lifted.
    pub fn attach(
        self: &Arc<Self>,
        addrs: &NodeAddrs,
        handler: Arc<dyn Handler>,
        faults: LinkFaults,
        runtime: &Handle,
    ) -> MemTransport {
        let (inbox, rx) = mpsc::unbounded_channel();
        runtime.spawn(deliver_datagrams(rx, handler.clone(), faults.clone()));
        let mut st = self.lock();
        st.incarnations += 1;
        let incarnation = st.incarnations;
        for (link, ip) in &addrs.links {
            for (port, number) in [
                (Port::Rpc, addrs.rpc_port),
                (Port::Heartbeat, addrs.heartbeat_port),
            ] {
                let endpoint = Endpoint {
                    node: addrs.node,
                    link: link.clone(),
                    port,
                };
                st.endpoints.insert(SocketAddr::new(*ip, number), endpoint);
            }
        }
        st.nodes.insert(
            addrs.node,
            Attached {
                incarnation,
                handler,
                runtime: runtime.clone(),
                faults: faults.clone(),
                inbox,
                addrs: addrs.clone(),
            },
        );
        st.filters.crashed.remove(&addrs.node);
        st.filters.paused.remove(&addrs.node);
        let links = addrs.links.iter().map(|(l, _)| l.clone()).collect();
        MemTransport::new(self.clone(), addrs.node, incarnation, links, faults)
    }

    /// Changes the filters; takes effect for every message not yet delivered.
    pub fn update(&self, change: impl FnOnce(&mut Filters)) {
        change(&mut self.lock().filters);
    }

    /// The filters in force.
    pub fn filters(&self) -> Filters {
        self.lock().filters.clone()
    }

    /// Routes a call from process `incarnation` of `from`, sent on `from_link` to `to`.
    pub(crate) fn route_call(
        &self,
        from: NodeId,
        incarnation: u64,
        from_link: &str,
        to: SocketAddr,
    ) -> CallRoute {
        let st = self.lock();
        let f = &st.filters;
        if !st.current(from, incarnation) || f.paused.contains(&from) {
            return CallRoute::Lost;
        }
        let Some(ep) = st.endpoints.get(&to).filter(|e| e.port == Port::Rpc) else {
            return CallRoute::Refused;
        };
        if !f.path_open(from, from_link, ep.node, &ep.link)
            || f.blocks(Traffic::Calls, from, ep.node)
        {
            return CallRoute::Lost;
        }
        let Some(target) = st
            .nodes
            .get(&ep.node)
            .filter(|_| !f.crashed.contains(&ep.node))
        else {
            return CallRoute::Refused;
        };
        if f.rejecting.contains(&ep.node) && from != ep.node {
            return CallRoute::Refused;
        }
        if target.faults.is_cut(&ep.link) {
            return CallRoute::LinkDownThere(ep.link.clone());
        }
        CallRoute::Deliver {
            to: ep.node,
            link: ep.link.clone(),
            handler: target.handler.clone(),
            runtime: target.runtime.clone(),
            delay: f.delay_between(from, ep.node),
        }
    }

    /// Does the answer of `callee` (on `callee_link`) reach process `incarnation` of
    /// `caller` (on `caller_link`)? A partition that started during the call drops it.
    pub(crate) fn answer_arrives(
        &self,
        callee: NodeId,
        callee_link: &str,
        caller: NodeId,
        incarnation: u64,
        caller_link: &str,
    ) -> bool {
        let st = self.lock();
        st.current(caller, incarnation)
            && !st.filters.crashed.contains(&callee)
            && st
                .filters
                .path_open(callee, callee_link, caller, caller_link)
            && !st.filters.blocks(Traffic::Calls, caller, callee)
    }

    /// Sends a datagram from process `incarnation` of `from` on `link` to `to`, if the
    /// filters let it through. `from` is the sender's heartbeat address on that link.
    pub(crate) fn send_datagram(
        &self,
        from: NodeId,
        incarnation: u64,
        link: &str,
        to: SocketAddr,
        payload: &[u8],
    ) {
        let st = self.lock();
        let f = &st.filters;
        if !st.current(from, incarnation) || !f.can_receive(from) {
            return;
        }
        let Some(sender) = st.nodes.get(&from) else {
            return;
        };
        let Some(from_ip) = sender.addrs.links.iter().find(|(l, _)| l == link) else {
            return;
        };
        let Some(ep) = st.endpoints.get(&to).filter(|e| e.port == Port::Heartbeat) else {
            return;
        };
        if !f.can_receive(ep.node)
            || !f.path_open(from, link, ep.node, &ep.link)
            || f.blocks(Traffic::Datagrams, from, ep.node)
            || f.rejecting.contains(&from)
            || f.rejecting.contains(&ep.node)
        {
            return;
        }
        let Some(target) = st.nodes.get(&ep.node) else {
            return;
        };
        let datagram = Datagram {
            link: ep.link.clone(),
            from: SocketAddr::new(from_ip.1, sender.addrs.heartbeat_port),
            payload: payload.to_vec(),
            at: tokio::time::Instant::now() + f.delay_between(from, ep.node),
        };
        let _ = target.inbox.send(datagram);
    }
}

/// A node's receive loop, on the node's runtime: datagrams in order, each after its
/// delay, dropped if the node has cut the link they arrive on (as the UDP socket does).
async fn deliver_datagrams(
    mut rx: mpsc::UnboundedReceiver<Datagram>,
    handler: Arc<dyn Handler>,
    faults: LinkFaults,
) {
    while let Some(d) = rx.recv().await {
        tokio::time::sleep_until(d.at).await;
        if !faults.is_cut(&d.link) {
            handler.on_datagram(&d.link, d.from, &d.payload);
        }
    }
}
