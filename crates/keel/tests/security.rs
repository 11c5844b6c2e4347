//! The data path's security through the real binary on a `keel dev up` cluster: a data
//! request without a key, with a wrong or revoked key, with a read-only key writing, or
//! with a key for another volume is refused (401 or 403) before any work: nothing
//! changes and no read barrier runs; the CLI works with a key `keel key create` made
//! (--key and $KEEL_KEY); the admin token is not a data credential; a rotated admin
//! token works and the old one is refused.

mod support;

use serde_json::Value;
use std::path::Path;
use support::*;

/// `keel_api_read_barriers_total` of every member, summed.
fn api_barriers(c: &Cluster, nodes: &[u64]) -> u64 {
    nodes
        .iter()
        .map(|n| {
            let (code, _, body) =
                http_get(&c.admin_addr(*n), "/metrics").expect("the metrics endpoint answers");
            assert_eq!(code, 200, "metrics of node {n}");
            body.lines()
                .find_map(|l| l.strip_prefix("keel_api_read_barriers_total "))
                .and_then(|v| v.trim().parse::<f64>().ok())
                .unwrap_or_else(|| panic!("node {n} exports keel_api_read_barriers_total"))
                as u64
        })
        .sum()
}

fn key_create(c: &Cluster, args: &[&str]) -> String {
    let mut all = vec!["key", "create"];
    all.extend_from_slice(args);
    all.push("--json");
    let out = c.keel_ok(&all);
    let v: Value = serde_json::from_str(out.trim()).expect("key create --json is JSON");
    let (id, secret) = (v["id"].as_str().unwrap(), v["secret"].as_str().unwrap());
    assert!(!id.is_empty() && secret.len() >= 32, "id and secret: {v}");
    assert_eq!(v["key"], format!("{id}:{secret}"));
    format!("{id}:{secret}")
}

fn request(c: &Cluster, node: u64, method: &str, path: &str, auth: Option<&str>) -> HttpReply {
    let header = auth.map(|a| format!("Bearer {a}"));
    let headers: Vec<(&str, &str)> = header
        .as_deref()
        .map(|h| vec![("authorization", h)])
        .unwrap_or_default();
    http_request(&c.admin_addr(node), method, path, &headers, b"intruder")
        .unwrap_or_else(|e| panic!("{method} {path} on node {node}: {e}"))
}

fn write_local(dir: &Path, name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).expect("writing a local file");
    p
}

#[test]
fn the_data_path_needs_a_key_with_the_right_scope_and_refuses_before_any_work() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let c = Cluster::start_storage(ClusterSpec::default());
    let nodes: Vec<u64> = nodes(&c.status())
        .iter()
        .filter_map(|n| n["id"].as_u64())
        .collect();

    eprintln!("--- the CLI works with the key dev up wrote into cluster.json");
    let content = b"secret content\n".to_vec();
    let local = write_local(tmp.path(), "a.txt", &content);
    c.put_ok(&local, "/sec/a.txt");

    eprintln!("--- keys: read-only, another volume's, one revoked");
    let ro = key_create(&c, &["reader", "--read-only"]);
    let photos = key_create(&c, &["photos-only", "--volume", "photos"]);
    let revoked = key_create(&c, &["gone"]);
    let revoked_id = revoked.split(':').next().unwrap().to_string();
    c.keel_ok(&["key", "delete", &revoked_id]);
    let listed = c.keel_ok(&["key", "list", "--json"]);
    assert!(
        !listed.contains(&revoked_id),
        "a deleted key is not listed: {listed}"
    );
    assert!(
        !listed.contains(ro.split(':').nth(1).unwrap()),
        "key list never shows a secret: {listed}"
    );
    let wrong = format!("{}:{}", ro.split(':').next().unwrap(), "0".repeat(40));
    let admin = c.admin_token();

    let before = api_barriers(&c, &nodes);
    eprintln!("--- refused requests (read barriers so far: {before})");
    let cases: Vec<(&str, &str, Option<&str>, u16)> = vec![
        ("GET", "/v1/fs/sec/a.txt", None, 401),
        ("GET", "/v1/stat/sec/a.txt", None, 401),
        ("GET", "/v1/list/sec", None, 401),
        ("PUT", "/v1/fs/sec/a.txt", None, 401),
        ("GET", "/v1/fs/sec/a.txt", Some(&wrong), 401),
        ("GET", "/v1/fs/sec/a.txt", Some("not-a-key"), 401),
        ("GET", "/v1/fs/sec/a.txt", Some(&revoked), 401),
        ("PUT", "/v1/fs/sec/a.txt", Some(&revoked), 401),
        // The admin token is not a data credential.
        ("GET", "/v1/fs/sec/a.txt", Some(&admin), 401),
        ("PUT", "/v1/fs/sec/a.txt", Some(&ro), 403),
        ("PUT", "/v1/fs/sec/new.txt", Some(&ro), 403),
        ("DELETE", "/v1/fs/sec/a.txt", Some(&ro), 403),
        ("POST", "/v1/mkdir/sec/d", Some(&ro), 403),
        ("POST", "/v1/rename/sec/a.txt?to=/sec/b.txt", Some(&ro), 403),
        ("GET", "/v1/fs/sec/a.txt", Some(&photos), 403),
        ("GET", "/v1/fs/sec/a.txt?volume=default", Some(&photos), 403),
        ("PUT", "/v1/fs/sec/new.txt", Some(&photos), 403),
        ("GET", "/v1/list/sec", Some(&photos), 403),
    ];
    for node in &nodes {
        for (method, path, auth, want) in &cases {
            let r = request(&c, *node, method, path, *auth);
            assert_eq!(
                r.code,
                *want,
                "{method} {path} on node {node} with {auth:?}: {}",
                r.text()
            );
            assert!(
                !r.text().contains("secret content"),
                "a refused request gets no data: {}",
                r.text()
            );
        }
    }
    eprintln!("--- plain HTTP (even with a valid key) gets no data");
    let dev_key = c.data_key();
    for n in &nodes {
        let req = format!(
            "GET /v1/fs/sec/a.txt HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {dev_key}\r\nConnection: close\r\n\r\n"
        );
        let raw = plain_exchange(&c.admin_addr(*n), req.as_bytes()).expect("connect");
        let text = String::from_utf8_lossy(&raw);
        assert!(
            !text.contains("secret content") && !text.starts_with("HTTP/1.1 2"),
            "plain HTTP to node {n} got an answer: {text:?}"
        );
    }
    assert_eq!(
        api_barriers(&c, &nodes),
        before,
        "no refused request ran a read barrier"
    );

    eprintln!("--- nothing changed");
    let (bytes, _) = c.get_ok("/sec/a.txt", &tmp.path().join("back.txt"));
    assert_eq!(bytes, content);
    for gone in ["/sec/new.txt", "/sec/b.txt", "/sec/d"] {
        let out = c.keel(&["stat", gone]);
        assert!(!out.ok(), "{gone} was not created: {}", out.stdout);
    }

    eprintln!("--- a read-only key reads; the CLI with it cannot write");
    let r = request(&c, nodes[0], "GET", "/v1/fs/sec/a.txt", Some(&ro));
    assert_eq!(r.code, 200, "a read-only key reads: {}", r.text());
    assert_eq!(r.body, content);
    assert!(
        api_barriers(&c, &nodes) > before,
        "an authenticated read runs the read barrier (the counter counts)"
    );
    let out = c.keel(&["--key", &ro, "put", local.to_str().unwrap(), "/sec/ro.txt"]);
    assert!(!out.ok(), "a read-only key cannot put: {}", out.stdout);
    assert!(out.stderr.contains("read-only"), "says why: {}", out.stderr);

    eprintln!("--- the CLI works with a key `key create` made: --key and $KEEL_KEY");
    let rw = key_create(&c, &["writer"]);
    let two = write_local(tmp.path(), "two.txt", b"two\n");
    c.keel_ok(&["--key", &rw, "put", two.to_str().unwrap(), "/sec/two.txt"]);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_keel"))
        .args(["--cluster", c.dir.to_str().unwrap(), "get", "/sec/two.txt"])
        .arg(tmp.path().join("two-back.txt"))
        .env("KEEL_KEY", &rw)
        .env_remove("KEEL_CLUSTER")
        .output()
        .expect("running keel");
    assert!(
        out.status.success(),
        "get with $KEEL_KEY: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        std::fs::read(tmp.path().join("two-back.txt")).unwrap(),
        b"two\n"
    );
    let out = c.keel(&["--key", &revoked, "get", "/sec/two.txt", "-"]);
    assert!(!out.ok(), "a revoked key is refused by the CLI too");

    eprintln!("--- the admin token: printed, rotated; the old one is refused");
    let printed = c.keel_ok(&["admin", "token"]);
    assert_eq!(printed.trim(), admin);
    let rotated = c.keel_ok(&["admin", "rotate-token"]);
    let new = rotated.trim().to_string();
    assert_eq!(new.len(), 64, "a new token: {rotated}");
    assert_ne!(new, admin);
    let saved = std::fs::read_to_string(c.dir.join("admin-token")).expect("DIR/admin-token");
    assert_eq!(saved.trim(), new);
    let leader = c.status()["leader"].as_u64().expect("a leader");
    // Every member applies the rotation from the configuration database; wait for it.
    for n in &nodes {
        wait_for(
            "every member to accept the new admin token",
            std::time::Duration::from_secs(20),
            |last| {
                let r = request(&c, *n, "GET", "/v1/keys", Some(&new));
                *last = format!("{} {}", r.code, r.text());
                (r.code == 200).then_some(())
            },
        );
        let r = request(&c, *n, "GET", "/v1/keys", Some(&admin));
        assert_eq!(
            r.code,
            403,
            "the old token is refused on node {n}: {}",
            r.text()
        );
    }
    let r = request(&c, leader, "POST", "/v1/admin/token", Some(&admin));
    assert_eq!(r.code, 403, "the old token cannot rotate: {}", r.text());
    // The CLI uses DIR/admin-token.
    c.keel_ok(&["key", "list"]);
}
