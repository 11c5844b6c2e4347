//! Files through the native HTTP API: put and get, with retries over every member
//! that serves data (see `retry.rs`) and an idempotency key per put, so that a
//! retried put is applied once. A get is answered only by a member whose directory
//! replica is current, unless the client allows a stale answer as a last resort.
//!
//! Must never: report a put as done before a member answered 201 (durable on every
//! in-sync replica and committed in the directory), or leave a half-written local
//! file after a failed get (it downloads to a temporary file and renames).

use crate::retry::Attempt;
use crate::{short, Client, ClientError};
use futures::StreamExt;
use keel_node::gateway::api::{FileView, ALLOW_STALE_HEADER, IDEMPOTENCY_HEADER, STALE_HEADER};
use std::path::Path;
use std::time::Duration;
use tokio::io::AsyncWriteExt;

/// A piece of a streamed upload.
const UPLOAD_PIECE: usize = 256 * 1024;

/// What a get reports besides the bytes.
#[derive(Clone, Debug, PartialEq)]
pub struct GetOutcome {
    pub bytes: u64,
    /// Served from a directory replica that may lag (no member reaching the control
    /// plane's majority answered, and the client allowed it: see
    /// [`Client::allowing_stale`]): the data may not be the newest.
    pub stale: bool,
}

impl Client {
    /// Writes `local` to `path`; `progress(bytes sent)` is called as the upload goes.
    /// No deadline on the whole transfer: a member that stops making progress and
    /// stops answering is left (see `retry.rs`), a slow one that moves is not.
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
        self.with_retries_watched(&format!("put {path}"), false, |base, _, moved| {
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
                    let (sent, progress, moved) = (sent.clone(), progress.clone(), moved.clone());
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
                                moved.moved();
                                Some((Ok::<_, std::io::Error>(buf), f))
                            }
                            Err(e) => Some((Err(e), f)),
                        }
                    }
                });
                let req = self
                    .http
                    .put(Self::url(&base, "fs", path, volume)?)
                    .bearer_auth(&token)
                    .header(IDEMPOTENCY_HEADER, key)
                    .header("content-length", length)
                    .body(reqwest::Body::wrap_stream(body));
                Self::put_answer(Self::exchange_json::<FileView>(req).await?)
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
                let req = self
                    .http
                    .put(Self::url(&base, "fs", path, volume)?)
                    .bearer_auth(&token)
                    .header(IDEMPOTENCY_HEADER, key)
                    .body(data)
                    .timeout(Duration::from_secs(120));
                Self::put_answer(Self::exchange_json::<FileView>(req).await?)
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
        let what = format!("get {path}");
        self.with_retries_reading(&what, self.allow_stale, |base, accept_stale| {
            let token = token.clone();
            async move {
                let mut req = self
                    .http
                    .get(Self::url(&base, "fs", path, volume)?)
                    .bearer_auth(&token)
                    .timeout(Duration::from_secs(120));
                if accept_stale {
                    req = req.header(ALLOW_STALE_HEADER, "true");
                }
                if let Some((a, b)) = range {
                    req = req.header("range", format!("bytes={a}-{}", b.saturating_sub(1)));
                }
                match Self::exchange(req).await? {
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
                            Err(e) => Ok(Attempt::Next(format!("broken download: {}", short(&e)))),
                        }
                    }
                    other => Ok(other.retype()),
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
            .with_retries_watched(
                &format!("get {path}"),
                self.allow_stale,
                |base, accept_stale, moved| {
                    let (token, partial, progress) =
                        (token.clone(), partial.clone(), progress.clone());
                    async move {
                        let mut req = self
                            .http
                            .get(Self::url(&base, "fs", path, volume)?)
                            .bearer_auth(&token);
                        if accept_stale {
                            req = req.header(ALLOW_STALE_HEADER, "true");
                        }
                        let r = match Self::exchange(req).await? {
                            Attempt::Done(r) => r,
                            other => return Ok(other.retype()),
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
                                    moved.moved();
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
                },
            )
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

    /// A put's JSON answer: it must carry the file.
    fn put_answer(a: Attempt<Option<FileView>>) -> Result<Attempt<FileView>, ClientError> {
        match a {
            Attempt::Done(Some(f)) => Ok(Attempt::Done(f)),
            Attempt::Done(None) => Err(ClientError::Http("empty put reply".into())),
            other => Ok(other.retype()),
        }
    }
}
