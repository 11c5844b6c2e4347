//! A member's TLS identity and the rustls configurations built from it.
//!
//! Owns: issuing a node certificate from the [`ClusterSecret`] (CN `keel-node-<id>`,
//! SANs: every address of the node and the DNS name `keel-node-<id>`), and the mutual
//! TLS configs: servers require a client certificate chaining to the cluster CA, clients
//! trust only the cluster CA and present their node certificate. TLS 1.3 only.
//!
//! Must never: trust any root but the cluster CA, accept a client without a
//! certificate, or use a process-default crypto provider (always ring, explicitly).

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use keel_core::NodeId;
use rcgen::{
    CertificateParams, DnType, ExtendedKeyUsagePurpose, KeyPair, KeyUsagePurpose, SanType,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, UnixTime};
use rustls::server::danger::ClientCertVerifier;
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};

use crate::error::TlsError;
use crate::secret::ClusterSecret;

/// A member's certificate and key, with the client and server configs built from them.
#[derive(Clone)]
pub struct NodeIdentity {
    node_id: NodeId,
    cert: CertificateDer<'static>,
    key: Arc<PrivatePkcs8KeyDer<'static>>,
    server: Arc<ServerConfig>,
    client: Arc<ClientConfig>,
}

impl NodeIdentity {
    /// Signs a fresh key for `node_id` with the cluster CA, valid for every address in `ips`.
    pub fn issue(
        secret: &ClusterSecret,
        node_id: NodeId,
        ips: &[IpAddr],
    ) -> Result<NodeIdentity, TlsError> {
        let name = Self::dns_name(node_id);
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, name.clone());
        params.subject_alt_names = ips.iter().map(|ip| SanType::IpAddress(*ip)).collect();
        params
            .subject_alt_names
            .push(SanType::DnsName(name.try_into()?));
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.use_authority_key_identifier_extension = true;

        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let (issuer, issuer_key) = secret.issuer();
        let cert = params.signed_by(&key, issuer, issuer_key)?;
        let cert = cert.der().clone();
        let key = PrivatePkcs8KeyDer::from(key.serialize_der());
        let ca = secret.ca_cert_der().clone();
        client_verifier(&ca)?
            .verify_client_cert(&cert, &[], UnixTime::now())
            .map_err(|e| {
                TlsError::Rustls(format!("issued certificate does not chain to the CA: {e}"))
            })?;
        Ok(NodeIdentity {
            node_id,
            server: Arc::new(server_config(&cert, &key, &ca)?),
            client: Arc::new(client_config(&cert, &key, &ca)?),
            cert,
            key: Arc::new(key),
        })
    }

    /// The DNS name (and CN) in a node's certificate: `keel-node-<id>`.
    pub fn dns_name(node_id: NodeId) -> String {
        format!("keel-node-{node_id}")
    }

    pub fn node_id(&self) -> NodeId {
        self.node_id
    }

    /// This node's certificate (DER).
    pub fn cert_der(&self) -> &CertificateDer<'static> {
        &self.cert
    }

    /// A server config that requires a client certificate chaining to the cluster CA.
    /// ALPN: h2 and http/1.1.
    pub fn server_config(&self) -> Arc<ServerConfig> {
        self.server.clone()
    }

    /// The server config of the HTTP port (admin and native data API): this node's
    /// certificate (valid for its addresses and `keel-node-<id>`, under the cluster CA),
    /// no client certificate asked (clients authenticate with a token or an access
    /// key). TLS 1.3. ALPN: h2 and http/1.1.
    pub fn http_server_config(&self) -> Result<Arc<ServerConfig>, TlsError> {
        let mut config = ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(rustls_err)?
            .with_no_client_auth()
            .with_single_cert(
                vec![self.cert.clone()],
                PrivateKeyDer::Pkcs8(self.key.clone_key()),
            )
            .map_err(rustls_err)?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }

    /// A client config that trusts only the cluster CA and presents this node's
    /// certificate. ALPN: http/1.1.
    pub fn client_config(&self) -> ClientConfig {
        (*self.client).clone()
    }
}

impl fmt::Debug for NodeIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NodeIdentity")
            .field("node_id", &self.node_id)
            .finish_non_exhaustive()
    }
}

/// The client config of an HTTP-port client (CLI, client library): trusts only the
/// cluster CA (`ca`, DER), presents no certificate. TLS 1.3. ALPN: http/1.1.
pub fn ca_client_config(ca: &CertificateDer<'static>) -> Result<ClientConfig, TlsError> {
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(rustls_err)?
        .with_root_certificates(roots(ca)?)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// Reads the cluster CA certificate from a PEM file (`ca.pem`, or the cluster secret:
/// its first certificate).
pub fn load_ca_cert(path: &std::path::Path) -> Result<CertificateDer<'static>, TlsError> {
    use rustls::pki_types::pem::PemObject;
    let text = std::fs::read(path).map_err(|source| TlsError::SecretIo {
        path: path.to_path_buf(),
        source,
    })?;
    CertificateDer::from_pem_slice(&text).map_err(|e| {
        TlsError::MalformedSecret(format!("{}: no CA certificate: {e}", path.display()))
    })
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn roots(ca: &CertificateDer<'static>) -> Result<Arc<RootCertStore>, TlsError> {
    let mut roots = RootCertStore::empty();
    roots.add(ca.clone()).map_err(rustls_err)?;
    Ok(Arc::new(roots))
}

fn client_verifier(ca: &CertificateDer<'static>) -> Result<Arc<dyn ClientCertVerifier>, TlsError> {
    WebPkiClientVerifier::builder_with_provider(roots(ca)?, provider())
        .build()
        .map_err(rustls_err)
}

fn server_config(
    cert: &CertificateDer<'static>,
    key: &PrivatePkcs8KeyDer<'static>,
    ca: &CertificateDer<'static>,
) -> Result<ServerConfig, TlsError> {
    let verifier = client_verifier(ca)?;
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(rustls_err)?
        .with_client_cert_verifier(verifier)
        .with_single_cert(vec![cert.clone()], PrivateKeyDer::Pkcs8(key.clone_key()))
        .map_err(rustls_err)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

fn client_config(
    cert: &CertificateDer<'static>,
    key: &PrivatePkcs8KeyDer<'static>,
    ca: &CertificateDer<'static>,
) -> Result<ClientConfig, TlsError> {
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(rustls_err)?
        .with_root_certificates(roots(ca)?)
        .with_client_auth_cert(vec![cert.clone()], PrivateKeyDer::Pkcs8(key.clone_key()))
        .map_err(rustls_err)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

fn rustls_err(err: impl fmt::Display) -> TlsError {
    TlsError::Rustls(err.to_string())
}
