//! The rule of a call over several links, shared by every `Transport`: try the links
//! in order; move on after a failure that says nothing of the peer's answer; report
//! `Refused` only when every link tried refused (the process is gone), and prefer a
//! timeout (hung or unreachable) over later errors.
//!
//! Must never try another link after the peer's handler answered, even with an error.

use crate::error::NetError;
use crate::transport::{LinkName, PeerAddrs};
use std::future::Future;
use std::net::SocketAddr;

/// How one attempt on one link ended, when it did not succeed.
#[derive(Debug)]
pub struct Failure {
    pub error: NetError,
    /// Whether trying the next link makes sense.
    pub fall_back: bool,
}

impl Failure {
    pub fn new(error: NetError, fall_back: bool) -> Failure {
        Failure { error, fall_back }
    }
}

/// Calls `attempt` on each of `to`'s links in order until one answers.
pub async fn over_links<F, Fut>(
    to: &PeerAddrs,
    mut attempt: F,
) -> Result<(LinkName, Vec<u8>), NetError>
where
    F: FnMut(LinkName, SocketAddr) -> Fut,
    Fut: Future<Output = Result<Vec<u8>, Failure>>,
{
    let mut first_down: Option<NetError> = None;
    let mut last: Option<NetError> = None;
    let mut all_refused = true;
    for (link, addr) in &to.0 {
        match attempt(link.clone(), *addr).await {
            Ok(answer) => return Ok((link.clone(), answer)),
            Err(Failure { error, fall_back }) => {
                tracing::debug!(%link, %addr, %error, "call attempt failed");
                if !fall_back {
                    return Err(error);
                }
                if let NetError::LinkDown(_) = error {
                    first_down.get_or_insert(error);
                    continue;
                }
                all_refused &= error == NetError::Refused;
                // A timeout on one link (unreachable) says more than a later error.
                if last != Some(NetError::Timeout) {
                    last = Some(error);
                }
            }
        }
    }
    match last {
        Some(_) if all_refused => Err(NetError::Refused),
        Some(error) => Err(error),
        None => Err(first_down.unwrap_or(NetError::Io("peer has no address".into()))),
    }
}
