//! `Unlink` and `Rmdir`.

mod common;

use common::*;
use keel_dir::{DirError, DirReply};

#[test]
fn unlink_removes_a_file_and_frees_its_objects() {
    let mut ns = namespace();
    ok(&mut ns, mkdir("/d", false));
    let file = inode_of(&ok(&mut ns, put("/d/f", &[3, 1, 2], 9)));
    let reply = ok(&mut ns, unlink("/d/f"));
    assert_eq!(
        reply,
        DirReply::Freed {
            inode: None,
            freed: vec![1, 2, 3].into_iter().map(keel_core::ObjectId).collect()
        }
    );
    assert_eq!(ns.lookup(VOL, "/d/f").unwrap_err().code(), "not_found");
    assert_eq!(ns.getattr(file.ino).unwrap_err().code(), "not_found");
    assert_eq!(ns.lookup(VOL, "/d").unwrap().mtime, 300);
    assert_eq!(ns.stats(), (1, 2));
}

#[test]
fn unlink_refuses_directories_and_what_is_missing() {
    let mut ns = namespace();
    ok(&mut ns, mkdir("/d", false));
    ok(&mut ns, put("/f", &[], 0));
    assert_eq!(
        fail(&mut ns, unlink("/d")),
        DirError::IsDir { path: "/d".into() }
    );
    assert_eq!(code(&mut ns, unlink("/")), "is_dir");
    assert_eq!(code(&mut ns, unlink("/g")), "not_found");
    assert_eq!(code(&mut ns, unlink("/x/g")), "not_found");
    assert_eq!(code(&mut ns, unlink("/f/g")), "not_dir");
}

#[test]
fn rmdir_removes_an_empty_directory() {
    let mut ns = namespace();
    ok(&mut ns, mkdir("/a/b", true));
    assert_eq!(ns.lookup(VOL, "/a").unwrap().nlink, 3);
    assert_eq!(ok(&mut ns, rmdir("/a/b")), DirReply::Done);
    let a = ns.lookup(VOL, "/a").unwrap();
    assert_eq!((a.nlink, a.mtime), (2, 300));
    ok(&mut ns, rmdir("/a"));
    assert_eq!(ns.lookup(VOL, "/").unwrap().nlink, 2);
    assert_eq!(ns.stats(), (1, 1));
}

#[test]
fn rmdir_refuses_non_empty_directories_files_and_the_root() {
    let mut ns = namespace();
    ok(&mut ns, mkdir("/a", false));
    ok(&mut ns, put("/a/f", &[], 0));
    assert_eq!(
        fail(&mut ns, rmdir("/a")),
        DirError::NotEmpty { path: "/a".into() }
    );
    assert_eq!(code(&mut ns, rmdir("/a/f")), "not_dir");
    assert_eq!(code(&mut ns, rmdir("/")), "invalid_argument");
    assert_eq!(code(&mut ns, rmdir("/b")), "not_found");
    assert_eq!(code(&mut ns, rmdir("/a/f/g")), "not_dir");
    ok(&mut ns, unlink("/a/f"));
    ok(&mut ns, rmdir("/a"));
}
