//! `Mkdir`: creating directories, with and without `parents`.

mod common;

use common::*;
use keel_dir::{DirError, FileKind};

#[test]
fn mkdir_creates_a_directory_and_links_it() {
    let mut ns = namespace();
    let dir = inode_of(&ok(&mut ns, mkdir("/a", false)));
    assert_eq!(
        (dir.kind, dir.mode, dir.uid, dir.gid),
        (FileKind::Dir, 0o750, 10, 20)
    );
    assert_eq!((dir.nlink, dir.size, dir.generation), (2, 0, 0));
    assert_eq!((dir.atime, dir.mtime, dir.ctime), (100, 100, 100));
    let root = ns.lookup(VOL, "/").unwrap();
    assert_eq!(
        (dir.parent, root.nlink, root.mtime, root.ctime),
        (root.ino, 3, 100, 100)
    );
    assert_eq!(ns.lookup(VOL, "/a").unwrap(), dir);
    let sub = inode_of(&ok(&mut ns, mkdir("/a/b", false)));
    assert_eq!(sub.parent, dir.ino);
    assert_eq!(ns.lookup(VOL, "/a").unwrap().nlink, 3);
}

#[test]
fn mkdir_refuses_what_exists_and_missing_parents() {
    let mut ns = namespace();
    ok(&mut ns, mkdir("/a", false));
    ok(&mut ns, put("/f", &[], 0));
    assert_eq!(
        fail(&mut ns, mkdir("/a", false)),
        DirError::Exists { path: "/a".into() }
    );
    assert_eq!(code(&mut ns, mkdir("/f", false)), "exists");
    assert_eq!(code(&mut ns, mkdir("/f", true)), "exists");
    assert_eq!(code(&mut ns, mkdir("/", false)), "exists");
    assert_eq!(code(&mut ns, mkdir("/x/y", false)), "not_found");
    assert_eq!(code(&mut ns, mkdir("/f/y", false)), "not_dir");
    assert_eq!(code(&mut ns, mkdir("/f/y/z", true)), "not_dir");
}

#[test]
fn parents_creates_every_missing_ancestor_and_accepts_an_existing_dir() {
    let mut ns = namespace();
    ok(&mut ns, mkdir("/a", false));
    let (_, before) = ns.stats();
    let deep = inode_of(&ok(&mut ns, mkdir("/a/b/c/d", true)));
    assert_eq!(ns.stats().1, before + 3);
    for path in ["/a/b", "/a/b/c"] {
        let dir = ns.lookup(VOL, path).unwrap();
        assert_eq!((dir.mode, dir.nlink), (0o750, 3));
    }
    assert_eq!(ns.lookup(VOL, "/a/b/c/d").unwrap(), deep);
    assert_eq!(
        ok(&mut ns, mkdir("/a/b/c/d", true)),
        ok(&mut ns, mkdir("/a/b/c/d/", true))
    );
    assert_eq!(
        inode_of(&ok(&mut ns, mkdir("/", true))).ino,
        ns.volume(VOL).unwrap().root
    );
}

#[test]
fn inode_numbers_are_never_reused() {
    let mut ns = namespace();
    let a = inode_of(&ok(&mut ns, mkdir("/a", false))).ino;
    ok(&mut ns, rmdir("/a"));
    let again = inode_of(&ok(&mut ns, mkdir("/a", false))).ino;
    assert!(again > a);
    assert_eq!(ns.getattr(a).unwrap_err().code(), "not_found");
}
