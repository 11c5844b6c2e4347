//! Failover by name (seed 004 claims 5–7): when a connection to its gateway fails, the
//! client computes the failover name (the gateway's name with the cluster's suffix
//! appended), resolves it through the cluster's DNS (`keel-dns`, its address in
//! `cluster.json`'s `dns` entry), and connects to the predetermined secondary data port
//! at the address it resolved to.
//!
//! The resolver is hickory-resolver pointed only at the cluster's DNS server, with no
//! cache: a failover name changes when a partner takes over and must be asked afresh.

use crate::ClientError;
use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig, ResolverOpts};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::{RData, RecordType};
use hickory_resolver::Resolver;
use serde::{Deserialize, Serialize};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;
use tokio::net::TcpStream;

/// The cluster's DNS, as `cluster.json` names it (`keel dev up` writes it).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct DnsEntry {
    /// `ip:port` of the cluster's DNS server (UDP and TCP).
    pub addr: SocketAddr,
    /// The cluster's zone, e.g. `keel.test.`.
    pub zone: String,
    /// Appended to a gateway's name to make its failover name.
    #[serde(default = "default_suffix")]
    pub suffix: String,
}

fn default_suffix() -> String {
    "-failover".to_string()
}

/// One gateway a client talks to: its name, its primary data address, and the
/// secondary data port its partner opens when it takes it over.
#[derive(Clone, Debug, PartialEq)]
pub struct GatewayTarget {
    pub name: String,
    pub primary: SocketAddr,
    pub secondary_port: u16,
}

/// Which way a connection went.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Route {
    /// The gateway's primary data port.
    Primary(SocketAddr),
    /// The failover name resolved to this address; connected to its secondary port.
    Failover { name: String, addr: SocketAddr },
}

impl DnsEntry {
    /// The fully qualified failover name of `gateway` (seed 004 claim 6).
    pub fn failover_name(&self, gateway: &str) -> String {
        let zone = self.zone.trim_end_matches('.');
        format!("{gateway}{}.{zone}.", self.suffix)
    }

    /// Resolves `name` (fully qualified) to its IPv4 addresses through the cluster's
    /// DNS. `Ok(empty)` when the name exists without an address (no takeover yet) or
    /// does not exist.
    pub async fn resolve(
        &self,
        name: &str,
        timeout: Duration,
    ) -> Result<Vec<Ipv4Addr>, ClientError> {
        let mut udp = ConnectionConfig::udp();
        udp.port = self.addr.port();
        let mut tcp = ConnectionConfig::tcp();
        tcp.port = self.addr.port();
        let server = NameServerConfig::new(self.addr.ip(), true, vec![udp, tcp]);
        let mut opts = ResolverOpts::default();
        opts.cache_size = 0;
        opts.timeout = timeout;
        opts.attempts = 2;
        opts.ndots = 0;
        let resolver = Resolver::builder_with_config(
            ResolverConfig::from_name_servers(vec![server]),
            TokioRuntimeProvider::default(),
        )
        .with_options(opts)
        .build()
        .map_err(|e| ClientError::Unreachable(format!("dns {}: {e}", self.addr)))?;
        match resolver.lookup(name, RecordType::A).await {
            Ok(found) => Ok(found
                .answers()
                .iter()
                .filter_map(|r| match &r.data {
                    RData::A(a) => Some(a.0),
                    _ => None,
                })
                .collect()),
            Err(e) if e.is_no_records_found() || e.is_nx_domain() => Ok(Vec::new()),
            Err(e) => Err(ClientError::Unreachable(format!(
                "dns {} for {name}: {e}",
                self.addr
            ))),
        }
    }
}

/// Connects to `gw`: its primary data port, else (seed 004 claim 5) its failover name's
/// address on the secondary data port. Each connection attempt is bounded by `timeout`.
pub async fn connect_gateway(
    gw: &GatewayTarget,
    dns: &DnsEntry,
    timeout: Duration,
) -> Result<(TcpStream, Route), ClientError> {
    let primary_err = match tokio::time::timeout(timeout, TcpStream::connect(gw.primary)).await {
        Ok(Ok(s)) => return Ok((s, Route::Primary(gw.primary))),
        Ok(Err(e)) => e.to_string(),
        Err(_) => format!("no answer within {timeout:?}"),
    };
    let name = dns.failover_name(&gw.name);
    let addrs = dns.resolve(&name, timeout).await?;
    if addrs.is_empty() {
        return Err(ClientError::Unavailable {
            what: format!("gateway {}", gw.name),
            tried: format!(
                "{}: {primary_err}; {name}: no address (no takeover yet)",
                gw.primary
            ),
        });
    }
    let mut tried = vec![format!("{}: {primary_err}", gw.primary)];
    for a in addrs {
        let addr = SocketAddr::new(IpAddr::V4(a), gw.secondary_port);
        match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
            Ok(Ok(s)) => {
                return Ok((
                    s,
                    Route::Failover {
                        name: name.clone(),
                        addr,
                    },
                ))
            }
            Ok(Err(e)) => tried.push(format!("{name} → {addr}: {e}")),
            Err(_) => tried.push(format!("{name} → {addr}: no answer within {timeout:?}")),
        }
    }
    Err(ClientError::Unavailable {
        what: format!("gateway {}", gw.name),
        tried: tried.join("; "),
    })
}
