//! The chaos run's final check, once the nemesis has stopped, every fault is healed
//! and the cluster has caught up: every path any client touched is read again and
//! judged against that client's model, and the data invariant is checked over every
//! storage set from the members' own listings (`GET /v1/storage/{set}/objects`).
//!
//! Owns: the final judgement. Must never: change the cluster, or count a read that
//! failed for want of an answer as a lost write (it is "unreadable after heal").

use super::cluster::ChaosCluster;
use super::model::{digest, Judged};
use super::workload::ClientLog;
use futures::StreamExt;
use keel_node::data_invariant::{self, DataViolation};
use std::collections::BTreeSet;
use std::time::Duration;

/// Attempts of one final read before the file counts as unreadable.
const READ_ATTEMPTS: usize = 1;
/// Final reads at once.
const READERS: usize = 8;
/// The longest one final read may take.
const READ_DEADLINE: Duration = Duration::from_secs(60);
/// The longest all final reads may take together (a broken cluster must not hold the
/// run for hours): paths not read by then count as unreadable.
const CHECK_DEADLINE: Duration = Duration::from_secs(300);
/// Examples kept per kind of finding.
const EXAMPLES: usize = 20;

#[derive(Default, Debug)]
pub struct Findings {
    pub files_checked: u64,
    pub lost_writes: u64,
    pub wrong_reads: u64,
    pub unreadable_after_heal: u64,
    pub in_sync_violations: u64,
    pub lost_objects: u64,
    /// The in-sync violations found (counted in `in_sync_violations`).
    pub in_sync_found: Vec<DataViolation>,
    pub examples: Vec<String>,
}

impl Findings {
    fn example(&mut self, what: String) {
        eprintln!("[chaos] check: {what}");
        if self.examples.len() < EXAMPLES {
            self.examples.push(what);
        }
    }
}

/// Reads every path again and checks the data invariant.
pub async fn check(c: &ChaosCluster, logs: &[ClientLog]) -> Findings {
    let mut f = Findings::default();
    let paths: Vec<(usize, String)> = logs
        .iter()
        .enumerate()
        .flat_map(|(i, l)| l.model.paths.keys().map(move |p| (i, p.clone())))
        .collect();
    eprintln!("[chaos] check: reading {} paths again", paths.len());
    let client = &c.client;
    let deadline = std::time::Instant::now() + CHECK_DEADLINE;
    let mut reads = futures::stream::iter(paths.into_iter().map(|(i, path)| async move {
        let mut last = None;
        for attempt in 0..READ_ATTEMPTS {
            if std::time::Instant::now() > deadline {
                last = Some(format!(
                    "not read: the check ran out of its {CHECK_DEADLINE:?}"
                ));
                break;
            }
            match tokio::time::timeout(READ_DEADLINE, client.get_bytes(&path, None, None)).await {
                Ok(Ok((bytes, _))) => return (i, path, Ok(Some((bytes.len(), digest(&bytes))))),
                Ok(Err(e)) if e.code() == Some("not_found") => return (i, path, Ok(None)),
                Ok(Err(e)) => last = Some(e.to_string()),
                Err(_) => last = Some(format!("no answer within {READ_DEADLINE:?}")),
            }
            if attempt + 1 < READ_ATTEMPTS {
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
        (i, path, Err(last.unwrap_or_default()))
    }))
    .buffer_unordered(READERS);
    while let Some((i, path, got)) = reads.next().await {
        f.files_checked += 1;
        let model = &logs[i].model;
        match got {
            Err(e) => {
                f.unreadable_after_heal += 1;
                f.example(format!(
                    "{path} cannot be read after the heal: {}",
                    super::workload::brief(&e)
                ));
            }
            Ok(got) => match model.judge(&path, got) {
                Judged::Right => {}
                Judged::Lost => {
                    f.lost_writes += 1;
                    f.example(match got {
                        None => format!("{path}: its acknowledged put is gone (no such file)"),
                        Some((len, _)) => format!(
                            "{path}: reads an older content ({len} bytes) than the last acknowledged put"
                        ),
                    });
                }
                Judged::Wrong => {
                    f.wrong_reads += 1;
                    f.example(format!("{path}: reads bytes that were never put there"));
                }
            },
        }
    }
    match c.client.check_data_invariant().await {
        Ok(found) => {
            for v in found {
                match v {
                    DataViolation::Lost { .. } | DataViolation::DeletedWhileReferenced { .. } => {
                        f.lost_objects += 1
                    }
                    _ => {
                        f.in_sync_violations += 1;
                        f.in_sync_found.push(v.clone());
                    }
                }
                f.example(format!("data invariant: {v}"));
            }
        }
        Err(e) => {
            f.in_sync_violations += 1;
            f.example(format!("data invariant: could not be checked: {e}"));
        }
    }
    f
}

/// The data invariant at a quiescent point of the run (after a fault is healed), with
/// the workload still going. Only what cannot race with it is judged: the objects
/// that files referred to both before and after the members were listed (a chunk
/// referred to at both times was acknowledged by every in-sync member before the
/// first listing, and not deleted by the second); a violation counts only if both
/// listings show it (a copy a rebalance or a catch-up is writing at that instant shows
/// in one at most); and only the in-sync part (an object a rebalance is still moving
/// is on no member of its new set yet: that is judged after the final heal).
pub async fn check_quiescent(c: &ChaosCluster) -> Result<Vec<DataViolation>, String> {
    let mut before = c.client.data_snapshot().await.map_err(|e| e.to_string())?;
    let mut after = c.client.data_snapshot().await.map_err(|e| e.to_string())?;
    for snap in &mut after {
        let earlier: BTreeSet<keel_core::ObjectId> = before
            .iter()
            .find(|b| b.set == snap.set)
            .map(|b| b.acknowledged.clone())
            .unwrap_or_default();
        snap.acknowledged = snap.acknowledged.intersection(&earlier).copied().collect();
    }
    for snap in &mut before {
        snap.acknowledged = after
            .iter()
            .find(|a| a.set == snap.set)
            .map(|a| a.acknowledged.clone())
            .unwrap_or_default();
    }
    let in_sync = |sets| -> BTreeSet<DataViolation> {
        data_invariant::check(sets)
            .into_iter()
            .filter(|v| matches!(v, DataViolation::InSyncMissing { .. }))
            .collect()
    };
    let key = |v: &DataViolation| match v {
        DataViolation::InSyncMissing {
            set, node, object, ..
        } => Some((set.clone(), *node, *object)),
        _ => None,
    };
    let first: BTreeSet<_> = in_sync(&before).iter().filter_map(key).collect();
    Ok(in_sync(&after)
        .into_iter()
        .filter(|v| key(v).is_some_and(|k| first.contains(&k)))
        .collect())
}
