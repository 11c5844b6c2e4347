//! Authenticated UDP datagrams, one socket per link (heartbeats travel here).
//!
//! Owns: the link sockets, their receive tasks, sealing outgoing datagrams and opening
//! incoming ones (bad tags are dropped and counted), and applying [`LinkFaults`] in both
//! directions.
//!
//! Must never: block a sender (sends are best-effort and non-blocking), deliver a
//! datagram whose tag failed, or deliver anything on a cut link.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::task::JoinHandle;

use crate::error::NetError;
use crate::faults::LinkFaults;
use crate::tag::{self, LINK_CONTEXT, TAG_LEN};
use crate::transport::{Handler, LinkName};

/// The largest payload that fits one UDP datagram with its tag.
pub const MAX_DATAGRAM_PAYLOAD: usize = 65_507 - TAG_LEN;

/// One bound UDP socket per link, each with a receive task. Dropping it stops the tasks.
pub struct UdpLinks {
    /// Sending halves: plain non-blocking sockets, so a send is one syscall that never
    /// waits for the reactor (tokio's `try_send_to` fails until it has seen the socket
    /// writable once).
    sockets: HashMap<LinkName, std::net::UdpSocket>,
    key: [u8; 32],
    faults: LinkFaults,
    counters: Arc<Counters>,
    tasks: Vec<JoinHandle<()>>,
}

/// What the receive tasks dropped, for observability (and tests).
#[derive(Debug, Default)]
struct Counters {
    rejected: AtomicU64,
    cut: AtomicU64,
}

impl UdpLinks {
    /// Binds one socket per `(link, address)` and starts its receive task. Must be called
    /// from within a tokio runtime. Port 0 binds an ephemeral port: see [`UdpLinks::local_addr`].
    pub fn bind(
        links: Vec<(LinkName, SocketAddr)>,
        key: [u8; 32],
        handler: Arc<dyn Handler>,
        faults: LinkFaults,
    ) -> Result<UdpLinks, NetError> {
        let counters = Arc::new(Counters::default());
        let mut sockets = HashMap::new();
        let mut tasks = Vec::new();
        for (link, addr) in links {
            let std_socket = std::net::UdpSocket::bind(addr)
                .map_err(|e| NetError::Io(format!("bind udp {addr} for link {link}: {e}")))?;
            std_socket.set_nonblocking(true)?;
            let sending = std_socket.try_clone()?;
            let receiver = Receiver {
                link: link.clone(),
                socket: UdpSocket::from_std(std_socket)?,
                key,
                handler: handler.clone(),
                faults: faults.clone(),
                counters: counters.clone(),
            };
            tasks.push(tokio::spawn(receiver.run()));
            if sockets.insert(link.clone(), sending).is_some() {
                return Err(NetError::Io(format!("link {link} given twice")));
            }
        }
        Ok(UdpLinks {
            sockets,
            key,
            faults,
            counters,
            tasks,
        })
    }

    /// Sends `payload`, sealed, from `link`'s socket to `to`. Best-effort: dropped if the
    /// link is cut, unknown, too large, or the socket's buffer is full.
    pub fn send(&self, link: &str, to: SocketAddr, payload: &[u8]) {
        if self.faults.is_cut(link) {
            return;
        }
        let Some(socket) = self.sockets.get(link) else {
            tracing::debug!(link, "datagram for an unknown link dropped");
            return;
        };
        if payload.len() > MAX_DATAGRAM_PAYLOAD {
            tracing::warn!(link, len = payload.len(), "datagram too large, dropped");
            return;
        }
        let datagram = tag::seal(&self.key, LINK_CONTEXT, payload);
        if let Err(err) = socket.send_to(&datagram, to) {
            tracing::debug!(link, %to, %err, "datagram not sent");
        }
    }

    /// The address `link`'s socket is bound to.
    pub fn local_addr(&self, link: &str) -> Option<SocketAddr> {
        self.sockets.get(link)?.local_addr().ok()
    }

    /// How many datagrams were dropped for a bad tag since binding.
    pub fn rejected(&self) -> u64 {
        self.counters.rejected.load(Ordering::Relaxed)
    }

    /// How many datagrams arrived on a cut link and were dropped since binding.
    pub fn dropped_while_cut(&self) -> u64 {
        self.counters.cut.load(Ordering::Relaxed)
    }
}

impl std::fmt::Debug for UdpLinks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UdpLinks")
            .field("links", &self.sockets.keys().collect::<Vec<_>>())
            .field("rejected", &self.rejected())
            .field("dropped_while_cut", &self.dropped_while_cut())
            .finish_non_exhaustive()
    }
}

impl Drop for UdpLinks {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// The receive loop of one link's socket.
struct Receiver {
    link: LinkName,
    socket: UdpSocket,
    key: [u8; 32],
    handler: Arc<dyn Handler>,
    faults: LinkFaults,
    counters: Arc<Counters>,
}

impl Receiver {
    async fn run(self) {
        let mut buf = vec![0u8; 65_536];
        loop {
            let (len, from) = match self.socket.recv_from(&mut buf).await {
                Ok(received) => received,
                // An ICMP error for an earlier send surfaces here on Linux: not ours to fail on.
                Err(err) => {
                    tracing::debug!(link = %self.link, %err, "udp receive error");
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    continue;
                }
            };
            if self.faults.is_cut(&self.link) {
                self.counters.cut.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            match tag::open(&self.key, LINK_CONTEXT, &buf[..len]) {
                Some(payload) => self.handler.on_datagram(&self.link, from, payload),
                None => {
                    self.counters.rejected.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(link = %self.link, %from, "datagram with a bad tag dropped");
                }
            }
        }
    }
}
