//! The adapter from nfsserve's `NFSFileSystem` to keel's [`FileService`]: what each
//! NFSv3 procedure asks of the cluster, and how keel's answers and errors read in NFS.
//!
//! Owns: the mapping of file ids to inodes (identical), of handles to inodes
//! ([`crate::handle`]), of READDIR cookies to names, of [`FsError`]s to `nfsstat3`.
//! Must never: keep file data or attributes (caching is the node's), make a handle
//! depend on this process, or answer a WRITE before the file service says the bytes
//! are durable (`Stability::FileSync`).

use crate::handle::FileHandle;
use async_trait::async_trait;
use bytes::Bytes;
use keel_fs::{Attr, FileService, FsError, Ino, Kind, SetAttr, Stability, UnixMillis};
use nfsserve::nfs::{
    fattr3, fileid3, filename3, fsinfo3, ftype3, nfs_fh3, nfspath3, nfsstat3, nfstime3,
    post_op_attr, sattr3, set_atime, set_gid3, set_mode3, set_mtime, set_size3, set_uid3,
    specdata3,
};
use nfsserve::vfs::{DirEntry, NFSFileSystem, ReadDirResult, VFSCapabilities};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// The longest name NFS clients may use (PATHCONF name_max); longer is NAMETOOLONG.
pub const NAME_MAX: usize = 255;
/// Entries remembered per memory generation (two generations are kept) for the
/// inode → volume and READDIR cookie → name maps.
const MAP_GENERATION: usize = 1 << 18;

/// The NFS status for a file-service error (the table in the crate docs).
pub fn nfs_status(e: &FsError) -> nfsstat3 {
    match e {
        FsError::NotFound | FsError::NoVolume(_) => nfsstat3::NFS3ERR_NOENT,
        FsError::Exists => nfsstat3::NFS3ERR_EXIST,
        FsError::NotDir => nfsstat3::NFS3ERR_NOTDIR,
        FsError::IsDir => nfsstat3::NFS3ERR_ISDIR,
        FsError::NotEmpty => nfsstat3::NFS3ERR_NOTEMPTY,
        FsError::Stale => nfsstat3::NFS3ERR_STALE,
        FsError::InvalidName(_) | FsError::Invalid(_) => nfsstat3::NFS3ERR_INVAL,
        FsError::TooLarge(_) => nfsstat3::NFS3ERR_FBIG,
        FsError::NoSpace(_) => nfsstat3::NFS3ERR_NOSPC,
        FsError::Denied(_) => nfsstat3::NFS3ERR_ACCES,
        FsError::Unavailable(_) => nfsstat3::NFS3ERR_JUKEBOX,
        FsError::Io(_) => nfsstat3::NFS3ERR_IO,
    }
}

fn fs_err(e: FsError) -> nfsstat3 {
    let s = nfs_status(&e);
    if matches!(s, nfsstat3::NFS3ERR_IO | nfsstat3::NFS3ERR_JUKEBOX) {
        tracing::warn!("nfs: file service error: {e}");
    }
    s
}

/// A name from the wire: UTF-8, 1..=255 bytes (else INVAL / NAMETOOLONG).
fn name_of(n: &filename3) -> Result<&str, nfsstat3> {
    if n.len() > NAME_MAX {
        return Err(nfsstat3::NFS3ERR_NAMETOOLONG);
    }
    std::str::from_utf8(n).map_err(|_| nfsstat3::NFS3ERR_INVAL)
}

fn nfs_time(ms: UnixMillis) -> nfstime3 {
    let ms = ms.max(0);
    nfstime3 {
        seconds: (ms / 1000).min(u32::MAX as i64) as u32,
        nseconds: ((ms % 1000) * 1_000_000) as u32,
    }
}

fn millis(t: &nfstime3) -> UnixMillis {
    t.seconds as i64 * 1000 + (t.nseconds / 1_000_000) as i64
}

fn now_millis() -> UnixMillis {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// NFS attributes of a keel inode. `fsid` is the volume (each export its own file
/// system), `fileid` the cluster-wide inode id.
pub fn fattr(a: &Attr) -> fattr3 {
    fattr3 {
        ftype: match a.kind {
            Kind::File => ftype3::NF3REG,
            Kind::Dir => ftype3::NF3DIR,
        },
        mode: a.mode & 0o7777,
        nlink: a.nlink,
        uid: a.uid,
        gid: a.gid,
        size: a.size,
        used: a.size,
        rdev: specdata3::default(),
        fsid: a.volume_root,
        fileid: a.ino,
        atime: nfs_time(a.atime),
        mtime: nfs_time(a.mtime),
        ctime: nfs_time(a.ctime),
    }
}

/// The keel change an NFS `sattr3` asks for.
pub fn set_attr(s: &sattr3) -> SetAttr {
    let now = now_millis();
    SetAttr {
        mode: match s.mode {
            set_mode3::mode(m) => Some(m & 0o7777),
            set_mode3::Void => None,
        },
        uid: match s.uid {
            set_uid3::uid(u) => Some(u),
            set_uid3::Void => None,
        },
        gid: match s.gid {
            set_gid3::gid(g) => Some(g),
            set_gid3::Void => None,
        },
        size: match s.size {
            set_size3::size(z) => Some(z),
            set_size3::Void => None,
        },
        atime: match s.atime {
            set_atime::DONT_CHANGE => None,
            set_atime::SET_TO_SERVER_TIME => Some(now),
            set_atime::SET_TO_CLIENT_TIME(t) => Some(millis(&t)),
        },
        mtime: match s.mtime {
            set_mtime::DONT_CHANGE => None,
            set_mtime::SET_TO_SERVER_TIME => Some(now),
            set_mtime::SET_TO_CLIENT_TIME(t) => Some(millis(&t)),
        },
    }
}

fn is_empty_change(c: &SetAttr) -> bool {
    *c == SetAttr::default()
}

/// A bounded map kept in two generations: when the young one is full the old one is
/// dropped, so recently learnt entries always survive and memory stays bounded.
struct TwoGen<K, V> {
    young: HashMap<K, V>,
    old: HashMap<K, V>,
}

impl<K: std::hash::Hash + Eq, V: Clone> TwoGen<K, V> {
    fn new() -> Self {
        TwoGen {
            young: HashMap::new(),
            old: HashMap::new(),
        }
    }

    fn insert(&mut self, k: K, v: V) {
        if self.young.len() >= MAP_GENERATION {
            self.old = std::mem::take(&mut self.young);
        }
        self.young.insert(k, v);
    }

    fn get(&self, k: &K) -> Option<V> {
        self.young.get(k).or_else(|| self.old.get(k)).cloned()
    }
}

/// The NFS view of a file service.
pub struct KeelNfs {
    fs: Arc<dyn FileService>,
    read_only: bool,
    max_io: u32,
    max_file_size: u64,
    /// inode → its volume's root, learnt from every attribute seen, for the handles.
    volumes: Mutex<TwoGen<Ino, Ino>>,
    /// (directory, inode) → entry name, learnt from every READDIR page served: the
    /// cookie nfsserve hands back is the last entry's file id; keel pages by name.
    cookies: Mutex<TwoGen<(Ino, Ino), String>>,
}

impl KeelNfs {
    pub fn new(fs: Arc<dyn FileService>, config: &crate::NfsConfig) -> KeelNfs {
        KeelNfs {
            fs,
            read_only: config.read_only,
            max_io: config.max_io.max(4096),
            max_file_size: config.max_file_size,
            volumes: Mutex::new(TwoGen::new()),
            cookies: Mutex::new(TwoGen::new()),
        }
    }

    fn learn(&self, a: &Attr) {
        if let Ok(mut v) = self.volumes.lock() {
            v.insert(a.ino, a.volume_root);
        }
    }

    fn writable(&self) -> Result<(), nfsstat3> {
        if self.read_only {
            Err(nfsstat3::NFS3ERR_ROFS)
        } else {
            Ok(())
        }
    }

    /// The name after which a READDIR continues, from the cookie (the file id of the
    /// last entry the client got). Remembered from the page that carried it; after a
    /// failover (another gateway served that page) the directory is scanned for it.
    async fn cookie_name(&self, dir: Ino, cookie: fileid3) -> Result<Option<String>, nfsstat3> {
        if cookie == 0 {
            return Ok(None);
        }
        if let Some(n) = self.cookies.lock().ok().and_then(|c| c.get(&(dir, cookie))) {
            return Ok(Some(n));
        }
        let mut after: Option<String> = None;
        loop {
            let page = self
                .fs
                .readdir(dir, after.as_deref(), 1024)
                .await
                .map_err(fs_err)?;
            for e in &page.entries {
                if e.attr.ino == cookie {
                    return Ok(Some(e.name.clone()));
                }
            }
            match (page.more, page.entries.last()) {
                (true, Some(last)) => after = Some(last.name.clone()),
                _ => return Err(nfsstat3::NFS3ERR_BAD_COOKIE),
            }
        }
    }

    async fn attr(&self, id: fileid3) -> Result<Attr, nfsstat3> {
        let a = self.fs.getattr(id).await.map_err(fs_err)?;
        self.learn(&a);
        Ok(a)
    }
}

#[async_trait]
impl NFSFileSystem for KeelNfs {
    fn capabilities(&self) -> VFSCapabilities {
        if self.read_only {
            VFSCapabilities::ReadOnly
        } else {
            VFSCapabilities::ReadWrite
        }
    }

    /// Unused: every mount goes through [`Self::path_to_id`], which starts at a
    /// volume's root; there is no file above the volumes.
    fn root_dir(&self) -> fileid3 {
        0
    }

    async fn lookup(&self, dirid: fileid3, filename: &filename3) -> Result<fileid3, nfsstat3> {
        let name = match name_of(filename) {
            Ok(n) => n,
            // A name that is not UTF-8 cannot exist here.
            Err(nfsstat3::NFS3ERR_INVAL) => return Err(nfsstat3::NFS3ERR_NOENT),
            Err(e) => return Err(e),
        };
        let a = self.fs.lookup(dirid, name).await.map_err(fs_err)?;
        self.learn(&a);
        Ok(a.ino)
    }

    async fn getattr(&self, id: fileid3) -> Result<fattr3, nfsstat3> {
        Ok(fattr(&self.attr(id).await?))
    }

    async fn setattr(&self, id: fileid3, setattr: sattr3) -> Result<fattr3, nfsstat3> {
        self.writable()?;
        let change = set_attr(&setattr);
        if change.size.is_some_and(|z| z > self.max_file_size) {
            return Err(nfsstat3::NFS3ERR_FBIG);
        }
        let a = if is_empty_change(&change) {
            self.fs.getattr(id).await
        } else {
            self.fs.setattr(id, change).await
        }
        .map_err(fs_err)?;
        self.learn(&a);
        Ok(fattr(&a))
    }

    async fn read(
        &self,
        id: fileid3,
        offset: u64,
        count: u32,
    ) -> Result<(Vec<u8>, bool), nfsstat3> {
        let (b, eof) = self
            .fs
            .read(id, offset, count.min(self.max_io))
            .await
            .map_err(fs_err)?;
        Ok((b.to_vec(), eof))
    }

    /// Always `FileSync`: nfsserve answers every WRITE FILE_SYNC, so the bytes must be
    /// durable on the storage set before the answer.
    async fn write(&self, id: fileid3, offset: u64, data: &[u8]) -> Result<fattr3, nfsstat3> {
        self.writable()?;
        if offset.saturating_add(data.len() as u64) > self.max_file_size {
            return Err(nfsstat3::NFS3ERR_FBIG);
        }
        let done = self
            .fs
            .write(
                id,
                offset,
                Bytes::copy_from_slice(data),
                Stability::FileSync,
            )
            .await
            .map_err(fs_err)?;
        if done.stability != Stability::FileSync {
            // The file service broke its contract: never claim FILE_SYNC for it.
            tracing::error!("nfs: a FileSync write came back {:?}", done.stability);
            return Err(nfsstat3::NFS3ERR_IO);
        }
        self.learn(&done.attr);
        Ok(fattr(&done.attr))
    }

    async fn create(
        &self,
        dirid: fileid3,
        filename: &filename3,
        attr: sattr3,
    ) -> Result<(fileid3, fattr3), nfsstat3> {
        self.writable()?;
        let name = name_of(filename)?;
        let mut change = set_attr(&attr);
        if change.size.is_some_and(|z| z > self.max_file_size) {
            return Err(nfsstat3::NFS3ERR_FBIG);
        }
        let mode = change.mode.unwrap_or(0o644);
        let mut a = self
            .fs
            .create(dirid, name, mode, false)
            .await
            .map_err(fs_err)?;
        // UNCHECKED on an existing file applies the attributes given (size 0 =
        // truncate); a mode the file already has needs no second round trip.
        if change.mode == Some(a.mode) {
            change.mode = None;
        }
        if !is_empty_change(&change) {
            a = self.fs.setattr(a.ino, change).await.map_err(fs_err)?;
        }
        self.learn(&a);
        Ok((a.ino, fattr(&a)))
    }

    async fn create_exclusive(
        &self,
        dirid: fileid3,
        filename: &filename3,
    ) -> Result<fileid3, nfsstat3> {
        self.writable()?;
        let name = name_of(filename)?;
        let a = self
            .fs
            .create(dirid, name, 0o644, true)
            .await
            .map_err(fs_err)?;
        self.learn(&a);
        Ok(a.ino)
    }

    async fn mkdir(
        &self,
        dirid: fileid3,
        dirname: &filename3,
    ) -> Result<(fileid3, fattr3), nfsstat3> {
        self.writable()?;
        let name = name_of(dirname)?;
        let a = self.fs.mkdir(dirid, name, 0o755).await.map_err(fs_err)?;
        self.learn(&a);
        Ok((a.ino, fattr(&a)))
    }

    /// REMOVE and RMDIR both land here (nfsserve routes both to `remove`): a file is
    /// removed, an empty directory removed as RMDIR would.
    async fn remove(&self, dirid: fileid3, filename: &filename3) -> Result<(), nfsstat3> {
        self.writable()?;
        let name = name_of(filename)?;
        match self.fs.remove(dirid, name).await {
            Err(FsError::IsDir) => self.fs.rmdir(dirid, name).await.map_err(fs_err),
            r => r.map_err(fs_err),
        }
    }

    async fn rename(
        &self,
        from_dirid: fileid3,
        from_filename: &filename3,
        to_dirid: fileid3,
        to_filename: &filename3,
    ) -> Result<(), nfsstat3> {
        self.writable()?;
        let from = name_of(from_filename)?;
        let to = name_of(to_filename)?;
        self.fs
            .rename(from_dirid, from, to_dirid, to)
            .await
            .map_err(|e| match e {
                // Across volumes is across file systems.
                FsError::Invalid(ref m) if m.contains("across volumes") => nfsstat3::NFS3ERR_XDEV,
                e => fs_err(e),
            })
    }

    async fn readdir(
        &self,
        dirid: fileid3,
        start_after: fileid3,
        max_entries: usize,
    ) -> Result<ReadDirResult, nfsstat3> {
        let after = self.cookie_name(dirid, start_after).await?;
        let page = self
            .fs
            .readdir(dirid, after.as_deref(), max_entries.max(1))
            .await
            .map_err(fs_err)?;
        let mut entries = Vec::with_capacity(page.entries.len());
        {
            let mut cookies = self
                .cookies
                .lock()
                .map_err(|_| nfsstat3::NFS3ERR_SERVERFAULT)?;
            let mut vols = self
                .volumes
                .lock()
                .map_err(|_| nfsstat3::NFS3ERR_SERVERFAULT)?;
            for e in page.entries {
                vols.insert(e.attr.ino, e.attr.volume_root);
                cookies.insert((dirid, e.attr.ino), e.name.clone());
                entries.push(DirEntry {
                    fileid: e.attr.ino,
                    name: e.name.into_bytes().into(),
                    attr: fattr(&e.attr),
                });
            }
        }
        Ok(ReadDirResult {
            entries,
            end: !page.more,
        })
    }

    async fn symlink(
        &self,
        _dirid: fileid3,
        _linkname: &filename3,
        _symlink: &nfspath3,
        _attr: &sattr3,
    ) -> Result<(fileid3, fattr3), nfsstat3> {
        Err(nfsstat3::NFS3ERR_NOTSUPP)
    }

    async fn readlink(&self, _id: fileid3) -> Result<nfspath3, nfsstat3> {
        // Nothing here is a symbolic link.
        Err(nfsstat3::NFS3ERR_INVAL)
    }

    async fn fsinfo(&self, root_fileid: fileid3) -> Result<fsinfo3, nfsstat3> {
        let a = self.attr(root_fileid).await?;
        Ok(fsinfo3 {
            obj_attributes: post_op_attr::attributes(fattr(&a)),
            rtmax: self.max_io,
            rtpref: self.max_io,
            rtmult: 4096,
            wtmax: self.max_io,
            wtpref: self.max_io,
            wtmult: 4096,
            dtpref: 64 * 1024,
            maxfilesize: self.max_file_size,
            time_delta: nfstime3 {
                seconds: 0,
                nseconds: 1_000_000,
            },
            properties: nfsserve::nfs::FSF_HOMOGENEOUS | nfsserve::nfs::FSF_CANSETTIME,
        })
    }

    fn id_to_fh(&self, id: fileid3) -> nfs_fh3 {
        let volume_root = self
            .volumes
            .lock()
            .ok()
            .and_then(|v| v.get(&id))
            .unwrap_or(0);
        nfs_fh3 {
            data: FileHandle {
                volume_root,
                ino: id,
            }
            .encode(),
        }
    }

    fn fh_to_id(&self, fh: &nfs_fh3) -> Result<fileid3, nfsstat3> {
        match FileHandle::decode(&fh.data) {
            // The volume is learnt from attributes only: a handle is a client's word
            // (its CRC is no signature), and must not change the bytes this gateway
            // writes for that inode in other clients' handles.
            Ok(h) => Ok(h.ino),
            Err(e) => {
                tracing::debug!("nfs: bad handle: {e}");
                Err(nfsstat3::NFS3ERR_BADHANDLE)
            }
        }
    }

    /// A mount path: `/<volume>` or a directory below it, `/<volume>/a/b`.
    async fn path_to_id(&self, path: &[u8]) -> Result<fileid3, nfsstat3> {
        let path = std::str::from_utf8(path).map_err(|_| nfsstat3::NFS3ERR_NOENT)?;
        let path = path.trim_matches('/');
        let (volume, rest) = path.split_once('/').unwrap_or((path, ""));
        if volume.is_empty() {
            return Err(nfsstat3::NFS3ERR_NOENT);
        }
        let a = self.fs.resolve(volume, rest).await.map_err(fs_err)?;
        if !a.is_dir() {
            return Err(nfsstat3::NFS3ERR_NOTDIR);
        }
        self.learn(&a);
        Ok(a.ino)
    }

    async fn exports(&self) -> Vec<Vec<u8>> {
        match self.fs.volumes().await {
            Ok(vs) => vs
                .into_iter()
                .map(|v| format!("/{}", v.name).into_bytes())
                .collect(),
            Err(e) => {
                tracing::warn!("nfs: listing volumes for EXPORT: {e}");
                Vec::new()
            }
        }
    }

    fn serverid(&self) -> [u8; 8] {
        self.fs.write_verifier()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keel_fs::mem::MemFs;

    fn fname(s: &str) -> filename3 {
        s.as_bytes().into()
    }

    async fn setup() -> (Arc<MemFs>, KeelNfs, Ino) {
        let fs = Arc::new(MemFs::new());
        let v = fs.create_volume("vol").await.unwrap();
        let nfs = KeelNfs::new(fs.clone(), &crate::NfsConfig::default());
        (fs, nfs, v.root)
    }

    #[test]
    fn every_error_has_its_status() {
        use nfsstat3::*;
        let table = [
            (FsError::NotFound, NFS3ERR_NOENT),
            (FsError::NoVolume("v".into()), NFS3ERR_NOENT),
            (FsError::Exists, NFS3ERR_EXIST),
            (FsError::NotDir, NFS3ERR_NOTDIR),
            (FsError::IsDir, NFS3ERR_ISDIR),
            (FsError::NotEmpty, NFS3ERR_NOTEMPTY),
            (FsError::Stale, NFS3ERR_STALE),
            (FsError::InvalidName("x".into()), NFS3ERR_INVAL),
            (FsError::Invalid("x".into()), NFS3ERR_INVAL),
            (FsError::TooLarge("x".into()), NFS3ERR_FBIG),
            (FsError::NoSpace("x".into()), NFS3ERR_NOSPC),
            (FsError::Denied("x".into()), NFS3ERR_ACCES),
            (FsError::Unavailable("x".into()), NFS3ERR_JUKEBOX),
            (FsError::Io("x".into()), NFS3ERR_IO),
        ];
        for (e, s) in table {
            assert_eq!(nfs_status(&e) as u32, s as u32, "{e:?}");
        }
    }

    #[tokio::test]
    async fn mount_paths_name_volumes() {
        let (fs, nfs, root) = setup().await;
        fs.mkdir(root, "sub", 0o755).await.unwrap();
        assert_eq!(nfs.path_to_id(b"/vol").await.ok(), Some(root));
        assert_eq!(nfs.path_to_id(b"/vol/").await.ok(), Some(root));
        let sub = nfs.path_to_id(b"/vol/sub").await.unwrap();
        assert_ne!(sub, root);
        assert!(matches!(
            nfs.path_to_id(b"/").await,
            Err(nfsstat3::NFS3ERR_NOENT)
        ));
        assert!(matches!(
            nfs.path_to_id(b"/nope").await,
            Err(nfsstat3::NFS3ERR_NOENT)
        ));
        assert_eq!(nfs.exports().await, vec![b"/vol".to_vec()]);
    }

    #[tokio::test]
    async fn handles_survive_a_new_gateway_and_go_stale_on_removal() {
        let (fs, nfs, root) = setup().await;
        let (id, _) = nfs
            .create(root, &fname("f"), sattr3::default())
            .await
            .unwrap();
        let fh = nfs.id_to_fh(id);
        assert_eq!(FileHandle::decode(&fh.data).unwrap().volume_root, root);
        // Another gateway process (or this one restarted) over the same cluster.
        let other = KeelNfs::new(fs.clone(), &crate::NfsConfig::default());
        let id2 = other.fh_to_id(&fh).unwrap();
        assert_eq!(id2, id);
        assert_eq!(other.getattr(id2).await.unwrap().fileid, id);
        // The same handle bytes for the same file from either gateway.
        assert_eq!(other.id_to_fh(id).data, fh.data);
        nfs.remove(root, &fname("f")).await.unwrap();
        assert!(matches!(
            other.getattr(id2).await,
            Err(nfsstat3::NFS3ERR_STALE)
        ));
        let bad = nfs_fh3 { data: vec![0; 16] };
        assert!(matches!(
            other.fh_to_id(&bad),
            Err(nfsstat3::NFS3ERR_BADHANDLE)
        ));
    }

    #[tokio::test]
    async fn readdir_pages_by_cookie_even_on_another_gateway() {
        let (fs, nfs, root) = setup().await;
        for i in 0..25 {
            fs.create(root, &format!("f{i:02}"), 0o644, true)
                .await
                .unwrap();
        }
        let mut names = Vec::new();
        let mut cookie = 0;
        let mut gateway = 0;
        loop {
            // Alternate between a gateway that served the last page and one that did not.
            let fresh;
            let g: &KeelNfs = if gateway % 2 == 0 {
                &nfs
            } else {
                fresh = KeelNfs::new(fs.clone(), &crate::NfsConfig::default());
                &fresh
            };
            gateway += 1;
            let r = g.readdir(root, cookie, 4).await.unwrap();
            for e in &r.entries {
                names.push(String::from_utf8(e.name.to_vec()).unwrap());
            }
            if r.end {
                break;
            }
            cookie = r.entries.last().unwrap().fileid;
        }
        let want: Vec<String> = (0..25).map(|i| format!("f{i:02}")).collect();
        assert_eq!(names, want);
        // A cookie naming nothing in the directory.
        assert!(matches!(
            KeelNfs::new(fs.clone(), &crate::NfsConfig::default())
                .readdir(root, 999_999, 4)
                .await,
            Err(nfsstat3::NFS3ERR_BAD_COOKIE)
        ));
    }

    #[tokio::test]
    async fn past_the_largest_file_is_fbig_and_read_only_is_rofs() {
        let fs = Arc::new(MemFs::new());
        let root = fs.create_volume("vol").await.unwrap().root;
        let small = crate::NfsConfig {
            max_file_size: 1000,
            ..crate::NfsConfig::default()
        };
        let nfs = KeelNfs::new(fs.clone(), &small);
        let (id, _) = nfs
            .create(root, &fname("a"), sattr3::default())
            .await
            .unwrap();
        assert!(nfs.write(id, 990, &[1; 10]).await.is_ok());
        assert!(matches!(
            nfs.write(id, 991, &[1; 10]).await,
            Err(nfsstat3::NFS3ERR_FBIG)
        ));
        assert!(matches!(
            nfs.write(id, u64::MAX, &[1]).await,
            Err(nfsstat3::NFS3ERR_FBIG)
        ));
        let grow = sattr3 {
            size: set_size3::size(1001),
            ..Default::default()
        };
        assert!(matches!(
            nfs.setattr(id, grow).await,
            Err(nfsstat3::NFS3ERR_FBIG)
        ));
        assert_eq!(nfs.fsinfo(root).await.unwrap().maxfilesize, 1000);
        let ro = KeelNfs::new(
            fs,
            &crate::NfsConfig {
                read_only: true,
                ..crate::NfsConfig::default()
            },
        );
        assert!(matches!(
            ro.write(id, 0, b"x").await,
            Err(nfsstat3::NFS3ERR_ROFS)
        ));
        assert!(matches!(
            ro.remove(root, &fname("a")).await,
            Err(nfsstat3::NFS3ERR_ROFS)
        ));
        assert_eq!(ro.read(id, 990, 10).await.unwrap().0, vec![1; 10]);
    }

    #[tokio::test]
    async fn write_setattr_rename_remove() {
        let (_fs, nfs, root) = setup().await;
        let (id, _) = nfs
            .create(root, &fname("a"), sattr3::default())
            .await
            .unwrap();
        let a = nfs.write(id, 3, b"xyz").await.unwrap();
        assert_eq!(a.size, 6);
        let (data, eof) = nfs.read(id, 0, 100).await.unwrap();
        assert_eq!((data, eof), (b"\0\0\0xyz".to_vec(), true));
        let truncate = sattr3 {
            size: set_size3::size(2),
            ..Default::default()
        };
        let a = nfs.setattr(id, truncate).await.unwrap();
        assert_eq!(a.size, 2);
        let touch = sattr3 {
            mtime: set_mtime::SET_TO_CLIENT_TIME(nfstime3 {
                seconds: 1000,
                nseconds: 5_000_000,
            }),
            ..Default::default()
        };
        let a = nfs.setattr(id, touch).await.unwrap();
        assert_eq!((a.mtime.seconds, a.mtime.nseconds), (1000, 5_000_000));
        let (d, _) = nfs.mkdir(root, &fname("d")).await.unwrap();
        nfs.rename(root, &fname("a"), d, &fname("b")).await.unwrap();
        assert_eq!(nfs.lookup(d, &fname("b")).await.ok(), Some(id));
        assert!(matches!(
            nfs.lookup(root, &fname("a")).await,
            Err(nfsstat3::NFS3ERR_NOENT)
        ));
        assert!(matches!(
            nfs.remove(root, &fname("d")).await,
            Err(nfsstat3::NFS3ERR_NOTEMPTY)
        ));
        nfs.remove(d, &fname("b")).await.unwrap();
        nfs.remove(root, &fname("d")).await.unwrap();
        let long = "x".repeat(256);
        assert!(matches!(
            nfs.create(root, &fname(&long), sattr3::default()).await,
            Err(nfsstat3::NFS3ERR_NAMETOOLONG)
        ));
        assert!(nfs.create_exclusive(root, &fname("e")).await.is_ok());
        assert!(matches!(
            nfs.create_exclusive(root, &fname("e")).await,
            Err(nfsstat3::NFS3ERR_EXIST)
        ));
    }
}
