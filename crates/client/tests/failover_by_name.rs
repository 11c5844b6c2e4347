//! Failover by name (seed 004 claim 5) against a real keel-dns server on loopback:
//! the gateway's primary port is closed, the client resolves `<gw>-failover` through the
//! cluster's DNS and connects to the partner's secondary data port.

use keel_client::failover::{connect_gateway, DnsEntry, GatewayTarget, Route};
use keel_client::ClientError;
use keel_dns::{DnsServer, DnsSettings, GatewayAddrs, GatewayNames};
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::watch;

#[tokio::test]
async fn a_closed_gateway_is_reached_through_its_failover_name() {
    // The gateway's primary port: bound then dropped, so nothing listens on it.
    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let primary = closed.local_addr().unwrap();
    drop(closed);
    // The partner's secondary data port, on another loopback address.
    let secondary = TcpListener::bind("127.0.0.2:0").await.unwrap();
    let secondary_port = secondary.local_addr().unwrap().port();
    let served = tokio::spawn(async move {
        let (mut s, _) = secondary.accept().await.unwrap();
        s.write_all(b"partner\n").await.unwrap();
    });

    let mut names = GatewayNames::default();
    names.gateways.insert(
        "gw1".into(),
        GatewayAddrs {
            primary: Some(Ipv4Addr::LOCALHOST),
            failover: None,
        },
    );
    let (tx, rx) = watch::channel(names.clone());
    let dns = DnsServer::start(
        &DnsSettings {
            listen: "127.0.0.1:0".parse().unwrap(),
            zone: "keel.test".into(),
            suffix: "-failover".into(),
            ttl_secs: 1,
        },
        rx,
    )
    .await
    .expect("dns");
    let entry = DnsEntry {
        addr: dns.local_addr(),
        zone: "keel.test".into(),
        suffix: "-failover".into(),
    };
    let gw = GatewayTarget {
        name: "gw1".into(),
        primary,
        secondary_port,
    };
    let t = Duration::from_secs(10);

    // No takeover yet: a typed error that says so.
    match connect_gateway(&gw, &entry, t).await {
        Err(ClientError::Unavailable { tried, .. }) => {
            assert!(tried.contains("no takeover yet"), "{tried}")
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }

    // The partner took over.
    names.gateways.get_mut("gw1").unwrap().failover = Some(Ipv4Addr::new(127, 0, 0, 2));
    tx.send(names).unwrap();
    let (mut s, route) = connect_gateway(&gw, &entry, t).await.expect("connected");
    assert_eq!(
        route,
        Route::Failover {
            name: "gw1-failover.keel.test.".into(),
            addr: SocketAddr::new(Ipv4Addr::new(127, 0, 0, 2).into(), secondary_port),
        }
    );
    let mut got = String::new();
    s.read_to_string(&mut got).await.unwrap();
    assert_eq!(got, "partner\n");
    served.await.unwrap();
    dns.stop().await;
}
