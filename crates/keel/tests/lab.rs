//! The lab, whole binary (root only; skipped with the reason printed otherwise):
//! `keel lab up --hosts 3` makes three hosts and a client host; `keel status` from the
//! client host shows every node up; cutting one link of the Primary's host raises a
//! `link_down` event and no failover; killing the Primary's node fails over, and
//! resuming the host restarts it (supervised); the gateway export address
//! 198.18.140.1 is on one host, and a kill of its node moves it to another (the
//! client's ARP cache follows, and it connects again); `keel lab down` leaves no namespace,
//! bridge, veth or process of the lab behind. If the test fails half-way, its guard
//! still runs `keel lab down`.

mod support;

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::*;

const UP: Duration = Duration::from_secs(200);
const DETECT: Duration = Duration::from_secs(10);
const FAILOVER: Duration = Duration::from_secs(30);
/// How long a single link cut is watched for a false failover.
const WINDOW: Duration = Duration::from_secs(3);

fn skip_reason() -> Option<&'static str> {
    if unsafe { libc::geteuid() } != 0 {
        return Some("needs root (network namespaces, veth pairs, bridges)");
    }
    if Command::new("ip").arg("-V").output().is_err() {
        return Some("needs the `ip` command (iproute2)");
    }
    None
}

/// Runs `program ARGS` with a deadline (killed and a panic after it).
fn run(program: &str, args: &[&str], deadline: Duration) -> Output {
    let mut child = Command::new(program)
        .args(args)
        .env_remove("KEEL_CLUSTER")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {program}: {e}"));
    let out = child.stdout.take().expect("stdout");
    let err = child.stderr.take().expect("stderr");
    let read = |mut r: Box<dyn std::io::Read + Send>| {
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = r.read_to_string(&mut s);
            s
        })
    };
    let (o, e) = (read(Box::new(out)), read(Box::new(err)));
    let end = Instant::now() + deadline;
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        if Instant::now() > end {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "`{program} {}` did not finish in {deadline:?}",
                args.join(" ")
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    Output {
        status,
        stdout: o.join().unwrap_or_default(),
        stderr: e.join().unwrap_or_default(),
    }
}

/// A lab under test: `keel lab down` when dropped (pass or fail).
struct Lab {
    dir: PathBuf,
    plan: Value,
    _tmp: tempfile::TempDir,
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = run(
            KEEL,
            &["lab", "down", "--dir", self.dir.to_str().unwrap_or("")],
            Duration::from_secs(60),
        );
    }
}

impl Lab {
    fn client_ns(&self) -> String {
        self.plan["client_ns"].as_str().expect("client_ns").into()
    }

    fn prefix(&self) -> String {
        self.plan["prefix"].as_str().expect("prefix").into()
    }

    /// `keel --cluster DIR ARGS` run in the client host.
    fn client_keel(&self, args: &[&str]) -> Output {
        let ns = self.client_ns();
        let mut all = vec![
            "netns",
            "exec",
            ns.as_str(),
            KEEL,
            "--cluster",
            self.dir.to_str().expect("utf-8"),
        ];
        all.extend_from_slice(args);
        run("ip", &all, Duration::from_secs(60))
    }

    fn status(&self) -> Result<Value, String> {
        let out = self.client_keel(&["status", "--json"]);
        if !out.ok() {
            return Err(out.stderr);
        }
        serde_json::from_str(out.stdout.trim()).map_err(|e| e.to_string())
    }

    fn events_since(&self, seq: u64) -> Vec<Value> {
        let out = self.client_keel(&["events", "--json", "--since", &seq.to_string()]);
        assert!(out.ok(), "keel events: {}", out.stderr);
        out.stdout
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    fn next_seq(&self) -> u64 {
        self.events_since(0)
            .last()
            .and_then(|e| e["seq"].as_u64())
            .map_or(0, |s| s + 1)
    }

    fn fault(&self, args: &[&str]) {
        let mut all = vec!["lab", "fault", "--dir", self.dir.to_str().expect("utf-8")];
        all.extend_from_slice(args);
        let out = run(KEEL, &all, Duration::from_secs(30));
        assert!(out.ok(), "keel {}: {}", all.join(" "), out.stderr);
        eprint!("{}", out.stdout);
    }

    fn wait_event(&self, what: &str, since: u64, timeout: Duration, pred: impl Fn(&Value) -> bool) {
        wait_for(what, timeout, |last| {
            let ev = self.events_since(since);
            *last = format!("{} events since {since}", ev.len());
            find_event(&ev, 0, &pred).map(|_| ())
        })
    }
}

/// Names of the lab's namespaces, bridges and veths still there, and its processes.
fn leftovers(prefix: &str, dir: &Path) -> Vec<String> {
    let mut left = vec![];
    let ns = run("ip", &["netns", "list"], Duration::from_secs(10)).stdout;
    left.extend(
        ns.lines()
            .filter(|l| l.starts_with(prefix))
            .map(|l| format!("namespace {l}")),
    );
    for kind in ["bridge", "veth"] {
        let links = run(
            "ip",
            &["-o", "link", "show", "type", kind],
            Duration::from_secs(10),
        )
        .stdout;
        left.extend(
            links
                .lines()
                .filter(|l| l.contains(prefix))
                .map(|l| format!("{kind} {l}")),
        );
    }
    let procs = run(
        "pgrep",
        &["-a", "-f", dir.to_str().expect("utf-8")],
        Duration::from_secs(10),
    )
    .stdout;
    left.extend(procs.lines().map(|l| format!("process {l}")));
    left
}

#[test]
fn a_lab_comes_up_survives_a_link_cut_fails_over_a_kill_and_leaves_nothing() {
    if let Some(why) = skip_reason() {
        eprintln!("skipped: {why}");
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("lab");
    let d = dir.to_str().expect("utf-8").to_string();

    eprintln!("--- keel lab up --hosts 3");
    let up = run(KEEL, &["lab", "up", "--dir", &d, "--hosts", "3"], UP);
    eprint!("{}", up.stdout);
    let dir = dir.canonicalize().expect("the lab dir");
    let plan: Value = std::fs::read_to_string(dir.join("lab.json"))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or(Value::Null);
    let lab = Lab {
        dir: dir.clone(),
        plan,
        _tmp: tmp,
    };
    assert!(up.ok(), "lab up failed: {}", up.stderr);
    let prefix = lab.prefix();

    // A second `up` in the same directory is refused with one line.
    let again = run(KEEL, &["lab", "up", "--dir", &d, "--hosts", "3"], UP);
    assert!(
        !again.ok() && again.stderr.contains("already up"),
        "{again:?}"
    );

    eprintln!("--- keel status from the client host: every node up");
    let s = wait_for("3 nodes up and a Primary", DETECT, |last| {
        let s = lab.status().ok()?;
        let up = nodes(&s).iter().filter(|n| n["state"] == "up").count();
        *last = format!("{up} up");
        (up == 3 && primary_and_epoch(&s, "default").0.is_some()).then_some(s)
    });
    let (p, epoch) = primary_and_epoch(&s, "default");
    let p = p.expect("a Primary");
    eprintln!("    Primary of default: node {p} at epoch {epoch}");
    // The Primary acts before the fault (its taken_over event is in).
    lab.wait_event("the Primary to act", 0, FAILOVER, |e| {
        e["kind"] == "taken_over" && e["node"] == p && e["epoch"] == epoch
    });

    eprintln!("--- cut link b of host {p}: a link event, no failover");
    let since = lab.next_seq();
    lab.fault(&["cut", "--host", &p.to_string(), "--link", "b"]);
    lab.wait_event(&format!("link_down for node {p}"), since, DETECT, |e| {
        e["kind"] == "link_down" && e["node"] == p
    });
    let start = Instant::now();
    while start.elapsed() < WINDOW {
        let s = lab.status().expect("status during a single link cut");
        assert_eq!(
            primary_and_epoch(&s, "default"),
            (Some(p), epoch),
            "one link cut moved the Primary: {s}"
        );
    }
    for e in lab.events_since(since) {
        assert!(
            !matches!(
                e["kind"].as_str(),
                Some("failover_decided" | "failure_detected" | "node_failed")
            ),
            "one link cut caused {e}"
        );
    }
    lab.fault(&["restore", "--host", &p.to_string(), "--link", "b"]);
    lab.wait_event(&format!("link_up for node {p}"), since, DETECT, |e| {
        e["kind"] == "link_up" && e["node"] == p
    });

    eprintln!("--- kill the node of host {p}: fail over");
    let pids: Vec<u64> = std::fs::read_to_string(dir.join("cluster.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<Value>(&t).ok())
        .and_then(|f| f["nodes"].as_array().cloned())
        .unwrap_or_default()
        .iter()
        .filter_map(|n| n["pid"].as_u64())
        .collect();
    assert_eq!(pids.len(), 3, "cluster.json names 3 node pids");
    let since = lab.next_seq();
    lab.fault(&["kill", "--host", &p.to_string()]);
    lab.wait_event("failover_decided", since, FAILOVER, |e| {
        e["kind"] == "failover_decided" && e["set"] == "default"
    });
    let s = wait_for("a new Primary", FAILOVER, |last| {
        let s = lab.status().ok()?;
        let (q, e) = primary_and_epoch(&s, "default");
        *last = format!("{q:?} at {e}");
        (q.is_some_and(|q| q != p) && e > epoch).then_some(s)
    });
    eprintln!(
        "    node {:?} is Primary at epoch {}",
        primary_and_epoch(&s, "default").0,
        primary_and_epoch(&s, "default").1
    );

    eprintln!("--- resume host {p}: the supervisor restarts its node, which comes back up");
    lab.fault(&["resume", "--host", &p.to_string()]);
    wait_for(&format!("node {p} up again"), FAILOVER, |last| {
        let s = lab.status().ok()?;
        let n = node(&s, p);
        *last = format!("{}", n["state"]);
        (n["state"] == "up").then_some(())
    });

    the_export_address_moves_with_a_kill_of_its_owner(&lab);

    eprintln!("--- keel lab down: nothing of the lab is left");
    let down = run(KEEL, &["lab", "down", "--dir", &d], Duration::from_secs(60));
    eprint!("{}", down.stdout);
    assert!(down.ok(), "lab down failed: {}", down.stderr);
    let left = leftovers(&prefix, &dir);
    assert!(left.is_empty(), "left behind: {left:#?}");
    let canonical = dir.to_str().expect("utf-8").to_string();
    for pid in pids {
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists()
                || std::fs::read_to_string(format!("/proc/{pid}/cmdline"))
                    .map(|c| !c.contains(canonical.as_str()))
                    .unwrap_or(true),
            "node process {pid} survived lab down"
        );
    }
    // A fault on a lab that is down is refused with one line.
    let late = run(
        KEEL,
        &["lab", "fault", "--dir", &d, "kill", "--host", "1"],
        Duration::from_secs(30),
    );
    assert!(
        !late.ok()
            && late.stderr.contains("no lab is up")
            && late.stderr.trim().lines().count() == 1,
        "{late:?}"
    );
    // A second down finds nothing and succeeds.
    let again = run(KEEL, &["lab", "down", "--dir", &d], Duration::from_secs(60));
    assert!(again.ok(), "{again:?}");
}

/// The lab's moving export address (see `keel lab up`) and its S3 port.
const EXPORT_ADDR: &str = "198.18.140.1";
const EXPORT_S3_PORT: u16 = 7121;

impl Lab {
    /// (host id, namespace) of every host.
    fn hosts(&self) -> Vec<(u64, String)> {
        self.plan["hosts"]
            .as_array()
            .expect("hosts")
            .iter()
            .map(|h| {
                let id = h["id"].as_u64().expect("id");
                (id, h["ns"].as_str().expect("ns").to_string())
            })
            .collect()
    }

    /// The hosts whose data port 0 carries the export address (`ip -n HOST addr`).
    fn holders(&self) -> Vec<u64> {
        self.hosts()
            .into_iter()
            .filter(|(_, ns)| {
                let out = run(
                    "ip",
                    &["-n", ns, "-o", "-4", "addr", "show", "dev", "port0"],
                    Duration::from_secs(10),
                );
                out.stdout.contains(&format!(" {EXPORT_ADDR}/"))
            })
            .map(|(id, _)| id)
            .collect()
    }

    /// The MAC address of host `id`'s data port 0.
    fn mac(&self, id: u64) -> String {
        let (_, ns) = self
            .hosts()
            .into_iter()
            .find(|(h, _)| *h == id)
            .expect("a host");
        let out = run(
            "ip",
            &["-n", &ns, "-o", "link", "show", "dev", "port0"],
            Duration::from_secs(10),
        );
        word_after(&out.stdout, "link/ether").expect("port0 has a MAC")
    }

    /// The MAC the client host's ARP cache holds for the export address.
    fn client_neigh(&self) -> Option<String> {
        let ns = self.client_ns();
        let out = run(
            "ip",
            &["-n", &ns, "neigh", "show", EXPORT_ADDR],
            Duration::from_secs(10),
        );
        word_after(&out.stdout, "lladdr")
    }

    /// A TCP connection from the client host to the export's S3 port.
    fn client_connects(&self) -> bool {
        let ns = self.client_ns();
        let script = format!("exec 3<>/dev/tcp/{EXPORT_ADDR}/{EXPORT_S3_PORT}");
        run(
            "ip",
            &["netns", "exec", &ns, "timeout", "5", "bash", "-c", &script],
            Duration::from_secs(20),
        )
        .ok()
    }
}

fn word_after(text: &str, key: &str) -> Option<String> {
    let mut words = text.split_whitespace();
    words.find(|w| *w == key)?;
    words.next().map(str::to_string)
}

/// Seed 000 claim 3 on real interfaces: the export address is on exactly one host
/// (the Active); a SIGKILL of that host's node moves it to another host (the lab's
/// supervisor removes it from the dead node's host; the taker adds and announces it),
/// the client's ARP cache follows to the taker's MAC, and the client connects again.
fn the_export_address_moves_with_a_kill_of_its_owner(lab: &Lab) {
    eprintln!("--- the export address {EXPORT_ADDR} is on exactly one host");
    let g = wait_for("the export address on exactly one host", FAILOVER, |last| {
        let h = lab.holders();
        *last = format!("on hosts {h:?}");
        (h.len() == 1).then(|| h[0])
    });
    eprintln!("    on host {g}");
    lab.wait_event(&format!("address_added by node {g}"), 0, FAILOVER, |e| {
        e["kind"] == "address_added" && e["node"] == g
    });
    wait_for("a TCP connection from the client", FAILOVER, |_| {
        lab.client_connects().then_some(())
    });
    let old_mac = lab.mac(g);
    assert_eq!(lab.client_neigh().as_deref(), Some(old_mac.as_str()));

    eprintln!("--- kill the node of host {g}: the address moves");
    let since = lab.next_seq();
    lab.fault(&["kill", "--host", &g.to_string()]);
    let h = wait_for("the address on one other host only", FAILOVER, |last| {
        let h = lab.holders();
        *last = format!("on hosts {h:?}");
        (h.len() == 1 && h[0] != g).then(|| h[0])
    });
    eprintln!("    on host {h}");
    let new_mac = lab.mac(h);
    assert_ne!(old_mac, new_mac);
    // No traffic yet: the taker's gratuitous ARP moves the client's entry.
    wait_for(
        "the client's ARP entry to name the taker",
        FAILOVER,
        |last| {
            let n = lab.client_neigh();
            *last = format!("{n:?} (taker {new_mac}, old {old_mac})");
            (n.as_deref() == Some(new_mac.as_str())).then_some(())
        },
    );
    wait_for("a TCP connection after the move", FAILOVER, |_| {
        lab.client_connects().then_some(())
    });
    lab.wait_event(
        &format!("address_added by node {h}"),
        since,
        FAILOVER,
        |e| e["kind"] == "address_added" && e["node"] == h,
    );

    eprintln!("--- resume host {g}: its new node does not take the address back");
    lab.fault(&["resume", "--host", &g.to_string()]);
    wait_for(&format!("node {g} up again"), FAILOVER, |last| {
        let s = lab.status().ok()?;
        let n = node(&s, g);
        *last = format!("{}", n["state"]);
        (n["state"] == "up").then_some(())
    });
    assert_eq!(lab.holders(), [h]);
}

#[test]
fn anyone_but_root_gets_a_one_line_error() {
    // As root, drop to `nobody` with setpriv (util-linux); otherwise run as we are.
    let root = unsafe { libc::geteuid() } == 0;
    let tmp = tempfile::tempdir().expect("tempdir");
    let d = tmp.path().join("lab");
    let d = d.to_str().expect("utf-8");
    let args = ["lab", "up", "--dir", d, "--hosts", "1"];
    let out = if root {
        if Command::new("setpriv").arg("--version").output().is_err() {
            eprintln!("skipped: root without setpriv cannot run as another user");
            return;
        }
        let mut all = vec![
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--",
            KEEL,
        ];
        all.extend_from_slice(&args);
        run("setpriv", &all, Duration::from_secs(30))
    } else {
        run(KEEL, &args, Duration::from_secs(30))
    };
    if root && out.stderr.contains("Permission denied") && !out.stderr.contains("root") {
        eprintln!(
            "skipped: `nobody` cannot execute {KEEL}: {}",
            out.stderr.trim()
        );
        return;
    }
    assert!(!out.status.success(), "{out:?}");
    assert_eq!(out.stderr.trim().lines().count(), 1, "{out:?}");
    assert!(out.stderr.contains("needs root"), "{out:?}");
    assert!(out.stdout.is_empty(), "{out:?}");
}

#[test]
fn down_cleans_up_after_lab_up_was_killed_half_way() {
    if let Some(why) = skip_reason() {
        eprintln!("skipped: {why}");
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("lab");
    let d = dir.to_str().expect("utf-8").to_string();
    // Its guard takes the lab down if the test fails before its own `down`.
    let guard = Lab {
        dir: dir.clone(),
        plan: Value::Null,
        _tmp: tmp,
    };
    eprintln!("--- keel lab up --hosts 2, SIGKILLed once its supervisor runs");
    let mut up = Command::new(KEEL)
        .args(["lab", "up", "--dir", &d, "--hosts", "2"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("keel lab up");
    let journal = dir.join("lab.journal");
    wait_for("the supervisor in the journal", UP, |last| {
        let text = std::fs::read_to_string(&journal).unwrap_or_default();
        *last = format!("{} journal lines", text.lines().count());
        text.contains("\"process\"").then_some(())
    });
    up.kill().expect("SIGKILL lab up");
    let _ = up.wait();
    let dir = dir.canonicalize().expect("the lab dir");
    let plan: Value = std::fs::read_to_string(dir.join("lab.json"))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .expect("lab.json");
    let prefix = plan["prefix"].as_str().expect("prefix").to_string();
    // The supervisor and its nodes outlived `lab up`.
    wait_for("the nodes running without lab up", DETECT, |last| {
        let left = leftovers(&prefix, &dir);
        *last = format!("{left:?}");
        (left.iter().filter(|l| l.starts_with("process")).count() >= 3).then_some(())
    });

    eprintln!("--- keel lab down: everything goes");
    let down = run(KEEL, &["lab", "down", "--dir", &d], Duration::from_secs(60));
    eprint!("{}", down.stdout);
    assert!(down.ok(), "lab down failed: {}", down.stderr);
    let left = leftovers(&prefix, &dir);
    assert!(left.is_empty(), "left behind: {left:#?}");
    drop(guard);
}
