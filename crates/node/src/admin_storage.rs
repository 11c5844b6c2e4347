//! A read-only admin endpoint for checking the data invariant from outside a node:
//! `GET /v1/storage/{set}/objects` lists this node's objects of a set with their
//! versions, and the objects of that set the files of its directory replica refer to.
//! Authenticated with the admin token, as every admin call that is not a plain status.
//!
//! Owns: that one query. Must never: change anything (no store write, no Raft write),
//! or read another node's disk.

use crate::admin_api::StorageObjectsView;
use crate::error::AdminError;
use crate::node::NodeShared;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Json;
use keel_core::ObjectId;
use std::sync::Arc;

/// Objects listed per store call.
const PAGE: usize = 1000;

/// `GET /v1/storage/{set}/objects`.
pub async fn objects(
    State(node): State<Arc<NodeShared>>,
    Path(set): Path<String>,
    headers: HeaderMap,
) -> Response {
    if !crate::admin::authorized(&node, &headers) {
        return crate::admin::error_response(AdminError::Forbidden {
            message: "missing or wrong admin token".into(),
        });
    }
    match list(&node, set).await {
        Ok(view) => Json(view).into_response(),
        Err(e) => crate::admin::error_response(e),
    }
}

async fn list(node: &Arc<NodeShared>, set: String) -> Result<StorageObjectsView, AdminError> {
    let store = node
        .storage
        .as_ref()
        .ok_or_else(|| AdminError::bad(format!("node {} has no storage role", node.id())))?
        .store
        .clone();
    let mut objects = vec![];
    let mut after: Option<ObjectId> = None;
    loop {
        let (s, wanted) = (store.clone(), set.clone());
        let page = tokio::task::spawn_blocking(move || s.list_set(&wanted, after, PAGE))
            .await
            .map_err(|e| AdminError::internal(e.to_string()))?
            .map_err(|e| AdminError::internal(e.to_string()))?;
        after = page.last().map(|o| o.id);
        let full = page.len() == PAGE;
        objects.extend(page);
        if !full {
            break;
        }
    }
    let fresh = node.read_barrier().await;
    let referenced: Vec<ObjectId> = {
        let all = node.db.read_dir(|ns| ns.referenced_objects());
        node.db.read(|s| {
            all.into_iter()
                .filter(|id| s.placement.set_for(*id) == Some(&set))
                .collect()
        })
    };
    Ok(StorageObjectsView {
        node: node.id(),
        set,
        objects,
        referenced,
        fresh,
    })
}
