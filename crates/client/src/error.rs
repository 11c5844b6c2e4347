//! Client errors: one line each, for the CLI to print.

use keel_node::AdminError;

#[derive(thiserror::Error, Debug)]
pub enum ClientError {
    #[error("no cluster at {dir}: {reason}")]
    NoCluster { dir: String, reason: String },
    #[error("cluster at {dir} is not running: no member answered ({tried})")]
    NotRunning { dir: String, tried: String },
    #[error("unknown node {0}")]
    UnknownNode(u64),
    #[error("cannot read the cluster secret: admin changes need it")]
    NoSecret,
    #[error("no access key: give --key ID:SECRET or set KEEL_KEY (`keel key create NAME` makes one), or use a cluster.json that carries one")]
    NoKey,
    #[error("{0}")]
    Admin(AdminError),
    #[error("member unreachable: {0}")]
    Unreachable(String),
    #[error("http: {0}")]
    Http(String),
    /// The cluster refused a data operation (a typed error with a stable code).
    #[error("{message}")]
    Data { code: String, message: String },
    #[error("{what}: no member could serve it ({tried})")]
    Unavailable { what: String, tried: String },
    #[error("{path}: {reason}")]
    Local { path: String, reason: String },
    /// A change no member confirmed, that may have reached the leader: it may or may
    /// not be applied.
    #[error("not confirmed: no member confirmed the change, and it may still be applied ({tried}); check `keel events`")]
    NotConfirmed { tried: String },
}

impl ClientError {
    /// Whether the outcome of a change is unknown (the CLI exits with its own code).
    pub fn not_confirmed(&self) -> bool {
        matches!(
            self,
            ClientError::NotConfirmed { .. } | ClientError::Admin(AdminError::NotConfirmed { .. })
        )
    }
}

impl ClientError {
    /// The stable code of a data error (`not_found`, `no_space`, ...), if it is one.
    pub fn code(&self) -> Option<&str> {
        match self {
            ClientError::Data { code, .. } => Some(code),
            _ => None,
        }
    }
}
