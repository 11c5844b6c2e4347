//! Gateway caches: [`Cached`] wraps any [`FileService`] with a data cache (file bytes
//! in blocks, read-through, under a byte budget, least recently used first out) and a
//! directory cache (attributes by inode, lookups by `(directory, name)`), and is a
//! [`FileService`] itself, so a gateway stacks it over the node's service unchanged.
//!
//! Coherence, the bound a gateway can promise ([`CacheConfig::staleness`]):
//! - A change made through this `Cached` is seen at once through it: every change
//!   drops what it touches before it returns (its own writes invalidate synchronously).
//! - A change made anywhere else is seen as soon as the invalidation for it arrives
//!   (the node emits one for every directory change its replica applies, whichever
//!   node made it); the stream is drained before every call, so nothing applied on the
//!   node before a call is served stale by it. A receiver that lagged drops everything.
//! - Whatever happens to invalidations, no attribute or lookup is served older than
//!   `staleness` (default 1 s). File bytes are cached under `(ino, generation, block)`:
//!   a generation's bytes never change, so they need no expiry, and a fresh attribute
//!   with a new generation misses them.
//! - A fetch that raced an invalidation is not inserted (an epoch counts
//!   invalidations; a fetch inserts only if none came in meanwhile).
//!
//! Owns: the cached copies and the hit/miss counters ([`Cached::stats`]). Must never:
//! cache an error or an absence (no negative entries), serve a directory listing from
//! the cache (listings pass through), or hold more file bytes than the budget.

use crate::*;
use bytes::BytesMut;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::broadcast;
use tokio::time::Instant;

/// How a [`Cached`] behaves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CacheConfig {
    /// The most file bytes held (default 256 MiB).
    pub data_budget: usize,
    /// The unit of the data cache (default 256 KiB): a read fetches whole blocks.
    pub block_size: u32,
    /// The most attributes and lookups held, each (default 100 000).
    pub max_entries: usize,
    /// The oldest an attribute or lookup may be when served (default 1 s): a change
    /// made through another gateway whose invalidation never arrived is seen within it.
    pub staleness: Duration,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            data_budget: 256 << 20,
            block_size: 256 << 10,
            max_entries: 100_000,
            staleness: Duration::from_secs(1),
        }
    }
}

/// Hits and misses so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    pub data_hits: u64,
    pub data_misses: u64,
    /// Attributes and lookups.
    pub dir_hits: u64,
    pub dir_misses: u64,
    /// File bytes held now.
    pub data_bytes: u64,
}

impl CacheStats {
    /// Hits over lookups of file blocks; 0 before the first.
    pub fn data_hit_ratio(&self) -> f64 {
        ratio(self.data_hits, self.data_misses)
    }

    /// Hits over attribute and name lookups; 0 before the first.
    pub fn dir_hit_ratio(&self) -> f64 {
        ratio(self.dir_hits, self.dir_misses)
    }
}

fn ratio(hits: u64, misses: u64) -> f64 {
    match hits + misses {
        0 => 0.0,
        n => hits as f64 / n as f64,
    }
}

/// Hit and miss counters, shareable: the caches of one node's gateways count into one
/// set, which the node exposes as metrics and in `status`.
#[derive(Debug, Default)]
pub struct CacheCounters {
    pub data_hits: AtomicU64,
    pub data_misses: AtomicU64,
    pub dir_hits: AtomicU64,
    pub dir_misses: AtomicU64,
}

impl CacheCounters {
    /// The counts now (`data_bytes` is 0: the counters do not know what is held).
    pub fn snapshot(&self) -> CacheStats {
        CacheStats {
            data_hits: self.data_hits.load(Ordering::Relaxed),
            data_misses: self.data_misses.load(Ordering::Relaxed),
            dir_hits: self.dir_hits.load(Ordering::Relaxed),
            dir_misses: self.dir_misses.load(Ordering::Relaxed),
            data_bytes: 0,
        }
    }
}

type BlockKey = (Ino, u64, u64); // (ino, generation, block)

#[derive(Default)]
struct State {
    attrs: HashMap<Ino, (Attr, Instant)>,
    lookups: BTreeMap<(Ino, String), (Ino, Instant)>,
    volumes: Option<(Vec<VolumeInfo>, Instant)>,
    blocks: BTreeMap<BlockKey, (Bytes, u64)>,
    /// LRU order of blocks: use tick → key.
    lru: BTreeMap<u64, BlockKey>,
    tick: u64,
    data_bytes: usize,
    /// Bumped on every invalidation; a fetch inserts only if it did not move.
    epoch: u64,
}

impl State {
    fn drop_inode(&mut self, ino: Ino) {
        self.attrs.remove(&ino);
        let keys: Vec<BlockKey> = self
            .blocks
            .range((ino, 0, 0)..=(ino, u64::MAX, u64::MAX))
            .map(|(k, _)| *k)
            .collect();
        for k in keys {
            self.drop_block(k);
        }
    }

    fn drop_entries(&mut self, dir: Ino) {
        let keys: Vec<(Ino, String)> = self
            .lookups
            .range((dir, String::new())..)
            .take_while(|((d, _), _)| *d == dir)
            .map(|(k, _)| k.clone())
            .collect();
        for k in keys {
            self.lookups.remove(&k);
        }
    }

    fn drop_block(&mut self, k: BlockKey) {
        if let Some((b, tick)) = self.blocks.remove(&k) {
            self.lru.remove(&tick);
            self.data_bytes -= b.len();
        }
    }

    fn clear(&mut self) {
        let epoch = self.epoch;
        let tick = self.tick;
        *self = State::default();
        self.epoch = epoch;
        self.tick = tick;
    }

    fn apply(&mut self, inv: &Invalidation) {
        self.epoch += 1;
        match inv {
            Invalidation::Inode(ino) => self.drop_inode(*ino),
            Invalidation::Entries(dir) => self.drop_entries(*dir),
            // Roots and their lookups: drop them all (volume changes are rare).
            Invalidation::Volume(_) | Invalidation::All => self.clear(),
        }
    }
}

/// A [`FileService`] with data and directory caches in front of `F`.
pub struct Cached<F: FileService> {
    inner: Arc<F>,
    cfg: CacheConfig,
    state: Mutex<State>,
    rx: Mutex<broadcast::Receiver<Invalidation>>,
    counters: Arc<CacheCounters>,
}

impl<F: FileService> Cached<F> {
    pub fn new(inner: Arc<F>, cfg: CacheConfig) -> Cached<F> {
        Cached::with_counters(inner, cfg, Arc::default())
    }

    /// A cache that counts its hits and misses into `counters` (shared with others).
    pub fn with_counters(
        inner: Arc<F>,
        cfg: CacheConfig,
        counters: Arc<CacheCounters>,
    ) -> Cached<F> {
        let rx = inner.invalidations();
        Cached {
            inner,
            cfg: CacheConfig {
                block_size: cfg.block_size.max(1),
                ..cfg
            },
            state: Mutex::new(State::default()),
            rx: Mutex::new(rx),
            counters,
        }
    }

    /// The service underneath.
    pub fn inner(&self) -> &Arc<F> {
        &self.inner
    }

    /// Hits and misses (of every cache sharing its counters) and the bytes it holds.
    pub fn stats(&self) -> CacheStats {
        CacheStats {
            data_bytes: self.state().data_bytes as u64,
            ..self.counters.snapshot()
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Applies every invalidation that has arrived; returns the state, locked.
    fn synced(&self) -> std::sync::MutexGuard<'_, State> {
        let mut rx = self.rx.lock().unwrap_or_else(|p| p.into_inner());
        let mut state = self.state();
        loop {
            match rx.try_recv() {
                Ok(inv) => state.apply(&inv),
                Err(broadcast::error::TryRecvError::Lagged(_)) => state.apply(&Invalidation::All),
                Err(_) => break,
            }
        }
        state
    }

    fn fresh(&self, at: Instant) -> bool {
        at.elapsed() <= self.cfg.staleness
    }

    /// Forgets what a change through this cache touched, before it answers.
    fn forget(&self, invs: &[Invalidation]) {
        let mut state = self.synced();
        for inv in invs {
            state.apply(inv);
        }
    }

    fn put_attr(&self, attr: &Attr, epoch: u64) {
        let mut state = self.synced();
        if state.epoch != epoch {
            return;
        }
        if state.attrs.len() >= self.cfg.max_entries {
            state.attrs.clear();
        }
        state.attrs.insert(attr.ino, (attr.clone(), Instant::now()));
    }

    async fn cached_getattr(&self, ino: Ino) -> FsResult<Attr> {
        let epoch = {
            let state = self.synced();
            if let Some((a, at)) = state.attrs.get(&ino) {
                if self.fresh(*at) {
                    self.counters.dir_hits.fetch_add(1, Ordering::Relaxed);
                    return Ok(a.clone());
                }
            }
            state.epoch
        };
        self.counters.dir_misses.fetch_add(1, Ordering::Relaxed);
        let attr = self.inner.getattr(ino).await?;
        self.put_attr(&attr, epoch);
        Ok(attr)
    }

    async fn cached_lookup(&self, dir: Ino, name: &str) -> FsResult<Attr> {
        if name == "." || name == ".." {
            return self.inner.lookup(dir, name).await;
        }
        let epoch = {
            let state = self.synced();
            let key = (dir, name.to_string());
            if let Some((ino, at)) = state.lookups.get(&key) {
                if let Some((a, a_at)) = state.attrs.get(ino) {
                    if self.fresh(*at) && self.fresh(*a_at) {
                        self.counters.dir_hits.fetch_add(1, Ordering::Relaxed);
                        return Ok(a.clone());
                    }
                }
            }
            state.epoch
        };
        self.counters.dir_misses.fetch_add(1, Ordering::Relaxed);
        let attr = self.inner.lookup(dir, name).await?;
        let mut state = self.synced();
        if state.epoch == epoch {
            if state.lookups.len() >= self.cfg.max_entries {
                state.lookups.clear();
            }
            if state.attrs.len() >= self.cfg.max_entries {
                state.attrs.clear();
            }
            let now = Instant::now();
            state
                .lookups
                .insert((dir, name.to_string()), (attr.ino, now));
            state.attrs.insert(attr.ino, (attr.clone(), now));
        }
        Ok(attr)
    }

    /// One block of a file's generation, from the cache or the service.
    async fn block(&self, attr: &Attr, index: u64) -> FsResult<Bytes> {
        let key = (attr.ino, attr.generation, index);
        let epoch = {
            let mut state = self.synced();
            state.tick += 1;
            let tick = state.tick;
            if let Some((b, old)) = state.blocks.get_mut(&key) {
                let (b, old_tick) = (b.clone(), *old);
                state.blocks.get_mut(&key).expect("present").1 = tick;
                state.lru.remove(&old_tick);
                state.lru.insert(tick, key);
                self.counters.data_hits.fetch_add(1, Ordering::Relaxed);
                return Ok(b);
            }
            state.epoch
        };
        self.counters.data_misses.fetch_add(1, Ordering::Relaxed);
        let bs = self.cfg.block_size as u64;
        let start = index * bs;
        let want = bs.min(attr.size.saturating_sub(start));
        let (data, _) = self.inner.read(attr.ino, start, want as u32).await?;
        if data.len() as u64 != want {
            // The file changed under the attributes we hold: serve, do not cache.
            return Ok(data);
        }
        let mut state = self.synced();
        if state.epoch == epoch && data.len() <= self.cfg.data_budget {
            state.tick += 1;
            let tick = state.tick;
            state.data_bytes += data.len();
            state.blocks.insert(key, (data.clone(), tick));
            state.lru.insert(tick, key);
            while state.data_bytes > self.cfg.data_budget {
                let Some((_, oldest)) = state.lru.pop_first() else {
                    break;
                };
                if let Some((b, _)) = state.blocks.remove(&oldest) {
                    state.data_bytes -= b.len();
                }
            }
        }
        Ok(data)
    }
}

#[async_trait]
impl<F: FileService> FileService for Cached<F> {
    async fn volumes(&self) -> FsResult<Vec<VolumeInfo>> {
        let epoch = {
            let state = self.synced();
            if let Some((v, at)) = &state.volumes {
                if self.fresh(*at) {
                    self.counters.dir_hits.fetch_add(1, Ordering::Relaxed);
                    return Ok(v.clone());
                }
            }
            state.epoch
        };
        self.counters.dir_misses.fetch_add(1, Ordering::Relaxed);
        let list = self.inner.volumes().await?;
        let mut state = self.synced();
        if state.epoch == epoch {
            state.volumes = Some((list.clone(), Instant::now()));
        }
        Ok(list)
    }

    async fn create_volume(&self, name: &str) -> FsResult<VolumeInfo> {
        let v = self.inner.create_volume(name).await?;
        self.forget(&[Invalidation::Volume(name.to_string())]);
        Ok(v)
    }

    async fn delete_volume(&self, name: &str) -> FsResult<()> {
        self.inner.delete_volume(name).await?;
        self.forget(&[Invalidation::Volume(name.to_string())]);
        Ok(())
    }

    async fn getattr(&self, ino: Ino) -> FsResult<Attr> {
        self.cached_getattr(ino).await
    }

    async fn lookup(&self, dir: Ino, name: &str) -> FsResult<Attr> {
        self.cached_lookup(dir, name).await
    }

    async fn resolve(&self, volume: &str, path: &str) -> FsResult<Attr> {
        // The root from the service, then each name through the lookup cache.
        let names: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
        let Some((last, dirs)) = names.split_last() else {
            return self.inner.resolve(volume, path).await;
        };
        let root = self
            .volumes()
            .await?
            .into_iter()
            .find(|v| v.name == volume)
            .ok_or_else(|| FsError::NoVolume(volume.to_string()))?
            .root;
        let mut at = root;
        for d in dirs {
            let a = self.cached_lookup(at, d).await?;
            if !a.is_dir() {
                return Err(FsError::NotDir);
            }
            at = a.ino;
        }
        self.cached_lookup(at, last).await
    }

    async fn setattr(&self, ino: Ino, change: SetAttr) -> FsResult<Attr> {
        let r = self.inner.setattr(ino, change).await;
        self.forget(&[Invalidation::Inode(ino)]);
        r
    }

    async fn read(&self, ino: Ino, offset: u64, len: u32) -> FsResult<(Bytes, bool)> {
        let attr = self.cached_getattr(ino).await?;
        if attr.is_dir() {
            return Err(FsError::IsDir);
        }
        let end = offset.saturating_add(len as u64).min(attr.size);
        if offset >= end {
            return Ok((Bytes::new(), true));
        }
        let bs = self.cfg.block_size as u64;
        let mut out = BytesMut::with_capacity((end - offset) as usize);
        let mut at = offset;
        while at < end {
            let index = at / bs;
            let block = self.block(&attr, index).await?;
            let within = (at - index * bs) as usize;
            if within >= block.len() {
                // Shorter than the attributes said: the file changed; ask the service.
                return self.inner.read(ino, offset, len).await;
            }
            let take = ((end - at) as usize).min(block.len() - within);
            out.extend_from_slice(&block[within..within + take]);
            at += take as u64;
        }
        Ok((out.freeze(), end == attr.size))
    }

    async fn write(
        &self,
        ino: Ino,
        offset: u64,
        data: Bytes,
        stability: Stability,
    ) -> FsResult<WriteDone> {
        let r = self.inner.write(ino, offset, data, stability).await;
        self.forget(&[Invalidation::Inode(ino)]);
        r
    }

    async fn commit(&self, ino: Ino) -> FsResult<()> {
        let r = self.inner.commit(ino).await;
        self.forget(&[Invalidation::Inode(ino)]);
        r
    }

    fn write_verifier(&self) -> [u8; 8] {
        self.inner.write_verifier()
    }

    async fn put_file(
        &self,
        volume: &str,
        path: &str,
        body: ByteStream,
        opts: PutOptions,
    ) -> FsResult<Attr> {
        let attr = self.inner.put_file(volume, path, body, opts).await?;
        self.forget(&[
            Invalidation::Inode(attr.ino),
            Invalidation::Entries(attr.parent),
        ]);
        Ok(attr)
    }

    async fn create(&self, dir: Ino, name: &str, mode: u32, exclusive: bool) -> FsResult<Attr> {
        let r = self.inner.create(dir, name, mode, exclusive).await;
        self.forget(&[Invalidation::Entries(dir), Invalidation::Inode(dir)]);
        r
    }

    async fn mkdir(&self, dir: Ino, name: &str, mode: u32) -> FsResult<Attr> {
        let r = self.inner.mkdir(dir, name, mode).await;
        self.forget(&[Invalidation::Entries(dir), Invalidation::Inode(dir)]);
        r
    }

    async fn remove(&self, dir: Ino, name: &str) -> FsResult<()> {
        let gone = self
            .synced()
            .lookups
            .get(&(dir, name.to_string()))
            .map(|e| e.0);
        let r = self.inner.remove(dir, name).await;
        let mut invs = vec![Invalidation::Entries(dir), Invalidation::Inode(dir)];
        invs.extend(gone.map(Invalidation::Inode));
        self.forget(&invs);
        r
    }

    async fn rmdir(&self, dir: Ino, name: &str) -> FsResult<()> {
        let gone = self
            .synced()
            .lookups
            .get(&(dir, name.to_string()))
            .map(|e| e.0);
        let r = self.inner.rmdir(dir, name).await;
        let mut invs = vec![Invalidation::Entries(dir), Invalidation::Inode(dir)];
        invs.extend(gone.map(Invalidation::Inode));
        self.forget(&invs);
        r
    }

    async fn rename(&self, from_dir: Ino, from: &str, to_dir: Ino, to: &str) -> FsResult<()> {
        let (moved, replaced) = {
            let s = self.synced();
            (
                s.lookups.get(&(from_dir, from.to_string())).map(|e| e.0),
                s.lookups.get(&(to_dir, to.to_string())).map(|e| e.0),
            )
        };
        let r = self.inner.rename(from_dir, from, to_dir, to).await;
        let mut invs = vec![
            Invalidation::Entries(from_dir),
            Invalidation::Entries(to_dir),
            Invalidation::Inode(from_dir),
            Invalidation::Inode(to_dir),
        ];
        invs.extend(moved.map(Invalidation::Inode));
        invs.extend(replaced.map(Invalidation::Inode));
        self.forget(&invs);
        r
    }

    async fn readdir(&self, dir: Ino, after: Option<&str>, limit: usize) -> FsResult<Page> {
        self.inner.readdir(dir, after, limit).await
    }

    fn invalidations(&self) -> broadcast::Receiver<Invalidation> {
        self.inner.invalidations()
    }

    fn access_key(&self, id: &str) -> Option<AccessKey> {
        self.inner.access_key(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mem::MemFs;

    fn body(b: Vec<u8>) -> ByteStream {
        Box::pin(futures::stream::iter(vec![Ok(Bytes::from(b))]))
    }

    fn small() -> CacheConfig {
        CacheConfig {
            data_budget: 64,
            block_size: 16,
            ..CacheConfig::default()
        }
    }

    #[tokio::test]
    async fn reads_are_served_from_the_cache_after_the_first() {
        let fs = Arc::new(MemFs::new());
        fs.create_volume("v").await.unwrap();
        let data: Vec<u8> = (0..40u8).collect();
        let a = fs
            .put_file("v", "f", body(data.clone()), PutOptions::default())
            .await
            .unwrap();
        let c = Cached::new(fs.clone(), small());
        let (b, eof) = c.read(a.ino, 10, 20).await.unwrap();
        assert_eq!((&b[..], eof), (&data[10..30], false));
        let misses = c.stats().data_misses;
        assert_eq!(misses, 2, "blocks 0 and 1");
        let (b, eof) = c.read(a.ino, 12, 100).await.unwrap();
        assert_eq!((&b[..], eof), (&data[12..], true));
        let s = c.stats();
        assert_eq!((s.data_hits, s.data_misses), (2, 3));
        assert!(s.data_hit_ratio() > 0.3 && s.dir_hit_ratio() > 0.0);
    }

    #[tokio::test]
    async fn the_byte_budget_evicts_the_least_recently_used() {
        let fs = Arc::new(MemFs::new());
        fs.create_volume("v").await.unwrap();
        let a = fs
            .put_file("v", "f", body(vec![7; 160]), PutOptions::default())
            .await
            .unwrap();
        let c = Cached::new(fs.clone(), small());
        for i in 0..10 {
            c.read(a.ino, i * 16, 16).await.unwrap();
            assert!(c.stats().data_bytes <= 64);
        }
        // Block 9 was used last: still there; block 0 was evicted.
        let before = c.stats();
        c.read(a.ino, 9 * 16, 16).await.unwrap();
        c.read(a.ino, 0, 16).await.unwrap();
        let after = c.stats();
        assert_eq!(after.data_hits - before.data_hits, 1);
        assert_eq!(after.data_misses - before.data_misses, 1);
    }

    #[tokio::test]
    async fn a_change_through_one_cache_is_seen_through_another() {
        let fs = Arc::new(MemFs::new());
        let v = fs.create_volume("v").await.unwrap();
        fs.put_file(
            "v",
            "d/f",
            body(b"old content".to_vec()),
            PutOptions::default(),
        )
        .await
        .unwrap();
        let one = Cached::new(fs.clone(), CacheConfig::default());
        let two = Cached::new(fs.clone(), CacheConfig::default());
        let f = two.resolve("v", "d/f").await.unwrap();
        assert_eq!(
            &two.read(f.ino, 0, 100).await.unwrap().0[..],
            b"old content"
        );
        // Warm: served from two's caches now.
        assert_eq!(two.resolve("v", "d/f").await.unwrap().size, 11);

        // Content: a write through one.
        one.write(f.ino, 0, Bytes::from_static(b"NEW"), Stability::FileSync)
            .await
            .unwrap();
        assert_eq!(
            &one.read(f.ino, 0, 100).await.unwrap().0[..],
            b"NEW content"
        );
        assert_eq!(
            &two.read(f.ino, 0, 100).await.unwrap().0[..],
            b"NEW content"
        );

        // Names: a rename and a remove through one.
        let d = one.resolve("v", "d").await.unwrap();
        one.rename(d.ino, "f", v.root, "g").await.unwrap();
        assert_eq!(two.resolve("v", "d/f").await, Err(FsError::NotFound));
        assert_eq!(two.lookup(v.root, "g").await.unwrap().ino, f.ino);
        one.remove(v.root, "g").await.unwrap();
        assert_eq!(two.lookup(v.root, "g").await, Err(FsError::NotFound));
        assert_eq!(two.getattr(f.ino).await, Err(FsError::Stale));

        // A put replacing a file two has cached.
        let p = one
            .put_file("v", "d/h", body(b"first".to_vec()), PutOptions::default())
            .await
            .unwrap();
        assert_eq!(&two.read(p.ino, 0, 10).await.unwrap().0[..], b"first");
        one.put_file("v", "d/h", body(b"second!".to_vec()), PutOptions::default())
            .await
            .unwrap();
        assert_eq!(&two.read(p.ino, 0, 10).await.unwrap().0[..], b"second!");
    }

    #[tokio::test]
    async fn a_lagged_stream_drops_everything() {
        let fs = Arc::new(MemFs::new());
        let v = fs.create_volume("v").await.unwrap();
        let f = fs.create(v.root, "f", 0o644, false).await.unwrap();
        let c = Cached::new(fs.clone(), CacheConfig::default());
        c.getattr(f.ino).await.unwrap();
        // More changes than the stream holds, the last one to f.
        for i in 0..1100 {
            fs.create(v.root, &format!("x{i}"), 0o644, false)
                .await
                .unwrap();
        }
        fs.setattr(
            f.ino,
            SetAttr {
                mode: Some(0o600),
                ..SetAttr::default()
            },
        )
        .await
        .unwrap();
        assert_eq!(c.getattr(f.ino).await.unwrap().mode, 0o600);
    }

    #[tokio::test(start_paused = true)]
    async fn nothing_is_served_older_than_the_staleness_bound() {
        let fs = Arc::new(MemFs::new());
        let v = fs.create_volume("v").await.unwrap();
        let f = fs.create(v.root, "f", 0o644, false).await.unwrap();
        let c = Cached::new(fs.clone(), CacheConfig::default());
        c.getattr(f.ino).await.unwrap();
        c.getattr(f.ino).await.unwrap();
        assert_eq!(c.stats().dir_hits, 1);
        tokio::time::advance(Duration::from_millis(1001)).await;
        c.getattr(f.ino).await.unwrap();
        assert_eq!(
            c.stats().dir_misses,
            2,
            "an entry past the bound is fetched again"
        );
    }
}
