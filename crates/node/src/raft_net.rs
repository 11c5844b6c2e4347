//! The configuration database's network: Raft RPC over the node's transport, so it
//! inherits mutual TLS, link fallback and fault injection (and the harness's filters).

use crate::wire::method;
use keel_confdb::{RaftPeer, RaftTransport, TransportError};
use keel_core::NodeId;
use keel_net::{NetError, PeerAddrs, Transport};
use std::sync::Arc;
use std::time::Duration;

pub struct NetRaftTransport {
    pub net: Arc<dyn Transport>,
}

#[async_trait::async_trait]
impl RaftTransport for NetRaftTransport {
    async fn raft_call(
        &self,
        _target: NodeId,
        peer: &RaftPeer,
        kind: &'static str,
        body: Vec<u8>,
    ) -> Result<Vec<u8>, TransportError> {
        let (m, timeout) = match kind {
            "append" => (method::RAFT_APPEND, Duration::from_secs(2)),
            "vote" => (method::RAFT_VOTE, Duration::from_millis(500)),
            _ => (method::RAFT_SNAPSHOT, Duration::from_secs(60)),
        };
        match self
            .net
            .call(&PeerAddrs(peer.rpc.clone()), m, body, timeout)
            .await
        {
            Ok((_, reply)) => Ok(reply),
            Err(NetError::Remote(e)) => Err(TransportError::Remote(e)),
            Err(e) => Err(TransportError::Unreachable(e.to_string())),
        }
    }
}
