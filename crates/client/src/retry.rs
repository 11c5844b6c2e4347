//! Talking to the native HTTP API: which members serve data, one request's outcome
//! ([`Attempt`]), retrying over every member until one answers for good, and leaving
//! a member that stopped answering (a paused process: see [`crate::Patience`]).
//!
//! Must never: retry an answer that is final (a 4xx, a typed refusal), wait out the
//! whole deadline when no member is running or the control plane is lost, or wait on
//! a member that does not answer for longer than the cluster's detection floor allows.

use crate::{short, Client, ClientError, Patience};
use keel_node::gateway::api::ErrorView;
use std::time::{Duration, Instant};

/// How long an operation keeps retrying across members (a failover takes well under
/// this).
const RETRY_DEADLINE: Duration = Duration::from_secs(30);
/// How long a client keeps retrying while every member that answers says that the
/// control plane is out of reach, counted from the first such answer (not from the
/// start of the operation: a member that was slow to say so must not use it up):
/// long enough for several elections, short of hanging when a majority is really lost.
const CONTROL_PLANE_GRACE: Duration = Duration::from_secs(5);

/// The pause between two rounds over every member.
const ROUND_PAUSE: Duration = Duration::from_millis(100);

/// Progress of one request (bytes sent or received), for [`Client::answered_by`]'s
/// deadline on progress. Cheap to clone; clones share the clock.
#[derive(Clone)]
pub(crate) struct Progress(std::sync::Arc<std::sync::Mutex<Instant>>);

impl Progress {
    pub(crate) fn new() -> Progress {
        Progress(std::sync::Arc::new(std::sync::Mutex::new(Instant::now())))
    }

    /// Something moved: bytes went out or came in.
    pub(crate) fn moved(&self) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
    }

    fn idle(&self) -> Duration {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).elapsed()
    }
}

/// After this many rounds in which no member accepted a connection at all, the
/// cluster is not running: say so instead of waiting out the retry deadline.
const DOWN_ROUNDS: u32 = 3;

/// What to do after one attempt against one member.
pub(crate) enum Attempt<T> {
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
    pub(crate) fn retype<U>(self) -> Attempt<U> {
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
            .map(|n| crate::base_url(&n.admin))
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
            .map(|n| crate::base_url(&n.admin))
            .collect();
        if let Some(i) = bases.iter().position(|b| b == base) {
            *self.data_start.lock().unwrap_or_else(|e| e.into_inner()) = i;
        }
    }

    pub(crate) fn data_token(&self) -> Result<&str, ClientError> {
        self.key.as_deref().ok_or(ClientError::NoKey)
    }

    /// Runs `attempt` against each member in turn until one answers for good, for up
    /// to [`RETRY_DEADLINE`].
    pub(crate) async fn with_retries<T, F, Fut>(
        &self,
        what: &str,
        mut attempt: F,
    ) -> Result<T, ClientError>
    where
        F: FnMut(String) -> Fut,
        Fut: std::future::Future<Output = Result<Attempt<T>, ClientError>>,
    {
        self.with_retries_watched(what, false, |base, _, _| attempt(base))
            .await
    }

    /// Like [`Client::with_retries_watched`], for an attempt that reports no progress.
    pub(crate) async fn with_retries_reading<T, F, Fut>(
        &self,
        what: &str,
        allow_stale: bool,
        mut attempt: F,
    ) -> Result<T, ClientError>
    where
        F: FnMut(String, bool) -> Fut,
        Fut: std::future::Future<Output = Result<Attempt<T>, ClientError>>,
    {
        self.with_retries_watched(what, allow_stale, |base, stale, _| attempt(base, stale))
            .await
    }

    /// Resolves with `request`'s outcome, or with why `base` was left: the request
    /// made no progress for [`crate::Patience::quiet`] and the member then did not
    /// answer a probe within [`crate::Patience::probe`] (times `1 + round`, so that a
    /// merely slow cluster is not abandoned round after round).
    pub(crate) async fn answered_by<T>(
        &self,
        base: &str,
        request: impl std::future::Future<Output = T>,
    ) -> Result<T, String> {
        self.answered_by_watched(base, request, &Progress::new(), 0)
            .await
    }

    async fn answered_by_watched<T>(
        &self,
        base: &str,
        request: impl std::future::Future<Output = T>,
        progress: &Progress,
        round: u32,
    ) -> Result<T, String> {
        tokio::select! {
            r = request => Ok(r),
            why = self.unresponsive(base, progress, round) => Err(why),
        }
    }

    /// Resolves once `base` fails a probe after a quiet spell of the request watched
    /// by `progress`; never while it answers.
    async fn unresponsive(&self, base: &str, progress: &Progress, round: u32) -> String {
        let Patience { quiet, probe } = self.patience;
        let probe = probe * (1 + round.min(8));
        loop {
            let idle = progress.idle();
            if idle < quiet {
                tokio::time::sleep(quiet - idle).await;
                continue;
            }
            // Any HTTP answer (this path has no route: a typed 404) proves the process
            // runs and serves; a paused one accepts the connection and says nothing.
            let asked = self
                .http
                .get(format!("{base}/v1/alive"))
                .timeout(probe)
                .send()
                .await;
            match asked {
                Ok(_) => progress.moved(),
                Err(e) => {
                    return format!(
                        "no answer, and no answer to a probe within {} ms ({})",
                        probe.as_millis(),
                        short(&e)
                    )
                }
            }
        }
    }

    /// Like [`Client::with_retries`], for a read of the directory. Every member is
    /// asked for a current answer (one that ran the read barrier) first; a member
    /// that cannot give one answers `no_control_plane` and the next is tried. Only
    /// when none gave a current answer within [`CONTROL_PLANE_GRACE`] and the caller
    /// allows it (`allow_stale`) are the attempts told they may accept a stale answer
    /// (`attempt(base, true)`, which sends `x-keel-allow-stale`); otherwise the read
    /// fails with `no_control_plane`.
    ///
    /// Every attempt is watched (see [`crate::Patience`]): a member that makes no
    /// progress and does not answer a probe is left for the next one; `attempt` gets a
    /// [`Progress`] to report bytes moved, so that a long transfer is never cut short.
    pub(crate) async fn with_retries_watched<T, F, Fut>(
        &self,
        what: &str,
        allow_stale: bool,
        mut attempt: F,
    ) -> Result<T, ClientError>
    where
        F: FnMut(String, bool, Progress) -> Fut,
        Fut: std::future::Future<Output = Result<Attempt<T>, ClientError>>,
    {
        let started = Instant::now();
        let deadline = started + RETRY_DEADLINE;
        let mut tried: Vec<String> = vec![];
        let mut down_rounds = 0;
        let mut accept_stale = false;
        // When a member first answered that the control plane is out of reach, and
        // whether any member answered otherwise since.
        let mut no_control_plane: Option<Instant> = None;
        let mut round = 0u32;
        loop {
            let mut all_down = true;
            for base in self.data_bases() {
                let progress = Progress::new();
                let outcome = match self
                    .answered_by_watched(
                        &base,
                        attempt(base.clone(), accept_stale, progress.clone()),
                        &progress,
                        round,
                    )
                    .await
                {
                    Ok(r) => r?,
                    Err(why) => Attempt::Next(why),
                };
                let grace_over = |since: &mut Option<Instant>| {
                    since.get_or_insert_with(Instant::now).elapsed() >= CONTROL_PLANE_GRACE
                };
                match outcome {
                    Attempt::Done(v) => {
                        self.answered(&base);
                        return Ok(v);
                    }
                    Attempt::NoControlPlane(_)
                        if allow_stale && !accept_stale && grace_over(&mut no_control_plane) =>
                    {
                        // The last resort: no member reaching a majority answered.
                        all_down = false;
                        accept_stale = true;
                    }
                    Attempt::NoControlPlane(message) if grace_over(&mut no_control_plane) => {
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
                    Attempt::Next(why) => {
                        // A member that answered otherwise (or not at all: it may be
                        // the one that reaches the majority) restarts the grace.
                        no_control_plane = None;
                        all_down = false;
                        tried.push(format!("{base}: {why}"));
                        if tried.len() > 8 {
                            tried.remove(0);
                        }
                    }
                    Attempt::NoControlPlane(why) => {
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
            round += 1;
            tokio::time::sleep(ROUND_PAUSE).await;
        }
    }

    /// A request that got no response: the member is down (no connection), or the
    /// exchange broke.
    pub(crate) fn failed<T>(e: &reqwest::Error) -> Attempt<T> {
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
        let host = r
            .url()
            .host_str()
            .map(|h| format!("{h}:{}", r.url().port_or_known_default().unwrap_or(0)))
            .unwrap_or_default();
        let text = r.text().await.unwrap_or_default();
        // Every error of the API is typed; an answer that is not (a proxy, another
        // service on the port) is said in words, never as a bare status line.
        let e = serde_json::from_str::<ErrorView>(&text).unwrap_or_else(|_| ErrorView {
            code: "http".into(),
            message: format!(
                "{host} answered without a keel error ({}): is it a keel node?",
                status.canonical_reason().unwrap_or("error").to_lowercase()
            ),
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
    pub(crate) fn url(
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

    /// Sends a request and classifies the answer.
    pub(crate) async fn exchange(
        req: reqwest::RequestBuilder,
    ) -> Result<Attempt<reqwest::Response>, ClientError> {
        match req.send().await {
            Err(e) => Ok(Self::failed(&e)),
            Ok(r) => Self::classify(r).await,
        }
    }

    /// Sends a request and reads its JSON answer (`None` for a 204).
    pub(crate) async fn exchange_json<T: serde::de::DeserializeOwned>(
        req: reqwest::RequestBuilder,
    ) -> Result<Attempt<Option<T>>, ClientError> {
        Ok(match Self::exchange(req).await? {
            Attempt::Done(r) if r.status().as_u16() == 204 => Attempt::Done(None),
            Attempt::Done(r) => Attempt::Done(Some(
                r.json::<T>()
                    .await
                    .map_err(|e| ClientError::Http(e.to_string()))?,
            )),
            other => other.retype(),
        })
    }
}
