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
    #[error("{0}")]
    Admin(AdminError),
    #[error("member unreachable: {0}")]
    Unreachable(String),
    #[error("http: {0}")]
    Http(String),
}
