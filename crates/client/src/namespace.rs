//! The namespace through the native HTTP API: stat, list, mkdir, rename, remove, and
//! volumes, each retried over every member that serves data (see `retry.rs`).
//!
//! Must never: turn a final refusal (not found, exists, not empty) into a retry, or
//! send the tries of one change under different idempotency keys.

use crate::{Client, ClientError};
use keel_node::gateway::api::{
    EntryView, FileView, ListView, VolumeView, ALLOW_STALE_HEADER, IDEMPOTENCY_HEADER,
};
use std::time::Duration;

/// What a metadata call is, for retries: a read, or a change (which carries an
/// idempotency key).
#[derive(Clone, Copy)]
enum Call {
    Read,
    Change,
}

impl Client {
    /// A JSON call of the metadata routes (`stat`, `list`, `mkdir`, `rename`, `fs`
    /// delete), retried across members. A change carries one idempotency key over all
    /// its tries (`Call::Change`), so a retry after a try that committed is answered
    /// as applied; a read (`Call::Read`) is answered by a current replica, or as a
    /// last resort by one that may lag if the client allows it.
    async fn meta_call<T: serde::de::DeserializeOwned>(
        &self,
        method: reqwest::Method,
        route: &str,
        path: &str,
        extra: &[(&str, String)],
        volume: Option<&str>,
        call: Call,
    ) -> Result<Option<T>, ClientError> {
        let token = self.data_token()?.to_string();
        let key = match call {
            Call::Change => Some(format!("{:032x}", keel_core::ObjectId::random().0)),
            Call::Read => None,
        };
        let allow_stale = matches!(call, Call::Read) && self.allow_stale;
        let what = format!("{route} {path}");
        self.with_retries_reading(&what, allow_stale, |base, accept_stale| {
            let (token, method, key) = (token.clone(), method.clone(), key.clone());
            async move {
                let mut query: Vec<(&str, String)> = extra.to_vec();
                if let Some(v) = volume {
                    query.push(("volume", v.to_string()));
                }
                let url = Self::url(&base, route, path, None)?;
                let mut req = self
                    .http
                    .request(method, url)
                    .query(&query)
                    .bearer_auth(&token)
                    .timeout(Duration::from_secs(15));
                if let Some(key) = key {
                    req = req.header(IDEMPOTENCY_HEADER, key);
                }
                if accept_stale {
                    req = req.header(ALLOW_STALE_HEADER, "true");
                }
                Self::exchange_json::<T>(req).await
            }
        })
        .await
    }

    pub async fn stat(&self, path: &str, volume: Option<&str>) -> Result<FileView, ClientError> {
        self.meta_call(reqwest::Method::GET, "stat", path, &[], volume, Call::Read)
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
                .meta_call(
                    reqwest::Method::GET,
                    "list",
                    path,
                    &extra,
                    volume,
                    Call::Read,
                )
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
        self.mkdir_with(path, volume, false).await
    }

    /// Creates a directory; with `parents` (`mkdir -p`) its missing ancestors too, and
    /// an existing directory is no error.
    pub async fn mkdir_with(
        &self,
        path: &str,
        volume: Option<&str>,
        parents: bool,
    ) -> Result<FileView, ClientError> {
        let extra: Vec<(&str, String)> = if parents {
            vec![("parents", "true".to_string())]
        } else {
            vec![]
        };
        self.meta_call(
            reqwest::Method::POST,
            "mkdir",
            path,
            &extra,
            volume,
            Call::Change,
        )
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
            Call::Change,
        )
        .await?
        .ok_or_else(|| ClientError::Http("empty rename reply".into()))
    }

    pub async fn remove(&self, path: &str, volume: Option<&str>) -> Result<(), ClientError> {
        self.meta_call::<serde_json::Value>(
            reqwest::Method::DELETE,
            "fs",
            path,
            &[],
            volume,
            Call::Change,
        )
        .await
        .map(|_| ())
    }

    /// Creates a volume (`replication`: "sync" or "async"; `chunk_size` in bytes). A
    /// retry after a try that committed is answered as applied: the directory answers
    /// a create of an existing volume with the same settings with that volume.
    pub async fn create_volume(
        &self,
        name: &str,
        replication: &str,
        chunk_size: Option<u64>,
    ) -> Result<VolumeView, ClientError> {
        keel_dir::validate_volume_name(name).map_err(|e| ClientError::Data {
            code: e.code().to_string(),
            message: e.to_string(),
        })?;
        let token = self.data_token()?.to_string();
        self.with_retries::<Option<VolumeView>, _, _>(&format!("create volume {name}"), |base| {
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
                let req = self
                    .http
                    .post(url)
                    .query(&query)
                    .bearer_auth(&token)
                    .timeout(Duration::from_secs(15));
                Self::exchange_json::<VolumeView>(req).await
            }
        })
        .await?
        .ok_or_else(|| ClientError::Http("empty volume reply".into()))
    }

    pub async fn volumes(&self) -> Result<Vec<VolumeView>, ClientError> {
        let token = self.data_token()?.to_string();
        self.with_retries::<Option<Vec<VolumeView>>, _, _>("list volumes", |base| {
            let token = token.clone();
            async move {
                let req = self
                    .http
                    .get(format!("{base}/v1/volumes"))
                    .bearer_auth(&token)
                    .timeout(Duration::from_secs(15));
                Self::exchange_json::<Vec<VolumeView>>(req).await
            }
        })
        .await?
        .ok_or_else(|| ClientError::Http("empty volumes reply".into()))
    }
}
