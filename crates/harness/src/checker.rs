//! [`InvariantChecker`]: samples every node every ~2 ms on its own thread and records
//! each broken safety invariant of the control plane:
//!
//! - (a) at most one node acts as Primary of a set at any instant. Every process's lease
//!   holder is locked at once and read at one `Instant`, so the sample is a true
//!   snapshot. Paused processes are checked too: their holders are frozen, and reading
//!   one at any instant says whether the process would act if resumed right then, so a
//!   lease it holds must have run out before anyone else acts. Crashed processes are
//!   not checked: they act no more, and an arbiter may know it (connection refused).
//! - the node that acts in an epoch is the Primary recorded for that epoch;
//! - (b) for each (set, epoch), at most one Primary ever appears in any replica (the
//!   replicas are sampled, and at the end every replica's event log is read);
//! - (c) each node's observed epoch of a set never decreases, restarts included.
//!
//! A set deleted and created again under the same id starts over at epoch 1: the
//! checker would take that for (b) and (c), so checked runs never do it.
//!
//! Must never: change a node (it only takes locks a node holds for microseconds and
//! reads), or report the same violation twice.

use crate::error::HarnessError;
use crate::violation::Violation;
use keel_core::{Epoch, EventKind, MemberRef, NodeId, SetId};
use keel_node::NodeShared;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// How often the checker samples.
pub const SAMPLE_EVERY: Duration = Duration::from_millis(2);

/// The process of every running node (paused or not), kept by the cluster; a crashed
/// node has none until it restarts.
pub type Processes = Arc<Mutex<BTreeMap<NodeId, Arc<NodeShared>>>>;

/// What the checker has seen so far.
#[derive(Default)]
struct Seen {
    started: Option<Instant>,
    samples: u64,
    /// The Primary first recorded for each (set, epoch).
    primaries: HashMap<(SetId, Epoch), Option<MemberRef>>,
    /// The newest epoch each node's replica showed for each set.
    epochs: HashMap<(NodeId, SetId), Epoch>,
    reported: BTreeSet<String>,
    violations: Vec<Violation>,
    /// How many violations were found, readable while the checker runs.
    found: Arc<AtomicUsize>,
}

impl Seen {
    fn at_ms(&self, now: Instant) -> u64 {
        self.started
            .map_or(0, |s| now.saturating_duration_since(s).as_millis() as u64)
    }

    fn report(&mut self, v: Violation) {
        if self.reported.insert(v.key()) {
            tracing::error!("invariant violated: {v}");
            self.violations.push(v);
            self.found.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn observe_primary(&mut self, node: NodeId, set: &str, epoch: Epoch, p: Option<MemberRef>) {
        let key = (set.to_string(), epoch);
        match self.primaries.get(&key) {
            None => {
                self.primaries.insert(key, p);
            }
            Some(first) if *first != p => {
                let first = first.clone();
                self.report(Violation::TwoPrimaries {
                    set: set.to_string(),
                    epoch,
                    first,
                    second: p,
                    node,
                });
            }
            Some(_) => {}
        }
    }
}

/// The checker's thread and what it found.
pub struct InvariantChecker {
    stop: Arc<AtomicBool>,
    found: Arc<AtomicUsize>,
    thread: Option<std::thread::JoinHandle<Seen>>,
    processes: Processes,
}

impl InvariantChecker {
    /// Starts sampling `processes` until [`InvariantChecker::finish`].
    pub fn start(processes: Processes) -> Result<InvariantChecker, HarnessError> {
        let stop = Arc::new(AtomicBool::new(false));
        let found = Arc::new(AtomicUsize::new(0));
        let (flag, watched, counter) = (stop.clone(), processes.clone(), found.clone());
        let thread = std::thread::Builder::new()
            .name("invariant-checker".into())
            .spawn(move || {
                let mut seen = Seen {
                    started: Some(Instant::now()),
                    found: counter,
                    ..Default::default()
                };
                while !flag.load(Ordering::SeqCst) {
                    sample(&mut seen, &watched);
                    std::thread::sleep(SAMPLE_EVERY);
                }
                sample(&mut seen, &watched);
                seen
            })
            .map_err(|e| HarnessError::Runtime(format!("checker thread: {e}")))?;
        Ok(InvariantChecker {
            stop,
            found,
            thread: Some(thread),
            processes,
        })
    }

    /// How many violations were found so far.
    pub fn found(&self) -> usize {
        self.found.load(Ordering::SeqCst)
    }

    /// Stops sampling, reads every replica's event log, and returns every violation
    /// found, in the order found.
    pub fn finish(mut self) -> Vec<Violation> {
        self.stop.store(true, Ordering::SeqCst);
        let Some(mut seen) = self.thread.take().and_then(|t| t.join().ok()) else {
            return vec![Violation::CheckerFailed];
        };
        for (id, node) in lock(&self.processes).iter() {
            let decided: Vec<(SetId, Epoch, NodeId)> = node.db.read(|s| {
                s.events
                    .iter()
                    .filter(|e| e.kind == EventKind::FailoverDecided)
                    .filter_map(|e| Some((e.set.clone()?, e.epoch?, e.node?)))
                    .collect()
            });
            for (set, epoch, primary) in decided {
                seen.observe_primary(*id, &set, epoch, Some(MemberRef::Node(primary)));
            }
        }
        tracing::info!(
            samples = seen.samples,
            violations = seen.violations.len(),
            "invariant checker finished"
        );
        seen.violations
    }
}

impl Drop for InvariantChecker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn sample(seen: &mut Seen, processes: &Processes) {
    let nodes: Vec<(NodeId, Arc<NodeShared>)> = lock(processes)
        .iter()
        .map(|(id, n)| (*id, n.clone()))
        .collect();
    seen.samples += 1;

    // (b), (c): what every replica records.
    for (id, node) in &nodes {
        let sets: Vec<(SetId, Epoch, Option<MemberRef>)> = node.db.read(|s| {
            s.sets
                .values()
                .map(|set| (set.id.clone(), set.epoch, set.primary.clone()))
                .collect()
        });
        let now = Instant::now();
        for (set, epoch, primary) in sets {
            seen.observe_primary(*id, &set, epoch, primary);
            let newest = seen.epochs.entry((*id, set.clone())).or_insert(epoch);
            if epoch < *newest {
                let from = *newest;
                let at_ms = seen.at_ms(now);
                seen.report(Violation::EpochWentBack {
                    node: *id,
                    set,
                    from,
                    to: epoch,
                    at_ms,
                });
            } else {
                *newest = epoch;
            }
        }
    }

    // (a): every lease holder at one instant.
    let (now, acting) = {
        let holders: Vec<_> = nodes.iter().map(|(id, n)| (*id, lock(&n.holder))).collect();
        let now = Instant::now();
        let acting: Vec<(NodeId, SetId, Epoch)> = holders
            .iter()
            .flat_map(|(id, h)| h.held(now).into_iter().map(move |(s, e)| (*id, s, e)))
            .collect();
        (now, acting)
    };
    let mut by_set: BTreeMap<SetId, Vec<(NodeId, Epoch)>> = BTreeMap::new();
    for (node, set, epoch) in acting {
        if let Some(recorded) = seen.primaries.get(&(set.clone(), epoch)) {
            if *recorded != Some(MemberRef::Node(node)) {
                let recorded = recorded.clone();
                let at_ms = seen.at_ms(now);
                seen.report(Violation::ActingNotPrimary {
                    set: set.clone(),
                    node,
                    epoch,
                    recorded,
                    at_ms,
                });
            }
        }
        by_set.entry(set).or_default().push((node, epoch));
    }
    for (set, acting) in by_set {
        if acting.len() > 1 {
            let at_ms = seen.at_ms(now);
            seen.report(Violation::TwoActing { set, acting, at_ms });
        }
    }
}
