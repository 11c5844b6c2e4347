//! Files: a file is cut into chunks of its volume's chunk size; each chunk is a new
//! object (a fresh random id) written through the locator to its storage set's
//! Primary; once every chunk is durable the file's chunk list is committed in the
//! directory in one Raft write, which makes a put atomic (readers see the old or the
//! new content, never a mix). Objects the new content no longer uses are deleted
//! after the commit.
//!
//! Memory: a put streams its body. It holds the chunk it is filling (at most the chunk
//! size plus one body frame) and the chunks whose writes are under way (at most
//! [`PARALLEL_CHUNKS`]), so at most `(PARALLEL_CHUNKS + 1) × chunk size + one frame`
//! per put whatever the file's size (the chunk size is at most
//! [`keel_dir::MAX_CHUNK_SIZE`]).
//!
//! Must never: commit a chunk list before every chunk is acknowledged, or delete an
//! object a committed file still references.

use crate::locator;
use crate::node::{now_ms, NodeShared};
use crate::storage::wire::{Durability, WriteOp};
use crate::storage::DataError;
use bytes::{Bytes, BytesMut};
use futures::{Stream, StreamExt};
use keel_core::ObjectId;
use keel_dir::{ChunkRef, DirCommand, DirReply, Inode, Replication};
use std::sync::Arc;

/// The volume files go to when the caller names none.
pub const DEFAULT_VOLUME: &str = "default";
/// Chunks written at once per put (and so held in memory at once, with the one being
/// filled).
pub const PARALLEL_CHUNKS: usize = 4;
/// A put must commit within this long of its start, or it is refused: the orphan
/// sweep collects unreferenced objects older than twice this
/// ([`crate::storage::sweep::GRACE`]), so no chunk of a put still under way is taken.
pub const PUT_DEADLINE: std::time::Duration = std::time::Duration::from_secs(12 * 3600);

/// Refuses writes while the control plane is out of reach: neither the directory
/// commit nor a Primary's lease could be had.
pub fn require_control_plane(node: &NodeShared, what: &str) -> Result<(), DataError> {
    if !node.control_plane_fresh() {
        return Err(DataError::NoControlPlane {
            what: what.to_string(),
        });
    }
    Ok(())
}

/// Creates the default volume on first use; any other volume must exist.
pub async fn ensure_volume(node: &Arc<NodeShared>, name: &str) -> Result<(), DataError> {
    if node.db.read_dir(|ns| ns.volume(name).is_none()) {
        if name != DEFAULT_VOLUME {
            return Err(keel_dir::DirError::NoVolume {
                volume: name.to_string(),
            }
            .into());
        }
        node.write_dir(DirCommand::CreateVolume {
            name: name.to_string(),
            chunk_size: None,
            replication: Replication::Sync,
            at: now_ms(),
        })
        .await??;
    }
    Ok(())
}

/// The volume's chunk size and durability, creating the default volume on first use.
async fn volume(node: &Arc<NodeShared>, name: &str) -> Result<(u64, Durability), DataError> {
    ensure_volume(node, name).await?;
    node.db.read_dir(|ns| {
        let v = ns
            .volume(name)
            .ok_or_else(|| keel_dir::DirError::NoVolume {
                volume: name.to_string(),
            })?;
        if v.chunk_size > keel_dir::MAX_CHUNK_SIZE {
            // A volume made by an older version, when chunks could be 1 GiB: no store
            // or RPC takes such a chunk, so refuse before reading the body.
            return Err(DataError::BadRequest {
                reason: format!(
                    "volume {name:?} has {}-byte chunks, over the {}-byte limit; copy its files to a new volume",
                    v.chunk_size,
                    keel_dir::MAX_CHUNK_SIZE
                ),
            });
        }
        let durability = match v.replication {
            Replication::Sync => Durability::AllInSync,
            Replication::Async => Durability::LocalSite,
        };
        Ok((v.chunk_size, durability))
    })
}

/// Writes a file from a stream of bytes; returns the committed inode.
pub async fn put<S, E>(
    node: &Arc<NodeShared>,
    volume_name: &str,
    path: &str,
    body: S,
    token: Option<u128>,
    mode: u32,
) -> Result<Inode, DataError>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    let args = PutArgs {
        token,
        mode,
        ..PutArgs::default()
    };
    put_with(node, volume_name, path, body, args).await
}

/// What a put stores besides the bytes.
#[derive(Clone, Debug, Default)]
pub struct PutArgs {
    /// An idempotency token: a retried put with the same token is applied once.
    pub token: Option<u128>,
    /// Mode, owner and group of a new file (an existing file keeps its own).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// User metadata stored with the file ([`Inode::meta`]), replacing what it had.
    pub meta: std::collections::BTreeMap<String, String>,
}

/// Writes a file from a stream of bytes, computing its MD5 on the way, and commits
/// it with its MD5 and `args.meta`; returns the committed inode. The one put path of
/// the node: the native API ([`put`]) and the gateways' file service
/// ([`crate::fileservice::NodeFiles`]) both go through it.
pub async fn put_with<S, E>(
    node: &Arc<NodeShared>,
    volume_name: &str,
    path: &str,
    mut body: S,
    args: PutArgs,
) -> Result<Inode, DataError>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    use md5::Digest;
    let PutArgs {
        token,
        mode,
        uid,
        gid,
        meta,
    } = args;
    let mut md5 = md5::Md5::new();
    keel_dir::parse_path(path)?;
    // The volume and parent checks below read the local replica: bring it up to date
    // first (a member that cannot refuses, and the client asks another).
    super::api::barrier_for_change(node, &format!("writing {path:?}")).await?;
    let started = std::time::Instant::now();
    let (chunk_size, durability) = volume(node, volume_name).await?;
    let mut chunks: Vec<ChunkRef> = vec![];
    let mut size = 0u64;
    let mut pending = futures::stream::FuturesOrdered::new();
    let mut buf = BytesMut::new();
    let mut ended = false;
    let result: Result<(), DataError> = async {
        loop {
            while !ended && buf.len() < chunk_size as usize {
                match body.next().await {
                    Some(Ok(b)) => {
                        md5.update(&b);
                        buf.extend_from_slice(&b)
                    }
                    Some(Err(e)) => {
                        return Err(DataError::BadRequest {
                            reason: format!("the upload broke off: {e}"),
                        })
                    }
                    None => ended = true,
                }
            }
            let take = buf.len().min(chunk_size as usize);
            if take > 0 {
                let data = buf.split_to(take).freeze();
                size += data.len() as u64;
                let id = ObjectId::random();
                let len = data.len() as u64;
                let node = node.clone();
                pending.push_back(async move {
                    locator::write(&node, id, WriteOp::Put(data), durability)
                        .await
                        .map(|_| ChunkRef { object: id, len })
                });
            }
            if pending.len() >= PARALLEL_CHUNKS || (ended && buf.is_empty()) {
                match pending.next().await {
                    Some(r) => chunks.push(r?),
                    None => return Ok(()),
                }
            }
        }
    }
    .await;
    if let Err(e) = result {
        // Let chunks already under way finish, then drop every chunk of this put.
        while let Some(r) = pending.next().await {
            if let Ok(c) = r {
                chunks.push(c);
            }
        }
        delete_objects(node, chunks.iter().map(|c| c.object).collect());
        return Err(e);
    }
    let ours: Vec<ObjectId> = chunks.iter().map(|c| c.object).collect();
    if started.elapsed() > PUT_DEADLINE {
        delete_objects(node, ours);
        return Err(DataError::BadRequest {
            reason: format!(
                "the upload took longer than {} hours: split the file",
                PUT_DEADLINE.as_secs() / 3600
            ),
        });
    }
    let reply = node
        .write_dir(DirCommand::PutFile {
            volume: volume_name.to_string(),
            path: path.to_string(),
            size,
            chunks,
            mode,
            uid,
            gid,
            create_parents: true,
            at: now_ms(),
            token,
            md5: Some(md5.finalize().into()),
            meta,
        })
        .await;
    match reply {
        Ok(Ok(DirReply::Freed {
            inode: Some(inode),
            freed,
        })) => {
            // A retried put whose first try committed: our new chunks are not used.
            let unused: Vec<ObjectId> = ours
                .into_iter()
                .filter(|o| !inode.chunks.iter().any(|c| c.object == *o))
                .collect();
            delete_objects(node, freed.into_iter().chain(unused).collect());
            Ok(inode)
        }
        Ok(Ok(other)) => Err(DataError::Internal {
            reason: format!("unexpected directory reply {other:?}"),
        }),
        Ok(Err(e)) => {
            delete_objects(node, ours);
            Err(e.into())
        }
        // The commit's fate is unknown (the leader may have applied it): keep the
        // chunks; a retry with the same token finds out.
        Err(e) => Err(e),
    }
}

/// Deletes objects no file references any more, in the background.
pub fn delete_objects(node: &Arc<NodeShared>, ids: Vec<ObjectId>) {
    if ids.is_empty() {
        return;
    }
    let node = node.clone();
    tokio::spawn(async move {
        for id in ids {
            if let Err(e) = locator::write(&node, id, WriteOp::Delete, Durability::AllInSync).await
            {
                tracing::warn!(%id, "could not delete an unused object: {e}");
            }
        }
    });
}

/// Where a range of a file lives: `(chunk, offset in chunk, length)` pieces; a
/// `None` chunk is a hole (zeros). `chunk_size` must not be 0 (a volume's is 4 KiB or
/// more).
pub fn pieces(
    inode: &Inode,
    chunk_size: u64,
    start: u64,
    end: u64,
) -> Vec<(Option<ChunkRef>, u64, u64)> {
    let mut out = vec![];
    let mut at = start;
    while at < end {
        let i = (at / chunk_size) as usize;
        let within = at % chunk_size;
        // Saturating: a sparse file may claim a size near u64::MAX.
        let chunk_end = (at / chunk_size)
            .saturating_add(1)
            .saturating_mul(chunk_size)
            .min(end);
        let want = chunk_end - at;
        match inode.chunks.get(i) {
            Some(c) if within < c.len => {
                let n = want.min(c.len - within);
                out.push((Some(*c), within, n));
                at += n;
            }
            _ => {
                // Past this chunk's data (a sparse tail): zeros to the chunk's end.
                out.push((None, 0, want));
                at += want;
            }
        }
    }
    out
}

/// Reads `[start, end)` of a file as a stream of byte pieces, chunk by chunk.
pub fn read_range(
    node: Arc<NodeShared>,
    inode: Inode,
    chunk_size: u64,
    start: u64,
    end: u64,
) -> impl Stream<Item = Result<Bytes, DataError>> {
    let pieces = pieces(&inode, chunk_size, start, end);
    futures::stream::iter(pieces).then(move |(chunk, offset, len)| {
        let node = node.clone();
        async move {
            match chunk {
                None => Ok(Bytes::from(vec![0u8; len as usize])),
                Some(c) => {
                    let (data, _, _) = locator::read(&node, c.object, offset, len).await?;
                    if (data.len() as u64) < len {
                        return Err(DataError::Internal {
                            reason: format!(
                                "object {} is shorter than the directory says ({} < {len} bytes at {offset})",
                                c.object,
                                data.len()
                            ),
                        });
                    }
                    Ok(Bytes::from(data))
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inode(lens: &[u64]) -> Inode {
        let mut i: Inode = serde_json::from_value(serde_json::json!({
            "ino": 5, "kind": "file", "size": 0, "mode": 420, "uid": 0, "gid": 0,
            "atime": 0, "mtime": 0, "ctime": 0, "nlink": 1, "parent": 1,
            "chunks": [], "generation": 1
        }))
        .expect("inode");
        i.chunks = lens
            .iter()
            .map(|l| ChunkRef {
                object: ObjectId(*l as u128),
                len: *l,
            })
            .collect();
        i.size = lens.iter().sum();
        i
    }

    #[test]
    fn pieces_cross_chunk_boundaries() {
        let f = inode(&[10, 10, 5]);
        let p = pieces(&f, 10, 8, 23);
        let shape: Vec<(bool, u64, u64)> =
            p.iter().map(|(c, o, l)| (c.is_some(), *o, *l)).collect();
        assert_eq!(shape, vec![(true, 8, 2), (true, 0, 10), (true, 0, 3)]);
    }

    #[test]
    fn a_sparse_tail_reads_as_zeros() {
        let f = inode(&[10, 4]);
        let p = pieces(&f, 10, 12, 20);
        let shape: Vec<(bool, u64, u64)> =
            p.iter().map(|(c, o, l)| (c.is_some(), *o, *l)).collect();
        assert_eq!(shape, vec![(true, 2, 2), (false, 0, 6)]);
    }

    #[test]
    fn pieces_near_the_largest_size_do_not_overflow() {
        let mut f = inode(&[10]);
        f.size = u64::MAX;
        let p = pieces(&f, 10, u64::MAX - 15, u64::MAX);
        let total: u64 = p.iter().map(|(_, _, l)| *l).sum();
        assert_eq!(total, 15);
        assert!(p.iter().all(|(c, _, _)| c.is_none()));
    }
}
