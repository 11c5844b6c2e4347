//! keel-dns over real sockets on loopback: hickory-resolver as the client (UDP and
//! TCP), hand-built packets for what a resolver never sends (names outside the zone,
//! other classes, garbage).

use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig, ResolverOpts};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_resolver::proto::rr::{DNSClass, Name, RData, RecordType};
use hickory_resolver::{Resolver, TokioResolver};
use keel_dns::{DnsServer, DnsSettings, GatewayAddrs, GatewayNames, DEFAULT_SUFFIX};
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;
use tokio::net::UdpSocket;
use tokio::sync::watch;

const WAIT: Duration = Duration::from_secs(20);

fn view(failover: Option<Ipv4Addr>) -> GatewayNames {
    let mut v = GatewayNames::default();
    v.gateways.insert(
        "gw1".into(),
        GatewayAddrs {
            primary: Some(Ipv4Addr::new(127, 0, 30, 1)),
            failover,
        },
    );
    v
}

async fn start(failover: Option<Ipv4Addr>) -> (DnsServer, watch::Sender<GatewayNames>) {
    let (tx, rx) = watch::channel(view(failover));
    let settings = DnsSettings {
        listen: "127.0.0.1:0".parse().unwrap(),
        zone: "keel.test".into(),
        suffix: DEFAULT_SUFFIX.into(),
        ttl_secs: 1,
    };
    let server = DnsServer::start(&settings, rx)
        .await
        .expect("dns server starts");
    (server, tx)
}

fn resolver(addr: SocketAddr, tcp_only: bool) -> TokioResolver {
    let mut conns = Vec::new();
    if !tcp_only {
        let mut c = ConnectionConfig::udp();
        c.port = addr.port();
        conns.push(c);
    }
    let mut c = ConnectionConfig::tcp();
    c.port = addr.port();
    conns.push(c);
    let mut opts = ResolverOpts::default();
    opts.cache_size = 0;
    opts.timeout = Duration::from_secs(5);
    opts.ndots = 0;
    Resolver::builder_with_config(
        ResolverConfig::from_name_servers(vec![NameServerConfig::new(addr.ip(), true, conns)]),
        TokioRuntimeProvider::default(),
    )
    .with_options(opts)
    .build()
    .expect("a resolver")
}

async fn a_records(r: &TokioResolver, name: &str) -> Result<Vec<Ipv4Addr>, String> {
    match r.lookup(name, RecordType::A).await {
        Ok(l) => Ok(l
            .answers()
            .iter()
            .filter_map(|r| match &r.data {
                RData::A(a) => Some(a.0),
                _ => None,
            })
            .collect()),
        Err(e) if e.is_nx_domain() => Err("nxdomain".into()),
        Err(e) if e.is_no_records_found() => Ok(vec![]),
        Err(e) => Err(e.to_string()),
    }
}

/// Sends one raw query over UDP and returns the decoded answer.
async fn raw(addr: SocketAddr, bytes: &[u8]) -> Option<Message> {
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    sock.send_to(bytes, addr).await.unwrap();
    let mut buf = vec![0u8; 4096];
    match tokio::time::timeout(Duration::from_secs(3), sock.recv_from(&mut buf)).await {
        Ok(Ok((n, _))) => Some(Message::from_vec(&buf[..n]).expect("a decodable answer")),
        _ => None,
    }
}

fn query(name: &str, class: DNSClass, id: u16) -> Vec<u8> {
    let mut m = Message::new(id, MessageType::Query, OpCode::Query);
    let mut q = Query::query(Name::from_ascii(name).unwrap(), RecordType::A);
    q.set_query_class(class);
    m.add_query(q);
    m.to_vec().unwrap()
}

#[tokio::test]
async fn names_and_failover_names_over_udp_and_tcp() {
    let (server, tx) = start(None).await;
    let addr = server.local_addr();
    for tcp_only in [false, true] {
        let r = resolver(addr, tcp_only);
        assert_eq!(
            a_records(&r, "gw1.keel.test.").await,
            Ok(vec![Ipv4Addr::new(127, 0, 30, 1)]),
            "tcp_only={tcp_only}"
        );
        // Before a takeover the failover name exists with no address.
        assert_eq!(a_records(&r, "gw1-failover.keel.test.").await, Ok(vec![]));
        assert_eq!(
            a_records(&r, "nobody.keel.test.").await,
            Err("nxdomain".to_string())
        );
    }
    // The partner takes over: the failover name now names it, and nothing is cached.
    tx.send(view(Some(Ipv4Addr::new(127, 0, 30, 2)))).unwrap();
    let r = resolver(addr, false);
    assert_eq!(
        a_records(&r, "GW1-FAILOVER.keel.test.").await,
        Ok(vec![Ipv4Addr::new(127, 0, 30, 2)])
    );
    server.stop().await;
}

#[tokio::test]
async fn outside_the_zone_is_refused_and_garbage_does_not_stop_it() {
    let (server, _tx) = start(None).await;
    let addr = server.local_addr();

    let m = raw(addr, &query("gw1.example.org.", DNSClass::IN, 7))
        .await
        .expect("an answer");
    assert_eq!(m.metadata.id, 7);
    assert_eq!(m.metadata.response_code, ResponseCode::Refused);
    assert!(m.answers.is_empty());

    let m = raw(addr, &query("gw1.keel.test.", DNSClass::CH, 8))
        .await
        .expect("an answer");
    assert_eq!(m.metadata.response_code, ResponseCode::Refused);

    let m = raw(addr, &query("gw1.keel.test.", DNSClass::IN, 9))
        .await
        .expect("an answer");
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(m.metadata.authoritative);
    assert!(matches!(
        m.answers.first().map(|r| r.data.clone()),
        Some(RData::A(a)) if a.0 == Ipv4Addr::new(127, 0, 30, 1)
    ));

    // Malformed packets: empty, a header cut short, random bytes, a header that
    // claims questions it does not carry, a name with a label pointer loop.
    let mut garbage: Vec<Vec<u8>> = vec![
        vec![],
        vec![0x12],
        vec![0xff; 11],
        vec![0, 1, 1, 0, 0, 5, 0, 0, 0, 0, 0, 0],
        vec![0, 2, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 12, 0, 1, 0, 1],
    ];
    let mut x: u32 = 0x1234_5678;
    for len in [3usize, 12, 40, 300, 1400] {
        garbage.push(
            (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    x as u8
                })
                .collect(),
        );
    }
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    for g in &garbage {
        sock.send_to(g, addr).await.unwrap();
    }
    // Garbage over TCP too: a length prefix followed by noise, then a close.
    if let Ok(mut s) = tokio::net::TcpStream::connect(addr).await {
        use tokio::io::AsyncWriteExt;
        let _ = s.write_all(&[0, 20, 1, 2, 3, 0xff, 0xfe]).await;
        let _ = s.shutdown().await;
    }

    // Still answering, over UDP and TCP.
    let deadline = tokio::time::Instant::now() + WAIT;
    let m = loop {
        if let Some(m) = raw(addr, &query("gw1.keel.test.", DNSClass::IN, 10)).await {
            break m;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no answer after garbage"
        );
    };
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert_eq!(
        a_records(&resolver(addr, true), "gw1.keel.test.").await,
        Ok(vec![Ipv4Addr::new(127, 0, 30, 1)])
    );
    server.stop().await;
}
