//! Waiting on a cluster, always with a deadline: until a condition holds, or while it
//! holds for an observation window ("for 3 s nothing fails over").
//!
//! Must never: wait without a bound, or stand a sleep in for a condition.

use crate::error::HarnessError;
use std::time::Duration;
use tokio::time::Instant;

/// How often conditions are polled.
pub const POLL: Duration = Duration::from_millis(5);

/// Waits until `probe` returns something, at most `within`.
pub async fn wait_for<T>(
    what: &str,
    within: Duration,
    mut probe: impl FnMut() -> Option<T>,
) -> Result<T, HarnessError> {
    let started = Instant::now();
    let deadline = started + within;
    loop {
        if let Some(v) = probe() {
            tracing::debug!(
                what,
                waited_ms = started.elapsed().as_millis() as u64,
                "reached"
            );
            return Ok(v);
        }
        if Instant::now() >= deadline {
            return Err(HarnessError::Timeout {
                what: what.to_string(),
                waited_ms: started.elapsed().as_millis() as u64,
            });
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Waits until `cond` holds, at most `within`.
pub async fn wait_until(
    what: &str,
    within: Duration,
    mut cond: impl FnMut() -> bool,
) -> Result<(), HarnessError> {
    wait_for(what, within, || cond().then_some(())).await
}

/// Checks that `cond` holds throughout `window` (polled); fails at the first poll
/// where it does not.
pub async fn holds_for(
    what: &str,
    window: Duration,
    mut cond: impl FnMut() -> bool,
) -> Result<(), HarnessError> {
    let started = Instant::now();
    loop {
        if !cond() {
            return Err(HarnessError::Broken {
                what: what.to_string(),
                after_ms: started.elapsed().as_millis() as u64,
            });
        }
        if started.elapsed() >= window {
            return Ok(());
        }
        tokio::time::sleep(POLL).await;
    }
}
