//! [`MemTransport`]: one node process's [`Transport`] on the in-memory network, with
//! the real transport's semantics: links tried in order, locally cut links skipped, a
//! lost connection falls back to the next link after the connect timeout, a process
//! that is gone answers [`NetError::Refused`] at once, a hung one times out.
//!
//! Must never: run the callee's handler outside the callee's runtime, retry once a
//! handler has answered, or exceed the caller's timeout.

use crate::net::{CallRoute, MemNet};
use async_trait::async_trait;
use keel_core::{LinkName, NodeId};
use keel_net::{Failure, LinkFaults, NetError, PeerAddrs, Transport, CONNECT_TIMEOUT};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// One process's view of the network.
pub struct MemTransport {
    net: Arc<MemNet>,
    me: NodeId,
    incarnation: u64,
    links: Vec<LinkName>,
    faults: LinkFaults,
}

impl MemTransport {
    pub(crate) fn new(
        net: Arc<MemNet>,
        me: NodeId,
        incarnation: u64,
        links: Vec<LinkName>,
        faults: LinkFaults,
    ) -> MemTransport {
        MemTransport {
            net,
            me,
            incarnation,
            links,
            faults,
        }
    }

    async fn attempt(
        &self,
        link: &str,
        addr: SocketAddr,
        method: &str,
        body: Vec<u8>,
        deadline: Instant,
    ) -> Result<Vec<u8>, Failure> {
        let fail = |error, fall_back| Failure { error, fall_back };
        if self.faults.is_cut(link) || !self.links.iter().any(|l| l == link) {
            return Err(fail(NetError::LinkDown(link.to_string()), true));
        }
        let (to, to_link, handler, runtime, delay) =
            match self.net.route_call(self.me, self.incarnation, link, addr) {
                CallRoute::Refused => return Err(fail(NetError::Refused, true)),
                CallRoute::LinkDownThere(l) => return Err(fail(NetError::LinkDown(l), true)),
                CallRoute::Lost => {
                    // Nothing answers the connection attempt: give up on this link after
                    // the connect timeout, or at the deadline.
                    let give_up = (Instant::now() + CONNECT_TIMEOUT).min(deadline);
                    tokio::time::sleep_until(give_up).await;
                    return Err(fail(NetError::Timeout, give_up < deadline));
                }
                CallRoute::Deliver {
                    to,
                    link,
                    handler,
                    runtime,
                    delay,
                } => (to, link, handler, runtime, delay),
            };
        if tokio::time::timeout_at(deadline, tokio::time::sleep(delay))
            .await
            .is_err()
        {
            return Err(fail(NetError::Timeout, false));
        }
        // The request is in the callee's hands once its process runs it; a caller that
        // gave up first withdraws it (the connection is closed before it is read).
        let withdrawn = Arc::new(AtomicBool::new(false));
        let seen = withdrawn.clone();
        let method_owned = method.to_string();
        let callee_link = to_link.clone();
        let handled = runtime.spawn(async move {
            if seen.load(Ordering::SeqCst) {
                return None;
            }
            Some(handler.on_call(&method_owned, &to_link, body).await)
        });
        let answer = match tokio::time::timeout_at(deadline, handled).await {
            Err(_elapsed) => {
                withdrawn.store(true, Ordering::SeqCst);
                return Err(fail(NetError::Timeout, false));
            }
            // The callee's process died while handling: the connection was reset.
            Ok(Err(_)) | Ok(Ok(None)) => {
                return Err(fail(NetError::Io("connection reset".into()), true));
            }
            Ok(Ok(Some(answer))) => answer,
        };
        if tokio::time::timeout_at(deadline, tokio::time::sleep(delay))
            .await
            .is_err()
        {
            return Err(fail(NetError::Timeout, false));
        }
        if !self
            .net
            .answer_arrives(to, &callee_link, self.me, self.incarnation, link)
        {
            tokio::time::sleep_until(deadline).await;
            return Err(fail(NetError::Timeout, false));
        }
        answer.map_err(|e| fail(NetError::Remote(e), false))
    }
}

#[async_trait]
impl Transport for MemTransport {
    async fn call(
        &self,
        to: &PeerAddrs,
        method: &str,
        body: Vec<u8>,
        timeout: Duration,
    ) -> Result<(LinkName, Vec<u8>), NetError> {
        let deadline = Instant::now() + timeout;
        keel_net::over_links(to, |link, addr| {
            let body = body.clone();
            async move { self.attempt(&link, addr, method, body, deadline).await }
        })
        .await
    }

    async fn call_on_link(
        &self,
        to: &PeerAddrs,
        link: &str,
        method: &str,
        body: Vec<u8>,
        timeout: Duration,
    ) -> Result<Vec<u8>, NetError> {
        let addr = to
            .on_link(link)
            .ok_or_else(|| NetError::Io(format!("peer has no address on link {link}")))?;
        let deadline = Instant::now() + timeout;
        self.attempt(link, addr, method, body, deadline)
            .await
            .map_err(|failure| failure.error)
    }

    fn send_datagram(&self, link: &str, to: SocketAddr, payload: &[u8]) {
        if self.faults.is_cut(link) {
            return;
        }
        self.net
            .send_datagram(self.me, self.incarnation, link, to, payload);
    }
}
