//! The admin API: HTTP on the admin port. Reads (status, events, metrics) are open
//! unless the node's `[http]` configuration closes them; changes (and the access key
//! admin: `/v1/keys`, `/v1/admin/token`) need the cluster's admin token (see
//! [`crate::auth`]). Any member accepts a change and forwards it to the configuration
//! database leader, which executes it.
//!
//! Must never execute a change on a follower, answer a change without the token, or
//! show a key's secret anywhere but in the answer to the request that created it.

use crate::admin_api::{
    AdminReply, AdminRequest, EventsPage, KeyView, LinkFaultRequest, NewKey, NewKeyRequest,
    NewToken,
};
use crate::arbiter::{decide_and_write, decide_and_write_fenced};
use crate::error::AdminError;
use crate::membership::remove_from_raft;
use crate::node::{now_ms, NodeShared};
use crate::wire::{self, method};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use keel_core::{ClusterCommand, CredentialCommand, Event, MemberRef};
use keel_net::PeerAddrs;
use keel_policy::Input;
use serde::Deserialize;
use std::sync::Arc;
use std::time::Duration;

/// Objects asked for per page when looking for a live object of a set.
const IN_USE_PAGE: u32 = 64;

/// Refuses to delete a storage set that is in use: one the placement map (current or
/// previous) names, or one whose members still hold a live object of it (asked with
/// a storage `List`), or whose members cannot be asked. `--force` skips this.
async fn refuse_if_in_use(
    node: &Arc<NodeShared>,
    set: &keel_core::SetId,
) -> Result<(), AdminError> {
    let (record, placement) = node
        .db
        .read(|s| (s.sets.get(set).cloned(), s.placement.clone()));
    let Some(record) = record else {
        return Ok(()); // the write answers "unknown set"
    };
    let refuse = |why: String| {
        AdminError::bad(format!(
            "set {set} is in use: {why}; `keel set delete {set} --force` deletes it anyway"
        ))
    };
    let groups = placement.groups.iter().filter(|s| *s == set).count();
    if groups > 0 {
        return Err(refuse(format!(
            "the placement map (version {}) puts {groups} placement groups on it (move them first: drain its node, then `keel layout apply`)",
            placement.version
        )));
    }
    if placement.previous.iter().any(|s| s == set) {
        return Err(refuse(
            "the previous placement map still names it (a rebalance may still be moving its objects)"
                .into(),
        ));
    }
    if record.kind != keel_core::SetKind::Storage {
        return Ok(());
    }
    for member in &record.members {
        let MemberRef::Node(n) = member else { continue };
        match holds_a_live_object(node, *n, set).await {
            Ok(None) => {}
            Ok(Some(id)) => return Err(refuse(format!("node {n} still holds its object {id}"))),
            Err(e) => {
                return Err(refuse(format!(
                    "cannot tell whether node {n} still holds its objects ({e})"
                )))
            }
        }
    }
    Ok(())
}

/// A live (not deleted) object of `set` on node `n`, if it holds one.
async fn holds_a_live_object(
    node: &Arc<NodeShared>,
    n: keel_core::NodeId,
    set: &keel_core::SetId,
) -> Result<Option<keel_core::ObjectId>, String> {
    use crate::storage::wire::{StoreReply, StoreRequest};
    let mut after = None;
    loop {
        let req = StoreRequest::List {
            set: set.clone(),
            after,
            limit: IN_USE_PAGE,
        };
        let page = match crate::storage::call(node, n, req, Duration::from_secs(5)).await {
            Ok(StoreReply::List(page)) => page,
            Ok(_) => return Err("unexpected storage reply".into()),
            Err(e) => return Err(e.to_string()),
        };
        if let Some(live) = page.iter().find(|o| !o.deleted) {
            return Ok(Some(live.id));
        }
        if page.len() < IN_USE_PAGE as usize {
            return Ok(None);
        }
        after = page.last().map(|o| o.id);
    }
}

/// The header of `POST /v1/admin` that carries the request's client-made id (kept
/// over the client's retries): the leader remembers it with the outcome in the
/// configuration database (`ClusterState::requests`), so a retry is answered from
/// there and never applied twice.
pub const REQUEST_ID_HEADER: &str = "x-keel-request-id";

/// An admin request forwarded to the leader, with its id.
#[derive(serde::Serialize, serde::Deserialize)]
pub struct ForwardedAdmin {
    pub req: AdminRequest,
    pub request_id: Option<String>,
}

/// Request ids this node is executing now (a retry of one waits for its outcome
/// rather than being told it is unknown).
static IN_FLIGHT: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

/// How long a retry waits for the outcome of the same request still running here.
const IN_FLIGHT_WAIT: Duration = Duration::from_secs(15);

/// Executes an admin change here if this node leads, else forwards it to the leader.
pub async fn execute(node: &Arc<NodeShared>, req: AdminRequest) -> Result<AdminReply, AdminError> {
    execute_request(node, req, None).await
}

/// The remembered answer to request `id`: `None` if it was never received; its
/// outcome if it is done; "not confirmed" if its outcome is unknown (its executor
/// lost the leadership or died); a request still running here is waited for.
async fn remembered(node: &Arc<NodeShared>, id: &str) -> Option<Result<AdminReply, AdminError>> {
    let deadline = tokio::time::Instant::now() + IN_FLIGHT_WAIT;
    loop {
        let record = node.db.read(|s| s.request(id).cloned())?;
        match record.outcome {
            Some(Ok(message)) => {
                return Some(Ok(AdminReply {
                    message: format!("{message} (already applied: this was a retry)"),
                    epoch: None,
                }))
            }
            Some(Err(message)) => return Some(Err(AdminError::bad(message))),
            None => {
                let running = IN_FLIGHT
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .iter()
                    .any(|r| r == id);
                if !running || tokio::time::Instant::now() >= deadline {
                    return Some(Err(AdminError::NotConfirmed {
                        message: format!(
                            "request {id} was received, and whether it was applied is unknown"
                        ),
                    }));
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Executes an admin change, at most once per request id (see [`REQUEST_ID_HEADER`]).
pub async fn execute_request(
    node: &Arc<NodeShared>,
    req: AdminRequest,
    request_id: Option<String>,
) -> Result<AdminReply, AdminError> {
    if !node.is_leader() {
        return forward(node, req, request_id).await;
    }
    let dry = matches!(req, AdminRequest::ApplyLayout { dry_run: true, .. });
    let Some(id) = request_id.filter(|_| !dry) else {
        return execute_here(node, req).await;
    };
    if let Some(answer) = remembered(node, &id).await {
        return answer;
    }
    // Received: from here on a retry never executes it again.
    let received = node
        .db
        .write(ClusterCommand::RecordRequest {
            id: id.clone(),
            outcome: None,
            at: now_ms(),
        })
        .await
        .map_err(|e| AdminError::NoLeader {
            message: e.to_string(),
        })?;
    if received.into_result().is_err() {
        // Received meanwhile (a retry racing its first try).
        return remembered(node, &id).await.unwrap_or_else(|| {
            Err(AdminError::NotConfirmed {
                message: format!("request {id} was received twice at once"),
            })
        });
    }
    IN_FLIGHT
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(id.clone());
    let result = execute_here(node, req).await;
    let outcome = match &result {
        Ok(r) => Some(Ok(r.message.clone())),
        Err(AdminError::NoLeader { .. }) | Err(AdminError::NotConfirmed { .. }) => None,
        Err(e) => Some(Err(e.to_string())),
    };
    if let Some(outcome) = outcome {
        let _ = node
            .db
            .write(ClusterCommand::RecordRequest {
                id: id.clone(),
                outcome: Some(outcome),
                at: now_ms(),
            })
            .await;
    }
    IN_FLIGHT
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .retain(|r| *r != id);
    match result {
        // A write that failed may still commit: the outcome is unknown.
        Err(AdminError::NoLeader { message }) => Err(AdminError::NotConfirmed {
            message: format!("the leader lost its majority while applying it ({message})"),
        }),
        other => other,
    }
}

/// Sends an admin change to the configuration database leader.
async fn forward(
    node: &Arc<NodeShared>,
    req: AdminRequest,
    request_id: Option<String>,
) -> Result<AdminReply, AdminError> {
    let leader = node.db.leader().ok_or(AdminError::NoLeader {
        message: "election in progress".into(),
    })?;
    let addrs: PeerAddrs = node.addrs_of(leader).ok_or(AdminError::NoLeader {
        message: format!("leader {leader} has no address"),
    })?;
    let (_, reply) = node
        .net
        .call(
            &addrs,
            method::ADMIN,
            wire::encode(&ForwardedAdmin { req, request_id }),
            Duration::from_secs(10),
        )
        .await
        .map_err(|e| AdminError::NoLeader {
            message: e.to_string(),
        })?;
    wire::decode::<Result<AdminReply, AdminError>>(&reply).map_err(AdminError::internal)?
}

/// Executes an admin change on the leader.
async fn execute_here(node: &Arc<NodeShared>, req: AdminRequest) -> Result<AdminReply, AdminError> {
    let at = now_ms();
    let write = |cmd| async {
        node.db.write(cmd).await.map_err(|e| AdminError::NoLeader {
            message: e.to_string(),
        })
    };
    let reply = |message: String, epoch| Ok(AdminReply { message, epoch });
    match req {
        AdminRequest::ApplyLayout { replicas, dry_run } => {
            // An explicit --replicas also brings existing storage sets to that many
            // members; without it only new sets and the placement map change.
            let resize = replicas.is_some();
            let replicas = replicas.unwrap_or(node.db.read(|s| s.settings.storage_replicas));
            if !(1..=8).contains(&replicas) {
                return Err(AdminError::bad("replicas is 1 to 8"));
            }
            let _serial = node.decide_lock.lock().await;
            let state = node.snapshot();
            let planned = if resize {
                keel_policy::layout::plan_full(&state, replicas, at)
            } else {
                Ok(keel_policy::layout::LayoutPlan {
                    commands: keel_policy::layout::plan(&state, replicas, at),
                    changes: vec![],
                })
            };
            let settings_change = state.settings.storage_replicas != replicas;
            if dry_run {
                let mut lines = keel_policy::layout::describe(&state);
                let what = format!("`keel layout apply --replicas {replicas}`");
                match &planned {
                    Err(e) => lines.push(format!("{what} would be refused: {e}")),
                    Ok(p) if p.commands.is_empty() && !settings_change => {
                        lines.push(format!("{what} would change nothing"))
                    }
                    Ok(p) => {
                        lines.push(format!("{what} would:"));
                        if settings_change {
                            lines.push(format!(
                                "  set the replication factor of new sets from {} to {replicas}",
                                state.settings.storage_replicas
                            ));
                        }
                        let changes = if p.changes.is_empty() {
                            keel_policy::layout::plan_full(&state, replicas, at)
                                .map(|f| f.changes)
                                .unwrap_or_default()
                        } else {
                            p.changes.clone()
                        };
                        lines.extend(changes.into_iter().map(|c| format!("  {c}")));
                    }
                }
                return reply(lines.join("\n"), None);
            }
            let planned = planned.map_err(|e| AdminError::bad(e.to_string()))?;
            if settings_change {
                let mut settings = state.settings.clone();
                settings.storage_replicas = replicas;
                write(ClusterCommand::UpdateSettings { settings }).await?;
            }
            let n = planned.commands.len();
            for cmd in planned.commands {
                write(cmd)
                    .await?
                    .into_result()
                    .map_err(|error| AdminError::Refused { error })?;
            }
            let (sets, version) = node
                .db
                .read(|s| (s.placement.sets().len(), s.placement.version));
            reply(
                if n == 0 && !settings_change {
                    format!(
                        "layout unchanged: {sets} storage sets, placement map version {version}, replication factor {replicas}"
                    )
                } else if planned.changes.is_empty() {
                    format!("layout applied: {sets} storage sets, placement map version {version}, replication factor {replicas}")
                } else {
                    format!(
                        "layout applied: {}; {sets} storage sets, placement map version {version}",
                        planned.changes.join("; ")
                    )
                },
                None,
            )
        }
        AdminRequest::CreateSet { spec } => {
            let id = spec.id.clone();
            let epoch = write(ClusterCommand::CreateSet { spec, at })
                .await?
                .into_result()
                .map_err(|error| AdminError::Refused { error })?;
            reply(format!("set {id} created"), epoch)
        }
        AdminRequest::DeleteSet { set, force } => {
            if !force {
                refuse_if_in_use(node, &set).await?;
            }
            write(ClusterCommand::DeleteSet {
                set: set.clone(),
                at,
            })
            .await?
            .into_result()
            .map_err(|error| AdminError::Refused { error })?;
            reply(format!("set {set} deleted"), None)
        }
        AdminRequest::Takeover { set, to, epoch } => {
            let fence = epoch.map(|e| (set.clone(), e));
            decide_and_write_fenced(
                node,
                &Input::Takeover {
                    set: set.clone(),
                    to: to.clone(),
                },
                fence,
            )
            .await?;
            let epoch = node.db.read(|s| s.sets.get(&set).map(|s| s.epoch));
            reply(format!("set {set}: {to} is Primary"), epoch)
        }
        AdminRequest::Drain { node: n, force } => {
            let blockers = node.db.read(|s| keel_policy::layout::drain_blockers(s, n));
            if !blockers.is_empty() && !force {
                let sets: Vec<String> = blockers
                    .iter()
                    .map(|(set, why)| format!("{set} ({why})"))
                    .collect();
                return Err(AdminError::bad(format!(
                    "draining node {n} would leave {} without an eligible Primary: {}; \
                     `keel node drain {n} --force` drains it anyway",
                    if sets.len() == 1 { "a set" } else { "sets" },
                    sets.join(", ")
                )));
            }
            decide_and_write(node, &Input::Drain { node: n }).await?;
            reply(
                format!("node {n} drained: it holds no Primary or Secondary role"),
                None,
            )
        }
        AdminRequest::Undrain { node: n } => {
            decide_and_write(node, &Input::Undrain { node: n }).await?;
            reply(format!("node {n} undrained"), None)
        }
        AdminRequest::Clear { node: n } => {
            decide_and_write(node, &Input::Clear { node: n }).await?;
            reply(
                format!("node {n} cleared: it re-integrates as an Alternate when heard from"),
                None,
            )
        }
        AdminRequest::CreateKey { key } => {
            let id = key.id.clone();
            write(ClusterCommand::Credentials(CredentialCommand::CreateKey {
                key,
            }))
            .await?
            .into_result()
            .map_err(|error| AdminError::Refused { error })?;
            reply(format!("key {id} created"), None)
        }
        AdminRequest::DeleteKey { id } => {
            write(ClusterCommand::Credentials(CredentialCommand::DeleteKey {
                id: id.clone(),
            }))
            .await?
            .into_result()
            .map_err(|error| AdminError::Refused { error })?;
            reply(format!("key {id} deleted"), None)
        }
        AdminRequest::SetAdminToken { sha256 } => {
            write(ClusterCommand::Credentials(
                CredentialCommand::SetAdminToken { sha256, at },
            ))
            .await?
            .into_result()
            .map_err(|error| AdminError::Refused { error })?;
            reply("admin token rotated".into(), None)
        }
        AdminRequest::Remove { node: n } => {
            let in_set = node.db.read(|s| {
                if !s.members.contains_key(&n) {
                    return Err(AdminError::Refused {
                        error: keel_core::ClusterError::UnknownNode { node: n },
                    });
                }
                Ok(s.sets
                    .values()
                    .find(|set| set.has_member(&MemberRef::Node(n)))
                    .map(|set| set.id.clone()))
            })?;
            if let Some(set) = in_set {
                return Err(AdminError::Refused {
                    error: keel_core::ClusterError::StillInSet { node: n, set },
                });
            }
            remove_from_raft(node, n)
                .await
                .map_err(AdminError::internal)?;
            write(ClusterCommand::RemoveMember { node: n, at })
                .await?
                .into_result()
                .map_err(|error| AdminError::Refused { error })?;
            reply(format!("node {n} removed"), None)
        }
    }
}

pub fn router(node: Arc<NodeShared>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/v1/status", get(status))
        .route("/v1/events", get(events))
        .route("/v1/admin", post(admin))
        .route("/v1/fault/link", post(fault_link))
        .route("/v1/keys", get(list_keys).post(create_key))
        .route("/v1/keys/:id", axum::routing::delete(delete_key))
        .route("/v1/admin/token", post(rotate_token))
        .route(
            "/v1/storage/:set/objects",
            get(crate::admin_storage::objects),
        )
        .with_state(node)
}

/// This node's capacity (cached briefly; counted off the runtime).
async fn local_capacity(node: &Arc<NodeShared>) -> Option<crate::admin_api::CapacityView> {
    let n = node.clone();
    tokio::task::spawn_blocking(move || n.capacity.get(&n))
        .await
        .ok()
}

async fn metrics(State(node): State<Arc<NodeShared>>, headers: HeaderMap) -> Response {
    if !node.cfg.http.open_metrics && !authorized(&node, &headers) {
        return closed();
    }
    let capacity = local_capacity(&node).await;
    let acting = node
        .holder
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .held(std::time::Instant::now());
    let state = node.snapshot();
    node.metrics
        .refresh(node.id(), &state, capacity.as_ref(), &acting);
    (
        [(
            "content-type",
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        node.metrics.encode(),
    )
        .into_response()
}

/// A read the node's `[http]` configuration closed, asked without the admin token.
fn closed() -> Response {
    error_response(AdminError::Forbidden {
        message: "this read needs the admin token here (the node's [http] configuration)".into(),
    })
}

/// This node's view of the cluster, with whether it reaches a quorum (`quorum`) and
/// its own disk and object counts (`local`). The verdict (`health`, `reasons`,
/// `stale`) is the client's: it compares every member's answer.
async fn status(State(node): State<Arc<NodeShared>>, headers: HeaderMap) -> Response {
    if !node.cfg.http.open_status && !authorized(&node, &headers) {
        return closed();
    }
    let mut view = node.status();
    view.local = local_capacity(&node).await;
    view.cache = Some(node.metrics.cache_view());
    Json(view).into_response()
}

#[derive(Deserialize)]
struct EventsQuery {
    #[serde(default)]
    since: u64,
    #[serde(default)]
    wait_ms: u64,
    #[serde(default = "default_limit")]
    limit: usize,
}

fn default_limit() -> usize {
    1000
}

/// Events with `seq >= since`; waits up to `wait_ms` for one if there is none yet.
async fn events(
    State(node): State<Arc<NodeShared>>,
    headers: HeaderMap,
    Query(q): Query<EventsQuery>,
) -> Response {
    if !node.cfg.http.open_events && !authorized(&node, &headers) {
        return closed();
    }
    let deadline = tokio::time::Instant::now() + Duration::from_millis(q.wait_ms.min(30_000));
    let mut applied = node.db.applied_watch();
    loop {
        let page = node.db.read(|s| {
            let events: Vec<Event> = s
                .events
                .iter()
                .filter(|e| e.seq >= q.since)
                .take(q.limit.clamp(1, 10_000))
                .cloned()
                .collect();
            let next = events
                .last()
                .map(|e| e.seq + 1)
                .unwrap_or(q.since.max(s.events.front().map(|e| e.seq).unwrap_or(0)));
            EventsPage { events, next }
        });
        if !page.events.is_empty() || tokio::time::Instant::now() >= deadline {
            return Json(page).into_response();
        }
        if tokio::time::timeout_at(deadline, applied.changed())
            .await
            .is_err()
        {
            return Json(page).into_response();
        }
    }
}

/// Whether the request carries the admin token (compared in constant time).
pub(crate) fn authorized(node: &NodeShared, headers: &HeaderMap) -> bool {
    crate::auth::is_admin(node, headers)
}

/// The refusal of a request without the admin token (`None`: it carries it).
fn refuse_unless_admin(node: &NodeShared, headers: &HeaderMap) -> Option<Response> {
    (!authorized(node, headers)).then(|| {
        error_response(AdminError::Forbidden {
            message: "missing or wrong admin token".into(),
        })
    })
}

/// `POST /v1/keys`: draws a key here and has the leader record it; answers its secret.
async fn create_key(
    State(node): State<Arc<NodeShared>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if let Some(r) = refuse_unless_admin(&node, &headers) {
        return r;
    }
    let req: NewKeyRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return error_response(AdminError::bad(format!("malformed key request: {e}"))),
    };
    let key = crate::auth::new_key(req.name, req.volumes, req.read_only, now_ms());
    let answer = NewKey {
        key: KeyView::of(&key),
        secret: key.secret.clone(),
    };
    match execute(&node, AdminRequest::CreateKey { key }).await {
        Ok(_) => Json(answer).into_response(),
        Err(e) => error_response(e),
    }
}

/// `GET /v1/keys`: every key, without secrets.
async fn list_keys(State(node): State<Arc<NodeShared>>, headers: HeaderMap) -> Response {
    if let Some(r) = refuse_unless_admin(&node, &headers) {
        return r;
    }
    let keys: Vec<KeyView> = node.db.read(|s| {
        s.credentials
            .keys
            .values()
            .map(KeyView::of)
            .collect::<Vec<_>>()
    });
    Json(keys).into_response()
}

/// `DELETE /v1/keys/:id`: revokes a key.
async fn delete_key(
    State(node): State<Arc<NodeShared>>,
    headers: HeaderMap,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Response {
    if let Some(r) = refuse_unless_admin(&node, &headers) {
        return r;
    }
    match execute(&node, AdminRequest::DeleteKey { id }).await {
        Ok(r) => Json(r).into_response(),
        Err(e) => error_response(e),
    }
}

/// `POST /v1/admin/token`: a new admin token; the one presented stops working.
async fn rotate_token(State(node): State<Arc<NodeShared>>, headers: HeaderMap) -> Response {
    if let Some(r) = refuse_unless_admin(&node, &headers) {
        return r;
    }
    let token = crate::auth::new_admin_token();
    let sha256 = crate::auth::sha256_hex(token.as_bytes());
    match execute(&node, AdminRequest::SetAdminToken { sha256 }).await {
        Ok(_) => Json(NewToken { token }).into_response(),
        Err(e) => error_response(e),
    }
}

pub(crate) fn error_response(e: AdminError) -> Response {
    let status = StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, Json(e)).into_response()
}

async fn admin(
    State(node): State<Arc<NodeShared>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if !authorized(&node, &headers) {
        return error_response(AdminError::Forbidden {
            message: "missing or wrong admin token".into(),
        });
    }
    let req: AdminRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return error_response(AdminError::bad(format!("malformed admin request: {e}"))),
    };
    let request_id = headers
        .get(REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 64)
        .map(str::to_string);
    match execute_request(&node, req, request_id).await {
        Ok(r) => Json(r).into_response(),
        Err(e) => error_response(e),
    }
}

async fn fault_link(
    State(node): State<Arc<NodeShared>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if !authorized(&node, &headers) {
        return error_response(AdminError::Forbidden {
            message: "missing or wrong admin token".into(),
        });
    }
    if !node.cfg.dev.faults {
        return error_response(AdminError::Forbidden {
            message: "fault injection is only for clusters started by `keel dev up`".into(),
        });
    }
    let req: LinkFaultRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return error_response(AdminError::bad(format!("malformed fault request: {e}"))),
    };
    if node.cfg.links.iter().all(|l| l.name != req.link) {
        return error_response(AdminError::bad(format!(
            "node {} has no link {:?}",
            node.id(),
            req.link
        )));
    }
    if req.up {
        node.faults.restore(&req.link);
    } else {
        node.faults.cut(&req.link);
    }
    let what = if req.up { "restored" } else { "cut" };
    tracing::warn!(link = req.link, "dev fault: link {what}");
    Json(AdminReply {
        message: format!("node {}: link {} {what}", node.id(), req.link),
        epoch: None,
    })
    .into_response()
}
