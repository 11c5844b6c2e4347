//! Incoming Raft RPCs: decodes a call received by the node's RPC layer, hands it to the
//! local Raft node, and encodes its result, the counterpart of [`crate::network`].
//!
//! Must never: authenticate or route (the RPC layer does), or turn a Raft-level error
//! into a transport error: the `Result` travels back to the caller as it is.

use crate::admission::AdmissionState;
use crate::db::ConfDb;
use crate::network::{KIND_APPEND, KIND_SNAPSHOT, KIND_VOTE};
use crate::types::TypeConfig;
use openraft::raft::{AppendEntriesRequest, InstallSnapshotRequest, VoteRequest};
use serde::de::DeserializeOwned;
use serde::Serialize;

fn decode<T: DeserializeOwned>(kind: &str, body: &[u8]) -> Result<T, String> {
    serde_json::from_slice(body).map_err(|e| format!("malformed Raft {kind} request: {e}"))
}

fn encode<T: Serialize>(kind: &str, reply: &T) -> Result<Vec<u8>, String> {
    serde_json::to_vec(reply).map_err(|e| format!("cannot encode Raft {kind} reply: {e}"))
}

impl ConfDb {
    /// Handles one Raft RPC sent by a peer's [`crate::RaftTransport`]: `kind` is
    /// "append", "vote" or "snapshot", `body` its JSON request. Returns the JSON of the
    /// Raft node's `Result`, or an error if the request could not be decoded.
    pub async fn handle_raft(&self, kind: &str, body: &[u8]) -> Result<Vec<u8>, String> {
        let raft = self.raft();
        match kind {
            KIND_APPEND => {
                let req: AppendEntriesRequest<TypeConfig> = decode(kind, body)?;
                let unadmitted = self.admission() != AdmissionState::Admitted;
                if unadmitted {
                    self.note_leader_commit(req.leader_commit.map_or(0, |c| c.index));
                }
                let reply = encode(kind, &raft.append_entries(req).await);
                if unadmitted {
                    if let Err(e) = self.admit_if_caught_up(false).await {
                        tracing::warn!("cannot record the admission of this store: {e}");
                    }
                }
                reply
            }
            KIND_VOTE => {
                // A new store has neither the log nor the vote it may have given: a
                // vote from it could elect a leader missing committed entries.
                if self.admission() != AdmissionState::Admitted {
                    return Err(format!(
                        "node {} refuses to vote: its configuration database store is new and has not caught up with the cluster",
                        self.node_id()
                    ));
                }
                let req: VoteRequest<u64> = decode(kind, body)?;
                encode(kind, &raft.vote(req).await)
            }
            KIND_SNAPSHOT => {
                let req: InstallSnapshotRequest<TypeConfig> = decode(kind, body)?;
                encode(kind, &raft.install_snapshot(req).await)
            }
            other => Err(format!("unknown Raft RPC kind {other:?}")),
        }
    }
}
