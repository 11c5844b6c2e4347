use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use anyhow;
use async_trait::async_trait;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tracing::{debug, error, info};

use crate::context::RPCContext;
use crate::rpcwire::*;
use crate::transaction_tracker::TransactionTracker;
use crate::vfs::NFSFileSystem;

/// A NFS Tcp Connection Handler
pub struct NFSTcpListener<T: NFSFileSystem + Send + Sync + 'static> {
    listener: TcpListener,
    port: u16,
    arcfs: Arc<T>,
    mount_signal: Option<mpsc::Sender<bool>>,
    export_name: Arc<String>,
    transaction_tracker: Arc<TransactionTracker>,
    max_record: usize,
    max_inflight: usize,
    stop: tokio::sync::watch::Receiver<bool>,
}

pub fn generate_host_ip(hostnum: u16) -> String {
    format!("127.88.{}.{}", ((hostnum >> 8) & 0xFF) as u8, (hostnum & 0xFF) as u8)
}

/// processes an established socket
async fn process_socket(
    mut socket: tokio::net::TcpStream,
    context: RPCContext,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> Result<(), anyhow::Error> {
    let (mut message_handler, mut socksend, mut msgrecvchan) = SocketMessageHandler::new(&context);
    let _ = socket.set_nodelay(true);

    // keel: the reader task ends with the connection (it used to outlive it).
    let reader = tokio::spawn(async move {
        loop {
            if let Err(e) = message_handler.read().await {
                debug!("Message loop broken due to {:?}", e);
                break;
            }
        }
    });
    let _abort_reader = AbortOnDrop(reader);
    let mut buf = vec![0_u8; 128000];
    loop {
        tokio::select! {
            // keel: a graceful stop closes every connection.
            true = stopped(&mut stop) => {
                return Ok(());
            },
            _ = socket.readable() => {
                match socket.try_read(&mut buf) {
                    Ok(0) => {
                        return Ok(());
                    }
                    Ok(n) => {
                        let _ = socksend.write_all(&buf[..n]).await;
                    }
                    Err(ref e) if e.kind() == io::ErrorKind::WouldBlock => {
                        continue;
                    }
                    Err(e) => {
                        debug!("Message handling closed : {:?}", e);
                        return Err(e.into());
                    }
                }

            },
            reply = msgrecvchan.recv() => {
                match reply {
                    Some(Err(e)) => {
                        debug!("Message handling closed : {:?}", e);
                        return Err(e);
                    }
                    Some(Ok((msg, _permit))) => {
                        if let Err(e) = write_fragment(&mut socket, &msg).await {
                            error!("Write error {:?}", e);
                        }
                    }
                    None => {
                        return Err(anyhow::anyhow!("Unexpected socket context termination"));
                    }
                }
            }
        }
    }
}

/// keel: true once the stop signal is set (false if its sender is gone: never).
async fn stopped(stop: &mut tokio::sync::watch::Receiver<bool>) -> bool {
    stop.wait_for(|s| *s).await.is_ok()
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);
impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// keel: the default limit on one RPC record: a 1 MiB WRITE (wtmax) plus headroom.
pub const DEFAULT_MAX_RECORD: usize = (1 << 20) + (64 << 10);
/// keel: the default number of calls of one connection served at once.
pub const DEFAULT_MAX_INFLIGHT: usize = 16;

#[async_trait]
pub trait NFSTcp: Send + Sync {
    /// Gets the true listening port. Useful if the bound port number is 0
    fn get_listen_port(&self) -> u16;

    /// Gets the true listening IP. Useful on windows when the IP may be random
    fn get_listen_ip(&self) -> IpAddr;

    /// Sets a mount listener. A "true" signal will be sent on a mount
    /// and a "false" will be sent on an unmount
    fn set_mount_listener(&mut self, signal: mpsc::Sender<bool>);

    /// Loops forever and never returns handling all incoming connections.
    async fn handle_forever(&self) -> io::Result<()>;
}

impl<T: NFSFileSystem + Send + Sync + 'static> NFSTcpListener<T> {
    /// Binds to a ipstr of the form [ip address]:port. For instance
    /// "127.0.0.1:12000". fs is an instance of an implementation
    /// of NFSFileSystem.
    pub async fn bind(ipstr: &str, fs: T) -> io::Result<NFSTcpListener<T>> {
        let (ip, port) = ipstr
            .split_once(':')
            .ok_or_else(|| io::Error::new(io::ErrorKind::AddrNotAvailable, "IP Address must be of form ip:port"))?;
        let port = port
            .parse::<u16>()
            .map_err(|_| io::Error::new(io::ErrorKind::AddrNotAvailable, "Port not in range 0..=65535"))?;

        let arcfs: Arc<T> = Arc::new(fs);

        if ip == "auto" {
            let mut num_tries_left = 32;

            for try_ip in 1u16.. {
                let ip = generate_host_ip(try_ip);

                let result = NFSTcpListener::bind_internal(&ip, port, arcfs.clone()).await;

                match &result {
                    Err(_) => {
                        if num_tries_left == 0 {
                            return result;
                        } else {
                            num_tries_left -= 1;
                            continue;
                        }
                    },
                    Ok(_) => {
                        return result;
                    },
                }
            }
            unreachable!(); // Does not detect automatically that loop above never terminates.
        } else {
            // Otherwise, try this.
            NFSTcpListener::bind_internal(ip, port, arcfs).await
        }
    }

    async fn bind_internal(ip: &str, port: u16, arcfs: Arc<T>) -> io::Result<NFSTcpListener<T>> {
        let ipstr = format!("{ip}:{port}");
        let listener = TcpListener::bind(&ipstr).await?;
        info!("Listening on {:?}", &ipstr);

        Self::from_listener(listener, arcfs)
    }

    /// keel: serves on a listener the caller bound (any address, port 0 included).
    pub fn from_listener(listener: TcpListener, arcfs: Arc<T>) -> io::Result<NFSTcpListener<T>> {
        let port = match listener.local_addr()? {
            SocketAddr::V4(s) => s.port(),
            SocketAddr::V6(s) => s.port(),
        };
        Ok(NFSTcpListener {
            listener,
            port,
            arcfs,
            mount_signal: None,
            export_name: Arc::from("/".to_string()),
            transaction_tracker: Arc::new(TransactionTracker::new(Duration::from_secs(60))),
            max_record: DEFAULT_MAX_RECORD,
            max_inflight: DEFAULT_MAX_INFLIGHT,
            stop: tokio::sync::watch::channel(false).1,
        })
    }

    /// keel: the largest RPC record a client may send; a longer one closes its
    /// connection before anything is allocated for it.
    pub fn with_max_record(&mut self, bytes: usize) {
        self.max_record = bytes;
    }

    /// keel: how many calls of one connection are served at once.
    pub fn with_max_inflight(&mut self, calls: usize) {
        self.max_inflight = calls.max(1);
    }

    /// keel: when `stop` turns true, `handle_forever` returns and every connection
    /// it accepted is closed.
    pub fn with_stop(&mut self, stop: tokio::sync::watch::Receiver<bool>) {
        self.stop = stop;
    }

    /// Sets an optional NFS export name.
    ///
    /// - `export_name`: The desired export name without slashes.
    ///
    /// Example: Name `foo` results in the export path `/foo`.
    /// Default path is `/` if not set.
    pub fn with_export_name<S: AsRef<str>>(&mut self, export_name: S) {
        self.export_name = Arc::new(format!("/{}", export_name.as_ref().trim_end_matches('/').trim_start_matches('/')))
    }
}

#[async_trait]
impl<T: NFSFileSystem + Send + Sync + 'static> NFSTcp for NFSTcpListener<T> {
    /// Gets the true listening port. Useful if the bound port number is 0
    fn get_listen_port(&self) -> u16 {
        self.port
    }

    fn get_listen_ip(&self) -> IpAddr {
        let addr = self.listener.local_addr().unwrap();
        addr.ip()
    }

    /// Sets a mount listener. A "true" signal will be sent on a mount
    /// and a "false" will be sent on an unmount
    fn set_mount_listener(&mut self, signal: mpsc::Sender<bool>) {
        self.mount_signal = Some(signal);
    }

    /// Loops forever and never returns handling all incoming connections.
    /// keel: returns Ok once the stop signal (`with_stop`) turns true; an accept
    /// error (out of file descriptors, a peer gone before it was accepted) is logged
    /// and the loop goes on (it used to end the server, or panic).
    async fn handle_forever(&self) -> io::Result<()> {
        let mut stop = self.stop.clone();
        loop {
            let (socket, peer) = tokio::select! {
                true = stopped(&mut stop) => return Ok(()),
                r = self.listener.accept() => match r {
                    Ok(x) => x,
                    Err(e) => {
                        error!("accept: {e}");
                        // Back off so that a persistent error (EMFILE) does not spin.
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    },
                },
            };
            let context = RPCContext {
                local_port: self.port,
                client_addr: peer.to_string(),
                auth: crate::rpc::auth_unix::default(),
                vfs: self.arcfs.clone(),
                mount_signal: self.mount_signal.clone(),
                export_name: self.export_name.clone(),
                transaction_tracker: self.transaction_tracker.clone(),
                max_record: self.max_record,
                max_inflight: self.max_inflight,
            };
            info!("Accepting connection from {}", context.client_addr);
            debug!("Accepting socket {:?} {:?}", socket, context);
            let conn_stop = self.stop.clone();
            tokio::spawn(async move {
                let _ = process_socket(socket, context, conn_stop).await;
            });
        }
    }
}

/// keel: a context for [`crate::rpcwire::process_record`] outside a server (fuzzing,
/// tests): the given file system, export `/`, port 0, the default limits.
pub fn test_context<T: NFSFileSystem + Send + Sync + 'static>(fs: Arc<T>) -> RPCContext {
    RPCContext {
        local_port: 0,
        client_addr: "fuzz".to_string(),
        auth: crate::rpc::auth_unix::default(),
        vfs: fs,
        mount_signal: None,
        export_name: Arc::new("/".to_string()),
        transaction_tracker: Arc::new(TransactionTracker::new(Duration::from_secs(60))),
        max_record: DEFAULT_MAX_RECORD,
        max_inflight: DEFAULT_MAX_INFLIGHT,
    }
}
