//! Benchmarks.

use anyhow::Result;
use std::path::PathBuf;

pub async fn failover(
    _trials: u32,
    _nodes: u8,
    _dir: Option<PathBuf>,
    _base_port: u16,
) -> Result<()> {
    anyhow::bail!("not yet")
}
