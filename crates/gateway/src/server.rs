//! The interface protocol servers are plugged in through: "start serving export X
//! over protocol P on address A; give me a handle I can stop". The caller of the
//! node (the `keel` binary) chooses the implementation: the NFS and S3 servers, or a
//! stand-in in tests.
//!
//! Owns: [`ExportServers`], [`Serving`], [`ServeRequest`] and [`OwnerGuard`]. Must
//! never: decide when to serve (the role does).

use crate::decide::Protocol;
use crate::error::ServeError;
use keel_core::NodeId;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Until when the role lets an endpoint be served. A server may check it before
/// answering a request (the stand-in does): after a process pause, the role's own
/// stop may run a moment after the accept loop wakes up; a server that checks never
/// answers past the lease meanwhile. The role closes the listener in any case.
#[derive(Clone, Debug)]
pub struct OwnerGuard {
    until: Arc<Mutex<Ownership>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ownership {
    /// Active-active: no lease.
    Always,
    /// Active-passive: until this instant (the lease's end less the margin).
    Until(Instant),
    /// Stopped.
    Never,
}

impl OwnerGuard {
    /// A guard for an endpoint served until `deadline` (`None`: no deadline).
    pub fn new(deadline: Option<Instant>) -> OwnerGuard {
        OwnerGuard {
            until: Arc::new(Mutex::new(match deadline {
                Some(d) => Ownership::Until(d),
                None => Ownership::Always,
            })),
        }
    }

    /// May the endpoint be served at this moment?
    pub fn owns(&self) -> bool {
        match *self.until.lock().unwrap_or_else(|e| e.into_inner()) {
            Ownership::Always => true,
            Ownership::Until(d) => Instant::now() < d,
            Ownership::Never => false,
        }
    }

    /// The role renewed the endpoint (its lease was renewed).
    pub fn extend(&self, deadline: Option<Instant>) {
        let mut u = self.until.lock().unwrap_or_else(|e| e.into_inner());
        if *u != Ownership::Never {
            *u = match deadline {
                Some(d) => Ownership::Until(d),
                None => Ownership::Always,
            };
        }
    }

    /// The role is stopping the endpoint.
    pub fn revoke(&self) {
        *self.until.lock().unwrap_or_else(|e| e.into_inner()) = Ownership::Never;
    }
}

/// What to serve.
#[derive(Clone, Debug)]
pub struct ServeRequest {
    /// The export's name (the NFS export path is `/NAME`).
    pub export: String,
    /// The volume exported (the S3 bucket).
    pub volume: String,
    pub protocol: Protocol,
    /// Where to listen.
    pub addr: SocketAddr,
    /// This node (servers may name it in answers or logs).
    pub node: NodeId,
    pub owner: OwnerGuard,
}

/// Starts protocol servers. Implemented by the caller of the node.
#[async_trait::async_trait]
pub trait ExportServers: Send + Sync + 'static {
    /// Binds `req.addr` and serves `req.protocol` there until stopped. An address in
    /// use is [`ServeError::AddressInUse`]: the role tries again shortly.
    async fn start(&self, req: ServeRequest) -> Result<Box<dyn Serving>, ServeError>;
}

/// A running protocol server.
#[async_trait::async_trait]
pub trait Serving: Send + Sync {
    /// Closes the listener (and the connections it accepted); returns once the
    /// address is free for another process to bind.
    async fn stop(self: Box<Self>);
}
