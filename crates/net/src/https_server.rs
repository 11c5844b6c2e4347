//! The RPC server: one mutual-TLS HTTPS listener per link address, routing
//! `POST /rpc/<method>` to [`Handler::on_call`] with the name of the link it arrived on.
//!
//! Owns: the listeners, their serving tasks, the mapping of a handler's answer to HTTP
//! (200 with the body, or 500 with the error text) and of a cut link to 503, and
//! graceful shutdown.
//!
//! Must never: serve a client without a certificate from the cluster CA (the rustls
//! config passed in decides), or hand a request arriving on a cut link to the handler.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use axum_server::tls_rustls::RustlsConfig;
use axum_server::Handle;
use rustls::ServerConfig;
use tokio::task::JoinHandle;

use crate::error::NetError;
use crate::faults::LinkFaults;
use crate::transport::{Handler, LinkName};

/// The largest request body the server accepts: the largest chunk plus its envelope
/// ([`keel_core::limits::MAX_RPC_BODY`]). A larger one is answered 413, which the
/// caller sees as [`NetError::TooLarge`] (a refusal of the request, not a failure of
/// the peer).
pub const MAX_BODY_BYTES: usize = keel_core::limits::MAX_RPC_BODY as usize;

/// How long [`RpcServer::shutdown`] lets calls in flight finish.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Running RPC listeners. Dropping it closes them at once, cutting calls in flight;
/// [`RpcServer::shutdown`] lets those finish first.
#[derive(Debug)]
pub struct RpcServer {
    addrs: Vec<(LinkName, SocketAddr)>,
    listeners: Vec<(Handle, JoinHandle<std::io::Result<()>>)>,
}

#[derive(Clone)]
struct LinkState {
    link: LinkName,
    handler: Arc<dyn Handler>,
    faults: LinkFaults,
}

/// Binds one listener per `(link, address)` and serves calls on each. Must be called from
/// within a tokio runtime. Port 0 binds an ephemeral port: see [`RpcServer::local_addrs`].
pub fn serve_rpc(
    listen: Vec<(LinkName, SocketAddr)>,
    server_config: Arc<ServerConfig>,
    handler: Arc<dyn Handler>,
    faults: LinkFaults,
) -> Result<RpcServer, NetError> {
    let tls = RustlsConfig::from_config(server_config);
    let mut bound = Vec::new();
    for (link, addr) in listen {
        let listener = std::net::TcpListener::bind(addr)
            .map_err(|e| NetError::Io(format!("bind {addr} for link {link}: {e}")))?;
        listener.set_nonblocking(true)?;
        bound.push((link, listener.local_addr()?, listener));
    }
    let mut server = RpcServer {
        addrs: Vec::new(),
        listeners: Vec::new(),
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
        let handle = Handle::new();
        let serving = axum_server::from_tcp_rustls(listener, tls.clone())
            .handle(handle.clone())
            .serve(router.into_make_service());
        tracing::info!(%link, %addr, "rpc listening");
        server.addrs.push((link, addr));
        server.listeners.push((handle, tokio::spawn(serving)));
    }
    Ok(server)
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
        let listeners = std::mem::take(&mut self.listeners);
        for (handle, _) in &listeners {
            handle.graceful_shutdown(Some(SHUTDOWN_GRACE));
        }
        for ((link, addr), (_, task)) in self.addrs.iter().zip(listeners) {
            match task.await {
                Ok(Ok(())) => tracing::info!(%link, %addr, "rpc listener closed"),
                Ok(Err(err)) => tracing::warn!(%link, %addr, %err, "rpc listener failed"),
                Err(err) => tracing::warn!(%link, %addr, %err, "rpc listener task failed"),
            }
        }
    }
}

impl Drop for RpcServer {
    fn drop(&mut self) {
        for (handle, _) in &self.listeners {
            handle.shutdown();
        }
    }
}
