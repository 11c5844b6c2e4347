//! keel-nfs: the NFSv3 gateway. Serves every volume of a [`FileService`] over NFSv3,
//! with portmap, MOUNT and NFS on one TCP port (nfsserve 0.11, vendored with
//! hardening patches: `vendor/nfsserve/PATCHES.md`).
//!
//! Owns: the NFS protocol face of the cluster: exports, file handles, the mapping of
//! NFS procedures to [`FileService`] calls and of errors to `nfsstat3`. Must never:
//! reach into a node's state (it sees the cluster only through [`FileService`]), keep
//! data or attributes of its own (caches are the node's), or make a handle depend on
//! the serving process.
//!
//! **Exports.** One per volume: mount `/<volume>` (or a directory below it,
//! `/<volume>/a/b`); MOUNT's EXPORT lists `/<volume>` for every volume. Mounting `/`
//! is refused (there is no file above the volumes). With libnfs:
//! `nfs://127.0.0.1/<volume>/<file>?nfsport=P&mountport=P&version=3`.
//!
//! **File handles** (24 bytes, [`handle`]): magic, format version, the volume's root
//! inode, the inode, a CRC. Inode ids are cluster-wide and never reused, so a handle
//! is valid on every gateway and after any restart for as long as the file exists,
//! and stale (NFS3ERR_STALE) once it is removed; bytes that are not a handle of this
//! format are NFS3ERR_BADHANDLE. NFS file ids (`fileid3`) are the inode ids; `fsid`
//! is the volume's root inode.
//!
//! **WRITE.** nfsserve answers every WRITE `FILE_SYNC`, so every write goes to the
//! file service with [`keel_fs::Stability::FileSync`]: durable on the storage set and
//! committed in the directory before the answer. COMMIT is then a no-op that returns
//! the write verifier ([`FileService::write_verifier`]).
//!
//! **READDIR/READDIRPLUS** are paged: a cookie is the file id of the last entry the
//! client got; the gateway remembers which name it was and continues with
//! `readdir(after = name)`; a gateway that did not serve the previous page (failover)
//! finds the name by scanning the directory (NFS3ERR_BAD_COOKIE if it is gone).
//!
//! **Errors** ([`vfs::nfs_status`]):
//!
//! | `FsError`                  | NFS status                                   |
//! |----------------------------|----------------------------------------------|
//! | `NotFound`, `NoVolume`     | NFS3ERR_NOENT                                |
//! | `Exists`                   | NFS3ERR_EXIST                                |
//! | `NotDir`                   | NFS3ERR_NOTDIR                               |
//! | `IsDir`                    | NFS3ERR_ISDIR                                |
//! | `NotEmpty`                 | NFS3ERR_NOTEMPTY                             |
//! | `Stale`                    | NFS3ERR_STALE                                |
//! | `InvalidName`, `Invalid`   | NFS3ERR_INVAL (a name over 255 bytes: NFS3ERR_NAMETOOLONG, checked here; a rename across volumes: NFS3ERR_XDEV) |
//! | `TooLarge`                 | NFS3ERR_FBIG                                 |
//! | `NoSpace`                  | NFS3ERR_NOSPC                                |
//! | `Denied`                   | NFS3ERR_ACCES                                |
//! | `Unavailable`              | NFS3ERR_JUKEBOX (the client waits, retries)  |
//! | `Io`                       | NFS3ERR_IO                                   |
//!
//! **Hardening.** An RPC record longer than [`NfsConfig::max_record`] closes its
//! connection before anything is allocated for it; arguments that do not decode are
//! answered GARBAGE_ARGS and the connection stays up; each connection has at most
//! [`NfsConfig::max_inflight`] calls served or waiting to be written. Fuzz targets in
//! `crates/nfs/fuzz` (`cd crates/nfs && cargo +nightly fuzz run <target>`):
//! `rpc_stream` (a connection's bytes: record marking, fragments, the limit, then
//! each call), `rpc_call` (one call with valid handles and fuzzed arguments, deep
//! into every procedure), `file_handle` (handle decoding); what they find is kept in
//! `tests/decoders.rs`.
//!
//! Not supported: symbolic and hard links (NFS3ERR_NOTSUPP), MKNOD, the EXCLUSIVE
//! create verifier (an EXCLUSIVE create of an existing name is NFS3ERR_EXIST), AUTH
//! checks (AUTH_UNIX credentials are accepted as given; access is the cluster's
//! export policy, not per-user).

pub mod fuzzing;
pub mod handle;
pub mod vfs;

use keel_fs::FileService;
use nfsserve::tcp::{NFSTcp, NFSTcpListener};
use std::net::SocketAddr;
use std::sync::Arc;

pub use vfs::KeelNfs;

/// How the gateway serves.
#[derive(Clone, Debug)]
pub struct NfsConfig {
    /// The largest RPC record (request) accepted, in bytes; a longer one closes the
    /// connection. Must exceed `max_io` plus headers.
    pub max_record: usize,
    /// Calls of one connection served (or waiting to be written) at once.
    pub max_inflight: usize,
    /// READ and WRITE sizes offered to clients (FSINFO rtmax/wtmax), in bytes.
    pub max_io: u32,
    /// The largest file size offered (FSINFO maxfilesize) and allowed: a WRITE or
    /// SETATTR past it is NFS3ERR_FBIG.
    pub max_file_size: u64,
    /// Refuse every change with NFS3ERR_ROFS.
    pub read_only: bool,
}

impl Default for NfsConfig {
    fn default() -> Self {
        NfsConfig {
            max_record: nfsserve::tcp::DEFAULT_MAX_RECORD,
            max_inflight: nfsserve::tcp::DEFAULT_MAX_INFLIGHT,
            max_io: 1 << 20,
            max_file_size: 1 << 40,
            read_only: false,
        }
    }
}

/// Why the gateway could not start.
#[derive(thiserror::Error, Debug)]
pub enum NfsError {
    #[error("binding {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("listener: {0}")]
    Listener(std::io::Error),
    #[error("configuration: {0}")]
    Config(String),
}

/// A running NFS gateway. [`NfsServer::stop`] (or dropping it) stops accepting and
/// closes every connection.
pub struct NfsServer {
    addr: SocketAddr,
    stop: tokio::sync::watch::Sender<bool>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl NfsServer {
    /// The address clients connect to (portmap, MOUNT and NFS alike).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting, closes every connection, and waits for the accept loop to end.
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }
}

impl Drop for NfsServer {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// Binds `addr` (port 0 picks one) and serves `fs` on it. Call from a Tokio runtime.
pub async fn bind(
    fs: Arc<dyn FileService>,
    addr: SocketAddr,
    config: NfsConfig,
) -> Result<NfsServer, NfsError> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| NfsError::Bind { addr, source })?;
    serve(fs, listener, config)
}

/// Serves `fs` on a listener the caller bound (the node binds the export address it
/// owns when it becomes its gateway set's Active).
pub fn serve(
    fs: Arc<dyn FileService>,
    listener: tokio::net::TcpListener,
    config: NfsConfig,
) -> Result<NfsServer, NfsError> {
    if config.max_record < config.max_io as usize + 4096 {
        return Err(NfsError::Config(format!(
            "max_record {} must exceed max_io {} by 4096 bytes of headers",
            config.max_record, config.max_io
        )));
    }
    let addr = listener.local_addr().map_err(NfsError::Listener)?;
    let nfs = Arc::new(KeelNfs::new(fs, &config));
    let mut l = NFSTcpListener::from_listener(listener, nfs).map_err(NfsError::Listener)?;
    l.with_max_record(config.max_record);
    l.with_max_inflight(config.max_inflight);
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    l.with_stop(stop_rx);
    let task = tokio::spawn(async move {
        if let Err(e) = l.handle_forever().await {
            tracing::error!("nfs gateway on {addr} ended: {e}");
        }
    });
    tracing::info!("nfs gateway serving on {addr}");
    Ok(NfsServer {
        addr,
        stop,
        task: Some(task),
    })
}
