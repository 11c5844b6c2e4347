//! Faults on a running lab: a host's node killed, paused or resumed; one link or one
//! data port cut or restored; a host isolated or rejoined; sites partitioned and
//! healed. Links and ports are cut by setting the core-side veth leg down (the host
//! sees its carrier go); a partition is a pair of `blackhole` routing rules per link
//! plane in the core namespace (priority [`PARTITION_PREF`]), so traffic inside each
//! site and to the client is untouched.
//!
//! Must never: act on a process outside the named host's namespace, or on an
//! interface that is not the lab's.

use crate::plan::Plan;
use crate::supervise;
use crate::{ip, netns_pids, say, signal, LabError, Result};

/// Routing rule priority of partition rules in the core namespace.
pub const PARTITION_PREF: &str = "1000";

/// One fault.
#[derive(Clone, Debug, PartialEq)]
pub enum Fault {
    /// SIGKILL the host's node and hold it down (no restart) until `Resume`.
    Kill(u64),
    /// SIGSTOP the host's node.
    Pause(u64),
    /// SIGCONT a paused node; release a killed one (the supervisor restarts it).
    Resume(u64),
    /// Cut (`false`) or restore (`true`) link `a`/`b` of a host.
    Link { host: u64, link: String, up: bool },
    /// Cut or restore data port P of a host.
    Port { host: u64, port: u8, up: bool },
    /// Every link and port of the host down (`false`), or back up (`true`).
    Isolate { host: u64, up: bool },
    /// Sites in `sites` on one side, every other site on the other.
    Partition { sites: Vec<u8> },
    /// Remove every partition rule.
    Heal,
}

fn set_leg(p: &Plan, leg: &str, up: bool) -> Result<()> {
    ip(&[
        "-n",
        &p.core_ns,
        "link",
        "set",
        leg,
        if up { "up" } else { "down" },
    ])
    .map(|_| ())
}

fn node_pids(p: &Plan, id: u64) -> Result<Vec<i32>> {
    let h = p.host(id)?;
    Ok(netns_pids(&h.ns))
}

/// Applies `f` to the lab of plan `p`, printing what it did.
pub fn apply(p: &Plan, f: &Fault) -> Result<()> {
    match f {
        Fault::Kill(id) => {
            supervise::hold(&p.dir, *id)?;
            let pids = node_pids(p, *id)?;
            for &pid in &pids {
                signal(pid, libc::SIGKILL);
            }
            say(format!(
                "host {id}: node killed (pids {pids:?}), held down until `fault resume`"
            ));
        }
        Fault::Pause(id) => {
            let pids = node_pids(p, *id)?;
            for &pid in &pids {
                signal(pid, libc::SIGSTOP);
            }
            say(format!("host {id}: node paused (pids {pids:?})"));
        }
        Fault::Resume(id) => {
            let pids = node_pids(p, *id)?;
            for &pid in &pids {
                signal(pid, libc::SIGCONT);
            }
            supervise::release(&p.dir, *id)?;
            if pids.is_empty() {
                say(format!(
                    "host {id}: released; the supervisor restarts its node"
                ));
            } else {
                say(format!("host {id}: node resumed (pids {pids:?})"));
            }
        }
        Fault::Link { host, link, up } => {
            p.host(*host)?;
            let plane = match link.as_str() {
                "a" => 0,
                "b" => 1,
                other => {
                    return Err(LabError::BadArgs(format!(
                        "no link `{other}`: links are `a` and `b`"
                    )))
                }
            };
            set_leg(p, &p.link_leg(*host, plane), *up)?;
            say(format!(
                "host {host}: link {link} {}",
                if *up { "restored" } else { "cut" }
            ));
        }
        Fault::Port { host, port, up } => {
            let h = p.host(*host)?;
            if usize::from(*port) >= h.ports.len() {
                return Err(LabError::BadArgs(format!(
                    "host {host} has {} data port(s); no port {port}",
                    h.ports.len()
                )));
            }
            set_leg(p, &p.port_leg(*host, *port), *up)?;
            say(format!(
                "host {host}: data port {port} {}",
                if *up { "restored" } else { "cut" }
            ));
        }
        Fault::Isolate { host, up } => {
            for leg in p.legs_of(*host)? {
                set_leg(p, &leg, *up)?;
            }
            say(format!(
                "host {host}: {}",
                if *up {
                    "rejoined (every link and port up)"
                } else {
                    "isolated (every link and port cut)"
                }
            ));
        }
        Fault::Partition { sites } => {
            if sites.is_empty() || sites.iter().any(|s| !p.sites.contains(s)) {
                return Err(LabError::BadArgs(format!(
                    "--sites must name sites of the lab ({:?})",
                    p.sites
                )));
            }
            let others: Vec<u8> = p
                .sites
                .iter()
                .copied()
                .filter(|s| !sites.contains(s))
                .collect();
            if others.is_empty() {
                return Err(LabError::BadArgs(
                    "a partition needs sites on both sides".into(),
                ));
            }
            for &x in sites {
                for &y in &others {
                    for plane in 0..2 {
                        for (from, to) in [(x, y), (y, x)] {
                            let net = format!("198.{}.{to}.0/24", 18 + plane);
                            ip(&[
                                "-n",
                                &p.core_ns,
                                "rule",
                                "add",
                                "pref",
                                PARTITION_PREF,
                                "iif",
                                &p.site_bridge(from, plane),
                                "to",
                                &net,
                                "blackhole",
                            ])?;
                        }
                    }
                }
            }
            say(format!("sites {sites:?} partitioned from sites {others:?}"));
        }
        Fault::Heal => {
            // Each `ip rule del pref P` removes one rule; at most as many as there can be.
            let most = p.sites.len() * p.sites.len() * 4 + 1;
            let mut n = 0;
            for _ in 0..most {
                if ip(&["-n", &p.core_ns, "rule", "del", "pref", PARTITION_PREF]).is_err() {
                    break;
                }
                n += 1;
            }
            say(format!("partition healed ({n} rule(s) removed)"));
        }
    }
    Ok(())
}
