//! Root only (skipped with the reason printed otherwise): the lab's network without
//! nodes. Two sites: hosts reach each other across sites and the client reaches every
//! host; a cut link stops that link's traffic; a partition stops traffic between the
//! sites but not inside one; healing restores it. Then a "crash" (the journal left
//! behind, nothing taken down) is undone by `teardown` alone, leaving no namespace.

use keel_lab::fault::{apply, Fault};
use keel_lab::journal::Journal;
use keel_lab::plan::Plan;
use keel_lab::{ip, net};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::time::Duration;

fn skip_reason() -> Option<&'static str> {
    if unsafe { libc::geteuid() } != 0 {
        return Some("needs root (network namespaces)");
    }
    if std::process::Command::new("ip").arg("-V").output().is_err() {
        return Some("needs the `ip` command (iproute2)");
    }
    None
}

/// Runs `f` on a thread inside namespace `ns`.
fn in_ns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let file = std::fs::File::open(format!("/run/netns/{ns}")).expect("namespace file");
    std::thread::spawn(move || {
        assert_eq!(
            unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) },
            0
        );
        f()
    })
    .join()
    .expect("namespace thread")
}

/// Whether a TCP connection from namespace `from` to `addr` in namespace `to` is
/// accepted within 2 s (a listener is opened for it).
fn reaches(from: &str, to: &str, addr: Ipv4Addr) -> bool {
    let l = in_ns(to, move || TcpListener::bind((addr, 0)).expect("listen"));
    let port = l.local_addr().expect("addr").port();
    in_ns(from, move || {
        TcpStream::connect_timeout(&SocketAddr::new(addr.into(), port), Duration::from_secs(2))
            .is_ok()
    })
}

/// Undoes the lab (its journal) when dropped, pass or fail.
struct Down(std::path::PathBuf);

impl Drop for Down {
    fn drop(&mut self) {
        let _ = net::teardown(&self.0);
    }
}

#[test]
fn links_partitions_and_a_crashed_lab_taken_down_from_its_journal() {
    if let Some(why) = skip_reason() {
        eprintln!("skipped: {why}");
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().canonicalize().expect("canonical");
    let _down = Down(dir.clone());
    // Hosts 1, 2 in site 1, host 3 in site 2.
    let plan = Plan::new(&dir, &[(1, 1), (2, 1), (3, 2)], 1).expect("plan");
    plan.save().expect("lab.json");
    {
        let mut j = Journal::open(&dir).expect("journal");
        net::build(&plan, &mut j).expect("build");
    }
    let h = |i: usize| plan.hosts[i].clone();
    let (h1, h2, h3) = (h(0), h(1), h(2));

    // Across sites on both links, inside a site, and from the client.
    assert!(reaches(&h1.ns, &h3.ns, h3.links[0]));
    assert!(reaches(&h1.ns, &h3.ns, h3.links[1]));
    assert!(reaches(&h1.ns, &h2.ns, h2.links[0]));
    assert!(reaches(&plan.client_ns, &h3.ns, h3.links[0]));
    assert!(reaches(&plan.client_ns, &h2.ns, h2.ports[0]));

    // A cut link carries nothing; the other link still does.
    let cut = |up| Fault::Link {
        host: 2,
        link: "a".into(),
        up,
    };
    apply(&plan, &cut(false)).expect("cut");
    assert!(!reaches(&h1.ns, &h2.ns, h2.links[0]));
    assert!(reaches(&h1.ns, &h2.ns, h2.links[1]));
    apply(&plan, &cut(true)).expect("restore");
    assert!(reaches(&h1.ns, &h2.ns, h2.links[0]));

    // A partition: site 1 against site 2, on both links; inside site 1 and from the
    // client still fine.
    apply(&plan, &Fault::Partition { sites: vec![1] }).expect("partition");
    assert!(!reaches(&h1.ns, &h3.ns, h3.links[0]));
    assert!(!reaches(&h3.ns, &h1.ns, h1.links[1]));
    assert!(reaches(&h1.ns, &h2.ns, h2.links[0]));
    assert!(reaches(&plan.client_ns, &h3.ns, h3.links[0]));
    apply(&plan, &Fault::Heal).expect("heal");
    assert!(reaches(&h1.ns, &h3.ns, h3.links[0]));

    // An isolated host reaches nothing; rejoined, it does again.
    apply(&plan, &Fault::Isolate { host: 3, up: false }).expect("isolate");
    assert!(!reaches(&plan.client_ns, &h3.ns, h3.links[0]));
    apply(&plan, &Fault::Isolate { host: 3, up: true }).expect("rejoin");
    assert!(reaches(&plan.client_ns, &h3.ns, h3.links[0]));

    // Bad faults are typed errors.
    assert!(apply(&plan, &Fault::Kill(9)).is_err());
    assert!(apply(&plan, &Fault::Partition { sites: vec![1, 2] }).is_err());

    // The "crash": a process left in a host, nothing taken down. The journal alone
    // undoes it all.
    let mut sleeper = std::process::Command::new("ip")
        .args(["netns", "exec", &h2.ns, "sleep", "600"])
        .spawn()
        .expect("a process in host 2");
    let n = net::teardown(&dir).expect("teardown");
    assert!(n > 10, "{n} entries");
    let _ = sleeper.wait();
    let left = ip(&["netns", "list"]).expect("ip netns list");
    assert!(
        !left.contains(&plan.prefix),
        "namespaces left after teardown: {left}"
    );
    // Taking down what is gone is no error.
    assert_eq!(net::teardown(&dir).expect("second teardown"), 0);
}
