//! Errors of a node and of admin requests.

use keel_core::ClusterError;
use serde::{Deserialize, Serialize};

/// Why a node could not start or stopped.
#[derive(thiserror::Error, Debug)]
pub enum NodeError {
    #[error("config: {0}")]
    Config(#[from] keel_config::ConfigError),
    #[error("cluster secret: {0}")]
    Secret(String),
    #[error("data dir {path}: {reason}")]
    DataDir { path: String, reason: String },
    #[error("configuration database: {0}")]
    ConfDb(String),
    #[error("network: {0}")]
    Net(String),
    #[error("join refused by the cluster: {0}")]
    JoinRefused(String),
}

/// Why an admin request failed. Travels as JSON to the CLI; `code` is stable.
#[derive(thiserror::Error, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(tag = "code", rename_all = "snake_case")]
pub enum AdminError {
    #[error("{error}")]
    Refused { error: ClusterError },
    #[error("{message}")]
    BadRequest { message: String },
    #[error("no configuration database leader is reachable: {message}")]
    NoLeader { message: String },
    #[error("not allowed: {message}")]
    Forbidden { message: String },
    #[error("{message}")]
    Internal { message: String },
    /// The request may or may not have been applied (its outcome is unknown).
    #[error("not confirmed: {message}; check `keel events`")]
    NotConfirmed { message: String },
}

impl AdminError {
    pub fn bad(message: impl Into<String>) -> AdminError {
        AdminError::BadRequest {
            message: message.into(),
        }
    }
    pub fn internal(message: impl Into<String>) -> AdminError {
        AdminError::Internal {
            message: message.into(),
        }
    }
    /// The HTTP status an admin error maps to.
    pub fn http_status(&self) -> u16 {
        match self {
            AdminError::Refused { error } => match error {
                ClusterError::UnknownNode { .. } | ClusterError::UnknownSet { .. } => 404,
                ClusterError::StaleEpoch { .. } | ClusterError::SetExists { .. } => 409,
                _ => 422,
            },
            AdminError::BadRequest { .. } => 400,
            AdminError::NoLeader { .. } => 503,
            AdminError::Forbidden { .. } => 403,
            AdminError::Internal { .. } => 500,
            AdminError::NotConfirmed { .. } => 409,
        }
    }
}
