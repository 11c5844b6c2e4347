//! Discovery announcements by UDP multicast on the cluster network.
//!
//! Owns: one multicast group membership on one interface: a listening socket (shared
//! with other processes on the host through SO_REUSEADDR/SO_REUSEPORT, so that several
//! members on one host all hear every announcement) and a sending socket (TTL 1, loop
//! on, leaving by the interface's own address). Announcements carry a tag; bad ones are
//! dropped and counted.
//!
//! Must never: send beyond the local link (TTL is always 1), leave by another interface
//! than the one given, or hand out an announcement whose tag failed. What an
//! announcement says is the caller's business: this module only carries bytes (the
//! sender hears its own announcements too).

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::UdpSocket;
use tokio::task::JoinHandle;

use crate::error::NetError;
use crate::tag::{self, ANNOUNCE_CONTEXT};

/// The default discovery group: administratively scoped (239.255/16), keel's port.
pub const DEFAULT_GROUP: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(239, 255, 70, 1), 7199);

/// A joined discovery group: announces, and hands every authentic announcement heard to
/// a callback. Dropping it stops listening and leaves the group.
pub struct MulticastAnnouncer {
    group: SocketAddrV4,
    sender: std::net::UdpSocket,
    key: [u8; 32],
    rejected: Arc<AtomicU64>,
    listener: JoinHandle<()>,
}

impl MulticastAnnouncer {
    /// Joins `group` on the interface whose address is `iface_ip` and starts listening.
    /// `on_announce(from, payload)` runs on the listening task for every announcement
    /// with a good tag, this process's own included; it must not block. Must be called
    /// from within a tokio runtime.
    pub fn start(
        group: SocketAddrV4,
        iface_ip: Ipv4Addr,
        key: [u8; 32],
        on_announce: impl Fn(SocketAddr, Vec<u8>) + Send + Sync + 'static,
    ) -> Result<MulticastAnnouncer, NetError> {
        if !group.ip().is_multicast() {
            return Err(NetError::Io(format!("{group} is not a multicast group")));
        }
        let receiver = UdpSocket::from_std(listening_socket(group, iface_ip)?.into())?;
        let sender: std::net::UdpSocket = sending_socket(iface_ip)?.into();
        let rejected = Arc::new(AtomicU64::new(0));
        let listener = tokio::spawn(listen(receiver, key, rejected.clone(), on_announce));
        Ok(MulticastAnnouncer {
            group,
            sender,
            key,
            rejected,
            listener,
        })
    }

    /// Sends one tagged announcement to the group. Non-blocking.
    pub fn announce(&self, payload: &[u8]) -> Result<(), NetError> {
        let datagram = tag::seal(&self.key, ANNOUNCE_CONTEXT, payload);
        self.sender.send_to(&datagram, self.group)?;
        Ok(())
    }

    pub fn group(&self) -> SocketAddrV4 {
        self.group
    }

    /// How many announcements were dropped for a bad tag since starting.
    pub fn rejected(&self) -> u64 {
        self.rejected.load(Ordering::Relaxed)
    }
}

impl std::fmt::Debug for MulticastAnnouncer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MulticastAnnouncer")
            .field("group", &self.group)
            .field("rejected", &self.rejected())
            .finish_non_exhaustive()
    }
}

impl Drop for MulticastAnnouncer {
    fn drop(&mut self) {
        self.listener.abort();
    }
}

/// Bound to the group address itself (so unicast to the port is not heard), member of
/// the group on `iface_ip` only, shareable with other processes.
fn listening_socket(group: SocketAddrV4, iface_ip: Ipv4Addr) -> Result<Socket, NetError> {
    let ctx = |what: &str, e: std::io::Error| NetError::Io(format!("multicast {what}: {e}"));
    let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))
        .map_err(|e| ctx("socket", e))?;
    socket
        .set_reuse_address(true)
        .map_err(|e| ctx("SO_REUSEADDR", e))?;
    socket
        .set_reuse_port(true)
        .map_err(|e| ctx("SO_REUSEPORT", e))?;
    // Only the groups this socket joined, not every group some socket joined.
    socket
        .set_multicast_all_v4(false)
        .map_err(|e| ctx("IP_MULTICAST_ALL", e))?;
    socket
        .bind(&SocketAddr::V4(group).into())
        .map_err(|e| ctx(&format!("bind {group}"), e))?;
    socket
        .join_multicast_v4(group.ip(), &iface_ip)
        .map_err(|e| ctx(&format!("join {} on {iface_ip}", group.ip()), e))?;
    socket
        .set_nonblocking(true)
        .map_err(|e| ctx("nonblocking", e))?;
    Ok(socket)
}

/// Bound to `iface_ip`, leaving by it, TTL 1, looped back to listeners on this host.
fn sending_socket(iface_ip: Ipv4Addr) -> Result<Socket, NetError> {
    let ctx = |what: &str, e: std::io::Error| NetError::Io(format!("multicast {what}: {e}"));
    let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))
        .map_err(|e| ctx("socket", e))?;
    socket
        .bind(&SocketAddr::from((iface_ip, 0)).into())
        .map_err(|e| ctx(&format!("bind {iface_ip}"), e))?;
    socket
        .set_multicast_if_v4(&iface_ip)
        .map_err(|e| ctx("IP_MULTICAST_IF", e))?;
    socket
        .set_multicast_ttl_v4(1)
        .map_err(|e| ctx("IP_MULTICAST_TTL", e))?;
    socket
        .set_multicast_loop_v4(true)
        .map_err(|e| ctx("IP_MULTICAST_LOOP", e))?;
    socket
        .set_nonblocking(true)
        .map_err(|e| ctx("nonblocking", e))?;
    Ok(socket)
}

async fn listen(
    socket: UdpSocket,
    key: [u8; 32],
    rejected: Arc<AtomicU64>,
    on_announce: impl Fn(SocketAddr, Vec<u8>),
) {
    let mut buf = vec![0u8; 65_536];
    loop {
        let (len, from) = match socket.recv_from(&mut buf).await {
            Ok(received) => received,
            Err(err) => {
                tracing::debug!(%err, "multicast receive error");
                tokio::time::sleep(Duration::from_millis(1)).await;
                continue;
            }
        };
        match tag::open(&key, ANNOUNCE_CONTEXT, &buf[..len]) {
            Some(payload) => on_announce(from, payload.to_vec()),
            None => {
                rejected.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(%from, "announcement with a bad tag dropped");
            }
        }
    }
}
