//! The gateway role's native front end: files by path over HTTP, on top of the
//! directory (through Raft) and the locator (chunks on storage sets).
//!
//! Must never: acknowledge a file before its chunks are durable on their sets and its
//! directory entry is committed, or serve a read from a stale directory replica
//! without saying so.

pub mod api;
pub mod files;
mod meta_api;
pub mod views;
