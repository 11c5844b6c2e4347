//! The directory's on-disk form inside the configuration database's redb file: one
//! row per volume, inode, directory entry and remembered token (`ns_*` tables), so an
//! apply batch writes only what it changed, never the whole namespace.
//!
//! Owns: loading the namespace, writing a batch's [`Changes`], and replacing every
//! row when a snapshot is installed. Must never: decide anything about the
//! namespace (that is `keel-dir`), or commit a transaction (the caller does, together
//! with the batch's last applied log id).

use crate::disk::{NS_ENTRIES, NS_INODES, NS_TOKENS, NS_VOLUMES, SM_META};
use crate::error::ConfDbError;
use keel_dir::{Changes, Namespace, NamespaceMeta};
use redb::{ReadTransaction, ReadableTable, WriteTransaction};

const META_KEY: &str = "ns_meta";

/// Reads the namespace stored in the file (empty on first start).
pub(crate) fn load(txn: &ReadTransaction) -> Result<Namespace, ConfDbError> {
    let meta_table = txn.open_table(SM_META)?;
    let Some(meta) = meta_table.get(META_KEY)? else {
        return Ok(Namespace::new());
    };
    let meta: NamespaceMeta = serde_json::from_slice(meta.value())?;
    let mut volumes = vec![];
    for item in txn.open_table(NS_VOLUMES)?.iter()? {
        volumes.push(serde_json::from_slice(item?.1.value())?);
    }
    let mut inodes = vec![];
    for item in txn.open_table(NS_INODES)?.iter()? {
        inodes.push(serde_json::from_slice(item?.1.value())?);
    }
    let mut entries = vec![];
    for item in txn.open_table(NS_ENTRIES)?.iter()? {
        let (k, v) = item?;
        let (dir, name) = k.value();
        entries.push(((dir, name.to_string()), v.value()));
    }
    let mut tokens = vec![];
    for item in txn.open_table(NS_TOKENS)?.iter()? {
        let (k, v) = item?;
        tokens.push((k.value(), serde_json::from_slice(v.value())?));
    }
    Ok(Namespace::from_parts(
        volumes, inodes, entries, tokens, meta,
    ))
}

/// A batch's changes, encoded under the state machine's lock and written after it.
pub(crate) struct EncodedChanges {
    volumes: Vec<(String, Option<Vec<u8>>)>,
    inodes: Vec<(u64, Option<Vec<u8>>)>,
    entries: Vec<((u64, String), Option<u64>)>,
    tokens: Vec<(u128, Option<Vec<u8>>)>,
    meta: Option<Vec<u8>>,
    /// Drop every stored row first (a snapshot replaces the namespace).
    replace_all: bool,
}

impl EncodedChanges {
    pub(crate) fn encode(
        changes: Changes,
        meta: NamespaceMeta,
        replace_all: bool,
    ) -> serde_json::Result<EncodedChanges> {
        let mut out = EncodedChanges {
            volumes: vec![],
            inodes: vec![],
            entries: changes.entries.into_iter().collect(),
            tokens: vec![],
            meta: None,
            replace_all,
        };
        for (k, v) in changes.volumes {
            out.volumes
                .push((k, v.map(|v| serde_json::to_vec(&v)).transpose()?));
        }
        for (k, v) in changes.inodes {
            out.inodes
                .push((k, v.map(|v| serde_json::to_vec(&v)).transpose()?));
        }
        for (k, v) in changes.tokens {
            out.tokens
                .push((k, v.map(|v| serde_json::to_vec(&v)).transpose()?));
        }
        if changes.meta_changed || replace_all {
            out.meta = Some(serde_json::to_vec(&meta)?);
        }
        Ok(out)
    }

    pub(crate) fn is_empty(&self) -> bool {
        !self.replace_all
            && self.volumes.is_empty()
            && self.inodes.is_empty()
            && self.entries.is_empty()
            && self.tokens.is_empty()
            && self.meta.is_none()
    }

    /// Writes the rows into `txn` (upsert `Some`, delete `None`).
    pub(crate) fn write(&self, txn: &WriteTransaction) -> Result<(), ConfDbError> {
        let mut volumes = txn.open_table(NS_VOLUMES)?;
        let mut inodes = txn.open_table(NS_INODES)?;
        let mut entries = txn.open_table(NS_ENTRIES)?;
        let mut tokens = txn.open_table(NS_TOKENS)?;
        if self.replace_all {
            volumes.retain(|_, _| false)?;
            inodes.retain(|_, _| false)?;
            entries.retain(|_, _| false)?;
            tokens.retain(|_, _| false)?;
        }
        for (k, v) in &self.volumes {
            match v {
                Some(v) => volumes.insert(k.as_str(), v.as_slice()).map(drop)?,
                None => volumes.remove(k.as_str()).map(drop)?,
            }
        }
        for (k, v) in &self.inodes {
            match v {
                Some(v) => inodes.insert(*k, v.as_slice()).map(drop)?,
                None => inodes.remove(*k).map(drop)?,
            }
        }
        for ((dir, name), v) in &self.entries {
            match v {
                Some(ino) => entries.insert((*dir, name.as_str()), *ino).map(drop)?,
                None => entries.remove((*dir, name.as_str())).map(drop)?,
            }
        }
        for (k, v) in &self.tokens {
            match v {
                Some(v) => tokens.insert(*k, v.as_slice()).map(drop)?,
                None => tokens.remove(*k).map(drop)?,
            }
        }
        if let Some(meta) = &self.meta {
            txn.open_table(SM_META)?.insert(META_KEY, meta.as_slice())?;
        }
        Ok(())
    }
}
