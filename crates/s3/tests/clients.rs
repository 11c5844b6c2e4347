//! The S3 gateway driven by real S3 clients nobody here wrote: boto3 (every
//! operation, the error codes, the keys' scopes; `tests/boto3_client.py`) and the aws
//! CLI (a 50 MB multipart copy both ways, byte-exact; the credential and name errors).
//! The server runs over a `MemFs` on a loopback port; the clients are child
//! processes with their own config files (`AWS_CONFIG_FILE`,
//! `AWS_SHARED_CREDENTIALS_FILE`), path-style addressing and an explicit endpoint.
//!
//! Needs `python3` with `boto3`, and `aws` on the PATH (`.ci/run` installs both).

use keel_fs::mem::MemFs;
use keel_fs::{AccessKey, FileService};
use keel_s3::{S3Config, S3Handle};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::Arc;

const KEY: &str = "AKTESTFULL";
const SECRET: &str = "full-secret-0123456789";
const RO_KEY: &str = "AKTESTREAD";
const RO_SECRET: &str = "read-secret-0123456789";
const SCOPED_KEY: &str = "AKTESTSCOPED";
const SCOPED_SECRET: &str = "scoped-secret-0123456789";

fn key(id: &str, secret: &str, volumes: &[&str], read_only: bool) -> AccessKey {
    AccessKey {
        id: id.into(),
        name: id.to_lowercase(),
        secret: secret.into(),
        volumes: volumes.iter().map(|v| v.to_string()).collect(),
        read_only,
        created_at: 0,
    }
}

async fn start() -> (S3Handle, Arc<MemFs>) {
    let fs = Arc::new(MemFs::new());
    fs.add_key(key(KEY, SECRET, &[], false));
    fs.add_key(key(RO_KEY, RO_SECRET, &[], true));
    fs.add_key(key(SCOPED_KEY, SCOPED_SECRET, &["scoped"], false));
    let dynfs: Arc<dyn FileService> = fs.clone();
    let h = keel_s3::bind(dynfs, "127.0.0.1:0".parse().unwrap(), S3Config::default())
        .await
        .unwrap();
    (h, fs)
}

/// A temp dir with an aws config (path-style, region) and credentials: profile
/// `default` (the full key), `wrong` (a bad secret), `unknown` (no such key).
fn aws_files(dir: &Path) -> (PathBuf, PathBuf) {
    let config = dir.join("config");
    let creds = dir.join("credentials");
    let mut c = String::new();
    for p in ["default", "profile wrong", "profile unknown"] {
        c.push_str(&format!(
            "[{p}]\nregion = us-east-1\ns3 =\n    addressing_style = path\n"
        ));
    }
    std::fs::write(&config, c).unwrap();
    std::fs::write(
        &creds,
        format!(
            "[default]\naws_access_key_id = {KEY}\naws_secret_access_key = {SECRET}\n\
             [wrong]\naws_access_key_id = {KEY}\naws_secret_access_key = not-it\n\
             [unknown]\naws_access_key_id = AKNOSUCH\naws_secret_access_key = whatever\n"
        ),
    )
    .unwrap();
    (config, creds)
}

fn aws_env(cmd: &mut tokio::process::Command, dir: &Path) {
    let (config, creds) = aws_files(dir);
    for v in [
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_S3",
    ] {
        cmd.env_remove(v);
    }
    cmd.env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", config)
        .env("AWS_SHARED_CREDENTIALS_FILE", creds)
        .env("AWS_RETRY_MODE", "standard")
        .env("AWS_MAX_ATTEMPTS", "1")
        .kill_on_drop(true);
}

async fn aws(h: &S3Handle, dir: &Path, args: &[&str]) -> Output {
    let mut cmd = tokio::process::Command::new("aws");
    aws_env(&mut cmd, dir);
    cmd.arg("--endpoint-url")
        .arg(format!("http://{}", h.local_addr()))
        .args(args);
    cmd.output()
        .await
        .expect("the aws CLI runs (is it installed?)")
}

fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn ok(o: Output) -> String {
    assert!(o.status.success(), "aws failed: {}", text(&o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn fails_with(o: Output, code: &str) {
    assert!(
        !o.status.success(),
        "expected {code}, got success: {}",
        text(&o)
    );
    let all = text(&o);
    assert!(all.contains(code), "expected {code}: {all}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boto3_drives_every_operation() {
    let (h, fs) = start().await;
    // A file written the way NFS writes (create, then writes at offsets: no MD5), and
    // a volume whose name is not a bucket name.
    let v = fs.create_volume("nfs").await.unwrap();
    let d = fs.mkdir(v.root, "from-nfs", 0o755).await.unwrap();
    let f = fs.create(d.ino, "file", 0o644, true).await.unwrap();
    fs.write(f.ino, 0, "written ".into(), keel_fs::Stability::FileSync)
        .await
        .unwrap();
    let w = fs
        .write(f.ino, 8, "over nfs".into(), keel_fs::Stability::FileSync)
        .await
        .unwrap();
    let nfs_etag = format!("\"{:016x}{:016x}-1\"", w.attr.ino, w.attr.generation);
    fs.create_volume("Odd_Name").await.unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/boto3_client.py");
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = tokio::process::Command::new("python3");
    aws_env(&mut cmd, dir.path());
    let out = cmd
        .arg(script)
        .env("KEEL_S3_ENDPOINT", format!("http://{}", h.local_addr()))
        .env("KEEL_S3_KEY", KEY)
        .env("KEEL_S3_SECRET", SECRET)
        .env("KEEL_S3_RO_KEY", RO_KEY)
        .env("KEEL_S3_RO_SECRET", RO_SECRET)
        .env("KEEL_S3_SCOPED_KEY", SCOPED_KEY)
        .env("KEEL_S3_SCOPED_SECRET", SCOPED_SECRET)
        .env("KEEL_S3_NFS_ETAG", nfs_etag)
        .output()
        .await
        .expect("python3 runs");
    assert!(out.status.success(), "boto3 script: {}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("all checks passed"));
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_cli_copies_50_mb_both_ways_and_refuses_bad_requests() {
    let (h, fs) = start().await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // 50 MB of a deterministic pattern that no block repeats (xorshift).
    let mut data = vec![0u8; 50 * 1000 * 1000];
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for chunk in data.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
    }
    let src = d.join("src.bin");
    std::fs::write(&src, &data).unwrap();

    ok(aws(&h, d, &["s3", "mb", "s3://cli"]).await);
    ok(aws(
        &h,
        d,
        &["s3", "cp", src.to_str().unwrap(), "s3://cli/big/file.bin"],
    )
    .await);
    // It went up in parts (the CLI's threshold is 8 MiB): a multipart ETag.
    let head = ok(aws(
        &h,
        d,
        &[
            "s3api",
            "head-object",
            "--bucket",
            "cli",
            "--key",
            "big/file.bin",
        ],
    )
    .await);
    assert!(head.contains("\"ContentLength\": 50000000"), "{head}");
    assert!(head.contains("-6\\\""), "a 6-part ETag: {head}");
    let back = d.join("back.bin");
    ok(aws(
        &h,
        d,
        &["s3", "cp", "s3://cli/big/file.bin", back.to_str().unwrap()],
    )
    .await);
    assert!(
        std::fs::read(&back).unwrap() == data,
        "the copy back differs"
    );
    // The file service holds the same bytes at the path the key names.
    let attr = fs.resolve("cli", "big/file.bin").await.unwrap();
    assert_eq!(attr.size, data.len() as u64);
    let ls = ok(aws(&h, d, &["s3", "ls", "s3://cli/big/"]).await);
    assert!(ls.contains("50000000 file.bin"), "{ls}");
    let ls = ok(aws(&h, d, &["s3", "ls", "s3://cli/"]).await);
    assert!(ls.contains("PRE big/"), "{ls}");
    // No upload is left behind.
    let uploads = match fs.resolve("cli", ".keel-uploads").await {
        Ok(a) => fs.readdir(a.ino, None, 10).await.unwrap().entries.len(),
        Err(_) => 0,
    };
    assert_eq!(uploads, 0, "an upload directory was left behind");

    // The errors, each with its code, and the gateway still serves.
    fails_with(
        aws(&h, d, &["--profile", "wrong", "s3", "ls", "s3://cli/"]).await,
        "SignatureDoesNotMatch",
    );
    fails_with(
        aws(&h, d, &["--profile", "unknown", "s3", "ls", "s3://cli/"]).await,
        "InvalidAccessKeyId",
    );
    fails_with(
        aws(
            &h,
            d,
            &["s3api", "create-bucket", "--bucket", "Not_DNS_Safe"],
        )
        .await,
        "InvalidBucketName",
    );
    fails_with(
        aws(
            &h,
            d,
            &["s3api", "put-object", "--bucket", "cli", "--key", "a//b"],
        )
        .await,
        "InvalidArgument",
    );
    fails_with(
        aws(
            &h,
            d,
            &[
                "s3api",
                "get-object",
                "--bucket",
                "cli",
                "--key",
                "big",
                d.join("x").to_str().unwrap(),
            ],
        )
        .await,
        "NoSuchKey",
    );
    fails_with(
        aws(&h, d, &["s3", "rb", "s3://cli"]).await,
        "BucketNotEmpty",
    );
    ok(aws(&h, d, &["s3", "rm", "s3://cli/big/file.bin"]).await);
    ok(aws(&h, d, &["s3", "rb", "s3://cli"]).await);
    let ls = ok(aws(&h, d, &["s3", "ls"]).await);
    assert!(!ls.contains("cli"), "{ls}");
    h.stop().await;
}

#[tokio::test]
async fn stop_closes_the_listener() {
    let (h, _fs) = start().await;
    let addr = h.local_addr();
    tokio::net::TcpStream::connect(addr).await.unwrap();
    h.stop().await;
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}
