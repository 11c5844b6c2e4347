//! The policy manager's unit tests, one file per behavior. Each applies every
//! decision to its own state (refusals fail the test) and checks the invariants
//! after every batch (see `fixture.rs`).

mod failover;
pub mod fixture;
mod giveback;
mod health;
mod hierarchical;
mod link;
mod operator;
mod quarantine;
mod random;
mod returning;
