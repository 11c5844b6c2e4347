//! The replicated state machine on redb ([`StateMachineStore`], openraft's
//! `RaftStateMachine`): applies committed [`ClusterCommand`]s to the [`ClusterState`]
//! and persists the result durably, once per apply batch.
//!
//! On disk: the cluster state without its event log as one JSON record, the directory
//! one row per volume, inode, entry and token (see `namespace_store.rs`), the event log
//! one record per event (keyed by seq: a batch inserts its new events and deletes the
//! evicted ones, so a write never rewrites 10 000 events), the last applied log id and
//! the last membership. In memory: a copy of all of it behind a std `RwLock`, shared
//! with [`crate::ConfDb`] for local reads, and a watch of the last applied index.
//! After each durable batch it also announces what of the directory the batch changed
//! ([`DirApplied`]), for the gateways' caches: every replica announces what it applies,
//! whichever node proposed it.
//!
//! Must never: hold the lock across an `.await`, read a clock or do I/O inside
//! `ClusterState::apply`, or touch the Raft log tables.

use crate::disk::{begin_durable, blocking, get_json, SM_EVENTS, SM_META};
use crate::error::ConfDbError;
use crate::namespace_store::{self, EncodedChanges};
use crate::snapshot::{self, SnapshotBuilder};
use crate::types::{
    Command, Entry, LogId, Reply, Snapshot, SnapshotMeta, StorageError, StoredMembership,
    TypeConfig,
};
use keel_core::{ClusterResponse, ClusterState};
use keel_dir::Namespace;
use openraft::storage::RaftStateMachine;
use openraft::{EntryPayload, ErrorSubject, ErrorVerb, OptionalSend};
use redb::{Database, ReadableTable};
use std::io::Cursor;
use std::sync::{Arc, RwLock};
use tokio::sync::{broadcast, watch};

/// What of the directory an applied batch changed, announced after it is durable (see
/// [`crate::ConfDb::dir_changes`]). A receiver that lags must assume everything changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DirApplied {
    Changed {
        /// Volumes created or deleted.
        volumes: Vec<String>,
        /// Inodes whose attributes or content changed, or that are gone.
        inodes: Vec<keel_dir::Ino>,
        /// Directories whose entries changed.
        dirs: Vec<keel_dir::Ino>,
    },
    /// A snapshot replaced the whole directory.
    Everything,
}

/// How many batches a slow [`DirApplied`] receiver may fall behind before it lags.
const DIR_CHANGES_BUFFER: usize = 4096;

/// What the state machine has applied, kept together so readers see a consistent view.
#[derive(Clone, Debug, Default)]
pub struct Applied {
    pub state: ClusterState,
    /// The directory: volumes, directories and files.
    pub namespace: Namespace,
    pub last_applied: Option<LogId>,
    pub membership: StoredMembership,
}

/// The in-memory replica shared with readers.
pub(crate) type SharedApplied = Arc<RwLock<Applied>>;

/// The configuration database's state machine on one node.
pub struct StateMachineStore {
    db: Arc<Database>,
    applied: SharedApplied,
    applied_tx: watch::Sender<u64>,
    dir_tx: broadcast::Sender<Arc<DirApplied>>,
}

impl StateMachineStore {
    /// Loads the state machine persisted in `db` (empty on first start).
    pub async fn open(db: Arc<Database>) -> Result<StateMachineStore, ConfDbError> {
        let load_db = db.clone();
        let applied = blocking(move || load(&load_db)).await?;
        let index = applied.last_applied.map_or(0, |l| l.index);
        Ok(StateMachineStore {
            db,
            applied: Arc::new(RwLock::new(applied)),
            applied_tx: watch::channel(index).0,
            dir_tx: broadcast::channel(DIR_CHANGES_BUFFER).0,
        })
    }

    /// The in-memory replica, for local reads.
    pub(crate) fn shared(&self) -> SharedApplied {
        self.applied.clone()
    }

    /// Reads the in-memory replica (what has been applied, with its log id).
    pub fn read<R>(&self, f: impl FnOnce(&Applied) -> R) -> R {
        let applied = self
            .applied
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        f(&applied)
    }

    /// The sender of directory-change announcements (receivers subscribe to it).
    pub fn dir_changes(&self) -> broadcast::Sender<Arc<DirApplied>> {
        self.dir_tx.clone()
    }

    /// A receiver of the last applied log index, bumped after each durable apply.
    pub fn applied_watch(&self) -> watch::Receiver<u64> {
        self.applied_tx.subscribe()
    }

    fn lock_err(subject: ErrorSubject<u64>) -> StorageError {
        ConfDbError::Task("state machine lock poisoned by a panic".into())
            .into_storage(subject, ErrorVerb::Write)
    }
}

/// What a batch's directory changes touched; `None` if nothing.
fn touched_by(changes: &keel_dir::Changes) -> Option<DirApplied> {
    if changes.volumes.is_empty() && changes.inodes.is_empty() && changes.entries.is_empty() {
        return None;
    }
    let mut dirs: Vec<keel_dir::Ino> = changes.entries.keys().map(|(dir, _)| *dir).collect();
    dirs.dedup();
    Some(DirApplied::Changed {
        volumes: changes.volumes.keys().cloned().collect(),
        inodes: changes.inodes.keys().copied().collect(),
        dirs,
    })
}

/// Encodes the cluster state without its event log (events live in their own table).
pub(crate) fn encode_state_without_events(state: &mut ClusterState) -> serde_json::Result<Vec<u8>> {
    let events = std::mem::take(&mut state.events);
    let encoded = serde_json::to_vec(&*state);
    state.events = events;
    encoded
}

/// Reads the persisted state machine.
fn load(db: &Database) -> Result<Applied, ConfDbError> {
    let txn = db.begin_read()?;
    let meta = txn.open_table(SM_META)?;
    let mut state: ClusterState = get_json(&meta, "state")?.unwrap_or_default();
    for item in txn.open_table(SM_EVENTS)?.iter()? {
        let (_, value) = item?;
        state
            .events
            .push_back(serde_json::from_slice(value.value())?);
    }
    Ok(Applied {
        state,
        namespace: namespace_store::load(&txn)?,
        last_applied: get_json(&meta, "last_applied")?,
        membership: get_json(&meta, "membership")?.unwrap_or_default(),
    })
}

/// The records one apply batch writes, encoded under the lock, written after it.
struct ApplyBatch {
    state: Option<Vec<u8>>,
    new_events: Vec<(u64, Vec<u8>)>,
    /// Events with a seq below this one were evicted from the log.
    first_kept_event: u64,
    last_applied: Vec<u8>,
    membership: Vec<u8>,
    namespace: EncodedChanges,
}

impl ApplyBatch {
    fn write(self, db: &Database) -> Result<(), ConfDbError> {
        let txn = begin_durable(db)?;
        {
            let mut meta = txn.open_table(SM_META)?;
            if let Some(state) = &self.state {
                meta.insert("state", state.as_slice())?;
            }
            meta.insert("last_applied", self.last_applied.as_slice())?;
            meta.insert("membership", self.membership.as_slice())?;
            let mut events = txn.open_table(SM_EVENTS)?;
            for (seq, bytes) in &self.new_events {
                events.insert(*seq, bytes.as_slice())?;
            }
            events.retain_in(..self.first_kept_event, |_, _| false)?;
        }
        if !self.namespace.is_empty() {
            self.namespace.write(&txn)?;
        }
        txn.commit()?;
        Ok(())
    }
}

impl RaftStateMachine<TypeConfig> for StateMachineStore {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        let applied = self
            .applied
            .read()
            .map_err(|_| Self::lock_err(ErrorSubject::StateMachine))?;
        Ok((applied.last_applied, applied.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Reply>, StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut responses = Vec::new();
        let (batch, last_index, touched) = {
            let mut guard = self
                .applied
                .write()
                .map_err(|_| Self::lock_err(ErrorSubject::StateMachine))?;
            let applied = &mut *guard;
            let next_seq_before = applied.state.next_event_seq;
            let mut state_changed = false;
            for entry in entries {
                applied.last_applied = Some(entry.log_id);
                let response = match entry.payload {
                    EntryPayload::Blank => Reply::Cluster(ClusterResponse::Ok),
                    EntryPayload::Normal(Command::Cluster(cmd)) => {
                        state_changed = true;
                        Reply::Cluster(applied.state.apply(cmd))
                    }
                    EntryPayload::Normal(Command::Dir(cmd)) => {
                        Reply::Dir(applied.namespace.apply(cmd))
                    }
                    EntryPayload::Membership(m) => {
                        applied.membership = StoredMembership::new(Some(entry.log_id), m);
                        Reply::Cluster(ClusterResponse::Ok)
                    }
                };
                responses.push(response);
            }
            let Some(last) = applied.last_applied.filter(|_| !responses.is_empty()) else {
                return Ok(responses);
            };
            let encode = |e: serde_json::Error| {
                ConfDbError::from(e).into_storage(ErrorSubject::Apply(last), ErrorVerb::Write)
            };
            let changes = applied.namespace.take_changes();
            let touched = touched_by(&changes);
            let state = &mut applied.state;
            // New events are at the back of the log: walk back to the first of them.
            let mut new_events = Vec::new();
            for event in state
                .events
                .iter()
                .rev()
                .take_while(|e| e.seq >= next_seq_before)
            {
                new_events.push((event.seq, serde_json::to_vec(event).map_err(encode)?));
            }
            let batch = ApplyBatch {
                state: if state_changed {
                    Some(encode_state_without_events(state).map_err(encode)?)
                } else {
                    None
                },
                new_events,
                first_kept_event: state.events.front().map_or(state.next_event_seq, |e| e.seq),
                last_applied: serde_json::to_vec(&applied.last_applied).map_err(encode)?,
                membership: serde_json::to_vec(&applied.membership).map_err(encode)?,
                namespace: EncodedChanges::encode(changes, applied.namespace.meta(), false)
                    .map_err(encode)?,
            };
            (batch, last.index, touched)
        };
        let db = self.db.clone();
        blocking(move || batch.write(&db))
            .await
            .map_err(|e| e.into_storage(ErrorSubject::StateMachine, ErrorVerb::Write))?;
        self.applied_tx.send_replace(last_index);
        if let Some(touched) = touched {
            // No receiver is fine: no gateway listens.
            let _ = self.dir_tx.send(Arc::new(touched));
        }
        Ok(responses)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        // Copy even if a panic poisoned the lock: the copy only reads, and Raft stops on
        // the storage error the next apply reports.
        let applied = match self.applied.read() {
            Ok(a) => a.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        };
        SnapshotBuilder::new(self.db.clone(), applied)
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        tracing::info!(snapshot = %meta, "installing a configuration database snapshot");
        let data = snapshot.into_inner();
        let db = self.db.clone();
        let install_meta = meta.clone();
        let (state, namespace) = blocking(move || snapshot::install(&db, &install_meta, data))
            .await
            .map_err(|e| {
                e.into_storage(
                    ErrorSubject::Snapshot(Some(meta.signature())),
                    ErrorVerb::Write,
                )
            })?;
        {
            let mut guard = self
                .applied
                .write()
                .map_err(|_| Self::lock_err(ErrorSubject::StateMachine))?;
            *guard = Applied {
                state,
                namespace,
                last_applied: meta.last_log_id,
                membership: meta.last_membership.clone(),
            };
        }
        self.applied_tx
            .send_replace(meta.last_log_id.map_or(0, |l| l.index));
        let _ = self.dir_tx.send(Arc::new(DirApplied::Everything));
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, StorageError> {
        let db = self.db.clone();
        blocking(move || snapshot::current(&db))
            .await
            .map_err(|e| e.into_storage(ErrorSubject::Snapshot(None), ErrorVerb::Read))
    }
}
