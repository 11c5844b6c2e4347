//! The I/O boundary between keel's logic and the network, as traits, so that an
//! in-process harness can swap the real transport for one that drops, delays or
//! partitions messages.
//!
//! Owns: [`Transport`] (what a member can ask of the network), [`Handler`] (what the
//! network delivers to a member) and [`PeerAddrs`].
//!
//! Must never: depend on an implementation (no sockets, no TLS here).

use std::net::SocketAddr;
use std::time::Duration;

use async_trait::async_trait;

use crate::error::NetError;

pub use keel_core::LinkName;

/// A peer's RPC addresses, one per link, in preference order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerAddrs(pub Vec<(LinkName, SocketAddr)>);

impl PeerAddrs {
    /// The peer's address on `link`, if it has one.
    pub fn on_link(&self, link: &str) -> Option<SocketAddr> {
        self.0.iter().find(|(l, _)| l == link).map(|(_, a)| *a)
    }
}

/// What a member can ask of the network.
#[async_trait]
pub trait Transport: Send + Sync + 'static {
    /// Request/response to a peer: tries its links in order, skipping links that are
    /// locally faulted, falling back to the next on connect/IO error. Returns the link
    /// used. `timeout` bounds the whole call, every link included. An I/O error after the
    /// request left may mean the peer got it: a call can be delivered twice, so methods
    /// must be idempotent or carry an idempotency token. A handler's answer (even
    /// [`NetError::Remote`]) is never retried.
    async fn call(
        &self,
        to: &PeerAddrs,
        method: &str,
        body: Vec<u8>,
        timeout: Duration,
    ) -> Result<(LinkName, Vec<u8>), NetError>;

    /// Like [`Transport::call`], but only over one named link (self-tests, per-link probes).
    async fn call_on_link(
        &self,
        to: &PeerAddrs,
        link: &str,
        method: &str,
        body: Vec<u8>,
        timeout: Duration,
    ) -> Result<Vec<u8>, NetError>;

    /// Best-effort datagram on one link (heartbeats). Dropped silently if that link is
    /// locally faulted.
    fn send_datagram(&self, link: &str, to: SocketAddr, payload: &[u8]);
}

/// What the network delivers to a member.
#[async_trait]
pub trait Handler: Send + Sync + 'static {
    /// Answers a call that arrived on `link`. An `Err` reaches the caller as
    /// [`NetError::Remote`].
    async fn on_call(&self, method: &str, link: &str, body: Vec<u8>) -> Result<Vec<u8>, String>;

    /// Takes an authenticated datagram that arrived on `link`. Runs on the link's
    /// receive task: it must not block.
    fn on_datagram(&self, link: &str, from: SocketAddr, payload: &[u8]);
}
