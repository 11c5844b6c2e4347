//! keel-s3: the S3 gateway. Serves the S3 API (with s3s 0.14) over the narrow file
//! interface [`keel_fs::FileService`]: buckets are volumes, keys are paths (`a/b/c` is
//! the file `c` in the directory `a/b`), and requests are signed (SigV4) with the
//! cluster's access keys, each key's scope checked per request.
//!
//! Owns: the S3 listener ([`serve`] → [`S3Handle`], stopped gracefully), the mapping
//! of S3 operations to file operations ([`gateway`]), the parsers every request goes
//! through ([`names`]), listings in S3 key order ([`list`]), metadata and ETags
//! ([`objects`]), and authentication/authorization ([`auth`]).
//! Must never: reach into a node's state (only the `FileService` it is given), answer
//! an unsigned request, or let a key name a path outside its bucket (traversal, the
//! reserved upload directory).
//!
//! Supported: CreateBucket, DeleteBucket (empty only), HeadBucket, GetBucketLocation,
//! ListBuckets; PutObject, GetObject (with Range), HeadObject, DeleteObject,
//! DeleteObjects, CopyObject; CreateMultipartUpload, UploadPart,
//! CompleteMultipartUpload, AbortMultipartUpload, ListParts; ListObjects and
//! ListObjectsV2 (prefix, delimiter, max-keys, marker / continuation token /
//! start-after, `encoding-type=url`). Every other operation answers `NotImplemented`
//! (see docs/design-decisions.md, "S3 gateway").

pub mod auth;
mod conn;
pub mod gateway;
pub mod list;
pub mod names;
pub mod objects;

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use keel_fs::FileService;
use s3s::service::{S3Service, S3ServiceBuilder};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The gateway's settings.
#[derive(Clone, Debug)]
pub struct S3Config {
    /// The region the gateway answers to; clients sign with it (SigV4 scope).
    pub region: String,
    /// How long [`S3Handle::stop`] lets requests in flight finish before it drops
    /// their connections.
    pub drain: Duration,
}

impl Default for S3Config {
    fn default() -> Self {
        S3Config {
            region: "us-east-1".into(),
            drain: Duration::from_secs(10),
        }
    }
}

/// Bucket names as the gateway accepts them (see [`names::is_bucket_name`]).
struct BucketNames;

impl s3s::validation::NameValidation for BucketNames {
    fn validate_bucket_name(&self, name: &str) -> bool {
        names::is_bucket_name(name)
    }
}

/// The S3 service (an HTTP service: hyper / tower) over `fs`, without a listener —
/// what [`serve`] runs, and what the fuzz target drives in process.
pub fn service(fs: Arc<dyn FileService>, config: &S3Config) -> S3Service {
    let mut b = S3ServiceBuilder::new(gateway::Gateway {
        fs: fs.clone(),
        region: config.region.clone(),
    });
    b.set_auth(auth::KeyAuth { fs: fs.clone() });
    b.set_access(auth::KeyAccess { fs });
    b.set_validation(BucketNames);
    b.build()
}

/// A running S3 listener.
pub struct S3Handle {
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl S3Handle {
    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting, lets requests in flight finish (up to the config's `drain`),
    /// and returns once the listener is closed and every connection is done.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// Serves S3 over `fs` on `listener` until [`S3Handle::stop`].
pub fn serve(
    fs: Arc<dyn FileService>,
    listener: TcpListener,
    config: S3Config,
) -> std::io::Result<S3Handle> {
    let addr = listener.local_addr()?;
    let svc = service(fs, &config);
    let (stop, mut stopped) = watch::channel(false);
    let task = tokio::spawn(async move {
        let http = ConnBuilder::new(TokioExecutor::new());
        let graceful = hyper_util::server::graceful::GracefulShutdown::new();
        loop {
            let (stream, _peer) = tokio::select! {
                r = listener.accept() => match r {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::warn!("s3: accept failed: {e}");
                        // Out of descriptors and the like: do not spin.
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                _ = stopped.changed() => break,
            };
            let _ = stream.set_nodelay(true);
            let svc = svc.clone();
            let handler = hyper::service::service_fn(move |req| conn::handle(svc.clone(), req));
            let conn = http.serve_connection(TokioIo::new(stream), handler);
            let conn = graceful.watch(conn.into_owned());
            tokio::spawn(async move {
                if let Err(e) = conn.await {
                    tracing::debug!("s3: connection ended: {e}");
                }
            });
        }
        drop(listener);
        let _ = tokio::time::timeout(config.drain, graceful.shutdown()).await;
    });
    Ok(S3Handle { addr, stop, task })
}

/// Binds `addr` and serves S3 on it (see [`serve`]).
pub async fn bind(
    fs: Arc<dyn FileService>,
    addr: SocketAddr,
    config: S3Config,
) -> std::io::Result<S3Handle> {
    let listener = TcpListener::bind(addr).await?;
    serve(fs, listener, config)
}

/// The S3 service without authentication or access checks: every request reaches
/// its handler. For the fuzz target only (feature `fuzzing`); never served.
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub fn service_without_auth(fs: Arc<dyn FileService>, config: &S3Config) -> S3Service {
    let mut b = S3ServiceBuilder::new(gateway::Gateway {
        fs,
        region: config.region.clone(),
    });
    b.set_validation(BucketNames);
    b.build()
}
