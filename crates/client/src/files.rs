//! Files through the native HTTP API: put, get, list, stat, mkdir, rename, remove,
//! with retries over every member that serves data, and an idempotency key per put
//! so that a retried put is applied once.
//!
//! Must never: report a put as done before a member answered 201 (durable on every
//! in-sync replica and committed in the directory), or leave a half-written local
//! file after a failed get (it downloads to a temporary file and renames).

use crate::{short, Client, ClientError};
use futures::StreamExt;
use keel_node::gateway::api::{EntryView, ErrorView, FileView, ListView, VolumeView, STALE_HEADER};
use std::path::Path;
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;

/// How long an operation keeps retrying across members (a failover takes well under
/// this).
const RETRY_DEADLINE: Duration = Duration::from_secs(30);
/// A piece of a streamed upload.
const UPLOAD_PIECE: usize = 256 * 1024;

/// What a get reports besides the bytes.
#[derive(Clone, Debug, PartialEq)]
pub struct GetOutcome {
    pub bytes: u64,
    /// Served from a directory replica that may lag (the control plane was out of
    /// reach): the data may not be the newest.
    pub stale: bool,
}

/// How long a client keeps retrying while the cluster answers that its control plane
/// is out of reach: long enough for an election, short of hanging when a majority is
/// really lost.
const CONTROL_PLANE_GRACE: Duration = Duration::from_secs(5);

/// After this many rounds in which no member accepted a connection at all, the
/// cluster is not running: say so instead of waiting out the retry deadline.
const DOWN_ROUNDS: u32 = 3;

/// What to do after one attempt against one member.
enum Attempt<T> {
    Done(T),
    /// Try another member (a failover in progress: 503, a broken transfer).
    Next(String),
    /// The member did not accept a connection: try another.
    Down(String),
    /// The member answered that the control plane is out of reach: try another, for
    /// a while.
    NoControlPlane(String),
}

impl<T> Attempt<T> {
    /// A retry outcome as an outcome of another type (it carries no value).
    fn retype<U>(self) -> Attempt<U> {
        match self {
            Attempt::Next(w) => Attempt::Next(w),
            Attempt::Down(w) => Attempt::Down(w),
            Attempt::NoControlPlane(w) => Attempt::NoControlPlane(w),
            Attempt::Done(_) => Attempt::Next("unexpected success".into()),
        }
    }
}

impl Client {
    /// Base URLs of members that serve the native API (storage or gateway role).
    fn data_bases(&self) -> Vec<String> {
        let mut bases: Vec<String> = self
            .file
            .nodes
            .iter()
            .filter(|n| n.roles.iter().any(|r| r == "storage" || r == "gateway"))
            .map(|n| format!("http://{}", n.admin))
            .collect();
        let start = *self.data_start.lock().unwrap_or_else(|e| e.into_inner());
        if !bases.is_empty() {
            let k = start % bases.len();
            bases.rotate_left(k);
        }
        bases
    }

    /// Remembers which member answered, to start there next time.
    fn answered(&self, base: &str) {
        let bases: Vec<String> = self
            .file
            .nodes
            .iter()
            .filter(|n| n.roles.iter().any(|r| r == "storage" || r == "gateway"))
            .map(|n| format!("http://{}", n.admin))
            .collect();
        if let Some(i) = bases.iter().position(|b| b == base) {
            *self.data_start.lock().unwrap_or_else(|e| e.into_inner()) = i;
        }
    }

    fn data_token(&self) -> Result<&str, ClientError> {
        self.token.as_deref().ok_or(ClientError::NoSecret)
    }

    /// Runs `attempt` against each member in turn until one answers for good, for up
    /// to [`RETRY_DEADLINE`].
    async fn with_retries<T, F, Fut>(&self, what: &str, mut attempt: F) -> Result<T, ClientError>
    where
        F: FnMut(String) -> Fut,
        Fut: std::future::Future<Output = Result<Attempt<T>, ClientError>>,
    {
        let started = Instant::now();
        let deadline = started + RETRY_DEADLINE;
        let mut tried: Vec<String> = vec![];
        let mut down_rounds = 0;
        loop {
            let mut all_down = true;
            for base in self.data_bases() {
                match attempt(base.clone()).await? {
                    Attempt::Done(v) => {
                        self.answered(&base);
                        return Ok(v);
                    }
                    Attempt::NoControlPlane(message)
                        if started.elapsed() >= CONTROL_PLANE_GRACE =>
                    {
                        return Err(ClientError::Data {
                            code: "no_control_plane".into(),
                            message,
                        });
                    }
                    Attempt::Down(why) => {
                        tried.push(format!("{base}: {why}"));
                        if tried.len() > 8 {
                            tried.remove(0);
                        }
                    }
                    Attempt::Next(why) | Attempt::NoControlPlane(why) => {
                        all_down = false;
                        tried.push(format!("{base}: {why}"));
                        if tried.len() > 8 {
                            tried.remove(0);
                        }
                    }
                }
            }
            down_rounds = if all_down { down_rounds + 1 } else { 0 };
            if down_rounds >= DOWN_ROUNDS {
                return Err(self.not_running(tried));
            }
            if Instant::now() >= deadline {
                return Err(ClientError::Unavailable {
                    what: what.to_string(),
                    tried: tried.join("; "),
                });
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// A request that got no response: the member is down (no connection), or the
    /// exchange broke.
    fn failed<T>(e: &reqwest::Error) -> Attempt<T> {
        if e.is_connect() {
            Attempt::Down(short(e))
        } else {
            Attempt::Next(short(e))
        }
    }

    /// Classifies a response: success, a final error, or "try another member".
    async fn classify(r: reqwest::Response) -> Result<Attempt<reqwest::Response>, ClientError> {
        let status = r.status();
        if status.is_success() {
            return Ok(Attempt::Done(r));
        }
        let text = r.text().await.unwrap_or_default();
        let e = serde_json::from_str::<ErrorView>(&text).unwrap_or(ErrorView {
            code: "http".into(),
            message: format!("HTTP {status}: {text}"),
        });
        if status.as_u16() == 503 && e.code == "no_control_plane" {
            return Ok(Attempt::NoControlPlane(e.message));
        }
        if status.as_u16() == 503 || status.as_u16() == 502 {
            return Ok(Attempt::Next(e.message));
        }
        Err(ClientError::Data {
            code: e.code,
            message: e.message,
        })
    }

    /// The URL of `route` for `path`, each path component percent-encoded. The path
    /// is checked first: a URL library would resolve `..` itself, so a hostile path
    /// must be refused here, with the same typed error the cluster gives.
    fn url(
        base: &str,
        route: &str,
        path: &str,
        volume: Option<&str>,
    ) -> Result<reqwest::Url, ClientError> {
        let parts = keel_dir::parse_path(path).map_err(|e| ClientError::Data {
            code: e.code().to_string(),
            message: e.to_string(),
        })?;
        let mut u = reqwest::Url::parse(base).map_err(|e| ClientError::Http(e.to_string()))?;
        {
            let mut segs = u
                .path_segments_mut()
                .map_err(|_| ClientError::Http(format!("{base} cannot be a base URL")))?;
            segs.extend(["v1", route]);
            segs.extend(parts.iter());
            if parts.is_empty() {
                segs.push("");
            }
        }
        if let Some(v) = volume {
            u.query_pairs_mut().append_pair("volume", v);
        }
        Ok(u)
    }

    /// Writes `local` to `path`; `progress(bytes sent)` is called as the upload goes.
    pub async fn put_file(
        &self,
        local: &Path,
        path: &str,
        volume: Option<&str>,
        progress: impl Fn(u64) + Send + Sync + Clone + 'static,
    ) -> Result<FileView, ClientError> {
        let meta = tokio::fs::metadata(local)
            .await
            .map_err(|e| ClientError::Local {
                path: local.display().to_string(),
                reason: e.to_string(),
            })?;
        if !meta.is_file() {
            return Err(ClientError::Local {
                path: local.display().to_string(),
                reason: "not a regular file".into(),
            });
        }
        let key = format!("{:032x}", keel_core::ObjectId::random().0);
        let token = self.data_token()?.to_string();
        let length = meta.len();
        self.with_retries(&format!("put {path}"), |base| {
            let (key, token, progress) = (key.clone(), token.clone(), progress.clone());
            let local = local.to_path_buf();
            async move {
                let file = tokio::fs::File::open(&local)
                    .await
                    .map_err(|e| ClientError::Local {
                        path: local.display().to_string(),
                        reason: e.to_string(),
                    })?;
                progress(0);
                let sent = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
                let body = futures::stream::unfold(file, move |mut f| {
                    let (sent, progress) = (sent.clone(), progress.clone());
                    async move {
                        use tokio::io::AsyncReadExt;
                        let mut buf = vec![0u8; UPLOAD_PIECE];
                        match f.read(&mut buf).await {
                            Ok(0) => None,
                            Ok(n) => {
                                buf.truncate(n);
                                let total = sent
                                    .fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed)
                                    + n as u64;
                                progress(total);
                                Some((Ok::<_, std::io::Error>(buf), f))
                            }
                            Err(e) => Some((Err(e), f)),
                        }
                    }
                });
                let r = self
                    .http
                    .put(Self::url(&base, "fs", path, volume)?)
                    .bearer_auth(&token)
                    .header("idempotency-key", key)
                    .header("content-length", length)
                    .body(reqwest::Body::wrap_stream(body))
                    .timeout(Duration::from_secs(600))
                    .send()
                    .await;
                match r {
                    Err(e) => Ok(Self::failed(&e)),
                    Ok(r) => match Self::classify(r).await? {
                        Attempt::Done(r) => Ok(Attempt::Done(
                            r.json::<FileView>()
                                .await
                                .map_err(|e| ClientError::Http(e.to_string()))?,
                        )),
                        o @ (Attempt::Next(_) | Attempt::Down(_) | Attempt::NoControlPlane(_)) => {
                            Ok(o.retype())
                        }
                    },
                }
            }
        })
        .await
    }

    /// Writes bytes to `path` (benchmarks and tests).
    pub async fn put_bytes(
        &self,
        path: &str,
        data: Vec<u8>,
        volume: Option<&str>,
    ) -> Result<FileView, ClientError> {
        let key = format!("{:032x}", keel_core::ObjectId::random().0);
        let token = self.data_token()?.to_string();
        let data = bytes::Bytes::from(data);
        self.with_retries(&format!("put {path}"), |base| {
            let (key, token, data) = (key.clone(), token.clone(), data.clone());
            async move {
                let r = self
                    .http
                    .put(Self::url(&base, "fs", path, volume)?)
                    .bearer_auth(&token)
                    .header("idempotency-key", key)
                    .body(data)
                    .timeout(Duration::from_secs(120))
                    .send()
                    .await;
                match r {
                    Err(e) => Ok(Self::failed(&e)),
                    Ok(r) => match Self::classify(r).await? {
                        Attempt::Done(r) => Ok(Attempt::Done(
                            r.json::<FileView>()
                                .await
                                .map_err(|e| ClientError::Http(e.to_string()))?,
                        )),
                        o @ (Attempt::Next(_) | Attempt::Down(_) | Attempt::NoControlPlane(_)) => {
                            Ok(o.retype())
                        }
                    },
                }
            }
        })
        .await
    }

    /// Reads `path` (optionally a byte range `start..end`) into memory.
    pub async fn get_bytes(
        &self,
        path: &str,
        range: Option<(u64, u64)>,
        volume: Option<&str>,
    ) -> Result<(Vec<u8>, GetOutcome), ClientError> {
        let token = self.data_token()?.to_string();
        self.with_retries(&format!("get {path}"), |base| {
            let token = token.clone();
            async move {
                let mut req = self
                    .http
                    .get(Self::url(&base, "fs", path, volume)?)
                    .bearer_auth(&token)
                    .timeout(Duration::from_secs(120));
                if let Some((a, b)) = range {
                    req = req.header("range", format!("bytes={a}-{}", b.saturating_sub(1)));
                }
                match req.send().await {
                    Err(e) => Ok(Self::failed(&e)),
                    Ok(r) => match Self::classify(r).await? {
                        o @ (Attempt::Next(_) | Attempt::Down(_) | Attempt::NoControlPlane(_)) => {
                            Ok(o.retype())
                        }
                        Attempt::Done(r) => {
                            let stale = r.headers().get(STALE_HEADER).is_some();
                            match r.bytes().await {
                                Ok(b) => Ok(Attempt::Done((
                                    b.to_vec(),
                                    GetOutcome {
                                        bytes: b.len() as u64,
                                        stale,
                                    },
                                ))),
                                Err(e) => {
                                    Ok(Attempt::Next(format!("broken download: {}", short(&e))))
                                }
                            }
                        }
                    },
                }
            }
        })
        .await
    }

    /// Reads `path` into `local` (through a temporary file, renamed when complete);
    /// `progress(bytes received, total)` is called as the download goes.
    pub async fn get_file(
        &self,
        path: &str,
        local: &Path,
        volume: Option<&str>,
        progress: impl Fn(u64, Option<u64>) + Clone,
    ) -> Result<GetOutcome, ClientError> {
        let token = self.data_token()?.to_string();
        let partial = local.with_extension(match local.extension() {
            Some(e) => format!("{}.keel-partial", e.to_string_lossy()),
            None => "keel-partial".into(),
        });
        let local_err = |e: std::io::Error| ClientError::Local {
            path: local.display().to_string(),
            reason: e.to_string(),
        };
        let outcome = self
            .with_retries(&format!("get {path}"), |base| {
                let (token, partial, progress) = (token.clone(), partial.clone(), progress.clone());
                async move {
                    let r = self
                        .http
                        .get(Self::url(&base, "fs", path, volume)?)
                        .bearer_auth(&token)
                        .timeout(Duration::from_secs(600))
                        .send()
                        .await;
                    let r = match r {
                        Err(e) => return Ok(Self::failed(&e)),
                        Ok(r) => match Self::classify(r).await? {
                            o @ (Attempt::Next(_)
                            | Attempt::Down(_)
                            | Attempt::NoControlPlane(_)) => return Ok(o.retype()),
                            Attempt::Done(r) => r,
                        },
                    };
                    let stale = r.headers().get(STALE_HEADER).is_some();
                    let total = r.content_length();
                    let mut out = tokio::fs::File::create(&partial).await.map_err(local_err)?;
                    let mut got = 0u64;
                    let mut stream = r.bytes_stream();
                    while let Some(piece) = stream.next().await {
                        match piece {
                            Ok(b) => {
                                out.write_all(&b).await.map_err(local_err)?;
                                got += b.len() as u64;
                                progress(got, total);
                            }
                            Err(e) => {
                                let _ = tokio::fs::remove_file(&partial).await;
                                return Ok(Attempt::Next(format!(
                                    "broken download: {}",
                                    short(&e)
                                )));
                            }
                        }
                    }
                    if total.is_some_and(|t| t != got) {
                        let _ = tokio::fs::remove_file(&partial).await;
                        return Ok(Attempt::Next(format!(
                            "short download: {got} of {total:?} bytes"
                        )));
                    }
                    out.sync_all().await.map_err(local_err)?;
                    Ok(Attempt::Done(GetOutcome { bytes: got, stale }))
                }
            })
            .await;
        match outcome {
            Ok(o) => {
                tokio::fs::rename(&partial, local)
                    .await
                    .map_err(local_err)?;
                Ok(o)
            }
            Err(e) => {
                let _ = tokio::fs::remove_file(&partial).await;
                Err(e)
            }
        }
    }

    /// A JSON call of the metadata routes (`stat`, `list`, `mkdir`, `rename`, `fs`
    /// delete), retried across members.
    async fn meta_call<T: serde::de::DeserializeOwned>(
        &self,
        method: reqwest::Method,
        route: &str,
        path: &str,
        extra: &[(&str, String)],
        volume: Option<&str>,
    ) -> Result<Option<T>, ClientError> {
        let token = self.data_token()?.to_string();
        self.with_retries(&format!("{route} {path}"), |base| {
            let (token, method) = (token.clone(), method.clone());
            async move {
                let mut query: Vec<(&str, String)> = extra.to_vec();
                if let Some(v) = volume {
                    query.push(("volume", v.to_string()));
                }
                let url = Self::url(&base, route, path, None)?;
                let r = self
                    .http
                    .request(method, url)
                    .query(&query)
                    .bearer_auth(&token)
                    .timeout(Duration::from_secs(15))
                    .send()
                    .await;
                match r {
                    Err(e) => Ok(Self::failed(&e)),
                    Ok(r) => match Self::classify(r).await? {
                        o @ (Attempt::Next(_) | Attempt::Down(_) | Attempt::NoControlPlane(_)) => {
                            Ok(o.retype())
                        }
                        Attempt::Done(r) if r.status().as_u16() == 204 => Ok(Attempt::Done(None)),
                        Attempt::Done(r) => Ok(Attempt::Done(Some(
                            r.json::<T>()
                                .await
                                .map_err(|e| ClientError::Http(e.to_string()))?,
                        ))),
                    },
                }
            }
        })
        .await
    }

    pub async fn stat(&self, path: &str, volume: Option<&str>) -> Result<FileView, ClientError> {
        self.meta_call(reqwest::Method::GET, "stat", path, &[], volume)
            .await?
            .ok_or_else(|| ClientError::Http("empty stat reply".into()))
    }

    /// Every entry of a directory (all pages); `stale` if a page came from a replica
    /// that may lag.
    pub async fn list(
        &self,
        path: &str,
        volume: Option<&str>,
    ) -> Result<(Vec<EntryView>, bool), ClientError> {
        let mut out = vec![];
        let mut stale = false;
        let mut after: Option<String> = None;
        loop {
            let mut extra = vec![("limit", "1000".to_string())];
            if let Some(a) = &after {
                extra.push(("after", a.clone()));
            }
            let page: ListView = self
                .meta_call(reqwest::Method::GET, "list", path, &extra, volume)
                .await?
                .ok_or_else(|| ClientError::Http("empty list reply".into()))?;
            stale |= page.stale;
            out.extend(page.entries);
            match page.next {
                Some(n) => after = Some(n),
                None => return Ok((out, stale)),
            }
        }
    }

    pub async fn mkdir(&self, path: &str, volume: Option<&str>) -> Result<FileView, ClientError> {
        self.meta_call(reqwest::Method::POST, "mkdir", path, &[], volume)
            .await?
            .ok_or_else(|| ClientError::Http("empty mkdir reply".into()))
    }

    pub async fn rename(
        &self,
        from: &str,
        to: &str,
        volume: Option<&str>,
    ) -> Result<FileView, ClientError> {
        self.meta_call(
            reqwest::Method::POST,
            "rename",
            from,
            &[("to", to.to_string())],
            volume,
        )
        .await?
        .ok_or_else(|| ClientError::Http("empty rename reply".into()))
    }

    pub async fn remove(&self, path: &str, volume: Option<&str>) -> Result<(), ClientError> {
        self.meta_call::<serde_json::Value>(reqwest::Method::DELETE, "fs", path, &[], volume)
            .await
            .map(|_| ())
    }

    /// Creates a volume (`replication`: "sync" or "async"; `chunk_size` in bytes).
    pub async fn create_volume(
        &self,
        name: &str,
        replication: &str,
        chunk_size: Option<u64>,
    ) -> Result<VolumeView, ClientError> {
        let token = self.data_token()?.to_string();
        self.with_retries(&format!("create volume {name}"), |base| {
            let token = token.clone();
            async move {
                let mut url =
                    reqwest::Url::parse(&base).map_err(|e| ClientError::Http(e.to_string()))?;
                url.path_segments_mut()
                    .map_err(|_| ClientError::Http(format!("{base} cannot be a base URL")))?
                    .extend(["v1", "volumes", name]);
                let mut query = vec![("replication", replication.to_string())];
                if let Some(c) = chunk_size {
                    query.push(("chunk_size", c.to_string()));
                }
                let r = self
                    .http
                    .post(url)
                    .query(&query)
                    .bearer_auth(&token)
                    .timeout(Duration::from_secs(15))
                    .send()
                    .await;
                match r {
                    Err(e) => Ok(Self::failed(&e)),
                    Ok(r) => match Self::classify(r).await? {
                        o @ (Attempt::Next(_) | Attempt::Down(_) | Attempt::NoControlPlane(_)) => {
                            Ok(o.retype())
                        }
                        Attempt::Done(r) => Ok(Attempt::Done(
                            r.json::<VolumeView>()
                                .await
                                .map_err(|e| ClientError::Http(e.to_string()))?,
                        )),
                    },
                }
            }
        })
        .await
    }

    pub async fn volumes(&self) -> Result<Vec<VolumeView>, ClientError> {
        let token = self.data_token()?.to_string();
        self.with_retries("list volumes", |base| {
            let token = token.clone();
            async move {
                let r = self
                    .http
                    .get(format!("{base}/v1/volumes"))
                    .bearer_auth(&token)
                    .timeout(Duration::from_secs(15))
                    .send()
                    .await;
                match r {
                    Err(e) => Ok(Self::failed(&e)),
                    Ok(r) => match Self::classify(r).await? {
                        o @ (Attempt::Next(_) | Attempt::Down(_) | Attempt::NoControlPlane(_)) => {
                            Ok(o.retype())
                        }
                        Attempt::Done(r) => Ok(Attempt::Done(
                            r.json::<Vec<VolumeView>>()
                                .await
                                .map_err(|e| ClientError::Http(e.to_string()))?,
                        )),
                    },
                }
            }
        })
        .await
    }
}
