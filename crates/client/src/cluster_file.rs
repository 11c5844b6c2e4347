//! `cluster.json`: where a cluster's members are, written by `keel dev up` (or by an
//! operator for a real cluster) and read by the CLI.

use crate::ClientError;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct LinkEntry {
    pub name: String,
    pub addr: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct NodeEntry {
    pub id: u64,
    pub site: String,
    /// First link's address.
    pub addr: String,
    pub links: Vec<LinkEntry>,
    /// Admin API `ip:port`.
    pub admin: String,
    pub roles: Vec<String>,
    #[serde(default)]
    pub pid: u32,
    #[serde(default)]
    pub config: Option<PathBuf>,
    #[serde(default)]
    pub log: Option<PathBuf>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct ClusterFile {
    pub name: String,
    pub secret_file: PathBuf,
    pub nodes: Vec<NodeEntry>,
    /// Set by `keel dev up`: fault injection is allowed.
    #[serde(default)]
    pub dev: bool,
    /// The `keel dev up` process supervising the nodes.
    #[serde(default)]
    pub supervisor_pid: Option<u32>,
    /// The access key data commands use when none is given (`ID:SECRET`); `keel dev
    /// up` writes a read-write one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// The cluster CA certificate (PEM; the certificate only, never its key) that the
    /// HTTP port's certificate must chain to. Default: `DIR/ca.pem`, else the first
    /// certificate of `secret_file`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_cert: Option<PathBuf>,
    /// Where to mount the cluster over NFSv3 (written by `keel dev up`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nfs: Option<NfsEntry>,
    /// Where to reach the cluster over S3 (written by `keel dev up`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3: Option<S3Entry>,
    /// The cluster's failure detection timings, from which the client derives how
    /// long it waits on a member that does not answer before it tries another
    /// (default: keel's default timings).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timings: Option<ClientTimings>,
    /// The cluster's DNS (failover by name, `keel-dns`), when it runs one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns: Option<crate::failover::DnsEntry>,
}

/// An NFS export: `host`, its one TCP `port` (portmap, mount and NFS) and the export
/// name (mount path `/EXPORT`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct NfsEntry {
    pub host: String,
    pub port: u16,
    pub export: String,
}

/// An S3 endpoint with an access key and a bucket that exists.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct S3Entry {
    /// `http://HOST:PORT`.
    pub endpoint: String,
    pub access_key: String,
    pub secret_key: String,
    pub bucket: String,
}

/// The part of the members' `[timings]` the client derives its patience from.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq)]
pub struct ClientTimings {
    /// A member silent this long on every link is failed and failed over (ms).
    pub fail_after_ms: u64,
    /// A storage lease's length (ms).
    pub lease_ms: u64,
}

impl Default for ClientTimings {
    fn default() -> Self {
        let t = keel_config::TimingsConfig::default();
        ClientTimings {
            fail_after_ms: t.fail_after_ms,
            lease_ms: t.lease_ms,
        }
    }
}

impl ClusterFile {
    pub const NAME: &'static str = "cluster.json";
    /// The file next to `cluster.json` holding the admin token once it was rotated
    /// (or written by `keel dev up`), mode 0600.
    pub const ADMIN_TOKEN: &'static str = "admin-token";
    /// The CA certificate next to `cluster.json`.
    pub const CA_CERT: &'static str = "ca.pem";

    pub fn load(dir: &Path) -> Result<ClusterFile, ClientError> {
        let path = dir.join(Self::NAME);
        let text = std::fs::read_to_string(&path).map_err(|e| ClientError::NoCluster {
            dir: dir.display().to_string(),
            reason: format!("{}: {e}", path.display()),
        })?;
        serde_json::from_str(&text).map_err(|e| ClientError::NoCluster {
            dir: dir.display().to_string(),
            reason: format!("{} is malformed: {e}", path.display()),
        })
    }

    /// Writes atomically (temp file, fsync, rename), mode 0600: it may carry a key.
    pub fn save(&self, dir: &Path) -> std::io::Result<()> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let tmp = dir.join(".cluster.json.tmp");
        let _ = std::fs::remove_file(&tmp);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(
            serde_json::to_string_pretty(self)
                .unwrap_or_default()
                .as_bytes(),
        )?;
        f.sync_all()?;
        std::fs::rename(&tmp, dir.join(Self::NAME))
    }

    pub fn node(&self, id: u64) -> Result<&NodeEntry, ClientError> {
        self.nodes
            .iter()
            .find(|n| n.id == id)
            .ok_or(ClientError::UnknownNode(id))
    }
}

/// Writes `DIR/admin-token` (mode 0600, atomically): the admin token for the operator
/// and the CLI.
pub fn save_admin_token(dir: &Path, token: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = dir.join(".admin-token.tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(format!("{token}\n").as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, dir.join(ClusterFile::ADMIN_TOKEN))
}
