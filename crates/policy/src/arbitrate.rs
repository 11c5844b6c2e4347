//! Arbitration: which member of a failover set is Primary, which is Secondary, and
//! the order of the Alternates (corrective action, re-integration, giveback and
//! takeover).
//!
//! Owns: the role rules below, as plans computed from the state. Must never: apply a
//! plan, bump an epoch itself (the state machine does it when the Primary changes),
//! or put an ineligible member into the Primary or Secondary slot.

use crate::roles::Roles;
use keel_core::{
    ClusterState, Composition, FailoverSet, MemberRef, MemberState, NodeId, UnixMillis,
};

/// What the batch knows about why a node lost its eligibility (e.g. `(2, "failed
/// (crash)")`), for reasons that name the fault; without it the member's state is
/// named.
pub(crate) type Cause<'a> = Option<(NodeId, &'a str)>;

/// New roles for a set, and why.
#[derive(Debug)]
pub(crate) struct Plan {
    pub roles: Roles,
    pub reason: String,
}

/// Corrective action for one set; `None` when nothing changes.
///
/// - Single set: roles never change (nobody to fail over to); the only exception is
///   an empty Primary slot, which its one member fills once eligible.
/// - `returning`, a member that came back: it is placed at the end of the Alternates
///   first, so it never resumes Primary or Secondary by itself. It becomes Secondary
///   only if that slot is empty, Primary only if no other member is eligible.
/// - A Primary that is `suspect` (not yet failed) leaves the set alone.
/// - An ineligible or missing Primary: the Secondary takes over if eligible, else the
///   first eligible Alternate; the old Primary goes to the end of the Alternates. With
///   nobody eligible, the Primary slot is emptied (the epoch still grows, fencing it).
/// - An ineligible or missing Secondary: it goes to the end of the Alternates and the
///   first eligible Alternate becomes Secondary (no epoch change). A suspect Secondary
///   keeps its slot unless the set changes anyway.
/// - Hierarchical sets: the members are child sets, eligible while their Primary is.
pub(crate) fn rearbitrate(
    state: &ClusterState,
    set: &FailoverSet,
    returning: Option<&MemberRef>,
    cause: Cause,
) -> Option<Plan> {
    let mut roles = Roles::of(set);
    let mut why: Vec<String> = Vec::new();
    if set.composition == Composition::Single {
        if roles.primary.is_none() {
            if let Some(p) = roles.take_first_eligible(state) {
                why.push(format!("{p} is eligible"));
                roles.primary = Some(p);
            }
        }
        return finish(set, roles, why);
    }
    if let Some(r) = returning.filter(|r| set.has_member(r)) {
        roles.move_to_end(r);
        why.push(format!("{r} returned and waits as an alternate"));
    }
    if roles.primary.as_ref().is_some_and(|p| suspect(state, p)) {
        return None;
    }
    let eligible = |r: Option<&MemberRef>| r.is_some_and(|r| state.ref_eligible(r));
    // A storage set's new Primary must hold every acknowledged write: in sync.
    let can_lead =
        |r: Option<&MemberRef>| eligible(r) && r.is_some_and(|r| state.in_sync_allows(set, r));
    // A storage Primary whose data the in-sync list no longer vouches for (its store
    // was replaced under it) steps down as soon as a member that is in sync can lead:
    // otherwise its next shrink would put the empty store back on the list.
    let primary_lost_its_data = set.kind == keel_core::SetKind::Storage
        && roles
            .primary
            .as_ref()
            .is_some_and(|p| !state.in_sync_allows(set, p))
        && (can_lead(roles.secondary.as_ref())
            || roles
                .alternates
                .iter()
                .any(|a| state.ref_eligible(a) && state.in_sync_allows(set, a)));
    if !eligible(roles.primary.as_ref()) || primary_lost_its_data {
        let old = roles.primary.take();
        let new = if can_lead(roles.secondary.as_ref()) {
            roles.secondary.take()
        } else {
            roles.take_first(|a| state.ref_eligible(a) && state.in_sync_allows(set, a))
        };
        if new.is_none() && !set.in_sync.is_empty() && set.kind == keel_core::SetKind::Storage {
            why.push(format!(
                "no eligible member is in sync ({:?}): the set waits for one",
                set.in_sync
            ));
        }
        if let Some(old) = old {
            why.push(format!("primary {old} {}", describe(state, &old, cause)));
            if new.is_none() {
                why.push("no eligible member to take over".into());
            }
            roles.alternates.push(old);
        }
        if let Some(new) = &new {
            why.push(format!("{new} promoted to primary"));
        }
        roles.primary = new;
    }
    if roles.secondary.as_ref().is_some_and(|s| !holds(state, s)) {
        demote_secondary(state, &mut roles, &mut why, cause);
    }
    fill_secondary(state, &mut roles, &mut why);
    if roles.same_as(set) {
        return None;
    }
    // The set changes anyway: a suspect Secondary cannot be confirmed in its slot.
    if roles.secondary.is_some() && !eligible(roles.secondary.as_ref()) {
        demote_secondary(state, &mut roles, &mut why, cause);
        fill_secondary(state, &mut roles, &mut why);
    }
    finish(set, roles, why)
}

/// Auto-giveback: once the home member (the first listed) is eligible and has been
/// up for the set's `auto_giveback_ms`, it becomes Primary again and the current
/// Primary its Secondary; the others stay Alternates in their previous order.
pub(crate) fn giveback(state: &ClusterState, set: &FailoverSet, now: UnixMillis) -> Option<Plan> {
    let delay = set.auto_giveback_ms?;
    let home = set.home()?;
    let current = set.primary.as_ref()?;
    if set.composition == Composition::Single
        || current == home
        || !state.ref_eligible(home)
        || !state.in_sync_allows(set, home)
        || !state.ref_eligible(current)
    {
        return None;
    }
    let up_for = now.saturating_sub(up_since(state, home)?);
    if up_for < i64::try_from(delay).unwrap_or(i64::MAX) {
        return None;
    }
    let rest = Roles::of(set)
        .order()
        .into_iter()
        .filter(|m| m != home && m != current);
    let roles = Roles {
        primary: Some(home.clone()),
        secondary: Some(current.clone()),
        alternates: rest.collect(),
    };
    let reason =
        format!("giveback to home member {home}, up for {up_for}ms (auto_giveback_ms {delay})");
    Some(Plan { roles, reason })
}

/// Operator takeover by `to` (already checked eligible): `to` becomes Primary, the
/// old Primary its Secondary if eligible, the others Alternates in their previous
/// order (an empty Secondary slot is filled by the first eligible of them).
pub(crate) fn takeover(state: &ClusterState, set: &FailoverSet, to: &MemberRef) -> Plan {
    let secondary = set
        .primary
        .clone()
        .filter(|p| p != to && state.ref_eligible(p));
    let alternates = Roles::of(set)
        .order()
        .into_iter()
        .filter(|m| m != to && Some(m) != secondary.as_ref())
        .collect();
    let mut roles = Roles {
        primary: Some(to.clone()),
        secondary,
        alternates,
    };
    let mut why = vec![format!("operator takeover by {to}")];
    fill_secondary(state, &mut roles, &mut why);
    Plan {
        roles,
        reason: why.join("; "),
    }
}

/// Why `r` cannot hold a role: the batch's cause if it concerns `r`, else its state.
pub(crate) fn describe(state: &ClusterState, r: &MemberRef, cause: Cause) -> String {
    match r {
        MemberRef::Node(n) => match (cause, state.members.get(n)) {
            (Some((node, text)), _) if node == *n => text.to_string(),
            (_, None) => "unknown".into(),
            (_, Some(m)) if m.state == MemberState::Up && m.drained => "drained".into(),
            (_, Some(m)) => m.state.as_str().into(),
        },
        MemberRef::Set(_) => "has no eligible primary".into(),
    }
}

/// Still holds its role while the detector makes up its mind: up or suspect, and
/// not drained (for a child set: its Primary holds).
fn holds(state: &ClusterState, r: &MemberRef) -> bool {
    match r {
        MemberRef::Node(n) => state.members.get(n).is_some_and(|m| {
            matches!(m.state, MemberState::Up | MemberState::Suspect) && !m.drained
        }),
        MemberRef::Set(s) => state.sets.get(s).is_some_and(|c| {
            c.composition != Composition::Hierarchical
                && c.primary.as_ref().is_some_and(|p| holds(state, p))
        }),
    }
}

/// Holds its role but is not eligible: suspect.
fn suspect(state: &ClusterState, r: &MemberRef) -> bool {
    holds(state, r) && !state.ref_eligible(r)
}

fn demote_secondary(state: &ClusterState, roles: &mut Roles, why: &mut Vec<String>, cause: Cause) {
    if let Some(s) = roles.secondary.take() {
        why.push(format!("secondary {s} {}", describe(state, &s, cause)));
        roles.alternates.push(s);
    }
}

fn fill_secondary(state: &ClusterState, roles: &mut Roles, why: &mut Vec<String>) {
    if roles.secondary.is_none() {
        if let Some(s) = roles.take_first_eligible(state) {
            why.push(format!("{s} becomes secondary"));
            roles.secondary = Some(s);
        }
    }
}

/// When a member (or child set) last became available, for the giveback delay. A
/// child set counts from its last role change.
fn up_since(state: &ClusterState, r: &MemberRef) -> Option<UnixMillis> {
    match r {
        MemberRef::Node(n) => state.members.get(n)?.up_since,
        MemberRef::Set(s) => Some(state.sets.get(s)?.changed_at),
    }
}

fn finish(set: &FailoverSet, roles: Roles, mut why: Vec<String>) -> Option<Plan> {
    if roles.same_as(set) {
        return None;
    }
    if why.is_empty() {
        why.push("role list repaired".into());
    }
    Some(Plan {
        roles,
        reason: why.join("; "),
    })
}
