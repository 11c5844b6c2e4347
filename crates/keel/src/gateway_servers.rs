//! THE place where `keel node` plugs protocol servers into the gateway role.
//!
//! The gateway role (`keel-gateway`) decides when this node serves an export (the
//! Active of the export's gateway set, under its lease) and calls
//! [`keel_gateway::ExportServers::start`] with the export, the protocol and the
//! address; the handle it gets back is stopped before the lease ends.
//!
//! For now every protocol is the stand-in ([`keel_gateway::StandInServers`]: one line
//! naming the export, the protocol and the node, per connection).
//!
//! LEAD: plug `keel_nfs::serve` and `keel_s3::serve` HERE: an `ExportServers` whose
//! `start` matches `req.protocol` (`Protocol::Nfs` → `keel_nfs::serve(fs, req.addr,
//! ...)`, `Protocol::S3` → `keel_s3::serve(fs, req.addr, ...)`), with `fs` the node's
//! `Arc<dyn keel_fs::FileService>` built from the `NodeShared` this closure gets, and
//! a `Serving` wrapper whose `stop` calls the server handle's stop. Map a bind error
//! of kind `AddrInUse` to `ServeError::AddressInUse` (the role retries it).
//!
//! Must never: decide when to serve.

use keel_gateway::{ExportServers, StandInServers};
use keel_node::{MakeExportServers, NodeShared};
use std::sync::Arc;

/// The protocol servers of `keel node`.
pub fn make() -> MakeExportServers {
    Box::new(|_node: &Arc<NodeShared>| -> Arc<dyn ExportServers> { Arc::new(StandInServers) })
}
