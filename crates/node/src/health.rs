//! The node's own health: process alive (we are running), data directory writable
//! (a write and fsync of a probe file), and how long that took. The score travels in
//! every heartbeat; the arbiter compares it to each set's threshold.
//!
//! Must never block the runtime: the probe runs on a blocking thread.

use crate::wire::Health;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Clone)]
pub struct HealthMonitor {
    current: Arc<Mutex<Health>>,
}

impl HealthMonitor {
    pub fn new() -> HealthMonitor {
        HealthMonitor {
            current: Arc::new(Mutex::new(Health::default())),
        }
    }

    pub fn current(&self) -> Health {
        *self.current.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs the checks every `period` until the task is dropped.
    pub fn spawn(
        &self,
        data_dir: PathBuf,
        period: Duration,
        slow: Duration,
    ) -> tokio::task::JoinHandle<()> {
        let current = self.current.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let dir = data_dir.clone();
                let started = Instant::now();
                let disk_ok = tokio::task::spawn_blocking(move || probe_disk(&dir))
                    .await
                    .unwrap_or(false);
                let latency = started.elapsed();
                let health = score(disk_ok, latency, slow);
                *current.lock().unwrap_or_else(|e| e.into_inner()) = health;
            }
        })
    }
}

impl Default for HealthMonitor {
    fn default() -> Self {
        Self::new()
    }
}

/// Writes and fsyncs a small file in the data directory.
fn probe_disk(dir: &std::path::Path) -> bool {
    use std::io::Write;
    let path = dir.join(".health-probe");
    std::fs::File::create(&path)
        .and_then(|mut f| {
            f.write_all(b"keel health probe\n")?;
            f.sync_all()
        })
        .is_ok()
}

/// The score: 0 when the disk cannot be written; otherwise 100 less a penalty that
/// grows with latency past the slow threshold (40 at the threshold, 80 at twice it).
pub fn score(disk_ok: bool, latency: Duration, slow: Duration) -> Health {
    let latency_ms = latency.as_millis().min(u32::MAX as u128) as u32;
    let score = if !disk_ok {
        0
    } else if latency < slow / 2 {
        100
    } else {
        let ratio = latency.as_secs_f64() / slow.as_secs_f64().max(0.001);
        (100.0 - 40.0 * ratio).clamp(0.0, 100.0) as u8
    };
    Health {
        score,
        disk_ok,
        latency_ms,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn score_falls_with_disk_and_latency() {
        let slow = Duration::from_millis(500);
        assert_eq!(score(true, Duration::from_millis(3), slow).score, 100);
        assert_eq!(score(false, Duration::from_millis(3), slow).score, 0);
        assert_eq!(score(true, slow, slow).score, 60);
        assert!(score(true, slow * 2, slow).score < 50);
    }

    #[test]
    fn probe_fails_on_missing_dir() {
        assert!(!probe_disk(std::path::Path::new("/nonexistent/keel")));
        let d = tempfile::tempdir().unwrap();
        assert!(probe_disk(d.path()));
    }
}
