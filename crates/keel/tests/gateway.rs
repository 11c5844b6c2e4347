//! The native API's data-plane safety through the real binary on `keel dev up`
//! clusters: changes retried on another member after they committed answer as
//! applied (idempotency keys on mv, rm, mkdir); `set delete` refuses a storage set in
//! use, and a re-created set starts above the epoch of the one deleted; a member cut
//! off from the control plane's majority never answers a read with old content unless
//! the request allows it, the CLI gets the current content from the majority, and a
//! member that rejoins never answers "not found" for an acknowledged file.

mod support;

use rand::RngCore;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::Duration;
use support::*;

/// Deadline for a failover, a layout change or a heal to show.
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

fn fresh_key() -> String {
    let mut b = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut b);
    format!("{:032x}", u128::from_le_bytes(b))
}

/// One request to node `node`'s native API with the dev access key (and
/// `extra` headers).
fn call(c: &Cluster, node: u64, method: &str, path: &str, extra: &[(&str, &str)]) -> HttpReply {
    let auth = format!("Bearer {}", c.data_key());
    let mut headers = vec![("authorization", auth.as_str())];
    headers.extend_from_slice(extra);
    http_request(&c.admin_addr(node), method, path, &headers, b"")
        .unwrap_or_else(|e| panic!("{method} {path} on node {node}: {e}"))
}

fn json(r: &HttpReply) -> Value {
    serde_json::from_slice(&r.body)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {} {}", r.head, r.text()))
}

/// Asserts a CLI refusal: non-zero exit, one line on stderr containing every needle.
fn assert_refused(what: &str, out: &Output, needles: &[&str]) {
    eprintln!("    {what}: {}", out.stderr.trim_end());
    assert!(!out.ok(), "{what}: expected a failure, got {}", out.status);
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(
        lines.len(),
        1,
        "{what}: one line on stderr: {:?}",
        out.stderr
    );
    for needle in needles {
        assert!(
            lines[0].contains(needle),
            "{what}: {:?} does not mention {needle:?}",
            lines[0]
        );
    }
}

#[test]
fn retried_changes_answer_as_applied_and_set_delete_refuses_a_set_in_use() {
    let c = Cluster::start_storage(ClusterSpec::default());
    let tmp = tempfile::tempdir().expect("temporary directory");
    let content = random_bytes(300_000);
    c.put_ok(&write_local(tmp.path(), "a", &content), "/r/a");

    eprintln!("--- mv /r/a -> /r/b on node 1, the same request (same key) retried on node 2");
    let key = fresh_key();
    let mv = |node: u64, key: Option<&str>| {
        let headers: Vec<(&str, &str)> = key.map(|k| ("idempotency-key", k)).into_iter().collect();
        call(&c, node, "POST", "/v1/rename/r/a?to=/r/b", &headers)
    };
    let first = mv(1, Some(&key));
    assert_eq!(first.code, 200, "{} {}", first.head, first.text());
    let retry = mv(2, Some(&key));
    assert_eq!(
        retry.code,
        200,
        "a committed mv retried elsewhere: {}",
        retry.text()
    );
    assert_eq!(json(&retry)["ino"], json(&first)["ino"], "{}", retry.text());
    assert_eq!(json(&retry)["path"], "/r/b");
    let bare = mv(3, None);
    assert_eq!(
        bare.code,
        404,
        "without a key the retry is a new mv: {}",
        bare.text()
    );
    let (got, _) = c.get_ok("/r/b", &tmp.path().join("b"));
    assert!(got == content, "/r/b reads back different bytes");

    eprintln!("--- mkdir /r/m on node 1, retried on node 2");
    let key = fresh_key();
    let first = call(&c, 1, "POST", "/v1/mkdir/r/m", &[("idempotency-key", &key)]);
    assert_eq!(first.code, 201, "{}", first.text());
    let retry = call(&c, 2, "POST", "/v1/mkdir/r/m", &[("idempotency-key", &key)]);
    assert_eq!(
        retry.code,
        201,
        "a committed mkdir retried: {}",
        retry.text()
    );
    assert_eq!(json(&retry)["ino"], json(&first)["ino"]);
    let bare = call(&c, 3, "POST", "/v1/mkdir/r/m", &[]);
    assert_eq!(bare.code, 409, "{}", bare.text());

    eprintln!("--- rm /r/b and rm /r/m on node 1, each retried on node 2");
    for path in ["/v1/fs/r/b", "/v1/fs/r/m"] {
        let key = fresh_key();
        let first = call(&c, 1, "DELETE", path, &[("idempotency-key", &key)]);
        assert_eq!(first.code, 204, "{path}: {}", first.text());
        let retry = call(&c, 2, "DELETE", path, &[("idempotency-key", &key)]);
        assert_eq!(
            retry.code,
            204,
            "{path}: a committed rm retried: {}",
            retry.text()
        );
        let bare = call(&c, 3, "DELETE", path, &[]);
        assert_eq!(bare.code, 404, "{path}: {}", bare.text());
    }
    let bad = call(
        &c,
        1,
        "DELETE",
        "/v1/fs/r",
        &[("idempotency-key", "not hex")],
    );
    assert_eq!(bad.code, 400, "{}", bad.text());

    eprintln!("--- the CLI's mkdir, mv and rm");
    c.put_ok(&write_local(tmp.path(), "c", &content), "/r/c");
    c.keel_ok(&["mkdir", "/r/n"]);
    c.keel_ok(&["mv", "/r/c", "/r/n/c"]);
    c.keel_ok(&["rm", "/r/n/c"]);
    c.keel_ok(&["rm", "/r/n"]);

    set_delete_guardrails(&c, tmp.path());
}

/// `set delete` refuses a set the placement map names and a storage set that holds
/// an object, each with one line naming why and `--force`; a set deleted with
/// `--force` and re-created by `layout apply` starts above its old epoch.
fn set_delete_guardrails(c: &Cluster, scratch: &Path) {
    let content = random_bytes(200_000);
    for i in 0..4 {
        c.put_ok(&write_local(scratch, "d", &content), &format!("/data/{i}"));
    }

    eprintln!("--- set delete st-1: the placement map names it");
    let out = c.keel(&["set", "delete", "st-1"]);
    assert_refused(
        "set delete st-1",
        &out,
        &["st-1", "placement map", "--force"],
    );
    assert!(!set(&c.status(), "st-1").is_null(), "st-1 is still there");

    eprintln!("--- a storage set outside the placement map that holds an object");
    c.keel_ok(&[
        "set",
        "create",
        "extra",
        "--kind",
        "storage",
        "--members",
        "1,2",
    ]);
    let epoch = c.wait_status("extra with a Primary", SETTLE, |s| {
        let (p, e) = primary_and_epoch(s, "extra");
        p.map(|_| e)
    });
    let object = keel_core::ObjectId(u128::from_le_bytes([7; 16]));
    let copy = keel_node::storage::wire::StoreRequest::Replicate(
        keel_node::storage::wire::ReplicateRequest {
            set: "extra".into(),
            epoch: keel_core::Epoch(epoch),
            id: object,
            version: keel_core::Version {
                epoch: keel_core::Epoch(epoch),
                seq: 1,
            },
            op: keel_node::storage::wire::WriteOp::Put(b"an object of extra".to_vec().into()),
            force: true,
            store: None,
        },
    );
    store_call(c, 1, copy).expect("placing an object of extra on node 1");
    let out = c.keel(&["set", "delete", "extra"]);
    assert_refused(
        "set delete extra",
        &out,
        &["extra", "node 1", "holds", "--force"],
    );
    c.keel_ok(&["set", "delete", "extra", "--force"]);

    eprintln!("--- move st-1's Primary (epoch + 1), delete it with --force, layout apply");
    let before = c.status();
    let st1 = set(&before, "st-1");
    let secondary = st1["secondary"].as_u64().expect("st-1 has a Secondary");
    let (_, old) = primary_and_epoch(&before, "st-1");
    c.keel_ok(&["takeover", "st-1", "--to", &secondary.to_string()]);
    let old = c.wait_status("st-1's epoch to grow", SETTLE, |s| {
        let (_, e) = primary_and_epoch(s, "st-1");
        (e > old).then_some(e)
    });
    let out = c.keel_ok(&["set", "delete", "st-1", "--force"]);
    assert!(out.contains("deleted"), "{out}");
    assert!(set(&c.status(), "st-1").is_null(), "st-1 is gone");
    c.keel_ok(&["layout", "apply"]);
    let new = c.wait_status("st-1 re-created", SETTLE, |s| {
        let x = set(s, "st-1");
        (!x.is_null()).then(|| primary_and_epoch(s, "st-1").1)
    });
    eprintln!("    st-1: epoch {old} before the delete, {new} re-created");
    assert!(
        new > old,
        "the re-created st-1 starts at epoch {new}, not above the deleted set's {old}"
    );
}

/// A storage request over the internal RPC (mutual TLS with a certificate issued from
/// the cluster secret), as a member sends it, to node `node`.
fn store_call(
    c: &Cluster,
    node: u64,
    req: keel_node::storage::wire::StoreRequest,
) -> Result<keel_node::storage::wire::StoreReply, keel_node::storage::DataError> {
    use keel_net::{ClusterSecret, HttpsTransport, LinkFaults, NodeIdentity, PeerAddrs, Transport};
    use keel_node::storage::wire;
    let admin = c.admin_addr(node);
    let to = format!("{}:{}", admin.split(':').next().unwrap_or(""), c.base_port);
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

#[test]
fn a_member_cut_off_from_the_majority_never_answers_with_old_content_unless_asked() {
    let c = Cluster::start_storage(ClusterSpec {
        nodes: 4,
        sites: 2,
        ..ClusterSpec::default()
    });
    let tmp = tempfile::tempdir().expect("temporary directory");
    let v1 = random_bytes(200_000);
    let v2 = random_bytes(200_001);
    c.put_ok(&write_local(tmp.path(), "v1", &v1), "/f");

    // The Raft leader if it serves data (the tiebreaker does not), else node 1, which
    // a new CLI process asks first.
    let s = c.status();
    let victim = s["leader"]
        .as_u64()
        .filter(|l| (1..=4).contains(l))
        .unwrap_or(1);
    eprintln!(
        "--- cut both links of node {victim} (leader {})",
        s["leader"]
    );
    let n = victim.to_string();
    c.keel_ok(&["fault", "link", &n, "a", "down"]);
    c.keel_ok(&["fault", "link", &n, "b", "down"]);

    eprintln!("--- the majority side takes a new /f and /g");
    c.put_ok(&write_local(tmp.path(), "v2", &v2), "/f");
    c.put_ok(&write_local(tmp.path(), "g", &v1), "/g");

    eprintln!("--- node {victim} refuses a read that does not allow a stale answer");
    let r = call(&c, victim, "GET", "/v1/fs/f", &[]);
    assert_eq!(r.code, 503, "node {victim}: {} {}", r.head, r.text());
    assert_eq!(json(&r)["code"], "no_control_plane", "{}", r.text());
    let r = call(&c, victim, "GET", "/v1/stat/f", &[]);
    assert_eq!(r.code, 503, "stat on node {victim}: {}", r.text());
    let r = call(&c, victim, "GET", "/v1/list/", &[]);
    assert_eq!(r.code, 503, "list on node {victim}: {}", r.text());
    eprintln!("--- ... answers one that allows it from its replica, marked stale");
    let r = call(
        &c,
        victim,
        "GET",
        "/v1/stat/f",
        &[("x-keel-allow-stale", "true")],
    );
    assert_eq!(r.code, 200, "{}", r.head);
    assert_eq!(
        r.header("x-keel-stale").as_deref(),
        Some("true"),
        "{}",
        r.head
    );
    assert_eq!(json(&r)["stale"], true, "{}", r.text());
    assert_eq!(
        json(&r)["size"],
        v1.len(),
        "node {victim}'s replica lags: {}",
        r.text()
    );
    // Its chunks may be out of its reach (both links cut): served or unavailable,
    // marked stale either way.
    let r = call(
        &c,
        victim,
        "GET",
        "/v1/fs/f",
        &[("x-keel-allow-stale", "true")],
    );
    eprintln!(
        "    get on node {victim}: {} {}",
        r.code,
        if r.code == 200 {
            String::new()
        } else {
            r.text()
        }
    );
    assert_eq!(
        r.header("x-keel-stale").as_deref(),
        Some("true"),
        "{}",
        r.head
    );
    assert!(
        (r.code == 200 && r.body == v1) || r.code == 503,
        "node {victim}: {} {}",
        r.head,
        r.text()
    );
    eprintln!("--- ... and refuses to decide a removal (503, not 404)");
    let r = call(&c, victim, "DELETE", "/v1/fs/g", &[]);
    assert_eq!(r.code, 503, "rm on node {victim}: {}", r.text());

    eprintln!("--- keel get: the current content, from the majority, no warning");
    for allow in [false, true] {
        let local = tmp.path().join(format!("f-{allow}"));
        let mut args = vec!["get", "/f", local.to_str().expect("utf-8")];
        if allow {
            args.insert(1, "--allow-stale");
        }
        let out = c.keel(&args);
        assert!(out.ok(), "{args:?}: {}", out.stderr);
        assert!(!out.stderr.contains("stale"), "{args:?}: {}", out.stderr);
        assert!(
            std::fs::read(&local).expect("get wrote") == v2,
            "{args:?}: not the current /f"
        );
    }
    let out = c.keel_ok(&["stat", "--json", "/f"]);
    let st: Value = serde_json::from_str(out.trim()).expect("stat --json");
    assert_eq!(st["size"], v2.len(), "{st}");
    assert_eq!(st["stale"], false, "{st}");

    eprintln!("--- heal node {victim}: as it rejoins it never answers not found for /g");
    c.keel_ok(&["fault", "link", &n, "a", "up"]);
    c.keel_ok(&["fault", "link", &n, "b", "up"]);
    let key = fresh_key();
    wait_for(&format!("node {victim} to remove /g"), SETTLE, |last| {
        let r = call(
            &c,
            victim,
            "DELETE",
            "/v1/fs/g",
            &[("idempotency-key", &key)],
        );
        *last = format!("{} {}", r.code, r.text());
        assert!(
            r.code == 204 || r.code == 503,
            "rm /g on the rejoining node {victim}: {} {}",
            r.code,
            r.text()
        );
        (r.code == 204).then_some(())
    });
    let out = c.keel(&["get", "/g", tmp.path().join("g").to_str().expect("utf-8")]);
    assert!(
        !out.ok() && out.stderr.contains("no such file"),
        "{}",
        out.stderr
    );
}
