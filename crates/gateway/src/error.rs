//! Errors of the gateway role: a protocol server that could not start.

use std::net::SocketAddr;

/// Why an export endpoint could not be served.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum ServeError {
    /// The address is taken: on one host, the previous owner (a paused process) still
    /// listens on it. The role tries again until it is free or it stops being Active.
    #[error("export address {addr} is in use (its previous owner still listens)")]
    AddressInUse { addr: SocketAddr },
    /// Any other bind failure (no such local address, permissions).
    #[error("cannot listen on {addr}: {reason}")]
    Bind { addr: SocketAddr, reason: String },
    /// The protocol server refused to start.
    #[error("the {protocol} server for export {export} did not start: {reason}")]
    Server {
        export: String,
        protocol: String,
        reason: String,
    },
}

impl ServeError {
    /// Classifies an `io::Error` from binding `addr`.
    pub fn from_bind(addr: SocketAddr, e: &std::io::Error) -> ServeError {
        if e.kind() == std::io::ErrorKind::AddrInUse {
            ServeError::AddressInUse { addr }
        } else {
            ServeError::Bind {
                addr,
                reason: e.to_string(),
            }
        }
    }
}
