//! RPC over mutual TLS on real loopback sockets: trust, refusal, fallback, cut links.

mod common;

use std::time::Duration;

use common::*;
use keel_net::{ClusterSecret, LinkFaults, NetError, NodeIdentity, PeerAddrs, Transport};

async fn bounded<F: std::future::Future>(test: F) -> F::Output {
    tokio::time::timeout(TEST_TIMEOUT, test)
        .await
        .expect("test timed out")
}

#[tokio::test]
async fn members_of_one_cluster_call_each_other() {
    bounded(async {
        let secret = ClusterSecret::generate("alpha").expect("secret");
        let node = ServerNode::start(&secret, 1);
        let client = client(&secret, 1, LinkFaults::new());

        let (link, answer) = client
            .call(&node.addrs(), "echo", b"hi".to_vec(), CALL_TIMEOUT)
            .await
            .expect("call");
        assert_eq!((link.as_str(), answer.as_slice()), ("a", &b"a:hi"[..]));

        let answer = client
            .call_on_link(&node.addrs(), "b", "echo", b"yo".to_vec(), CALL_TIMEOUT)
            .await
            .expect("call on b");
        assert_eq!(answer, b"b:yo");

        let failed = client
            .call(&node.addrs(), "fail", Vec::new(), CALL_TIMEOUT)
            .await;
        assert_eq!(failed, Err(NetError::Remote("boom".into())));
        assert_eq!(node.calls(), 3, "a remote error is not retried on link b");
        node.server.shutdown().await;
    })
    .await
}

#[tokio::test]
async fn a_member_loaded_from_the_secret_file_is_trusted() {
    bounded(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("cluster.pem");
        let secret = ClusterSecret::generate("alpha").expect("secret");
        secret.save(&path).expect("save");
        let loaded = ClusterSecret::load(&path).expect("load");

        let node = ServerNode::start(&secret, 2);
        let client = client(&loaded, 2, LinkFaults::new());
        let (link, _) = client
            .call(&node.addrs(), "echo", Vec::new(), CALL_TIMEOUT)
            .await
            .expect("call with an identity issued from the loaded secret");
        assert_eq!(link, "a");
    })
    .await
}

#[tokio::test]
async fn a_client_without_a_certificate_of_our_cluster_is_refused() {
    bounded(async {
        let ours = ClusterSecret::generate("alpha").expect("secret");
        let theirs = ClusterSecret::generate("alpha").expect("secret");
        let node = ServerNode::start(&ours, 3);
        let url = format!(
            "https://{}/rpc/echo",
            node.server.local_addr("a").expect("a")
        );

        tracing::info!("--- a client that trusts our CA but presents another cluster's cert");
        let stranger = NodeIdentity::issue(&theirs, 9, &[ip(3, 11)]).expect("identity");
        let config = client_config_trusting(&ours, Some(&stranger));
        let result = post(config, &url).await;
        assert!(result.is_err(), "stranger was served: {result:?}");

        tracing::info!("--- a client that presents no certificate at all");
        let result = post(client_config_trusting(&ours, None), &url).await;
        assert!(result.is_err(), "anonymous client was served: {result:?}");

        tracing::info!("--- a member, for contrast, is served");
        let member = NodeIdentity::issue(&ours, 2, &[ip(3, 11)]).expect("identity");
        let result = post(client_config_trusting(&ours, Some(&member)), &url).await;
        assert_eq!(result.expect("member served"), b"a:".to_vec());
        assert_eq!(node.calls(), 1, "the handler only ever saw the member");
    })
    .await
}

/// A client config trusting `secret`'s CA, presenting `identity`'s certificate (whatever
/// CA signed it), or none.
fn client_config_trusting(
    secret: &ClusterSecret,
    identity: Option<&NodeIdentity>,
) -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(secret.ca_cert_der().clone()).expect("root");
    let builder = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(roots);
    let mut config = match identity {
        // Reuse the identity's own client config, but with our roots.
        Some(identity) => {
            let theirs = identity.client_config();
            let mut config = builder.with_no_client_auth();
            config.client_auth_cert_resolver = theirs.client_auth_cert_resolver.clone();
            config
        }
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config
}

async fn post(config: rustls::ClientConfig, url: &str) -> Result<Vec<u8>, String> {
    let client = reqwest::Client::builder()
        .use_preconfigured_tls(config)
        .no_proxy()
        .build()
        .map_err(|e| e.to_string())?;
    let response = client.post(url).send().await.map_err(|e| e.to_string())?;
    if !response.status().is_success() {
        return Err(format!("status {}", response.status()));
    }
    Ok(response.bytes().await.map_err(|e| e.to_string())?.to_vec())
}

#[tokio::test]
async fn a_server_of_another_cluster_is_not_trusted() {
    bounded(async {
        let ours = ClusterSecret::generate("alpha").expect("secret");
        let theirs = ClusterSecret::generate("alpha").expect("secret");
        let impostor = ServerNode::start(&theirs, 4);
        let client = client(&ours, 4, LinkFaults::new());

        let result = client
            .call_on_link(&impostor.addrs(), "a", "echo", Vec::new(), CALL_TIMEOUT)
            .await;
        assert!(matches!(result, Err(NetError::Tls(_))), "got {result:?}");
        assert_eq!(impostor.calls(), 0);
    })
    .await
}

#[tokio::test]
async fn a_port_with_no_listener_is_refused_quickly() {
    bounded(async {
        let secret = ClusterSecret::generate("alpha").expect("secret");
        let client = client(&secret, 5, LinkFaults::new());
        let gone = PeerAddrs(vec![
            ("a".into(), closed_port(ip(5, 1))),
            ("b".into(), closed_port(ip(5, 2))),
        ]);
        let started = std::time::Instant::now();
        let result = client.call(&gone, "echo", Vec::new(), CALL_TIMEOUT).await;
        assert_eq!(result, Err(NetError::Refused));
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "refusal took {:?}",
            started.elapsed()
        );
        let on_b = client
            .call_on_link(&gone, "b", "echo", Vec::new(), CALL_TIMEOUT)
            .await;
        assert_eq!(on_b, Err(NetError::Refused));
    })
    .await
}

#[tokio::test]
async fn a_call_falls_back_to_link_b_when_a_is_closed_or_cut() {
    bounded(async {
        let secret = ClusterSecret::generate("alpha").expect("secret");
        let node = ServerNode::start(&secret, 6);
        let faults = LinkFaults::new();
        let client = client(&secret, 6, faults.clone());

        tracing::info!("--- link a's port is closed");
        let b = node.server.local_addr("b").expect("b");
        let a_closed = PeerAddrs(vec![("a".into(), closed_port(ip(6, 1))), ("b".into(), b)]);
        let (link, answer) = client
            .call(&a_closed, "echo", b"x".to_vec(), CALL_TIMEOUT)
            .await
            .expect("fallback");
        assert_eq!((link.as_str(), answer.as_slice()), ("b", &b"b:x"[..]));

        tracing::info!("--- link a is cut locally");
        faults.cut("a");
        let (link, _) = client
            .call(&node.addrs(), "echo", Vec::new(), CALL_TIMEOUT)
            .await
            .expect("fallback");
        assert_eq!(link, "b");
        let on_a = client
            .call_on_link(&node.addrs(), "a", "echo", Vec::new(), CALL_TIMEOUT)
            .await;
        assert_eq!(on_a, Err(NetError::LinkDown("a".into())));

        tracing::info!("--- both links cut");
        faults.cut("b");
        let result = client
            .call(&node.addrs(), "echo", Vec::new(), CALL_TIMEOUT)
            .await;
        assert_eq!(result, Err(NetError::LinkDown("a".into())));
        assert_eq!(node.calls(), 2, "nothing was sent on a cut link");

        faults.restore("a");
        faults.restore("b");
        let (link, _) = client
            .call(&node.addrs(), "echo", Vec::new(), CALL_TIMEOUT)
            .await
            .expect("restored");
        assert_eq!(link, "a");
    })
    .await
}

#[tokio::test]
async fn a_link_cut_at_the_server_refuses_calls_arriving_on_it() {
    bounded(async {
        let secret = ClusterSecret::generate("alpha").expect("secret");
        let node = ServerNode::start(&secret, 7);
        let client = client(&secret, 7, LinkFaults::new());
        node.faults.cut("a");

        let on_a = client
            .call_on_link(&node.addrs(), "a", "echo", Vec::new(), CALL_TIMEOUT)
            .await;
        assert_eq!(on_a, Err(NetError::LinkDown("a".into())));
        let (link, _) = client
            .call(&node.addrs(), "echo", Vec::new(), CALL_TIMEOUT)
            .await
            .expect("fallback to b");
        assert_eq!(link, "b");
        assert_eq!(node.calls(), 1, "only the call on b reached the handler");
    })
    .await
}

#[tokio::test]
async fn after_shutdown_calls_are_refused() {
    bounded(async {
        let secret = ClusterSecret::generate("alpha").expect("secret");
        let node = ServerNode::start(&secret, 8);
        let addrs = node.addrs();
        let client = client(&secret, 8, LinkFaults::new());
        client
            .call(&addrs, "echo", Vec::new(), CALL_TIMEOUT)
            .await
            .expect("call before shutdown");
        node.server.shutdown().await;
        let result = client.call(&addrs, "echo", Vec::new(), CALL_TIMEOUT).await;
        assert_eq!(result, Err(NetError::Refused));
    })
    .await
}

#[tokio::test]
async fn a_hung_peer_times_out() {
    bounded(async {
        let secret = ClusterSecret::generate("alpha").expect("secret");
        let client = client(&secret, 9, LinkFaults::new());
        // Accepts TCP but never speaks TLS: a hung process.
        let hung = tokio::net::TcpListener::bind((ip(9, 1), 0))
            .await
            .expect("bind");
        let addrs = PeerAddrs(vec![("a".into(), hung.local_addr().expect("addr"))]);
        let result = client
            .call(&addrs, "echo", Vec::new(), Duration::from_millis(300))
            .await;
        assert_eq!(result, Err(NetError::Timeout));
    })
    .await
}

#[tokio::test]
async fn a_body_over_the_limit_is_a_refusal_never_a_failed_peer() {
    bounded(async {
        let secret = ClusterSecret::generate("alpha").expect("secret");
        let node = ServerNode::start(&secret, 4);
        let client = client(&secret, 4, LinkFaults::new());
        assert_eq!(
            keel_net::MAX_BODY_BYTES as u64,
            keel_core::limits::MAX_CHUNK_SIZE + keel_core::limits::RPC_ENVELOPE_MARGIN,
            "the RPC limit is the largest chunk plus the envelope margin"
        );
        let over = vec![7u8; keel_net::MAX_BODY_BYTES + 1];

        tracing::info!("--- the transport refuses to send it, on no link");
        let refused = client
            .call(&node.addrs(), "echo", over.clone(), CALL_TIMEOUT)
            .await;
        assert_eq!(
            refused,
            Err(NetError::TooLarge {
                bytes: over.len() as u64,
                limit: keel_net::MAX_BODY_BYTES as u64
            })
        );

        tracing::info!("--- a client that sends it anyway is answered 413");
        let member = NodeIdentity::issue(&secret, 2, &[ip(4, 11)]).expect("identity");
        let url = format!(
            "https://{}/rpc/echo",
            node.server.local_addr("a").expect("a")
        );
        let config = client_config_trusting(&secret, Some(&member));
        let reqwest_client = reqwest::Client::builder()
            .use_preconfigured_tls(config)
            .no_proxy()
            .build()
            .expect("client");
        let status = reqwest_client
            .post(url)
            .body(over)
            .send()
            .await
            .map(|r| r.status());
        assert_eq!(
            status.expect("an answer"),
            reqwest::StatusCode::PAYLOAD_TOO_LARGE
        );
        assert_eq!(node.calls(), 0, "the handler never saw it");

        tracing::info!("--- a body at the limit goes through");
        let at = vec![7u8; keel_net::MAX_BODY_BYTES];
        let (_, answer) = client
            .call(&node.addrs(), "echo", at, CALL_TIMEOUT)
            .await
            .expect("a body at the limit");
        assert_eq!(answer.len(), keel_net::MAX_BODY_BYTES + 2);
        node.server.shutdown().await;
    })
    .await
}
