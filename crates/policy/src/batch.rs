//! One batch of decisions, computed against a private copy of the state.
//!
//! Owns: the copy, the commands decided so far, and the check that each one applies
//! (so later decisions in the batch see earlier ones, and every `AssignRoles`
//! carries the epoch it will meet). Must never: let a refused command through, or
//! reach the real state; the runtime writes the commands through Raft.

use crate::arbitrate::{self, Cause};
use crate::PolicyError;
use keel_core::{
    ClusterCommand, ClusterResponse, ClusterState, Composition, Event, Member, MemberRef, NodeId,
    SetId, UnixMillis,
};

pub(crate) struct Batch {
    /// The state with every command of the batch applied.
    pub state: ClusterState,
    pub now: UnixMillis,
    commands: Vec<ClusterCommand>,
}

impl Batch {
    pub fn new(state: &ClusterState, now: UnixMillis) -> Batch {
        Batch {
            state: state.clone(),
            now,
            commands: Vec::new(),
        }
    }

    pub fn into_commands(self) -> Vec<ClusterCommand> {
        self.commands
    }

    pub fn member(&self, node: NodeId) -> Result<&Member, PolicyError> {
        self.state
            .members
            .get(&node)
            .ok_or(PolicyError::UnknownNode { node })
    }

    /// Decides `cmd`: applies it to the copy and keeps it, or reports the refusal.
    pub fn push(&mut self, cmd: ClusterCommand) -> Result<(), PolicyError> {
        if let ClusterResponse::Refused { error } = self.state.apply(cmd.clone()) {
            return Err(PolicyError::DecisionRefused {
                command: Box::new(cmd),
                error,
            });
        }
        tracing::debug!(?cmd, "policy decision");
        self.commands.push(cmd);
        Ok(())
    }

    pub fn record(&mut self, event: Event) -> Result<(), PolicyError> {
        self.push(ClusterCommand::RecordEvent { event })
    }

    /// Re-arbitrates one set, deciding an `AssignRoles` if its roles change.
    pub fn rearbitrate_set(
        &mut self,
        id: &SetId,
        returning: Option<&MemberRef>,
        cause: Cause,
    ) -> Result<(), PolicyError> {
        let Some(set) = self.state.sets.get(id) else {
            return Ok(());
        };
        let Some(plan) = arbitrate::rearbitrate(&self.state, set, returning, cause) else {
            return Ok(());
        };
        let cmd = plan.roles.assign(set, plan.reason, self.now);
        self.push(cmd)
    }

    /// Re-arbitrates every set that lists `node`, then every hierarchical set above
    /// those (a child set's eligibility follows its Primary). `returning`: the node
    /// just came back and is placed as an Alternate.
    pub fn rearbitrate_around(
        &mut self,
        node: NodeId,
        returning: bool,
        cause: Cause,
    ) -> Result<(), PolicyError> {
        let me = MemberRef::Node(node);
        let direct: Vec<SetId> = self.state.sets_of(node).map(|s| s.id.clone()).collect();
        for id in &direct {
            self.rearbitrate_set(id, returning.then_some(&me), cause)?;
        }
        let parents: Vec<SetId> = self
            .state
            .sets
            .values()
            .filter(|s| {
                s.composition == Composition::Hierarchical
                    && direct
                        .iter()
                        .any(|d| s.has_member(&MemberRef::Set(d.clone())))
            })
            .map(|s| s.id.clone())
            .collect();
        for id in &parents {
            self.rearbitrate_set(id, None, cause)?;
        }
        Ok(())
    }

    /// Re-arbitrates every set: single and N-way sets first, then the hierarchical
    /// sets whose members they are.
    pub fn rearbitrate_all(&mut self) -> Result<(), PolicyError> {
        let (hierarchical, flat): (Vec<_>, Vec<_>) = self
            .state
            .sets
            .values()
            .map(|s| (s.id.clone(), s.composition == Composition::Hierarchical))
            .partition(|(_, h)| *h);
        for (id, _) in flat.iter().chain(hierarchical.iter()) {
            self.rearbitrate_set(id, None, None)?;
        }
        Ok(())
    }
}
