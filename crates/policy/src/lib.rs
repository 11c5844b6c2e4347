//! keel's policy manager: the decision half of the failover service.
//!
//! Owns: fault characterization and detection, health monitoring against each set's
//! threshold, corrective action (arbitration of Primary, Secondary and Alternates),
//! member restart and re-integration, the failure-limit-exceeded condition, operator
//! takeover and drain, and auto-giveback. Everything goes through one function,
//! [`decide`]: an [`Input`] and the replicated [`keel_core::ClusterState`] in, the
//! [`keel_core::ClusterCommand`]s to write through Raft (in order) out.
//!
//! Must never: do I/O, read a clock, sleep, or keep state of its own between calls.
//! Time comes in as `now`; everything it remembers lives in the configuration
//! database, so any control node that becomes leader decides exactly the same way.
//!
//! # Rules
//!
//! Fault characterization ([`characterize`]):
//! - silent on every link, port refuses connections: `crash`;
//! - silent on every link, probe unanswered or not probed: `hang`;
//! - one link silent, self-test over another link passed: `link` (never a failover);
//!   self-test failed: `hang`;
//! - heard, health score below a set's threshold: `disk` if the disk check failed,
//!   otherwise `slow`.
//!
//! Detection:
//! - silent for `fail_after_ms` while up or suspect: `FailureDetected` event, member
//!   `failed`; `failure_limit` failures inside the window: `quarantined`. Then every
//!   set in which it holds a role (and every hierarchical set above those) is
//!   re-arbitrated. Silent for `suspect_after_ms` while up: `suspect` only.
//! - heard again: suspect becomes up; failed comes back (`MemberBack`,
//!   return-after-failure) as an Alternate; quarantined stays quarantined.
//! - a Primary or Secondary whose health score is below its set's threshold is failed.
//!
//! Corrective action (`arbitrate.rs`), per N-way or hierarchical set:
//! an ineligible Primary is replaced by the Secondary if eligible, else by the first
//! eligible Alternate, and goes to the end of the Alternates; an empty or ineligible
//! Secondary slot is filled by the first eligible Alternate. A Single set never changes
//! roles. A returning member never resumes a role by itself.
//!
//! Operator: takeover (graceful), drain, undrain, clear. Periodic tick: re-arbitrate
//! every set and give the Primary back to the home member once it has been up for
//! the set's `auto_giveback_ms`.

mod arbitrate;
mod batch;
pub mod characterize;
mod decide;
mod detect;
mod error;
mod input;
pub mod layout;
mod operator;
mod roles;

pub use decide::decide;
pub use error::PolicyError;
pub use input::{HealthReport, Input, Probe, SelfTest, Timings};

#[cfg(test)]
mod tests;
