//! The S3 operations over a [`FileService`]: buckets are volumes, keys are paths.
//!
//! Owns: what each supported S3 operation does to the file service, and the
//! multipart upload layout (`.keel-uploads/<upload-id>/` at the volume's root: a
//! record file `upload` whose meta holds the target key and the object's metadata,
//! and one file per part, `part-NNNNN`; CompleteMultipartUpload streams the parts in
//! order into one `put_file` of the key, then removes the directory).
//! Must never: reach a path that [`crate::names::parse_key`] did not accept, list or
//! address the upload directory as a key, or commit an object whose body did not
//! arrive whole (every put goes through `put_file`, which is atomic).

use crate::auth;
use crate::list::{self, Item, Query};
use crate::names::{self, KeyError, UPLOADS_DIR};
use crate::objects::*;
use bytes::Bytes;
use futures::{Stream, StreamExt};
use keel_fs::{Access, Attr, ByteStream, FileService, FsError, Ino, PutOptions};
use md5::{Digest, Md5};
use s3s::dto::*;
use s3s::{s3_error, S3Error, S3ErrorCode, S3Request, S3Response, S3Result, S3};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// How many bytes one read of the file service asks for when streaming a body.
const READ_CHUNK: u32 = 1 << 20;
/// The smallest part S3 accepts, but for the last one.
pub const MIN_PART_SIZE: u64 = 5 << 20;
/// The record file of an upload.
const UPLOAD_RECORD: &str = "upload";

pub struct Gateway {
    pub fs: Arc<dyn FileService>,
    pub region: String,
}

fn key_error(e: KeyError) -> S3Error {
    match e {
        KeyError::TooLong => s3_error!(KeyTooLongError, "{e}"),
        KeyError::Invalid(m) => s3_error!(InvalidArgument, "invalid key: {m}"),
    }
}

fn parse_key(key: &str) -> S3Result<names::Key<'_>> {
    names::parse_key(key).map_err(key_error)
}

/// A key that must name a file (not a `dir/` marker).
fn file_key(key: &str) -> S3Result<names::Key<'_>> {
    let k = parse_key(key)?;
    if k.dir_marker {
        return Err(s3_error!(NoSuchKey));
    }
    Ok(k)
}

fn no_bucket(bucket: &str) -> S3Error {
    s3_error!(NoSuchBucket, "no bucket {bucket:?}")
}

/// Streams `len` bytes of a file from `offset` (an `fs.read` per MiB).
pub fn read_stream(
    fs: Arc<dyn FileService>,
    ino: Ino,
    offset: u64,
    len: u64,
) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
    futures::stream::unfold((offset, len), move |(at, left)| {
        let fs = fs.clone();
        async move {
            if left == 0 {
                return None;
            }
            let want = left.min(READ_CHUNK as u64) as u32;
            match fs.read(ino, at, want).await {
                Ok((b, _)) if b.is_empty() => Some((
                    Err(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "the file shrank while it was read",
                    )),
                    (at, 0),
                )),
                Ok((b, _)) => {
                    let n = b.len() as u64;
                    Some((Ok(b), (at + n, left.saturating_sub(n))))
                }
                Err(e) => Some((Err(std::io::Error::other(e)), (at, 0))),
            }
        }
    })
}

/// A body for s3s: the read stream, fed through a channel so that it is `Sync`.
fn body_of(fs: Arc<dyn FileService>, ino: Ino, offset: u64, len: u64) -> StreamingBlob {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    tokio::spawn(async move {
        let mut s = std::pin::pin!(read_stream(fs, ino, offset, len));
        while let Some(item) = s.next().await {
            let stop = item.is_err();
            if tx.send(item).await.is_err() || stop {
                break;
            }
        }
    });
    StreamingBlob::wrap(futures::stream::poll_fn(move |cx| rx.poll_recv(cx)))
}

/// An uploaded body as a put stream, checking a `Content-MD5` when one was given: a
/// mismatch fails the stream at its end, so the put is not committed.
fn put_stream(
    body: Option<StreamingBlob>,
    want_md5: Option<[u8; 16]>,
    bad_digest: Arc<AtomicBool>,
) -> ByteStream {
    let Some(body) = body else {
        return match want_md5 {
            Some(m) if m != <[u8; 16]>::from(Md5::digest(b"")) => {
                bad_digest.store(true, Ordering::SeqCst);
                Box::pin(futures::stream::iter(vec![Err(std::io::Error::other(
                    "bad digest",
                ))]))
            }
            _ => Box::pin(futures::stream::empty()),
        };
    };
    let hasher = Arc::new(Mutex::new(Md5::new()));
    let h = hasher.clone();
    let data = body.map(move |r| {
        let b = r.map_err(std::io::Error::other)?;
        if want_md5.is_some() {
            h.lock().unwrap().update(&b);
        }
        Ok(b)
    });
    let tail = futures::stream::once(async move {
        if let Some(want) = want_md5 {
            let got: [u8; 16] = hasher.lock().unwrap().clone().finalize().into();
            if got != want {
                bad_digest.store(true, Ordering::SeqCst);
                return Err(std::io::Error::other("bad digest"));
            }
        }
        Ok(Bytes::new())
    });
    Box::pin(data.chain(tail).filter(|r| {
        let keep = !matches!(r, Ok(b) if b.is_empty());
        async move { keep }
    }))
}

fn parse_content_md5(v: Option<&str>) -> S3Result<Option<[u8; 16]>> {
    let Some(v) = v else { return Ok(None) };
    let bytes = base64_decode(v.trim()).ok_or_else(|| s3_error!(InvalidDigest))?;
    let arr: [u8; 16] = bytes.try_into().map_err(|_| s3_error!(InvalidDigest))?;
    Ok(Some(arr))
}

/// Standard base64 (with padding), for `Content-MD5`.
fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let val = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let b = s.as_bytes();
    if !b.len().is_multiple_of(4) {
        return None;
    }
    let mut out = Vec::with_capacity(b.len() / 4 * 3);
    for chunk in b.chunks(4) {
        let pad = chunk.iter().rev().take_while(|c| **c == b'=').count();
        if pad > 2 {
            return None;
        }
        let mut n = 0u32;
        for (i, c) in chunk.iter().enumerate() {
            let v = if i >= 4 - pad { 0 } else { val(*c)? };
            n = (n << 6) | v;
        }
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&bytes[..3 - pad]);
    }
    Some(out)
}

/// GET/HEAD preconditions, as S3 applies them: `If-Match` failing or
/// `If-Unmodified-Since` failing (without `If-Match`) → 412; `If-None-Match` matching,
/// or `If-Modified-Since` not modified (without `If-None-Match`) → 304. Times compare
/// in whole seconds (HTTP dates have no more).
fn preconditions(
    attr: &Attr,
    if_match: Option<&ETagCondition>,
    if_none_match: Option<&ETagCondition>,
    if_modified_since: Option<&Timestamp>,
    if_unmodified_since: Option<&Timestamp>,
) -> S3Result<()> {
    let value = etag_value(attr);
    let matches = |c: &ETagCondition| match c {
        ETagCondition::Any => true,
        ETagCondition::ETag(e) => e.value() == value,
    };
    let mtime = timestamp(attr.mtime.div_euclid(1000) * 1000);
    match if_match {
        Some(c) if !matches(c) => return Err(s3_error!(PreconditionFailed)),
        None if if_unmodified_since.is_some_and(|t| mtime > *t) => {
            return Err(s3_error!(PreconditionFailed))
        }
        _ => {}
    }
    match if_none_match {
        Some(c) if matches(c) => Err(s3_error!(NotModified)),
        None if if_modified_since.is_some_and(|t| mtime <= *t) => Err(s3_error!(NotModified)),
        _ => Ok(()),
    }
}

impl Gateway {
    fn fs(&self) -> &dyn FileService {
        self.fs.as_ref()
    }

    async fn bucket_root(&self, bucket: &str) -> S3Result<Attr> {
        match self.fs().resolve(bucket, "").await {
            Ok(a) => Ok(a),
            Err(FsError::NoVolume(_)) => Err(no_bucket(bucket)),
            Err(e) => Err(fs_error(e)),
        }
    }

    /// The file a key names; `NoSuchKey` for a directory or a missing path.
    async fn object(&self, bucket: &str, key: &str) -> S3Result<Attr> {
        let k = file_key(key)?;
        match self.fs().resolve(bucket, k.path).await {
            Ok(a) if a.is_dir() => Err(s3_error!(NoSuchKey)),
            Ok(a) => Ok(a),
            Err(FsError::NoVolume(_)) => Err(no_bucket(bucket)),
            Err(FsError::NotFound | FsError::NotDir | FsError::Stale) => Err(s3_error!(NoSuchKey)),
            Err(e) => Err(fs_error(e)),
        }
    }

    /// Puts a whole object, mapping the path errors to what a PUT client should see.
    async fn put(
        &self,
        bucket: &str,
        key: &str,
        body: ByteStream,
        opts: PutOptions,
    ) -> S3Result<Attr> {
        let k = parse_key(key)?;
        match self.fs().put_file(bucket, k.path, body, opts).await {
            Ok(a) => Ok(a),
            Err(FsError::NoVolume(_)) => Err(no_bucket(bucket)),
            Err(FsError::NotDir) => Err(parent_is_object(key)),
            Err(FsError::IsDir) => Err(key_is_prefix(key)),
            Err(e) => Err(fs_error(e)),
        }
    }

    /// Creates the directories of a `dir/` marker key (an empty PUT of `a/b/`).
    async fn mkdirs(&self, bucket: &str, path: &str) -> S3Result<Attr> {
        let mut at = self.bucket_root(bucket).await?;
        for seg in path.split('/') {
            at = match self.fs().lookup(at.ino, seg).await {
                Ok(a) if a.is_dir() => a,
                Ok(_) => return Err(parent_is_object(path)),
                Err(FsError::NotFound) => match self.fs().mkdir(at.ino, seg, 0o755).await {
                    Ok(a) => a,
                    Err(FsError::Exists) => {
                        self.fs().lookup(at.ino, seg).await.map_err(fs_error)?
                    }
                    Err(e) => return Err(fs_error(e)),
                },
                Err(e) => return Err(fs_error(e)),
            };
        }
        Ok(at)
    }

    /// Removes the file a key names, then the directories above it that this left
    /// empty (so that a deleted key leaves no empty "folder" behind). A missing key is
    /// not an error (S3 deletes are idempotent).
    async fn delete_key(&self, bucket: &str, key: &str) -> S3Result<()> {
        let k = parse_key(key)?;
        let (dir_path, name) = k.split();
        let dir = match self.fs().resolve(bucket, dir_path).await {
            Ok(d) if d.is_dir() => d,
            Ok(_) => return Ok(()),
            Err(FsError::NoVolume(_)) => return Err(no_bucket(bucket)),
            Err(FsError::NotFound | FsError::NotDir | FsError::Stale) => return Ok(()),
            Err(e) => return Err(fs_error(e)),
        };
        let r = if k.dir_marker {
            self.fs().rmdir(dir.ino, name).await
        } else {
            self.fs().remove(dir.ino, name).await
        };
        match r {
            Ok(()) => {}
            Err(FsError::NotFound | FsError::Stale | FsError::IsDir | FsError::NotDir) => {
                return Ok(())
            }
            Err(FsError::NotEmpty) => {
                return Err(S3Error::with_message(
                    S3ErrorCode::Custom("DirectoryNotEmpty".into()),
                    format!("{key:?} is a directory that still holds keys"),
                ))
            }
            Err(e) => return Err(fs_error(e)),
        }
        self.prune(bucket, dir_path).await;
        Ok(())
    }

    /// Removes the empty directories of `path` from the deepest up (best effort).
    async fn prune(&self, bucket: &str, path: &str) {
        let mut path = path.to_string();
        while !path.is_empty() {
            let (parent, name) = match path.rsplit_once('/') {
                Some((p, n)) => (p.to_string(), n.to_string()),
                None => (String::new(), path.clone()),
            };
            let Ok(p) = self.fs().resolve(bucket, &parent).await else {
                return;
            };
            if self.fs().rmdir(p.ino, &name).await.is_err() {
                return;
            }
            path = parent;
        }
    }

    // ---- multipart ----

    fn upload_dir(id: &str) -> String {
        format!("{UPLOADS_DIR}/{id}")
    }

    /// The record of upload `id` for `key`; `NoSuchUpload` if there is none.
    async fn upload(&self, bucket: &str, key: &str, id: &str) -> S3Result<Attr> {
        if !names::is_upload_id(id) {
            return Err(s3_error!(NoSuchUpload));
        }
        let path = format!("{}/{UPLOAD_RECORD}", Self::upload_dir(id));
        match self.fs().resolve(bucket, &path).await {
            Ok(a) if a.meta.get(META_UPLOAD_KEY).map(String::as_str) == Some(key) => Ok(a),
            Ok(_) => Err(s3_error!(NoSuchUpload)),
            Err(FsError::NoVolume(_)) => Err(no_bucket(bucket)),
            Err(FsError::NotFound | FsError::NotDir | FsError::Stale) => {
                Err(s3_error!(NoSuchUpload))
            }
            Err(e) => Err(fs_error(e)),
        }
    }

    /// The parts of an upload, by number.
    async fn parts(&self, record: &Attr) -> S3Result<BTreeMap<i32, Attr>> {
        let mut parts = BTreeMap::new();
        let mut after: Option<String> = None;
        loop {
            let page = self
                .fs()
                .readdir(record.parent, after.as_deref(), 1000)
                .await
                .map_err(fs_error)?;
            for e in &page.entries {
                if let Some(n) = names::parse_part_name(&e.name) {
                    parts.insert(n, e.attr.clone());
                }
            }
            match (page.more, page.entries.last()) {
                (true, Some(l)) => after = Some(l.name.clone()),
                _ => break,
            }
        }
        Ok(parts)
    }

    /// Removes an upload's directory and everything in it.
    async fn drop_upload(&self, bucket: &str, record: &Attr, id: &str) -> S3Result<()> {
        let dir = record.parent;
        loop {
            let page = self.fs().readdir(dir, None, 1000).await.map_err(fs_error)?;
            for e in &page.entries {
                match self.fs().remove(dir, &e.name).await {
                    Ok(()) | Err(FsError::NotFound) => {}
                    Err(e) => return Err(fs_error(e)),
                }
            }
            if !page.more {
                break;
            }
        }
        let uploads = self
            .fs()
            .resolve(bucket, UPLOADS_DIR)
            .await
            .map_err(fs_error)?;
        match self.fs().rmdir(uploads.ino, id).await {
            Ok(()) | Err(FsError::NotFound) => Ok(()),
            Err(e) => Err(fs_error(e)),
        }
    }

    fn check_source(
        &self,
        req_cred: Option<&s3s::auth::Credentials>,
        bucket: &str,
    ) -> S3Result<()> {
        match req_cred {
            Some(c) => auth::check(self.fs(), &c.access_key, Some(bucket), Access::Read),
            None => Err(s3_error!(AccessDenied)),
        }
    }
}

fn object_entry(key: String, attr: &Attr, encode: bool) -> Object {
    Object {
        key: Some(if encode { names::url_encode(&key) } else { key }),
        e_tag: Some(etag(attr)),
        last_modified: Some(timestamp(attr.mtime)),
        size: Some(attr.size as i64),
        storage_class: Some(ObjectStorageClass::from_static(
            ObjectStorageClass::STANDARD,
        )),
        ..Default::default()
    }
}

fn wants_url(e: &Option<EncodingType>) -> bool {
    e.as_ref().is_some_and(|e| e.as_str() == EncodingType::URL)
}

fn enc(s: Option<String>, encode: bool) -> Option<String> {
    s.map(|s| if encode { names::url_encode(&s) } else { s })
}

fn split_listing(l: list::Listing, encode: bool) -> (Vec<Object>, Vec<CommonPrefix>) {
    let mut objects = Vec::new();
    let mut prefixes = Vec::new();
    for item in l.items {
        match item {
            Item::Object { key, attr } => objects.push(object_entry(key, &attr, encode)),
            Item::Prefix(p) => prefixes.push(CommonPrefix {
                prefix: Some(if encode { names::url_encode(&p) } else { p }),
            }),
        }
    }
    (objects, prefixes)
}

#[async_trait::async_trait]
impl S3 for Gateway {
    // ---- buckets ----

    async fn create_bucket(
        &self,
        req: S3Request<CreateBucketInput>,
    ) -> S3Result<S3Response<CreateBucketOutput>> {
        let bucket = &req.input.bucket;
        if !names::is_bucket_name(bucket) {
            return Err(s3_error!(InvalidBucketName));
        }
        match self.fs().resolve(bucket, "").await {
            Ok(_) => return Err(s3_error!(BucketAlreadyOwnedByYou)),
            Err(FsError::NoVolume(_)) => {}
            Err(e) => return Err(fs_error(e)),
        }
        self.fs().create_volume(bucket).await.map_err(fs_error)?;
        Ok(S3Response::new(CreateBucketOutput {
            location: Some(format!("/{bucket}")),
        }))
    }

    async fn delete_bucket(
        &self,
        req: S3Request<DeleteBucketInput>,
    ) -> S3Result<S3Response<DeleteBucketOutput>> {
        let bucket = &req.input.bucket;
        let root = self.bucket_root(bucket).await?;
        // The upload directory goes with the bucket when no upload is in progress.
        match self.fs().rmdir(root.ino, UPLOADS_DIR).await {
            Ok(()) | Err(FsError::NotFound) => {}
            Err(FsError::NotEmpty) => {
                return Err(s3_error!(
                    BucketNotEmpty,
                    "multipart uploads are in progress"
                ))
            }
            Err(e) => return Err(fs_error(e)),
        }
        match self.fs().delete_volume(bucket).await {
            Ok(()) => Ok(S3Response::new(DeleteBucketOutput {})),
            Err(FsError::NotEmpty) => Err(s3_error!(BucketNotEmpty)),
            Err(FsError::NoVolume(_)) => Err(no_bucket(bucket)),
            Err(e) => Err(fs_error(e)),
        }
    }

    async fn head_bucket(
        &self,
        req: S3Request<HeadBucketInput>,
    ) -> S3Result<S3Response<HeadBucketOutput>> {
        self.bucket_root(&req.input.bucket).await?;
        Ok(S3Response::new(HeadBucketOutput {
            bucket_region: Some(self.region.clone()),
            ..Default::default()
        }))
    }

    async fn get_bucket_location(
        &self,
        req: S3Request<GetBucketLocationInput>,
    ) -> S3Result<S3Response<GetBucketLocationOutput>> {
        self.bucket_root(&req.input.bucket).await?;
        Ok(S3Response::new(GetBucketLocationOutput {
            location_constraint: Some(BucketLocationConstraint::from(self.region.clone())),
        }))
    }

    async fn list_buckets(
        &self,
        req: S3Request<ListBucketsInput>,
    ) -> S3Result<S3Response<ListBucketsOutput>> {
        let key = req
            .credentials
            .as_ref()
            .and_then(|c| self.fs.access_key(&c.access_key));
        let volumes = self.fs().volumes().await.map_err(fs_error)?;
        let buckets = volumes
            .into_iter()
            // Volumes whose names are not DNS-safe are not buckets; a key limited to
            // some volumes sees only those.
            .filter(|v| names::is_bucket_name(&v.name))
            .filter(|v| {
                key.as_ref()
                    .is_some_and(|k| k.allows(Some(&v.name), Access::Read).is_ok())
            })
            .map(|v| Bucket {
                name: Some(v.name),
                creation_date: Some(timestamp(v.created_at)),
                bucket_region: Some(self.region.clone()),
            })
            .collect();
        Ok(S3Response::new(ListBucketsOutput {
            buckets: Some(buckets),
            owner: Some(Owner {
                display_name: Some("keel".into()),
                id: Some("keel".into()),
            }),
            ..Default::default()
        }))
    }

    // ---- objects ----

    async fn put_object(
        &self,
        req: S3Request<PutObjectInput>,
    ) -> S3Result<S3Response<PutObjectOutput>> {
        let input = req.input;
        let k = parse_key(&input.key)?;
        if input.if_match.is_some() || input.if_none_match.is_some() {
            // Conditional writes need a compare-and-put the file interface lacks:
            // refused rather than ignored.
            return Err(s3_error!(
                NotImplemented,
                "conditional writes are not supported"
            ));
        }
        if k.dir_marker {
            // An empty PUT of `a/b/` makes the directory (a "folder").
            if input.content_length.unwrap_or(0) > 0 {
                return Err(s3_error!(
                    InvalidArgument,
                    "a key ending in '/' names a directory: its body must be empty"
                ));
            }
            self.mkdirs(&input.bucket, k.path).await?;
            let empty: [u8; 16] = Md5::digest(b"").into();
            return Ok(S3Response::new(PutObjectOutput {
                e_tag: Some(ETag::Strong(hex::encode(empty))),
                ..Default::default()
            }));
        }
        let want_md5 = parse_content_md5(input.content_md5.as_deref())?;
        let bad = Arc::new(AtomicBool::new(false));
        let body = put_stream(input.body, want_md5, bad.clone());
        let opts = PutOptions {
            meta: meta_for(input.content_type.as_deref(), input.metadata.as_ref()),
            ..Default::default()
        };
        let attr = match self.put(&input.bucket, &input.key, body, opts).await {
            Err(_) if bad.load(Ordering::SeqCst) => return Err(s3_error!(BadDigest)),
            r => r?,
        };
        Ok(S3Response::new(PutObjectOutput {
            e_tag: Some(etag(&attr)),
            ..Default::default()
        }))
    }

    async fn get_object(
        &self,
        req: S3Request<GetObjectInput>,
    ) -> S3Result<S3Response<GetObjectOutput>> {
        let input = req.input;
        let attr = self.object(&input.bucket, &input.key).await?;
        preconditions(
            &attr,
            input.if_match.as_ref(),
            input.if_none_match.as_ref(),
            input.if_modified_since.as_ref(),
            input.if_unmodified_since.as_ref(),
        )?;
        if input.part_number.is_some() {
            return Err(s3_error!(
                NotImplemented,
                "partNumber on GET is not supported"
            ));
        }
        let size = attr.size;
        let (range, content_range) = match input.range {
            Some(r) => {
                let rg = r.check(size).map_err(|_| {
                    s3_error!(
                        InvalidRange,
                        "the range is not satisfiable for {size} bytes"
                    )
                })?;
                let cr = format!("bytes {}-{}/{size}", rg.start, rg.end - 1);
                (rg, Some(cr))
            }
            None => (0..size, None),
        };
        let len = range.end - range.start;
        let body = body_of(self.fs.clone(), attr.ino, range.start, len);
        Ok(S3Response::new(GetObjectOutput {
            body: Some(body),
            content_length: Some(len as i64),
            content_range,
            accept_ranges: Some("bytes".into()),
            content_type: content_type(&attr),
            e_tag: Some(etag(&attr)),
            last_modified: Some(timestamp(attr.mtime)),
            metadata: user_meta(&attr),
            ..Default::default()
        }))
    }

    async fn head_object(
        &self,
        req: S3Request<HeadObjectInput>,
    ) -> S3Result<S3Response<HeadObjectOutput>> {
        let input = req.input;
        let attr = self.object(&input.bucket, &input.key).await?;
        preconditions(
            &attr,
            input.if_match.as_ref(),
            input.if_none_match.as_ref(),
            input.if_modified_since.as_ref(),
            input.if_unmodified_since.as_ref(),
        )?;
        Ok(S3Response::new(HeadObjectOutput {
            content_length: Some(attr.size as i64),
            accept_ranges: Some("bytes".into()),
            content_type: content_type(&attr),
            e_tag: Some(etag(&attr)),
            last_modified: Some(timestamp(attr.mtime)),
            metadata: user_meta(&attr),
            ..Default::default()
        }))
    }

    async fn delete_object(
        &self,
        req: S3Request<DeleteObjectInput>,
    ) -> S3Result<S3Response<DeleteObjectOutput>> {
        self.delete_key(&req.input.bucket, &req.input.key).await?;
        Ok(S3Response::new(DeleteObjectOutput::default()))
    }

    async fn delete_objects(
        &self,
        req: S3Request<DeleteObjectsInput>,
    ) -> S3Result<S3Response<DeleteObjectsOutput>> {
        let input = req.input;
        self.bucket_root(&input.bucket).await?;
        if input.delete.objects.len() > 1000 {
            return Err(s3_error!(MalformedXML, "at most 1000 keys per request"));
        }
        let quiet = input.delete.quiet.unwrap_or(false);
        let mut deleted = Vec::new();
        let mut errors = Vec::new();
        for o in input.delete.objects {
            match self.delete_key(&input.bucket, &o.key).await {
                Ok(()) => {
                    if !quiet {
                        deleted.push(DeletedObject {
                            key: Some(o.key),
                            ..Default::default()
                        })
                    }
                }
                Err(e) => errors.push(Error {
                    code: Some(e.code().as_str().to_string()),
                    message: e.message().map(str::to_string),
                    key: Some(o.key),
                    version_id: None,
                }),
            }
        }
        Ok(S3Response::new(DeleteObjectsOutput {
            deleted: Some(deleted),
            errors: (!errors.is_empty()).then_some(errors),
            ..Default::default()
        }))
    }

    async fn copy_object(
        &self,
        req: S3Request<CopyObjectInput>,
    ) -> S3Result<S3Response<CopyObjectOutput>> {
        let input = req.input;
        let (src_bucket, src_key) = match &input.copy_source {
            CopySource::Bucket {
                bucket,
                key,
                version_id: None,
            } => (bucket.to_string(), key.to_string()),
            CopySource::Bucket { .. } => {
                return Err(s3_error!(NotImplemented, "versions are not supported"))
            }
            _ => return Err(s3_error!(NotImplemented, "access points are not supported")),
        };
        if !names::is_bucket_name(&src_bucket) {
            return Err(s3_error!(InvalidBucketName));
        }
        self.check_source(req.credentials.as_ref(), &src_bucket)?;
        let src = self.object(&src_bucket, &src_key).await?;
        file_key(&input.key)?;
        let replace = input
            .metadata_directive
            .as_ref()
            .is_some_and(|d| d.as_str() == MetadataDirective::REPLACE);
        if !replace && src_bucket == input.bucket && src_key == input.key {
            return Err(s3_error!(
                InvalidRequest,
                "This copy request is illegal because it is trying to copy an object to itself without changing the object's metadata."
            ));
        }
        let meta = if replace {
            meta_for(input.content_type.as_deref(), input.metadata.as_ref())
        } else {
            copied_meta(&src)
        };
        let body: ByteStream = Box::pin(read_stream(self.fs.clone(), src.ino, 0, src.size));
        let opts = PutOptions {
            meta,
            ..Default::default()
        };
        let attr = self.put(&input.bucket, &input.key, body, opts).await?;
        Ok(S3Response::new(CopyObjectOutput {
            copy_object_result: Some(CopyObjectResult {
                e_tag: Some(etag(&attr)),
                last_modified: Some(timestamp(attr.mtime)),
                ..Default::default()
            }),
            ..Default::default()
        }))
    }

    // ---- listings ----

    async fn list_objects(
        &self,
        req: S3Request<ListObjectsInput>,
    ) -> S3Result<S3Response<ListObjectsOutput>> {
        let input = req.input;
        self.bucket_root(&input.bucket).await?;
        let encode = wants_url(&input.encoding_type);
        let max = names::clamp_max(input.max_keys);
        let prefix = input.prefix.clone().unwrap_or_default();
        let q = Query {
            prefix: &prefix,
            delimiter: input.delimiter.as_deref(),
            after: input.marker.as_deref().filter(|m| !m.is_empty()),
            max,
        };
        let l = list::list(self.fs(), &input.bucket, &q)
            .await
            .map_err(fs_error)?;
        let truncated = l.truncated;
        let next = truncated
            .then(|| l.items.last().map(|i| i.key().to_string()))
            .flatten();
        let (objects, prefixes) = split_listing(l, encode);
        Ok(S3Response::new(ListObjectsOutput {
            name: Some(input.bucket),
            prefix: Some(enc(Some(prefix), encode).unwrap_or_default()),
            marker: enc(input.marker, encode),
            max_keys: Some(max as i32),
            is_truncated: Some(truncated),
            contents: Some(objects),
            common_prefixes: Some(prefixes),
            delimiter: enc(input.delimiter, encode),
            next_marker: enc(next, encode),
            encoding_type: input.encoding_type,
            ..Default::default()
        }))
    }

    async fn list_objects_v2(
        &self,
        req: S3Request<ListObjectsV2Input>,
    ) -> S3Result<S3Response<ListObjectsV2Output>> {
        let input = req.input;
        self.bucket_root(&input.bucket).await?;
        let encode = wants_url(&input.encoding_type);
        let max = names::clamp_max(input.max_keys);
        let prefix = input.prefix.clone().unwrap_or_default();
        let after = match &input.continuation_token {
            Some(t) => Some(names::decode_token(t).map_err(|e| s3_error!(InvalidArgument, "{e}"))?),
            None => input.start_after.clone().filter(|s| !s.is_empty()),
        };
        let q = Query {
            prefix: &prefix,
            delimiter: input.delimiter.as_deref(),
            after: after.as_deref(),
            max,
        };
        let l = list::list(self.fs(), &input.bucket, &q)
            .await
            .map_err(fs_error)?;
        let truncated = l.truncated;
        let next = truncated
            .then(|| l.items.last().map(|i| names::encode_token(i.key())))
            .flatten();
        let count = l.items.len() as i32;
        let (objects, prefixes) = split_listing(l, encode);
        Ok(S3Response::new(ListObjectsV2Output {
            name: Some(input.bucket),
            prefix: Some(enc(Some(prefix), encode).unwrap_or_default()),
            max_keys: Some(max as i32),
            key_count: Some(count),
            continuation_token: input.continuation_token,
            is_truncated: Some(truncated),
            next_continuation_token: next,
            contents: Some(objects),
            common_prefixes: Some(prefixes),
            delimiter: enc(input.delimiter, encode),
            encoding_type: input.encoding_type,
            start_after: enc(input.start_after, encode),
            ..Default::default()
        }))
    }

    // ---- multipart ----

    async fn create_multipart_upload(
        &self,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        let input = req.input;
        file_key(&input.key)?;
        self.bucket_root(&input.bucket).await?;
        let id = format!("{:032x}", rand::random::<u128>());
        let mut meta = meta_for(input.content_type.as_deref(), input.metadata.as_ref());
        meta.insert(META_UPLOAD_KEY.into(), input.key.clone());
        let path = format!("{}/{UPLOAD_RECORD}", Self::upload_dir(&id));
        let body: ByteStream = Box::pin(futures::stream::empty());
        self.fs()
            .put_file(
                &input.bucket,
                &path,
                body,
                PutOptions {
                    meta,
                    ..Default::default()
                },
            )
            .await
            .map_err(fs_error)?;
        Ok(S3Response::new(CreateMultipartUploadOutput {
            bucket: Some(input.bucket),
            key: Some(input.key),
            upload_id: Some(id),
            ..Default::default()
        }))
    }

    async fn upload_part(
        &self,
        req: S3Request<UploadPartInput>,
    ) -> S3Result<S3Response<UploadPartOutput>> {
        let input = req.input;
        file_key(&input.key)?;
        if !(1..=10_000).contains(&input.part_number) {
            return Err(s3_error!(InvalidArgument, "a part number is 1 to 10000"));
        }
        self.upload(&input.bucket, &input.key, &input.upload_id)
            .await?;
        let want_md5 = parse_content_md5(input.content_md5.as_deref())?;
        let bad = Arc::new(AtomicBool::new(false));
        let body = put_stream(input.body, want_md5, bad.clone());
        let path = format!(
            "{}/{}",
            Self::upload_dir(&input.upload_id),
            names::part_name(input.part_number)
        );
        let attr = match self
            .fs()
            .put_file(&input.bucket, &path, body, PutOptions::default())
            .await
        {
            Err(_) if bad.load(Ordering::SeqCst) => return Err(s3_error!(BadDigest)),
            r => r.map_err(fs_error)?,
        };
        Ok(S3Response::new(UploadPartOutput {
            e_tag: Some(etag(&attr)),
            ..Default::default()
        }))
    }

    async fn list_parts(
        &self,
        req: S3Request<ListPartsInput>,
    ) -> S3Result<S3Response<ListPartsOutput>> {
        let input = req.input;
        let record = self
            .upload(&input.bucket, &input.key, &input.upload_id)
            .await?;
        let parts = self.parts(&record).await?;
        let max = names::clamp_max(input.max_parts);
        let marker = input.part_number_marker.unwrap_or(0);
        let mut listed: Vec<Part> = parts
            .range(marker.saturating_add(1)..)
            .take(max + 1)
            .map(|(n, a)| Part {
                part_number: Some(*n),
                e_tag: Some(etag(a)),
                size: Some(a.size as i64),
                last_modified: Some(timestamp(a.mtime)),
                ..Default::default()
            })
            .collect();
        let truncated = listed.len() > max;
        listed.truncate(max);
        let next = listed.last().and_then(|p| p.part_number);
        Ok(S3Response::new(ListPartsOutput {
            bucket: Some(input.bucket),
            key: Some(input.key),
            upload_id: Some(input.upload_id),
            max_parts: Some(max as i32),
            part_number_marker: input.part_number_marker,
            next_part_number_marker: if truncated { next } else { None },
            is_truncated: Some(truncated),
            parts: Some(listed),
            ..Default::default()
        }))
    }

    async fn abort_multipart_upload(
        &self,
        req: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        let input = req.input;
        let record = self
            .upload(&input.bucket, &input.key, &input.upload_id)
            .await?;
        self.drop_upload(&input.bucket, &record, &input.upload_id)
            .await?;
        Ok(S3Response::new(AbortMultipartUploadOutput::default()))
    }

    async fn complete_multipart_upload(
        &self,
        req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        let input = req.input;
        let record = self
            .upload(&input.bucket, &input.key, &input.upload_id)
            .await?;
        let have = self.parts(&record).await?;
        let asked = input
            .multipart_upload
            .and_then(|m| m.parts)
            .unwrap_or_default();
        if asked.is_empty() {
            return Err(s3_error!(MalformedXML, "no parts to complete"));
        }
        let mut chosen: Vec<Attr> = Vec::with_capacity(asked.len());
        let mut last = 0;
        for (i, p) in asked.iter().enumerate() {
            let n = p
                .part_number
                .ok_or_else(|| s3_error!(InvalidPart, "a part without a number"))?;
            if n <= last {
                return Err(s3_error!(InvalidPartOrder));
            }
            last = n;
            let a = have
                .get(&n)
                .ok_or_else(|| s3_error!(InvalidPart, "part {n} was not uploaded"))?;
            if let Some(e) = &p.e_tag {
                if e.value() != etag_value(a) {
                    return Err(s3_error!(InvalidPart, "part {n}: the ETag does not match"));
                }
            }
            if i + 1 < asked.len() && a.size < MIN_PART_SIZE {
                return Err(s3_error!(EntityTooSmall, "part {n} is under 5 MiB"));
            }
            chosen.push(a.clone());
        }
        let md5s: Vec<[u8; 16]> = chosen
            .iter()
            .map(|a| {
                a.md5
                    .ok_or_else(|| s3_error!(InvalidPart, "a part was changed"))
            })
            .collect::<S3Result<_>>()?;
        let etag_s = multipart_etag(&md5s);
        let mut meta = copied_meta(&record);
        meta.insert(META_ETAG.into(), etag_s.clone());
        let fs = self.fs.clone();
        let body: ByteStream = Box::pin(
            futures::stream::iter(chosen.into_iter().map(|a| (a.ino, a.size)))
                .flat_map(move |(ino, size)| read_stream(fs.clone(), ino, 0, size)),
        );
        self.put(
            &input.bucket,
            &input.key,
            body,
            PutOptions {
                meta,
                ..Default::default()
            },
        )
        .await?;
        self.drop_upload(&input.bucket, &record, &input.upload_id)
            .await?;
        Ok(S3Response::new(CompleteMultipartUploadOutput {
            bucket: Some(input.bucket.clone()),
            key: Some(input.key.clone()),
            e_tag: Some(ETag::Strong(etag_s)),
            location: Some(format!("/{}/{}", input.bucket, input.key)),
            ..Default::default()
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64() {
        assert_eq!(base64_decode("").unwrap(), b"");
        assert_eq!(base64_decode("YQ==").unwrap(), b"a");
        assert_eq!(base64_decode("YWI=").unwrap(), b"ab");
        assert_eq!(base64_decode("YWJj").unwrap(), b"abc");
        assert_eq!(base64_decode("YWJ"), None);
        assert_eq!(base64_decode("Y==="), None);
        assert_eq!(base64_decode("Y!=="), None);
    }
}
