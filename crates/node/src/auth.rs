//! Who may do what on the HTTP port: the admin token for changes to the cluster, an
//! access key for data. Checked from the local replica of the configuration database
//! only: no read barrier, no lookup, no RPC before a request is authenticated.
//!
//! Owns: parsing `Authorization: Bearer ...`, comparing a presented token or secret with
//! the stored one in constant time (SHA-256 of both, compared with `subtle`), and
//! drawing new key ids, secrets and admin tokens.
//!
//! Must never: compare secrets with `==`, log a secret or a token, or answer a data
//! request that carries no valid key.

use crate::node::NodeShared;
use axum::http::HeaderMap;
use keel_core::{AccessKey, UnixMillis};
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Why a data request is not authenticated (401) or not allowed (403).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthError {
    /// No `Authorization: Bearer ID:SECRET` header.
    Missing,
    /// An unknown key id, a wrong secret, or a revoked key: the same answer for all.
    Wrong,
    /// A valid key, not allowed this (read-only key writing, another volume).
    Denied(String),
}

impl AuthError {
    pub fn http_status(&self) -> u16 {
        match self {
            AuthError::Missing | AuthError::Wrong => 401,
            AuthError::Denied(_) => 403,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            AuthError::Missing | AuthError::Wrong => "unauthenticated",
            AuthError::Denied(_) => "forbidden",
        }
    }

    pub fn message(&self) -> String {
        match self {
            AuthError::Missing => {
                "no access key: send `Authorization: Bearer ID:SECRET` (`keel key create`)".into()
            }
            AuthError::Wrong => "unknown, revoked or wrong access key".into(),
            AuthError::Denied(why) => why.clone(),
        }
    }
}

/// The bearer credential of a request, if any.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
}

pub fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

pub fn sha256_hex(data: &[u8]) -> String {
    hex(&sha256(data))
}

/// Constant-time equality of two secrets of any length (compares their SHA-256).
pub fn same_secret(presented: &[u8], stored: &[u8]) -> bool {
    sha256(presented).ct_eq(&sha256(stored)).into()
}

/// Whether `headers` carry the cluster's admin token: the rotated one if the cluster
/// has one, else the one derived from the CA key.
pub fn is_admin(node: &NodeShared, headers: &HeaderMap) -> bool {
    let Some(presented) = bearer(headers) else {
        return false;
    };
    let rotated = node.db.read(|s| s.credentials.admin_token_sha256.clone());
    let want: [u8; 32] = match rotated.as_deref().and_then(unhex32) {
        Some(h) => h,
        None if rotated.is_some() => return false,
        None => sha256(node.admin_token.as_bytes()),
    };
    sha256(presented.as_bytes()).ct_eq(&want).into()
}

/// The access key a data request carries, checked against the stored one.
pub fn data_key(node: &NodeShared, headers: &HeaderMap) -> Result<AccessKey, AuthError> {
    let presented = bearer(headers).ok_or(AuthError::Missing)?;
    let (id, secret) = presented.split_once(':').ok_or(AuthError::Wrong)?;
    let key = node.db.read(|s| s.credentials.keys.get(id).cloned());
    match key {
        Some(key) if same_secret(secret.as_bytes(), key.secret.as_bytes()) => Ok(key),
        Some(_) => Err(AuthError::Wrong),
        None => {
            // The same work as for a known id, so timing does not tell ids apart.
            let _ = same_secret(secret.as_bytes(), b"no such key");
            Err(AuthError::Wrong)
        }
    }
}

/// A new access key with a random id (20 characters, like an S3 access key id) and
/// secret (40 characters).
pub fn new_key(name: String, volumes: Vec<String>, read_only: bool, at: UnixMillis) -> AccessKey {
    let mut id = [0u8; 8];
    let mut secret = [0u8; 20];
    rand::rngs::OsRng.fill_bytes(&mut id);
    rand::rngs::OsRng.fill_bytes(&mut secret);
    AccessKey {
        id: format!("KEEL{}", hex(&id).to_ascii_uppercase()),
        name,
        secret: hex(&secret),
        volumes,
        read_only,
        created_at: at,
    }
}

/// A new admin token: 64 hex digits, like the derived one.
pub fn new_admin_token() -> String {
    let mut t = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut t);
    hex(&t)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex32(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_compare_by_content() {
        assert!(same_secret(b"abc", b"abc"));
        assert!(!same_secret(b"abc", b"abd"));
        assert!(!same_secret(b"abc", b"abcd"));
    }

    #[test]
    fn hex_round_trips() {
        let h = sha256_hex(b"x");
        assert_eq!(unhex32(&h), Some(sha256(b"x")));
        assert_eq!(unhex32("zz"), None);
    }

    #[test]
    fn new_keys_are_well_formed_and_distinct() {
        let a = new_key("a".into(), vec![], false, 0);
        let b = new_key("a".into(), vec![], false, 0);
        assert_ne!(a.id, b.id);
        assert_ne!(a.secret, b.secret);
        assert_eq!(a.id.len(), 20);
        assert_eq!(a.secret.len(), 40);
        let mut c = keel_core::Credentials::default();
        c.apply(keel_core::CredentialCommand::CreateKey { key: a })
            .expect("a drawn key is valid");
    }
}
