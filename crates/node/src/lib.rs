//! A keel node: everything a member runs besides the front ends.
//!
//! Owns: health checks, heartbeats on every link, failure detection and fault
//! characterization, the arbiter (on the configuration database leader) that runs the
//! policy manager and writes its decisions, Primary leases, membership and discovery,
//! the boot service, the admin API and metrics.
//!
//! Must never: decide a failover outside the policy manager, let a Primary act
//! without a lease, or change anything except through the configuration database.

pub mod admin;
pub mod admin_api;
mod admin_storage;
pub mod arbiter;
pub mod auth;
pub mod boot;
pub mod capacity;
pub mod data_invariant;
pub mod dns_hook;
pub mod error;
pub mod fileservice;
pub mod gateway;
pub mod gateway_control;
pub mod handler;
pub mod health;
pub mod heartbeat;
pub mod lease;
pub mod locator;
pub mod membership;
pub mod metrics;
pub mod node;
pub mod raft_net;
pub mod runtime;
pub mod storage;
pub mod tracker;
pub mod wire;

pub use error::{AdminError, NodeError};
pub use handler::NodeHandler;
pub use node::NodeShared;
pub use runtime::{run, run_with_gateway, MakeExportServers, Node, NodeIo};
