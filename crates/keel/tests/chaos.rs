//! `keel dev chaos` end to end, briefly: a few seconds of faults against a fresh
//! three-node cluster. Checks the contract scripts rely on (one JSON object on stdout
//! with the counts, progress on stderr, an exit status that is non-zero exactly when a
//! count is) and that no node process outlives the command. Whether the counts are zero
//! is what the command itself reports; the short run here proves that it runs.

mod support;

use serde_json::Value;
use std::time::Duration;
use support::*;

#[test]
fn a_short_chaos_run_reports_one_json_object_and_leaves_no_process() {
    let tmp = tempfile::tempdir().expect("temporary directory");
    let dir = tmp.path().join("chaos");
    let port = free_port_block().to_string();
    let out = run_keel(
        &[
            "dev",
            "chaos",
            "--dir",
            dir.to_str().expect("utf-8 path"),
            "--duration",
            "8",
            "--seed",
            "3",
            "--clients",
            "2",
            "--max-file-kib",
            "256",
            "--base-port",
            &port,
            "--json",
        ],
        Duration::from_secs(600),
    );
    eprintln!("{}", out.stderr);
    assert!(out.stderr.contains("[chaos]"), "progress lines on stderr");
    let report: Value = serde_json::from_str(out.stdout.trim())
        .unwrap_or_else(|e| panic!("stdout is not one JSON object ({e}): {:?}", out.stdout));
    let counts = [
        "lost_writes",
        "wrong_reads",
        "unreadable_after_heal",
        "in_sync_violations",
    ];
    for k in counts.iter().chain(&["acknowledged_writes"]) {
        assert!(report[k].is_u64(), "{k} in {report}");
    }
    for k in ["p50", "p99", "max"] {
        assert!(report["stall_ms"][k].is_u64(), "stall_ms.{k} in {report}");
    }
    assert!(report["faults"].is_object(), "{report}");
    assert!(
        report["acknowledged_writes"].as_u64() > Some(0),
        "the workload wrote nothing: {report}"
    );
    let bad: u64 = counts.iter().filter_map(|k| report[k].as_u64()).sum();
    assert_eq!(
        out.ok(),
        bad == 0 && report["lost_objects"].as_u64() == Some(0),
        "the exit status ({}) must say whether a count is non-zero: {report}",
        out.status
    );

    let ours = dir.to_str().expect("utf-8 path").to_string();
    let left: Vec<String> = std::fs::read_dir("/proc")
        .expect("/proc")
        .flatten()
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .filter(|c| c.contains(&ours) && c.contains(" node "))
        .collect();
    assert!(
        left.is_empty(),
        "node processes outlived the chaos run: {left:?}"
    );
}
