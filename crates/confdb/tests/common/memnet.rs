//! An in-memory network of configuration database nodes whose transport can isolate a
//! node (drop every message to and from it).

use keel_confdb::{ConfDb, RaftPeer, RaftTransport, TransportError};
use keel_core::NodeId;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

/// The running nodes, and the nodes cut off from everyone.
#[derive(Default)]
pub struct MemNet {
    pub nodes: Mutex<HashMap<NodeId, ConfDb>>,
    pub isolated: Mutex<HashSet<NodeId>>,
}

impl MemNet {
    pub fn node(&self, id: NodeId) -> Option<ConfDb> {
        self.nodes.lock().expect("net lock").get(&id).cloned()
    }
    pub fn is_cut(&self, a: NodeId, b: NodeId) -> bool {
        let isolated = self.isolated.lock().expect("net lock");
        isolated.contains(&a) || isolated.contains(&b)
    }
    pub fn set_isolated(&self, id: NodeId, isolated: bool) {
        let mut set = self.isolated.lock().expect("net lock");
        if isolated {
            set.insert(id);
        } else {
            set.remove(&id);
        }
    }
}

/// One node's view of the in-memory network.
pub struct MemTransport {
    pub me: NodeId,
    pub net: Arc<MemNet>,
}

#[async_trait::async_trait]
impl RaftTransport for MemTransport {
    async fn raft_call(
        &self,
        target: NodeId,
        _peer: &RaftPeer,
        kind: &'static str,
        body: Vec<u8>,
    ) -> Result<Vec<u8>, TransportError> {
        let unreachable = || TransportError::Unreachable(format!("{} -> {target} cut", self.me));
        if self.net.is_cut(self.me, target) {
            return Err(unreachable());
        }
        let node = self
            .net
            .node(target)
            .ok_or_else(|| TransportError::Unreachable(format!("{target} is down")))?;
        let reply = node
            .handle_raft(kind, &body)
            .await
            .map_err(TransportError::Remote)?;
        // A partition that started during the call drops the reply too.
        if self.net.is_cut(self.me, target) {
            return Err(unreachable());
        }
        Ok(reply)
    }
}
