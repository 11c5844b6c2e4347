//! Incoming internal RPC and datagrams, dispatched to the node.
//!
//! The handler exists before the node does (the transport needs it to start), so it
//! is a slot filled once the node is built; calls before that are refused.

use crate::admin;

use crate::heartbeat;
use crate::membership;
use crate::node::NodeShared;
use crate::wire::{self, method, ForwardedWrite, JoinRequest, Revoke, SelfTestReply};
use keel_net::Handler;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

#[derive(Default)]
pub struct NodeHandler {
    node: OnceLock<Arc<NodeShared>>,
}

impl NodeHandler {
    pub fn new() -> Arc<NodeHandler> {
        Arc::new(NodeHandler::default())
    }

    pub fn install(&self, node: Arc<NodeShared>) {
        let _ = self.node.set(node);
    }
}

#[async_trait::async_trait]
impl Handler for NodeHandler {
    async fn on_call(&self, m: &str, link: &str, body: Vec<u8>) -> Result<Vec<u8>, String> {
        let node = self.node.get().ok_or("node is starting")?;
        match m {
            method::RAFT_APPEND => {
                *node.last_append.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
                node.db.handle_raft("append", &body).await
            }
            method::RAFT_VOTE => node.db.handle_raft("vote", &body).await,
            method::RAFT_SNAPSHOT => node.db.handle_raft("snapshot", &body).await,
            method::PING => Ok(wire::encode(&wire::Pong {
                incarnation: node.incarnation(),
            })),
            method::JOIN => {
                let req: JoinRequest = wire::decode(&body)?;
                Ok(wire::encode(&membership::handle_join(node, req).await))
            }
            method::SELF_TEST => {
                let silent_link: String = wire::decode(&body)?;
                let now = Instant::now();
                let fail = std::time::Duration::from_millis(node.cfg.timings.fail_after_ms);
                let peers: Vec<u64> = node.db.read(|s| {
                    s.members
                        .keys()
                        .copied()
                        .filter(|id| *id != node.id())
                        .collect()
                });
                let hears_nobody = !peers.is_empty()
                    && peers
                        .iter()
                        .all(|p| node.tracker.silent_on(*p, &silent_link, now) >= fail);
                tracing::info!(link, silent_link, "self-test requested by the arbiter");
                Ok(wire::encode(&SelfTestReply {
                    node: node.id(),
                    health: node.health.current(),
                    link_silent_here: node.faults.is_cut(&silent_link) || hears_nobody,
                }))
            }
            method::REVOKE => {
                let r: Revoke = wire::decode(&body)?;
                // Acknowledge only once this node's Raft has persisted the new term: a
                // restarted process then refuses grants from older terms too.
                if node.db.current_term() < r.term {
                    return Ok(b"later".to_vec());
                }
                let keep = r.keep.filter(|(n, _)| *n == node.id()).map(|(_, e)| e);
                let mut holder = node.holder.lock().unwrap_or_else(|e| e.into_inner());
                // A dropped lease is released in the next heartbeat (the holder keeps it).
                let dropped = holder.revoke(r.term, &r.set, keep);
                let holds = holder.acting(&r.set, Instant::now()).is_some();
                drop(holder);
                if let Some(epoch) = dropped {
                    tracing::warn!(set = r.set, %epoch, term = r.term, "lease revoked by a new arbiter");
                }
                Ok(if holds {
                    b"holds".to_vec()
                } else {
                    b"clear".to_vec()
                })
            }
            method::ADMIN => {
                let fw: admin::ForwardedAdmin = wire::decode(&body)?;
                Ok(wire::encode(
                    &admin::execute_request(node, fw.req, fw.request_id).await,
                ))
            }
            method::WRITE => {
                let fw: ForwardedWrite = wire::decode(&body)?;
                let (response, index) = node
                    .db
                    .write_indexed(fw.command)
                    .await
                    .map_err(|e| e.to_string())?;
                Ok(wire::encode(&wire::ForwardedWriteReply { response, index }))
            }
            method::FOUND => {
                let found: crate::locator::Found = wire::decode(&body)?;
                node.locator.deliver(found);
                Ok(b"ok".to_vec())
            }
            method::READ_INDEX => {
                node.metrics.read_barriers.inc();
                let r = match node.db.raft().ensure_linearizable().await {
                    Ok(log_id) => Ok(log_id.map_or(0, |l| l.index)),
                    Err(e) => Err(e.to_string()),
                };
                Ok(wire::encode(&r))
            }
            method::WRITE_DIR => {
                let cmd: keel_dir::DirCommand = wire::decode(&body)?;
                let r = node.db.write_dir(cmd).await.map_err(|e| e.to_string());
                Ok(wire::encode(&r))
            }
            crate::storage::wire::METHOD => {
                let reply = match crate::storage::wire::decode(&body) {
                    Ok(req) => crate::storage::handle(node, req).await,
                    Err(e) => Err(e),
                };
                Ok(crate::storage::wire::encode_reply(reply))
            }
            crate::gateway_control::HEALTH_METHOD => {
                Ok(crate::gateway_control::answer_health(node))
            }
            other => Err(format!("unknown method {other:?}")),
        }
    }

    fn on_datagram(&self, link: &str, from: SocketAddr, payload: &[u8]) {
        if let Some(node) = self.node.get() {
            heartbeat::on_datagram(node, link, from, payload);
        }
    }
}
