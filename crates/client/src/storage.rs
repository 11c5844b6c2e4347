//! Checking the data invariant of a running cluster from outside: the committed
//! in-sync lists from the leader's status, and every storage member's own objects
//! from its admin API (`GET /v1/storage/{set}/objects`), judged by
//! [`keel_node::data_invariant::check`].
//!
//! Owns: gathering. Must never: change anything in the cluster.

use crate::{short, Client, ClientError};
use keel_node::admin_api::StorageObjectsView;
use keel_node::data_invariant::{self, DataViolation, SetSnapshot};
use std::time::Duration;

impl Client {
    /// Node `node`'s own objects of storage set `set` (admin token needed).
    pub async fn storage_objects(
        &self,
        node: u64,
        set: &str,
    ) -> Result<StorageObjectsView, ClientError> {
        let n = self.file.node(node)?;
        let token = self.token.as_ref().ok_or(ClientError::NoSecret)?;
        let r = self
            .http
            .get(format!(
                "{}/v1/storage/{set}/objects",
                crate::base_url(&n.admin)
            ))
            .bearer_auth(token)
            .timeout(Duration::from_secs(30))
            .send()
            .await
            .map_err(|e| ClientError::Unreachable(short(&e)))?;
        if !r.status().is_success() {
            let status = r.status();
            let text = r.text().await.unwrap_or_default();
            return Err(ClientError::Http(format!("HTTP {status}: {text}")));
        }
        r.json().await.map_err(|e| ClientError::Http(e.to_string()))
    }

    /// One snapshot per storage set: its committed in-sync list (as the leader's
    /// status shows it) and what each member holds. The acknowledged objects are
    /// those a file refers to on any member's directory replica.
    pub async fn data_snapshot(&self) -> Result<Vec<SetSnapshot>, ClientError> {
        let status = self.status().await?;
        let mut out = vec![];
        for set in status.sets.iter().filter(|s| s.kind == "storage") {
            let members: Vec<u64> = set
                .members
                .iter()
                .filter_map(|m| match m {
                    keel_core::MemberRef::Node(n) => Some(*n),
                    _ => None,
                })
                .collect();
            let mut snap = SetSnapshot {
                set: set.id.clone(),
                members: members.clone(),
                in_sync: set.in_sync.clone(),
                ..Default::default()
            };
            let views = futures::future::join_all(
                members.iter().map(|n| self.storage_objects(*n, &set.id)),
            )
            .await;
            for (n, view) in members.iter().zip(views) {
                match view {
                    Ok(v) => {
                        snap.acknowledged.extend(v.referenced.iter().copied());
                        snap.holdings.insert(*n, Some(v.objects));
                    }
                    Err(_) => {
                        snap.holdings.insert(*n, None);
                    }
                }
            }
            out.push(snap);
        }
        Ok(out)
    }

    /// Gathers a snapshot and judges it: every violation of the data invariant.
    pub async fn check_data_invariant(&self) -> Result<Vec<DataViolation>, ClientError> {
        let sets = self.data_snapshot().await?;
        Ok(data_invariant::check(&sets))
    }
}
