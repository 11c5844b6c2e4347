//! The RPC server: one mutual-TLS HTTPS listener per link address, routing
//! `POST /rpc/<method>` to [`Handler::on_call`] with the name of the link it arrived on.
//!
//! Owns: the listeners, their serving tasks, the mapping of a handler's answer to HTTP
//! (200 with the body, or 500 with the error text) and of a cut link to 503, graceful
//! shutdown, and which runtime serves a connection: one whose TLS ClientHello offers
//! the [`CONTROL_ALPN`] marker (the control-plane client of [`crate::HttpsTransport`])
//! is served on the runtime that accepts (the node's control runtime), every other one
//! on the data runtime given to [`serve_rpc_on`], so that a heartbeat-sized Raft call
//! never waits behind the TLS and copies of a bulk transfer.
//!
//! Must never: serve a client without a certificate from the cluster CA (the rustls
//! config passed in decides), hand a request arriving on a cut link to the handler, or
//! consume a byte of a connection before it knows which runtime serves it (the
//! ClientHello is peeked).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use rustls::ServerConfig;
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Handle as RuntimeHandle;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::error::NetError;
use crate::faults::LinkFaults;
use crate::transport::{Handler, LinkName};

/// The largest request body the server accepts: the largest chunk plus its envelope
/// ([`keel_core::limits::MAX_RPC_BODY`]). A larger one is answered 413, which the
/// caller sees as [`NetError::TooLarge`] (a refusal of the request, not a failure of
/// the peer).
pub const MAX_BODY_BYTES: usize = keel_core::limits::MAX_RPC_BODY as usize;

/// The ALPN protocol name a control-plane client offers besides `http/1.1` (which is
/// what the server selects): the server's sign that the connection carries control
/// traffic only.
pub const CONTROL_ALPN: &[u8] = b"keel-control";

/// How long [`RpcServer::shutdown`] lets calls in flight finish.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// How long a new connection may take to send its whole ClientHello before it is
/// served as a data connection.
const HELLO_WAIT: Duration = Duration::from_millis(500);

/// Running RPC listeners. Dropping it closes them at once, cutting calls in flight;
/// [`RpcServer::shutdown`] lets those finish first.
#[derive(Debug)]
pub struct RpcServer {
    addrs: Vec<(LinkName, SocketAddr)>,
    listeners: Vec<JoinHandle<()>>,
    stop: Arc<Stop>,
}

/// Shutdown signals shared by the accept loops and every connection.
#[derive(Debug)]
struct Stop {
    /// Stop accepting; let connections finish their calls in flight.
    graceful: watch::Sender<bool>,
    /// Close every connection now.
    now: watch::Sender<bool>,
    /// Connections being served.
    open: AtomicUsize,
}

#[derive(Clone)]
struct LinkState {
    link: LinkName,
    handler: Arc<dyn Handler>,
    faults: LinkFaults,
}

/// Binds one listener per `(link, address)` and serves calls on each, every connection
/// on the current runtime. Must be called from within a tokio runtime. Port 0 binds an
/// ephemeral port: see [`RpcServer::local_addrs`].
pub fn serve_rpc(
    listen: Vec<(LinkName, SocketAddr)>,
    server_config: Arc<ServerConfig>,
    handler: Arc<dyn Handler>,
    faults: LinkFaults,
) -> Result<RpcServer, NetError> {
    let here = RuntimeHandle::current();
    serve_rpc_on(listen, server_config, handler, faults, here)
}

/// Like [`serve_rpc`], but only control connections (those offering [`CONTROL_ALPN`])
/// are served on the current runtime, which accepts; every other connection is served
/// on `data`.
pub fn serve_rpc_on(
    listen: Vec<(LinkName, SocketAddr)>,
    server_config: Arc<ServerConfig>,
    handler: Arc<dyn Handler>,
    faults: LinkFaults,
    data: RuntimeHandle,
) -> Result<RpcServer, NetError> {
    let tls = tokio_rustls::TlsAcceptor::from(server_config);
    let mut bound = Vec::new();
    for (link, addr) in listen {
        let listener = std::net::TcpListener::bind(addr)
            .map_err(|e| NetError::Io(format!("bind {addr} for link {link}: {e}")))?;
        listener.set_nonblocking(true)?;
        bound.push((
            link,
            listener.local_addr()?,
            TcpListener::from_std(listener)?,
        ));
    }
    let stop = Arc::new(Stop {
        graceful: watch::channel(false).0,
        now: watch::channel(false).0,
        open: AtomicUsize::new(0),
    });
    let mut server = RpcServer {
        addrs: Vec::new(),
        listeners: Vec::new(),
        stop: stop.clone(),
    };
    for (link, addr, listener) in bound {
        let state = LinkState {
            link: link.clone(),
            handler: handler.clone(),
            faults: faults.clone(),
        };
        let router = Router::new()
            .route("/rpc/:method", post(rpc))
            .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
            .with_state(state);
        tracing::info!(%link, %addr, "rpc listening");
        server.addrs.push((link, addr));
        let serving = accept_loop(listener, tls.clone(), router, stop.clone(), data.clone());
        server.listeners.push(tokio::spawn(serving));
    }
    Ok(server)
}

async fn accept_loop(
    listener: TcpListener,
    tls: tokio_rustls::TlsAcceptor,
    router: Router,
    stop: Arc<Stop>,
    data: RuntimeHandle,
) {
    let graceful = signalled(stop.graceful.subscribe());
    tokio::pin!(graceful);
    loop {
        let tcp = tokio::select! {
            biased;
            _ = &mut graceful => return,
            accepted = listener.accept() => match accepted {
                Ok((tcp, _)) => tcp,
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let (tls, router, stop, data) = (tls.clone(), router.clone(), stop.clone(), data.clone());
        stop.open.fetch_add(1, Ordering::SeqCst);
        tokio::spawn(async move {
            if offers_control(&tcp).await {
                serve_connection(tcp, tls, router, stop).await;
                return;
            }
            // A data connection: moved, untouched, to the data runtime's reactor.
            let moved = tcp.into_std();
            data.spawn(async move {
                match moved.and_then(TcpStream::from_std) {
                    Ok(tcp) => serve_connection(tcp, tls, router, stop).await,
                    Err(e) => {
                        tracing::debug!("rpc connection lost moving to the data runtime: {e}");
                        stop.open.fetch_sub(1, Ordering::SeqCst);
                    }
                }
            });
        });
    }
}

/// Whether the connection's TLS ClientHello offers [`CONTROL_ALPN`]: read from a peeked
/// copy of its first bytes, which stay in the socket for the TLS handshake.
async fn offers_control(tcp: &TcpStream) -> bool {
    let deadline = tokio::time::Instant::now() + HELLO_WAIT;
    let mut buf = vec![0u8; 4096];
    let mut last = 0;
    loop {
        let peeked = tokio::time::timeout_at(deadline, tcp.peek(&mut buf)).await;
        let n = match peeked {
            Ok(Ok(n)) if n > 0 => n,
            _ => return false,
        };
        let mut acceptor = rustls::server::Acceptor::default();
        let mut bytes = &buf[..n];
        if acceptor.read_tls(&mut bytes).is_err() {
            return false;
        }
        match acceptor.accept() {
            Ok(Some(accepted)) => {
                return accepted
                    .client_hello()
                    .alpn()
                    .is_some_and(|mut offered| offered.any(|p| p == CONTROL_ALPN));
            }
            Ok(None) => {}
            Err(_) => return false,
        }
        // Not all of it yet: peek again once more has arrived (a peek returns what is
        // buffered at once, so wait a moment rather than spin).
        if n == buf.len() {
            buf.resize(buf.len() * 2, 0);
        } else if n == last {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        last = n;
        if tokio::time::Instant::now() >= deadline || buf.len() > 65_536 {
            return false;
        }
    }
}

/// Serves one connection (TLS, then HTTP/1.1 or HTTP/2) until it ends or the server
/// stops.
async fn serve_connection(
    tcp: TcpStream,
    tls: tokio_rustls::TlsAcceptor,
    router: Router,
    stop: Arc<Stop>,
) {
    struct Open(Arc<Stop>);
    impl Drop for Open {
        fn drop(&mut self) {
            self.0.open.fetch_sub(1, Ordering::SeqCst);
        }
    }
    let _open = Open(stop.clone());
    let _ = tcp.set_nodelay(true);
    let graceful = signalled(stop.graceful.subscribe());
    let now = signalled(stop.now.subscribe());
    tokio::pin!(graceful, now);
    let stream = tokio::select! {
        _ = &mut now => return,
        accepted = tls.accept(tcp) => match accepted {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!("rpc TLS handshake failed: {e}");
                return;
            }
        },
    };
    let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    let serving = builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(router));
    tokio::pin!(serving);
    tokio::select! {
        _ = &mut serving => {}
        _ = &mut now => {}
        _ = &mut graceful => {
            serving.as_mut().graceful_shutdown();
            tokio::select! {
                _ = &mut serving => {}
                _ = &mut now => {}
            }
        }
    }
}

/// Resolves once the signal is set (or its sender is gone).
async fn signalled(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|set| *set).await;
}

async fn rpc(State(state): State<LinkState>, Path(method): Path<String>, body: Bytes) -> Response {
    if state.faults.is_cut(&state.link) {
        return (StatusCode::SERVICE_UNAVAILABLE, "link cut").into_response();
    }
    match state
        .handler
        .on_call(&method, &state.link, body.to_vec())
        .await
    {
        Ok(answer) => (StatusCode::OK, answer).into_response(),
        Err(error) => (StatusCode::INTERNAL_SERVER_ERROR, error).into_response(),
    }
}

impl RpcServer {
    /// The bound address of every link, in the order given to [`serve_rpc`].
    pub fn local_addrs(&self) -> &[(LinkName, SocketAddr)] {
        &self.addrs
    }

    /// The bound address on `link`.
    pub fn local_addr(&self, link: &str) -> Option<SocketAddr> {
        self.addrs.iter().find(|(l, _)| l == link).map(|(_, a)| *a)
    }

    /// Stops accepting, lets calls in flight finish (up to a grace period), and waits for
    /// every listener to close.
    pub async fn shutdown(mut self) {
        self.stop.graceful.send_replace(true);
        for ((link, addr), task) in self.addrs.iter().zip(std::mem::take(&mut self.listeners)) {
            match task.await {
                Ok(()) => tracing::info!(%link, %addr, "rpc listener closed"),
                Err(err) => tracing::warn!(%link, %addr, %err, "rpc listener task failed"),
            }
        }
        let deadline = tokio::time::Instant::now() + SHUTDOWN_GRACE;
        while self.stop.open.load(Ordering::SeqCst) > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        self.stop.now.send_replace(true);
    }
}

impl Drop for RpcServer {
    fn drop(&mut self) {
        self.stop.now.send_replace(true);
        self.stop.graceful.send_replace(true);
        for task in &self.listeners {
            task.abort();
        }
    }
}
