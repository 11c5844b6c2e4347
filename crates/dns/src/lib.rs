//! keel-dns: the cluster's authoritative DNS server (seed 004, failover by name).
//!
//! It answers, for the cluster's zone (`[dns] zone`, e.g. `keel.test.`), A records of
//! two names per gateway:
//!
//! - `<gateway>.<zone>` → the gateway's primary data address;
//! - `<gateway><suffix>.<zone>` (suffix `-failover` by default) → the address of the
//!   member serving that gateway's failover on its secondary data port, once a partner
//!   has taken it over. Before a takeover the name exists but has no address: the answer
//!   is NOERROR with no records (NODATA), never an address nobody serves on.
//!
//! Every other name in the zone is NXDOMAIN; a name outside the zone, a class other than
//! IN, or more than one question is refused (REFUSED / FORMERR): this server is
//! authoritative only, never recursive. Packets that do not decode are dropped by
//! hickory-server's listener (UDP) or close the connection (TCP); nothing panics.
//!
//! Owns: the zone's answers and the sockets they are served on. Its input is a narrow
//! view the node hands it ([`GatewayNames`] in a `tokio::sync::watch`), never the node's
//! shared state. Must never: answer for a name outside its zone, recurse, or invent an
//! address the view does not hold.

use hickory_server::proto::op::{Metadata, OpCode, ResponseCode};
use hickory_server::proto::rr::{rdata::A, DNSClass, LowerName, Name, RData, Record, RecordType};
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponseBuilder;
use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::str::FromStr;
use std::time::Duration;
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::watch;

/// The default suffix of a failover name (seed 004 claim 6: a set text string appended
/// to the name of the first file server).
pub const DEFAULT_SUFFIX: &str = "-failover";

/// How long a TCP client may stay idle before its connection is closed.
const TCP_IDLE: Duration = Duration::from_secs(5);

/// The addresses of one gateway, as the node sees them now.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GatewayAddrs {
    /// Where the gateway's primary data port listens (its own data address).
    pub primary: Option<Ipv4Addr>,
    /// The address of the member serving this gateway's failover (its partner, once it
    /// took over); `None` while nobody does.
    pub failover: Option<Ipv4Addr>,
}

/// The narrow view the node hands the DNS server: gateway name → its addresses.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GatewayNames {
    pub gateways: BTreeMap<String, GatewayAddrs>,
}

/// What the server serves and where.
#[derive(Clone, Debug)]
pub struct DnsSettings {
    /// Where to listen, UDP and TCP on the same port (port 0: one chosen for both).
    pub listen: SocketAddr,
    /// The zone, e.g. `keel.test.` (a trailing dot is added if missing).
    pub zone: String,
    /// Appended to a gateway's name to make its failover name.
    pub suffix: String,
    /// TTL of every answer, seconds (short: a failover name changes when a partner
    /// takes over).
    pub ttl_secs: u32,
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    #[error("dns: zone {zone:?} is not a valid domain name: {reason}")]
    Zone { zone: String, reason: String },
    #[error("dns: suffix {0:?} must be letters, digits or '-' (at most 32)")]
    Suffix(String),
    #[error("dns: cannot bind {proto} {addr}: {source}")]
    Bind {
        proto: &'static str,
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// Checks a failover suffix: it becomes part of a DNS label.
pub fn valid_suffix(s: &str) -> bool {
    !s.is_empty() && s.len() <= 32 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// The failover name of `gateway` (seed 004 claim 6): the gateway's name with `suffix`
/// appended.
pub fn failover_name(gateway: &str, suffix: &str) -> String {
    format!("{gateway}{suffix}")
}

/// What a question about one name gets, decided from the view alone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    /// NOERROR with these A records (empty: the name exists, no address now).
    Records(Vec<Ipv4Addr>),
    /// NXDOMAIN: no such name in the zone.
    NoSuchName,
    /// REFUSED: not a name of this zone (or not class IN).
    Refused,
}

/// The zone's answers: a pure function of the view.
#[derive(Clone, Debug)]
pub struct Zone {
    origin: LowerName,
    suffix: String,
}

impl Zone {
    pub fn new(zone: &str, suffix: &str) -> Result<Zone, DnsError> {
        if !valid_suffix(suffix) {
            return Err(DnsError::Suffix(suffix.to_string()));
        }
        let fqdn = if zone.ends_with('.') {
            zone.to_string()
        } else {
            format!("{zone}.")
        };
        let name = Name::from_ascii(&fqdn).map_err(|e| DnsError::Zone {
            zone: zone.to_string(),
            reason: e.to_string(),
        })?;
        if name.is_root() {
            return Err(DnsError::Zone {
                zone: zone.to_string(),
                reason: "the root zone is not a cluster zone".into(),
            });
        }
        Ok(Zone {
            origin: LowerName::from(name),
            suffix: suffix.to_string(),
        })
    }

    /// The zone's origin, fully qualified (`keel.test.`).
    pub fn origin(&self) -> Name {
        Name::from(&self.origin)
    }

    /// Answers a question of type `qtype` about `name` from `view`.
    pub fn answer(&self, view: &GatewayNames, name: &LowerName, qtype: RecordType) -> Answer {
        if !self.origin.zone_of(name) {
            return Answer::Refused;
        }
        if name.num_labels() == self.origin.num_labels() {
            // The apex: it exists, and holds no A record.
            return Answer::Records(Vec::new());
        }
        if name.num_labels() != self.origin.num_labels() + 1 {
            return Answer::NoSuchName;
        }
        let full = Name::from(name);
        let Some(label) = full.iter().next() else {
            return Answer::NoSuchName;
        };
        let label = String::from_utf8_lossy(label).to_ascii_lowercase();
        let found = if let Some(gw) = view.gateways.get(&label) {
            Some(gw.primary)
        } else {
            label
                .strip_suffix(&self.suffix.to_ascii_lowercase())
                .and_then(|g| view.gateways.get(g))
                .map(|gw| gw.failover)
        };
        match found {
            None => Answer::NoSuchName,
            Some(addr) if matches!(qtype, RecordType::A | RecordType::ANY) => {
                Answer::Records(addr.into_iter().collect())
            }
            Some(_) => Answer::Records(Vec::new()),
        }
    }
}

/// The request handler hickory-server calls for every decoded message.
struct Handler {
    zone: Zone,
    ttl: u32,
    view: watch::Receiver<GatewayNames>,
}

#[async_trait::async_trait]
impl RequestHandler for Handler {
    async fn handle_request<R: ResponseHandler, T: hickory_server::net::runtime::Time>(
        &self,
        request: &Request,
        mut response_handle: R,
    ) -> ResponseInfo {
        let builder = MessageResponseBuilder::from_message_request(request);
        let err = match request.metadata.op_code {
            OpCode::Query => None,
            _ => Some(ResponseCode::NotImp),
        };
        let queries = request.queries.queries();
        let err = err.or(if queries.len() != 1 {
            Some(ResponseCode::FormErr)
        } else {
            None
        });
        let mut records: Vec<Record> = Vec::new();
        let mut rcode = ResponseCode::NoError;
        if let Some(e) = err {
            rcode = e;
        } else {
            let q = &queries[0];
            let class = q.original().query_class();
            let answer = if class != DNSClass::IN {
                Answer::Refused
            } else {
                let view = self.view.borrow().clone();
                self.zone.answer(&view, q.name(), q.query_type())
            };
            match answer {
                Answer::Records(addrs) => {
                    let name = Name::from(q.name());
                    records = addrs
                        .into_iter()
                        .map(|a| Record::from_rdata(name.clone(), self.ttl, RData::A(A(a))))
                        .collect();
                }
                Answer::NoSuchName => rcode = ResponseCode::NXDomain,
                Answer::Refused => rcode = ResponseCode::Refused,
            }
        }
        let mut meta = Metadata::response_from_request(&request.metadata);
        meta.response_code = rcode;
        meta.authoritative = rcode != ResponseCode::Refused;
        meta.recursion_available = false;
        let response = builder.build(meta, records.iter(), [], [], []);
        match response_handle.send_response(response).await {
            Ok(info) => info,
            Err(e) => {
                tracing::debug!("dns: could not send a response: {e}");
                let mut meta = Metadata::response_from_request(&request.metadata);
                meta.response_code = ResponseCode::ServFail;
                ResponseInfo::from(hickory_server::proto::op::Header {
                    metadata: meta,
                    counts: Default::default(),
                })
            }
        }
    }
}

/// The running server; [`DnsServer::stop`] closes its sockets.
pub struct DnsServer {
    addr: SocketAddr,
    server: hickory_server::Server<Handler>,
}

impl DnsServer {
    /// Binds UDP and TCP on `settings.listen` and starts answering from `view`.
    pub async fn start(
        settings: &DnsSettings,
        view: watch::Receiver<GatewayNames>,
    ) -> Result<DnsServer, DnsError> {
        let zone = Zone::new(&settings.zone, &settings.suffix)?;
        let (udp, tcp) = bind_pair(settings.listen).await?;
        let addr = udp.local_addr().map_err(|source| DnsError::Bind {
            proto: "udp",
            addr: settings.listen,
            source,
        })?;
        let mut server = hickory_server::Server::new(Handler {
            zone,
            ttl: settings.ttl_secs,
            view,
        });
        server.register_socket(udp);
        server.register_listener(tcp, TCP_IDLE, 64);
        tracing::info!("dns: serving zone {} on {addr} (udp, tcp)", settings.zone);
        Ok(DnsServer { addr, server })
    }

    /// Where it answers (UDP and TCP).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops answering and closes the sockets.
    pub async fn stop(mut self) {
        if let Err(e) = self.server.shutdown_gracefully().await {
            tracing::debug!("dns: shutdown: {e}");
        }
    }
}

/// Binds UDP and TCP on the same port: the given one, or (port 0) one free for both.
async fn bind_pair(listen: SocketAddr) -> Result<(UdpSocket, TcpListener), DnsError> {
    let tries = if listen.port() == 0 { 20 } else { 1 };
    let mut last = None;
    for _ in 0..tries {
        let udp = UdpSocket::bind(listen)
            .await
            .map_err(|source| DnsError::Bind {
                proto: "udp",
                addr: listen,
                source,
            })?;
        let at = udp.local_addr().map_err(|source| DnsError::Bind {
            proto: "udp",
            addr: listen,
            source,
        })?;
        match TcpListener::bind(at).await {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(source) => {
                last = Some(DnsError::Bind {
                    proto: "tcp",
                    addr: at,
                    source,
                })
            }
        }
    }
    Err(last.unwrap_or_else(|| DnsError::Bind {
        proto: "tcp",
        addr: listen,
        source: std::io::Error::other("no port"),
    }))
}

impl FromStr for GatewayAddrs {
    type Err = std::net::AddrParseError;
    /// `ADDR` (primary only) or `ADDR,FAILOVER`: used by tests and the CLI.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut parts = s.splitn(2, ',');
        let primary = parts.next().map(str::parse).transpose()?;
        let failover = parts.next().map(str::parse).transpose()?;
        Ok(GatewayAddrs { primary, failover })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view() -> GatewayNames {
        let mut v = GatewayNames::default();
        v.gateways.insert(
            "gw1".into(),
            GatewayAddrs {
                primary: Some(Ipv4Addr::new(127, 0, 20, 1)),
                failover: None,
            },
        );
        v.gateways.insert(
            "gw2".into(),
            GatewayAddrs {
                primary: Some(Ipv4Addr::new(127, 0, 20, 2)),
                failover: Some(Ipv4Addr::new(127, 0, 20, 1)),
            },
        );
        v
    }

    fn ask(z: &Zone, name: &str, t: RecordType) -> Answer {
        z.answer(&view(), &LowerName::from_str(name).unwrap(), t)
    }

    #[test]
    fn answers_from_the_view() {
        let z = Zone::new("keel.test", DEFAULT_SUFFIX).unwrap();
        let a = |o: [u8; 4]| Answer::Records(vec![Ipv4Addr::from(o)]);
        assert_eq!(ask(&z, "gw1.keel.test.", RecordType::A), a([127, 0, 20, 1]));
        assert_eq!(ask(&z, "GW2.Keel.Test.", RecordType::A), a([127, 0, 20, 2]));
        assert_eq!(
            ask(&z, "gw2-failover.keel.test.", RecordType::A),
            a([127, 0, 20, 1])
        );
        assert_eq!(
            ask(&z, "gw1-failover.keel.test.", RecordType::A),
            Answer::Records(vec![])
        );
        assert_eq!(
            ask(&z, "gw1.keel.test.", RecordType::AAAA),
            Answer::Records(vec![])
        );
        assert_eq!(
            ask(&z, "keel.test.", RecordType::A),
            Answer::Records(vec![])
        );
        assert_eq!(ask(&z, "gw3.keel.test.", RecordType::A), Answer::NoSuchName);
        assert_eq!(
            ask(&z, "a.gw1.keel.test.", RecordType::A),
            Answer::NoSuchName
        );
        assert_eq!(ask(&z, "gw1.example.org.", RecordType::A), Answer::Refused);
        assert_eq!(ask(&z, "test.", RecordType::A), Answer::Refused);
    }

    #[test]
    fn bad_settings_are_typed_errors() {
        assert!(matches!(Zone::new(".", "-f"), Err(DnsError::Zone { .. })));
        assert!(matches!(
            Zone::new("keel.test", ""),
            Err(DnsError::Suffix(_))
        ));
        assert!(matches!(
            Zone::new("keel.test", "a.b"),
            Err(DnsError::Suffix(_))
        ));
        assert_eq!(failover_name("gw1", DEFAULT_SUFFIX), "gw1-failover");
    }
}
