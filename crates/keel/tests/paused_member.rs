//! A paused (SIGSTOP) member stalls nothing beyond detection, through the real CLI on
//! a `keel dev up` cluster: a paused Raft leader is replaced and puts are committed
//! again while it is still paused; a client whose first member in cluster.json is
//! paused still lists, puts and gets, answered by another member.
//!
//! No timing is asserted: every wait is for a condition, with a deadline.

mod support;

use std::time::Duration;
use support::*;

const ELECTION: Duration = Duration::from_secs(20);
const PUTS: Duration = Duration::from_secs(60);

/// Is the process stopped (SIGSTOP: state `T` in /proc)?
fn stopped(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(") ").map(|(_, rest)| rest.starts_with('T')))
        .unwrap_or(false)
}

/// Puts `n` files one after another through the CLI (each a new client process, as
/// a user's would be), retrying a failed one until `deadline`; returns the paths.
fn put_files(c: &Cluster, dir: &std::path::Path, tag: &str, n: usize) -> Vec<(String, Vec<u8>)> {
    let mut done = vec![];
    for i in 0..n {
        let body = format!("{tag} file {i}\n").into_bytes();
        let local = dir.join(format!("{tag}-{i}"));
        std::fs::write(&local, &body).expect("a local file");
        let path = format!("/{tag}/f{i}");
        wait_for(&format!("`keel put {path}` to succeed"), PUTS, |last| {
            let out = c.keel(&["put", local.to_str().expect("utf-8"), &path]);
            *last = format!("{}: {}", out.status, out.stderr);
            out.ok().then_some(())
        });
        done.push((path, body));
    }
    done
}

#[test]
fn a_paused_raft_leader_is_replaced_and_puts_are_committed_while_it_stays_paused() {
    let mut c = Cluster::start_storage(ClusterSpec::default());
    let tmp = tempfile::tempdir().expect("a directory");
    put_files(&c, tmp.path(), "before", 1);
    let s = c.status();
    let leader = s["leader"].as_u64().expect("a leader");
    let term = s["term"].as_u64().unwrap_or(0);
    eprintln!("--- SIGSTOP the Raft leader, node {leader} (term {term})");
    let pid = c.signal(leader, libc::SIGSTOP);
    // Puts begin at once, while the old leader is still believed to lead: the ones in
    // flight when it stopped must move on to the new leader, not wait for the old.
    let written = put_files(&c, tmp.path(), "during", 3);
    let s = c.wait_status("a new leader reaching a quorum", ELECTION, |s| {
        (s["quorum"] == true && s["leader"].as_u64().is_some_and(|l| l != leader))
            .then(|| s.clone())
    });
    eprintln!("    new leader {} (term {})", s["leader"], s["term"]);
    assert!(s["term"].as_u64().unwrap_or(0) > term, "a new term: {s}");
    for (path, body) in &written {
        let (got, _) = c.get_ok(path, &tmp.path().join("back"));
        assert_eq!(&got, body, "{path} reads back");
    }
    assert!(
        stopped(pid),
        "node {leader} (pid {pid}) stayed paused through the puts"
    );
    // SAFETY: kill(2) with the pid the supervisor reported for this node.
    unsafe { libc::kill(pid as i32, libc::SIGCONT) };
    c.stop();
}

#[test]
fn a_client_whose_first_member_is_paused_lists_puts_and_gets_through_another() {
    let mut c = Cluster::start_storage(ClusterSpec::default());
    let tmp = tempfile::tempdir().expect("a directory");
    let first = c.cluster_file()["nodes"][0]["id"]
        .as_u64()
        .expect("a first member");
    eprintln!("--- SIGSTOP node {first}, the first member of cluster.json");
    let pid = c.signal(first, libc::SIGSTOP);
    let written = put_files(&c, tmp.path(), "paused-first", 2);
    let listed = wait_for("`keel ls /paused-first` to list both files", PUTS, |last| {
        let out = c.keel(&["ls", "/paused-first"]);
        *last = format!("{}: {}{}", out.status, out.stdout, out.stderr);
        (out.ok() && out.stdout.contains("f0") && out.stdout.contains("f1")).then_some(out.stdout)
    });
    eprintln!("    ls: {}", listed.trim());
    for (path, body) in &written {
        let (got, _) = c.get_ok(path, &tmp.path().join("back"));
        assert_eq!(&got, body, "{path} reads back");
    }
    // A stopped process answers nothing: every answer came from another member.
    assert!(
        stopped(pid),
        "node {first} (pid {pid}) stayed paused through ls, put and get"
    );
    // SAFETY: kill(2) with the pid the supervisor reported for this node.
    unsafe { libc::kill(pid as i32, libc::SIGCONT) };
    c.stop();
}
