//! Moving addresses (seed 000, claim 3): the mechanism a gateway uses to take over an
//! IPv4 address of a failed peer on its own network port, and to give it up.
//!
//! - [`add`] and [`remove`] put an address on an interface and take it off over
//!   netlink (the `rtnetlink` crate; no `ip` command). Both are idempotent: adding an
//!   address that is already there, or removing one that is not, is no error.
//! - [`announce`] sends gratuitous ARP: several broadcast ARP requests whose sender and
//!   target address are the moved address, spaced in time, as raw `AF_PACKET` frames,
//!   so that the neighbours' ARP caches follow the move (a Linux neighbour ignores an
//!   override for one second after its entry changed, hence several, spaced).
//! - [`in_namespace`] runs a closure on a thread that has entered a named network
//!   namespace (`/run/netns/NAME`), for tests and for the lab.
//!
//! Everything acts in the network namespace of the calling thread (netlink and packet
//! sockets belong to the namespace they were opened in). Needs CAP_NET_ADMIN (add,
//! remove) and CAP_NET_RAW (announce).
//!
//! Must never: decide who owns an address (the control plane's lease does; the caller
//! adds an address only once ownership moved to it, and removes it before its lease
//! ends), touch an address it was not asked to, or panic on bad input.

use futures::TryStreamExt;
use rtnetlink::packet_route::address::AddressAttribute;
use rtnetlink::packet_route::link::LinkAttribute;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

/// What went wrong, naming the interface or address concerned.
#[derive(Debug, thiserror::Error)]
pub enum AddrError {
    #[error("opening a netlink socket: {0}")]
    Netlink(#[source] std::io::Error),
    #[error("no interface named `{0}` in this network namespace")]
    NoInterface(String),
    #[error("interface `{0}` has no Ethernet (6-byte) hardware address")]
    NotEthernet(String),
    #[error("prefix length {0} is not 0 to 32")]
    BadPrefix(u8),
    #[error("{op} {addr} on `{iface}`: {source}")]
    Request {
        op: &'static str,
        addr: Ipv4Addr,
        iface: String,
        #[source]
        source: rtnetlink::Error,
    },
    #[error("looking up interface `{iface}`: {source}")]
    Lookup {
        iface: String,
        #[source]
        source: rtnetlink::Error,
    },
    #[error("sending gratuitous ARP for {addr} on `{iface}`: {source}")]
    Garp {
        addr: Ipv4Addr,
        iface: String,
        #[source]
        source: std::io::Error,
    },
    #[error("network namespace `{name}`: {source}")]
    Namespace {
        name: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the thread that entered network namespace `{0}` panicked")]
    NamespaceThread(String),
}

/// An interface of the calling thread's network namespace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Interface {
    pub name: String,
    pub index: u32,
    pub mac: [u8; 6],
}

/// What [`add`] or [`remove`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    /// The address was added (or removed) now.
    Done,
    /// It was already there (or already gone): nothing changed.
    AlreadySo,
}

/// How many gratuitous ARP frames to send, and how far apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Announce {
    pub count: u32,
    pub spacing: Duration,
}

impl Default for Announce {
    /// Five frames 300 ms apart: the last comes after a neighbour's one-second lock
    /// time (`locktime`) on an entry it has just updated.
    fn default() -> Self {
        Announce {
            count: 5,
            spacing: Duration::from_millis(300),
        }
    }
}

fn connect() -> Result<rtnetlink::Handle, AddrError> {
    let (conn, handle, _) = rtnetlink::new_connection().map_err(AddrError::Netlink)?;
    tokio::spawn(conn);
    Ok(handle)
}

/// The interface `name` of this namespace, with its index and MAC address.
pub async fn interface(name: &str) -> Result<Interface, AddrError> {
    let handle = connect()?;
    lookup(&handle, name).await
}

async fn lookup(handle: &rtnetlink::Handle, name: &str) -> Result<Interface, AddrError> {
    let mut links = handle.link().get().match_name(name.to_string()).execute();
    let link = match links.try_next().await {
        Ok(Some(l)) => l,
        Ok(None) => return Err(AddrError::NoInterface(name.into())),
        // The kernel answers ENODEV for a name it does not know.
        Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -libc::ENODEV => {
            return Err(AddrError::NoInterface(name.into()))
        }
        Err(source) => {
            return Err(AddrError::Lookup {
                iface: name.into(),
                source,
            })
        }
    };
    let mac = link
        .attributes
        .iter()
        .find_map(|a| match a {
            LinkAttribute::Address(b) if b.len() == 6 => {
                let mut m = [0u8; 6];
                m.copy_from_slice(b);
                Some(m)
            }
            _ => None,
        })
        .ok_or_else(|| AddrError::NotEthernet(name.into()))?;
    Ok(Interface {
        name: name.into(),
        index: link.header.index,
        mac,
    })
}

/// The IPv4 addresses on interface `name`, with their prefix lengths.
pub async fn addresses(name: &str) -> Result<Vec<(Ipv4Addr, u8)>, AddrError> {
    let handle = connect()?;
    let iface = lookup(&handle, name).await?;
    list(&handle, &iface).await
}

async fn list(
    handle: &rtnetlink::Handle,
    iface: &Interface,
) -> Result<Vec<(Ipv4Addr, u8)>, AddrError> {
    let mut out = vec![];
    let mut s = handle
        .address()
        .get()
        .set_link_index_filter(iface.index)
        .execute();
    loop {
        match s.try_next().await {
            Ok(Some(m)) => {
                for a in &m.attributes {
                    if let AddressAttribute::Local(IpAddr::V4(v4)) = a {
                        out.push((*v4, m.header.prefix_len));
                    }
                }
            }
            Ok(None) => return Ok(out),
            Err(source) => {
                return Err(AddrError::Lookup {
                    iface: iface.name.clone(),
                    source,
                })
            }
        }
    }
}

/// Adds `addr/prefix` to interface `name` (`ip addr add`), unless it is there already.
pub async fn add(name: &str, addr: Ipv4Addr, prefix: u8) -> Result<Change, AddrError> {
    if prefix > 32 {
        return Err(AddrError::BadPrefix(prefix));
    }
    let handle = connect()?;
    let iface = lookup(&handle, name).await?;
    match handle
        .address()
        .add(iface.index, IpAddr::V4(addr), prefix)
        .execute()
        .await
    {
        Ok(()) => Ok(Change::Done),
        Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -libc::EEXIST => {
            Ok(Change::AlreadySo)
        }
        Err(source) => Err(AddrError::Request {
            op: "adding",
            addr,
            iface: name.into(),
            source,
        }),
    }
}

/// Removes `addr` from interface `name` (`ip addr del`), whatever its prefix; an
/// address that is not there is no error.
pub async fn remove(name: &str, addr: Ipv4Addr) -> Result<Change, AddrError> {
    let handle = connect()?;
    let iface = lookup(&handle, name).await?;
    let Some(prefix) = list(&handle, &iface)
        .await?
        .into_iter()
        .find(|(a, _)| *a == addr)
        .map(|(_, p)| p)
    else {
        return Ok(Change::AlreadySo);
    };
    let msg = rtnetlink::AddressMessageBuilder::<Ipv4Addr>::new()
        .index(iface.index)
        .address(addr, prefix)
        .build();
    match handle.address().del(msg).execute().await {
        Ok(()) => Ok(Change::Done),
        Err(rtnetlink::Error::NetlinkError(e))
            if e.raw_code() == -libc::EADDRNOTAVAIL || e.raw_code() == -libc::ENOENT =>
        {
            Ok(Change::AlreadySo)
        }
        Err(source) => Err(AddrError::Request {
            op: "removing",
            addr,
            iface: name.into(),
            source,
        }),
    }
}

/// The gratuitous ARP frame for `addr` owned by `mac`: an Ethernet broadcast ARP
/// request whose sender and target protocol address are both `addr` (RFC 5227 §3's
/// "ARP Announcement").
pub fn garp_frame(mac: [u8; 6], addr: Ipv4Addr) -> [u8; 42] {
    let mut f = [0u8; 42];
    f[0..6].copy_from_slice(&[0xff; 6]); // destination: broadcast
    f[6..12].copy_from_slice(&mac);
    f[12..14].copy_from_slice(&0x0806u16.to_be_bytes()); // ARP
    f[14..16].copy_from_slice(&1u16.to_be_bytes()); // hardware: Ethernet
    f[16..18].copy_from_slice(&0x0800u16.to_be_bytes()); // protocol: IPv4
    f[18] = 6;
    f[19] = 4;
    f[20..22].copy_from_slice(&1u16.to_be_bytes()); // request
    f[22..28].copy_from_slice(&mac);
    f[28..32].copy_from_slice(&addr.octets());
    // target hardware address: zero
    f[38..42].copy_from_slice(&addr.octets());
    f
}

/// A raw packet socket, closed on drop.
struct PacketSocket(libc::c_int);

impl Drop for PacketSocket {
    fn drop(&mut self) {
        unsafe { libc::close(self.0) };
    }
}

/// Sends `plan.count` gratuitous ARP frames for `addr` out of `iface`, `plan.spacing`
/// apart (blocking: run it on a blocking thread from async code). The address should
/// be on the interface already.
pub fn announce(iface: &Interface, addr: Ipv4Addr, plan: Announce) -> Result<(), AddrError> {
    let err = |source| AddrError::Garp {
        addr,
        iface: iface.name.clone(),
        source,
    };
    let proto = (libc::ETH_P_ARP as u16).to_be();
    // SAFETY: plain socket(2); the descriptor is owned by PacketSocket.
    let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, proto as libc::c_int) };
    if fd < 0 {
        return Err(err(std::io::Error::last_os_error()));
    }
    let sock = PacketSocket(fd);
    // SAFETY: sockaddr_ll is plain data; all-zero is a valid value.
    let mut to: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    to.sll_family = libc::AF_PACKET as u16;
    to.sll_protocol = proto;
    to.sll_ifindex = iface.index as i32;
    to.sll_halen = 6;
    to.sll_addr[..6].copy_from_slice(&[0xff; 6]);
    let frame = garp_frame(iface.mac, addr);
    for i in 0..plan.count {
        if i > 0 {
            std::thread::sleep(plan.spacing);
        }
        // SAFETY: the frame and the address outlive the call; lengths are theirs.
        let n = unsafe {
            libc::sendto(
                sock.0,
                frame.as_ptr().cast(),
                frame.len(),
                0,
                (&to as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if n < 0 {
            return Err(err(std::io::Error::last_os_error()));
        }
    }
    Ok(())
}

/// Takes over `addr/prefix` on interface `name`: adds it, then announces it (the
/// announcement runs on a blocking thread). For the caller that the control plane
/// has just made the owner.
pub async fn take(
    name: &str,
    addr: Ipv4Addr,
    prefix: u8,
    plan: Announce,
) -> Result<Change, AddrError> {
    let change = add(name, addr, prefix).await?;
    let iface = interface(name).await?;
    tokio::task::spawn_blocking(move || announce(&iface, addr, plan))
        .await
        .map_err(|_| AddrError::NamespaceThread("(announce)".into()))??;
    Ok(change)
}

/// Runs `f` on a new thread that has entered the network namespace `name` (a file
/// under `/run/netns`, as `ip netns add` makes), and returns its result. Sockets `f`
/// opens belong to that namespace; the calling thread's namespace does not change.
pub fn in_namespace<T: Send + 'static>(
    name: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, AddrError> {
    use std::os::fd::AsRawFd;
    let err = |source| AddrError::Namespace {
        name: name.into(),
        source,
    };
    if name.is_empty() || name.contains('/') || name.starts_with('.') {
        return Err(err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a namespace name",
        )));
    }
    let file = std::fs::File::open(format!("/run/netns/{name}")).map_err(err)?;
    let owned = name.to_string();
    let t = std::thread::spawn(move || {
        // SAFETY: setns(2) on an open namespace file; affects this thread only.
        if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(f())
    });
    match t.join() {
        Ok(r) => r.map_err(err),
        Err(_) => Err(AddrError::NamespaceThread(owned)),
    }
}

/// [`in_namespace`] for async work: a current-thread runtime on the namespace's thread.
pub fn block_in_namespace<T: Send + 'static, F>(
    name: &str,
    f: impl FnOnce() -> F + Send + 'static,
) -> Result<T, AddrError>
where
    F: std::future::Future<Output = T>,
{
    let name_owned = name.to_string();
    in_namespace(name, move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map(|rt| rt.block_on(f()))
            .map_err(|source| AddrError::Namespace {
                name: name_owned,
                source,
            })
    })?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_garp_frame_names_the_address_twice_and_is_broadcast() {
        let mac = [2, 0, 0, 0, 0, 7];
        let f = garp_frame(mac, Ipv4Addr::new(198, 18, 0, 9));
        assert_eq!(&f[0..6], &[0xff; 6]);
        assert_eq!(&f[6..12], &mac);
        assert_eq!(&f[12..14], &[0x08, 0x06]);
        assert_eq!(&f[20..22], &[0, 1]);
        assert_eq!(&f[22..28], &mac);
        assert_eq!(&f[28..32], &[198, 18, 0, 9]);
        assert_eq!(&f[32..38], &[0; 6]);
        assert_eq!(&f[38..42], &[198, 18, 0, 9]);
    }

    #[test]
    fn bad_input_is_a_typed_error() {
        assert!(matches!(
            in_namespace("../etc", || ()),
            Err(AddrError::Namespace { .. })
        ));
        assert!(matches!(
            in_namespace("keel-no-such-namespace", || ()),
            Err(AddrError::Namespace { .. })
        ));
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        assert!(matches!(
            rt.block_on(add("lo", Ipv4Addr::new(198, 18, 0, 1), 33)),
            Err(AddrError::BadPrefix(33))
        ));
    }
}
