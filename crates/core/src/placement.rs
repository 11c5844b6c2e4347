//! The placement map: which storage failover set holds an object. An object's id is
//! hashed onto one of a fixed number of placement groups, and each group is assigned
//! to a storage set (as RADOS places objects on placement groups). The map is
//! versioned; the previous assignment is kept so a reader can find an object that a
//! rebalance has not moved yet.
//!
//! Must never: depend on anything but the id and the map (every gateway and storage
//! node must compute the same answer).

use crate::{ObjectId, SetId};
use serde::{Deserialize, Serialize};

/// How many placement groups a map has. Fixed for the life of a cluster: changing it
/// would move almost every object.
pub const PLACEMENT_GROUPS: usize = 256;

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct PlacementMap {
    /// Bumped on every change; 0 means no layout was applied yet.
    pub version: u64,
    /// `groups[g]` is the storage set of placement group `g`; empty before a layout.
    pub groups: Vec<SetId>,
    /// The assignment before the last change (empty if none), where objects of a
    /// moved group are until the rebalance has copied them.
    #[serde(default)]
    pub previous: Vec<SetId>,
}

impl PlacementMap {
    /// The placement group of an object.
    pub fn group_of(id: ObjectId) -> usize {
        (id.placement_hash() % PLACEMENT_GROUPS as u64) as usize
    }

    /// The set that holds `id` under this map.
    pub fn set_for(&self, id: ObjectId) -> Option<&SetId> {
        self.groups.get(Self::group_of(id))
    }

    /// The set that held `id` under the previous map, if it differs from today's.
    pub fn previous_set_for(&self, id: ObjectId) -> Option<&SetId> {
        let g = Self::group_of(id);
        self.previous
            .get(g)
            .filter(|prev| Some(*prev) != self.groups.get(g))
    }

    /// Every distinct set the map names, in order of first appearance.
    pub fn sets(&self) -> Vec<SetId> {
        let mut out: Vec<SetId> = Vec::new();
        for s in &self.groups {
            if !out.contains(s) {
                out.push(s.clone());
            }
        }
        out
    }

    /// Assigns the groups over `sets` as evenly as possible, keeping every group whose
    /// set survives and is not over its share where it is (few objects move).
    pub fn rebalanced(&self, sets: &[SetId]) -> Vec<SetId> {
        if sets.is_empty() {
            return vec![];
        }
        let n = PLACEMENT_GROUPS;
        let k = sets.len();
        let current: Vec<Option<usize>> = (0..n)
            .map(|g| {
                self.groups
                    .get(g)
                    .and_then(|s| sets.iter().position(|x| x == s))
            })
            .collect();
        // Quotas: n / k each, one more for the n % k sets that hold the most today.
        let mut held = vec![0usize; k];
        for i in current.iter().flatten() {
            held[*i] += 1;
        }
        let mut by_held: Vec<usize> = (0..k).collect();
        by_held.sort_by_key(|&i| (std::cmp::Reverse(held[i]), i));
        let mut quota = vec![n / k; k];
        for &i in by_held.iter().take(n % k) {
            quota[i] += 1;
        }
        // Keep what fits the quotas, then fill the sets furthest below theirs.
        let mut count = vec![0usize; k];
        let mut out: Vec<Option<usize>> = vec![None; n];
        for (slot, cur) in out.iter_mut().zip(&current) {
            if let Some(i) = *cur {
                if count[i] < quota[i] {
                    count[i] += 1;
                    *slot = Some(i);
                }
            }
        }
        for slot in out.iter_mut().filter(|s| s.is_none()) {
            let i = (0..k)
                .max_by_key(|&i| (quota[i].saturating_sub(count[i]), std::cmp::Reverse(i)))
                .expect("sets is not empty");
            count[i] += 1;
            *slot = Some(i);
        }
        out.into_iter()
            .map(|i| sets[i.expect("every group assigned")].clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: usize) -> Vec<SetId> {
        (0..n).map(|i| format!("st-{i}")).collect()
    }

    #[test]
    fn first_layout_is_even() {
        let groups = PlacementMap::default().rebalanced(&names(3));
        for s in names(3) {
            let c = groups.iter().filter(|g| **g == s).count();
            assert!((85..=86).contains(&c), "{s} has {c} groups");
        }
    }

    #[test]
    fn adding_a_set_moves_only_its_share() {
        let old = PlacementMap {
            version: 1,
            groups: PlacementMap::default().rebalanced(&names(2)),
            previous: vec![],
        };
        let new = old.rebalanced(&names(3));
        let moved = old.groups.iter().zip(&new).filter(|(a, b)| a != b).count();
        assert!(moved <= 86, "moved {moved} groups");
        assert_eq!(new.iter().filter(|g| *g == "st-2").count(), moved);
    }

    #[test]
    fn removing_a_set_moves_only_its_groups() {
        let old = PlacementMap {
            version: 1,
            groups: PlacementMap::default().rebalanced(&names(3)),
            previous: vec![],
        };
        let survivors = vec!["st-0".to_string(), "st-2".to_string()];
        let new = old.rebalanced(&survivors);
        for (a, b) in old.groups.iter().zip(&new) {
            if a != "st-1" {
                assert_eq!(a, b);
            }
        }
        assert!(!new.contains(&"st-1".to_string()));
    }

    #[test]
    fn every_id_has_one_set() {
        let map = PlacementMap {
            version: 1,
            groups: PlacementMap::default().rebalanced(&names(4)),
            previous: vec![],
        };
        for _ in 0..100 {
            assert!(map.set_for(ObjectId::random()).is_some());
        }
        assert!(PlacementMap::default().set_for(ObjectId(7)).is_none());
    }
}
