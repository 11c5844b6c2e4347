//! A full disk, for real: a `keel dev up` cluster whose nodes all keep their data on
//! one small tmpfs (mounted for the test; CI runs as root). A put larger than the free
//! space fails with a one-line `no space` error and a non-zero exit; nothing already
//! stored is harmed, no node falls over (the store keeps a reserve so that the
//! configuration database can still write), the failed put's chunks are deleted, and a
//! put that fits succeeds afterwards.

mod support;

use rand::RngCore;
use std::time::Duration;
use support::*;

fn random_file(dir: &std::path::Path, name: &str, n: usize) -> (std::path::PathBuf, Vec<u8>) {
    let mut b = vec![0u8; n];
    rand::thread_rng().fill_bytes(&mut b);
    let path = dir.join(name);
    std::fs::write(&path, &b).expect("writing a test file");
    (path, b)
}

#[test]
fn a_put_larger_than_free_space_is_refused_and_harms_nothing() {
    let cluster = Cluster::start_storage(ClusterSpec {
        tmpfs_mib: Some(200),
        ..ClusterSpec::default()
    });
    let local = tempfile::tempdir().expect("temporary directory");

    eprintln!("--- a file that fits");
    let (keeper, keeper_bytes) = random_file(local.path(), "keeper", 3 << 20);
    cluster.put_ok(&keeper, "/keeper");

    eprintln!("--- a file larger than the free space (both replicas share the tmpfs)");
    let (big, _) = random_file(local.path(), "big", 160 << 20);
    let out = cluster.keel_within(
        &["put", big.to_str().expect("utf-8 path"), "/big"],
        Duration::from_secs(120),
    );
    assert!(
        !out.ok(),
        "a put larger than the disk succeeded: {}",
        out.stdout
    );
    let errors: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| !l.trim().is_empty())
        .collect();
    assert_eq!(errors.len(), 1, "one line of error, got: {}", out.stderr);
    eprintln!("    refused: {}", errors[0]);
    assert!(
        errors[0].contains("no space"),
        "the error names the cause: {}",
        errors[0]
    );

    eprintln!("--- nothing is harmed");
    let listing = cluster.keel_ok(&["ls", "/"]);
    assert!(
        !listing.contains("big"),
        "a failed put left an entry: {listing}"
    );
    let (got, _) = cluster.get_ok("/keeper", &local.path().join("keeper.out"));
    assert!(got == keeper_bytes, "the file stored before changed");
    let status = cluster.status();
    assert!(
        nodes(&status).iter().all(|n| n["state"] == "up"),
        "a node fell over on a full disk: {status}"
    );

    eprintln!("--- the failed put's chunks are deleted: a put that fits succeeds again");
    let (after, after_bytes) = random_file(local.path(), "after", 16 << 20);
    let after_path = after.to_str().expect("utf-8 path").to_string();
    wait_for(
        "a put that fits to succeed",
        Duration::from_secs(60),
        |last| {
            let out = cluster.keel(&["put", &after_path, "/after"]);
            *last = out.stderr.clone();
            out.ok().then_some(())
        },
    );
    let (got, _) = cluster.get_ok("/after", &local.path().join("after.out"));
    assert!(
        got == after_bytes,
        "the file written after the refusal reads back different bytes"
    );
}
