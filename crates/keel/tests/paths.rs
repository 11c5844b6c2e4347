//! Paths as users expect, through the real `keel` binary on a real dev cluster: a name
//! is stored exactly as given or refused naming the rule; no raw HTTP status reaches
//! the user; a trailing slash means a directory; `mkdir -p`; `put -` from stdin;
//! `put -r`/`get -r` of a tree; `mv` never replaces a target without `--force`.
//! And the drain guardrail: draining the only in-sync member of a set is refused.

mod support;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use support::*;

/// A refusal: non-zero exit, exactly one line on stderr, containing each needle, and
/// never a raw HTTP status.
fn refused(what: &str, out: &Output, needles: &[&str]) {
    eprintln!("    {what}: {}", out.stderr.trim_end());
    assert!(!out.ok(), "{what}: expected a failure: {}", out.stdout);
    assert!(!out.stderr.contains("panicked"), "{what}: {}", out.stderr);
    assert_eq!(out.stderr.lines().count(), 1, "{what}: {:?}", out.stderr);
    for n in needles {
        assert!(
            out.stderr.contains(n),
            "{what}: {:?} lacks {n:?}",
            out.stderr
        );
    }
    for bad in ["HTTP 404", "404 Not Found", "HTTP ", "/v1/"] {
        assert!(
            !out.stderr.contains(bad),
            "{what}: {:?} leaks {bad:?}",
            out.stderr
        );
    }
}

/// `keel --cluster DIR put - PATH` with `input` on standard input.
fn put_stdin(c: &Cluster, path: &str, input: &[u8]) -> Output {
    let mut child = Command::new(KEEL)
        .args(["--cluster", c.dir.to_str().unwrap(), "put", "-", path])
        .env_remove("KEEL_CLUSTER")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("keel put -");
    child.stdin.take().unwrap().write_all(input).unwrap();
    let out = child.wait_with_output().expect("keel put - output");
    Output {
        status: out.status,
        stdout: String::from_utf8_lossy(&out.stdout).into(),
        stderr: String::from_utf8_lossy(&out.stderr).into(),
    }
}

fn write(p: &Path, bytes: &[u8]) {
    if let Some(d) = p.parent() {
        std::fs::create_dir_all(d).unwrap();
    }
    std::fs::write(p, bytes).unwrap();
}

/// Every regular file under `root`, relative path -> bytes.
fn tree(root: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    let mut out = std::collections::BTreeMap::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                todo.push(e.path());
            } else {
                let rel = e.path().strip_prefix(root).unwrap().display().to_string();
                out.insert(rel, std::fs::read(e.path()).unwrap());
            }
        }
    }
    out
}

#[test]
fn paths_as_users_expect() {
    let c = Cluster::start_storage(ClusterSpec::default());
    let scratch = tempfile::tempdir().unwrap();
    let s = scratch.path();
    let f = s.join("f.txt");
    write(&f, b"hello paths\n");

    // Control characters: refused naming the rule; nothing stripped or stored.
    for bad in ["/new\nline.txt", "/tab\there.txt", "/bell\u{7}.txt"] {
        let out = c.keel(&["put", f.to_str().unwrap(), bad]);
        refused(&format!("put {bad:?}"), &out, &["control characters"]);
    }
    let ls = c.keel_ok(&["ls", "/"]);
    assert!(
        !ls.contains("newline.txt") && !ls.contains("tabhere"),
        "{ls}"
    );

    // A backslash is an ordinary character: a round trip, byte-exact, listed as is.
    c.put_ok(&f, "/back\\slash.txt");
    let (bytes, _) = c.get_ok("/back\\slash.txt", &s.join("back.out"));
    assert_eq!(bytes, b"hello paths\n");
    assert!(c.keel_ok(&["ls", "/"]).contains("back\\slash.txt"));

    // The root and an empty volume name: one typed line each, no HTTP status.
    refused(
        "rm /",
        &c.keel(&["rm", "/"]),
        &["root directory cannot be removed"],
    );
    refused("get / -", &c.keel(&["get", "/", "-"]), &["is a directory"]);
    refused("mv / /x", &c.keel(&["mv", "/", "/x"]), &["cannot be moved"]);
    refused("mkdir /", &c.keel(&["mkdir", "/"]), &["already exists"]);
    refused(
        "volume create ''",
        &c.keel(&["volume", "create", ""]),
        &["volume name"],
    );

    // A trailing slash means a directory: `put f /dir/` writes /dir/f.txt.
    c.keel_ok(&["mkdir", "/dir"]);
    let out = c.put_ok(&f, "/dir/");
    assert!(out.contains("/dir/f.txt"), "{out}");
    let st = c.keel_ok(&["stat", "--json", "/dir"]);
    assert!(st.contains("\"kind\":\"dir\""), "{st}");
    let (bytes, _) = c.get_ok("/dir/f.txt", &s.join("dirf.out"));
    assert_eq!(bytes, b"hello paths\n");

    // mkdir -p: ancestors made, an existing directory is no error; plain mkdir is
    // still refused on a missing parent.
    refused(
        "mkdir /p/q/r",
        &c.keel(&["mkdir", "/p/q/r"]),
        &["no such file or directory"],
    );
    c.keel_ok(&["mkdir", "-p", "/p/q/r"]);
    c.keel_ok(&["mkdir", "-p", "/p/q/r"]);
    assert!(c
        .keel_ok(&["stat", "--json", "/p/q"])
        .contains("\"kind\":\"dir\""));

    // put - reads standard input.
    let input: Vec<u8> = (0..70_000u32).map(|i| (i % 251) as u8).collect();
    let out = put_stdin(&c, "/from-stdin.bin", &input);
    assert!(out.ok(), "put -: {}", out.stderr);
    let (bytes, _) = c.get_ok("/from-stdin.bin", &s.join("stdin.out"));
    assert_eq!(bytes, input);

    // put -r / get -r of a small tree, byte-exact (an empty file and an empty
    // directory included).
    let src = s.join("src");
    write(&src.join("a.txt"), b"a");
    write(&src.join("empty"), b"");
    write(&src.join("sub/b.bin"), &vec![7u8; 300_000]);
    write(&src.join("sub/deeper/c.txt"), b"c\n");
    std::fs::create_dir_all(src.join("hollow")).unwrap();
    c.keel_ok(&["put", "-r", src.to_str().unwrap(), "/tree"]);
    let back = s.join("back");
    c.keel_ok(&["get", "-r", "/tree", back.to_str().unwrap()]);
    assert_eq!(tree(&back), tree(&src));
    assert!(back.join("hollow").is_dir());

    // mv onto an existing file: refused without --force, done with it.
    write(&s.join("g.txt"), b"other");
    c.put_ok(&s.join("g.txt"), "/g.txt");
    c.put_ok(&f, "/h.txt");
    refused(
        "mv /g.txt /h.txt",
        &c.keel(&["mv", "/g.txt", "/h.txt"]),
        &["already exists", "--force"],
    );
    let (bytes, _) = c.get_ok("/h.txt", &s.join("h.out"));
    assert_eq!(bytes, b"hello paths\n", "the target is untouched");
    c.keel_ok(&["mv", "--force", "/g.txt", "/h.txt"]);
    let (bytes, _) = c.get_ok("/h.txt", &s.join("h2.out"));
    assert_eq!(bytes, b"other");
    // Never a directory by a file, even with --force; into a directory it goes.
    c.keel_ok(&["mkdir", "/d2"]);
    c.keel_ok(&["mkdir", "/d2/h.txt"]);
    refused(
        "mv --force /h.txt /d2/",
        &c.keel(&["mv", "--force", "/h.txt", "/d2/"]),
        &["is a directory", "never replaces a directory by a file"],
    );
    c.keel_ok(&["mv", "/h.txt", "/dir/"]);
    let (bytes, _) = c.get_ok("/dir/h.txt", &s.join("h3.out"));
    assert_eq!(bytes, b"other");
}

#[test]
fn draining_the_only_in_sync_member_is_refused_unless_forced() {
    // One member per storage set: each node is its set's only in-sync member.
    let c = Cluster::start_storage(ClusterSpec {
        replicas: 1,
        ..ClusterSpec::default()
    });
    let seq = c.next_event_seq();
    let out = c.keel(&["node", "drain", "2"]);
    eprintln!("    drain 2: {}", out.stderr.trim_end());
    assert!(!out.ok());
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
    assert!(out.stderr.contains("st-2"), "{}", out.stderr);
    assert!(out.stderr.contains("--force"), "{}", out.stderr);
    let s = c.status();
    assert_eq!(node(&s, 2)["drained"], false, "{s}");
    assert!(
        c.events_since(seq)
            .iter()
            .all(|e| e["kind"] != "node_drained"),
        "nothing was drained"
    );
    let out = c.keel_ok(&["node", "drain", "2", "--force"]);
    assert!(out.contains("drained"), "{out}");
}
