//! Root only: an address moves from one namespace to another on a bridge, and a third
//! namespace's ARP cache follows it after the gratuitous ARP. Skipped (with the reason
//! printed) when not root or without the `ip` command. Addresses in 198.18.0.0/15 only;
//! every namespace the test makes is deleted when it ends, pass or fail.

use keel_addr::{Announce, Change};
use std::net::Ipv4Addr;
use std::process::Command;
use std::time::{Duration, Instant};

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("running ip");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Deletes the test's namespaces (and so their interfaces) on drop.
struct Namespaces(Vec<String>);

impl Drop for Namespaces {
    fn drop(&mut self) {
        for n in self.0.iter().rev() {
            let _ = Command::new("ip").args(["netns", "del", n]).output();
        }
    }
}

fn skip_reason() -> Option<&'static str> {
    if unsafe { libc::geteuid() } != 0 {
        return Some("needs root (network namespaces)");
    }
    if Command::new("ip").arg("-V").output().is_err() {
        return Some("needs the `ip` command (iproute2)");
    }
    None
}

/// The MAC the neighbour entry for `addr` in namespace `ns` points at, if any.
fn neighbour_mac(ns: &str, addr: Ipv4Addr) -> Option<String> {
    let out = Command::new("ip")
        .args(["-n", ns, "neigh", "show", &addr.to_string()])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let mut words = text.split_whitespace();
    while let Some(w) = words.next() {
        if w == "lladdr" {
            return words.next().map(str::to_string);
        }
    }
    None
}

fn mac_text(m: [u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn wait_for_mac(ns: &str, addr: Ipv4Addr, want: &str, poke: impl Fn()) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let got = neighbour_mac(ns, addr);
        if got.as_deref() == Some(want) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the ARP cache of {ns} still says {got:?} for {addr}, want {want}"
        );
        poke();
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn an_address_moves_and_the_neighbours_arp_cache_follows() {
    if let Some(why) = skip_reason() {
        eprintln!("skipped: {why}");
        return;
    }
    let tag = format!("ka{}", std::process::id() % 100_000);
    let (sw, a, b, c) = (
        format!("{tag}-sw"),
        format!("{tag}-a"),
        format!("{tag}-b"),
        format!("{tag}-c"),
    );
    let _guard = Namespaces(vec![sw.clone(), a.clone(), b.clone(), c.clone()]);
    for n in [&sw, &a, &b, &c] {
        ip(&["netns", "add", n]);
    }
    ip(&["-n", &sw, "link", "add", "br0", "type", "bridge"]);
    ip(&["-n", &sw, "link", "set", "br0", "up"]);
    for (i, host) in [&a, &b, &c].into_iter().enumerate() {
        let leg = format!("p{i}");
        ip(&[
            "-n", &sw, "link", "add", &leg, "type", "veth", "peer", "name", "eth0", "netns", host,
        ]);
        ip(&["-n", &sw, "link", "set", &leg, "master", "br0", "up"]);
        ip(&["-n", host, "link", "set", "eth0", "up"]);
        let own = format!("198.18.200.{}/24", i + 2);
        ip(&["-n", host, "addr", "add", &own, "dev", "eth0"]);
    }
    let moving = Ipv4Addr::new(198, 18, 200, 100);
    let plan = Announce {
        count: 6,
        spacing: Duration::from_millis(250),
    };

    // A owns the address first.
    let a_mac = keel_addr::block_in_namespace(&a, move || async move {
        assert_eq!(
            keel_addr::take("eth0", moving, 24, plan).await.unwrap(),
            Change::Done
        );
        // Idempotent: a second add changes nothing.
        assert_eq!(
            keel_addr::add("eth0", moving, 24).await.unwrap(),
            Change::AlreadySo
        );
        keel_addr::interface("eth0").await.unwrap().mac
    })
    .unwrap();
    let b_mac = keel_addr::block_in_namespace(&b, || async {
        keel_addr::interface("eth0").await.unwrap().mac
    })
    .unwrap();
    assert_ne!(a_mac, b_mac);

    // The client talks to the address: its ARP cache learns A's MAC.
    let c_ns = c.clone();
    let poke = move || {
        let _ = keel_addr::in_namespace(&c_ns, move || {
            if let Ok(s) = std::net::UdpSocket::bind("0.0.0.0:0") {
                let _ = s.send_to(b"hello", (moving, 9));
            }
        });
    };
    wait_for_mac(&c, moving, &mac_text(a_mac), &poke);

    // The move: A gives the address up, B takes it and announces it.
    let removed = keel_addr::block_in_namespace(&a, move || async move {
        let r = keel_addr::remove("eth0", moving).await.unwrap();
        // Removing what is gone is no error.
        assert_eq!(
            keel_addr::remove("eth0", moving).await.unwrap(),
            Change::AlreadySo
        );
        r
    })
    .unwrap();
    assert_eq!(removed, Change::Done);
    keel_addr::block_in_namespace(&b, move || async move {
        keel_addr::take("eth0", moving, 24, plan).await.unwrap();
        let on_b = keel_addr::addresses("eth0").await.unwrap();
        assert!(on_b.contains(&(moving, 24)), "{on_b:?}");
    })
    .unwrap();

    // No traffic from the client meanwhile: only the announcement can change its cache.
    wait_for_mac(&c, moving, &mac_text(b_mac), || {});

    // Typed errors for what is not there.
    let missing = keel_addr::block_in_namespace(&b, || async {
        keel_addr::add("nosuch0", Ipv4Addr::new(198, 18, 200, 101), 24).await
    })
    .unwrap();
    assert!(
        matches!(missing, Err(keel_addr::AddrError::NoInterface(_))),
        "{missing:?}"
    );
}
