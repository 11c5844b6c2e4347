//! THE place where `keel node` plugs protocol servers into the gateway role.
//!
//! The gateway role (`keel-gateway`) decides when this node serves an export (the
//! Active of the export's gateway set, under its lease) and calls
//! [`ExportServers::start`] with the export, the protocol and the address; the handle
//! it gets back is stopped before the lease ends. Here each protocol is the real
//! server: NFSv3 (`keel_nfs::serve`) and S3 (`keel_s3::serve`), both over the node's
//! one `FileService` (`keel_node::fileservice::NodeFiles`) behind the gateway caches
//! (`keel_fs::cache::Cached`: data blocks and attributes/lookups, kept coherent by the
//! directory's invalidations; hit ratios in `/metrics` and `status`).
//!
//! Must never: decide when to serve.

use keel_fs::cache::{CacheConfig, Cached};
use keel_fs::FileService;
use keel_gateway::{ExportServers, Protocol, ServeError, ServeRequest, Serving};
use keel_node::fileservice::NodeFiles;
use keel_node::{MakeExportServers, NodeShared};
use std::sync::Arc;
use std::time::Duration;

/// How long a stopping S3 server lets requests in flight finish. Short: the role stops
/// a server shortly before its lease ends, and another gateway is about to serve the
/// address (the data stays safe either way: every change goes through the cluster).
const S3_DRAIN: Duration = Duration::from_millis(300);

/// The protocol servers of `keel node`.
pub fn make() -> MakeExportServers {
    Box::new(|node: &Arc<NodeShared>| -> Arc<dyn ExportServers> {
        let files = NodeFiles::new(node.clone());
        let counters = files.cache_counters();
        let fs: Arc<dyn FileService> = Arc::new(Cached::with_counters(
            files,
            CacheConfig::default(),
            counters,
        ));
        Arc::new(Servers { fs })
    })
}

struct Servers {
    fs: Arc<dyn FileService>,
}

enum Running {
    Nfs(keel_nfs::NfsServer),
    S3(keel_s3::S3Handle),
}

#[async_trait::async_trait]
impl Serving for Running {
    async fn stop(self: Box<Self>) {
        match *self {
            Running::Nfs(s) => s.stop().await,
            Running::S3(s) => s.stop().await,
        }
    }
}

#[async_trait::async_trait]
impl ExportServers for Servers {
    async fn start(&self, req: ServeRequest) -> Result<Box<dyn Serving>, ServeError> {
        let listener = tokio::net::TcpListener::bind(req.addr)
            .await
            .map_err(|e| ServeError::from_bind(req.addr, &e))?;
        let failed = |reason: String| ServeError::Server {
            export: req.export.clone(),
            protocol: req.protocol.to_string(),
            reason,
        };
        let running = match req.protocol {
            Protocol::Nfs => Running::Nfs(
                keel_nfs::serve(self.fs.clone(), listener, keel_nfs::NfsConfig::default())
                    .map_err(|e| failed(e.to_string()))?,
            ),
            Protocol::S3 => Running::S3(
                keel_s3::serve(
                    self.fs.clone(),
                    listener,
                    keel_s3::S3Config {
                        drain: S3_DRAIN,
                        ..Default::default()
                    },
                )
                .map_err(|e| failed(e.to_string()))?,
            ),
        };
        Ok(Box::new(running))
    }
}
