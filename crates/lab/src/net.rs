//! Builds the lab's network (`build`) and takes everything the journal names apart in
//! reverse (`teardown`). Every step prints one line of progress.
//!
//! Topology: one core namespace holds every bridge (two per site, one data LAN) and
//! routes between them (forwarding on); each host namespace has `link-a` and `link-b`
//! (veth legs on its site's bridges) and `portP` (legs on the data LAN); the client
//! namespace has `eth0` on the data LAN. Hosts route 198.18.0.0/16 and 198.19.0.0/16
//! through the core (other sites); the client routes 198.18.0.0/15 through it. No
//! default route anywhere: nothing leaves the lab.
//!
//! Must never: create an interface in the root namespace, or remove a namespace or
//! process the journal does not name.

use crate::journal::{Entry, Journal};
use crate::plan::{self, Plan};
use crate::{ip, is_gone, netns_pids, run, say, signal, start_ticks, LabError, Result};
use std::time::{Duration, Instant};

fn tolerate_exists(r: Result<String>) -> Result<()> {
    match r {
        Ok(_) => Ok(()),
        Err(LabError::Command { stderr, .. }) if stderr.contains("File exists") => Ok(()),
        Err(e) => Err(e),
    }
}

fn add_netns(j: &mut Journal, name: &str) -> Result<()> {
    j.record(&Entry::Netns { name: name.into() })?;
    ip(&["netns", "add", name])?;
    ip(&["-n", name, "link", "set", "lo", "up"])?;
    Ok(())
}

fn sysctl(ns: &str, kv: &str) -> Result<()> {
    run("ip", &["netns", "exec", ns, "sysctl", "-q", "-w", kv]).map(|_| ())
}

/// A veth pair: `leg` in the core (on `bridge`, up), `inner` in `host_ns` with
/// `addr/prefix`, up.
fn add_leg(
    j: &mut Journal,
    p: &Plan,
    leg: &str,
    bridge: &str,
    host_ns: &str,
    inner: &str,
    (addr, prefix): (std::net::Ipv4Addr, u8),
) -> Result<()> {
    let core = p.core_ns.as_str();
    j.record(&Entry::Link {
        ns: core.into(),
        name: leg.into(),
    })?;
    ip(&[
        "-n", core, "link", "add", leg, "type", "veth", "peer", "name", inner, "netns", host_ns,
    ])?;
    ip(&["-n", core, "link", "set", leg, "master", bridge, "up"])?;
    tolerate_exists(ip(&[
        "-n",
        host_ns,
        "addr",
        "add",
        &format!("{addr}/{prefix}"),
        "dev",
        inner,
    ]))?;
    ip(&["-n", host_ns, "link", "set", inner, "up"])?;
    Ok(())
}

fn add_bridge(j: &mut Journal, p: &Plan, name: &str, addr: &str) -> Result<()> {
    let core = p.core_ns.as_str();
    j.record(&Entry::Link {
        ns: core.into(),
        name: name.into(),
    })?;
    ip(&["-n", core, "link", "add", name, "type", "bridge"])?;
    ip(&["-n", core, "addr", "add", addr, "dev", name])?;
    ip(&["-n", core, "link", "set", name, "up"])?;
    Ok(())
}

/// Makes the network of `p` (namespaces, bridges, veth pairs, addresses, routes),
/// journaling each thing first.
pub fn build(p: &Plan, j: &mut Journal) -> Result<()> {
    let core = p.core_ns.clone();
    say(format!(
        "core namespace {core}: bridges and routing between sites"
    ));
    add_netns(j, &core)?;
    sysctl(&core, "net.ipv4.ip_forward=1")?;
    for &s in &p.sites {
        for plane in 0..2 {
            let br = p.site_bridge(s, plane);
            let addr = format!("{}/24", plan::site_router(s, plane));
            add_bridge(j, p, &br, &addr)?;
        }
        say(format!(
            "site {s}: bridges {} (198.18.{s}.0/24) and {} (198.19.{s}.0/24)",
            p.site_bridge(s, 0),
            p.site_bridge(s, 1)
        ));
    }
    let data = p.data_bridge();
    add_bridge(
        j,
        p,
        &data,
        &format!("{}/{}", plan::data_router(), plan::DATA_PREFIX),
    )?;
    say(format!("data LAN: bridge {data} (198.18.128.0/20)"));
    for h in &p.hosts {
        add_netns(j, &h.ns)?;
        for plane in 0..2 {
            add_leg(
                j,
                p,
                &p.link_leg(h.id, plane),
                &p.site_bridge(h.site, plane),
                &h.ns,
                plan::HOST_LINKS[plane],
                (h.links[plane], 24),
            )?;
            // Other sites of this link's plane: through the core.
            let via = plan::site_router(h.site, plane).to_string();
            let net = ["198.18.0.0/16", "198.19.0.0/16"][plane];
            tolerate_exists(ip(&["-n", &h.ns, "route", "add", net, "via", &via]))?;
        }
        for (k, addr) in h.ports.iter().enumerate() {
            add_leg(
                j,
                p,
                &p.port_leg(h.id, k as u8),
                &data,
                &h.ns,
                &plan::port_if(k as u8),
                (*addr, plan::DATA_PREFIX),
            )?;
        }
        say(format!(
            "host {} (site {}): namespace {}, link-a {}, link-b {}, {} data port(s){}",
            h.id,
            h.site,
            h.ns,
            h.links[0],
            h.links[1],
            h.ports.len(),
            h.ports
                .first()
                .map(|a| format!(" from {a}"))
                .unwrap_or_default()
        ));
    }
    let client = p.client_ns.clone();
    add_netns(j, &client)?;
    add_leg(
        j,
        p,
        &p.client_leg(),
        &data,
        &client,
        plan::CLIENT_IF,
        (p.client_addr, plan::DATA_PREFIX),
    )?;
    tolerate_exists(ip(&[
        "-n",
        &client,
        "route",
        "add",
        "198.18.0.0/15",
        "via",
        &plan::data_router().to_string(),
    ]))?;
    say(format!(
        "client host: namespace {client}, {} on the data LAN",
        p.client_addr
    ));
    Ok(())
}

/// Stops every process in namespace `ns`: SIGTERM, then SIGKILL what is left after
/// 5 s. Paused processes are continued so that they can end.
pub fn kill_all_in(ns: &str) -> Result<usize> {
    let pids = netns_pids(ns);
    for &pid in &pids {
        signal(pid, libc::SIGTERM);
        signal(pid, libc::SIGCONT);
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while !netns_pids(ns).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    for pid in netns_pids(ns) {
        signal(pid, libc::SIGKILL);
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let left = netns_pids(ns);
        if left.is_empty() {
            return Ok(pids.len());
        }
        if Instant::now() > deadline {
            return Err(LabError::Timeout(format!(
                "processes {left:?} in namespace {ns} did not end after SIGKILL"
            )));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Supervisor processes of lab directory `dir` (found by command line:
/// `... lab supervise --dir DIR`).
pub fn find_supervisors(dir: &std::path::Path) -> Vec<i32> {
    let want = dir.as_os_str().as_encoded_bytes().to_vec();
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return vec![];
    };
    let mut out = vec![];
    for e in rd.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(cmd) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        let args: Vec<&[u8]> = cmd.split(|b| *b == 0).collect();
        let is = args.windows(4).any(|w| {
            w[0] == b"lab" && w[1] == b"supervise" && w[2] == b"--dir" && w[3] == want.as_slice()
        });
        if is && pid != std::process::id() as i32 {
            out.push(pid);
        }
    }
    out
}

fn stop_pid(pid: i32) {
    signal(pid, libc::SIGTERM);
    let deadline = Instant::now() + Duration::from_secs(5);
    while start_ticks(pid).is_some() && Instant::now() < deadline {
        // Reap it if it is our child (it is not, normally).
        // SAFETY: waitpid with WNOHANG on a pid.
        unsafe { libc::waitpid(pid, std::ptr::null_mut(), libc::WNOHANG) };
        if crate::proc_state(pid) == Some('Z') {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    if start_ticks(pid).is_some() && crate::proc_state(pid) != Some('Z') {
        signal(pid, libc::SIGKILL);
    }
}

/// Undoes the journal of `dir` in reverse order, tolerating what is already gone, then
/// removes the journal. Returns how many entries were undone.
pub fn teardown(dir: &std::path::Path) -> Result<usize> {
    let entries = crate::journal::read(dir)?;
    if entries.is_empty() {
        say(format!("nothing to take down in {}", dir.display()));
    }
    for e in entries.iter().rev() {
        match e {
            Entry::Process {
                pid,
                start_ticks: t,
            } => {
                if start_ticks(*pid) == Some(*t) {
                    say(format!("stopping process {pid}"));
                    stop_pid(*pid);
                }
            }
            Entry::Supervisor { dir } => {
                for pid in find_supervisors(dir) {
                    say(format!("stopping supervisor {pid}"));
                    stop_pid(pid);
                }
            }
            Entry::Link { ns, name } => match ip(&["-n", ns, "link", "del", name]) {
                Ok(_) => say(format!("removed {name} ({ns})")),
                Err(e) if is_gone(&e) => {}
                Err(e) => return Err(e),
            },
            Entry::Netns { name } => {
                let n = kill_all_in(name)?;
                if n > 0 {
                    say(format!("stopped {n} process(es) in {name}"));
                }
                match ip(&["netns", "del", name]) {
                    Ok(_) => say(format!("removed namespace {name}")),
                    Err(e) if is_gone(&e) => {}
                    Err(e) => return Err(e),
                }
            }
        }
    }
    crate::journal::remove(dir)?;
    Ok(entries.len())
}
