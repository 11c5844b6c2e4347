//! The gateway role: a node serves an export's address only while it is the Active
//! (the Primary) of the export's gateway failover set and holds that set's lease
//! (seed 000 claims 1-5: an active and a passive storage port sharing one network
//! address; claims 2 and 9: 2N gateways; seed 002 claim 12: Active-Passive and
//! Active-Active export policies).
//!
//! Owns: deciding which export endpoints this node listens on (`decide`, pure), the
//! role's loop that binds and closes them (`role`), how the Active holds a moving
//! address — bound on loopback, or added to an interface over netlink and announced
//! with gratuitous ARP (`hold`), the Passive's watch of the
//! Active's health and the Active's watch of its own (`watch`), and the interface
//! protocol servers are plugged in through (`server`), with a stand-in server for
//! tests (`stand_in`).
//!
//! Must never: reach into the node (it sees it only through [`GatewayControl`]);
//! listen on an active-passive address without a valid lease; keep listening once
//! the lease is within `stop_before_lease_end_ms` of running out; decide a failover
//! itself (it asks the control plane, which decides).

pub mod control;
pub mod decide;
pub mod error;
pub mod hold;
pub mod role;
pub mod server;
pub mod stand_in;
pub mod watch;

pub use control::{GatewayControl, GatewaySetView, GatewayView, HealthAnswer};
pub use decide::{plan, Endpoint, Plan, Protocol};
pub use error::ServeError;
pub use hold::Holder;
pub use role::{GatewayRole, RoleHandle};
pub use server::{ExportServers, OwnerGuard, ServeRequest, Serving};
pub use stand_in::StandInServers;
