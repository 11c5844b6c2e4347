//! The native HTTP API, on the node's HTTP port next to the admin API. Every call
//! needs an access key (`Authorization: Bearer ID:SECRET`, see `keel key create`),
//! checked by [`require_key`] before the handler runs: before any read barrier,
//! lookup or store call. No key or a wrong one: 401; a key whose scope (volumes, read
//! or read-write) does not cover the request: 403.
//!
//! - `PUT /v1/fs/{path}`: write a file (body = content). `Idempotency-Key: <32 hex>`
//!   makes a retried put apply once. Missing parent directories are created.
//! - `GET /v1/fs/{path}`: read a file; `Range: bytes=a-b` gives a 206.
//! - `DELETE /v1/fs/{path}`: remove a file or an empty directory.
//! - `GET /v1/stat/{path}`, `GET /v1/list/{path}?after=&limit=`,
//!   `POST /v1/mkdir/{path}[?parents=true]`, `POST /v1/rename/{path}?to=/new/path`.
//! - Names are stored exactly as given: any character but `/` and control characters
//!   (refused, with the rule named); `\\` is an ordinary character (`%5C` in a URL).
//! - `?volume=NAME` on any of them (default `default`).
//!
//! Errors are `{"code": "...", "message": "..."}` with the status of
//! [`DataError::http_status`].
//!
//! Every route that reads the directory (get, stat, list, and the changes that look a
//! path or a volume up before deciding: put, rm, mv, mkdir) first runs the read
//! barrier ([`NodeShared::read_barrier`]), so it sees every acknowledged change. A
//! member that cannot run it (its control plane is out of reach) answers 503
//! `no_control_plane` and the client tries another member. Only a read that carries
//! `x-keel-allow-stale: true` is then answered from the local replica anyway, marked
//! `x-keel-stale: true`.
//!
//! Changes a client may retry carry `Idempotency-Key: <1 to 32 hex digits>` (put, rm,
//! mv, mkdir): the directory remembers the answer under the key, so a retry on
//! another member after the first try committed is answered as applied.
//!
//! Must never: answer 2xx for a write that is not durable and committed, or answer a
//! read from a replica that may lag unless the request allowed it.

use super::files::{self, DEFAULT_VOLUME};
use crate::node::{now_ms, NodeShared};
use crate::storage::DataError;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures::StreamExt;
use keel_dir::{DirCommand, DirReply, FileKind};
use serde::Deserialize;
use std::sync::Arc;

use super::meta_api::{create_volume, list, list_root, mkdir, rename, stat, stat_root, volumes};
pub use super::views::{EntryView, ErrorView, FileView, ListView, VolumeView};

pub const STALE_HEADER: &str = "x-keel-stale";
/// A read that carries this header (`true`) may be answered from a directory replica
/// that may lag, marked [`STALE_HEADER`], when no read barrier can be had.
pub const ALLOW_STALE_HEADER: &str = "x-keel-allow-stale";
/// The idempotency key of a change (1 to 32 hex digits).
pub const IDEMPOTENCY_HEADER: &str = "idempotency-key";

pub fn router(node: Arc<NodeShared>) -> Router {
    Router::new()
        .route("/v1/fs/*path", get(get_file).put(put_file).delete(delete))
        .route("/v1/stat/*path", get(stat))
        .route("/v1/stat/", get(stat_root))
        .route("/v1/list/*path", get(list))
        .route("/v1/list/", get(list_root))
        .route("/v1/mkdir/*path", post(mkdir))
        .route("/v1/rename/*path", post(rename))
        .route("/v1/volumes", get(volumes))
        .route("/v1/volumes/:name", post(create_volume))
        // The root and an empty volume name match no route above: each gets its own
        // typed refusal, and any other path a typed `no_route`, never a bare 404.
        .route(
            "/v1/fs/",
            get(root_refused).put(root_refused).delete(root_refused),
        )
        .route("/v1/mkdir/", post(root_refused))
        .route("/v1/rename/", post(root_refused))
        .route("/v1/volumes/", post(empty_volume_name))
        .fallback(no_route)
        .layer(axum::extract::DefaultBodyLimit::disable())
        .route_layer(axum::middleware::from_fn_with_state(
            node.clone(),
            require_key,
        ))
        .with_state(node)
}

/// A change or read of the root directory that cannot be done: one typed line each.
async fn root_refused(
    State(node): State<Arc<NodeShared>>,
    method: axum::http::Method,
    uri: axum::http::Uri,
    headers: HeaderMap,
) -> Response {
    if let Err(e) = authorized(&node, &headers) {
        return error_response(e);
    }
    let root = "/".to_string();
    let error = if uri.path().starts_with("/v1/mkdir/") {
        keel_dir::DirError::Exists { path: root }
    } else if uri.path().starts_with("/v1/rename/") {
        keel_dir::DirError::InvalidArgument {
            path: root,
            reason: "the root directory cannot be moved".into(),
        }
    } else if method == axum::http::Method::DELETE {
        keel_dir::DirError::InvalidArgument {
            path: root,
            reason: "the root directory cannot be removed".into(),
        }
    } else {
        keel_dir::DirError::IsDir { path: root }
    };
    error_response(DataError::Dir { error })
}

/// `POST /v1/volumes/` (an empty volume name).
async fn empty_volume_name() -> Response {
    error_response(DataError::Dir {
        error: keel_dir::validate_volume_name("").err().unwrap_or(
            keel_dir::DirError::InvalidArgument {
                path: String::new(),
                reason: "empty volume name".into(),
            },
        ),
    })
}

/// Any path that is no route: a typed `no_route`, not an empty 404.
async fn no_route(method: axum::http::Method, uri: axum::http::Uri) -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(ErrorView {
            code: "no_route".into(),
            message: format!("no such API route: {method} {}", uri.path()),
        }),
    )
        .into_response()
}

/// The authentication layer of every data route: the access key, then its scope
/// (the volume the request names, or `default`; a change needs a read-write key),
/// all from the local replica. Nothing else runs for a request it refuses.
async fn require_key(
    State(node): State<Arc<NodeShared>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    use keel_core::Access;
    let refuse = |e: crate::auth::AuthError| {
        let status = StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::FORBIDDEN);
        let mut r = (
            status,
            Json(ErrorView {
                code: e.code().to_string(),
                message: e.message(),
            }),
        )
            .into_response();
        if status == StatusCode::UNAUTHORIZED {
            r.headers_mut()
                .insert("www-authenticate", HeaderValue::from_static("Bearer"));
        }
        r
    };
    let key = match crate::auth::data_key(&node, req.headers()) {
        Ok(k) => k,
        Err(e) => return refuse(e),
    };
    let access =
        if req.method() == axum::http::Method::GET || req.method() == axum::http::Method::HEAD {
            Access::Read
        } else {
            Access::Write
        };
    let path = req.uri().path();
    let volume = if let Some(name) = path.strip_prefix("/v1/volumes/") {
        Some(name.to_string())
    } else if path == "/v1/volumes" {
        None
    } else {
        let q: Query<FsQuery> = match Query::try_from_uri(req.uri()) {
            Ok(q) => q,
            Err(_) => Query(FsQuery::default()),
        };
        Some(q.volume().to_string())
    };
    match key.allows(volume.as_deref(), access) {
        Ok(()) => next.run(req).await,
        Err(keel_core::Denied::ReadOnly) => refuse(crate::auth::AuthError::Denied(format!(
            "key {} is read-only",
            key.id
        ))),
        Err(keel_core::Denied::Volume(v)) => refuse(crate::auth::AuthError::Denied(format!(
            "key {} may not use volume {v:?}",
            key.id
        ))),
    }
}

#[derive(Deserialize, Default)]
pub struct FsQuery {
    #[serde(default)]
    pub(super) volume: Option<String>,
    #[serde(default)]
    pub(super) after: Option<String>,
    #[serde(default)]
    pub(super) limit: Option<usize>,
    #[serde(default)]
    pub(super) to: Option<String>,
    #[serde(default)]
    pub(super) mode: Option<u32>,
    /// `mkdir`: create missing ancestors too, and answer an existing directory as
    /// created (`mkdir -p`).
    #[serde(default)]
    pub(super) parents: bool,
}

impl FsQuery {
    pub(super) fn volume(&self) -> &str {
        self.volume.as_deref().unwrap_or(DEFAULT_VOLUME)
    }
}

/// A "no such file" from a directory replica that may lag is no answer: the file may
/// exist (committed through a leader this node cannot reach). Say so, retryably.
pub(super) fn unless_stale(e: DataError, stale: bool) -> DataError {
    match e {
        DataError::Dir {
            error: keel_dir::DirError::NotFound { path },
        } if stale => DataError::Unavailable {
            what: format!("{path:?}"),
            tried: "the directory replica here may lag (control plane out of reach): \
                    it cannot tell whether the path exists"
                .into(),
        },
        other => other,
    }
}

/// An error as the API answers it: `{code, message}` with the error's status.
pub fn error_response(e: DataError) -> Response {
    let status = StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (
        status,
        Json(ErrorView {
            code: e.code(),
            message: e.to_string(),
        }),
    )
        .into_response()
}

/// The access key and its scope were checked by [`require_key`], the layer in front of
/// every route, before the handler ran: nothing is left to check here.
pub(super) fn authorized(_node: &NodeShared, _headers: &HeaderMap) -> Result<(), DataError> {
    Ok(())
}

/// The request's idempotency key, if it carries one.
pub(super) fn idempotency_key(headers: &HeaderMap) -> Result<Option<u128>, DataError> {
    let Some(v) = headers.get(IDEMPOTENCY_HEADER) else {
        return Ok(None);
    };
    v.to_str()
        .ok()
        .filter(|s| !s.is_empty() && s.len() <= 32)
        .and_then(|s| u128::from_str_radix(s, 16).ok())
        .map(Some)
        .ok_or_else(|| DataError::BadRequest {
            reason: "Idempotency-Key must be 1 to 32 hex digits".into(),
        })
}

/// How long a request keeps trying the read barrier before it is refused: a leader's
/// quorum confirmation can lapse for a moment under load, which is no reason to send
/// the client elsewhere.
const BARRIER_PATIENCE: std::time::Duration = std::time::Duration::from_millis(500);

/// The read barrier ([`NodeShared::read_barrier`]), tried again for up to
/// [`BARRIER_PATIENCE`].
async fn barrier(node: &NodeShared) -> bool {
    node.metrics.api_read_barriers.inc();
    let started = std::time::Instant::now();
    loop {
        if node.read_barrier().await {
            return true;
        }
        if started.elapsed() >= BARRIER_PATIENCE {
            return false;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Runs the read barrier before a change that reads the directory to decide; a
/// member that cannot run it refuses (503), so the client asks another member.
pub(crate) async fn barrier_for_change(node: &NodeShared, what: &str) -> Result<(), DataError> {
    if barrier(node).await {
        Ok(())
    } else {
        Err(DataError::NoControlPlane {
            what: what.to_string(),
        })
    }
}

/// Runs the read barrier before a read. `Ok(false)`: the replica is current.
/// `Ok(true)`: no barrier could be had and the request allows a stale answer.
/// Otherwise a 503 that names why, for the client to try another member.
pub(super) async fn barrier_for_read(
    node: &NodeShared,
    headers: &HeaderMap,
    what: &str,
) -> Result<bool, DataError> {
    if barrier(node).await {
        return Ok(false);
    }
    let allowed = headers
        .get(ALLOW_STALE_HEADER)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    if allowed {
        Ok(true)
    } else {
        Err(DataError::NoControlPlane {
            what: format!(
                "{what} from this member's directory replica, which may lag (no stale answer was allowed)"
            ),
        })
    }
}

pub(super) fn abs(path: &str) -> String {
    format!("/{}", path.trim_start_matches('/'))
}

/// Refuses a request whose raw path hides a separator in one component (`%2F`): the
/// decoded path would otherwise read as other components. A backslash (`%5C`) is an
/// ordinary character of a name; control characters (`%00`, `%0A`...) are refused by
/// the name rules ([`keel_dir::validate_name`]) with the rule named. The message names
/// the path as the user wrote it, never the internal URL.
pub(super) fn check_raw(uri: &axum::http::Uri) -> Result<(), DataError> {
    let raw = uri.path();
    if raw.to_ascii_lowercase().contains("%2f") {
        let path = raw
            .splitn(4, '/')
            .nth(3)
            .map(|p| format!("/{}", percent_decoded(p)))
            .unwrap_or_else(|| raw.to_string());
        return Err(DataError::Dir {
            error: keel_dir::DirError::InvalidName {
                path,
                reason: "'/' inside a name is not allowed".into(),
            },
        });
    }
    Ok(())
}

/// `%XX` escapes decoded (invalid UTF-8 shown lossily), for messages.
fn percent_decoded(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match (
            b[i],
            b.get(i + 1).copied().and_then(hex),
            b.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A handler's answer: its value as JSON with `status`, or its error; marked stale
/// when the directory replica that answered may lag.
pub(super) fn respond<T: serde::Serialize>(
    r: Result<T, DataError>,
    status: StatusCode,
    stale: bool,
) -> Response {
    let response = match r {
        Ok(v) => (status, Json(v)).into_response(),
        Err(e) => error_response(e),
    };
    stale_header(response, stale)
}

pub(super) fn stale_header(mut r: Response, stale: bool) -> Response {
    if stale {
        r.headers_mut()
            .insert(STALE_HEADER, HeaderValue::from_static("true"));
    }
    r
}

async fn put_file(
    State(node): State<Arc<NodeShared>>,
    Path(path): Path<String>,
    Query(q): Query<FsQuery>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let run = async {
        authorized(&node, &headers)?;
        check_raw(&uri)?;
        let token = idempotency_key(&headers)?;
        let path = abs(&path);
        let stream = body.into_data_stream().boxed();
        let inode = files::put(
            &node,
            q.volume(),
            &path,
            stream,
            token,
            q.mode.unwrap_or(0o644),
        )
        .await?;
        let replication = node
            .db
            .read_dir(|ns| ns.volume(q.volume()).map(|v| VolumeView::of(v).replication));
        Ok::<_, DataError>(FileView {
            replication,
            ..FileView::of(&path, &inode, false)
        })
    };
    respond(run.await, StatusCode::CREATED, false)
}

/// Parses `bytes=a-b`, `bytes=a-` or `bytes=-n` against the file `path` of `size`
/// bytes into `[start, end)` with `start <= end <= size`. Any u64 is accepted as a
/// bound (`bytes=0-18446744073709551615` is the whole file): the arithmetic is done so
/// that no bound can overflow.
pub fn parse_range(h: &str, path: &str, size: u64) -> Result<(u64, u64), DataError> {
    let bad = || DataError::BadRequest {
        reason: format!("unsupported Range {h:?} (one range: bytes=a-b, bytes=a- or bytes=-n)"),
    };
    let number = |s: &str| -> Result<u64, DataError> {
        // `u64::from_str` takes a leading '+': a Range bound is digits only.
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        s.parse().map_err(|_| bad())
    };
    let spec = h.strip_prefix("bytes=").ok_or_else(bad)?;
    let (a, b) = spec.split_once('-').ok_or_else(bad)?;
    let past_end = |offset: u64| DataError::PastEnd {
        path: path.to_string(),
        offset,
        size,
    };
    let (start, end) = match (a.trim(), b.trim()) {
        ("", n) => {
            // The last n bytes; a suffix of 0 bytes selects nothing (unsatisfiable).
            let n = number(n)?;
            if n == 0 && size > 0 {
                return Err(past_end(size));
            }
            (size - n.min(size), size)
        }
        (a, "") => (number(a)?, size),
        (a, b) => {
            let (a, b) = (number(a)?, number(b)?);
            if b < a {
                return Err(bad());
            }
            // `b` is inclusive: the end is `b + 1`, cut at the file's end (computed
            // as `min(b, size - 1) + 1`, which cannot overflow).
            (a, size.checked_sub(1).map_or(0, |last| b.min(last) + 1))
        }
    };
    if start >= size && size > 0 || (size == 0 && start > 0) {
        return Err(past_end(start));
    }
    Ok((start, end.max(start)))
}

async fn get_file(
    State(node): State<Arc<NodeShared>>,
    Path(path): Path<String>,
    Query(q): Query<FsQuery>,
    headers: HeaderMap,
) -> Response {
    let path = abs(&path);
    let barrier = async {
        authorized(&node, &headers)?;
        barrier_for_read(&node, &headers, &format!("reading {path:?}")).await
    };
    let stale = match barrier.await {
        Ok(stale) => stale,
        Err(e) => return error_response(e),
    };
    let run = || {
        let path = path.clone();
        let (inode, chunk_size) = node.db.read_dir(|ns| {
            let inode = ns.lookup(q.volume(), &path)?;
            let cs = ns
                .volume(q.volume())
                .map_or(keel_dir::DEFAULT_CHUNK_SIZE, |v| v.chunk_size);
            Ok::<_, keel_dir::DirError>((inode, cs))
        })?;
        if inode.kind == FileKind::Dir {
            return Err(DataError::Dir {
                error: keel_dir::DirError::IsDir { path },
            });
        }
        let range = match headers.get("range").and_then(|v| v.to_str().ok()) {
            Some(h) => Some(parse_range(h, &path, inode.size)?),
            None => None,
        };
        Ok::<_, DataError>((inode, chunk_size, range))
    };
    let (inode, chunk_size, range) = match run().map_err(|e| unless_stale(e, stale)) {
        Ok(x) => x,
        Err(e) => {
            let past_end = match &e {
                DataError::PastEnd { size, .. } => Some(*size),
                _ => None,
            };
            let mut r = error_response(e);
            if let Some(v) =
                past_end.and_then(|size| HeaderValue::from_str(&format!("bytes */{size}")).ok())
            {
                r.headers_mut().insert("content-range", v);
            }
            return stale_header(r, stale);
        }
    };
    let (start, end) = range.unwrap_or((0, inode.size));
    let size = inode.size;
    let mut stream = Box::pin(files::read_range(
        node.clone(),
        inode,
        chunk_size,
        start,
        end,
    ));
    // Read the first piece before answering, so a read that cannot be served gets an
    // error status rather than a broken body.
    let first = match stream.next().await {
        Some(Ok(b)) => Some(b),
        Some(Err(e)) => return stale_header(error_response(e), stale),
        None => None,
    };
    let rest = stream.map(|r| r.map_err(std::io::Error::other));
    let body = Body::from_stream(futures::stream::iter(first.map(Ok)).chain(rest));
    let mut r = Response::new(body);
    let h = r.headers_mut();
    h.insert("content-length", HeaderValue::from(end - start));
    h.insert("accept-ranges", HeaderValue::from_static("bytes"));
    // An empty range (only of an empty file) has no Content-Range: the whole (empty)
    // file is the answer.
    if range.is_some_and(|(a, b)| b > a) {
        if let Ok(v) =
            HeaderValue::from_str(&format!("bytes {start}-{}/{size}", end.saturating_sub(1)))
        {
            h.insert("content-range", v);
        }
        *r.status_mut() = StatusCode::PARTIAL_CONTENT;
    }
    stale_header(r, stale)
}

async fn delete(
    State(node): State<Arc<NodeShared>>,
    Path(path): Path<String>,
    Query(q): Query<FsQuery>,
    headers: HeaderMap,
) -> Response {
    let run = async {
        authorized(&node, &headers)?;
        let token = idempotency_key(&headers)?;
        let path = abs(&path);
        barrier_for_change(&node, &format!("removing {path:?}")).await?;
        let is_dir = node
            .db
            .read_dir(|ns| ns.lookup(q.volume(), &path).map(|i| i.is_dir()));
        let cmd = match is_dir {
            Ok(true) => DirCommand::Rmdir {
                volume: q.volume().to_string(),
                path: path.clone(),
                at: now_ms(),
                token,
            },
            Ok(false) => DirCommand::Unlink {
                volume: q.volume().to_string(),
                path: path.clone(),
                at: now_ms(),
                token,
            },
            // Gone: a retry of a removal that already committed (the directory
            // answers it from the token's memory), or not found.
            Err(keel_dir::DirError::NotFound { .. }) if token.is_some() => DirCommand::Unlink {
                volume: q.volume().to_string(),
                path: path.clone(),
                at: now_ms(),
                token,
            },
            Err(e) => return Err(e.into()),
        };
        if let DirReply::Freed { freed, .. } = node.write_dir(cmd).await?? {
            files::delete_objects(&node, freed);
        }
        Ok::<_, DataError>(())
    };
    match run.await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => error_response(e),
    }
}

#[cfg(test)]
mod tests {
    use super::parse_range;

    #[test]
    fn ranges_within_the_file() {
        assert_eq!(parse_range("bytes=0-9", "/f", 100).ok(), Some((0, 10)));
        assert_eq!(parse_range("bytes=90-", "/f", 100).ok(), Some((90, 100)));
        assert_eq!(parse_range("bytes=-30", "/f", 100).ok(), Some((70, 100)));
        // A range running over the end is cut at the end.
        assert_eq!(parse_range("bytes=95-200", "/f", 100).ok(), Some((95, 100)));
        // A suffix longer than the file is the whole file.
        assert_eq!(parse_range("bytes=-500", "/f", 100).ok(), Some((0, 100)));
    }

    #[test]
    fn a_range_past_the_end_is_past_end() {
        let e = parse_range("bytes=100-", "/f", 100).expect_err("past the end");
        assert_eq!(e.code(), "past_end");
        assert_eq!(e.http_status(), 416);
        let e = parse_range("bytes=1-", "/empty", 0).expect_err("past the end");
        assert_eq!(e.code(), "past_end");
    }

    #[test]
    fn malformed_ranges_are_bad_requests() {
        for h in [
            "0-9",
            "bytes=9-0",
            "bytes=a-b",
            "bytes=1-2,4-5",
            "bytes=",
            "items=0-1",
            "bytes=+1-2",
            "bytes=1-+2",
            "bytes=--1",
            "bytes=-",
            "bytes=0-18446744073709551616",
            "bytes=18446744073709551616-",
            "bytes=-18446744073709551616",
        ] {
            let e = parse_range(h, "/f", 100).expect_err(h);
            assert_eq!(e.code(), "bad_request", "{h}");
        }
    }

    #[test]
    fn hostile_bounds_do_not_overflow() {
        let max = u64::MAX;
        // The end at u64::MAX: the whole file, or its tail.
        let r = parse_range(&format!("bytes=0-{max}"), "/f", 100);
        assert_eq!(r.ok(), Some((0, 100)));
        let r = parse_range(&format!("bytes=99-{max}"), "/f", 100);
        assert_eq!(r.ok(), Some((99, 100)));
        // Both bounds at u64::MAX: past the end, not a wrapped-around range.
        let e = parse_range(&format!("bytes={max}-{max}"), "/f", 100).expect_err("past");
        assert_eq!(e.code(), "past_end");
        let e = parse_range(&format!("bytes={max}-"), "/f", 100).expect_err("past");
        assert_eq!(e.code(), "past_end");
        // A file whose size is u64::MAX (a sparse file can claim it).
        let r = parse_range(&format!("bytes=0-{max}"), "/f", max);
        assert_eq!(r.ok(), Some((0, max)));
        let r = parse_range(&format!("bytes={}-{max}", max - 1), "/f", max);
        assert_eq!(r.ok(), Some((max - 1, max)));
        let r = parse_range(&format!("bytes=-{max}"), "/f", max);
        assert_eq!(r.ok(), Some((0, max)));
        // An empty file: any range from 0 is the (empty) file, nothing more.
        let r = parse_range(&format!("bytes=0-{max}"), "/f", 0);
        assert_eq!(r.ok(), Some((0, 0)));
        let e = parse_range(&format!("bytes={max}-"), "/f", 0).expect_err("past");
        assert_eq!(e.code(), "past_end");
    }

    #[test]
    fn suffix_ranges() {
        let max = u64::MAX;
        assert_eq!(
            parse_range(&format!("bytes=-{max}"), "/f", 100).ok(),
            Some((0, 100))
        );
        assert_eq!(parse_range("bytes=-1", "/f", 100).ok(), Some((99, 100)));
        assert_eq!(parse_range("bytes=-100", "/f", 100).ok(), Some((0, 100)));
        assert_eq!(parse_range("bytes=-5", "/f", 0).ok(), Some((0, 0)));
        // A suffix of no bytes selects nothing: unsatisfiable.
        let e = parse_range("bytes=-0", "/f", 100).expect_err("empty suffix");
        assert_eq!(e.code(), "past_end");
    }

    #[test]
    fn every_parsed_range_lies_within_the_file() {
        let max = u64::MAX;
        let bounds = [0, 1, 2, 99, 100, 101, max / 2, max - 1, max];
        for size in [0, 1, 100, max - 1, max] {
            for a in bounds {
                for b in bounds {
                    for h in [
                        format!("bytes={a}-{b}"),
                        format!("bytes={a}-"),
                        format!("bytes=-{b}"),
                    ] {
                        if let Ok((start, end)) = parse_range(&h, "/f", size) {
                            assert!(start <= end && end <= size, "{h} of {size}: {start}..{end}");
                        }
                    }
                }
            }
        }
    }
}
