//! Checks a parsed configuration for values TOML cannot reject by type alone.

use crate::{ConfigError, NodeConfig};
use std::collections::BTreeSet;

fn name_ok(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 32
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

fn f(field: impl Into<String>, reason: impl Into<String>) -> ConfigError {
    ConfigError::field(field, reason)
}

impl NodeConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.id == 0 {
            return Err(f("id", "must be a positive integer"));
        }
        if !name_ok(&self.cluster) {
            return Err(f("cluster", "1 to 32 letters, digits, '-' or '_'"));
        }
        if !name_ok(&self.site) {
            return Err(f("site", "1 to 32 letters, digits, '-' or '_'"));
        }
        if self.data_dir.as_os_str().is_empty() {
            return Err(f("data_dir", "must not be empty"));
        }
        if self.secret_file.as_os_str().is_empty() {
            return Err(f("secret_file", "must not be empty"));
        }
        if self.roles.is_empty() {
            return Err(f("roles", "name at least one of control, storage, gateway"));
        }
        if self.links.is_empty() {
            return Err(f("links", "at least one link is needed"));
        }
        if self.locator.subnet_octet > 3 {
            return Err(f("locator.subnet_octet", "an IPv4 octet index, 0 to 3"));
        }
        if self.locator.search_timeout_ms == 0 {
            return Err(f("locator.search_timeout_ms", "must be positive"));
        }
        let mut names = BTreeSet::new();
        let mut addrs = BTreeSet::new();
        for (i, l) in self.links.iter().enumerate() {
            if !name_ok(&l.name) {
                return Err(f(
                    format!("links[{i}].name"),
                    "1 to 32 letters, digits, '-' or '_'",
                ));
            }
            if !names.insert(&l.name) {
                return Err(f(
                    format!("links[{i}].name"),
                    format!("link {:?} is listed twice", l.name),
                ));
            }
            if l.addr.is_unspecified() || l.addr.is_multicast() {
                return Err(f(
                    format!("links[{i}].addr"),
                    "must be a unicast address of this host",
                ));
            }
            if !addrs.insert(l.addr) {
                return Err(f(
                    format!("links[{i}].addr"),
                    format!("address {} is used by two links", l.addr),
                ));
            }
        }
        let p = &self.ports;
        for (name, port) in [
            ("ports.rpc", p.rpc),
            ("ports.heartbeat", p.heartbeat),
            ("ports.admin", p.admin),
        ] {
            if port == 0 {
                return Err(f(name, "must be a port number 1..=65535"));
            }
        }
        if p.rpc == p.admin {
            return Err(f("ports.admin", "must differ from ports.rpc"));
        }
        if !self.discovery.multicast_group.ip().is_multicast() {
            return Err(f(
                "discovery.multicast_group",
                "must be a multicast address (224.0.0.0/4)",
            ));
        }
        if self.discovery.announce_interval_ms == 0 {
            return Err(f("discovery.announce_interval_ms", "must be positive"));
        }
        let t = &self.timings;
        if t.heartbeat_ms == 0 {
            return Err(f("timings.heartbeat_ms", "must be positive"));
        }
        if t.suspect_after_ms <= t.heartbeat_ms {
            return Err(f(
                "timings.suspect_after_ms",
                format!("must exceed heartbeat_ms ({})", t.heartbeat_ms),
            ));
        }
        if t.fail_after_ms <= t.suspect_after_ms {
            return Err(f(
                "timings.fail_after_ms",
                format!("must exceed suspect_after_ms ({})", t.suspect_after_ms),
            ));
        }
        if t.lease_ms <= 2 * t.heartbeat_ms {
            return Err(f(
                "timings.lease_ms",
                format!("must exceed 2 × heartbeat_ms ({})", 2 * t.heartbeat_ms),
            ));
        }
        if t.health_check_ms == 0 {
            return Err(f("timings.health_check_ms", "must be positive"));
        }
        let a = &self.async_replication;
        if a.backlog_bytes == 0 {
            return Err(f("async_replication.backlog_bytes", "must be positive"));
        }
        if a.backlog_writes == 0 {
            return Err(f("async_replication.backlog_writes", "must be positive"));
        }
        if a.wait_ms == 0 {
            return Err(f("async_replication.wait_ms", "must be positive"));
        }
        self.validate_gateway()
    }

    fn validate_gateway(&self) -> Result<(), ConfigError> {
        let g = &self.gateway;
        for (name, v) in [
            ("gateway.health_poll_ms", g.health_poll_ms),
            ("gateway.health_deadline_ms", g.health_deadline_ms),
            ("gateway.detect_after_ms", g.detect_after_ms),
        ] {
            if v == 0 {
                return Err(f(name, "must be positive"));
            }
        }
        if g.stop_before_lease_end_ms >= self.timings.lease_ms {
            return Err(f(
                "gateway.stop_before_lease_end_ms",
                format!("must be below timings.lease_ms ({})", self.timings.lease_ms),
            ));
        }
        if let crate::AddressHold::Interface(name) = &g.hold {
            let ok = !name.is_empty()
                && name.len() <= 15
                && !name.contains(|c: char| c == '/' || c.is_whitespace());
            if !ok {
                return Err(f(
                    "gateway.hold.interface",
                    "an interface name: 1 to 15 characters, no '/' or spaces",
                ));
            }
        }
        let mut names = BTreeSet::new();
        let mut endpoints = BTreeSet::new();
        for (i, e) in g.exports.iter().enumerate() {
            let field = |what: &str| format!("gateway.exports[{i}].{what}");
            if !name_ok(&e.name) {
                return Err(f(field("name"), "1 to 32 letters, digits, '-' or '_'"));
            }
            if !names.insert(&e.name) {
                return Err(f(
                    field("name"),
                    format!("export {:?} is listed twice", e.name),
                ));
            }
            if e.set.is_empty() {
                return Err(f(field("set"), "name the gateway set that serves it"));
            }
            if e.volume.is_empty() {
                return Err(f(field("volume"), "must not be empty"));
            }
            if e.address.is_unspecified() || e.address.is_multicast() {
                return Err(f(field("address"), "must be a unicast address"));
            }
            if matches!(g.hold, crate::AddressHold::Interface(_))
                && e.policy == crate::ExportPolicy::ActivePassive
                && !e.address.is_ipv4()
            {
                return Err(f(
                    field("address"),
                    "an address held on an interface (gateway.hold) must be IPv4",
                ));
            }
            if e.nfs_port.is_none() && e.s3_port.is_none() {
                return Err(f(field("nfs_port"), "give nfs_port, s3_port or both"));
            }
            for (what, port) in [("nfs_port", e.nfs_port), ("s3_port", e.s3_port)] {
                let Some(port) = port else { continue };
                if port == 0 {
                    return Err(f(field(what), "must be a port number 1..=65535"));
                }
                if !endpoints.insert((e.address, port)) {
                    return Err(f(
                        field(what),
                        format!("{}:{port} is used twice", e.address),
                    ));
                }
            }
        }
        self.validate_dns()
    }

    fn validate_dns(&self) -> Result<(), ConfigError> {
        let d = &self.dns;
        let label = |s: &str| {
            !s.is_empty()
                && s.len() <= 63
                && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        };
        if d.suffix.is_empty() || d.suffix.len() > 32 || !label(&d.suffix) {
            return Err(f("dns.suffix", "1 to 32 letters, digits or '-'"));
        }
        let zone = d.zone.trim_end_matches('.');
        if zone.is_empty() || zone.len() > 200 || !zone.split('.').all(label) {
            return Err(f("dns.zone", "a domain name such as keel.test"));
        }
        if d.ttl_secs > 3600 {
            return Err(f("dns.ttl_secs", "at most 3600"));
        }
        if let Some(l) = d.listen {
            if l.ip().is_unspecified() || l.ip().is_multicast() || l.port() == 0 {
                return Err(f("dns.listen", "a unicast address with a port"));
            }
        }
        let mut names = BTreeSet::new();
        for (i, g) in d.gateways.iter().enumerate() {
            let field = |what: &str| format!("dns.gateways[{i}].{what}");
            if !label(&g.name) || g.name.len() + d.suffix.len() > 63 {
                return Err(f(
                    field("name"),
                    "letters, digits or '-' (with the suffix, at most 63)",
                ));
            }
            if !names.insert(g.name.to_ascii_lowercase()) {
                return Err(f(field("name"), format!("{:?} is listed twice", g.name)));
            }
            if g.set.is_empty() {
                return Err(f(field("set"), "name the gateway set that serves it"));
            }
            if g.secondary_port == 0 {
                return Err(f(
                    field("secondary_port"),
                    "must be a port number 1..=65535",
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::{ConfigError, NodeConfig};

    #[test]
    fn dns_section_defaults_and_errors() {
        let cfg = NodeConfig::parse(GOOD).unwrap();
        assert_eq!(cfg.dns.suffix, "-failover");
        assert_eq!(cfg.dns.listen, None);
        let gw = "[dns]\nlisten = \"127.0.0.1:7153\"\n[[dns.gateways]]\nname = \"gw1\"\nset = \"gw\"\nhome = 1\nsecondary_port = 7199\n";
        let cfg = NodeConfig::parse(&format!("{GOOD}{gw}")).unwrap();
        assert_eq!(cfg.dns.gateways[0].secondary_port, 7199);
        assert_eq!(
            field_of(&format!("{GOOD}[dns]\nsuffix = \"a.b\"\n")),
            "dns.suffix"
        );
        assert_eq!(
            field_of(&format!("{GOOD}[dns]\nzone = \"..\"\n")),
            "dns.zone"
        );
        assert_eq!(
            field_of(&format!("{GOOD}{}", gw.replace("7199", "0"))),
            "dns.gateways[0].secondary_port"
        );
        assert_eq!(
            field_of(&format!("{GOOD}{}", gw.replace("\"gw1\"", "\"g_1\""))),
            "dns.gateways[0].name"
        );
    }

    const GOOD: &str = r#"
id = 1
site = "a"
data_dir = "/tmp/keel/n1"
secret_file = "/tmp/keel/secret.pem"
[[links]]
name = "a"
addr = "127.0.1.1"
[[links]]
name = "b"
addr = "127.1.1.1"
[timings]
heartbeat_ms = 100
"#;

    fn field_of(text: &str) -> String {
        match NodeConfig::parse(text).unwrap_err() {
            ConfigError::Field { field, .. } => field,
            other => panic!("expected a field error, got {other}"),
        }
    }

    #[test]
    fn good_config_round_trips() {
        let cfg = NodeConfig::parse(GOOD).unwrap();
        assert_eq!(cfg.links.len(), 2);
        assert_eq!(cfg.ports.rpc, 7100);
        assert_eq!(NodeConfig::parse(&cfg.to_toml()).unwrap(), cfg);
    }

    #[test]
    fn errors_name_the_field_on_one_line() {
        assert_eq!(field_of(&GOOD.replace("id = 1", "id = \"one\"")), "id");
        assert_eq!(field_of(&GOOD.replace("id = 1", "id = 0")), "id");
        assert_eq!(
            field_of(&GOOD.replace("heartbeat_ms = 100", "heartbeat_ms = -5")),
            "timings.heartbeat_ms"
        );
        assert_eq!(
            field_of(&GOOD.replace("heartbeat_ms = 100", "heartbeat_ms = 400")),
            "timings.suspect_after_ms"
        );
        assert_eq!(
            field_of(&GOOD.replace("127.1.1.1", "127.0.1.1")),
            "links[1].addr"
        );
        assert_eq!(
            field_of(&GOOD.replace("addr = \"127.1.1.1\"", "addr = \"nope\"")),
            "links.addr"
        );
        assert_eq!(
            field_of(&format!("{GOOD}[async_replication]\nbacklog_writes = 0\n")),
            "async_replication.backlog_writes"
        );
        let cfg = NodeConfig::parse(&format!(
            "{GOOD}[async_replication]\nbacklog_bytes = 4096\n"
        ))
        .unwrap();
        assert_eq!(cfg.async_replication.backlog_bytes, 4096);
        assert_eq!(cfg.async_replication.backlog_writes, 1024);
        let unknown = NodeConfig::parse(&GOOD.replace("site = \"a\"", "site = \"a\"\ncolour = 1"))
            .unwrap_err();
        assert!(unknown.to_string().contains("colour"), "{unknown}");
        let export =
            "[[gateway.exports]]\nname = \"default\"\nset = \"gw\"\naddress = \"127.0.10.1\"\n";
        let cfg = NodeConfig::parse(&format!("{GOOD}{export}nfs_port = 7120\n")).unwrap();
        assert_eq!(cfg.gateway.exports[0].volume, "default");
        assert_eq!(
            cfg.gateway.exports[0].policy,
            crate::ExportPolicy::ActivePassive
        );
        assert_eq!(cfg.gateway.health_poll_ms, 100);
        assert_eq!(NodeConfig::parse(&cfg.to_toml()).unwrap(), cfg);
        assert_eq!(
            field_of(&format!("{GOOD}{export}")),
            "gateway.exports[0].nfs_port"
        );
        assert_eq!(
            field_of(&format!("{GOOD}{export}nfs_port = 7120\ns3_port = 7120\n")),
            "gateway.exports[0].s3_port"
        );
        assert!(NodeConfig::parse(&format!(
            "{GOOD}{export}s3_port = 1\npolicy = \"active-active\"\n"
        ))
        .is_ok());
        // How addresses are held: loopback by default, or on a named interface.
        assert_eq!(cfg.gateway.hold, crate::AddressHold::Loopback);
        let held = NodeConfig::parse(&format!(
            "{GOOD}[gateway]\nhold = {{ interface = \"port0\" }}\n{export}nfs_port = 7120\n"
        ))
        .unwrap();
        assert_eq!(
            held.gateway.hold,
            crate::AddressHold::Interface("port0".into())
        );
        assert_eq!(NodeConfig::parse(&held.to_toml()).unwrap(), held);
        assert!(NodeConfig::parse(&format!(
            "{GOOD}[gateway]\nhold = \"loopback\"\n{export}nfs_port = 7120\n"
        ))
        .is_ok());
        assert_eq!(
            field_of(&format!(
                "{GOOD}[gateway]\nhold = {{ interface = \"a/b\" }}\n{export}nfs_port = 7120\n"
            )),
            "gateway.hold.interface"
        );
        assert_eq!(
            field_of(&format!(
                "{GOOD}[gateway]\nhold = {{ interface = \"port0\" }}\n{}nfs_port = 7120\n",
                export.replace("127.0.10.1", "::1")
            )),
            "gateway.exports[0].address"
        );
        for e in [unknown, NodeConfig::parse("id = 1").unwrap_err()] {
            assert_eq!(e.to_string().lines().count(), 1, "{e}");
        }
    }
}
