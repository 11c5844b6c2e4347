//! Data credentials: access keys for the native API (and, later, the S3 gateway), and
//! the admin token once it has been rotated away from the one derived from the CA key.
//!
//! Owns: the key records as the configuration database replicates them, the commands'
//! effect on them ([`Credentials::apply`]), and what a key allows ([`AccessKey::allows`]).
//!
//! Must never: compare a presented secret (that is the node's job, in constant time),
//! hand a key's secret to anything but a member (the records live in the replicated
//! configuration database, which only members read), or generate randomness (the
//! leader draws the id and secret; applying a command is deterministic).
//!
//! The secret is kept as given, not hashed: SigV4 (the S3 gateway) signs with an HMAC
//! keyed by the secret itself, so the gateway needs it. See docs/design-decisions.md.

use crate::error::ClusterError;
use crate::ids::UnixMillis;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The longest key name an operator may give.
pub const MAX_KEY_NAME: usize = 64;

/// One access key: an id (public, like an S3 access key id), a secret, and its scope.
#[derive(Serialize, Deserialize, Clone, PartialEq)]
pub struct AccessKey {
    pub id: String,
    /// The operator's label (`keel key create NAME`).
    pub name: String,
    pub secret: String,
    /// The volumes the key may use; empty: every volume.
    #[serde(default)]
    pub volumes: Vec<String>,
    /// Reads only (get, stat, list); every change is refused.
    #[serde(default)]
    pub read_only: bool,
    pub created_at: UnixMillis,
}

impl std::fmt::Debug for AccessKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessKey")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("volumes", &self.volumes)
            .field("read_only", &self.read_only)
            .finish_non_exhaustive()
    }
}

/// What a request wants to do with a volume.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
}

/// Why a valid key may not do what it asks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Denied {
    /// A read-only key asked for a change.
    ReadOnly,
    /// The key is not for this volume.
    Volume(String),
}

impl AccessKey {
    /// Whether this key may do `access` on `volume` (`None`: no particular volume, e.g.
    /// listing the volumes).
    pub fn allows(&self, volume: Option<&str>, access: Access) -> Result<(), Denied> {
        if access == Access::Write && self.read_only {
            return Err(Denied::ReadOnly);
        }
        match volume {
            Some(v) if !self.volumes.is_empty() && !self.volumes.iter().any(|k| k == v) => {
                Err(Denied::Volume(v.to_string()))
            }
            _ => Ok(()),
        }
    }
}

/// Every credential the cluster knows.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct Credentials {
    /// Access keys by id.
    #[serde(default)]
    pub keys: BTreeMap<String, AccessKey>,
    /// SHA-256 (hex) of the admin token once rotated; `None`: the token derived from the
    /// cluster CA key is the admin token.
    #[serde(default)]
    pub admin_token_sha256: Option<String>,
}

/// The changes to [`Credentials`], one family of [`crate::ClusterCommand`].
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub enum CredentialCommand {
    CreateKey {
        key: AccessKey,
    },
    DeleteKey {
        id: String,
    },
    /// The admin token is now the one whose SHA-256 (hex) this is; the old one (derived
    /// or rotated) stops working.
    SetAdminToken {
        sha256: String,
        at: UnixMillis,
    },
}

impl Credentials {
    pub fn apply(&mut self, cmd: CredentialCommand) -> Result<(), ClusterError> {
        match cmd {
            CredentialCommand::CreateKey { key } => {
                check_key(&key)?;
                if self.keys.contains_key(&key.id) {
                    return Err(ClusterError::InvalidKey {
                        reason: format!("key {} already exists", key.id),
                    });
                }
                self.keys.insert(key.id.clone(), key);
                Ok(())
            }
            CredentialCommand::DeleteKey { id } => match self.keys.remove(&id) {
                Some(_) => Ok(()),
                None => Err(ClusterError::InvalidKey {
                    reason: format!("no key {id}"),
                }),
            },
            CredentialCommand::SetAdminToken { sha256, .. } => {
                if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(ClusterError::InvalidKey {
                        reason: "an admin token hash is 64 hex digits".into(),
                    });
                }
                self.admin_token_sha256 = Some(sha256.to_ascii_lowercase());
                Ok(())
            }
        }
    }
}

fn check_key(key: &AccessKey) -> Result<(), ClusterError> {
    let bad = |reason: &str| {
        Err(ClusterError::InvalidKey {
            reason: reason.to_string(),
        })
    };
    if key.id.is_empty() || !key.id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return bad("a key id is letters and digits");
    }
    if key.secret.len() < 32 || key.secret.contains(':') || key.secret.contains(char::is_whitespace)
    {
        return bad("a key secret is at least 32 characters, no ':' or spaces");
    }
    if key.name.is_empty()
        || key.name.len() > MAX_KEY_NAME
        || key.name.chars().any(char::is_control)
    {
        return bad("a key name is 1 to 64 characters, no control characters");
    }
    if key.volumes.iter().any(|v| v.is_empty()) {
        return bad("a volume name is not empty");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: &str, volumes: &[&str], read_only: bool) -> AccessKey {
        AccessKey {
            id: id.into(),
            name: "test".into(),
            secret: "s".repeat(40),
            volumes: volumes.iter().map(|v| v.to_string()).collect(),
            read_only,
            created_at: 0,
        }
    }

    #[test]
    fn scope_is_checked() {
        let rw = key("A", &[], false);
        assert_eq!(rw.allows(Some("x"), Access::Write), Ok(()));
        let ro = key("B", &["photos"], true);
        assert_eq!(ro.allows(Some("photos"), Access::Read), Ok(()));
        assert_eq!(
            ro.allows(Some("photos"), Access::Write),
            Err(Denied::ReadOnly)
        );
        assert_eq!(
            ro.allows(Some("other"), Access::Read),
            Err(Denied::Volume("other".into()))
        );
        assert_eq!(ro.allows(None, Access::Read), Ok(()));
    }

    #[test]
    fn create_delete_rotate() {
        let mut c = Credentials::default();
        c.apply(CredentialCommand::CreateKey {
            key: key("A", &[], false),
        })
        .unwrap();
        assert!(c
            .apply(CredentialCommand::CreateKey {
                key: key("A", &[], false)
            })
            .is_err());
        c.apply(CredentialCommand::DeleteKey { id: "A".into() })
            .unwrap();
        assert!(c
            .apply(CredentialCommand::DeleteKey { id: "A".into() })
            .is_err());
        assert!(c
            .apply(CredentialCommand::SetAdminToken {
                sha256: "zz".into(),
                at: 0
            })
            .is_err());
        c.apply(CredentialCommand::SetAdminToken {
            sha256: "AB".repeat(32),
            at: 0,
        })
        .unwrap();
        assert_eq!(c.admin_token_sha256, Some("ab".repeat(32)));
    }

    #[test]
    fn malformed_keys_are_refused() {
        let mut c = Credentials::default();
        let mut k = key("A:B", &[], false);
        assert!(c
            .apply(CredentialCommand::CreateKey { key: k.clone() })
            .is_err());
        k.id = "A".into();
        k.secret = "short".into();
        assert!(c.apply(CredentialCommand::CreateKey { key: k }).is_err());
    }

    #[test]
    fn debug_never_prints_the_secret() {
        let k = key("A", &[], false);
        assert!(!format!("{k:?}").contains(&k.secret));
    }
}
