//! Discovery announcements on a multicast group joined on loopback.

mod common;

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::Duration;

use common::TEST_TIMEOUT;
use keel_net::MulticastAnnouncer;
use tokio::sync::mpsc;

/// A group port no other test uses: a free ephemeral UDP port on loopback.
fn test_group() -> SocketAddrV4 {
    let probe = std::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).expect("probe");
    let port = probe.local_addr().expect("probe addr").port();
    SocketAddrV4::new(Ipv4Addr::new(239, 255, 70, 1), port)
}

fn listener(
    group: SocketAddrV4,
    key: [u8; 32],
) -> (
    MulticastAnnouncer,
    mpsc::UnboundedReceiver<(SocketAddr, Vec<u8>)>,
) {
    let (tx, rx) = mpsc::unbounded_channel();
    let announcer =
        MulticastAnnouncer::start(group, Ipv4Addr::LOCALHOST, key, move |from, payload| {
            let _ = tx.send((from, payload));
        })
        .expect("start announcer");
    (announcer, rx)
}

#[tokio::test]
async fn two_listeners_on_one_host_both_hear_an_announcement() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let group = test_group();
        let key = [9u8; 32];
        let (first, mut first_heard) = listener(group, key);
        let (_second, mut second_heard) = listener(group, key);

        first.announce(b"node 1 here").expect("announce");
        let (from, payload) = second_heard.recv().await.expect("second hears");
        assert_eq!(payload, b"node 1 here");
        assert_eq!(from.ip(), Ipv4Addr::LOCALHOST);
        let (_, payload) = first_heard.recv().await.expect("first hears itself");
        assert_eq!(payload, b"node 1 here");
    })
    .await
    .expect("test timed out")
}

#[tokio::test]
async fn an_announcement_with_a_wrong_key_is_dropped() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let group = test_group();
        let (member, mut heard) = listener(group, [1u8; 32]);
        let (stranger, _) = listener(group, [2u8; 32]);

        stranger.announce(b"forged").expect("announce");
        while member.rejected() == 0 {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        member.announce(b"genuine").expect("announce");
        let (_, payload) = heard.recv().await.expect("member hears");
        assert_eq!(payload, b"genuine");
    })
    .await
    .expect("test timed out")
}
