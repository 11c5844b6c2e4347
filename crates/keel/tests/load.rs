//! Load never fails over a healthy node: a `keel dev up` cluster of real processes on
//! this machine, saturated for a bounded time by concurrent large puts through the CLI
//! (TLS, checksums, copies to the replicas, fsyncs: every core and the disk busy).
//!
//! Checks, from the event log and the status (counts, never timings): no failure
//! detected, no lease lost, no change of Primary or of roles, no new Raft leader, the
//! same leader and term before and after.

mod support;

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use support::*;

/// Concurrent writers, each putting one file of `FILE_BYTES` again and again.
const WRITERS: usize = 8;
const FILE_BYTES: usize = 20 * 1024 * 1024;
/// How long the load lasts (writers start no put after it) ...
const LOAD_FOR: Duration = Duration::from_secs(60);
/// ... and at most this many puts per writer.
const PUTS_PER_WRITER: usize = 30;
/// The deadline of one put (a loaded machine is slow; a put never hangs forever).
const PUT_DEADLINE: Duration = Duration::from_secs(180);

/// Events that a healthy cluster under load must never record.
const FORBIDDEN: &[&str] = &[
    "failure_detected",
    "node_failed",
    "node_suspect",
    "failover_decided",
    "taken_over",
    "roles_changed",
    "lease_lost",
    "leader_elected",
    "link_down",
];

fn write_local(dir: &Path, name: &str, len: usize, seed: u64) -> std::path::PathBuf {
    // Incompressible enough, and cheap: a xorshift stream.
    let mut x = seed | 1;
    let mut bytes = Vec::with_capacity(len);
    while bytes.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        bytes.extend_from_slice(&x.to_le_bytes());
    }
    bytes.truncate(len);
    let path = dir.join(name);
    std::fs::write(&path, &bytes).expect("write a local file");
    path
}

#[test]
fn a_saturated_cluster_fails_nothing_over() {
    let c = Cluster::start_storage(ClusterSpec::default());
    let tmp = tempfile::tempdir().expect("temporary directory");
    let before = c.status();
    let leader = before["leader"].as_u64().expect("a leader");
    let term = before["term"].as_u64();
    let since = c.next_event_seq();
    eprintln!("--- leader {leader}, term {term:?}; events from #{since}");

    let locals: Vec<_> = (0..WRITERS)
        .map(|i| write_local(tmp.path(), &format!("w{i}"), FILE_BYTES, i as u64 + 7))
        .collect();
    let acked = AtomicU64::new(0);
    let failed = AtomicU64::new(0);
    let stop = AtomicBool::new(false);
    eprintln!(
        "--- {WRITERS} writers put {} MiB files for {LOAD_FOR:?} (at most {PUTS_PER_WRITER} each)",
        FILE_BYTES >> 20
    );
    let started = Instant::now();
    std::thread::scope(|scope| {
        for (i, local) in locals.iter().enumerate() {
            let (c, acked, failed, stop) = (&c, &acked, &failed, &stop);
            scope.spawn(move || {
                // One path per writer, overwritten: the old chunks are deleted, so the
                // disk does not fill up however long the run.
                let path = format!("/load/w{i}.bin");
                for _ in 0..PUTS_PER_WRITER {
                    if stop.load(Ordering::SeqCst) || started.elapsed() >= LOAD_FOR {
                        return;
                    }
                    let out = c.keel_within(
                        &["put", local.to_str().expect("utf-8 path"), &path],
                        PUT_DEADLINE,
                    );
                    if out.ok() {
                        acked.fetch_add(1, Ordering::SeqCst);
                    } else {
                        failed.fetch_add(1, Ordering::SeqCst);
                        eprintln!("    put {path} failed: {}", out.stderr.trim());
                    }
                }
            });
        }
    });
    stop.store(true, Ordering::SeqCst);
    let (acked, failed) = (acked.into_inner(), failed.into_inner());
    eprintln!(
        "--- {acked} puts acknowledged, {failed} failed, in {} s",
        started.elapsed().as_secs()
    );

    let events = c.events_since(since);
    let bad: Vec<String> = events
        .iter()
        .filter(|e| FORBIDDEN.iter().any(|k| e["kind"] == *k))
        .map(|e| e.to_string())
        .collect();
    let after = c.status();
    assert!(
        bad.is_empty(),
        "load caused {} failover events (of {} events since #{since}):\n{}",
        bad.len(),
        events.len(),
        bad.join("\n")
    );
    assert_eq!(
        after["leader"].as_u64(),
        Some(leader),
        "the Raft leader changed under load: {after}"
    );
    if let Some(term) = term {
        assert_eq!(
            after["term"].as_u64(),
            Some(term),
            "the Raft term changed under load"
        );
    }
    assert!(
        acked >= WRITERS as u64,
        "the load never got going: {acked} puts acknowledged, {failed} failed"
    );
    assert_eq!(failed, 0, "puts failed under load on a healthy cluster");
}
