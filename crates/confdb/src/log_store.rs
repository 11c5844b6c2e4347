//! The Raft log on redb: entries, the vote, the committed log id and the last purged
//! log id ([`LogStore`], openraft's `RaftLogStorage` and `RaftLogReader`).
//!
//! Every append, vote, truncation and purge is one redb transaction committed with
//! `Durability::Immediate` (fsync) before the method returns and before openraft's
//! flush callback fires. The committed log id is written without fsync: it becomes
//! durable with the next durable commit, and losing it only means re-applying fewer
//! entries on restart.
//!
//! Must never: look at the state machine tables, or hold a transaction across an
//! `.await` (all redb work runs on the blocking pool).

use crate::disk::{begin_durable, blocking, get_json, LOG, LOG_META};
use crate::error::ConfDbError;
use crate::types::{Entry, LogId, StorageError, TypeConfig, Vote};
use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{ErrorSubject, ErrorVerb, LogState, OptionalSend, RaftLogReader};
use redb::{Database, ReadableTable};
use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::sync::Arc;

/// The Raft log of one node. Cheap to clone: clones share the database and serve as
/// openraft's log readers.
#[derive(Clone)]
pub struct LogStore {
    db: Arc<Database>,
}

/// Just the id of a stored entry, decoded without its payload.
#[derive(serde::Deserialize)]
struct EntryId {
    log_id: LogId,
}

impl LogStore {
    pub fn new(db: Arc<Database>) -> LogStore {
        LogStore { db }
    }

    /// Runs `work` on the blocking pool and maps failures to openraft's storage error.
    async fn run<T, F>(
        &self,
        subject: ErrorSubject<u64>,
        verb: ErrorVerb,
        work: F,
    ) -> Result<T, StorageError>
    where
        T: Send + 'static,
        F: FnOnce(&Database) -> Result<T, ConfDbError> + Send + 'static,
    {
        let db = self.db.clone();
        blocking(move || work(&db))
            .await
            .map_err(|e| e.into_storage(subject, verb))
    }

    /// Writes one `LOG_META` record durably.
    async fn put_meta<T: serde::Serialize>(
        &self,
        key: &'static str,
        value: &T,
        subject: ErrorSubject<u64>,
    ) -> Result<(), StorageError> {
        let bytes = serde_json::to_vec(value)
            .map_err(|e| ConfDbError::from(e).into_storage(subject.clone(), ErrorVerb::Write))?;
        self.run(subject, ErrorVerb::Write, move |db| {
            let txn = begin_durable(db)?;
            txn.open_table(LOG_META)?.insert(key, bytes.as_slice())?;
            txn.commit()?;
            Ok(())
        })
        .await
    }

    async fn get_meta<T>(
        &self,
        key: &'static str,
        subject: ErrorSubject<u64>,
    ) -> Result<Option<T>, StorageError>
    where
        T: serde::de::DeserializeOwned + Send + 'static,
    {
        self.run(subject, ErrorVerb::Read, move |db| {
            let txn = db.begin_read()?;
            get_json(&txn.open_table(LOG_META)?, key)
        })
        .await
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        let start = match range.start_bound() {
            Bound::Included(i) => *i,
            Bound::Excluded(i) => i.saturating_add(1),
            Bound::Unbounded => 0,
        };
        let end = match range.end_bound() {
            Bound::Included(i) => Bound::Included(*i),
            Bound::Excluded(i) => Bound::Excluded(*i),
            Bound::Unbounded => Bound::Unbounded,
        };
        let empty = match end {
            Bound::Included(e) => e < start,
            Bound::Excluded(e) => e <= start,
            Bound::Unbounded => false,
        };
        if empty {
            return Ok(vec![]);
        }
        self.run(ErrorSubject::Logs, ErrorVerb::Read, move |db| {
            let txn = db.begin_read()?;
            let table = txn.open_table(LOG)?;
            let mut entries = Vec::new();
            for item in table.range::<u64>((Bound::Included(start), end))? {
                let (_, value) = item?;
                entries.push(serde_json::from_slice(value.value())?);
            }
            Ok(entries)
        })
        .await
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        self.run(ErrorSubject::Logs, ErrorVerb::Read, |db| {
            let txn = db.begin_read()?;
            let last_purged: Option<LogId> = get_json(&txn.open_table(LOG_META)?, "last_purged")?;
            let last = match txn.open_table(LOG)?.last()? {
                Some((_, value)) => Some(serde_json::from_slice::<EntryId>(value.value())?.log_id),
                None => last_purged,
            };
            Ok(LogState {
                last_purged_log_id: last_purged,
                last_log_id: last,
            })
        })
        .await
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), StorageError> {
        self.put_meta("vote", vote, ErrorSubject::Vote).await
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError> {
        self.get_meta("vote", ErrorSubject::Vote).await
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        let bytes = serde_json::to_vec(&committed).map_err(|e| {
            ConfDbError::from(e).into_storage(ErrorSubject::Store, ErrorVerb::Write)
        })?;
        self.run(ErrorSubject::Store, ErrorVerb::Write, move |db| {
            let mut txn = db.begin_write()?;
            // Made durable by the next durable commit; see the module doc.
            txn.set_durability(redb::Durability::None);
            txn.open_table(LOG_META)?
                .insert("committed", bytes.as_slice())?;
            txn.commit()?;
            Ok(())
        })
        .await
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        Ok(self
            .get_meta::<Option<LogId>>("committed", ErrorSubject::Store)
            .await?
            .flatten())
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut encoded = Vec::new();
        for entry in entries {
            let bytes = serde_json::to_vec(&entry).map_err(|e| {
                ConfDbError::from(e).into_storage(ErrorSubject::Log(entry.log_id), ErrorVerb::Write)
            })?;
            encoded.push((entry.log_id.index, bytes));
        }
        let result = self
            .run(ErrorSubject::Logs, ErrorVerb::Write, move |db| {
                let txn = begin_durable(db)?;
                {
                    let mut table = txn.open_table(LOG)?;
                    for (index, bytes) in &encoded {
                        table.insert(*index, bytes.as_slice())?;
                    }
                }
                txn.commit()?;
                Ok(())
            })
            .await;
        match &result {
            Ok(()) => callback.log_io_completed(Ok(())),
            Err(e) => callback.log_io_completed(Err(std::io::Error::other(e.to_string()))),
        }
        result
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        tracing::debug!(%log_id, "truncating the configuration database log");
        self.run(ErrorSubject::Logs, ErrorVerb::Delete, move |db| {
            let txn = begin_durable(db)?;
            txn.open_table(LOG)?
                .retain_in(log_id.index.., |_, _| false)?;
            txn.commit()?;
            Ok(())
        })
        .await
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        tracing::debug!(%log_id, "purging the configuration database log");
        let bytes = serde_json::to_vec(&log_id).map_err(|e| {
            ConfDbError::from(e).into_storage(ErrorSubject::Logs, ErrorVerb::Delete)
        })?;
        self.run(ErrorSubject::Logs, ErrorVerb::Delete, move |db| {
            let txn = begin_durable(db)?;
            {
                let mut meta = txn.open_table(LOG_META)?;
                let previous: Option<LogId> = get_json(&meta, "last_purged")?;
                if previous.is_some_and(|p| p >= log_id) {
                    return Ok(());
                }
                meta.insert("last_purged", bytes.as_slice())?;
                txn.open_table(LOG)?
                    .retain_in(..=log_id.index, |_, _| false)?;
            }
            txn.commit()?;
            Ok(())
        })
        .await
    }
}
