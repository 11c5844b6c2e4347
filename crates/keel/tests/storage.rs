//! Storage through the real binary: files written and read with `keel put` and `keel
//! get` on a `keel dev up` cluster, the native HTTP API spoken directly, and node
//! processes killed (SIGKILL) while puts run.
//!
//! Checks: byte-exact round trips (a multi-chunk file, an empty file, nested
//! directories), the namespace commands, `status --json` storage sets with `kind` and
//! `in_sync`; one-line errors and nothing changed for hostile paths, missing files, a
//! non-empty directory, a read past the end and a stale epoch; no acknowledged put lost
//! when a Primary is killed mid-stream, and the killed node caught up and back in sync;
//! a corrupt chunk file repaired from a replica, with an event; a whole site lost, then
//! the tiebreaker too, with reads refused unless `--allow-stale` (then served, flagged
//! possibly stale) and writes refused.

mod support;

use rand::RngCore;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use support::*;

/// The default chunk size of a volume.
const CHUNK: usize = 4 << 20;

/// Deadline for a failover, a restart and a catch-up to show.
const SETTLE: Duration = Duration::from_secs(60);

fn random_bytes(n: usize) -> Vec<u8> {
    let mut b = vec![0u8; n];
    rand::thread_rng().fill_bytes(&mut b);
    b
}

fn write_local(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).expect("writing a test file");
    path
}

/// Asserts a refusal: non-zero exit, exactly one line on stderr (`error: ...`)
/// containing every `needle`, no panic. Returns the line.
fn assert_refused(what: &str, out: &Output, needles: &[&str]) -> String {
    eprintln!("    {what}: {}", out.stderr.trim_end());
    assert!(!out.ok(), "{what}: expected a failure, got {}", out.status);
    assert!(
        !out.stderr.contains("panicked"),
        "{what}: panicked: {}",
        out.stderr
    );
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(
        lines.len(),
        1,
        "{what}: expected one line on stderr: {:?}",
        out.stderr
    );
    assert!(lines[0].starts_with("error: "), "{what}: {:?}", lines[0]);
    for needle in needles {
        assert!(
            lines[0].contains(needle),
            "{what}: {:?} does not mention {needle:?}",
            lines[0]
        );
    }
    lines[0].to_string()
}

/// `ls --json PATH`: entry name -> kind.
fn ls(c: &Cluster, path: &str) -> BTreeMap<String, String> {
    let out = c.keel_ok(&["ls", "--json", path]);
    let entries: Vec<Value> = serde_json::from_str(out.trim())
        .unwrap_or_else(|e| panic!("ls --json is not a JSON array ({e}): {out}"));
    entries
        .iter()
        .map(|e| {
            (
                e["name"].as_str().unwrap_or("").to_string(),
                e["kind"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

/// `stat --json PATH`.
fn stat(c: &Cluster, path: &str) -> Value {
    let out = c.keel_ok(&["stat", "--json", path]);
    serde_json::from_str(out.trim())
        .unwrap_or_else(|e| panic!("stat --json is not one JSON object ({e}): {out}"))
}

/// Asserts `get PATH` reads back exactly `want`.
fn assert_reads(c: &Cluster, path: &str, want: &[u8], scratch: &Path) {
    let local = scratch.join("read-back");
    let _ = std::fs::remove_file(&local);
    let (got, _) = c.get_ok(path, &local);
    assert_same(path, &got, want);
}

fn assert_same(what: &str, got: &[u8], want: &[u8]) {
    if got != want {
        let first = got.iter().zip(want).position(|(a, b)| a != b);
        panic!(
            "{what}: {} bytes read, {} written; first difference at {first:?}",
            got.len(),
            want.len()
        );
    }
}

#[test]
fn put_and_get_are_byte_exact_and_the_namespace_commands_work() {
    let c = Cluster::start_storage(ClusterSpec {
        replicas: 3,
        ..ClusterSpec::default()
    });
    let tmp = tempfile::tempdir().expect("temporary directory");

    eprintln!("--- status --json: one storage set per storage node, all members in sync");
    let s = c.status();
    let sets = storage_sets(&s);
    assert_eq!(sets.len(), 3, "{s}");
    for x in &sets {
        assert_eq!(x["kind"], "storage", "{x}");
        let list = x["in_sync"]
            .as_array()
            .unwrap_or_else(|| panic!("in_sync is not an array: {x}"));
        assert!(
            list.iter().all(Value::is_u64),
            "in_sync holds node ids: {x}"
        );
        let mut members = member_nodes(x);
        let mut synced = in_sync(x);
        members.sort();
        synced.sort();
        assert_eq!(members.len(), 3, "--replicas 3: {x}");
        assert_eq!(synced, members, "every member in sync: {x}");
    }
    let default = set(&s, "default");
    assert_eq!(default["kind"], "generic", "{default}");

    eprintln!("--- a 9 MiB file spans 3 chunks and reads back byte-exact");
    let big = random_bytes(2 * CHUNK + (1 << 20));
    let big_local = write_local(tmp.path(), "big", &big);
    let out = c.put_ok(&big_local, "/big.bin");
    assert!(out.contains("3 chunks"), "{out}");
    assert_reads(&c, "/big.bin", &big, tmp.path());
    let st = stat(&c, "/big.bin");
    assert_eq!(st["kind"], "file", "{st}");
    assert_eq!(st["size"], big.len() as u64, "{st}");
    assert_eq!(st["chunks"], 3, "{st}");
    assert_eq!(st["stale"], false, "{st}");

    eprintln!("--- an empty file; get replaces whatever the local file held");
    let empty_local = write_local(tmp.path(), "empty", b"");
    c.put_ok(&empty_local, "/empty");
    let target = write_local(tmp.path(), "was-not-empty", b"old local content");
    let (got, _) = c.get_ok("/empty", &target);
    assert!(got.is_empty(), "{} bytes", got.len());
    assert_eq!(stat(&c, "/empty")["chunks"], 0);

    eprintln!("--- a file in nested directories (created by the put)");
    let nested = random_bytes(300_000);
    let nested_local = write_local(tmp.path(), "nested", &nested);
    c.put_ok(&nested_local, "/a/b/c/nested.bin");
    assert_reads(&c, "/a/b/c/nested.bin", &nested, tmp.path());
    assert_eq!(stat(&c, "/a/b")["kind"], "dir");

    eprintln!("--- ls");
    let root = ls(&c, "/");
    for (name, kind) in [("a", "dir"), ("big.bin", "file"), ("empty", "file")] {
        assert_eq!(
            root.get(name).map(String::as_str),
            Some(kind),
            "ls /: {root:?}"
        );
    }
    assert_eq!(
        ls(&c, "/a/b").into_iter().collect::<Vec<_>>(),
        [("c".to_string(), "dir".to_string())]
    );
    let text = c.keel_ok(&["ls", "/a/b/c"]);
    assert!(
        text.contains("nested.bin") && text.contains("300000"),
        "{text}"
    );

    eprintln!("--- mkdir, mv, rm");
    c.keel_ok(&["mkdir", "/m"]);
    assert_eq!(stat(&c, "/m")["kind"], "dir");
    assert_refused(
        "mkdir of an existing path",
        &c.keel(&["mkdir", "/m"]),
        &["/m"],
    );
    c.keel_ok(&["mv", "/a/b/c/nested.bin", "/m/moved.bin"]);
    assert_reads(&c, "/m/moved.bin", &nested, tmp.path());
    assert!(ls(&c, "/a/b/c").is_empty());
    assert_refused(
        "get of the old name",
        &c.keel(&["get", "/a/b/c/nested.bin", "-"]),
        &["/a/b/c/nested.bin"],
    );
    c.keel_ok(&["mv", "/a", "/m/a"]);
    assert_eq!(stat(&c, "/m/a/b/c")["kind"], "dir");
    c.keel_ok(&["rm", "/m/moved.bin"]);
    c.keel_ok(&["rm", "/m/a/b/c"]);
    assert_refused(
        "stat of a removed file",
        &c.keel(&["stat", "/m/moved.bin"]),
        &[],
    );
    assert_eq!(
        ls(&c, "/m").into_iter().collect::<Vec<_>>(),
        [("a".to_string(), "dir".to_string())]
    );

    eprintln!("--- a put replaces a file's content");
    let smaller = random_bytes(CHUNK + 17);
    let smaller_local = write_local(tmp.path(), "smaller", &smaller);
    c.put_ok(&smaller_local, "/big.bin");
    assert_reads(&c, "/big.bin", &smaller, tmp.path());
    let st2 = stat(&c, "/big.bin");
    assert_eq!(st2["chunks"], 2, "{st2}");
    assert_eq!(st2["ino"], st["ino"], "same file: {st2}");
    assert!(
        st2["generation"].as_u64() > st["generation"].as_u64(),
        "{st} then {st2}"
    );
}

#[test]
fn bad_input_is_refused_with_one_line_and_changes_nothing() {
    let c = Cluster::start_storage(ClusterSpec::default());
    let tmp = tempfile::tempdir().expect("temporary directory");
    let keep = random_bytes(CHUNK + 1000);
    let keep_local = write_local(tmp.path(), "keep", &keep);
    c.put_ok(&keep_local, "/dir/keep.bin");
    let small = write_local(tmp.path(), "small", b"small file\n");
    let before = ls(&c, "/");

    eprintln!("--- get of a missing path: no local file left behind");
    let local = tmp.path().join("missing.out");
    let local_str = local.to_str().expect("utf-8");
    assert_refused(
        "get of a missing path",
        &c.keel(&["get", "/no/such/file", local_str]),
        &["/no/such/file", "no such file"],
    );
    let leftovers: Vec<String> = std::fs::read_dir(tmp.path())
        .expect("listing the scratch directory")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("missing"))
        .collect();
    assert!(leftovers.is_empty(), "left behind: {leftovers:?}");

    eprintln!("--- hostile paths");
    let small_str = small.to_str().expect("utf-8");
    let long = format!("/{}", "x".repeat(256));
    for (what, path, needle) in [
        ("..", "/a/../b", "'..'"),
        ("a leading ..", "/../b", "'..'"),
        (".", "/a/./b", "invalid name"),
        ("an empty component", "/a//b", "empty path component"),
        ("a relative path", "rel/b", "must start with '/'"),
        ("a name of 256 bytes", long.as_str(), "255 bytes"),
    ] {
        let out = c.keel(&["put", small_str, path]);
        assert_refused(&format!("put to {what}"), &out, &["invalid name", needle]);
    }
    let limit = format!("/{}", "y".repeat(255));
    c.put_ok(&small, &limit);
    assert_reads(&c, &limit, b"small file\n", tmp.path());
    c.keel_ok(&["rm", &limit]);

    eprintln!("--- NUL in a path, through the native API");
    let addr = c.admin_addr(1);
    let auth = format!("Bearer {}", c.data_key());
    let r = http_request(
        &addr,
        "PUT",
        "/v1/fs/a%00b",
        &[("authorization", &auth)],
        b"x",
    )
    .expect("PUT with a NUL");
    eprintln!("    {} {}", r.code, r.text());
    assert_eq!(r.code, 400, "{}", r.text());
    let e: Value = serde_json::from_slice(&r.body).expect("a JSON error");
    assert_eq!(e["code"], "invalid_name", "{e}");
    assert!(
        e["message"].as_str().is_some_and(|m| m.contains("NUL")),
        "{e}"
    );
    let r = http_request(
        &addr,
        "PUT",
        "/v1/fs/a/%2e%2e/b",
        &[("authorization", &auth)],
        b"x",
    )
    .expect("PUT with an encoded ..");
    assert_eq!(r.code, 400, "an encoded '..': {}", r.text());
    let r = http_request(&addr, "PUT", "/v1/fs/c", &[], b"x").expect("PUT without a token");
    assert_eq!(r.code, 401, "no key: {}", r.text());

    eprintln!("--- put of a missing local file");
    let gone = tmp.path().join("not-here");
    assert_refused(
        "put of a missing local file",
        &c.keel(&["put", gone.to_str().expect("utf-8"), "/x"]),
        &["not-here"],
    );

    eprintln!("--- rm of a non-empty directory");
    assert_refused(
        "rm of a non-empty directory",
        &c.keel(&["rm", "/dir"]),
        &["/dir", "not empty"],
    );
    assert_reads(&c, "/dir/keep.bin", &keep, tmp.path());

    eprintln!("--- a read past the end: 416");
    let size = keep.len();
    for (range, want) in [
        (format!("bytes={size}-"), 416),
        (format!("bytes={}-{}", size + 10, size + 20), 416),
        (format!("bytes={}-{}", size - 10, size + 1000), 206),
    ] {
        let r = http_request(
            &addr,
            "GET",
            "/v1/fs/dir/keep.bin",
            &[("authorization", &auth), ("range", &range)],
            b"",
        )
        .expect("GET with a Range");
        eprintln!(
            "    Range {range}: {} {}",
            r.code,
            r.head.lines().next().unwrap_or("")
        );
        assert_eq!(r.code, want, "Range {range}: {}", r.text());
        if want == 416 {
            let e: Value = serde_json::from_slice(&r.body).expect("a JSON error");
            assert_eq!(e["code"], "past_end", "{e}");
            let message = e["message"].as_str().unwrap_or("");
            assert!(
                message.contains("/dir/keep.bin") && message.contains(&size.to_string()),
                "the error names the file and its size: {e}"
            );
            assert_eq!(
                r.header("content-range"),
                Some(format!("bytes */{size}")),
                "{}",
                r.head
            );
        } else {
            assert_same("the last bytes", &r.body, &keep[size - 10..]);
            assert_eq!(
                r.header("content-range"),
                Some(format!("bytes {}-{}/{size}", size - 10, size - 1)),
                "{}",
                r.head
            );
        }
    }
    let empty = write_local(tmp.path(), "empty", b"");
    c.put_ok(&empty, "/dir/empty");
    for (range, want) in [("bytes=0-", 200), ("bytes=1-", 416)] {
        let r = http_request(
            &addr,
            "GET",
            "/v1/fs/dir/empty",
            &[("authorization", &auth), ("range", range)],
            b"",
        )
        .expect("GET of an empty file with a Range");
        eprintln!(
            "    empty file, Range {range}: {}",
            r.head.lines().next().unwrap_or("")
        );
        assert_eq!(r.code, want, "Range {range}: {}", r.head);
        assert!(r.body.is_empty() || want == 416, "{}", r.text());
        assert_eq!(
            r.header("content-range").is_some(),
            want == 416,
            "{}",
            r.head
        );
    }
    c.keel_ok(&["rm", "/dir/empty"]);

    eprintln!("--- nothing changed");
    assert_eq!(ls(&c, "/"), before);
    assert_eq!(ls(&c, "/dir").into_keys().collect::<Vec<_>>(), ["keep.bin"]);
    assert_reads(&c, "/dir/keep.bin", &keep, tmp.path());

    stale_epochs_are_refused(&c, tmp.path());
}

/// A takeover with a stale epoch is refused; after a takeover, a write or a replication
/// carrying the old epoch (as the deposed Primary would send) is refused by both
/// members, and nothing of it is stored.
fn stale_epochs_are_refused(c: &Cluster, scratch: &Path) {
    use keel_node::storage::wire::{ReplicateRequest, StoreReply, StoreRequest, WriteOp};
    let s = c.status();
    let x = set(&s, "st-1");
    let (old, epoch) = primary_and_epoch(&s, "st-1");
    let old = old.expect("st-1 has a Primary");
    let new = x["secondary"].as_u64().expect("st-1 has a Secondary");
    eprintln!(
        "--- stale epoch: takeover of st-1 presenting epoch {}",
        epoch - 1
    );
    let out = c.keel(&[
        "takeover",
        "st-1",
        "--to",
        &new.to_string(),
        "--epoch",
        &(epoch - 1).to_string(),
    ]);
    assert_refused("takeover at a stale epoch", &out, &["stale epoch"]);
    assert_eq!(primary_and_epoch(&c.status(), "st-1"), (Some(old), epoch));

    eprintln!(
        "--- takeover of st-1 by node {new}; writes go on at epoch {}",
        epoch + 1
    );
    c.keel_ok(&[
        "takeover",
        "st-1",
        "--to",
        &new.to_string(),
        "--epoch",
        &epoch.to_string(),
    ]);
    let what = format!("node {new} acting as Primary of st-1");
    c.wait_status(&what, SETTLE, |s| {
        let x = set(s, "st-1");
        (x["primary"] == new && x["lease_holder"] == new && x["epoch"] == epoch + 1).then_some(())
    });
    // Until a write of the new epoch reached both members, neither has seen it.
    let rpc = |n: u64| rpc_addr(c, n);
    let small = write_local(scratch, "epoch", b"a write of the new epoch\n");
    let mut k = 0;
    wait_for(
        "a write of the new epoch on both members of st-1",
        SETTLE,
        |last| {
            k += 1;
            c.put_ok(&small, &format!("/epoch/{k}"));
            let mut on = |n: u64| match store_call(
                c,
                &rpc(n),
                StoreRequest::List {
                    set: "st-1".into(),
                    after: None,
                    limit: 10_000,
                },
            ) {
                Ok(StoreReply::List(l)) => l.iter().any(|o| o.version.epoch.0 == epoch + 1),
                other => {
                    *last = format!("node {n}: {other:?}");
                    false
                }
            };
            (on(old) && on(new)).then_some(())
        },
    );

    let id = keel_core::ObjectId::random();
    let stale_version = keel_core::Version {
        epoch: keel_core::Epoch(epoch),
        seq: u64::MAX / 2,
    };
    for (to, role) in [(new, "new Primary"), (old, "new Secondary")] {
        let r = store_call(
            c,
            &rpc(to),
            StoreRequest::Replicate(ReplicateRequest {
                set: "st-1".into(),
                epoch: keel_core::Epoch(epoch),
                id,
                version: stale_version,
                op: WriteOp::Put(b"from the deposed Primary".to_vec().into()),
                force: false,
                store: None,
            }),
        );
        eprintln!("    replicate at epoch {epoch} to node {to} ({role}): {r:?}");
        let e = r.expect_err("a replication at a stale epoch must be refused");
        assert_eq!(e.code(), "stale_epoch", "{e}");
        let text = e.to_string();
        assert!(
            text.contains(&format!("epoch {epoch}")) && text.contains(&format!("{}", epoch + 1)),
            "the error names both epochs: {text}"
        );
    }
    let r = store_call(
        c,
        &rpc(new),
        StoreRequest::Write(keel_node::storage::wire::WriteRequest {
            set: "st-1".into(),
            epoch: keel_core::Epoch(epoch),
            id,
            op: WriteOp::Put(b"from a stale locator".to_vec().into()),
            durability: Default::default(),
        }),
    );
    eprintln!("    write at epoch {epoch} to node {new}: {r:?}");
    let e = r.expect_err("a write at a stale epoch must be refused");
    assert_eq!(e.code(), "not_primary", "{e}");
    for n in [old, new] {
        let stat = StoreRequest::Stat {
            set: "st-1".into(),
            id,
        };
        match store_call(c, &rpc(n), stat) {
            Ok(StoreReply::Stat(None)) => {}
            other => panic!("node {n} stored something of the refused writes: {other:?}"),
        }
    }
    assert_reads(c, "/epoch/1", b"a write of the new epoch\n", scratch);
}

/// A node's internal RPC address (link a).
fn rpc_addr(c: &Cluster, node: u64) -> String {
    let admin = c.admin_addr(node);
    let ip = admin.split(':').next().unwrap_or("");
    format!("{ip}:{}", c.base_port)
}

/// A storage set's objects and tombstones on one node: id -> (version, deleted).
fn objects_of(c: &Cluster, node: u64, set: &str) -> Result<BTreeMap<String, String>, String> {
    use keel_node::storage::wire::{StoreReply, StoreRequest};
    let req = StoreRequest::List {
        set: set.to_string(),
        after: None,
        limit: 10_000,
    };
    match store_call(c, &rpc_addr(c, node), req) {
        Ok(StoreReply::List(l)) => Ok(l
            .into_iter()
            .map(|o| {
                (
                    o.id.to_string(),
                    format!("{} deleted={}", o.version, o.deleted),
                )
            })
            .collect()),
        other => Err(format!("node {node}: {other:?}")),
    }
}

/// A storage request over the internal RPC (mutual TLS with a certificate issued from
/// the cluster secret), as a member sends it.
fn store_call(
    c: &Cluster,
    to: &str,
    req: keel_node::storage::wire::StoreRequest,
) -> Result<keel_node::storage::wire::StoreReply, keel_node::storage::DataError> {
    use keel_net::{ClusterSecret, HttpsTransport, LinkFaults, NodeIdentity, PeerAddrs, Transport};
    use keel_node::storage::wire;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    rt.block_on(async {
        let secret = ClusterSecret::load(&c.dir.join("secret.pem")).expect("the cluster secret");
        let local: std::net::IpAddr = "127.0.0.1".parse().expect("an address");
        let me = NodeIdentity::issue(&secret, 1, &[local]).expect("a certificate");
        let net = HttpsTransport::new(&me, &[("a".to_string(), local)], LinkFaults::new())
            .expect("a transport");
        let peer = PeerAddrs(vec![("a".to_string(), to.parse().expect("an address"))]);
        let (_, body) = net
            .call(
                &peer,
                wire::METHOD,
                wire::encode(&req),
                Duration::from_secs(10),
            )
            .await
            .unwrap_or_else(|e| panic!("storage call to {to}: {e}"));
        wire::decode_reply(&body)
    })
}

/// One put of the stream: its path, content, whether it exited 0, when it started.
struct Put {
    path: String,
    content: Vec<u8>,
    ok: bool,
    started: Instant,
}

/// Stops the put stream when dropped, also when the test fails.
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// Puts distinct files one after another through the CLI until `stop`.
fn put_stream(c: &Cluster, dir: &Path, puts: &Mutex<Vec<Put>>, stop: &AtomicBool) {
    for i in 0.. {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        // Mostly one chunk, every fifth file two.
        let len = if i % 5 == 4 {
            CHUNK + 65_536 * (i % 7 + 1)
        } else {
            65_536 * (i % 7 + 1) + i
        };
        let content = random_bytes(len);
        let local = write_local(dir, &format!("put-{i}"), &content);
        let path = format!("/stream/{}/f{i}.bin", i % 4);
        let started = Instant::now();
        let out = c.keel_within(
            &["put", local.to_str().expect("utf-8"), &path],
            Duration::from_secs(90),
        );
        if !out.ok() {
            eprintln!("    put {path} failed: {}", out.stderr.trim());
        }
        let _ = std::fs::remove_file(&local);
        puts.lock().unwrap_or_else(|e| e.into_inner()).push(Put {
            path,
            content,
            ok: out.ok(),
            started,
        });
    }
}

/// Gets the files already acknowledged, one after another, until stopped; records
/// for each get when it started and whether it returned the right bytes.
fn get_stream(
    c: &Cluster,
    dir: &Path,
    puts: &Mutex<Vec<Put>>,
    gets: &Mutex<Vec<(Instant, Result<(), String>)>>,
    stop: &AtomicBool,
) {
    let local = dir.join("get-stream");
    for i in 0.. {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        let pick = {
            let puts = puts.lock().unwrap_or_else(|e| e.into_inner());
            let acked: Vec<&Put> = puts.iter().filter(|p| p.ok).collect();
            (!acked.is_empty()).then(|| {
                let p = acked[i % acked.len()];
                (p.path.clone(), p.content.clone())
            })
        };
        let Some((path, content)) = pick else {
            std::thread::sleep(Duration::from_millis(20));
            continue;
        };
        let started = Instant::now();
        let out = c.keel_within(
            &["get", &path, local.to_str().expect("utf-8")],
            Duration::from_secs(90),
        );
        let result = if !out.ok() {
            Err(format!("get {path}: {}", out.stderr.trim()))
        } else if std::fs::read(&local).ok().as_deref() != Some(&content[..]) {
            Err(format!("get {path}: other bytes than were put"))
        } else {
            Ok(())
        };
        gets.lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((started, result));
    }
}

/// The sets an `in_sync_changed` event says `node` was taken off.
fn removed_from(events: &[Value], node: u64) -> BTreeSet<String> {
    events
        .iter()
        .filter(|e| e["kind"] == "in_sync_changed")
        .filter(|e| {
            e["detail"]
                .as_str()
                .and_then(|d| d.split("removed [").nth(1))
                .and_then(|r| r.split(']').next())
                .is_some_and(|r| r.split(", ").any(|n| n == node.to_string()))
        })
        .filter_map(|e| e["set"].as_str().map(str::to_string))
        .collect()
}

#[test]
fn no_acknowledged_put_is_lost_when_a_primary_is_killed() {
    // The supervisor restarts the victim only after the puts have had time to reach
    // its sets' new Primaries: a process back before any new Primary acts (a takeover
    // waits out the old lease and the new arbiter's grace, ~1.5 s) missed no write
    // and rightly stays in sync, and this test wants the catch-up path.
    let c = Cluster::start_storage(ClusterSpec {
        restart_delay_ms: 15_000,
        ..ClusterSpec::default()
    });
    let tmp = tempfile::tempdir().expect("temporary directory");
    let s = c.status();
    // The configuration database leader: its loss also costs an election.
    let victim = s["leader"].as_u64().expect("a leader");
    let its_sets: Vec<String> = storage_sets(&s)
        .iter()
        .filter(|x| member_nodes(x).contains(&victim))
        .map(|x| x["id"].as_str().unwrap_or("").to_string())
        .collect();
    assert!(
        storage_sets(&s).iter().any(|x| x["primary"] == victim),
        "node {victim} is Primary of a storage set: {s}"
    );

    let puts: Mutex<Vec<Put>> = Mutex::default();
    let gets: Mutex<Vec<(Instant, Result<(), String>)>> = Mutex::default();
    let stop = AtomicBool::new(false);
    let ok_count = |after: Option<Instant>| {
        puts.lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|p| p.ok && after.is_none_or(|t| p.started > t))
            .count()
    };
    let (since, killed_at, left) = std::thread::scope(|scope| {
        let _stop = StopOnDrop(&stop);
        eprintln!("--- a stream of puts of distinct files");
        let writer = scope.spawn(|| put_stream(&c, tmp.path(), &puts, &stop));
        let reader = scope.spawn(|| get_stream(&c, tmp.path(), &puts, &gets, &stop));
        wait_for("10 puts acknowledged", SETTLE, |last| {
            let n = ok_count(None);
            *last = format!("{n} puts");
            (n >= 10).then_some(())
        });

        let since = c.next_event_seq();
        eprintln!("--- SIGKILL node {victim}: the leader, a member of {its_sets:?}");
        let killed_at = Instant::now();
        let pid = c.signal(victim, libc::SIGKILL);

        eprintln!("--- puts go on; a storage set takes node {victim} off its in-sync list");
        let left = wait_for(
            &format!("3 puts acknowledged after the kill, and node {victim} off an in-sync list"),
            SETTLE,
            |last| {
                let after = ok_count(Some(killed_at));
                let left = removed_from(&c.events_since(since), victim);
                *last = format!("{after} puts after the kill; taken off {left:?}");
                (after >= 3 && !left.is_empty()).then_some(left)
            },
        );

        eprintln!("--- node {victim} restarts, catches up while puts go on, is back in sync");
        c.wait_restarted(victim, pid, SETTLE);
        c.wait_status(
            &format!("node {victim} back on the in-sync list of {its_sets:?}"),
            SETTLE,
            |s| {
                its_sets
                    .iter()
                    .all(|id| in_sync(&set(s, id)).contains(&victim))
                    .then_some(())
            },
        );
        let back_at = Instant::now();
        wait_for("3 puts acknowledged with it back in sync", SETTLE, |last| {
            let n = ok_count(Some(back_at));
            *last = format!("{n} puts");
            (n >= 3).then_some(())
        });
        stop.store(true, Ordering::SeqCst);
        writer.join().expect("the put stream");
        reader.join().expect("the get stream");
        (since, killed_at, left)
    });
    eprintln!("--- reads went on through the kill: every get returned the bytes put");
    let gets = gets.into_inner().unwrap_or_else(|e| e.into_inner());
    let failed: Vec<&String> = gets.iter().filter_map(|(_, r)| r.as_ref().err()).collect();
    assert!(
        failed.is_empty(),
        "gets failed during the failover: {failed:?}"
    );
    let after_kill = gets.iter().filter(|(t, _)| *t > killed_at).count();
    assert!(after_kill >= 3, "only {after_kill} gets ran after the kill");
    eprintln!(
        "    {} gets, {after_kill} of them after the kill",
        gets.len()
    );
    let done = puts.into_inner().unwrap_or_else(|e| e.into_inner());
    let acked: Vec<&Put> = done.iter().filter(|p| p.ok).collect();
    let after = acked.iter().filter(|p| p.started > killed_at).count();
    // Every set it was taken off while away (more than the first one seen).
    let left: BTreeSet<String> = left
        .into_iter()
        .chain(removed_from(&c.events_since(since), victim))
        .collect();
    eprintln!(
        "    {} puts, {} acknowledged, {after} of them started after the kill; node {victim} left the in-sync list of {left:?}",
        done.len(),
        acked.len()
    );
    c.wait_events(
        &format!("catch_up_done of node {victim} for {left:?}"),
        since,
        SETTLE,
        |events| {
            left.iter()
                .all(|id| {
                    events.iter().any(|e| {
                        e["kind"] == "catch_up_done"
                            && e["set"] == id.as_str()
                            && e["node"] == victim
                    })
                })
                .then_some(())
        },
    );

    eprintln!("--- the members of each storage set hold the same objects at the same versions");
    for x in storage_sets(&c.status()) {
        let id = x["id"].as_str().unwrap_or("").to_string();
        let members = member_nodes(&x);
        wait_for(
            &format!("the copies of {id} on {members:?} to match"),
            SETTLE,
            |last| {
                let lists: Vec<_> = members
                    .iter()
                    .map(|n| objects_of(&c, *n, &id))
                    .collect::<Result<_, _>>()
                    .map_err(|e| *last = e)
                    .ok()?;
                let same = lists.windows(2).all(|w| w[0] == w[1]);
                *last = format!("{lists:?}");
                (same && !lists[0].is_empty()).then_some(())
            },
        );
    }

    eprintln!("--- every acknowledged put reads back byte-exact");
    for p in &acked {
        assert_reads(&c, &p.path, &p.content, tmp.path());
    }
    eprintln!("--- the data invariant holds once node {victim} is back in sync");
    let files: Vec<(String, Vec<u8>)> = acked
        .iter()
        .map(|p| (p.path.clone(), p.content.clone()))
        .collect();
    c.assert_data_invariant(&files, tmp.path());
}

/// Data files of the object stores: object id -> nodes holding it, with the paths
/// (every set's copy on a node: the tests using it have no rebalance under way).
fn chunk_files(dir: &Path) -> BTreeMap<String, BTreeMap<u64, PathBuf>> {
    let mut out: BTreeMap<String, BTreeMap<u64, PathBuf>> = BTreeMap::new();
    for node in std::fs::read_dir(dir)
        .expect("the cluster directory")
        .flatten()
    {
        let name = node.file_name().to_string_lossy().into_owned();
        let Some(id) = name.strip_prefix('n').and_then(|n| n.parse::<u64>().ok()) else {
            continue;
        };
        // Format 2: objects/set-<set>/<2 hex>/<32 hex>.
        let objects = node.path().join("data/objects/objects");
        let set_dirs = std::fs::read_dir(&objects).into_iter().flatten().flatten();
        let fans =
            set_dirs.flat_map(|d| std::fs::read_dir(d.path()).into_iter().flatten().flatten());
        for fan in fans {
            for f in std::fs::read_dir(fan.path())
                .into_iter()
                .flatten()
                .flatten()
            {
                let file = f.file_name().to_string_lossy().into_owned();
                if file.len() == 32 && file.bytes().all(|b| b.is_ascii_hexdigit()) {
                    out.entry(file).or_default().insert(id, f.path());
                }
            }
        }
    }
    out
}

#[test]
fn a_corrupt_chunk_file_is_repaired_from_a_replica() {
    let c = Cluster::start_storage(ClusterSpec::default());
    let tmp = tempfile::tempdir().expect("temporary directory");
    let content = random_bytes(CHUNK + 300_000);
    let local = write_local(tmp.path(), "file", &content);
    let before = chunk_files(&c.dir);
    c.put_ok(&local, "/repair/me.bin");
    let new: BTreeMap<String, BTreeMap<u64, PathBuf>> = chunk_files(&c.dir)
        .into_iter()
        .filter(|(id, _)| !before.contains_key(id))
        .collect();
    assert_eq!(new.len(), 2, "two chunks, each a new object: {new:?}");

    let s = c.status();
    let (id, holders) = new.iter().next().expect("a chunk");
    let nodes: Vec<u64> = holders.keys().copied().collect();
    let x = storage_sets(&s)
        .into_iter()
        .find(|x| {
            let mut m = member_nodes(x);
            m.sort();
            m == nodes
        })
        .unwrap_or_else(|| panic!("no storage set has exactly the holders {nodes:?}: {s}"));
    let primary = x["primary"].as_u64().expect("a Primary");
    let other = *nodes.iter().find(|n| **n != primary).expect("a replica");
    eprintln!(
        "--- object {id} of {} on nodes {nodes:?}: corrupt it on the Primary, node {primary}",
        x["id"]
    );
    let path = &holders[&primary];
    let mut bytes = std::fs::read(path).expect("the chunk file");
    let at = bytes.len() / 2;
    bytes[at] ^= 0xff;
    std::fs::write(path, &bytes).expect("corrupting the chunk file");
    assert_ne!(
        std::fs::read(path).ok(),
        std::fs::read(&holders[&other]).ok(),
        "the copies differ now"
    );

    let since = c.next_event_seq();
    eprintln!("--- get: byte-exact, and the chunk repaired with an event");
    assert_reads(&c, "/repair/me.bin", &content, tmp.path());
    let e = c.wait_events("object_repaired", since, SETTLE, |events| {
        events
            .iter()
            .find(|e| {
                e["kind"] == "object_repaired"
                    && e["node"] == primary
                    && e["set"] == x["id"]
                    && e["detail"]
                        .as_str()
                        .is_some_and(|d| d.contains(id.as_str()))
            })
            .cloned()
    });
    eprintln!("    {e}");
    assert_eq!(
        std::fs::read(path).ok(),
        std::fs::read(&holders[&other]).ok(),
        "the Primary's copy is repaired on disk"
    );
    assert_reads(&c, "/repair/me.bin", &content, tmp.path());
    c.assert_data_invariant(&[("/repair/me.bin".into(), content)], tmp.path());
    let r = http_request(
        &c.admin_addr(1),
        "GET",
        "/v1/storage/st-1/objects",
        &[],
        b"",
    )
    .expect("the admin API answers");
    assert_eq!(
        r.code, 403,
        "the storage listing needs the admin token: {}",
        r.head
    );
}

#[test]
fn a_lost_site_leaves_data_readable_and_without_the_tiebreaker_writes_are_refused() {
    let c = Cluster::start_storage(ClusterSpec {
        nodes: 4,
        sites: 2,
        no_restart: true,
        ..ClusterSpec::default()
    });
    let tmp = tempfile::tempdir().expect("temporary directory");
    let s = c.status();
    let site_of: BTreeMap<u64, String> = nodes(&s)
        .iter()
        .map(|n| {
            (
                n["id"].as_u64().unwrap_or(0),
                n["site"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    let addr_of = |id: u64| node(&s, id)["addr"].as_str().unwrap_or("").to_string();
    let site1: Vec<u64> = site_of
        .iter()
        .filter(|(_, s)| *s == "1")
        .map(|(n, _)| *n)
        .collect();
    let site2: Vec<u64> = site_of
        .iter()
        .filter(|(_, s)| *s == "2")
        .map(|(n, _)| *n)
        .collect();
    let tiebreaker: Vec<u64> = site_of
        .iter()
        .filter(|(_, s)| *s == "3")
        .map(|(n, _)| *n)
        .collect();
    assert_eq!(
        [&site1, &site2, &tiebreaker].map(|ns| ns.iter().map(|n| addr_of(*n)).collect::<Vec<_>>()),
        [
            vec!["127.0.1.1", "127.0.1.2"],
            vec!["127.0.2.1", "127.0.2.2"],
            vec!["127.0.3.1"]
        ]
        .map(|v| v.into_iter().map(String::from).collect::<Vec<_>>()),
        "{s}"
    );

    eprintln!("--- mirrored layout: each storage set's Primary and Secondary in different sites");
    let sets = storage_sets(&s);
    assert_eq!(sets.len(), 4, "a storage set per storage node: {s}");
    for x in &sets {
        let (p, q) = (x["primary"].as_u64(), x["secondary"].as_u64());
        let (p, q) = (
            p.unwrap_or_else(|| panic!("no Primary: {x}")),
            q.unwrap_or_else(|| panic!("no Secondary: {x}")),
        );
        assert_ne!(site_of[&p], site_of[&q], "{x}");
        assert!(!tiebreaker.contains(&p) && !tiebreaker.contains(&q), "{x}");
    }

    eprintln!("--- files written with both sites up");
    let mut files: Vec<(String, Vec<u8>)> = vec![];
    for i in 0..6 {
        let content = random_bytes(if i == 0 { 2 * CHUNK + 5 } else { 200_000 + i });
        let local = write_local(tmp.path(), &format!("f{i}"), &content);
        let path = format!("/sites/f{i}.bin");
        c.put_ok(&local, &path);
        files.push((path, content));
    }

    eprintln!("--- a volume with asynchronous cross-site replication: puts say so");
    let out = c.keel_ok(&["volume", "create", "async-logs", "--async"]);
    assert!(out.contains("async replication"), "{out}");
    let log = random_bytes(300_000);
    let log_local = write_local(tmp.path(), "log", &log);
    let out = c.keel_ok(&[
        "put",
        log_local.to_str().expect("utf-8 path"),
        "/app.log",
        "--volume",
        "async-logs",
    ]);
    assert!(out.contains("in the background (async volume)"), "{out}");
    let log_back = tmp.path().join("log.back");
    c.keel_ok(&[
        "get",
        "/app.log",
        log_back.to_str().expect("utf-8 path"),
        "--volume",
        "async-logs",
    ]);
    assert!(
        std::fs::read(&log_back).expect("log back") == log,
        "an async put reads back different bytes"
    );

    eprintln!("--- SIGKILL every node of site 1: {site1:?}");
    let pids: Vec<u32> = site1.iter().map(|n| c.signal(*n, libc::SIGKILL)).collect();
    for pid in pids {
        c.wait_gone(pid);
    }
    for (path, content) in &files {
        assert_reads(&c, path, content, tmp.path());
    }
    let later = random_bytes(CHUNK + 3);
    let later_local = write_local(tmp.path(), "later", &later);
    c.put_ok(&later_local, "/sites/after-site-1.bin");
    files.push(("/sites/after-site-1.bin".into(), later));
    c.wait_status("every storage set led from site 2", SETTLE, |s| {
        storage_sets(s)
            .iter()
            .all(|x| x["primary"].as_u64().is_some_and(|p| site2.contains(&p)))
            .then_some(())
    });
    for (path, content) in &files {
        assert_reads(&c, path, content, tmp.path());
    }
    eprintln!("--- the data invariant holds on site 2 (the in-sync members that are up)");
    c.assert_data_invariant(&files, tmp.path());

    eprintln!("--- SIGKILL the tiebreaker too: the control plane loses its majority");
    let pid = c.signal(tiebreaker[0], libc::SIGKILL);
    c.wait_gone(pid);
    // Members take the control plane for working until its silence exceeds their
    // freshness window; then a read that does not allow a stale answer is refused.
    let (path, content) = &files[0];
    let refused = tmp.path().join("refused-read");
    let out = wait_for(
        "a get without --allow-stale to be refused",
        SETTLE,
        |last| {
            let out = c.keel(&["get", path, refused.to_str().expect("utf-8 path")]);
            *last = format!("{} {}", out.status, out.stderr);
            (!out.ok()).then_some(out)
        },
    );
    assert_refused("get without a control plane", &out, &["--allow-stale"]);
    assert!(!refused.exists(), "a refused get leaves no file");
    for (path, content) in &files {
        let local = tmp.path().join("stale-read");
        let out = c.keel(&[
            "get",
            "--allow-stale",
            path,
            local.to_str().expect("utf-8 path"),
        ]);
        assert!(out.ok(), "get --allow-stale {path}: {}", out.stderr);
        let got = std::fs::read(&local).expect("get --allow-stale wrote the file");
        assert_same(path, &got, content);
        assert!(
            out.stderr.contains("may be stale") && out.stdout.contains("stale"),
            "get {path} says the answer may be stale: {:?} {:?}",
            out.stdout,
            out.stderr
        );
    }
    eprintln!("--- each node of site 2 serves reads that allow it, flagged possibly stale");
    let auth = format!("Bearer {}", c.data_key());
    for n in &site2 {
        let addr = c.admin_addr(*n);
        let plain = http_request(
            &addr,
            "GET",
            &format!("/v1/fs{path}"),
            &[("authorization", &auth)],
            b"",
        )
        .unwrap_or_else(|e| panic!("node {n}: {e}"));
        assert_eq!(
            plain.code, 503,
            "node {n} without x-keel-allow-stale: {}",
            plain.head
        );
        let r = wait_for(
            &format!("node {n} to flag its reads as stale"),
            SETTLE,
            |last| {
                let r = http_request(
                    &addr,
                    "GET",
                    &format!("/v1/fs{path}"),
                    &[("authorization", &auth), ("x-keel-allow-stale", "true")],
                    b"",
                )
                .map_err(|e| *last = e)
                .ok()?;
                *last = format!("{} {}", r.code, r.head);
                r.header("x-keel-stale").is_some().then_some(r)
            },
        );
        assert_eq!(r.code, 200, "node {n}: {}", r.head);
        assert_same(&format!("{path} from node {n}"), &r.body, content);
    }

    eprintln!("--- a put is refused, naming the control plane");
    let out = c.keel_within(
        &[
            "put",
            later_local.to_str().expect("utf-8"),
            "/sites/refused.bin",
        ],
        Duration::from_secs(90),
    );
    assert_refused("put without a control plane", &out, &["control plane"]);
    let out = c.keel(&["ls", "--json", "/sites"]);
    assert_refused("ls without a control plane", &out, &["--allow-stale"]);
    let out = c.keel(&["ls", "--json", "--allow-stale", "/sites"]);
    assert!(out.ok(), "ls: {}", out.stderr);
    assert!(out.stderr.contains("may be stale"), "ls: {:?}", out.stderr);
    assert!(
        out.stdout.contains("after-site-1.bin") && !out.stdout.contains("refused.bin"),
        "{}",
        out.stdout
    );
}

#[test]
fn a_duplicate_no_map_names_is_found_by_a_multicast_search() {
    let c = Cluster::start_storage(ClusterSpec {
        no_restart: true,
        ..ClusterSpec::default()
    });
    let tmp = tempfile::tempdir().expect("temporary directory");
    let before: BTreeMap<(u64, String), BTreeMap<String, String>> = object_lists(&c);

    eprintln!("--- one file of one chunk");
    let content = random_bytes(300_000);
    let local = write_local(tmp.path(), "search", &content);
    c.put_ok(&local, "/search.bin");
    c.assert_data_invariant(&[("/search.bin".into(), content.clone())], tmp.path());
    let after = object_lists(&c);
    let new: Vec<(String, String, u64)> = after
        .iter()
        .flat_map(|((node, set), objects)| {
            let known = before.get(&(*node, set.clone()));
            objects
                .keys()
                .filter(move |id| !known.is_some_and(|b| b.contains_key(*id)))
                .map(move |id| (set.clone(), id.clone(), *node))
        })
        .collect();
    let (set, id, _) = new
        .first()
        .cloned()
        .expect("the new chunk on its set's members");
    let holders: Vec<u64> = new
        .iter()
        .filter(|(_, i, _)| *i == id)
        .map(|(_, _, n)| *n)
        .collect();
    let outsider = nodes(&c.status())
        .iter()
        .filter_map(|n| n["id"].as_u64())
        .find(|n| !holders.contains(n))
        .expect("a node outside the chunk's set");
    eprintln!("    chunk {id} of {set} on {holders:?}; node {outsider} holds none");

    eprintln!(
        "--- a copy on node {outsider}, outside the map (as a rebalance or an old layout leaves)"
    );
    use keel_node::storage::wire::{ReplicateRequest, StoreReply, StoreRequest, WriteOp};
    let object: keel_core::ObjectId = id.parse().expect("an object id");
    let Ok(StoreReply::Object { stat, data }) = store_call(
        &c,
        &rpc_addr(&c, holders[0]),
        StoreRequest::Fetch {
            set: set.clone(),
            id: object,
        },
    ) else {
        panic!("fetching the chunk from node {}", holders[0]);
    };
    let copy = StoreRequest::Replicate(ReplicateRequest {
        set: set.clone(),
        epoch: stat.version.epoch,
        id: object,
        version: stat.version,
        op: WriteOp::Put(data.into()),
        force: true,
        store: None,
    });
    store_call(&c, &rpc_addr(&c, outsider), copy).expect("placing the copy");

    eprintln!(
        "--- SIGKILL both members of {set}: neither the map nor the site mapping rule can answer"
    );
    for n in &holders {
        let pid = c.signal(*n, libc::SIGKILL);
        c.wait_gone(pid);
    }
    let local = tmp.path().join("search.out");
    let out = c.keel(&[
        "get",
        "--allow-stale",
        "/search.bin",
        local.to_str().expect("utf-8 path"),
    ]);
    assert!(out.ok(), "get --allow-stale /search.bin: {}", out.stderr);
    let got = std::fs::read(&local).expect("get wrote /search.bin");
    assert_same("/search.bin", &got, &content);
    assert!(
        out.stderr.contains("may be stale"),
        "a read without a control plane is flagged: {}",
        out.stderr
    );
    let log = c.node_log(outsider);
    assert!(
        log.contains("locator: multicast search answered"),
        "node {outsider} did not find the copy by multicast:\n{}",
        log.lines().rev().take(30).collect::<Vec<_>>().join("\n")
    );
}

/// Every node's objects of every storage set: (node, set) -> id -> version.
fn object_lists(c: &Cluster) -> BTreeMap<(u64, String), BTreeMap<String, String>> {
    let s = c.status();
    let mut out = BTreeMap::new();
    for x in storage_sets(&s) {
        let id = x["id"].as_str().unwrap_or("").to_string();
        for n in member_nodes(&x) {
            if let Ok(objects) = objects_of(c, n, &id) {
                out.insert((n, id.clone()), objects);
            }
        }
    }
    out
}
