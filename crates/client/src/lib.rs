//! keel's client library, used by the CLI, the benchmarks and the tests.
//!
//! Owns: the cluster file (`cluster.json`), the list of member addresses, trying each
//! member in turn, and the admin API's requests. Must never assume which member leads:
//! any member answers, and changes are forwarded to the leader by the cluster.

mod cluster_file;
mod error;
pub mod failover;
mod files;
mod namespace;
mod retry;
mod storage;
pub mod verdict;
mod view;
pub use view::{choose_view, merge_capacity};

pub use cluster_file::{
    save_admin_token, ClientTimings, ClusterFile, LinkEntry, NfsEntry, NodeEntry, S3Entry,
};
pub use error::ClientError;
pub use files::GetOutcome;

use keel_node::admin_api::{
    AdminReply, AdminRequest, EventsPage, KeyView, LinkFaultRequest, NewKey, NewKeyRequest,
    NewToken, StatusView,
};
use keel_node::AdminError;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A handle on a running cluster, from its directory.
#[derive(Clone)]
pub struct Client {
    pub dir: PathBuf,
    pub file: ClusterFile,
    http: reqwest::Client,
    /// The admin token.
    token: Option<String>,
    /// The access key of data requests (`ID:SECRET`).
    key: Option<String>,
    /// The leader as last reported by a member.
    leader: std::sync::Arc<std::sync::Mutex<Option<u64>>>,
    /// Which data-serving member answered last (tried first next time).
    data_start: std::sync::Arc<std::sync::Mutex<usize>>,
    /// Reads (get, stat, list) may, as a last resort, be answered from a directory
    /// replica that may lag (see [`Client::allowing_stale`]).
    allow_stale: bool,
    /// How long to wait on a member that does not answer (see [`Patience`]).
    patience: Patience,
}

/// How long the client waits on a member that does not answer before it tries
/// another, derived from the cluster's detection floor (`fail_after_ms`), never a
/// fixed multi-second timeout: a paused process still completes the TCP handshake and
/// keeps its connections open, so only an answer proves it runs.
///
/// A request that made no progress (no answer, no byte sent or received) for `quiet`
/// has its member probed: a small request on the same port, where any HTTP answer
/// proves the process runs. A member that does not answer the probe within `probe`
/// is left, and the request is tried on the next member. A long transfer that keeps
/// moving is never cut short: the deadline is on progress, not on the whole request.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Patience {
    pub quiet: Duration,
    pub probe: Duration,
}

impl Patience {
    pub(crate) fn of(t: ClientTimings) -> Patience {
        let fail = t.fail_after_ms.max(50);
        Patience {
            quiet: Duration::from_millis(fail / 2),
            probe: Duration::from_millis(fail),
        }
    }
}

impl Client {
    /// Opens the cluster described by `DIR/cluster.json`.
    pub fn open(dir: &Path) -> Result<Client, ClientError> {
        let file = ClusterFile::load(dir)?;
        // The rotated token the operator keeps next to cluster.json, else the one
        // derived from the cluster secret (valid until the first rotation).
        let token = std::fs::read_to_string(dir.join(ClusterFile::ADMIN_TOKEN))
            .ok()
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty())
            .or_else(|| {
                keel_net::ClusterSecret::load(&file.secret_file)
                    .ok()
                    .map(|s| s.admin_token())
            });
        let key = file.key.clone();
        let ca = ca_cert(dir, &file)?;
        let tls = keel_net::ca_client_config(&ca).map_err(|e| ClientError::NoCluster {
            dir: dir.display().to_string(),
            reason: format!("TLS: {e}"),
        })?;
        // HTTPS only, trusting only the cluster CA.
        let http = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .https_only(true)
            .connect_timeout(Duration::from_millis(300))
            .no_proxy()
            .build()
            .map_err(|e| ClientError::Http(e.to_string()))?;
        Ok(Client {
            dir: dir.to_path_buf(),
            http,
            token,
            key,
            leader: Default::default(),
            data_start: Default::default(),
            allow_stale: false,
            patience: Patience::of(file.timings.unwrap_or_default()),
            file,
        })
    }

    /// Uses `key` (`ID:SECRET`) for data requests instead of the one in cluster.json
    /// (`None`: keep that one).
    pub fn with_key(mut self, key: Option<String>) -> Client {
        if key.is_some() {
            self.key = key;
        }
        self
    }

    /// The admin token this client uses, if it has one.
    pub fn admin_token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// Uses `token` as the admin token (`None`: keep the one found at open).
    pub fn with_admin_token(mut self, token: Option<String>) -> Client {
        if token.is_some() {
            self.token = token;
        }
        self
    }

    /// Creates an access key; the answer carries its secret (shown only this once).
    pub async fn create_key(&self, req: &NewKeyRequest) -> Result<NewKey, ClientError> {
        self.admin_call(reqwest::Method::POST, "/v1/keys", Some(req))
            .await
    }

    /// Every access key, without secrets.
    pub async fn list_keys(&self) -> Result<Vec<KeyView>, ClientError> {
        self.admin_call::<(), _>(reqwest::Method::GET, "/v1/keys", None)
            .await
    }

    /// Revokes an access key.
    pub async fn delete_key(&self, id: &str) -> Result<AdminReply, ClientError> {
        if id.is_empty() || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(ClientError::Http(format!("{id:?} is not a key id")));
        }
        self.admin_call::<(), _>(reqwest::Method::DELETE, &format!("/v1/keys/{id}"), None)
            .await
    }

    /// Makes a new admin token; the current one stops working.
    pub async fn rotate_admin_token(&self) -> Result<NewToken, ClientError> {
        self.admin_call::<(), _>(reqwest::Method::POST, "/v1/admin/token", None)
            .await
    }

    /// An admin request with the admin token, to the first member that answers.
    async fn admin_call<B: serde::Serialize, T: serde::de::DeserializeOwned>(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<T, ClientError> {
        let token = self.token.as_ref().ok_or(ClientError::NoSecret)?;
        let mut tried = vec![];
        for base in self.bases() {
            let mut req = self
                .http
                .request(method.clone(), format!("{base}{path}"))
                .bearer_auth(token)
                .timeout(Duration::from_secs(15));
            if let Some(b) = body {
                req = req.json(b);
            }
            let r = match self.answered_by(&base, req.send()).await {
                Ok(Ok(r)) => r,
                Ok(Err(e)) => {
                    tried.push(format!("{base}: {}", short(&e)));
                    continue;
                }
                Err(why) => {
                    tried.push(format!("{base}: {why}"));
                    continue;
                }
            };
            let status = r.status();
            if status.is_success() {
                return r.json().await.map_err(|e| ClientError::Http(e.to_string()));
            }
            let text = r.text().await.unwrap_or_default();
            match serde_json::from_str::<AdminError>(&text) {
                Ok(AdminError::NoLeader { message }) => {
                    tried.push(format!("{base}: no leader ({message})"))
                }
                Ok(e) => return Err(ClientError::Admin(e)),
                Err(_) => return Err(ClientError::Http(format!("HTTP {status}: {text}"))),
            }
        }
        Err(self.not_running(tried))
    }

    /// With `yes`, a read (get, stat, list) that no member reaching the control
    /// plane's majority answers within a grace period is answered by a member whose
    /// directory replica may lag, and says so (`stale`). Without it (the default)
    /// such a read fails with `no_control_plane`: an answer is always current.
    pub fn allowing_stale(mut self, yes: bool) -> Client {
        self.allow_stale = yes;
        self
    }

    /// Admin API base URLs, every member's, in file order.
    fn bases(&self) -> Vec<String> {
        self.file.nodes.iter().map(|n| base_url(&n.admin)).collect()
    }

    /// GETs `path` from the configuration database leader if this client knows it
    /// (a paused or lagging member may serve stale state), else from the first member
    /// that answers.
    async fn get<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        timeout: Duration,
    ) -> Result<T, ClientError> {
        let mut tried = vec![];
        let mut bases = self.bases();
        let leader = *self.leader.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = leader.and_then(|l| self.file.nodes.iter().find(|n| n.id == l)) {
            bases.insert(0, base_url(&n.admin));
        }
        for base in bases {
            let send = self
                .http
                .get(format!("{base}{path}"))
                .timeout(timeout)
                .send();
            match self.answered_by(&base, send).await {
                Ok(Ok(r)) if r.status().is_success() => {
                    return r.json().await.map_err(|e| ClientError::Http(e.to_string()));
                }
                Ok(Ok(r)) => tried.push(format!("{base}: HTTP {}", r.status())),
                Ok(Err(e)) => tried.push(format!("{base}: {}", short(&e))),
                Err(why) => tried.push(format!("{base}: {why}")),
            }
        }
        Err(self.not_running(tried))
    }

    pub(crate) fn not_running(&self, tried: Vec<String>) -> ClientError {
        ClientError::NotRunning {
            dir: self.dir.display().to_string(),
            tried: tried.join("; "),
        }
    }

    /// The cluster's status: the view of a member that reaches a quorum (the leader's
    /// own if it answered, else the most advanced such member's), with every member's
    /// own disk and object counts put together, and the verdict (`health`, `reasons`).
    ///
    /// A member cut off from the others, or just resumed from a pause, serves an old
    /// view; an isolated member may even have raised its Raft term while alone, so the
    /// term says nothing about freshness. Only a member that reaches a quorum answers
    /// for the cluster. If none does (after a few tries: a leader's quorum
    /// confirmation lapses for a moment under load), the most advanced view (highest
    /// applied index) is shown, marked `stale`, and the verdict is `HEALTH_ERR`.
    pub async fn status(&self) -> Result<StatusView, ClientError> {
        const TRIES: usize = 3;
        let mut views = vec![];
        for attempt in 1..=TRIES {
            views =
                futures::future::join_all(self.file.nodes.iter().map(|n| self.status_of(&n.admin)))
                    .await
                    .into_iter()
                    .flatten()
                    .collect::<Vec<StatusView>>();
            if views.is_empty() {
                let tried = self
                    .file
                    .nodes
                    .iter()
                    .map(|n| format!("{}: no answer", n.admin))
                    .collect();
                return Err(self.not_running(tried));
            }
            if views.iter().any(|v| v.quorum) || attempt == TRIES {
                break;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        let mut view = choose_view(&views).clone();
        view.stale = !view.quorum;
        view.unanswered = self
            .file
            .nodes
            .iter()
            .map(|n| n.id)
            .filter(|id| views.iter().all(|v| v.answered_by != *id))
            .collect();
        if !view.stale {
            self.remember_leader(view.leader);
        }
        merge_capacity(&mut view, &views);
        let v = verdict::verdict(&view);
        view.health = v.health.as_str().to_string();
        view.reasons = v.reasons;
        Ok(view)
    }

    /// One member's status, if it answers.
    async fn status_of(&self, admin: &str) -> Option<StatusView> {
        let url = format!("{}/v1/status", base_url(admin));
        match self
            .http
            .get(url)
            .timeout(Duration::from_millis(1500))
            .send()
            .await
        {
            Ok(r) if r.status().is_success() => r.json().await.ok(),
            _ => None,
        }
    }

    fn remember_leader(&self, leader: Option<u64>) {
        *self.leader.lock().unwrap_or_else(|e| e.into_inner()) = leader;
    }

    /// Events with `seq >= since`, waiting up to `wait` for one.
    pub async fn events(&self, since: u64, wait: Duration) -> Result<EventsPage, ClientError> {
        // Learn the leader once (status remembers it), so the events come from its log.
        if self
            .leader
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_none()
        {
            let _ = self.status().await;
        }
        let path = format!("/v1/events?since={since}&wait_ms={}", wait.as_millis());
        self.get(&path, wait + Duration::from_secs(3)).await
    }

    /// Sends a change to any member (it forwards to the leader), under one request id
    /// over every try: the leader remembers the id with the outcome, so a retry is
    /// never applied twice. When no try was confirmed and one may have reached the
    /// leader, the answer is [`ClientError::NotConfirmed`], not "not running".
    pub async fn admin(&self, req: &AdminRequest) -> Result<AdminReply, ClientError> {
        let id = format!("{:032x}", keel_core::ObjectId::random().0);
        let mut tried = vec![];
        let mut maybe_sent = false;
        let mut answered = false;
        for round in 0..ADMIN_ROUNDS {
            if round > 0 {
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            for base in self.bases() {
                match self.post_admin(&format!("{base}/v1/admin"), req, &id).await {
                    Ok(r) => return Ok(r),
                    Err(ClientError::Unreachable(e)) => {
                        // A connection refused reached nobody; anything else (a
                        // timeout, a broken answer) may have.
                        maybe_sent |= e != CONNECT_FAILED;
                        tried.push(format!("{base}: {e}"));
                    }
                    Err(ClientError::Admin(AdminError::NoLeader { message })) => {
                        answered = true;
                        maybe_sent |= !message.contains("election in progress")
                            && !message.contains("has no address");
                        tried.push(format!("{base}: no leader ({message})"))
                    }
                    Err(e) => return Err(e),
                }
                if tried.len() > 8 {
                    tried.remove(0);
                }
            }
        }
        if maybe_sent {
            return Err(ClientError::NotConfirmed {
                tried: tried.join("; "),
            });
        }
        if answered {
            // Members answered, but none reached a leader: nothing was applied.
            return Err(ClientError::Admin(AdminError::NoLeader {
                message: format!(
                    "no member reaches a majority, so nothing was applied ({})",
                    tried.join("; ")
                ),
            }));
        }
        Err(self.not_running(tried))
    }

    /// Cuts or restores one link of one node (dev clusters only).
    pub async fn fault_link(
        &self,
        node: u64,
        link: &str,
        up: bool,
    ) -> Result<AdminReply, ClientError> {
        let n = self.file.node(node)?;
        let req = LinkFaultRequest {
            link: link.to_string(),
            up,
        };
        self.post(&format!("{}/v1/fault/link", base_url(&n.admin)), &req)
            .await
    }

    async fn post<B: serde::Serialize>(
        &self,
        url: &str,
        body: &B,
    ) -> Result<AdminReply, ClientError> {
        self.post_admin(url, body, "").await
    }

    /// POSTs an admin body, with the request id header unless `id` is empty.
    async fn post_admin<B: serde::Serialize>(
        &self,
        url: &str,
        body: &B,
        id: &str,
    ) -> Result<AdminReply, ClientError> {
        let token = self.token.as_ref().ok_or(ClientError::NoSecret)?;
        let mut r = self.http.post(url);
        if !id.is_empty() {
            r = r.header(keel_node::admin::REQUEST_ID_HEADER, id);
        }
        let send = r
            .bearer_auth(token)
            .json(body)
            .timeout(Duration::from_secs(15))
            .send();
        let base = url.split('/').take(3).collect::<Vec<_>>().join("/");
        let r = self
            .answered_by(&base, send)
            .await
            .map_err(ClientError::Unreachable)?
            .map_err(|e| ClientError::Unreachable(short(&e)))?;
        if r.status().is_success() {
            return r.json().await.map_err(|e| ClientError::Http(e.to_string()));
        }
        let status = r.status();
        let text = r.text().await.unwrap_or_default();
        match serde_json::from_str::<AdminError>(&text) {
            Ok(e) => Err(ClientError::Admin(e)),
            Err(_) => Err(ClientError::Http(format!("HTTP {status}: {text}"))),
        }
    }
}

/// Rounds over every member an admin change is tried in.
const ADMIN_ROUNDS: usize = 3;

/// What [`short`] says of a connection that was never made.
const CONNECT_FAILED: &str = "connection refused or unreachable";
/// The base URL of a member's HTTP port (`ip:port`): HTTPS, always.
pub(crate) fn base_url(admin: &str) -> String {
    format!("https://{admin}")
}

/// The cluster CA certificate: `ca_cert` of cluster.json, else `DIR/ca.pem`, else the
/// certificate in the cluster secret.
fn ca_cert(
    dir: &Path,
    file: &ClusterFile,
) -> Result<rustls::pki_types::CertificateDer<'static>, ClientError> {
    let candidates = match &file.ca_cert {
        Some(p) => vec![dir.join(p)],
        None => vec![dir.join(ClusterFile::CA_CERT), dir.join(&file.secret_file)],
    };
    let mut why = vec![];
    for p in candidates {
        match keel_net::load_ca_cert(&p) {
            Ok(c) => return Ok(c),
            Err(e) => why.push(e.to_string()),
        }
    }
    Err(ClientError::NoCluster {
        dir: dir.display().to_string(),
        reason: format!(
            "no cluster CA certificate to verify members with ({})",
            why.join("; ")
        ),
    })
}

pub(crate) fn short(e: &reqwest::Error) -> String {
    if e.is_connect() {
        CONNECT_FAILED.into()
    } else if e.is_timeout() {
        "timed out".into()
    } else {
        e.to_string()
    }
}
