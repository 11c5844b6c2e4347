//! The data invariant of a [`Cluster`], checked at a quiescent point (after a heal and
//! a catch-up): every member of a storage set's committed in-sync list holds every
//! acknowledged, undeleted object of the set at its latest version; no object a file
//! refers to is missing on every member; every file the test was acknowledged reads
//! back byte-exact. The judgement over the stores is
//! [`keel_node::data_invariant::check`]; this file gathers its inputs straight from
//! each running node's store, and reads the files through a node's gateway path.
//!
//! Must never: change a node (it lists stores and reads files, nothing else), or be
//! called while faults are still in effect (an in-sync member that is down or cut off
//! is reported, rightly, as unreachable).

use crate::cluster::Cluster;
use crate::error::HarnessError;
use crate::violation::Violation;
use futures::TryStreamExt;
use keel_core::{NodeId, ObjectId, SetKind};
use keel_node::data_invariant::{self, SetSnapshot};
use keel_node::gateway::files;
use std::collections::BTreeMap;
use std::time::Duration;

/// A file whose put (or last change) the test was acknowledged, with its content.
#[derive(Clone, Debug)]
pub struct AckedFile {
    pub volume: String,
    pub path: String,
    pub data: Vec<u8>,
}

/// How long reading one file back may take.
const READ_WITHIN: Duration = Duration::from_secs(40);
/// Objects listed per store call.
const PAGE: usize = 1000;

impl Cluster {
    /// Checks the data invariant now; returns every violation found (none: it holds).
    /// Reads the files through node `via`.
    pub async fn check_data(
        &self,
        via: NodeId,
        acked: &[AckedFile],
    ) -> Result<Vec<Violation>, HarnessError> {
        let sets = self.data_snapshot().await?;
        let mut found: Vec<Violation> = data_invariant::check(&sets)
            .into_iter()
            .map(Violation::Data)
            .collect();
        for file in acked {
            if let Some(v) = self.read_back(via, file).await? {
                found.push(v);
            }
        }
        for v in &found {
            tracing::error!("data invariant violated: {v}");
        }
        Ok(found)
    }

    /// One snapshot per storage set, from the freshest replica's committed state and
    /// every running member's store.
    pub async fn data_snapshot(&self) -> Result<Vec<SetSnapshot>, HarnessError> {
        let (sets, referenced) = self.read(|s| {
            let sets: Vec<(String, Vec<NodeId>, Vec<NodeId>)> = s
                .sets
                .values()
                .filter(|x| x.kind == SetKind::Storage)
                .map(|x| (x.id.clone(), x.member_nodes(), x.in_sync.clone()))
                .collect();
            (sets, s.placement.clone())
        });
        let objects = match self.freshest() {
            Some(n) => n.db.read_dir(|ns| ns.referenced_objects()),
            None => Default::default(),
        };
        let mut out = vec![];
        for (set, members, in_sync) in sets {
            let acknowledged = objects
                .iter()
                .filter(|id| referenced.set_for(**id) == Some(&set))
                .copied()
                .collect();
            let mut holdings = BTreeMap::new();
            for n in &members {
                holdings.insert(*n, self.holdings(*n, &set).await?);
            }
            out.push(SetSnapshot {
                set,
                members,
                in_sync,
                holdings,
                acknowledged,
            });
        }
        Ok(out)
    }

    /// Every record of `set` in node `id`'s store; `None` if the node is not running
    /// or has no storage role.
    async fn holdings(
        &self,
        id: NodeId,
        set: &str,
    ) -> Result<Option<Vec<keel_store::ObjectStat>>, HarnessError> {
        let Ok(node) = self.node(id) else {
            return Ok(None);
        };
        let Some(store) = node.storage.as_ref().map(|s| s.store.clone()) else {
            return Ok(None);
        };
        let set = set.to_string();
        let listed = tokio::task::spawn_blocking(move || {
            let mut all = vec![];
            let mut after: Option<ObjectId> = None;
            loop {
                let page = store.list_set(&set, after, PAGE)?;
                after = page.last().map(|o| o.id);
                let full = page.len() == PAGE;
                all.extend(page);
                if !full {
                    return Ok::<_, keel_store::StoreError>(all);
                }
            }
        })
        .await
        .map_err(|e| HarnessError::Runtime(format!("listing a store: {e}")))?;
        Ok(listed.ok())
    }

    /// Reads `file` back through node `via`'s gateway path; a violation if it cannot
    /// be read or reads other bytes.
    async fn read_back(
        &self,
        via: NodeId,
        file: &AckedFile,
    ) -> Result<Option<Violation>, HarnessError> {
        let node = self.node(via)?;
        let (volume, path) = (file.volume.clone(), file.path.clone());
        let task = self.spawn_on(via, async move {
            let (inode, chunk_size) = node
                .db
                .read_dir(|ns| {
                    let inode = ns.lookup(&volume, &path)?;
                    let chunk = ns.volume(&volume).map_or(0, |v| v.chunk_size);
                    Ok::<_, keel_dir::DirError>((inode, chunk))
                })
                .map_err(|e| e.to_string())?;
            let size = inode.size;
            let pieces: Vec<bytes::Bytes> = files::read_range(node, inode, chunk_size, 0, size)
                .try_collect()
                .await
                .map_err(|e| e.to_string())?;
            Ok::<_, String>(pieces.concat())
        })?;
        let got = match tokio::time::timeout(READ_WITHIN, task).await {
            Err(_) => Err(format!("no answer within {READ_WITHIN:?}")),
            Ok(Err(e)) => Err(e.to_string()),
            Ok(Ok(r)) => r,
        };
        Ok(match got {
            Err(reason) => Some(Violation::Unreadable {
                path: file.path.clone(),
                reason,
            }),
            Ok(data) if data != file.data => Some(Violation::WrongRead {
                path: file.path.clone(),
                got: data.len(),
                want: file.data.len(),
            }),
            Ok(_) => None,
        })
    }
}
