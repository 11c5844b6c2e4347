//! The lab's supervisor: runs one node process per host inside the host's namespace
//! (`ip netns exec NS ...`) and restarts one that dies after a delay, as `keel dev up`
//! does, unless a fault holds the host down (`DIR/held/hID` exists: `fault kill`
//! makes it, `fault resume` removes it). Runs until SIGTERM (its nodes then get SIGTERM
//! too) or until the lab's core namespace is gone.
//!
//! When a node exits (killed or not), the supervisor first removes the moving
//! (gateway) addresses it may have added to its host (`Proc::release`): the kernel
//! of a host whose node died would otherwise go on answering ARP for them.
//!
//! Must never: restart a held host, or start anything outside a host's namespace.

use crate::{LabError, Result};
use std::ffi::OsString;
use std::net::Ipv4Addr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// One supervised process: `argv` run in namespace `ns`, output appended to `log`.
#[derive(Clone, Debug)]
pub struct Proc {
    pub host: u64,
    pub ns: String,
    pub argv: Vec<OsString>,
    pub log: PathBuf,
    /// Moving addresses (interface, address) the node may have added to its host:
    /// removed from the host when the node exits, before anything else (a killed
    /// node cannot remove them itself; the host's service manager does, as a
    /// systemd `ExecStopPost=` would).
    pub release: Vec<(String, Ipv4Addr)>,
}

/// The marker that holds host `id` down.
pub fn held_path(dir: &Path, id: u64) -> PathBuf {
    dir.join("held").join(format!("h{id}"))
}

/// Holds host `id` down: the supervisor will not restart its node.
pub fn hold(dir: &Path, id: u64) -> Result<()> {
    let path = held_path(dir, id);
    let io = |source| LabError::Io {
        path: path.clone(),
        source,
    };
    std::fs::create_dir_all(dir.join("held")).map_err(io)?;
    std::fs::write(&path, b"").map_err(io)
}

/// Releases host `id`: the supervisor restarts its node if it is not running.
pub fn release(dir: &Path, id: u64) -> Result<()> {
    let path = held_path(dir, id);
    match std::fs::remove_file(&path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(LabError::Io { path, source }),
    }
}

struct Slot {
    proc: Proc,
    child: Option<Child>,
    died_at: Option<Instant>,
}

fn spawn(p: &Proc) -> Result<Child> {
    let io = |source| LabError::Io {
        path: p.log.clone(),
        source,
    };
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&p.log)
        .map_err(io)?;
    let mut cmd = Command::new("ip");
    cmd.arg("netns")
        .arg("exec")
        .arg(&p.ns)
        .args(&p.argv)
        .stdin(Stdio::null())
        .stdout(log.try_clone().map_err(io)?)
        .stderr(log);
    // The node dies with its supervisor; a signal to the supervisor's group stays ours.
    // SAFETY: async-signal-safe calls only, between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            libc::setpgid(0, 0);
            Ok(())
        });
    }
    cmd.spawn().map_err(|source| LabError::Spawn {
        cmd: format!("ip netns exec {} ...", p.ns),
        source,
    })
}

/// Removes the moving addresses a node that exited left on its host's interfaces
/// (`ip -n NS addr del ADDR/32 dev IF`); one that is not there is no error.
fn release_addresses(p: &Proc) {
    for (iface, addr) in &p.release {
        let out = Command::new("ip")
            .args(["-n", &p.ns, "-o", "-4", "addr", "show", "dev", iface])
            .output();
        let there =
            out.is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains(&format!(" {addr}/")));
        if !there {
            continue;
        }
        let target = format!("{addr}/32");
        match crate::ip(&["-n", &p.ns, "addr", "del", &target, "dev", iface]) {
            Ok(_) => println!(
                "[lab] host {}: removed address {addr} its dead node left on {iface}",
                p.host
            ),
            Err(e) => println!("[lab] host {}: removing {addr} from {iface}: {e}", p.host),
        }
    }
}

/// Starts every process, then supervises them until SIGTERM or until `core_ns` is
/// gone. `on_change` gets `(host, pid)` for every host (pid 0: not running) after
/// each start, death or restart.
pub fn run(
    dir: &Path,
    core_ns: &str,
    procs: Vec<Proc>,
    restart_delay: Duration,
    mut on_change: impl FnMut(&[(u64, u32)]),
) -> Result<()> {
    let mut slots: Vec<Slot> = procs
        .into_iter()
        .map(|proc| Slot {
            proc,
            child: None,
            died_at: Some(Instant::now() - restart_delay),
        })
        .collect();
    let core_file = PathBuf::from(format!("/run/netns/{core_ns}"));
    let mut first = true;
    while core_file.exists() {
        let mut changed = false;
        for s in slots.iter_mut() {
            let id = s.proc.host;
            if let Some(c) = s.child.as_mut() {
                if let Ok(Some(status)) = c.try_wait() {
                    let held = held_path(dir, id).exists();
                    println!(
                        "[lab] node of host {id} (pid {}) exited: {status}; {}",
                        c.id(),
                        if held {
                            "held down (fault kill) until `fault resume`".to_string()
                        } else {
                            format!("restarting in {} ms", restart_delay.as_millis())
                        }
                    );
                    s.child = None;
                    release_addresses(&s.proc);
                    s.died_at = Some(Instant::now());
                    changed = true;
                }
            } else if !held_path(dir, id).exists()
                && s.died_at.is_some_and(|t| t.elapsed() >= restart_delay)
            {
                match spawn(&s.proc) {
                    Ok(c) => {
                        println!(
                            "[lab] node of host {id} {} in {}, pid {}",
                            if first { "started" } else { "restarted" },
                            s.proc.ns,
                            c.id()
                        );
                        s.child = Some(c);
                        s.died_at = None;
                    }
                    Err(e) => {
                        println!("[lab] node of host {id} could not start ({e}); trying again");
                        s.died_at = Some(Instant::now());
                    }
                }
                changed = true;
            }
        }
        first = false;
        if changed {
            let pids: Vec<(u64, u32)> = slots
                .iter()
                .map(|s| (s.proc.host, s.child.as_ref().map_or(0, |c| c.id())))
                .collect();
            on_change(&pids);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    println!("[lab] core namespace {core_ns} is gone: stopping every node");
    for s in slots.iter_mut() {
        if let Some(c) = s.child.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
    Ok(())
}
