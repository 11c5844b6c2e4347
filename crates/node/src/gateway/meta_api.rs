//! The namespace routes of the native HTTP API: stat, list (paged), mkdir, rename, and
//! volumes (list, create with synchronous or asynchronous replication).
//!
//! Must never: answer a change before the directory committed it, read the local
//! replica without the read barrier, or answer from a replica that may lag unless the
//! request allowed it (and then say so).

use super::api::{
    abs, authorized, barrier_for_change, barrier_for_read, check_raw, error_response,
    idempotency_key, respond, unless_stale, FsQuery,
};
use super::files;
use super::views::{EntryView, FileView, ListView, VolumeView};
use crate::node::{now_ms, NodeShared};
use crate::storage::DataError;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use keel_dir::{DirCommand, DirReply, FileKind};
use serde::Deserialize;
use std::sync::Arc;

pub(super) async fn stat_root(
    node: State<Arc<NodeShared>>,
    q: Query<FsQuery>,
    headers: HeaderMap,
) -> Response {
    stat(node, Path(String::new()), q, headers).await
}

pub(super) async fn stat(
    State(node): State<Arc<NodeShared>>,
    Path(path): Path<String>,
    Query(q): Query<FsQuery>,
    headers: HeaderMap,
) -> Response {
    let path = abs(&path);
    let barrier = async {
        authorized(&node, &headers)?;
        barrier_for_read(
            &node,
            &headers,
            &format!("reading the attributes of {path:?}"),
        )
        .await
    };
    let stale = match barrier.await {
        Ok(stale) => stale,
        Err(e) => return error_response(e),
    };
    let run = || {
        let inode = node.db.read_dir(|ns| ns.lookup(q.volume(), &path))?;
        Ok::<_, DataError>(FileView::of(&path, &inode, stale))
    };
    respond(
        run().map_err(|e| unless_stale(e, stale)),
        StatusCode::OK,
        stale,
    )
}

pub(super) async fn list_root(
    node: State<Arc<NodeShared>>,
    q: Query<FsQuery>,
    headers: HeaderMap,
) -> Response {
    list(node, Path(String::new()), q, headers).await
}

pub(super) async fn list(
    State(node): State<Arc<NodeShared>>,
    Path(path): Path<String>,
    Query(q): Query<FsQuery>,
    headers: HeaderMap,
) -> Response {
    let path = abs(&path);
    let barrier = async {
        authorized(&node, &headers)?;
        barrier_for_read(&node, &headers, &format!("listing {path:?}")).await
    };
    let stale = match barrier.await {
        Ok(stale) => stale,
        Err(e) => return error_response(e),
    };
    let run = || {
        let limit = q.limit.unwrap_or(1000).clamp(1, 10_000);
        let page = node
            .db
            .read_dir(|ns| ns.readdir(q.volume(), &path, q.after.as_deref(), limit))?;
        Ok::<_, DataError>(ListView {
            entries: page
                .entries
                .into_iter()
                .map(|e| EntryView {
                    name: e.name,
                    kind: if e.kind == FileKind::Dir {
                        "dir"
                    } else {
                        "file"
                    }
                    .into(),
                    size: e.size,
                    mtime: e.mtime,
                })
                .collect(),
            next: page.next,
            stale,
        })
    };
    respond(
        run().map_err(|e| unless_stale(e, stale)),
        StatusCode::OK,
        stale,
    )
}

pub(super) async fn mkdir(
    State(node): State<Arc<NodeShared>>,
    Path(path): Path<String>,
    Query(q): Query<FsQuery>,
    uri: axum::http::Uri,
    headers: HeaderMap,
) -> Response {
    let run = async {
        authorized(&node, &headers)?;
        check_raw(&uri)?;
        let token = idempotency_key(&headers)?;
        let path = abs(&path);
        barrier_for_change(&node, &format!("creating the directory {path:?}")).await?;
        if node.db.read_dir(|ns| ns.volume(q.volume()).is_none()) {
            files::ensure_volume(&node, q.volume()).await?;
        }
        let reply = node
            .write_dir(DirCommand::Mkdir {
                volume: q.volume().to_string(),
                path: path.clone(),
                mode: q.mode.unwrap_or(0o755),
                uid: 0,
                gid: 0,
                parents: q.parents,
                at: now_ms(),
                token,
            })
            .await??;
        match reply {
            DirReply::Inode(i) => Ok(FileView::of(&path, &i, false)),
            other => Err(DataError::Internal {
                reason: format!("unexpected directory reply {other:?}"),
            }),
        }
    };
    respond(run.await, StatusCode::CREATED, false)
}

pub(super) async fn rename(
    State(node): State<Arc<NodeShared>>,
    Path(path): Path<String>,
    Query(q): Query<FsQuery>,
    uri: axum::http::Uri,
    headers: HeaderMap,
) -> Response {
    let run = async {
        authorized(&node, &headers)?;
        check_raw(&uri)?;
        let token = idempotency_key(&headers)?;
        let from = abs(&path);
        barrier_for_change(&node, &format!("renaming {from:?}")).await?;
        let to = q.to.clone().ok_or_else(|| DataError::BadRequest {
            reason: "rename needs ?to=/new/path".into(),
        })?;
        let reply = node
            .write_dir(DirCommand::Rename {
                volume: q.volume().to_string(),
                from,
                to: to.clone(),
                at: now_ms(),
                token,
            })
            .await??;
        match reply {
            DirReply::Freed { inode, freed } => {
                files::delete_objects(&node, freed);
                inode
                    .map(|i| FileView::of(&to, &i, false))
                    .ok_or_else(|| DataError::Internal {
                        reason: "rename returned no inode".into(),
                    })
            }
            other => Err(DataError::Internal {
                reason: format!("unexpected directory reply {other:?}"),
            }),
        }
    };
    respond(run.await, StatusCode::OK, false)
}

#[derive(Deserialize, Default)]
pub struct VolumeQuery {
    #[serde(default)]
    replication: Option<String>,
    #[serde(default)]
    chunk_size: Option<u64>,
}

pub(super) async fn volumes(State(node): State<Arc<NodeShared>>, headers: HeaderMap) -> Response {
    let run = async {
        authorized(&node, &headers)?;
        let stale = barrier_for_read(&node, &headers, "listing the volumes").await?;
        let views = node
            .db
            .read_dir(|ns| ns.volumes().map(VolumeView::of).collect::<Vec<_>>());
        Ok::<_, DataError>((views, stale))
    };
    match run.await {
        Ok((views, stale)) => respond(Ok::<_, DataError>(views), StatusCode::OK, stale),
        Err(e) => error_response(e),
    }
}

pub(super) async fn create_volume(
    State(node): State<Arc<NodeShared>>,
    Path(name): Path<String>,
    Query(q): Query<VolumeQuery>,
    headers: HeaderMap,
) -> Response {
    let run = async {
        authorized(&node, &headers)?;
        files::require_control_plane(&node, "creating a volume")?;
        let replication = match q.replication.as_deref() {
            None | Some("sync") => keel_dir::Replication::Sync,
            Some("async") => keel_dir::Replication::Async,
            Some(other) => {
                return Err(DataError::BadRequest {
                    reason: format!("replication is sync or async, not {other:?}"),
                })
            }
        };
        let reply = node
            .write_dir(DirCommand::CreateVolume {
                name,
                chunk_size: q.chunk_size,
                replication,
                at: now_ms(),
            })
            .await??;
        match reply {
            DirReply::Volume(v) => Ok(VolumeView::of(&v)),
            other => Err(DataError::Internal {
                reason: format!("unexpected directory reply {other:?}"),
            }),
        }
    };
    respond(run.await, StatusCode::CREATED, false)
}
