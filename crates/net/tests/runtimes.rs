//! Control calls and data calls are served on different runtimes: the server accepts
//! on one (a node's control runtime) and serves there only the connections of the
//! client's control pool; every other connection goes to the data runtime.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use keel_net::{
    serve_rpc_on, ClusterSecret, Handler, HttpsTransport, LinkFaults, NodeIdentity, PeerAddrs,
    Transport,
};

const CALL_TIMEOUT: Duration = Duration::from_secs(5);

fn ip(host: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 77, 40, host))
}

/// Answers every call with the name of the thread that served it.
struct WhereAmI;

#[async_trait]
impl Handler for WhereAmI {
    async fn on_call(&self, _method: &str, _link: &str, _body: Vec<u8>) -> Result<Vec<u8>, String> {
        Ok(std::thread::current()
            .name()
            .unwrap_or("")
            .as_bytes()
            .to_vec())
    }

    fn on_datagram(&self, _link: &str, _from: SocketAddr, _payload: &[u8]) {}
}

fn runtime(name: &str) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name(name)
        .enable_all()
        .build()
        .expect("runtime")
}

#[test]
fn control_connections_are_served_on_the_control_runtime_and_the_rest_on_the_data_one() {
    let secret = ClusterSecret::generate("alpha").expect("secret");
    let (control, data, caller) = (runtime("control-rt"), runtime("data-rt"), runtime("caller"));
    let server_identity = NodeIdentity::issue(&secret, 1, &[ip(1)]).expect("server identity");
    let server = {
        let _on = control.enter();
        serve_rpc_on(
            vec![("a".to_string(), SocketAddr::new(ip(1), 0))],
            server_identity.server_config(),
            Arc::new(WhereAmI),
            LinkFaults::new(),
            data.handle().clone(),
        )
        .expect("serve rpc")
    };
    let addrs = PeerAddrs(server.local_addrs().to_vec());
    let client_identity = NodeIdentity::issue(&secret, 2, &[ip(11)]).expect("client identity");
    let client = HttpsTransport::new(
        &client_identity,
        &[("a".to_string(), ip(11))],
        LinkFaults::new(),
    )
    .expect("client")
    .with_control_methods(&["vote"]);

    caller.block_on(async {
        for _ in 0..3 {
            let (_, served_by) = client
                .call(&addrs, "vote", vec![], CALL_TIMEOUT)
                .await
                .expect("control call");
            assert_eq!(String::from_utf8_lossy(&served_by), "control-rt");
            let (_, served_by) = client
                .call(&addrs, "replicate", vec![7; 100_000], CALL_TIMEOUT)
                .await
                .expect("data call");
            assert_eq!(String::from_utf8_lossy(&served_by), "data-rt");
        }
    });
    control.block_on(server.shutdown());
}
