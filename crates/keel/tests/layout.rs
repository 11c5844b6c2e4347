//! The storage layout through the real `keel` binary: `layout show` (the map and a
//! dry run), `layout apply --replicas 3` growing every storage set of a 3-node
//! cluster to 3 members with the data caught up (and the data invariant holding), and
//! an admin request retried under the same request id applied once.

mod support;

use std::time::Duration;
use support::*;

#[test]
fn layout_show_then_replicas_3_grows_every_set_with_data_caught_up() {
    let c = Cluster::start_storage(ClusterSpec::default());
    let scratch = tempfile::tempdir().unwrap();
    let mut acked = vec![];
    for i in 0..12u32 {
        let data: Vec<u8> = (0..(1000 + i * 5000)).map(|b| (b * 7 + i) as u8).collect();
        let local = scratch.path().join(format!("f{i}"));
        std::fs::write(&local, &data).unwrap();
        let path = format!("/data/f{i}.bin");
        c.put_ok(&local, &path);
        acked.push((path, data));
    }

    // The current map, and a dry run that changes nothing.
    let show = c.keel_ok(&["layout", "show"]);
    eprintln!("{show}");
    assert!(show.contains("placement map version"), "{show}");
    for id in ["st-1", "st-2", "st-3"] {
        assert!(show.contains(&format!("{id}: members [")), "{show}");
    }
    assert!(show.contains("would change nothing"), "{show}");
    let dry = c.keel_ok(&["layout", "show", "--replicas", "3"]);
    eprintln!("{dry}");
    assert!(dry.contains("grow st-1 from [1, 2] to [1, 2, 3]"), "{dry}");
    let before = c.status();
    for s in storage_sets(&before) {
        assert_eq!(
            member_nodes(&s).len(),
            2,
            "the dry run changed nothing: {s}"
        );
    }
    // More members than nodes: refused with one line, nothing changed.
    let out = c.keel(&["layout", "apply", "--replicas", "4"]);
    assert!(!out.ok());
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
    assert!(out.stderr.contains("at most 3 members"), "{}", out.stderr);

    let out = c.keel_ok(&["layout", "apply", "--replicas", "3"]);
    eprintln!("{out}");
    assert!(
        out.contains("layout applied") && out.contains("grow"),
        "{out}"
    );
    assert!(!out.contains("unchanged"), "{out}");
    c.wait_status(
        "every storage set with 3 members, all in sync",
        Duration::from_secs(90),
        |s| {
            let sets = storage_sets(s);
            (sets.len() == 3
                && sets.iter().all(|x| {
                    member_nodes(x).len() == 3 && in_sync(x).len() == 3 && !x["primary"].is_null()
                }))
            .then_some(())
        },
    );
    // Every copy holds the data: the invariant over every in-sync member.
    c.assert_data_invariant(&acked, scratch.path());
    let again = c.keel_ok(&["layout", "apply", "--replicas", "3"]);
    assert!(again.contains("layout unchanged"), "{again}");

    // A drain retried under one request id (as the client retries it) is applied once.
    let token = c.admin_token();
    let auth = format!("Bearer {token}");
    let body = br#"{"op":"drain","node":3}"#;
    let seq = c.next_event_seq();
    let mut replies = vec![];
    for node in [1u64, 2] {
        let r = http_request(
            &c.admin_addr(node),
            "POST",
            "/v1/admin",
            &[
                ("authorization", &auth),
                ("content-type", "application/json"),
                ("x-keel-request-id", "0123456789abcdef0123456789abcdef"),
            ],
            body,
        )
        .expect("admin request");
        eprintln!("    drain via node {node}: {} {}", r.code, r.text());
        assert_eq!(r.code, 200, "{}", r.text());
        replies.push(r.text());
    }
    assert!(replies[1].contains("already applied"), "{replies:?}");
    let drained = c.wait_events("node 3 drained", seq, Duration::from_secs(10), |events| {
        let n = events
            .iter()
            .filter(|e| e["kind"] == "node_drained" && e["node"] == 3)
            .count();
        (n >= 1).then_some(n)
    });
    assert_eq!(drained, 1);
    let n = c
        .events_since(seq)
        .iter()
        .filter(|e| e["kind"] == "node_drained")
        .count();
    assert_eq!(n, 1, "applied once");
}
