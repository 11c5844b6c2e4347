//! What the gateway stores beside an object's bytes, and how it shows it: the
//! metadata keys kept in `PutOptions.meta` / `Attr.meta`, ETags, timestamps, and the
//! mapping of [`FsError`] to S3 error codes.
//!
//! Owns: the meta key names (`content-type`, `x-amz-meta-<name>`, and the gateway's
//! own `x-keel-*`), the ETag rule, the error mapping. Must never: hand a client an
//! `x-keel-*` key as user metadata, or an ETag that looks like an MD5 of the content
//! when it is not one.
//!
//! ETags. A file written whole (`put_file`) carries the MD5 of its content
//! ([`Attr::md5`]): its ETag is that MD5 in hex, quoted — except an object assembled
//! by CompleteMultipartUpload, whose ETag is S3's multipart ETag (the MD5 of the
//! parts' MD5s, `-N`), kept in the meta key [`META_ETAG`] and valid only while the
//! file keeps the MD5 of that put. A file written at an offset (NFS) has no MD5: its
//! ETag is `"<ino as 16 hex><generation as 16 hex>-1"` — stable for a given content
//! on every gateway and across restarts (both numbers are cluster-wide), changing on
//! every write, and shaped like a multipart ETag so that no client mistakes it for
//! the MD5 of the bytes.

use keel_fs::{Attr, FsError};
use s3s::dto::{ETag, Metadata, Timestamp};
use s3s::{S3Error, S3ErrorCode};
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

/// The content type as given at the put.
pub const META_CONTENT_TYPE: &str = "content-type";
/// User metadata: `x-amz-meta-<name>` (name lowercased, as S3 does).
pub const META_USER_PREFIX: &str = "x-amz-meta-";
/// The gateway's own keys; never returned as user metadata.
pub const META_KEEL_PREFIX: &str = "x-keel-";
/// The multipart ETag of an object assembled from parts.
pub const META_ETAG: &str = "x-keel-etag";
/// In an upload's record: the key the upload will complete into.
pub const META_UPLOAD_KEY: &str = "x-keel-upload-key";

/// The meta to store for a put with this content type and user metadata.
pub fn meta_for(content_type: Option<&str>, user: Option<&Metadata>) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    if let Some(ct) = content_type {
        m.insert(META_CONTENT_TYPE.to_string(), ct.to_string());
    }
    for (k, v) in user.into_iter().flatten() {
        m.insert(
            format!("{META_USER_PREFIX}{}", k.to_ascii_lowercase()),
            v.clone(),
        );
    }
    m
}

/// Whether `name: value` can be sent as an HTTP header (meta written by another
/// gateway may hold anything; an entry that cannot is left out of the answer).
fn header_ok(name: &str, value: &str) -> bool {
    http::HeaderName::from_bytes(name.as_bytes()).is_ok()
        && http::HeaderValue::from_str(value).is_ok()
}

/// The user metadata (`x-amz-meta-*`, prefix stripped) of a file.
pub fn user_meta(attr: &Attr) -> Option<Metadata> {
    let m: Metadata = attr
        .meta
        .iter()
        .filter(|(k, v)| header_ok(k, v))
        .filter_map(|(k, v)| Some((k.strip_prefix(META_USER_PREFIX)?.to_string(), v.clone())))
        .filter(|(k, _)| !k.is_empty())
        .collect();
    (!m.is_empty()).then_some(m)
}

pub fn content_type(attr: &Attr) -> Option<String> {
    attr.meta
        .get(META_CONTENT_TYPE)
        .filter(|v| header_ok(META_CONTENT_TYPE, v))
        .cloned()
}

/// The meta a copy keeps (everything but the gateway's own keys).
pub fn copied_meta(attr: &Attr) -> BTreeMap<String, String> {
    attr.meta
        .iter()
        .filter(|(k, _)| !k.starts_with(META_KEEL_PREFIX))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// The ETag value (without quotes) of a file; see the module header.
pub fn etag_value(attr: &Attr) -> String {
    match attr.md5 {
        Some(md5) => match attr.meta.get(META_ETAG) {
            Some(e) if e.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') => e.clone(),
            _ => hex::encode(md5),
        },
        None => format!("{:016x}{:016x}-1", attr.ino, attr.generation),
    }
}

pub fn etag(attr: &Attr) -> ETag {
    ETag::Strong(etag_value(attr))
}

/// S3's ETag of a multipart object: the MD5 of the parts' MD5s, then `-N`.
pub fn multipart_etag(part_md5s: &[[u8; 16]]) -> String {
    use md5::{Digest, Md5};
    let mut h = Md5::new();
    for m in part_md5s {
        h.update(m);
    }
    format!("{}-{}", hex::encode(h.finalize()), part_md5s.len())
}

/// The last millisecond of the year 9999: the latest time an HTTP date can carry.
const MAX_MILLIS: i64 = 253_402_300_799_999;

/// A time for S3 (clamped to 1970..=9999: a file's times can be set to anything).
pub fn timestamp(ms: keel_fs::UnixMillis) -> Timestamp {
    let ms = ms.clamp(0, MAX_MILLIS) as u64;
    Timestamp::from(SystemTime::UNIX_EPOCH + Duration::from_millis(ms))
}

fn custom(code: &'static str, status: u16, msg: String) -> S3Error {
    let mut e = S3Error::with_message(S3ErrorCode::Custom(code.into()), msg);
    if let Ok(s) = hyper::StatusCode::from_u16(status) {
        e.set_status_code(s);
    }
    e
}

/// A key's parent path is a file (`a/b` exists and a PUT names `a/b/c`).
pub fn parent_is_object(key: &str) -> S3Error {
    custom(
        "ParentIsObject",
        409,
        format!("a prefix of the key {key:?} is an object, so it cannot hold other keys"),
    )
}

/// A PUT names a key that is a directory (other keys live under `key/`).
pub fn key_is_prefix(key: &str) -> S3Error {
    custom(
        "KeyIsPrefix",
        409,
        format!("the key {key:?} names a directory of other keys"),
    )
}

/// The general mapping of a file service error to S3. Handlers map `NotFound`,
/// `NotDir` and `IsDir` themselves where the context gives them a better code.
pub fn fs_error(e: FsError) -> S3Error {
    match e {
        FsError::NotFound | FsError::Stale => S3Error::new(S3ErrorCode::NoSuchKey),
        FsError::NoVolume(v) => {
            S3Error::with_message(S3ErrorCode::NoSuchBucket, format!("no bucket {v:?}"))
        }
        FsError::Exists => S3Error::with_message(S3ErrorCode::InvalidRequest, "already exists"),
        FsError::NotDir => S3Error::with_message(
            S3ErrorCode::InvalidArgument,
            "a prefix of the key is an object",
        ),
        FsError::IsDir => S3Error::with_message(S3ErrorCode::InvalidArgument, "a directory"),
        FsError::NotEmpty => S3Error::new(S3ErrorCode::BucketNotEmpty),
        FsError::InvalidName(m) | FsError::Invalid(m) => {
            S3Error::with_message(S3ErrorCode::InvalidArgument, m)
        }
        FsError::TooLarge(m) => S3Error::with_message(S3ErrorCode::EntityTooLarge, m),
        FsError::NoSpace(m) => custom("InsufficientStorage", 507, m),
        FsError::Denied(m) => S3Error::with_message(S3ErrorCode::AccessDenied, m),
        FsError::Unavailable(m) => S3Error::with_message(S3ErrorCode::ServiceUnavailable, m),
        FsError::Io(m) => S3Error::with_message(S3ErrorCode::InternalError, m),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attr(md5: Option<[u8; 16]>, meta: &[(&str, &str)]) -> Attr {
        Attr {
            ino: 0x1234,
            volume_root: 1,
            kind: keel_fs::Kind::File,
            size: 0,
            mode: 0o644,
            uid: 0,
            gid: 0,
            nlink: 1,
            atime: 0,
            mtime: 0,
            ctime: 0,
            parent: 1,
            generation: 7,
            md5,
            meta: meta
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn etags() {
        assert_eq!(etag_value(&attr(Some([0xab; 16]), &[])), "ab".repeat(16));
        assert_eq!(
            etag_value(&attr(Some([0xab; 16]), &[(META_ETAG, "x-2")])),
            "x-2"
        );
        // Written at an offset: the multipart ETag no longer holds.
        assert_eq!(
            etag_value(&attr(None, &[(META_ETAG, "x-2")])),
            "00000000000012340000000000000007-1"
        );
        // S3's value for two parts of 5 MiB of zeros and one byte "a".
        use md5::{Digest, Md5};
        let p1: [u8; 16] = Md5::digest(vec![0u8; 5 << 20]).into();
        let p2: [u8; 16] = Md5::digest(b"a").into();
        let e = multipart_etag(&[p1, p2]);
        assert!(e.ends_with("-2") && e.len() == 34, "{e}");
    }

    #[test]
    fn times_out_of_range_are_clamped() {
        for ms in [i64::MIN, -1, 0, i64::MAX, MAX_MILLIS + 1] {
            let _ = timestamp(ms);
        }
        assert_eq!(timestamp(i64::MAX), timestamp(MAX_MILLIS));
    }

    #[test]
    fn meta_that_cannot_be_a_header_is_left_out() {
        let a = attr(
            Some([1; 16]),
            &[
                ("x-amz-meta-ok", "v"),
                ("x-amz-meta-bad", "a\nb"),
                ("x-amz-meta-", "empty name"),
                ("x-amz-meta-sp ace", "v"),
                ("content-type", "text/plain\r\nx: y"),
                (META_ETAG, "\"inject"),
            ],
        );
        let m = user_meta(&a).unwrap();
        assert_eq!(m.len(), 1, "{m:?}");
        assert_eq!(content_type(&a), None);
        assert_eq!(etag_value(&a), "01".repeat(16));
    }

    #[test]
    fn metadata_round_trip() {
        let mut user = Metadata::new();
        user.insert("Color".into(), "blue".into());
        let m = meta_for(Some("text/plain"), Some(&user));
        let mut a = attr(Some([0; 16]), &[]);
        a.meta = m;
        a.meta.insert(META_ETAG.into(), "z".into());
        assert_eq!(content_type(&a).as_deref(), Some("text/plain"));
        assert_eq!(
            user_meta(&a).unwrap().get("color").map(String::as_str),
            Some("blue")
        );
        assert!(!copied_meta(&a).contains_key(META_ETAG));
        assert_eq!(copied_meta(&a).len(), 2);
    }
}
