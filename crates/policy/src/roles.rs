//! The role holders of one failover set, as a value the arbiter can rearrange before
//! turning it into an `AssignRoles` command.
//!
//! Owns: moving members between Primary, Secondary and the ordered Alternates while
//! every member of the set appears exactly once. Must never: decide who deserves a
//! role (that is `arbitrate.rs`) or touch the state.

use keel_core::{ClusterCommand, ClusterState, FailoverSet, MemberRef, UnixMillis};

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Roles {
    pub primary: Option<MemberRef>,
    pub secondary: Option<MemberRef>,
    pub alternates: Vec<MemberRef>,
}

impl Roles {
    /// The set's roles as recorded, repaired if needed: holders that are not members,
    /// and second listings, are dropped; members holding nothing are appended to the
    /// Alternates in the set's preference order.
    pub fn of(set: &FailoverSet) -> Roles {
        let mut seen: Vec<MemberRef> = Vec::new();
        // True the first time a member of the set is met.
        let mut first = |r: &MemberRef| {
            let fresh = set.has_member(r) && !seen.contains(r);
            if fresh {
                seen.push(r.clone());
            }
            fresh
        };
        let primary = set.primary.clone().filter(&mut first);
        let secondary = set.secondary.clone().filter(&mut first);
        let mut alternates: Vec<MemberRef> = set
            .alternates
            .iter()
            .filter(|a| first(a))
            .cloned()
            .collect();
        let holding_nothing: Vec<MemberRef> =
            set.members.iter().filter(|m| first(m)).cloned().collect();
        alternates.extend(holding_nothing);
        Roles {
            primary,
            secondary,
            alternates,
        }
    }

    /// Does this equal what the set records, exactly?
    pub fn same_as(&self, set: &FailoverSet) -> bool {
        self.primary == set.primary
            && self.secondary == set.secondary
            && self.alternates == set.alternates
    }

    /// Every holder in role order: Primary, Secondary, Alternates.
    pub fn order(&self) -> Vec<MemberRef> {
        self.primary
            .iter()
            .chain(self.secondary.iter())
            .chain(self.alternates.iter())
            .cloned()
            .collect()
    }

    /// Takes `r` off whatever role it holds.
    pub fn remove(&mut self, r: &MemberRef) {
        if self.primary.as_ref() == Some(r) {
            self.primary = None;
        }
        if self.secondary.as_ref() == Some(r) {
            self.secondary = None;
        }
        self.alternates.retain(|a| a != r);
    }

    /// Makes `r` the last Alternate, whatever it held before.
    pub fn move_to_end(&mut self, r: &MemberRef) {
        self.remove(r);
        self.alternates.push(r.clone());
    }

    /// Takes the first eligible Alternate out of the Alternates.
    pub fn take_first_eligible(&mut self, state: &ClusterState) -> Option<MemberRef> {
        self.take_first(|a| state.ref_eligible(a))
    }

    /// Takes the first Alternate that passes `ok` out of the Alternates.
    pub fn take_first(&mut self, ok: impl Fn(&MemberRef) -> bool) -> Option<MemberRef> {
        let i = self.alternates.iter().position(ok)?;
        Some(self.alternates.remove(i))
    }

    /// The command that records these roles, fenced by the set's current epoch.
    pub fn assign(self, set: &FailoverSet, reason: String, at: UnixMillis) -> ClusterCommand {
        ClusterCommand::AssignRoles {
            set: set.id.clone(),
            expected_epoch: set.epoch,
            primary: self.primary,
            secondary: self.secondary,
            alternates: self.alternates,
            reason,
            at,
        }
    }
}
