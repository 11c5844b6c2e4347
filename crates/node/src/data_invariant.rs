//! The data invariant of the storage sets, as a pure check over what every member
//! holds: every member of a set's committed in-sync list holds every acknowledged,
//! undeleted object of the set at its latest version, and no object a file refers to
//! is missing on every member. The in-process harness, the whole-binary tests and
//! `keel dev chaos` gather the inputs their own way (a node's store directly, or
//! `GET /v1/storage/{set}/objects`) and all judge with [`check`].
//!
//! "Acknowledged, undeleted objects" are those the files of the directory refer to
//! (a put is acknowledged only once its chunk list is committed), plus any the caller
//! knows were acknowledged on their own. The latest version of an object is the
//! newest any member of its set holds, live or tombstone.
//!
//! Owns: the judgement. Must never: do I/O, read a clock, or report the same finding
//! twice.

use keel_core::{NodeId, ObjectId, SetId, Version};
use keel_store::ObjectStat;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// What one storage set looked like at a quiescent point.
#[derive(Clone, Debug, Default)]
pub struct SetSnapshot {
    pub set: SetId,
    /// Every member of the set.
    pub members: Vec<NodeId>,
    /// The committed in-sync list.
    pub in_sync: Vec<NodeId>,
    /// What each member holds of the set (`None`: it could not be asked).
    pub holdings: BTreeMap<NodeId, Option<Vec<ObjectStat>>>,
    /// The acknowledged objects of the set (what files refer to, and more).
    pub acknowledged: BTreeSet<ObjectId>,
}

/// A broken data invariant.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum DataViolation {
    /// An in-sync member lacks an acknowledged object at its latest version.
    InSyncMissing {
        set: SetId,
        node: NodeId,
        object: ObjectId,
        latest: Version,
        /// What the member holds instead: its version and whether it is a tombstone.
        holds: Option<(Version, bool)>,
    },
    /// An in-sync member could not be asked what it holds.
    InSyncUnreachable { set: SetId, node: NodeId },
    /// An acknowledged object is live on no member of its set.
    Lost { set: SetId, object: ObjectId },
    /// An acknowledged object's latest version is a tombstone (deleted while a file
    /// still refers to it).
    DeletedWhileReferenced {
        set: SetId,
        object: ObjectId,
        node: NodeId,
        version: Version,
    },
}

impl DataViolation {
    /// Whether this breaks the in-sync part of the invariant (rather than losing the
    /// object everywhere).
    pub fn is_in_sync(&self) -> bool {
        matches!(
            self,
            DataViolation::InSyncMissing { .. } | DataViolation::InSyncUnreachable { .. }
        )
    }
}

impl fmt::Display for DataViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DataViolation::InSyncMissing {
                set,
                node,
                object,
                latest,
                holds,
            } => {
                let holds = match holds {
                    None => "nothing".to_string(),
                    Some((v, true)) => format!("a tombstone at version {v}"),
                    Some((v, false)) => format!("version {v}"),
                };
                write!(
                    f,
                    "node {node} is in sync for {set} but holds {holds} of object {object} \
                     (latest version {latest})"
                )
            }
            DataViolation::InSyncUnreachable { set, node } => write!(
                f,
                "node {node} is in sync for {set} but could not be asked what it holds"
            ),
            DataViolation::Lost { set, object } => write!(
                f,
                "object {object} of {set}, referenced by a file, is on no member of the set"
            ),
            DataViolation::DeletedWhileReferenced {
                set,
                object,
                node,
                version,
            } => write!(
                f,
                "object {object} of {set}, referenced by a file, was deleted (tombstone at \
                 version {version} on node {node})"
            ),
        }
    }
}

/// Judges one snapshot per set; returns every violation, sorted.
pub fn check(sets: &[SetSnapshot]) -> Vec<DataViolation> {
    let mut out = BTreeSet::new();
    for s in sets {
        check_set(s, &mut out);
    }
    out.into_iter().collect()
}

fn check_set(s: &SetSnapshot, out: &mut BTreeSet<DataViolation>) {
    // Per node: object -> (version, deleted, size), the records of this set only.
    let mut held: BTreeMap<NodeId, BTreeMap<ObjectId, &ObjectStat>> = BTreeMap::new();
    for (node, list) in &s.holdings {
        if let Some(list) = list {
            held.insert(
                *node,
                list.iter()
                    .filter(|o| o.set == s.set)
                    .map(|o| (o.id, o))
                    .collect(),
            );
        }
    }
    for node in &s.in_sync {
        if !held.contains_key(node) {
            out.insert(DataViolation::InSyncUnreachable {
                set: s.set.clone(),
                node: *node,
            });
        }
    }
    for id in &s.acknowledged {
        let newest = held
            .iter()
            .filter_map(|(n, objs)| objs.get(id).map(|o| (*n, *o)))
            .max_by_key(|(_, o)| o.version);
        let Some((where_, latest)) = newest else {
            out.insert(DataViolation::Lost {
                set: s.set.clone(),
                object: *id,
            });
            continue;
        };
        if latest.deleted {
            out.insert(DataViolation::DeletedWhileReferenced {
                set: s.set.clone(),
                object: *id,
                node: where_,
                version: latest.version,
            });
            continue;
        }
        for node in &s.in_sync {
            let Some(objs) = held.get(node) else { continue };
            let holds = objs.get(id);
            let fine = holds.is_some_and(|o| {
                !o.deleted && o.version == latest.version && o.size == latest.size
            });
            if !fine {
                out.insert(DataViolation::InSyncMissing {
                    set: s.set.clone(),
                    node: *node,
                    object: *id,
                    latest: latest.version,
                    holds: holds.map(|o| (o.version, o.deleted)),
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keel_core::Epoch;

    fn stat(id: u128, seq: u64, deleted: bool) -> ObjectStat {
        ObjectStat {
            id: ObjectId(id),
            set: "st-1".into(),
            size: 10,
            version: Version {
                epoch: Epoch(1),
                seq,
            },
            deleted,
        }
    }

    fn snapshot(a: Vec<ObjectStat>, b: Option<Vec<ObjectStat>>) -> SetSnapshot {
        SetSnapshot {
            set: "st-1".into(),
            members: vec![1, 2],
            in_sync: vec![1, 2],
            holdings: [(1, Some(a)), (2, b)].into(),
            acknowledged: [ObjectId(7), ObjectId(8)].into(),
        }
    }

    #[test]
    fn every_in_sync_member_at_the_latest_version_is_clean() {
        let both = vec![stat(7, 3, false), stat(8, 4, false), stat(9, 1, true)];
        assert_eq!(check(&[snapshot(both.clone(), Some(both))]), vec![]);
    }

    #[test]
    fn a_member_behind_missing_or_unreachable_is_reported() {
        let a = vec![stat(7, 3, false), stat(8, 4, false)];
        let v = check(&[snapshot(a.clone(), Some(vec![stat(7, 2, false)]))]);
        assert_eq!(v.len(), 2, "{v:?}");
        assert!(v.iter().all(|x| x.is_in_sync()));
        let v = check(&[snapshot(a, None)]);
        assert_eq!(
            v,
            vec![DataViolation::InSyncUnreachable {
                set: "st-1".into(),
                node: 2
            }]
        );
    }

    #[test]
    fn an_object_nowhere_or_deleted_is_lost() {
        let v = check(&[snapshot(vec![stat(7, 3, true)], Some(vec![]))]);
        assert!(v.contains(&DataViolation::Lost {
            set: "st-1".into(),
            object: ObjectId(8)
        }));
        assert!(v
            .iter()
            .any(|x| matches!(x, DataViolation::DeletedWhileReferenced { .. })));
    }
}
