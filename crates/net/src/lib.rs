//! keel's internal networking: how members reach each other.
//!
//! Owns: the cluster secret (a CA whose key is shared by every member) and the mutual
//! TLS identities issued from it ([`ClusterSecret`], [`NodeIdentity`]); the I/O
//! boundary traits ([`Transport`], [`Handler`]) and their real implementation over
//! HTTPS ([`HttpsTransport`], [`serve_rpc`]); authenticated UDP datagrams per link
//! ([`UdpLinks`]); multicast discovery announcements ([`MulticastAnnouncer`]); and
//! local link fault injection ([`LinkFaults`]).
//!
//! Must never: decide anything about membership or failover (it reports what the
//! network did, typed, and lets the caller judge), rely on a process-wide rustls crypto
//! provider, or accept an unauthenticated peer or datagram.

pub mod error;
pub mod fallback;
pub mod faults;
pub mod https;
pub mod https_server;
pub mod multicast;
pub mod secret;
mod tag;
pub mod tls;
pub mod transport;
pub mod udp;

pub use error::{NetError, TlsError};
pub use fallback::{over_links, Failure};
pub use faults::LinkFaults;
pub use https::{HttpsTransport, CONNECT_TIMEOUT};
pub use https_server::{serve_rpc, serve_rpc_on, RpcServer, CONTROL_ALPN, MAX_BODY_BYTES};
pub use multicast::{MulticastAnnouncer, DEFAULT_GROUP};
pub use secret::ClusterSecret;
pub use tag::TAG_LEN;
pub use tls::{ca_client_config, load_ca_cert, NodeIdentity};
pub use transport::{Handler, LinkName, PeerAddrs, Transport};
pub use udp::UdpLinks;
