//! The cluster secret: a self-signed CA (ECDSA P-256) whose certificate and private key,
//! together, let a holder issue member identities. Every member holds it; holding it is
//! what makes a process a member.
//!
//! Owns: generating the CA, saving it as one PEM file (mode 0600, written atomically),
//! loading it (refusing a file readable by group or others), and deriving the other
//! shared secrets from the CA key: the datagram key and the admin API token.
//!
//! Must never: write the key to a file that is, even for an instant, readable by anyone
//! but its owner; log or `Debug`-print the key.

use std::fmt;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use hmac::{Hmac, Mac};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivatePkcs8KeyDer};
use sha2::Sha256;

use crate::error::TlsError;

/// The line of the secret file that names the cluster (PEM explanatory text).
const NAME_PREFIX: &str = "keel-cluster: ";
const DATAGRAM_KEY_LABEL: &[u8] = b"keel/datagram-key/v1";
const ADMIN_TOKEN_LABEL: &[u8] = b"keel/admin-token/v1";

/// The cluster's CA: certificate and private key. See the module documentation.
pub struct ClusterSecret {
    cluster_name: String,
    ca_cert: CertificateDer<'static>,
    ca_key_pkcs8: Vec<u8>,
    /// The whole secret as written to its file.
    pem: String,
    /// The CA rebuilt from its parameters and key: rcgen signs with it. Its subject and
    /// key are those of `ca_cert`, so what it signs chains to `ca_cert`.
    issuer: rcgen::Certificate,
    issuer_key: KeyPair,
}

impl ClusterSecret {
    /// Makes a new cluster CA named after the cluster.
    pub fn generate(cluster_name: &str) -> Result<ClusterSecret, TlsError> {
        check_name(cluster_name)?;
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let cert = ca_params(cluster_name)?.self_signed(&key)?;
        let pem = format!(
            "# keel cluster secret. Whoever holds this file can join the cluster.\n\
             {NAME_PREFIX}{cluster_name}\n{}{}",
            cert.pem(),
            key.serialize_pem()
        );
        Ok(ClusterSecret {
            cluster_name: cluster_name.to_string(),
            ca_cert: cert.der().clone(),
            ca_key_pkcs8: key.serialize_der(),
            pem,
            issuer: cert,
            issuer_key: key,
        })
    }

    /// Writes the secret to `path` as one PEM file with mode 0600: a temporary file in
    /// the same directory, created 0600, synced, then renamed over `path`.
    pub fn save(&self, path: &Path) -> Result<(), TlsError> {
        let io_err = |source| TlsError::SecretIo {
            path: path.to_path_buf(),
            source,
        };
        let tmp = temp_path(path);
        let written = (|| {
            let mut file = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)?;
            file.write_all(self.to_pem().as_bytes())?;
            file.sync_all()?;
            fs::rename(&tmp, path)?;
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                fs::File::open(dir)?.sync_all()?;
            }
            Ok(())
        })();
        if written.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        written.map_err(io_err)
    }

    /// Reads a secret written by [`ClusterSecret::save`]. Refuses a file that grants any
    /// access to group or others.
    pub fn load(path: &Path) -> Result<ClusterSecret, TlsError> {
        let io_err = |source| TlsError::SecretIo {
            path: path.to_path_buf(),
            source,
        };
        let file = fs::File::open(path).map_err(io_err)?;
        let mode = file.metadata().map_err(io_err)?.mode() & 0o7777;
        if mode & 0o077 != 0 {
            return Err(TlsError::InsecureSecretFile {
                path: path.to_path_buf(),
                mode,
            });
        }
        let text = std::io::read_to_string(file).map_err(io_err)?;
        Self::from_pem(&text)
    }

    /// Parses the PEM text written by [`ClusterSecret::save`].
    pub fn from_pem(text: &str) -> Result<ClusterSecret, TlsError> {
        let malformed = |what: &str| TlsError::MalformedSecret(what.to_string());
        let cluster_name = text
            .lines()
            .find_map(|line| line.strip_prefix(NAME_PREFIX))
            .ok_or_else(|| malformed("no cluster name line"))?
            .trim()
            .to_string();
        check_name(&cluster_name)?;
        let ca_cert = CertificateDer::from_pem_slice(text.as_bytes())
            .map_err(|e| malformed(&format!("CA certificate: {e}")))?;
        let key_der = PrivatePkcs8KeyDer::from_pem_slice(text.as_bytes())
            .map_err(|e| malformed(&format!("CA key: {e}")))?;
        let issuer_key = KeyPair::try_from(&key_der)?;
        if !contains(ca_cert.as_ref(), issuer_key.public_key_raw()) {
            return Err(malformed("the key does not belong to the CA certificate"));
        }
        let issuer = ca_params(&cluster_name)?.self_signed(&issuer_key)?;
        Ok(ClusterSecret {
            cluster_name,
            ca_cert,
            ca_key_pkcs8: key_der.secret_pkcs8_der().to_vec(),
            pem: text.to_string(),
            issuer,
            issuer_key,
        })
    }

    /// The file content: the cluster name line, the CA certificate, the CA key.
    pub fn to_pem(&self) -> &str {
        &self.pem
    }

    pub fn cluster_name(&self) -> &str {
        &self.cluster_name
    }

    /// The CA certificate, the only trust anchor of every member.
    pub fn ca_cert_der(&self) -> &CertificateDer<'static> {
        &self.ca_cert
    }

    /// The CA certificate alone, as PEM: what a data client needs to verify the HTTP
    /// port (never the key).
    pub fn ca_cert_pem(&self) -> String {
        const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
        const END: &str = "-----END CERTIFICATE-----";
        match (self.pem.find(BEGIN), self.pem.find(END)) {
            (Some(b), Some(e)) if e > b => format!("{}\n", &self.pem[b..e + END.len()]),
            _ => String::new(),
        }
    }

    /// The key that authenticates UDP datagrams and multicast announcements.
    pub fn datagram_key(&self) -> [u8; 32] {
        self.derive(DATAGRAM_KEY_LABEL)
    }

    /// The bearer token of the admin API, as 64 lowercase hex digits.
    pub fn admin_token(&self) -> String {
        self.derive(ADMIN_TOKEN_LABEL)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    pub(crate) fn issuer(&self) -> (&rcgen::Certificate, &KeyPair) {
        (&self.issuer, &self.issuer_key)
    }

    /// HMAC-SHA256 keyed by the CA key's PKCS#8 DER, over a label (HKDF-extract style).
    fn derive(&self, label: &[u8]) -> [u8; 32] {
        let mut mac = <Hmac<Sha256>>::new_from_slice(&self.ca_key_pkcs8)
            .expect("HMAC accepts keys of any length");
        mac.update(label);
        mac.finalize().into_bytes().into()
    }
}

impl fmt::Debug for ClusterSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClusterSecret")
            .field("cluster_name", &self.cluster_name)
            .finish_non_exhaustive()
    }
}

/// The CA's parameters. Deterministic in the name: the subject written into every issued
/// certificate's issuer field must equal the saved CA's subject byte for byte.
fn ca_params(cluster_name: &str) -> Result<CertificateParams, TlsError> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(
        DnType::CommonName,
        format!("keel cluster CA {cluster_name}"),
    );
    params
        .distinguished_name
        .push(DnType::OrganizationName, "keel");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    Ok(params)
}

fn check_name(name: &str) -> Result<(), TlsError> {
    if name.is_empty() || name.trim() != name || name.chars().any(char::is_control) {
        return Err(TlsError::InvalidClusterName(name.to_string()));
    }
    Ok(())
}

fn temp_path(path: &Path) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    path.with_file_name(format!(
        ".{}.tmp.{}.{nanos}",
        name.unwrap_or_default(),
        std::process::id()
    ))
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}
