//! The lab's names and address plan, computed from the lab directory and the hosts.
//! Pure: makes nothing. Saved as `DIR/lab.json` by `up` for `fault`.
//!
//! Address plan (all inside 198.18.0.0/15; see docs/design-decisions.md):
//! - site `s` (1 to 16): link `a` subnet 198.18.s.0/24 on bridge `a` of the site, link
//!   `b` subnet 198.19.s.0/24 on bridge `b`; host `h` has .h on both (h = node id,
//!   1 to 250), the core router has .254.
//! - the data LAN (all sites and the client host): 198.18.128.0/20; the core router
//!   is 198.18.128.1, the client 198.18.128.2, data port `p` of host `h` is
//!   198.18.(129+p).h (p < 8); 198.18.140.0/22 is left for moving (gateway) addresses.
//!
//! Names: a prefix `k` + 5 hex digits of a hash of the canonical lab directory, so two
//! labs (or a crashed one and a new one) never collide. Namespaces `PREFIX-core`,
//! `PREFIX-hID`, `PREFIX-client`; in the core namespace, bridges `PREFIXsSa`,
//! `PREFIXsSb`, `PREFIXd` and each host's legs `PREFIXhIDa`, `PREFIXhIDb`,
//! `PREFIXhIDpP`, the client's `PREFIXcl`; in a host, `link-a`, `link-b`, `portP`;
//! in the client, `eth0`. Every name fits the kernel's 15 characters.
//!
//! Must never produce an address outside 198.18.0.0/15 or a name over 15 characters.

use crate::{LabError, Result};
use serde::{Deserialize, Serialize};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

/// Most sites (each has its /24 pair).
pub const MAX_SITES: u8 = 16;
/// Most data ports per host.
pub const MAX_PORTS: u8 = 8;
/// Highest host id (the last octet of its addresses).
pub const MAX_HOST_ID: u64 = 250;

/// One host of the lab: a node.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct HostPlan {
    pub id: u64,
    pub site: u8,
    pub ns: String,
    /// Link `a` and link `b` addresses (the node's cluster links).
    pub links: [Ipv4Addr; 2],
    /// Data port addresses, port 0 first.
    pub ports: Vec<Ipv4Addr>,
}

/// The whole lab.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Plan {
    pub dir: PathBuf,
    pub prefix: String,
    pub core_ns: String,
    pub client_ns: String,
    pub client_addr: Ipv4Addr,
    pub sites: Vec<u8>,
    pub hosts: Vec<HostPlan>,
}

/// The interface names of a host inside its namespace.
pub const HOST_LINKS: [&str; 2] = ["link-a", "link-b"];
/// The client's interface on the data LAN.
pub const CLIENT_IF: &str = "eth0";
/// Prefix length of the data LAN.
pub const DATA_PREFIX: u8 = 20;

/// Router address of the data LAN.
pub fn data_router() -> Ipv4Addr {
    Ipv4Addr::new(198, 18, 128, 1)
}

/// The address of host `id` on link `plane` (0 = a, 1 = b) in site `site`.
pub fn link_addr(site: u8, id: u64, plane: usize) -> Ipv4Addr {
    Ipv4Addr::new(198, 18 + (plane as u8 & 1), site, id as u8)
}

/// The router address of site `site` on link `plane`.
pub fn site_router(site: u8, plane: usize) -> Ipv4Addr {
    Ipv4Addr::new(198, 18 + (plane as u8 & 1), site, 254)
}

/// The address of data port `port` of host `id`.
pub fn port_addr(id: u64, port: u8) -> Ipv4Addr {
    Ipv4Addr::new(198, 18, 129 + port, id as u8)
}

/// The host's interface name for data port `p`.
pub fn port_if(p: u8) -> String {
    format!("port{p}")
}

/// `k` + 5 hex digits of an FNV-1a hash of the canonical directory.
pub fn prefix_for(dir: &Path) -> String {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in dir.as_os_str().as_encoded_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x100000001b3);
    }
    format!("k{:05x}", h & 0xfffff)
}

impl Plan {
    /// The plan for hosts `(id, site)` with `ports` data ports each, in `dir`
    /// (canonical).
    pub fn new(dir: &Path, hosts: &[(u64, u8)], ports: u8) -> Result<Plan> {
        if hosts.is_empty() {
            return Err(LabError::BadArgs("a lab needs at least one host".into()));
        }
        if ports > MAX_PORTS {
            return Err(LabError::BadArgs(format!(
                "--ports must be 0 to {MAX_PORTS}"
            )));
        }
        let prefix = prefix_for(dir);
        let mut sites = vec![];
        let mut out = vec![];
        for &(id, site) in hosts {
            if !(1..=MAX_HOST_ID).contains(&id) {
                return Err(LabError::BadArgs(format!(
                    "host id {id} is not 1 to {MAX_HOST_ID}"
                )));
            }
            if site == 0 || site > MAX_SITES {
                return Err(LabError::BadArgs(format!(
                    "site {site} is not 1 to {MAX_SITES}"
                )));
            }
            if out.iter().any(|h: &HostPlan| h.id == id) {
                return Err(LabError::BadArgs(format!("host id {id} twice")));
            }
            if !sites.contains(&site) {
                sites.push(site);
            }
            out.push(HostPlan {
                id,
                site,
                ns: format!("{prefix}-h{id}"),
                links: [link_addr(site, id, 0), link_addr(site, id, 1)],
                ports: (0..ports).map(|p| port_addr(id, p)).collect(),
            });
        }
        sites.sort();
        Ok(Plan {
            dir: dir.to_path_buf(),
            core_ns: format!("{prefix}-core"),
            client_ns: format!("{prefix}-client"),
            client_addr: Ipv4Addr::new(198, 18, 128, 2),
            prefix,
            sites,
            hosts: out,
        })
    }

    pub fn host(&self, id: u64) -> Result<&HostPlan> {
        self.hosts
            .iter()
            .find(|h| h.id == id)
            .ok_or(LabError::NoHost(id))
    }

    /// Bridge of site `site`, link `plane` (in the core namespace).
    pub fn site_bridge(&self, site: u8, plane: usize) -> String {
        format!("{}s{site}{}", self.prefix, ["a", "b"][plane & 1])
    }

    /// The data LAN bridge (in the core namespace).
    pub fn data_bridge(&self) -> String {
        format!("{}d", self.prefix)
    }

    /// The core-side leg of host `id`'s link `plane`.
    pub fn link_leg(&self, id: u64, plane: usize) -> String {
        format!("{}h{id}{}", self.prefix, ["a", "b"][plane & 1])
    }

    /// The core-side leg of host `id`'s data port `p`.
    pub fn port_leg(&self, id: u64, p: u8) -> String {
        format!("{}h{id}p{p}", self.prefix)
    }

    /// The core-side leg of the client host.
    pub fn client_leg(&self) -> String {
        format!("{}cl", self.prefix)
    }

    /// Every core-side leg of host `id` (links, then ports).
    pub fn legs_of(&self, id: u64) -> Result<Vec<String>> {
        let h = self.host(id)?;
        let mut v = vec![self.link_leg(id, 0), self.link_leg(id, 1)];
        v.extend((0..h.ports.len() as u8).map(|p| self.port_leg(id, p)));
        Ok(v)
    }

    pub fn save(&self) -> Result<()> {
        let path = self.dir.join("lab.json");
        let text = serde_json::to_string_pretty(self).unwrap_or_default();
        std::fs::write(&path, text).map_err(|source| LabError::Io { path, source })
    }

    pub fn load(dir: &Path) -> Result<Plan> {
        let path = dir.join("lab.json");
        let text = std::fs::read_to_string(&path)
            .map_err(|_| LabError::NoLab(dir.display().to_string()))?;
        serde_json::from_str(&text).map_err(|e| LabError::Journal {
            path,
            line: e.line(),
            reason: e.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fit_and_addresses_stay_in_the_lab_range() {
        let hosts: Vec<(u64, u8)> = (1..=250).map(|i| (i, (i % 16) as u8 + 1)).collect();
        let p = Plan::new(Path::new("/some/where/lab"), &hosts, MAX_PORTS).unwrap();
        let lab = |a: Ipv4Addr| a.octets()[0] == 198 && (a.octets()[1] & 0xfe) == 18;
        for h in &p.hosts {
            assert!(h.links.iter().chain(&h.ports).all(|a| lab(*a)), "{h:?}");
            for leg in p.legs_of(h.id).unwrap() {
                assert!(leg.len() <= 15, "{leg}");
            }
            assert!(p.site_bridge(h.site, 1).len() <= 15);
        }
        assert!(p.client_leg().len() <= 15 && p.data_bridge().len() <= 15);
        assert!(lab(p.client_addr) && lab(data_router()));
        // Every host's data ports are inside the data LAN (198.18.128.0/20).
        assert!(p.hosts.iter().flat_map(|h| &h.ports).all(|a| {
            let o = a.octets();
            o[1] == 18 && (128..144).contains(&o[2])
        }));
    }

    #[test]
    fn the_prefix_differs_by_directory_and_bad_plans_are_refused() {
        assert_ne!(prefix_for(Path::new("/a")), prefix_for(Path::new("/b")));
        assert_eq!(prefix_for(Path::new("/a")).len(), 6);
        let d = Path::new("/x");
        assert!(Plan::new(d, &[], 1).is_err());
        assert!(Plan::new(d, &[(1, 1)], 9).is_err());
        assert!(Plan::new(d, &[(1, 0)], 1).is_err());
        assert!(Plan::new(d, &[(1, 1), (1, 1)], 1).is_err());
        assert!(Plan::new(d, &[(251, 1)], 1).is_err());
    }
}
