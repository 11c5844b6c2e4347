//! How the Active holds the addresses of its active-passive exports (seed 000 claim
//! 3: the address moves with the ownership), as `gateway.hold` says:
//!
//! - `loopback` (default): the address is local already (`keel dev up`: 127.0.10.1);
//!   holding it is binding it, which the servers do.
//! - `interface = NAME`: the owner adds the address (a /32) to interface NAME with
//!   `keel-addr` (rtnetlink) once the plan says it serves it (the control plane gave
//!   it the set's lease), announces it with gratuitous ARP (keel-addr's default:
//!   several frames, spaced, on a blocking thread so the role's loop goes on), and
//!   removes it as soon as the plan no longer lists it — at the latest
//!   `stop_before_lease_end_ms` before its lease ends, with the listeners.
//!
//! Acts in the calling thread's network namespace (a lab node's is its host's).
//! Must never: add an address the plan does not list, or decide ownership.

use keel_config::AddressHold;
use std::net::IpAddr;

/// The holder of this node's moving addresses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Holder {
    /// Nothing to add or remove: binding is holding.
    Loopback,
    /// Addresses go on this interface.
    Interface(String),
}

impl Holder {
    pub fn new(hold: &AddressHold) -> Holder {
        match hold {
            AddressHold::Loopback => Holder::Loopback,
            AddressHold::Interface(name) => Holder::Interface(name.clone()),
        }
    }

    /// The interface addresses go on, if they are moved at all.
    pub fn interface(&self) -> Option<&str> {
        match self {
            Holder::Loopback => None,
            Holder::Interface(n) => Some(n),
        }
    }

    /// Adds `addr` to the interface and starts announcing it (in the background).
    /// `Ok(false)`: it was there already (announced again all the same).
    pub async fn add(&self, addr: IpAddr) -> Result<bool, String> {
        let (Some(name), IpAddr::V4(v4)) = (self.interface(), addr) else {
            return Ok(false);
        };
        let change = keel_addr::add(name, v4, 32)
            .await
            .map_err(|e| e.to_string())?;
        let iface = keel_addr::interface(name)
            .await
            .map_err(|e| e.to_string())?;
        tokio::task::spawn_blocking(move || {
            if let Err(e) = keel_addr::announce(&iface, v4, keel_addr::Announce::default()) {
                tracing::warn!("gratuitous ARP for {v4}: {e}");
            }
        });
        Ok(change == keel_addr::Change::Done)
    }

    /// Removes `addr` from the interface. `Ok(false)`: it was not there.
    pub async fn remove(&self, addr: IpAddr) -> Result<bool, String> {
        let (Some(name), IpAddr::V4(v4)) = (self.interface(), addr) else {
            return Ok(false);
        };
        keel_addr::remove(name, v4)
            .await
            .map(|c| c == keel_addr::Change::Done)
            .map_err(|e| e.to_string())
    }
}
