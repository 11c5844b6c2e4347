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
use keel_node::data_invariant::DataViolation;
use std::time::Duration;

/// Attempts of one final read before the file counts as unreadable.
const READ_ATTEMPTS: usize = 3;
/// Final reads at once.
const READERS: usize = 4;
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
    let mut reads = futures::stream::iter(paths.into_iter().map(|(i, path)| async move {
        let mut last = None;
        for attempt in 0..READ_ATTEMPTS {
            match client.get_bytes(&path, None, None).await {
                Ok((bytes, _)) => return (i, path, Ok(Some((bytes.len(), digest(&bytes))))),
                Err(e) if e.code() == Some("not_found") => return (i, path, Ok(None)),
                Err(e) => last = Some(e.to_string()),
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
                f.example(format!("{path} cannot be read after the heal: {e}"));
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
                    _ => f.in_sync_violations += 1,
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
