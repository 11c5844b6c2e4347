//! The client's retries against fake members (TLS servers under a test cluster CA
//! speaking just enough HTTP): every try of one change carries the same idempotency key, so a member that
//! committed and died before answering is followed by one that answers as applied;
//! a read is answered by a member whose replica is current, and a stale answer is
//! taken only as a last resort and only when the client allows it.

use keel_client::{Client, ClusterFile, NodeEntry};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// What a fake member saw of one request.
#[derive(Clone, Debug)]
struct Seen {
    line: String,
    key: Option<String>,
    allow_stale: bool,
}

/// An answer that is never sent: the connection stays open and silent.
const HANG: &str = "hang";
/// Prefixed to an answer: it is sent after 1.5 s (a member slow to act, alive).
const SLOW: &str = "slow:";

/// How a fake member answers a request: `None` drops the connection unanswered (the
/// member died just after acting on it), [`HANG`] keeps it open and silent (the
/// member was paused), else the raw response.
type Answer = Arc<dyn Fn(&Seen) -> Option<String> + Send + Sync>;

fn response(status: &str, extra: &str, body: &str) -> String {
    format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\n{extra}content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
}

fn file_view(path: &str, stale: bool) -> String {
    serde_json::json!({
        "path": path, "ino": 42, "kind": "file", "size": 5, "mode": 420, "uid": 0,
        "gid": 0, "mtime": 0, "ctime": 0, "nlink": 1, "chunks": 1, "generation": 1,
        "stale": stale,
    })
    .to_string()
}

fn no_control_plane() -> String {
    response(
        "503 Service Unavailable",
        "",
        r#"{"code":"no_control_plane","message":"the control plane is out of reach: reading refused"}"#,
    )
}

/// The test cluster's CA: the fake members' certificates chain to it, and the client
/// trusts it (from the secret file).
fn test_secret() -> &'static keel_net::ClusterSecret {
    static SECRET: std::sync::OnceLock<keel_net::ClusterSecret> = std::sync::OnceLock::new();
    SECRET.get_or_init(|| keel_net::ClusterSecret::generate("test").expect("a secret"))
}

/// Starts a fake member (HTTPS, a certificate for 127.0.0.1 under the test CA);
/// returns its address and what it saw.
async fn member(answer: Answer) -> (String, Arc<Mutex<Vec<Seen>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("a port");
    let addr = listener.local_addr().expect("an address").to_string();
    let identity = keel_net::NodeIdentity::issue(
        test_secret(),
        1,
        &["127.0.0.1".parse().expect("an address")],
    )
    .expect("a member certificate");
    let tls = tokio_rustls::TlsAcceptor::from(identity.http_server_config().expect("TLS"));
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let log = seen.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (log, answer, tls) = (log.clone(), answer.clone(), tls.clone());
            tokio::spawn(async move {
                let Ok(mut s) = tls.accept(tcp).await else {
                    return;
                };
                let mut raw = vec![];
                let mut buf = [0u8; 4096];
                while !raw.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => raw.extend_from_slice(&buf[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&raw).to_string();
                let header = |name: &str| {
                    head.lines().find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        k.trim()
                            .eq_ignore_ascii_case(name)
                            .then(|| v.trim().to_string())
                    })
                };
                let req = Seen {
                    line: head.lines().next().unwrap_or("").to_string(),
                    key: header("idempotency-key"),
                    allow_stale: header("x-keel-allow-stale").as_deref() == Some("true"),
                };
                log.lock().expect("log").push(req.clone());
                if let Some(r) = answer(&req) {
                    if r == HANG {
                        // A process paused after it read the request: the connection
                        // stays open, nothing comes back.
                        std::future::pending::<()>().await;
                    }
                    let r = match r.strip_prefix(SLOW) {
                        Some(rest) => {
                            tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
                            rest.to_string()
                        }
                        None => r,
                    };
                    let _ = s.write_all(r.as_bytes()).await;
                    let _ = s.shutdown().await;
                }
            });
        }
    });
    (addr, seen)
}

/// A client of a cluster made of `members` (data-serving, in this order).
fn client(dir: &std::path::Path, members: &[String]) -> Client {
    let secret_file = dir.join("secret.pem");
    test_secret().save(&secret_file).expect("saving the secret");
    let nodes = members
        .iter()
        .enumerate()
        .map(|(i, admin)| NodeEntry {
            id: i as u64 + 1,
            site: "1".into(),
            addr: admin.clone(),
            links: vec![],
            admin: admin.clone(),
            roles: vec!["storage".into(), "gateway".into()],
            pid: 0,
            config: None,
            log: None,
        })
        .collect();
    ClusterFile {
        name: "test".into(),
        secret_file,
        nodes,
        dev: true,
        supervisor_pid: None,
        key: Some(format!("KEELTEST:{}", "s".repeat(40))),
        ca_cert: None,
        nfs: None,
        s3: None,
        timings: None,
        dns: None,
    }
    .save(dir)
    .expect("cluster.json");
    Client::open(dir).expect("a client")
}

#[tokio::test]
async fn a_change_retried_after_a_member_died_carries_the_same_key() {
    let tmp = tempfile::tempdir().expect("a directory");
    // Member 1 acts on the request and dies before answering; member 2 answers (as
    // the directory does for a remembered key).
    let (a, seen_a) = member(Arc::new(|_: &Seen| None)).await;
    let (b, seen_b) = member(Arc::new(|r: &Seen| {
        let body = if r.line.starts_with("DELETE") {
            return Some(response("204 No Content", "", ""));
        } else if r.line.contains("/v1/mkdir/") {
            serde_json::json!({
                "path": "/m", "ino": 7, "kind": "dir", "size": 0, "mode": 493, "uid": 0,
                "gid": 0, "mtime": 0, "ctime": 0, "nlink": 2, "chunks": 0, "generation": 1,
            })
            .to_string()
        } else {
            file_view("/b", false)
        };
        Some(response("200 OK", "", &body))
    }))
    .await;
    // A new client for each change (as each CLI command is): it asks member 1 first.
    let c = || client(tmp.path(), &[a.clone(), b.clone()]);
    let moved = c()
        .rename("/a", "/b", None)
        .await
        .expect("mv answered as applied");
    assert_eq!(moved.path, "/b");
    c().remove("/b", None)
        .await
        .expect("rm answered as applied");
    c().mkdir("/m", None)
        .await
        .expect("mkdir answered as applied");

    let a = seen_a.lock().expect("log").clone();
    let b = seen_b.lock().expect("log").clone();
    assert_eq!(a.len(), 3, "{a:?}");
    assert_eq!(b.len(), 3, "{b:?}");
    let mut keys = std::collections::BTreeSet::new();
    for (first, retry) in a.iter().zip(&b) {
        assert_eq!(first.line, retry.line);
        let key = first
            .key
            .clone()
            .expect("a change carries an idempotency key");
        assert_eq!(key.len(), 32, "{key}");
        assert_eq!(
            retry.key.as_ref(),
            Some(&key),
            "the retry of {} carries the same key",
            first.line
        );
        keys.insert(key);
    }
    assert_eq!(keys.len(), 3, "each change has its own key");
}

#[tokio::test]
async fn a_read_goes_to_a_current_member_before_a_stale_one() {
    let tmp = tempfile::tempdir().expect("a directory");
    // Member 1 is cut off: it answers only a request that allows a stale answer.
    let cut_off: Answer = Arc::new(|r: &Seen| {
        Some(if r.allow_stale {
            response("200 OK", "x-keel-stale: true\r\n", &file_view("/f", true))
        } else {
            no_control_plane()
        })
    });
    let (a, seen_a) = member(cut_off.clone()).await;
    let (b, _) = member(Arc::new(|_: &Seen| {
        Some(response("200 OK", "", &file_view("/f", false)))
    }))
    .await;
    for allow in [false, true] {
        let c = client(tmp.path(), &[a.clone(), b.clone()]).allowing_stale(allow);
        let f = c
            .stat("/f", None)
            .await
            .expect("stat from the current member");
        assert!(!f.stale, "allow_stale {allow}: {f:?}");
    }
    assert!(
        seen_a
            .lock()
            .expect("log")
            .iter()
            .all(|r| !r.allow_stale && r.key.is_none()),
        "no stale answer was asked for while a current member answered"
    );
}

#[tokio::test]
async fn a_stale_answer_is_the_last_resort_and_only_when_allowed() {
    let tmp = tempfile::tempdir().expect("a directory");
    let cut_off: Answer = Arc::new(|r: &Seen| {
        Some(if r.allow_stale {
            response("200 OK", "x-keel-stale: true\r\n", &file_view("/f", true))
        } else {
            no_control_plane()
        })
    });
    let (a, _) = member(cut_off.clone()).await;
    let (b, _) = member(cut_off).await;

    let c = client(tmp.path(), &[a.clone(), b.clone()]);
    let e = c
        .stat("/f", None)
        .await
        .expect_err("no current member answers");
    assert_eq!(e.code(), Some("no_control_plane"), "{e}");

    let c = client(tmp.path(), &[a, b]).allowing_stale(true);
    let f = c.stat("/f", None).await.expect("a stale answer, allowed");
    assert!(f.stale, "{f:?}");
}

/// A member that answers every request: a put or stat with a file, a get with bytes.
fn healthy() -> Answer {
    Arc::new(|r: &Seen| {
        Some(if r.line.starts_with("PUT") {
            response("201 Created", "", &file_view("/f", false))
        } else if r.line.starts_with("GET /v1/fs/") {
            "HTTP/1.1 200 OK\r\ncontent-length: 5\r\nconnection: close\r\n\r\nhello".to_string()
        } else {
            response("200 OK", "", &file_view("/f", false))
        })
    })
}

/// A paused process: the kernel completes the TCP handshake (the listening socket's
/// backlog), nothing else ever happens. Returns its address.
async fn paused_before_accepting() -> (String, TcpListener) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("a port");
    (
        listener.local_addr().expect("an address").to_string(),
        listener,
    )
}

#[tokio::test]
async fn a_client_whose_first_member_is_paused_is_answered_by_another() {
    let tmp = tempfile::tempdir().expect("a directory");
    // Member 1 never accepts (paused before the client came); member 2 answers.
    let (a, _held) = paused_before_accepting().await;
    let (b, seen_b) = member(healthy()).await;
    // A new client for each operation, as each CLI command is: member 1 first.
    let c = || client(tmp.path(), &[a.clone(), b.clone()]);
    c().put_bytes("/f", b"hello".to_vec(), None)
        .await
        .expect("put answered by member 2");
    c().stat("/f", None)
        .await
        .expect("stat answered by member 2");
    let (bytes, _) = c()
        .get_bytes("/f", None, None)
        .await
        .expect("get answered by member 2");
    assert_eq!(bytes, b"hello");
    let lines: Vec<String> = seen_b
        .lock()
        .expect("log")
        .iter()
        .map(|r| r.line.clone())
        .collect();
    for want in ["PUT /v1/fs/f", "GET /v1/stat/f", "GET /v1/fs/f"] {
        assert!(
            lines.iter().any(|l| l.starts_with(want)),
            "{want} not in {lines:?}"
        );
    }
}

#[tokio::test]
async fn a_member_that_stops_answering_mid_request_is_left_for_another() {
    let tmp = tempfile::tempdir().expect("a directory");
    // Member 1 accepts and reads every request, then says nothing (paused after
    // reading it, its connections open): only the probe tells it from a slow one.
    let (a, seen_a) = member(Arc::new(|_: &Seen| Some(HANG.to_string()))).await;
    let (b, seen_b) = member(healthy()).await;
    let c = client(tmp.path(), &[a.clone(), b.clone()]);
    c.put_bytes("/f", b"hello".to_vec(), None)
        .await
        .expect("put answered by member 2");
    let (bytes, _) = c
        .get_bytes("/f", None, None)
        .await
        .expect("get answered by member 2");
    assert_eq!(bytes, b"hello");
    let a = seen_a.lock().expect("log").clone();
    let b = seen_b.lock().expect("log").clone();
    assert!(
        a.iter().any(|r| r.line.starts_with("PUT /v1/fs/f")),
        "{a:?}"
    );
    let put_key = a
        .iter()
        .find(|r| r.line.starts_with("PUT"))
        .and_then(|r| r.key.clone());
    let retried = b
        .iter()
        .find(|r| r.line.starts_with("PUT"))
        .expect("the put went on to member 2");
    assert_eq!(retried.key, put_key, "the put's retry carries the same key");
    assert!(
        b.iter().any(|r| r.line.starts_with("GET /v1/fs/f")),
        "{b:?}"
    );
}

#[tokio::test]
async fn a_member_that_answers_slowly_but_lives_is_waited_for() {
    let tmp = tempfile::tempdir().expect("a directory");
    // Member 1 takes its time over a put (longer than the client's patience) but
    // answers the probe: it is not left.
    let (a, seen_a) = member(Arc::new(|r: &Seen| {
        if r.line.starts_with("PUT") {
            Some(format!(
                "{SLOW}{}",
                response("201 Created", "", &file_view("/f", false))
            ))
        } else {
            Some(response(
                "404 Not Found",
                "",
                r#"{"code":"not_found","message":"no route"}"#,
            ))
        }
    }))
    .await;
    let (b, seen_b) = member(healthy()).await;
    let c = client(tmp.path(), &[a.clone(), b.clone()]);
    c.put_bytes("/f", b"hello".to_vec(), None)
        .await
        .expect("put answered by member 1");
    assert!(seen_a
        .lock()
        .expect("log")
        .iter()
        .any(|r| r.line.starts_with("PUT")));
    assert!(
        seen_b
            .lock()
            .expect("log")
            .iter()
            .all(|r| !r.line.starts_with("PUT")),
        "a member that answers probes is not abandoned"
    );
}
