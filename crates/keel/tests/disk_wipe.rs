//! A node whose disk was wiped while it was down comes back with a new store: it is
//! out of every in-sync list (an event says why) until it has caught up, is never
//! promoted meanwhile, and no acknowledged file is lost — also when the Primary it
//! caught up from is killed next, and when that Primary comes back.
//!
//! The sequence of issue 7: `dev up --no-restart`; put 12 files; SIGKILL node 2; delete
//! its `data/objects`; start it again with `keel node --config n2/keel.toml`.

mod support;

use rand::RngCore;
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use support::{in_sync, node, storage_sets, Cluster, ClusterSpec, KEEL};

/// Deadline for a failover, a restart and a catch-up to show.
const SETTLE: Duration = Duration::from_secs(60);

/// A node process this test started by hand (`keel node --config`), killed on drop.
struct Restarted(Child);

impl Drop for Restarted {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn restart_node(c: &Cluster, id: u64) -> Restarted {
    let home = c.dir.join(format!("n{id}"));
    let log = std::fs::File::create(home.join("node-restarted.log")).expect("log file");
    let child = Command::new(KEEL)
        .args(["node", "--config"])
        .arg(home.join("keel.toml"))
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log file"))
        .stderr(log)
        .spawn()
        .expect("starting keel node");
    Restarted(child)
}

fn kill(c: &Cluster, id: u64) {
    let pid = c.signal(id, libc::SIGKILL);
    c.wait_gone(pid);
}

fn kill_restarted(c: &Cluster, n: &Restarted) {
    let pid = n.0.id();
    // SAFETY: kill(2) on the node process this test started.
    assert_eq!(unsafe { libc::kill(pid as i32, libc::SIGKILL) }, 0);
    c.wait_gone(pid);
}

fn read_back(c: &Cluster, files: &[(String, Vec<u8>)], scratch: &Path) {
    for (path, want) in files {
        let local: PathBuf = scratch.join("read-back");
        let _ = std::fs::remove_file(&local);
        let (got, _) = c.get_ok(path, &local);
        assert!(
            got == *want,
            "{path}: {} bytes read back, {} written, or different bytes",
            got.len(),
            want.len()
        );
    }
}

fn kind_is(e: &Value, kind: &str, set: &str, node: u64) -> bool {
    e["kind"] == kind && e["set"] == set && e["node"] == node
}

#[test]
fn a_wiped_disk_is_out_of_sync_until_caught_up_and_no_file_is_lost() {
    let c = Cluster::start_storage(ClusterSpec {
        nodes: 3,
        no_restart: true,
        ..ClusterSpec::default()
    });
    let tmp = tempfile::tempdir().expect("temporary directory");

    eprintln!("--- 12 files");
    let mut files = vec![];
    for i in 0..12 {
        let mut content = vec![0u8; 50_000 + i * 7_919];
        rand::thread_rng().fill_bytes(&mut content);
        let local = tmp.path().join(format!("f{i}"));
        std::fs::write(&local, &content).expect("writing a test file");
        let path = format!("/wipe/f{i}.bin");
        c.put_ok(&local, &path);
        files.push((path, content));
    }
    let before = c.status();
    let sets_of_2: BTreeSet<String> = storage_sets(&before)
        .iter()
        .filter(|x| in_sync(x).contains(&2))
        .map(|x| x["id"].as_str().unwrap_or("").to_string())
        .collect();
    assert!(sets_of_2.len() >= 2, "node 2 in sync in two sets: {before}");
    let since = c.next_event_seq();

    eprintln!("--- SIGKILL node 2, delete its data/objects, start it again");
    kill(&c, 2);
    let objects = c.dir.join("n2/data/objects");
    assert!(objects.is_dir(), "{} is the store", objects.display());
    std::fs::remove_dir_all(&objects).expect("wiping node 2's store");
    let n2 = restart_node(&c, 2);
    let new_pid = n2.0.id() as u64;

    eprintln!("--- node 2 is out of every in-sync list until its catch-up finished");
    let caught_up =
        |events: &[Value], set: &str| events.iter().any(|e| kind_is(e, "catch_up_done", set, 2));
    c.wait_status("node 2 caught up in every set", SETTLE, |s| {
        let back = node(s, 2)["pid"].as_u64() == Some(new_pid) && node(s, 2)["state"] == "up";
        if !back {
            return None;
        }
        // Read after the status: every change the status shows is in these events.
        let events = c.events_since(since);
        let mut done = 0;
        for set in &sets_of_2 {
            let x = storage_sets(s)
                .into_iter()
                .find(|x| x["id"] == set.as_str())?;
            if in_sync(&x).contains(&2) {
                let left = events
                    .iter()
                    .position(|e| kind_is(e, "store_replaced", set, 2));
                let rejoined = events.iter().rposition(|e| {
                    e["kind"] == "in_sync_changed"
                        && e["set"] == set.as_str()
                        && e["detail"]
                            .as_str()
                            .is_some_and(|d| d.contains("added [2]"))
                });
                match (left, rejoined) {
                    (Some(l), Some(r)) if l < r => {}
                    _ => panic!(
                        "node 2 is up with its new store and in the in-sync list of {set} \
                         without having left it and caught up: {x}\nevents: {events:?}"
                    ),
                }
            }
            if caught_up(&events, set) && in_sync(&x).contains(&2) {
                done += 1;
            }
        }
        (done == sets_of_2.len()).then_some(())
    });
    let events = c.events_since(since);
    for set in &sets_of_2 {
        let why = events
            .iter()
            .find(|e| kind_is(e, "store_replaced", set, 2))
            .unwrap_or_else(|| panic!("no event says why node 2 left {set}: {events:?}"));
        let detail = why["detail"].as_str().unwrap_or("");
        eprintln!("    {set}: {detail}");
        assert!(detail.contains("new store"), "{why}");
    }
    read_back(&c, &files, tmp.path());

    eprintln!("--- a few more files, then SIGKILL node 1 (a Primary)");
    for i in 12..15 {
        let mut content = vec![0u8; 30_000 + i];
        rand::thread_rng().fill_bytes(&mut content);
        let local = tmp.path().join(format!("f{i}"));
        std::fs::write(&local, &content).expect("writing a test file");
        let path = format!("/wipe/f{i}.bin");
        c.put_ok(&local, &path);
        files.push((path, content));
    }
    let primaries_of_1: Vec<String> = storage_sets(&c.status())
        .iter()
        .filter(|x| x["primary"] == 1)
        .map(|x| x["id"].as_str().unwrap_or("").to_string())
        .collect();
    kill(&c, 1);
    c.wait_status("node 1's sets failed over", SETTLE, |s| {
        storage_sets(s)
            .iter()
            .filter(|x| primaries_of_1.contains(&x["id"].as_str().unwrap_or("").to_string()))
            .all(|x| {
                !x["primary"].is_null() && x["primary"] != 1 && x["lease_holder"] == x["primary"]
            })
            .then_some(())
    });
    read_back(&c, &files, tmp.path());

    eprintln!("--- node 1 comes back (its store intact) and catches up: nothing is lost");
    let since1 = c.next_event_seq();
    let n1 = restart_node(&c, 1);
    c.wait_status("node 1 in sync again", SETTLE, |s| {
        let back = node(s, 1)["pid"].as_u64() == Some(n1.0.id() as u64);
        let all = storage_sets(s)
            .iter()
            .filter(|x| support::member_nodes(x).contains(&1))
            .all(|x| in_sync(x).contains(&1));
        (back && all).then_some(())
    });
    let events = c.events_since(since1);
    assert!(
        !events.iter().any(|e| e["kind"] == "store_replaced"),
        "a node that only restarted keeps its store: {events:?}"
    );
    read_back(&c, &files, tmp.path());
    kill_restarted(&c, &n1);
    drop(n2);
}
