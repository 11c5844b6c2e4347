//! Shared test fixtures: a recording handler and node setups on loopback addresses.
#![allow(dead_code)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use keel_net::{
    serve_rpc, ClusterSecret, Handler, HttpsTransport, LinkFaults, NodeIdentity, PeerAddrs,
    RpcServer,
};
use tokio::sync::mpsc;

/// Bound on every test; the tests themselves wait on conditions, not on time.
pub const TEST_TIMEOUT: Duration = Duration::from_secs(20);
/// Timeout of a call expected to succeed.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// A loopback address private to one test: 127.77.<test>.<host>.
pub fn ip(test: u8, host: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 77, test, host))
}

/// A datagram as the handler saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    pub link: String,
    pub from: SocketAddr,
    pub payload: Vec<u8>,
}

/// Answers `echo` with `<link>:<body>`, `fail` with an error; records datagrams.
pub struct Recorder {
    pub calls: AtomicU64,
    datagrams: mpsc::UnboundedSender<Received>,
}

impl Recorder {
    pub fn new() -> (Arc<Recorder>, mpsc::UnboundedReceiver<Received>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let recorder = Recorder {
            calls: AtomicU64::new(0),
            datagrams: tx,
        };
        (Arc::new(recorder), rx)
    }
}

#[async_trait]
impl Handler for Recorder {
    async fn on_call(&self, method: &str, link: &str, body: Vec<u8>) -> Result<Vec<u8>, String> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        match method {
            "echo" => Ok([link.as_bytes(), b":", &body].concat()),
            "fail" => Err("boom".to_string()),
            other => Err(format!("no method {other}")),
        }
    }

    fn on_datagram(&self, link: &str, from: SocketAddr, payload: &[u8]) {
        let _ = self.datagrams.send(Received {
            link: link.to_string(),
            from,
            payload: payload.to_vec(),
        });
    }
}

/// A server node: links `a` and `b` on 127.77.<test>.1 and .2, ephemeral ports.
pub struct ServerNode {
    pub server: RpcServer,
    pub recorder: Arc<Recorder>,
    pub faults: LinkFaults,
}

impl ServerNode {
    pub fn start(secret: &ClusterSecret, test: u8) -> ServerNode {
        let ips = [ip(test, 1), ip(test, 2)];
        let identity = NodeIdentity::issue(secret, 1, &ips).expect("issue server identity");
        let (recorder, _datagrams) = Recorder::new();
        let faults = LinkFaults::new();
        let listen = vec![
            ("a".to_string(), SocketAddr::new(ips[0], 0)),
            ("b".to_string(), SocketAddr::new(ips[1], 0)),
        ];
        let server = serve_rpc(
            listen,
            identity.server_config(),
            recorder.clone(),
            faults.clone(),
        )
        .expect("serve rpc");
        ServerNode {
            server,
            recorder,
            faults,
        }
    }

    pub fn addrs(&self) -> PeerAddrs {
        PeerAddrs(self.server.local_addrs().to_vec())
    }

    pub fn calls(&self) -> u64 {
        self.recorder.calls.load(Ordering::SeqCst)
    }
}

/// A client transport with links `a` and `b` on 127.77.<test>.11 and .12.
pub fn client(secret: &ClusterSecret, test: u8, faults: LinkFaults) -> HttpsTransport {
    let ips = [ip(test, 11), ip(test, 12)];
    let identity = NodeIdentity::issue(secret, 2, &ips).expect("issue client identity");
    let links = vec![("a".to_string(), ips[0]), ("b".to_string(), ips[1])];
    HttpsTransport::new(&identity, &links, faults).expect("client transport")
}

/// A port on `ip` where nothing listens (bound, then released).
pub fn closed_port(ip: IpAddr) -> SocketAddr {
    let listener = std::net::TcpListener::bind(SocketAddr::new(ip, 0)).expect("bind probe");
    let addr = listener.local_addr().expect("probe addr");
    drop(listener);
    addr
}
