//! SigV4 with the cluster's access keys, and each key's scope per request.
//!
//! Owns: handing s3s the secret of a key id ([`KeyAuth`]; s3s checks the signature,
//! in constant time, and answers `InvalidAccessKeyId` / `SignatureDoesNotMatch`), and
//! deciding whether an authenticated key may run an operation on a bucket
//! ([`KeyAccess`]): reads (`Get*`, `Head*`, `List*`) need [`Access::Read`], every other
//! operation [`Access::Write`]. Must never: let an unsigned request through, or look
//! at anything but the key record as the file service returns it now (a deleted key
//! stops working at its next request).

use keel_fs::{Access, Denied, FileService};
use s3s::access::{S3Access, S3AccessContext};
use s3s::auth::{S3Auth, SecretKey};
use s3s::{s3_error, S3Result};
use std::sync::Arc;

pub struct KeyAuth {
    pub fs: Arc<dyn FileService>,
}

#[async_trait::async_trait]
impl S3Auth for KeyAuth {
    async fn get_secret_key(&self, access_key: &str) -> S3Result<SecretKey> {
        match self.fs.access_key(access_key) {
            Some(k) => Ok(SecretKey::from(k.secret)),
            None => Err(s3_error!(
                InvalidAccessKeyId,
                "The AWS access key Id you provided does not exist in our records."
            )),
        }
    }
}

/// Whether an operation only reads.
pub fn is_read_op(name: &str) -> bool {
    name.starts_with("Get") || name.starts_with("Head") || name.starts_with("List")
}

/// Checks that key `id` may do `access` on `bucket` (`None`: no bucket, e.g. listing
/// the buckets).
pub fn check(fs: &dyn FileService, id: &str, bucket: Option<&str>, access: Access) -> S3Result<()> {
    let Some(key) = fs.access_key(id) else {
        return Err(s3_error!(InvalidAccessKeyId));
    };
    key.allows(bucket, access).map_err(|d| match d {
        Denied::ReadOnly => s3_error!(AccessDenied, "the access key is read-only"),
        Denied::Volume(v) => s3_error!(AccessDenied, "the access key is not for bucket {v:?}"),
    })
}

pub struct KeyAccess {
    pub fs: Arc<dyn FileService>,
}

#[async_trait::async_trait]
impl S3Access for KeyAccess {
    async fn check(&self, cx: &mut S3AccessContext<'_>) -> S3Result<()> {
        let Some(cred) = cx.credentials() else {
            return Err(s3_error!(AccessDenied, "a signed request is required"));
        };
        let access = if is_read_op(cx.s3_op().name()) {
            Access::Read
        } else {
            Access::Write
        };
        let bucket = cx.s3_path().get_bucket_name();
        check(self.fs.as_ref(), &cred.access_key, bucket, access)
    }
}
