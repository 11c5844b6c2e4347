//! The crate's two error types: [`NetError`] for what happened on the network, and
//! [`TlsError`] for the cluster secret and the identities issued from it.
//!
//! Must never: blur a refused connection (the peer process is gone) with a timeout (hung
//! or unreachable), since the policy manager judges failures by that difference.

use std::path::PathBuf;

use crate::transport::LinkName;

/// What a call or a bind did wrong, as far as the network can tell.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum NetError {
    /// TCP connection refused on every link tried: nothing listens, the peer process is gone.
    #[error("connection refused on every link tried")]
    Refused,
    /// No answer in time: the peer is hung or unreachable.
    #[error("timed out")]
    Timeout,
    /// The link is cut: locally (fault injection), or the peer answered that it is cut on
    /// its side. Every link skipped or cut gives this for the first of them.
    #[error("link {0} is down")]
    LinkDown(LinkName),
    /// The request body is larger than the RPC server accepts
    /// ([`crate::MAX_BODY_BYTES`]): refused by the caller before sending, or answered
    /// 413 by the peer. A refusal of the request, not a sign that the peer is down.
    #[error("request body of {bytes} bytes is over the {limit}-byte limit")]
    TooLarge { bytes: u64, limit: u64 },
    /// The peer's handler answered with an error.
    #[error("remote handler failed: {0}")]
    Remote(String),
    /// The TLS handshake failed (unknown CA, bad certificate, ...).
    #[error("tls: {0}")]
    Tls(String),
    /// Any other I/O or protocol failure.
    #[error("i/o: {0}")]
    Io(String),
}

impl From<std::io::Error> for NetError {
    fn from(err: std::io::Error) -> Self {
        match err.kind() {
            std::io::ErrorKind::ConnectionRefused => NetError::Refused,
            std::io::ErrorKind::TimedOut => NetError::Timeout,
            _ => NetError::Io(err.to_string()),
        }
    }
}

/// What went wrong with the cluster secret or a node identity.
#[derive(thiserror::Error, Debug)]
pub enum TlsError {
    /// The secret file grants access to group or others; it must be mode 0600 or stricter.
    #[error(
        "{path}: cluster secret is accessible by group or others (mode {mode:o}); chmod 600 it"
    )]
    InsecureSecretFile { path: PathBuf, mode: u32 },
    /// Reading or writing the secret file failed.
    #[error("{path}: {source}")]
    SecretIo {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The secret file is not what [`crate::ClusterSecret::save`] writes.
    #[error("malformed cluster secret: {0}")]
    MalformedSecret(String),
    /// A cluster name must be non-empty, one line, printable.
    #[error("invalid cluster name {0:?}")]
    InvalidClusterName(String),
    /// Certificate generation or signing failed.
    #[error("certificate: {0}")]
    Certificate(#[from] rcgen::Error),
    /// rustls refused the configuration built from the identity.
    #[error("rustls: {0}")]
    Rustls(String),
}
