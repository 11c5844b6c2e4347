//! An in-memory [`FileService`]: the reference semantics of the interface, for
//! gateway unit tests and fuzzing without a cluster.
//!
//! Owns: nothing durable. Must never: be used by a node to serve data (it forgets
//! everything when dropped; its unstable writes are as durable as its stable ones).

use crate::*;
use md5::{Digest, Md5};
use std::collections::HashMap;
use std::sync::Mutex;

struct Node {
    attr: Attr,
    /// Directories: name → inode.
    children: BTreeMap<String, Ino>,
    /// Files: the content.
    data: Vec<u8>,
}

struct State {
    volumes: BTreeMap<String, VolumeInfo>,
    nodes: HashMap<Ino, Node>,
    next_ino: Ino,
    clock: UnixMillis,
}

/// The in-memory file service. Cheap to create; clone an `Arc` of it to share.
pub struct MemFs {
    state: Mutex<State>,
    keys: Mutex<HashMap<String, AccessKey>>,
    events: tokio::sync::broadcast::Sender<Invalidation>,
    verifier: [u8; 8],
}

impl Default for MemFs {
    fn default() -> Self {
        MemFs::new()
    }
}

fn check_name(name: &str) -> FsResult<()> {
    if name.is_empty() || name == "." || name == ".." || name.contains('/') || name.contains('\0') {
        return Err(FsError::InvalidName(format!("{name:?}")));
    }
    if name.len() > 255 {
        return Err(FsError::InvalidName("longer than 255 bytes".into()));
    }
    Ok(())
}

impl MemFs {
    pub fn new() -> MemFs {
        MemFs {
            state: Mutex::new(State {
                volumes: BTreeMap::new(),
                nodes: HashMap::new(),
                next_ino: 1,
                clock: 1_700_000_000_000,
            }),
            keys: Mutex::new(HashMap::new()),
            events: tokio::sync::broadcast::channel(1024).0,
            verifier: *b"memfs\0\0\x01",
        }
    }

    /// Makes an access key known (what `keel key create` does on a cluster).
    pub fn add_key(&self, key: AccessKey) {
        self.keys.lock().unwrap().insert(key.id.clone(), key);
    }

    fn emit(&self, inv: Invalidation) {
        let _ = self.events.send(inv);
    }

    fn with<T>(&self, f: impl FnOnce(&mut State) -> FsResult<T>) -> FsResult<T> {
        let mut s = self.state.lock().unwrap();
        s.clock += 1;
        f(&mut s)
    }
}

impl State {
    fn node(&self, ino: Ino) -> FsResult<&Node> {
        self.nodes.get(&ino).ok_or(FsError::Stale)
    }

    fn node_mut(&mut self, ino: Ino) -> FsResult<&mut Node> {
        self.nodes.get_mut(&ino).ok_or(FsError::Stale)
    }

    fn dir(&self, ino: Ino) -> FsResult<&Node> {
        let n = self.node(ino)?;
        if !n.attr.is_dir() {
            return Err(FsError::NotDir);
        }
        Ok(n)
    }

    fn child(&self, dir: Ino, name: &str) -> FsResult<Ino> {
        self.dir(dir)?
            .children
            .get(name)
            .copied()
            .ok_or(FsError::NotFound)
    }

    fn new_node(&mut self, kind: Kind, parent: Ino, volume_root: Ino, mode: u32) -> Ino {
        let ino = self.next_ino;
        self.next_ino += 1;
        let at = self.clock;
        let attr = Attr {
            ino,
            volume_root: if volume_root == 0 { ino } else { volume_root },
            kind,
            size: 0,
            mode: mode & 0o7777,
            uid: 0,
            gid: 0,
            nlink: if kind == Kind::Dir { 2 } else { 1 },
            atime: at,
            mtime: at,
            ctime: at,
            parent: if parent == 0 { ino } else { parent },
            generation: if kind == Kind::File { 1 } else { 0 },
            md5: None,
            meta: BTreeMap::new(),
        };
        self.nodes.insert(
            ino,
            Node {
                attr,
                children: BTreeMap::new(),
                data: Vec::new(),
            },
        );
        ino
    }

    fn touch_dir(&mut self, dir: Ino) {
        let at = self.clock;
        if let Some(n) = self.nodes.get_mut(&dir) {
            n.attr.mtime = at;
            n.attr.ctime = at;
        }
    }

    fn root(&self, volume: &str) -> FsResult<Ino> {
        self.volumes
            .get(volume)
            .map(|v| v.root)
            .ok_or_else(|| FsError::NoVolume(volume.to_string()))
    }

    fn walk(&self, volume: &str, path: &str) -> FsResult<Ino> {
        let mut at = self.root(volume)?;
        for part in path.split('/').filter(|p| !p.is_empty()) {
            check_name(part)?;
            at = self.child(at, part)?;
        }
        Ok(at)
    }

    fn remove_entry(&mut self, dir: Ino, name: &str, want_dir: bool) -> FsResult<Ino> {
        let ino = self.child(dir, name)?;
        let n = self.node(ino)?;
        match (want_dir, n.attr.is_dir()) {
            (false, true) => return Err(FsError::IsDir),
            (true, false) => return Err(FsError::NotDir),
            (true, true) if !n.children.is_empty() => return Err(FsError::NotEmpty),
            _ => {}
        }
        self.node_mut(dir)?.children.remove(name);
        if want_dir {
            self.node_mut(dir)?.attr.nlink -= 1;
        }
        self.touch_dir(dir);
        self.nodes.remove(&ino);
        Ok(ino)
    }
}

#[async_trait]
impl FileService for MemFs {
    async fn volumes(&self) -> FsResult<Vec<VolumeInfo>> {
        self.with(|s| Ok(s.volumes.values().cloned().collect()))
    }

    async fn create_volume(&self, name: &str) -> FsResult<VolumeInfo> {
        if name.is_empty()
            || name.len() > 64
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(FsError::InvalidName(format!(
                "volume {name:?}: 1 to 64 of [A-Za-z0-9_-]"
            )));
        }
        let v = self.with(|s| {
            if let Some(v) = s.volumes.get(name) {
                return Ok(v.clone());
            }
            let root = s.new_node(Kind::Dir, 0, 0, 0o755);
            let v = VolumeInfo {
                name: name.to_string(),
                root,
                chunk_size: 4 << 20,
                created_at: s.clock,
            };
            s.volumes.insert(name.to_string(), v.clone());
            Ok(v)
        })?;
        self.emit(Invalidation::Volume(name.to_string()));
        Ok(v)
    }

    async fn delete_volume(&self, name: &str) -> FsResult<()> {
        self.with(|s| {
            let root = s.root(name)?;
            if !s.node(root)?.children.is_empty() {
                return Err(FsError::NotEmpty);
            }
            s.nodes.remove(&root);
            s.volumes.remove(name);
            Ok(())
        })?;
        self.emit(Invalidation::Volume(name.to_string()));
        Ok(())
    }

    async fn getattr(&self, ino: Ino) -> FsResult<Attr> {
        self.with(|s| Ok(s.node(ino)?.attr.clone()))
    }

    async fn lookup(&self, dir: Ino, name: &str) -> FsResult<Attr> {
        if name == "." {
            return self.getattr(dir).await;
        }
        self.with(|s| {
            if name == ".." {
                let parent = s.dir(dir)?.attr.parent;
                return Ok(s.node(parent)?.attr.clone());
            }
            check_name(name)?;
            let ino = s.child(dir, name)?;
            Ok(s.node(ino)?.attr.clone())
        })
    }

    async fn resolve(&self, volume: &str, path: &str) -> FsResult<Attr> {
        self.with(|s| {
            let ino = s.walk(volume, path)?;
            Ok(s.node(ino)?.attr.clone())
        })
    }

    async fn setattr(&self, ino: Ino, change: SetAttr) -> FsResult<Attr> {
        let attr = self.with(|s| {
            let at = s.clock;
            let n = s.node_mut(ino)?;
            if let Some(size) = change.size {
                if n.attr.is_dir() {
                    return Err(FsError::IsDir);
                }
                n.data.resize(size as usize, 0);
                n.attr.size = size;
                n.attr.generation += 1;
                n.attr.md5 = None;
                n.attr.mtime = at;
            }
            if let Some(m) = change.mode {
                n.attr.mode = m & 0o7777;
            }
            if let Some(u) = change.uid {
                n.attr.uid = u;
            }
            if let Some(g) = change.gid {
                n.attr.gid = g;
            }
            if let Some(t) = change.atime {
                n.attr.atime = t;
            }
            if let Some(t) = change.mtime {
                n.attr.mtime = t;
            }
            n.attr.ctime = at;
            Ok(n.attr.clone())
        })?;
        self.emit(Invalidation::Inode(ino));
        Ok(attr)
    }

    async fn read(&self, ino: Ino, offset: u64, len: u32) -> FsResult<(Bytes, bool)> {
        self.with(|s| {
            let n = s.node(ino)?;
            if n.attr.is_dir() {
                return Err(FsError::IsDir);
            }
            let size = n.data.len() as u64;
            let start = offset.min(size) as usize;
            let end = offset.saturating_add(len as u64).min(size) as usize;
            Ok((
                Bytes::copy_from_slice(&n.data[start..end]),
                end as u64 == size,
            ))
        })
    }

    async fn write(
        &self,
        ino: Ino,
        offset: u64,
        data: Bytes,
        stability: Stability,
    ) -> FsResult<WriteDone> {
        let end = offset
            .checked_add(data.len() as u64)
            .filter(|e| *e <= 1 << 40)
            .ok_or_else(|| FsError::TooLarge("a file of over 1 TiB".into()))?;
        let attr = self.with(|s| {
            let at = s.clock;
            let n = s.node_mut(ino)?;
            if n.attr.is_dir() {
                return Err(FsError::IsDir);
            }
            if n.data.len() < end as usize {
                n.data.resize(end as usize, 0);
            }
            n.data[offset as usize..end as usize].copy_from_slice(&data);
            n.attr.size = n.data.len() as u64;
            n.attr.generation += 1;
            n.attr.md5 = None;
            n.attr.mtime = at;
            n.attr.ctime = at;
            Ok(n.attr.clone())
        })?;
        self.emit(Invalidation::Inode(ino));
        Ok(WriteDone { attr, stability })
    }

    async fn commit(&self, ino: Ino) -> FsResult<()> {
        self.with(|s| s.node(ino).map(|_| ()))
    }

    fn write_verifier(&self) -> [u8; 8] {
        self.verifier
    }

    async fn put_file(
        &self,
        volume: &str,
        path: &str,
        mut body: ByteStream,
        opts: PutOptions,
    ) -> FsResult<Attr> {
        use futures::StreamExt;
        let mut data = Vec::new();
        while let Some(b) = body.next().await {
            data.extend_from_slice(&b.map_err(|e| FsError::Io(e.to_string()))?);
        }
        let md5: [u8; 16] = Md5::digest(&data).into();
        let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
        let (name, dirs) = parts
            .split_last()
            .ok_or_else(|| FsError::InvalidName("an empty path".into()))?;
        for p in &parts {
            check_name(p)?;
        }
        let (ino, dir) = self.with(|s| {
            let mut at = s.root(volume)?;
            let root = at;
            for d in dirs {
                at = match s.dir(at)?.children.get(*d) {
                    Some(i) => *i,
                    None => {
                        let i = s.new_node(Kind::Dir, at, root, 0o755);
                        s.node_mut(at)?.children.insert(d.to_string(), i);
                        s.node_mut(at)?.attr.nlink += 1;
                        i
                    }
                };
            }
            let ino = match s.dir(at)?.children.get(*name) {
                Some(i) if s.node(*i)?.attr.is_dir() => return Err(FsError::IsDir),
                Some(i) => *i,
                None => {
                    let i = s.new_node(Kind::File, at, root, opts.mode);
                    s.node_mut(at)?.children.insert(name.to_string(), i);
                    s.touch_dir(at);
                    i
                }
            };
            let now = s.clock;
            let n = s.node_mut(ino)?;
            n.attr.size = data.len() as u64;
            n.data = std::mem::take(&mut data);
            n.attr.generation += 1;
            n.attr.md5 = Some(md5);
            n.attr.meta = opts.meta.clone();
            n.attr.uid = opts.uid;
            n.attr.gid = opts.gid;
            n.attr.mtime = now;
            n.attr.ctime = now;
            Ok((ino, at))
        })?;
        self.emit(Invalidation::Inode(ino));
        self.emit(Invalidation::Entries(dir));
        self.getattr(ino).await
    }

    async fn create(&self, dir: Ino, name: &str, mode: u32, exclusive: bool) -> FsResult<Attr> {
        check_name(name)?;
        let attr = self.with(|s| {
            let root = s.dir(dir)?.attr.volume_root;
            if let Some(i) = s.dir(dir)?.children.get(name).copied() {
                let a = s.node(i)?.attr.clone();
                if exclusive {
                    return Err(FsError::Exists);
                }
                if a.is_dir() {
                    return Err(FsError::IsDir);
                }
                return Ok(a);
            }
            let i = s.new_node(Kind::File, dir, root, mode);
            s.node_mut(dir)?.children.insert(name.to_string(), i);
            s.touch_dir(dir);
            Ok(s.node(i)?.attr.clone())
        })?;
        self.emit(Invalidation::Entries(dir));
        Ok(attr)
    }

    async fn mkdir(&self, dir: Ino, name: &str, mode: u32) -> FsResult<Attr> {
        check_name(name)?;
        let attr = self.with(|s| {
            let root = s.dir(dir)?.attr.volume_root;
            if s.dir(dir)?.children.contains_key(name) {
                return Err(FsError::Exists);
            }
            let i = s.new_node(Kind::Dir, dir, root, mode);
            s.node_mut(dir)?.children.insert(name.to_string(), i);
            s.node_mut(dir)?.attr.nlink += 1;
            s.touch_dir(dir);
            Ok(s.node(i)?.attr.clone())
        })?;
        self.emit(Invalidation::Entries(dir));
        Ok(attr)
    }

    async fn remove(&self, dir: Ino, name: &str) -> FsResult<()> {
        check_name(name)?;
        let ino = self.with(|s| s.remove_entry(dir, name, false))?;
        self.emit(Invalidation::Entries(dir));
        self.emit(Invalidation::Inode(ino));
        Ok(())
    }

    async fn rmdir(&self, dir: Ino, name: &str) -> FsResult<()> {
        check_name(name)?;
        let ino = self.with(|s| s.remove_entry(dir, name, true))?;
        self.emit(Invalidation::Entries(dir));
        self.emit(Invalidation::Inode(ino));
        Ok(())
    }

    async fn rename(&self, from_dir: Ino, from: &str, to_dir: Ino, to: &str) -> FsResult<()> {
        check_name(from)?;
        check_name(to)?;
        let (moved, replaced) = self.with(|s| {
            let ino = s.child(from_dir, from)?;
            let src_root = s.dir(from_dir)?.attr.volume_root;
            if s.dir(to_dir)?.attr.volume_root != src_root {
                return Err(FsError::Invalid("a rename across volumes".into()));
            }
            let is_dir = s.node(ino)?.attr.is_dir();
            if is_dir {
                // Refuse moving a directory into itself or below it.
                let mut at = to_dir;
                loop {
                    if at == ino {
                        return Err(FsError::Invalid("a directory moved below itself".into()));
                    }
                    let p = s.node(at)?.attr.parent;
                    if p == at {
                        break;
                    }
                    at = p;
                }
            }
            if from_dir == to_dir && from == to {
                return Ok((ino, None));
            }
            let mut replaced = None;
            if let Some(old) = s.dir(to_dir)?.children.get(to).copied() {
                let o = s.node(old)?;
                match (is_dir, o.attr.is_dir()) {
                    (true, false) => return Err(FsError::NotDir),
                    (false, true) => return Err(FsError::IsDir),
                    (true, true) if !o.children.is_empty() => return Err(FsError::NotEmpty),
                    _ => {}
                }
                s.remove_entry(to_dir, to, is_dir)?;
                replaced = Some(old);
            }
            s.node_mut(from_dir)?.children.remove(from);
            s.node_mut(to_dir)?.children.insert(to.to_string(), ino);
            if is_dir && from_dir != to_dir {
                s.node_mut(from_dir)?.attr.nlink -= 1;
                s.node_mut(to_dir)?.attr.nlink += 1;
            }
            let at = s.clock;
            let n = s.node_mut(ino)?;
            n.attr.parent = to_dir;
            n.attr.ctime = at;
            s.touch_dir(from_dir);
            s.touch_dir(to_dir);
            Ok((ino, replaced))
        })?;
        self.emit(Invalidation::Entries(from_dir));
        self.emit(Invalidation::Entries(to_dir));
        self.emit(Invalidation::Inode(moved));
        if let Some(r) = replaced {
            self.emit(Invalidation::Inode(r));
        }
        Ok(())
    }

    async fn readdir(&self, dir: Ino, after: Option<&str>, limit: usize) -> FsResult<Page> {
        self.with(|s| {
            let d = s.dir(dir)?;
            let range: Box<dyn Iterator<Item = (&String, &Ino)>> =
                match after {
                    Some(a) => Box::new(d.children.range::<str, _>((
                        std::ops::Bound::Excluded(a),
                        std::ops::Bound::Unbounded,
                    ))),
                    None => Box::new(d.children.iter()),
                };
            let mut entries = Vec::new();
            let mut more = false;
            for (name, ino) in range {
                if entries.len() == limit {
                    more = true;
                    break;
                }
                entries.push(DirEntry {
                    name: name.clone(),
                    attr: s.node(*ino)?.attr.clone(),
                });
            }
            Ok(Page { entries, more })
        })
    }

    fn invalidations(&self) -> tokio::sync::broadcast::Receiver<Invalidation> {
        self.events.subscribe()
    }

    fn access_key(&self, id: &str) -> Option<AccessKey> {
        self.keys.lock().unwrap().get(id).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(b: &'static [u8]) -> ByteStream {
        Box::pin(futures::stream::iter(vec![Ok(Bytes::from_static(b))]))
    }

    #[tokio::test]
    async fn put_read_rename_remove() {
        let fs = MemFs::new();
        let v = fs.create_volume("v").await.unwrap();
        let a = fs
            .put_file("v", "a/b/c.txt", body(b"hello"), PutOptions::default())
            .await
            .unwrap();
        assert_eq!(a.size, 5);
        assert!(a.md5.is_some());
        let d = fs.resolve("v", "a/b").await.unwrap();
        assert!(d.is_dir());
        let (bytes, eof) = fs.read(a.ino, 1, 10).await.unwrap();
        assert_eq!((&bytes[..], eof), (&b"ello"[..], true));
        let w = fs
            .write(a.ino, 7, Bytes::from_static(b"!"), Stability::FileSync)
            .await
            .unwrap();
        assert_eq!(w.attr.size, 8);
        assert_eq!(w.attr.md5, None);
        fs.rename(d.ino, "c.txt", v.root, "top").await.unwrap();
        assert_eq!(fs.lookup(v.root, "top").await.unwrap().ino, a.ino);
        assert_eq!(fs.lookup(d.ino, "c.txt").await, Err(FsError::NotFound));
        let a_dir = fs.resolve("v", "a").await.unwrap();
        assert_eq!(fs.rmdir(v.root, "a").await, Err(FsError::NotEmpty));
        assert_eq!(
            fs.rename(v.root, "a", d.ino, "x").await.unwrap_err(),
            FsError::Invalid("a directory moved below itself".into())
        );
        fs.remove(v.root, "top").await.unwrap();
        assert_eq!(fs.getattr(a.ino).await, Err(FsError::Stale));
        fs.rmdir(a_dir.ino, "b").await.unwrap();
        let page = fs.readdir(v.root, None, 10).await.unwrap();
        assert_eq!(page.entries.len(), 1);
        assert_eq!(fs.delete_volume("v").await, Err(FsError::NotEmpty));
    }

    #[tokio::test]
    async fn readdir_pages_in_name_order() {
        let fs = MemFs::new();
        let v = fs.create_volume("v").await.unwrap();
        for n in ["c", "a", "b", "d"] {
            fs.create(v.root, n, 0o644, true).await.unwrap();
        }
        let p1 = fs.readdir(v.root, None, 2).await.unwrap();
        let names: Vec<_> = p1.entries.iter().map(|e| e.name.as_str()).collect();
        assert_eq!((names, p1.more), (vec!["a", "b"], true));
        let p2 = fs.readdir(v.root, Some("b"), 2).await.unwrap();
        let names: Vec<_> = p2.entries.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, vec!["c", "d"]);
        assert_eq!(
            fs.create(v.root, "a", 0o644, true).await,
            Err(FsError::Exists)
        );
    }

    #[tokio::test]
    async fn changes_are_announced() {
        let fs = MemFs::new();
        let v = fs.create_volume("v").await.unwrap();
        let mut rx = fs.invalidations();
        let f = fs.create(v.root, "f", 0o644, false).await.unwrap();
        assert_eq!(rx.recv().await.unwrap(), Invalidation::Entries(v.root));
        fs.write(f.ino, 0, Bytes::from_static(b"x"), Stability::Unstable)
            .await
            .unwrap();
        assert_eq!(rx.recv().await.unwrap(), Invalidation::Inode(f.ino));
    }
}
