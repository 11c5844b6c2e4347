//! Real NFS clients nobody here wrote (libnfs-utils: `nfs-cp`, `nfs-ls`, `nfs-cat`)
//! against the gateway over an in-memory file service on a loopback port. Skipped,
//! with the reason printed, where the tools are not installed (`.ci/run` installs
//! them: `apt-get install -y libnfs-utils`).

mod rpc;

use keel_fs::{mem::MemFs, FileService};
use keel_nfs::{NfsConfig, NfsServer};
use rpc::{Rpc, DEADLINE, NFS3ERR_STALE, NFS3_OK};
use std::path::Path;
use std::process::Output;
use std::sync::Arc;

fn tools_missing() -> Option<String> {
    for t in ["nfs-cp", "nfs-ls", "nfs-cat"] {
        let found = std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).any(|d| d.join(t).is_file()))
            .unwrap_or(false);
        if !found {
            return Some(format!(
                "{t} not found: install libnfs-utils (apt-get install -y libnfs-utils)"
            ));
        }
    }
    None
}

macro_rules! require_tools {
    () => {
        if let Some(why) = tools_missing() {
            eprintln!("SKIPPED: {why}");
            return;
        }
    };
}

fn url(port: u16, path: &str) -> String {
    format!("nfs://127.0.0.1/{path}?nfsport={port}&mountport={port}&version=3")
}

async fn run(tool: &str, args: &[&str]) -> Output {
    let child = tokio::process::Command::new(tool)
        .args(args)
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(DEADLINE, child)
        .await
        .unwrap_or_else(|_| panic!("{tool} {args:?} did not finish within {DEADLINE:?}"))
        .unwrap_or_else(|e| panic!("{tool}: {e}"));
    assert!(
        out.status.success(),
        "{tool} {args:?}: {}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

async fn start() -> (Arc<MemFs>, NfsServer) {
    let fs = Arc::new(MemFs::new());
    fs.create_volume("vol").await.unwrap();
    let s = keel_nfs::bind(
        fs.clone(),
        "127.0.0.1:0".parse().unwrap(),
        NfsConfig::default(),
    )
    .await
    .unwrap();
    (fs, s)
}

/// Deterministic bytes that no run-length trick compresses (xorshift).
fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut v = Vec::with_capacity(len + 8);
    while v.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(len);
    v
}

async fn read_all(fs: &MemFs, volume: &str, path: &str) -> Vec<u8> {
    let a = fs.resolve(volume, path).await.unwrap();
    let mut out = Vec::new();
    loop {
        let (b, eof) = fs.read(a.ino, out.len() as u64, 4 << 20).await.unwrap();
        out.extend_from_slice(&b);
        if eof {
            return out;
        }
    }
}

fn file_arg(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nfs_cp_50_mb_in_and_back_byte_exact() {
    require_tools!();
    let (fs, s) = start().await;
    let port = s.local_addr().port();
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("in.bin");
    let back = dir.path().join("back.bin");
    let data = pattern(50 << 20, 42);
    std::fs::write(&src, &data).unwrap();

    run("nfs-cp", &[file_arg(&src), &url(port, "vol/big.bin")]).await;
    // What the cluster holds is what was sent.
    assert!(
        read_all(&fs, "vol", "big.bin").await == data,
        "stored bytes differ"
    );
    run("nfs-cp", &[&url(port, "vol/big.bin"), file_arg(&back)]).await;
    assert!(
        std::fs::read(&back).unwrap() == data,
        "bytes read back differ"
    );

    let ls = run("nfs-ls", &[&url(port, "vol")]).await;
    let ls = String::from_utf8_lossy(&ls.stdout);
    let line = ls
        .lines()
        .find(|l| l.ends_with(" big.bin"))
        .unwrap_or_else(|| panic!("big.bin not listed: {ls}"));
    assert!(
        line.contains(&format!(" {} ", 50 << 20)),
        "size listed: {line}"
    );
    s.stop().await;
}

#[tokio::test]
async fn nfs_cat_ls_subdirectories_and_a_paged_listing() {
    require_tools!();
    let (fs, s) = start().await;
    let port = s.local_addr().port();
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("hello.txt");
    std::fs::write(&src, b"hello over nfs\n").unwrap();
    let root = fs.resolve("vol", "").await.unwrap();
    let sub = fs.mkdir(root.ino, "sub", 0o755).await.unwrap();

    // Into a subdirectory (libnfs mounts /vol/sub, an export below the volume).
    run("nfs-cp", &[file_arg(&src), &url(port, "vol/sub/hello.txt")]).await;
    let cat = run("nfs-cat", &[&url(port, "vol/sub/hello.txt")]).await;
    assert_eq!(cat.stdout, b"hello over nfs\n");

    // A directory far larger than one READDIRPLUS reply: every name exactly once.
    let n = 3000;
    for i in 0..n {
        fs.create(sub.ino, &format!("file-{i:05}"), 0o644, true)
            .await
            .unwrap();
    }
    let ls = run("nfs-ls", &[&url(port, "vol/sub")]).await;
    let ls = String::from_utf8_lossy(&ls.stdout);
    let mut names: Vec<&str> = ls
        .lines()
        .filter_map(|l| l.split_whitespace().last())
        .filter(|n| n.starts_with("file-"))
        .collect();
    names.sort();
    let want: Vec<String> = (0..n).map(|i| format!("file-{i:05}")).collect();
    assert_eq!(names, want);
    assert!(ls.contains("hello.txt"));

    // Recursive listing from the volume's root walks into the subdirectory.
    let ls = run("nfs-ls", &["-R", &url(port, "vol")]).await;
    assert!(String::from_utf8_lossy(&ls.stdout).contains("hello.txt"));
    s.stop().await;
}

#[tokio::test]
async fn a_client_handle_of_a_removed_file_is_stale_and_others_survive_a_restart() {
    require_tools!();
    let (fs, s) = start().await;
    let port = s.local_addr().port();
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("a.txt");
    std::fs::write(&src, b"first").unwrap();
    run("nfs-cp", &[file_arg(&src), &url(port, "vol/a.txt")]).await;
    run("nfs-cp", &[file_arg(&src), &url(port, "vol/b.txt")]).await;

    let mut c = Rpc::connect(port).await;
    let root = c.mount("/vol").await.unwrap();
    let a = c.lookup(&root, "a.txt").await.unwrap();
    let b = c.lookup(&root, "b.txt").await.unwrap();
    // Rename and remove through NFS (libnfs-utils has no rm/mv tool).
    assert_eq!(c.rename(&root, "b.txt", &root, "c.txt").await, NFS3_OK);
    assert_eq!(c.remove(&root, "a.txt").await, NFS3_OK);
    assert_eq!(c.getattr(&a).await.0, NFS3ERR_STALE);
    drop(c);

    // A restarted gateway (new process state, same cluster) on the same address:
    // the held handle of the renamed file still works, the real client reads it.
    let addr = s.local_addr();
    s.stop().await;
    let s = keel_nfs::bind(fs.clone(), addr, NfsConfig::default())
        .await
        .unwrap();
    let mut c = Rpc::connect(port).await;
    assert_eq!(c.getattr(&b).await, (NFS3_OK, 5));
    assert_eq!(c.getattr(&a).await.0, NFS3ERR_STALE);
    let cat = run("nfs-cat", &[&url(port, "vol/c.txt")]).await;
    assert_eq!(cat.stdout, b"first");
    let ls = run("nfs-ls", &[&url(port, "vol")]).await;
    let ls = String::from_utf8_lossy(&ls.stdout);
    assert!(
        ls.contains("c.txt") && !ls.contains("a.txt") && !ls.contains("b.txt"),
        "{ls}"
    );

    // A hostile client does not stop the real one.
    let mut bad = Rpc::connect(port).await;
    use tokio::io::AsyncWriteExt;
    bad.s
        .write_all(&0xffff_ffffu32.to_be_bytes())
        .await
        .unwrap();
    assert!(bad.read_record().await.is_none());
    let cat = run("nfs-cat", &[&url(port, "vol/c.txt")]).await;
    assert_eq!(cat.stdout, b"first");
    s.stop().await;
}
