//! keel-lab: a lab of hosts on one Linux machine, for real-network failover tests.
//! Each host is a network namespace; hosts join bridges (two per site, for redundant
//! links, plus one data LAN with the client host) through veth pairs; a node process
//! runs in each host under a supervisor.
//!
//! - [`plan`]: names and the address plan (all in 198.18.0.0/15), from the lab dir.
//! - [`journal`]: every namespace, interface and process is written to `DIR/lab.journal`
//!   (and fsynced) before it is made, so `down` can undo a lab that crashed.
//! - [`net`]: builds the network (`up`) and takes it apart in reverse (`down`).
//! - [`fault`]: kill, pause, resume a node; cut, restore a link or a port; isolate a
//!   host; partition sites.
//! - [`supervise`]: restarts a host's node that dies, unless a fault holds it down.
//!
//! Every network change runs the `ip` command (iproute2) through `std::process`, with
//! a typed error naming the command that failed ([`LabError::Command`]). nftables is
//! not needed: partitions are routing rules in the core namespace.
//!
//! Must never: touch an address outside 198.18.0.0/15 (and loopback), create anything
//! in the root network namespace but the lab's own namespace files, or remove anything
//! the journal does not name. Root only ([`require_root`]).

pub mod fault;
pub mod journal;
pub mod net;
pub mod plan;
pub mod supervise;

use std::path::PathBuf;
use std::process::Command;

/// What went wrong in the lab, naming the command, file, host or argument concerned.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    #[error("the lab needs root (network namespaces, veth pairs, bridges); run it as root")]
    NotRoot,
    #[error("`{cmd}` failed ({status}): {stderr}")]
    Command {
        cmd: String,
        status: String,
        stderr: String,
    },
    #[error("cannot run `{cmd}`: {source} (is iproute2 installed?)")]
    Spawn {
        cmd: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} line {line}: not a journal entry: {reason}")]
    Journal {
        path: PathBuf,
        line: usize,
        reason: String,
    },
    #[error("{0}")]
    BadArgs(String),
    #[error("a lab is already up in {0} (run `keel lab down --dir {0}` first)")]
    AlreadyUp(String),
    #[error("no lab is up in {0} (`keel lab up` first)")]
    NoLab(String),
    #[error("no host {0} in this lab")]
    NoHost(u64),
    #[error("timed out: {0}")]
    Timeout(String),
}

pub type Result<T> = std::result::Result<T, LabError>;

/// Fails with [`LabError::NotRoot`] unless the effective user is root.
pub fn require_root() -> Result<()> {
    // SAFETY: geteuid never fails.
    if unsafe { libc::geteuid() } != 0 {
        return Err(LabError::NotRoot);
    }
    Ok(())
}

/// Runs `ip ARGS...`; a non-zero exit is [`LabError::Command`] with its stderr.
pub fn ip(args: &[&str]) -> Result<String> {
    run("ip", args)
}

/// Runs `prog ARGS...` and returns its stdout.
pub fn run(prog: &str, args: &[&str]) -> Result<String> {
    let cmd = format!("{prog} {}", args.join(" "));
    let out = Command::new(prog)
        .args(args)
        .output()
        .map_err(|source| LabError::Spawn {
            cmd: cmd.clone(),
            source,
        })?;
    if !out.status.success() {
        return Err(LabError::Command {
            cmd,
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr)
                .trim()
                .replace('\n', "; "),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// True if the error says the thing is already gone (what `down` tolerates).
pub fn is_gone(e: &LabError) -> bool {
    match e {
        LabError::Command { stderr, .. } => {
            let s = stderr.to_lowercase();
            s.contains("cannot find device")
                || s.contains("no such file")
                || s.contains("does not exist")
                || s.contains("cannot open network namespace")
                || s.contains("no such process")
                || s.contains("invalid netns")
        }
        _ => false,
    }
}

/// The process ids in network namespace `ns` (`ip netns pids`); none if it is gone.
pub fn netns_pids(ns: &str) -> Vec<i32> {
    ip(&["netns", "pids", ns])
        .map(|o| {
            o.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// The start time of process `pid` (field 22 of /proc/PID/stat, clock ticks since
/// boot): with the pid, it names one process (a recycled pid has another).
pub fn start_ticks(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces: count from after its ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// The state letter of process `pid` (R, S, D, T for stopped, Z...).
pub fn proc_state(pid: i32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat[stat.rfind(')')? + 2..].chars().next()
}

/// Sends `sig` to `pid`; false if it is gone.
pub fn signal(pid: i32, sig: libc::c_int) -> bool {
    // SAFETY: kill(2) with a positive pid.
    pid > 0 && unsafe { libc::kill(pid, sig) } == 0
}

/// One line of progress on stdout.
pub fn say(line: impl AsRef<str>) {
    println!("[lab] {}", line.as_ref());
}
