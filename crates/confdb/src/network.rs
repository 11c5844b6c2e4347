//! Outgoing Raft RPCs: the [`RaftTransport`] trait that the node's RPC layer (or a test
//! harness) implements, and openraft's network factory over it, with JSON bodies.
//!
//! Must never: open sockets or choose links (the transport does), or retry by itself:
//! openraft decides when to retry, and backs off after [`TransportError::Unreachable`].

use crate::error::TransportError;
use crate::types::{RaftPeer, TypeConfig};
use keel_core::NodeId;
use openraft::error::{
    Infallible, InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::RPCOption;
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::{RaftNetwork, RaftNetworkFactory};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::sync::Arc;

/// RPC kinds carried by [`RaftTransport::raft_call`].
pub const KIND_APPEND: &str = "append";
pub const KIND_VOTE: &str = "vote";
pub const KIND_SNAPSHOT: &str = "snapshot";

/// Carries serialized Raft RPCs to peers. Implemented over the node's RPC links in
/// production and over an in-memory map in tests.
#[async_trait::async_trait]
pub trait RaftTransport: Send + Sync + 'static {
    /// Send one serialized Raft RPC (`kind` is "append", "vote" or "snapshot") to `target`, return the serialized reply.
    async fn raft_call(
        &self,
        target: NodeId,
        peer: &RaftPeer,
        kind: &'static str,
        body: Vec<u8>,
    ) -> Result<Vec<u8>, TransportError>;
}

/// openraft's network factory: one [`PeerClient`] per replication target.
#[derive(Clone)]
pub struct NetworkFactory {
    transport: Arc<dyn RaftTransport>,
}

impl NetworkFactory {
    pub fn new(transport: Arc<dyn RaftTransport>) -> NetworkFactory {
        NetworkFactory { transport }
    }
}

impl RaftNetworkFactory<TypeConfig> for NetworkFactory {
    type Network = PeerClient;

    async fn new_client(&mut self, target: NodeId, node: &RaftPeer) -> PeerClient {
        PeerClient {
            target,
            peer: node.clone(),
            transport: self.transport.clone(),
        }
    }
}

/// Sends RPCs to one peer.
pub struct PeerClient {
    target: NodeId,
    peer: RaftPeer,
    transport: Arc<dyn RaftTransport>,
}

type RpcResult<T, E> = Result<T, RPCError<NodeId, RaftPeer, RaftError<NodeId, E>>>;

impl PeerClient {
    /// Serializes `req`, sends it, and decodes the peer's `Result<Resp, RaftError<E>>`.
    async fn call<Req, Resp, E>(&self, kind: &'static str, req: &Req) -> RpcResult<Resp, E>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let body = serde_json::to_vec(req).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        let reply = self
            .transport
            .raft_call(self.target, &self.peer, kind, body)
            .await
            .map_err(|e| match e {
                TransportError::Unreachable(_) => RPCError::Unreachable(Unreachable::new(&e)),
                TransportError::Remote(_) => RPCError::Network(NetworkError::new(&e)),
            })?;
        let result: Result<Resp, RaftError<NodeId, E>> =
            serde_json::from_slice(&reply).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        result.map_err(|e| {
            RPCError::RemoteError(RemoteError::new_with_node(
                self.target,
                self.peer.clone(),
                e,
            ))
        })
    }
}

impl RaftNetwork<TypeConfig> for PeerClient {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        _option: RPCOption,
    ) -> RpcResult<AppendEntriesResponse<NodeId>, Infallible> {
        self.call(KIND_APPEND, &rpc).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        _option: RPCOption,
    ) -> RpcResult<InstallSnapshotResponse<NodeId>, InstallSnapshotError> {
        self.call(KIND_SNAPSHOT, &rpc).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        _option: RPCOption,
    ) -> RpcResult<VoteResponse<NodeId>, Infallible> {
        self.call(KIND_VOTE, &rpc).await
    }
}
