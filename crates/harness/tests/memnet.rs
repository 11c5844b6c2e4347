//! The in-memory network behaves like the real one where keel's logic can tell the
//! difference: a gone process refuses at once, a paused one times out, a cut cable
//! falls back to the next link after the connect timeout, a locally cut link is
//! skipped, datagrams come from the sender's heartbeat address and obey partitions.

use keel_harness::{wait_until, MemNet, MemTransport, NodeAddrs, NodeRuntime};
use keel_net::{Handler, LinkFaults, NetError, PeerAddrs, Transport, CONNECT_TIMEOUT};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Answers every call with the link it came in on; records datagrams.
#[derive(Default)]
struct Echo {
    datagrams: Mutex<Vec<(String, SocketAddr, Vec<u8>)>>,
}

#[async_trait::async_trait]
impl Handler for Echo {
    async fn on_call(&self, method: &str, link: &str, _body: Vec<u8>) -> Result<Vec<u8>, String> {
        match method {
            "fail" => Err("no".into()),
            _ => Ok(link.as_bytes().to_vec()),
        }
    }

    fn on_datagram(&self, link: &str, from: SocketAddr, payload: &[u8]) {
        let mut d = self.datagrams.lock().unwrap_or_else(|e| e.into_inner());
        d.push((link.to_string(), from, payload.to_vec()));
    }
}

fn ip(link: u8, node: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, link, 1, node))
}

fn addrs(node: u8) -> NodeAddrs {
    NodeAddrs {
        node: node.into(),
        links: vec![("a".into(), ip(0, node)), ("b".into(), ip(1, node))],
        rpc_port: 7100,
        heartbeat_port: 7101,
    }
}

fn rpc(node: u8) -> PeerAddrs {
    PeerAddrs(vec![
        ("a".into(), SocketAddr::new(ip(0, node), 7100)),
        ("b".into(), SocketAddr::new(ip(1, node), 7100)),
    ])
}

struct Pair {
    net: Arc<MemNet>,
    caller: MemTransport,
    caller_faults: LinkFaults,
    callee: Arc<Echo>,
    callee_rt: NodeRuntime,
    _caller_rt: NodeRuntime,
}

fn pair() -> anyhow::Result<Pair> {
    let net = MemNet::new();
    let (caller_rt, callee_rt) = (NodeRuntime::spawn(1)?, NodeRuntime::spawn(2)?);
    let caller_faults = LinkFaults::new();
    let caller = net.attach(
        &addrs(1),
        Arc::new(Echo::default()),
        caller_faults.clone(),
        caller_rt.handle(),
    );
    let callee = Arc::new(Echo::default());
    let h: Arc<dyn Handler> = callee.clone();
    let _ = net.attach(&addrs(2), h, LinkFaults::new(), callee_rt.handle());
    Ok(Pair {
        net,
        caller,
        caller_faults,
        callee,
        callee_rt,
        _caller_rt: caller_rt,
    })
}

const T: Duration = Duration::from_millis(1000);

#[tokio::test]
async fn calls_prefer_the_first_link_and_carry_the_handlers_answer() -> anyhow::Result<()> {
    let p = pair()?;
    let (link, answer) = p.caller.call(&rpc(2), "ping", vec![], T).await?;
    assert_eq!((link.as_str(), answer.as_slice()), ("a", b"a".as_slice()));
    let err = p.caller.call(&rpc(2), "fail", vec![], T).await.unwrap_err();
    assert_eq!(err, NetError::Remote("no".into()));
    let nobody = PeerAddrs(vec![("a".into(), SocketAddr::new(ip(0, 9), 7100))]);
    assert_eq!(
        p.caller.call(&nobody, "ping", vec![], T).await.unwrap_err(),
        NetError::Refused
    );
    Ok(())
}

#[tokio::test]
async fn a_crashed_process_refuses_at_once_and_a_paused_one_times_out() -> anyhow::Result<()> {
    let mut p = pair()?;
    p.net.update(|f| {
        f.crashed.insert(2);
    });
    let started = Instant::now();
    assert_eq!(
        p.caller.call(&rpc(2), "ping", vec![], T).await.unwrap_err(),
        NetError::Refused
    );
    assert!(started.elapsed() < CONNECT_TIMEOUT);

    p.net.update(|f| {
        f.crashed.remove(&2);
        f.paused.insert(2);
    });
    p.callee_rt.pause().await?;
    let started = Instant::now();
    assert_eq!(
        p.caller.call(&rpc(2), "ping", vec![], T).await.unwrap_err(),
        NetError::Timeout
    );
    assert!(started.elapsed() >= T);
    p.callee_rt.resume();
    Ok(())
}

#[tokio::test]
async fn a_cut_cable_falls_back_after_the_connect_timeout_a_local_cut_at_once() -> anyhow::Result<()>
{
    let p = pair()?;
    p.net.update(|f| {
        f.cut.insert((2, "a".into()));
    });
    let started = Instant::now();
    let (link, _) = p.caller.call(&rpc(2), "ping", vec![], T).await?;
    assert_eq!(link, "b");
    assert!(started.elapsed() >= CONNECT_TIMEOUT);

    p.net.update(|f| f.cut.clear());
    p.caller_faults.cut("a");
    let started = Instant::now();
    let (link, _) = p.caller.call(&rpc(2), "ping", vec![], T).await?;
    assert_eq!(link, "b");
    assert!(started.elapsed() < CONNECT_TIMEOUT);
    let on_a = p.caller.call_on_link(&rpc(2), "a", "ping", vec![], T).await;
    assert_eq!(on_a.unwrap_err(), NetError::LinkDown("a".into()));
    Ok(())
}

#[tokio::test]
async fn datagrams_come_from_the_heartbeat_address_and_obey_partitions() -> anyhow::Result<()> {
    let p = pair()?;
    let to = SocketAddr::new(ip(1, 2), 7101);
    p.caller.send_datagram("b", to, b"hello");
    wait_until("the datagram", T, || {
        !p.callee
            .datagrams
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_empty()
    })
    .await?;
    let got = p
        .callee
        .datagrams
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    assert_eq!(
        got,
        [(
            "b".to_string(),
            SocketAddr::new(ip(1, 1), 7101),
            b"hello".to_vec()
        )]
    );

    p.net.update(|f| f.partition = Some([1].into()));
    p.caller
        .send_datagram("a", SocketAddr::new(ip(0, 2), 7101), b"lost");
    let rpc_port = SocketAddr::new(ip(0, 2), 7100);
    p.net.update(|f| f.heal());
    p.caller
        .send_datagram("a", rpc_port, b"not a heartbeat port");
    p.caller
        .send_datagram("a", SocketAddr::new(ip(0, 2), 7101), b"after");
    wait_until("the second datagram", T, || {
        p.callee
            .datagrams
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .len()
            >= 2
    })
    .await?;
    let payloads: Vec<Vec<u8>> = p
        .callee
        .datagrams
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .map(|(_, _, d)| d.clone())
        .collect();
    assert_eq!(payloads, [b"hello".to_vec(), b"after".to_vec()]);
    Ok(())
}
