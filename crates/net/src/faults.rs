//! Local link fault injection for dev clusters and tests.
//!
//! Owns: the shared set of links this process treats as cut. A cut link neither sends
//! nor receives: calls skip it, the RPC server answers 503 to requests arriving on it,
//! datagrams to be sent or arriving on it are dropped.
//!
//! Must never: touch the real network (no interface or firewall changes); it only makes
//! this process behave as if the cable were pulled.

use std::collections::BTreeSet;
use std::sync::{Arc, RwLock};

use crate::transport::LinkName;

/// A cheap-clone handle on the set of locally cut links; clones share the set.
#[derive(Clone, Debug, Default)]
pub struct LinkFaults(Arc<RwLock<BTreeSet<LinkName>>>);

impl LinkFaults {
    pub fn new() -> LinkFaults {
        LinkFaults::default()
    }

    /// Cuts `link`: from now on nothing is sent or received on it.
    pub fn cut(&self, link: &str) {
        let mut set = self.0.write().unwrap_or_else(|e| e.into_inner());
        if set.insert(link.to_string()) {
            tracing::info!(link, "link cut (fault injection)");
        }
    }

    /// Restores `link` after a [`LinkFaults::cut`].
    pub fn restore(&self, link: &str) {
        let mut set = self.0.write().unwrap_or_else(|e| e.into_inner());
        if set.remove(link) {
            tracing::info!(link, "link restored (fault injection)");
        }
    }

    pub fn is_cut(&self, link: &str) -> bool {
        self.0
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .contains(link)
    }

    /// The links cut right now, in name order.
    pub fn cut_links(&self) -> Vec<LinkName> {
        let set = self.0.read().unwrap_or_else(|e| e.into_inner());
        set.iter().cloned().collect()
    }
}
