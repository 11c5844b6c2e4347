//! The node configuration file (`keel node --config FILE`).
//!
//! Owns: the TOML schema, its defaults and its validation. An invalid file is refused
//! with a one-line error that names the field. Must never: start anything, touch the
//! network, or read files other than the one it is given.

mod error;
mod node;
mod validate;

pub use error::ConfigError;
pub use node::{
    AddressHold, AsyncReplicationConfig, DevConfig, DiscoveryConfig, DnsConfig, DnsGatewayConfig,
    ExportConfig, ExportPolicy, GatewayConfig, HttpConfig, LinkConfig, LocatorConfig, NodeConfig,
    PortsConfig, TimingsConfig,
};

use std::path::Path;

impl NodeConfig {
    /// Reads and validates a configuration file.
    pub fn load(path: &Path) -> Result<NodeConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        Self::parse(&text)
    }

    /// Parses and validates configuration text.
    pub fn parse(text: &str) -> Result<NodeConfig, ConfigError> {
        let cfg: NodeConfig = toml::from_str(text).map_err(|e| error::from_toml(text, &e))?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// The file a node writes: TOML text that `parse` reads back to the same value.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_default()
    }
}
