//! Authenticated UDP datagrams per link on real loopback sockets.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::*;
use keel_net::{ClusterSecret, LinkFaults, NodeIdentity, Transport, UdpLinks};
use tokio::sync::mpsc::UnboundedReceiver;

async fn bounded<F: std::future::Future>(test: F) -> F::Output {
    tokio::time::timeout(TEST_TIMEOUT, test)
        .await
        .expect("test timed out")
}

/// Waits (bounded by the test's timeout) until `condition` holds.
async fn wait_until(mut condition: impl FnMut() -> bool) {
    while !condition() {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

struct Endpoint {
    udp: UdpLinks,
    faults: LinkFaults,
    received: UnboundedReceiver<Received>,
}

fn endpoint(test: u8, host: u8, key: [u8; 32]) -> Endpoint {
    let (recorder, received) = Recorder::new();
    let faults = LinkFaults::new();
    let links = vec![
        ("a".to_string(), SocketAddr::new(ip(test, host), 0)),
        ("b".to_string(), SocketAddr::new(ip(test, host + 1), 0)),
    ];
    let udp = UdpLinks::bind(links, key, recorder, faults.clone()).expect("bind udp");
    Endpoint {
        udp,
        faults,
        received,
    }
}

impl Endpoint {
    fn addr(&self, link: &str) -> SocketAddr {
        self.udp.local_addr(link).expect("link addr")
    }

    async fn next(&mut self) -> Received {
        self.received.recv().await.expect("handler alive")
    }
}

#[tokio::test]
async fn datagrams_arrive_with_their_link_and_sender() {
    bounded(async {
        let key = ClusterSecret::generate("alpha")
            .expect("secret")
            .datagram_key();
        let sender = endpoint(20, 1, key);
        let mut receiver = endpoint(20, 11, key);
        sender.udp.send("b", receiver.addr("b"), b"beat");
        let got = receiver.next().await;
        assert_eq!(
            got,
            Received {
                link: "b".into(),
                from: sender.addr("b"),
                payload: b"beat".to_vec()
            }
        );
    })
    .await
}

#[tokio::test]
async fn a_cut_link_neither_sends_nor_receives_datagrams() {
    bounded(async {
        let key = [3u8; 32];
        let sender = endpoint(21, 1, key);
        let mut receiver = endpoint(21, 11, key);

        tracing::info!("--- cut at the sender: nothing leaves");
        sender.faults.cut("a");
        sender.udp.send("a", receiver.addr("a"), b"lost at sender");
        sender.faults.restore("a");

        tracing::info!("--- cut at the receiver: arrivals are dropped");
        receiver.faults.cut("a");
        sender
            .udp
            .send("a", receiver.addr("a"), b"lost at receiver");
        wait_until(|| receiver.udp.dropped_while_cut() == 1).await;
        receiver.faults.restore("a");

        sender.udp.send("a", receiver.addr("a"), b"kept");
        assert_eq!(receiver.next().await.payload, b"kept");
        assert_eq!(receiver.udp.dropped_while_cut(), 1);
    })
    .await
}

#[tokio::test]
async fn a_datagram_with_a_wrong_key_is_dropped_and_counted() {
    bounded(async {
        let key = ClusterSecret::generate("alpha")
            .expect("secret")
            .datagram_key();
        let other = ClusterSecret::generate("alpha")
            .expect("secret")
            .datagram_key();
        let forger = endpoint(22, 1, other);
        let member = endpoint(22, 3, key);
        let mut receiver = endpoint(22, 11, key);

        forger.udp.send("a", receiver.addr("a"), b"forged");
        // Too short to even carry a tag.
        let raw = std::net::UdpSocket::bind((ip(22, 5), 0)).expect("raw socket");
        raw.send_to(b"x", receiver.addr("a")).expect("raw send");
        wait_until(|| receiver.udp.rejected() == 2).await;

        member.udp.send("a", receiver.addr("a"), b"genuine");
        assert_eq!(receiver.next().await.payload, b"genuine");
        assert_eq!(receiver.udp.rejected(), 2);
    })
    .await
}

#[tokio::test]
async fn the_https_transport_sends_datagrams_through_its_udp_links() {
    bounded(async {
        let secret = ClusterSecret::generate("alpha").expect("secret");
        let key = secret.datagram_key();
        let mut receiver = endpoint(23, 11, key);
        let faults = LinkFaults::new();
        let (recorder, _) = Recorder::new();
        let links = vec![("a".to_string(), SocketAddr::new(ip(23, 1), 0))];
        let udp = UdpLinks::bind(links, key, recorder, faults.clone()).expect("bind");
        let identity = NodeIdentity::issue(&secret, 5, &[ip(23, 1)]).expect("identity");
        let transport =
            keel_net::HttpsTransport::new(&identity, &[("a".into(), ip(23, 1))], faults)
                .expect("transport")
                .with_datagrams(udp);

        transport.send_datagram("a", receiver.addr("a"), b"via transport");
        assert_eq!(receiver.next().await.payload, b"via transport");
    })
    .await
}
