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
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::{ConfigError, NodeConfig};

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
        for e in [unknown, NodeConfig::parse("id = 1").unwrap_err()] {
            assert_eq!(e.to_string().lines().count(), 1, "{e}");
        }
    }
}
