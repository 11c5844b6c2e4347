//! The node's file service (`keel_node::fileservice::NodeFiles`, the interface the
//! NFS and S3 gateways use) against an in-process cluster of 3 nodes with the storage
//! layout of `keel layout apply --replicas 2` and a volume of 64 KiB chunks: puts,
//! reads, writes at an offset (in place, across chunks, past the end, unstable then
//! committed), renames, removes, paged listings; a write racing puts; and the
//! invalidations a change made through one node produces on another.

mod common;

use anyhow::{ensure, Context};
use bytes::Bytes;
use common::*;
use keel_core::{NodeId, SetKind};
use keel_dir::{DirCommand, Replication};
use keel_fs::{FileService, FsError, Invalidation, PutOptions, Stability};
use keel_harness::{wait_for, wait_until, Cluster};
use keel_node::admin_api::AdminRequest;
use keel_node::fileservice::NodeFiles;
use keel_node::node::now_ms;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tracing::info;

const VOLUME: &str = "fs";
const CHUNK: u64 = 64 * 1024;
const IO_WITHIN: Duration = Duration::from_secs(40);

fn content(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn body(data: Vec<u8>) -> keel_fs::ByteStream {
    Box::pin(futures::stream::iter([Ok(Bytes::from(data))]))
}

/// 3 nodes, the layout, the volume; every node sees them.
async fn cluster() -> anyhow::Result<Cluster> {
    let c = Cluster::start(3).await?;
    c.admin(AdminRequest::ApplyLayout {
        replicas: Some(2),
        dry_run: false,
    })
    .await?;
    let sets: Vec<String> = c.read(|s| {
        s.sets
            .values()
            .filter(|x| x.kind == SetKind::Storage)
            .map(|x| x.id.clone())
            .collect()
    });
    for set in &sets {
        c.wait_acting(set, STEP).await?;
    }
    let via = wait_for("a leader", STEP, || c.leader()).await?;
    let node = c.node(via)?;
    c.spawn_on(via, async move {
        node.write_dir(DirCommand::CreateVolume {
            name: VOLUME.into(),
            chunk_size: Some(CHUNK),
            replication: Replication::Sync,
            at: now_ms(),
        })
        .await
    })?
    .await???;
    wait_until("every node sees the layout and the volume", STEP, || {
        c.awake().iter().all(|(_, n)| {
            n.db.read(|s| s.placement.sets().len() == 3)
                && n.db.read_dir(|ns| ns.volume(VOLUME).is_some())
        })
    })
    .await?;
    Ok(c)
}

/// The file service of node `id` (made on its process).
async fn files_of(c: &Cluster, id: NodeId) -> anyhow::Result<Arc<NodeFiles>> {
    let node = c.node(id)?;
    Ok(c.spawn_on(id, async move { NodeFiles::new(node) })?.await?)
}

/// Runs `op` on node `id`'s process with its file service.
async fn on<T, Fut>(
    c: &Cluster,
    id: NodeId,
    files: &Arc<NodeFiles>,
    op: impl FnOnce(Arc<NodeFiles>) -> Fut,
) -> anyhow::Result<T>
where
    Fut: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let task = c.spawn_on(id, op(files.clone()))?;
    tokio::time::timeout(IO_WITHIN, task)
        .await
        .context("a file operation did not end")?
        .context("the task failed")
}

async fn read_all(f: Arc<NodeFiles>, ino: u64) -> Result<Vec<u8>, FsError> {
    let mut out = Vec::new();
    loop {
        let (b, eof) = f.read(ino, out.len() as u64, 100_000).await?;
        out.extend_from_slice(&b);
        if eof {
            return Ok(out);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_through_the_node_file_service() -> anyhow::Result<()> {
    let _serial = serial().await;
    init_tracing();
    let c = cluster().await?;
    let f1 = files_of(&c, 1).await?;
    let f2 = files_of(&c, 2).await?;

    info!("--- a put through node 1, read back through node 2 with its MD5 and metadata");
    let data = content(1, 3 * CHUNK as usize + 1000);
    let mut opts = PutOptions::default();
    opts.meta.insert("content-type".into(), "text/plain".into());
    let d = data.clone();
    let a = on(&c, 1, &f1, |f| async move {
        f.put_file(VOLUME, "dir/a.bin", body(d), opts).await
    })
    .await??;
    ensure!(a.size == data.len() as u64);
    let want_md5: [u8; 16] = {
        use md5::Digest;
        md5::Md5::digest(&data).into()
    };
    ensure!(a.md5 == Some(want_md5), "md5 {:?}", a.md5);
    ensure!(a.meta.get("content-type").map(String::as_str) == Some("text/plain"));
    let ino = a.ino;
    let got = on(&c, 2, &f2, move |f| read_all(f, ino)).await??;
    ensure!(got == data, "node 2 reads other bytes");

    info!("--- writes at an offset: across a chunk boundary, then past the end (FileSync)");
    let mut model = data.clone();
    let patch = content(2, 2000);
    let at = CHUNK - 700;
    model[at as usize..at as usize + patch.len()].copy_from_slice(&patch);
    let p = Bytes::from(patch);
    let w = on(&c, 1, &f1, move |f| async move {
        f.write(ino, at, p, Stability::FileSync).await
    })
    .await??;
    ensure!(w.stability == Stability::FileSync && w.attr.md5.is_none());
    ensure!(w.attr.generation > a.generation);
    let tail = content(3, 5000);
    let far = 6 * CHUNK + 10; // leaves a hole of two chunks
    model.resize(far as usize, 0);
    model.extend_from_slice(&tail);
    let t = Bytes::from(tail);
    let w = on(&c, 1, &f1, move |f| async move {
        f.write(ino, far, t, Stability::FileSync).await
    })
    .await??;
    ensure!(w.attr.size == model.len() as u64, "size {}", w.attr.size);
    let got = on(&c, 2, &f2, move |f| read_all(f, ino)).await??;
    ensure!(got == model, "node 2 reads other bytes after the writes");

    info!("--- unstable writes: seen by a read on the same node, durable after commit");
    let un = content(4, 3000);
    model[100..3100].copy_from_slice(&un);
    let u = Bytes::from(un);
    let w = on(&c, 1, &f1, move |f| async move {
        f.write(ino, 100, u, Stability::Unstable).await
    })
    .await??;
    ensure!(w.stability == Stability::Unstable);
    let (head, _) = on(
        &c,
        1,
        &f1,
        move |f| async move { f.read(ino, 100, 3000).await },
    )
    .await??;
    ensure!(
        head[..] == model[100..3100],
        "node 1 does not see its own write"
    );
    on(&c, 1, &f1, move |f| async move { f.commit(ino).await }).await??;
    let got = on(&c, 2, &f2, move |f| read_all(f, ino)).await??;
    ensure!(got == model, "node 2 reads other bytes after the commit");

    info!("--- namespace by inode: create, mkdir, lookup, rename, readdir pages, remove");
    let root = on(&c, 2, &f2, |f| async move { f.resolve(VOLUME, "").await }).await??;
    let r = root.ino;
    for name in ["c", "b", "e"] {
        on(&c, 2, &f2, move |f| async move {
            f.create(r, name, 0o600, true).await
        })
        .await??;
    }
    let again = on(&c, 1, &f1, move |f| async move {
        f.create(r, "b", 0o600, true).await
    })
    .await?;
    ensure!(again == Err(FsError::Exists), "{again:?}");
    let sub = on(&c, 1, &f1, move |f| async move {
        f.mkdir(r, "sub", 0o700).await
    })
    .await??;
    let dir = on(&c, 1, &f1, move |f| async move {
        f.resolve(VOLUME, "dir").await
    })
    .await??;
    let (dino, sino) = (dir.ino, sub.ino);
    on(&c, 2, &f2, move |f| async move {
        f.rename(dino, "a.bin", sino, "moved").await
    })
    .await??;
    let moved = on(
        &c,
        1,
        &f1,
        move |f| async move { f.lookup(sino, "moved").await },
    )
    .await??;
    ensure!(moved.ino == ino && moved.parent == sino);
    let gone = on(
        &c,
        1,
        &f1,
        move |f| async move { f.lookup(dino, "a.bin").await },
    )
    .await?;
    ensure!(gone == Err(FsError::NotFound), "{gone:?}");
    let p1 = on(
        &c,
        1,
        &f1,
        move |f| async move { f.readdir(r, None, 2).await },
    )
    .await??;
    let names: Vec<String> = p1.entries.iter().map(|e| e.name.clone()).collect();
    ensure!(names == ["b", "c"] && p1.more, "{names:?}");
    let p2 = on(&c, 1, &f1, move |f| async move {
        f.readdir(r, Some("c"), 10).await
    })
    .await??;
    let names: Vec<String> = p2.entries.iter().map(|e| e.name.clone()).collect();
    ensure!(names == ["dir", "e", "sub"] && !p2.more, "{names:?}");
    let busy = on(&c, 1, &f1, move |f| async move { f.rmdir(r, "sub").await }).await?;
    ensure!(busy == Err(FsError::NotEmpty), "{busy:?}");
    on(
        &c,
        1,
        &f1,
        move |f| async move { f.remove(sino, "moved").await },
    )
    .await??;
    let stale = on(&c, 2, &f2, move |f| async move { f.getattr(ino).await }).await?;
    ensure!(stale == Err(FsError::Stale), "{stale:?}");
    on(&c, 1, &f1, move |f| async move { f.rmdir(r, "sub").await }).await??;
    let vol = on(&c, 1, &f1, |f| async move { f.delete_volume(VOLUME).await }).await?;
    ensure!(vol == Err(FsError::NotEmpty), "{vol:?}");

    drop((f1, f2));
    c.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_racing_puts_never_mixes_or_loses_chunks() -> anyhow::Result<()> {
    let _serial = serial().await;
    init_tracing();
    let c = cluster().await?;
    let f1 = files_of(&c, 1).await?;
    let f2 = files_of(&c, 2).await?;
    let size = 2 * CHUNK as usize;
    let first = on(&c, 1, &f1, move |f| async move {
        f.put_file(
            VOLUME,
            "race",
            body(content(10, size)),
            PutOptions::default(),
        )
        .await
    })
    .await??;
    let ino = first.ino;
    info!("--- node 1 writes at offset 0 while node 2 puts the whole file, again and again");
    let patch = vec![0xAB_u8; 1000];
    let writer = {
        let p = Bytes::from(patch.clone());
        c.spawn_on(1, {
            let f = f1.clone();
            async move {
                for _ in 0..6 {
                    f.write(ino, 0, p.clone(), Stability::FileSync).await?;
                }
                Ok::<_, FsError>(())
            }
        })?
    };
    let putter = c.spawn_on(2, {
        let f = f2.clone();
        async move {
            for i in 0..6 {
                f.put_file(
                    VOLUME,
                    "race",
                    body(content(20 + i, size)),
                    PutOptions::default(),
                )
                .await?;
            }
            Ok::<_, FsError>(())
        }
    })?;
    tokio::time::timeout(IO_WITHIN * 2, writer).await???;
    tokio::time::timeout(IO_WITHIN * 2, putter).await???;
    info!("--- the file is one put's content, with or without the patch: never a mix");
    let got = on(&c, 2, &f2, move |f| read_all(f, ino)).await??;
    ensure!(got.len() == size, "size {}", got.len());
    let whole: Vec<Vec<u8>> = (0..6).map(|i| content(20 + i, size)).collect();
    let matches = whole.iter().any(|w| {
        let mut patched = w.clone();
        patched[..1000].copy_from_slice(&patch);
        got == *w || got == patched
    });
    ensure!(matches, "the content is a mix of puts and writes");
    // A final write lands on the last put.
    let p = Bytes::from(patch.clone());
    on(&c, 1, &f1, move |f| async move {
        f.write(ino, 0, p, Stability::FileSync).await
    })
    .await??;
    let got = on(&c, 2, &f2, move |f| read_all(f, ino)).await??;
    let mut want = content(25, size);
    want[..1000].copy_from_slice(&patch);
    ensure!(got == want, "the last write is not on the last put");
    drop((f1, f2));
    c.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_through_one_node_invalidates_on_another() -> anyhow::Result<()> {
    let _serial = serial().await;
    init_tracing();
    let c = cluster().await?;
    let f1 = files_of(&c, 1).await?;
    let f3 = files_of(&c, 3).await?;
    let mut rx = f3.invalidations();
    let root = on(&c, 1, &f1, |f| async move { f.resolve(VOLUME, "").await }).await??;
    let r = root.ino;
    let made = on(&c, 1, &f1, move |f| async move {
        f.create(r, "new", 0o644, false).await
    })
    .await??;
    info!("--- node 3 hears of the new entry and the new inode");
    let (mut entries, mut inode) = (false, false);
    tokio::time::timeout(STEP, async {
        while !(entries && inode) {
            match rx.recv().await {
                Ok(Invalidation::Entries(d)) if d == r => entries = true,
                Ok(Invalidation::Inode(i)) if i == made.ino => inode = true,
                Ok(Invalidation::All) => {
                    entries = true;
                    inode = true
                }
                Ok(_) => {}
                Err(e) => anyhow::bail!("the stream ended: {e}"),
            }
        }
        Ok(())
    })
    .await
    .context("node 3 did not hear of the change in time")??;
    let seen = on(&c, 3, &f3, move |f| async move { f.lookup(r, "new").await }).await??;
    ensure!(seen.ino == made.ino);

    info!("--- a cache over node 3's service counts into node 3's metrics");
    let counters = f3.cache_counters();
    let cached = Arc::new(keel_fs::cache::Cached::with_counters(
        f3.clone(),
        // No expiry within the test: the second lookup is a hit however slow the host.
        keel_fs::cache::CacheConfig {
            staleness: Duration::from_secs(3600),
            ..Default::default()
        },
        counters,
    ));
    for _ in 0..2 {
        let cached = cached.clone();
        c.spawn_on(3, async move { cached.lookup(r, "new").await })?
            .await??;
    }
    let view = c.node(3)?.metrics.cache_view();
    ensure!(
        view.dir_hits >= 1 && view.dir_misses >= 1 && view.dir_hit_ratio > 0.0,
        "{view:?}"
    );
    drop(cached);
    drop((f1, f3));
    c.shutdown().await;
    Ok(())
}
