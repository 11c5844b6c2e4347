//! The real [`Transport`]: RPC as `POST https://<peer>/rpc/<method>` over mutual TLS,
//! two pooled HTTP clients per local link, each bound to that link's local address —
//! one for the methods the caller named control methods
//! ([`HttpsTransport::with_control_methods`]: its connections offer
//! [`crate::CONTROL_ALPN`], and the server serves them on its control runtime), one for
//! everything else, so that a control call never shares a connection (or a pool) with
//! bulk data; datagrams through [`UdpLinks`].
//!
//! Owns: choosing the link for a call (preference order, skipping cut links, falling
//! back on connect and I/O errors), and turning what reqwest reports into a
//! [`NetError`] that tells a refused connection from a timeout.
//!
//! Must never: retry on another link once the peer's handler has answered (its answer,
//! even an error, is final), exceed the caller's timeout, or go through a proxy.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use reqwest::StatusCode;
use tokio::time::Instant;

use crate::error::NetError;
use crate::fallback::Failure;
use crate::faults::LinkFaults;
use crate::tls::NodeIdentity;
use crate::transport::{LinkName, PeerAddrs, Transport};
use crate::udp::UdpLinks;

/// How long connecting on one link (TCP and the TLS handshake) may take before the call
/// falls back to the next.
pub const CONNECT_TIMEOUT: Duration = Duration::from_millis(200);

/// A [`Transport`] over HTTPS with mutual TLS, and UDP for datagrams.
#[derive(Debug)]
pub struct HttpsTransport {
    clients: HashMap<LinkName, reqwest::Client>,
    control_clients: HashMap<LinkName, reqwest::Client>,
    control_methods: Vec<String>,
    udp: Option<UdpLinks>,
    faults: LinkFaults,
}

impl HttpsTransport {
    /// One client per `(link, local IP)`, bound to that IP and presenting `identity`.
    pub fn new(
        identity: &NodeIdentity,
        local_links: &[(LinkName, IpAddr)],
        faults: LinkFaults,
    ) -> Result<HttpsTransport, NetError> {
        let mut clients = HashMap::new();
        let mut control_clients = HashMap::new();
        let mut control_tls = identity.client_config();
        control_tls
            .alpn_protocols
            .push(crate::https_server::CONTROL_ALPN.to_vec());
        for (link, ip) in local_links {
            let client = |tls: rustls::ClientConfig| {
                reqwest::Client::builder()
                    .use_preconfigured_tls(tls)
                    .local_address(*ip)
                    .connect_timeout(CONNECT_TIMEOUT)
                    .no_proxy()
                    .https_only(true)
                    .pool_idle_timeout(Duration::from_secs(60))
                    .tcp_nodelay(true)
                    .build()
                    .map_err(|e| NetError::Tls(format!("client for link {link}: {}", chain(&e))))
            };
            clients.insert(link.clone(), client(identity.client_config())?);
            control_clients.insert(link.clone(), client(control_tls.clone())?);
        }
        Ok(HttpsTransport {
            clients,
            control_clients,
            control_methods: vec![],
            udp: None,
            faults,
        })
    }

    /// Calls of these methods go through the control clients (see the module header).
    pub fn with_control_methods(mut self, methods: &[&str]) -> HttpsTransport {
        self.control_methods = methods.iter().map(|m| m.to_string()).collect();
        self
    }

    /// Sends datagrams through `udp` (without it, [`Transport::send_datagram`] drops them).
    pub fn with_datagrams(mut self, udp: UdpLinks) -> HttpsTransport {
        self.udp = Some(udp);
        self
    }

    pub fn udp(&self) -> Option<&UdpLinks> {
        self.udp.as_ref()
    }

    pub fn faults(&self) -> &LinkFaults {
        &self.faults
    }

    async fn attempt(
        &self,
        link: &str,
        addr: SocketAddr,
        method: &str,
        body: Bytes,
        deadline: Instant,
    ) -> Result<Vec<u8>, Failure> {
        let fail = |error, fall_back| Failure { error, fall_back };
        if self.faults.is_cut(link) {
            return Err(fail(NetError::LinkDown(link.to_string()), true));
        }
        let clients = if self.control_methods.iter().any(|m| m == method) {
            &self.control_clients
        } else {
            &self.clients
        };
        let Some(client) = clients.get(link) else {
            return Err(fail(NetError::LinkDown(link.to_string()), true));
        };
        if method.is_empty()
            || !method
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b))
        {
            return Err(fail(
                NetError::Io(format!("invalid method name {method:?}")),
                false,
            ));
        }
        if body.len() > crate::MAX_BODY_BYTES {
            let too_large = NetError::TooLarge {
                bytes: body.len() as u64,
                limit: crate::MAX_BODY_BYTES as u64,
            };
            return Err(fail(too_large, false));
        }
        let url = format!("https://{addr}/rpc/{method}");
        let sent = body.len() as u64;
        let exchange = async {
            let response = client.post(url).body(body).send().await?;
            let status = response.status();
            Ok::<_, reqwest::Error>((status, response.bytes().await?))
        };
        match tokio::time::timeout_at(deadline, exchange).await {
            Err(_elapsed) => Err(fail(NetError::Timeout, false)),
            Ok(Err(err)) => Err(classify(&err)),
            Ok(Ok((StatusCode::OK, body))) => Ok(body.to_vec()),
            Ok(Ok((StatusCode::INTERNAL_SERVER_ERROR, body))) => Err(fail(
                NetError::Remote(String::from_utf8_lossy(&body).into_owned()),
                false,
            )),
            Ok(Ok((StatusCode::PAYLOAD_TOO_LARGE, _))) => Err(fail(
                NetError::TooLarge {
                    bytes: sent,
                    limit: crate::MAX_BODY_BYTES as u64,
                },
                false,
            )),
            Ok(Ok((StatusCode::SERVICE_UNAVAILABLE, _))) => {
                Err(fail(NetError::LinkDown(link.to_string()), true))
            }
            Ok(Ok((status, _))) => Err(fail(
                NetError::Io(format!("unexpected HTTP status {status}")),
                false,
            )),
        }
    }
}

#[async_trait]
impl Transport for HttpsTransport {
    async fn call(
        &self,
        to: &PeerAddrs,
        method: &str,
        body: Vec<u8>,
        timeout: Duration,
    ) -> Result<(LinkName, Vec<u8>), NetError> {
        let deadline = Instant::now() + timeout;
        let body = Bytes::from(body);
        crate::fallback::over_links(to, |link, addr| {
            let body = body.clone();
            async move { self.attempt(&link, addr, method, body, deadline).await }
        })
        .await
    }

    async fn call_on_link(
        &self,
        to: &PeerAddrs,
        link: &str,
        method: &str,
        body: Vec<u8>,
        timeout: Duration,
    ) -> Result<Vec<u8>, NetError> {
        let addr = to
            .on_link(link)
            .ok_or_else(|| NetError::Io(format!("peer has no address on link {link}")))?;
        let deadline = Instant::now() + timeout;
        self.attempt(link, addr, method, Bytes::from(body), deadline)
            .await
            .map_err(|failure| failure.error)
    }

    fn send_datagram(&self, link: &str, to: SocketAddr, payload: &[u8]) {
        match &self.udp {
            Some(udp) => udp.send(link, to, payload),
            None => tracing::debug!(link, "no datagram sockets; datagram dropped"),
        }
    }
}

/// Maps a reqwest error to a [`NetError`]; every such failure may fall back to the next
/// link, since none of them is an answer from the peer's handler.
fn classify(err: &reqwest::Error) -> Failure {
    let mut tls = None;
    for e in causes(err) {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::ConnectionRefused {
                return Failure {
                    error: NetError::Refused,
                    fall_back: true,
                };
            }
        }
        if let Some(rustls_err) = e.downcast_ref::<rustls::Error>() {
            tls = Some(rustls_err.to_string());
        }
    }
    let error = if let Some(tls) = tls {
        NetError::Tls(tls)
    } else if err.is_timeout() {
        NetError::Timeout
    } else {
        NetError::Io(chain(err))
    };
    Failure {
        error,
        fall_back: true,
    }
}

/// `err` and its causes. An `io::Error`'s `source()` skips the error it wraps, so for
/// those the wrapped error itself is the next cause.
fn causes<'a>(
    err: &'a (dyn std::error::Error + 'static),
) -> impl Iterator<Item = &'a (dyn std::error::Error + 'static)> {
    std::iter::successors(Some(err), |e| match e.downcast_ref::<std::io::Error>() {
        Some(io) => io
            .get_ref()
            .map(|inner| inner as &(dyn std::error::Error + 'static)),
        None => e.source(),
    })
}

/// An error and all its sources, joined with ": ".
fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(e) = source {
        text.push_str(": ");
        text.push_str(&e.to_string());
        source = e.source();
    }
    text
}
