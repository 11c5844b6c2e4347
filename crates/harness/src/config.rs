//! The configuration of a harness node: the layout of `keel dev up` (node `n` has link
//! `a` at 127.0.1.n and link `b` at 127.1.1.n, node 1 bootstraps, every other node is
//! a seed), without multicast, with fault injection allowed, its data in a tempdir.
//!
//! Must never: name an address outside 127.0.0.0/8 (the harness never opens a socket,
//! but the addresses should still be ones a dev cluster could use).

use keel_config::{DevConfig, DiscoveryConfig, LinkConfig, NodeConfig, PortsConfig, TimingsConfig};
use keel_core::{NodeId, NodeRole};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;

/// The links every harness node has, in preference order.
pub const LINKS: [&str; 2] = ["a", "b"];

const PORTS: PortsConfig = PortsConfig {
    rpc: 7100,
    heartbeat: 7101,
    admin: 7180,
};

/// Node `id`'s address on link `index` of [`LINKS`].
pub fn link_ip(id: NodeId, index: usize) -> IpAddr {
    let host = u8::try_from(id).unwrap_or(u8::MAX);
    IpAddr::V4(Ipv4Addr::new(127, index as u8, 1, host))
}

/// The configuration of node `id` of a cluster of nodes `1..=nodes`, all control
/// (and storage and gateway) nodes.
pub fn node_config(dir: &Path, id: NodeId, nodes: NodeId, timings: &TimingsConfig) -> NodeConfig {
    let seeds = (1..=nodes)
        .filter(|n| *n != id)
        .map(|n| SocketAddr::new(link_ip(n, 0), PORTS.rpc))
        .collect();
    NodeConfig {
        id,
        cluster: "harness".into(),
        site: "a".into(),
        data_dir: dir.join(format!("n{id}")),
        secret_file: dir.join("secret.pem"),
        roles: [NodeRole::Control, NodeRole::Storage, NodeRole::Gateway].into(),
        links: LINKS
            .iter()
            .enumerate()
            .map(|(i, name)| LinkConfig {
                name: name.to_string(),
                addr: link_ip(id, i),
            })
            .collect(),
        ports: PORTS,
        discovery: DiscoveryConfig {
            seeds,
            multicast: false,
            bootstrap: id == 1,
            ..Default::default()
        },
        timings: timings.clone(),
        locator: Default::default(),
        async_replication: Default::default(),
        dev: DevConfig {
            faults: true,
            protocol_override: None,
        },
        http: Default::default(),
        gateway: Default::default(),
        dns: Default::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configs_validate_and_only_node_1_bootstraps() {
        let cfgs: Vec<_> = (1..=3)
            .map(|id| node_config(Path::new("/tmp/h"), id, 3, &TimingsConfig::default()))
            .collect();
        assert!(cfgs.iter().all(|c| c.validate().is_ok()));
        assert_eq!(cfgs.iter().filter(|c| c.discovery.bootstrap).count(), 1);
        assert_eq!(cfgs[1].links[1].addr.to_string(), "127.1.1.2");
        assert_eq!(cfgs[2].discovery.seeds.len(), 2);
        assert!(cfgs.iter().all(|c| !c.discovery.multicast && c.dev.faults));
    }
}
