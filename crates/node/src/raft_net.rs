//! The configuration database's network: Raft RPC over the node's transport, so it
//! inherits mutual TLS, link fallback and fault injection (and the harness's filters).

use crate::wire::method;
use keel_confdb::{RaftPeer, RaftTransport, TransportError};
use keel_core::NodeId;
use keel_net::{NetError, PeerAddrs, Transport};
use std::sync::Arc;
use std::time::Duration;

/// How long one snapshot segment may take over the wire (it carries up to
/// openraft's `snapshot_max_chunk_size`; the last one also waits for the install).
const SNAPSHOT_RPC_TIMEOUT: Duration = Duration::from_secs(60);

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
            _ => (method::RAFT_SNAPSHOT, SNAPSHOT_RPC_TIMEOUT),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_install_has_time_to_finish_before_openraft_gives_up() {
        let raft = keel_confdb::recommended_config("t");
        // openraft abandons the send (and the follower never catches up) after
        // `install_snapshot_timeout`; the transport must not cut it shorter, and it
        // must leave seconds, not openraft's default 200 ms, for a large directory.
        assert_eq!(
            raft.install_snapshot_timeout,
            keel_confdb::INSTALL_SNAPSHOT_TIMEOUT_MS
        );
        assert!(Duration::from_millis(raft.install_snapshot_timeout) >= Duration::from_secs(10));
        assert!(Duration::from_millis(raft.install_snapshot_timeout) < SNAPSHOT_RPC_TIMEOUT);
        assert!(raft.snapshot_max_chunk_size <= keel_net::MAX_BODY_BYTES as u64 / 2);
    }
}
