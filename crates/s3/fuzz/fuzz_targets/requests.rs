//! Fuzzes S3 request handling end to end, in process: the input is a raw HTTP/1.1
//! request (parsed with httparse, as hyper would) that goes through the s3s service
//! over a fresh `MemFs` holding a bucket, an object and an access key. The first byte
//! chooses the service: with SigV4 (as served; exercises the Authorization and
//! presigned-URL parsers and the refusal of unsigned requests) or without
//! authentication (reaches every operation's handler with arbitrary input).
//! Checks: nothing panics, and no request makes the gateway answer 5xx but
//! `NotImplemented`.
#![no_main]

use bytes::Bytes;
use keel_fs::mem::MemFs;
use keel_fs::{AccessKey, FileService, PutOptions};
use libfuzzer_sys::fuzz_target;
use std::sync::{Arc, OnceLock};

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    })
}

fn parse(data: &[u8]) -> Option<http::Request<s3s::Body>> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut req = httparse::Request::new(&mut headers);
    let httparse::Status::Complete(n) = req.parse(data).ok()? else {
        return None;
    };
    let mut b = http::Request::builder().method(req.method?).uri(req.path?);
    for h in req.headers.iter() {
        b = b.header(h.name, h.value);
    }
    b.body(s3s::Body::from(Bytes::copy_from_slice(&data[n..])))
        .ok()
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let Some(req) = parse(rest) else { return };
    runtime().block_on(async move {
        let fs = Arc::new(MemFs::new());
        fs.add_key(AccessKey {
            id: "AKFUZZ".into(),
            name: "fuzz".into(),
            secret: "fuzz-secret".into(),
            volumes: vec![],
            read_only: false,
            created_at: 0,
        });
        fs.create_volume("bkt").await.unwrap();
        let body = Box::pin(futures::stream::iter(vec![Ok(Bytes::from_static(
            b"hello",
        ))]));
        fs.put_file("bkt", "a/b", body, PutOptions::default())
            .await
            .unwrap();
        let fs: Arc<dyn FileService> = fs;
        let config = keel_s3::S3Config::default();
        let svc = if mode & 1 == 0 {
            keel_s3::service(fs, &config)
        } else {
            keel_s3::service_without_auth(fs, &config)
        };
        if let Ok(resp) = svc.call(req).await {
            let status = resp.status();
            if status.is_server_error() && status != http::StatusCode::NOT_IMPLEMENTED {
                use http_body_util::BodyExt;
                let bytes = resp.into_body().collect().await.map(|c| c.to_bytes());
                let text = String::from_utf8_lossy(&bytes.unwrap_or_default()).into_owned();
                panic!("a 5xx answer: {status}: {text}");
            }
        }
    });
});
