//! keel's in-process cluster harness, after TiKV's: real nodes (`keel_node::Node`)
//! over an in-memory network whose filters drop, delay, partition and isolate
//! messages, with processes that can be crashed, restarted and paused, and a checker
//! of the control plane's safety invariants that samples every node every ~2 ms.
//!
//! Map:
//! - [`MemNet`] (`net.rs`) routes calls and datagrams by socket address through the
//!   [`Filters`] (`filters.rs`); [`MemTransport`] (`transport.rs`) is one process's
//!   `keel_net::Transport` on it, with the real transport's link fallback and errors.
//! - [`NodeRuntime`] (`runtime.rs`) is a process stand-in: one single-threaded runtime
//!   per node on its own thread, so a pause stops every task of that node and a crash
//!   drops them all.
//! - [`Cluster`] (`cluster.rs`, `faults.rs`, `observe.rs`) starts nodes `1..=n` in a
//!   tempdir, injects faults, reads state and events, and runs admin requests.
//! - [`InvariantChecker`] (`checker.rs`) records each [`Violation`] of the control
//!   plane as it happens; `Cluster::check_data` (`data.rs`) checks the data invariant
//!   of the storage sets at a quiescent point.
//! - `wait.rs`: every wait has a deadline.
//!
//! Owns: test infrastructure only; published nowhere. Must never: open a socket, change
//! what a node does (it only drives it from outside, as an operator, a network or a
//! kernel would), or wait without a deadline.

mod checker;
mod cluster;
mod config;
mod data;
mod error;
mod faults;
mod filters;
mod net;
mod observe;
mod runtime;
mod transport;
mod violation;
mod wait;

pub use checker::{InvariantChecker, Processes, SAMPLE_EVERY};
pub use cluster::{Cluster, ClusterOptions, ADMIN_TOKEN};
pub use config::{link_ip, node_config, LINKS};
pub use data::AckedFile;
pub use error::HarnessError;
pub use filters::{Filters, Traffic, Way};
pub use net::{MemNet, NodeAddrs};
pub use runtime::NodeRuntime;
pub use transport::MemTransport;
pub use violation::Violation;
pub use wait::{holds_for, wait_for, wait_until, POLL};
