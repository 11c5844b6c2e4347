//! `Rename`: moves, atomic replacement, and the POSIX refusals.

mod common;

use common::*;
use keel_dir::DirError;

#[test]
fn rename_moves_a_file_between_directories() {
    let mut ns = namespace();
    ok(&mut ns, mkdir("/a", false));
    ok(&mut ns, mkdir("/b", false));
    let file = inode_of(&ok(&mut ns, put("/a/f", &[1], 5)));
    let reply = ok(&mut ns, rename("/a/f", "/b/g"));
    assert_eq!(freed_of(&reply), Vec::<u128>::new());
    let moved = inode_of(&reply);
    let b = ns.lookup(VOL, "/b").unwrap();
    assert_eq!(
        (moved.ino, moved.parent, moved.ctime, moved.mtime),
        (file.ino, b.ino, 400, 200)
    );
    assert_eq!(ns.lookup(VOL, "/b/g").unwrap(), moved);
    assert_eq!(ns.lookup(VOL, "/a/f").unwrap_err().code(), "not_found");
    assert_eq!((ns.lookup(VOL, "/a").unwrap().mtime, b.mtime), (400, 400));
}

#[test]
fn rename_replaces_a_file_and_frees_its_objects() {
    let mut ns = namespace();
    let src = inode_of(&ok(&mut ns, put("/new", &[1, 2], 3)));
    let old = inode_of(&ok(&mut ns, put("/old", &[7, 8], 3)));
    let reply = ok(&mut ns, rename("/new", "/old"));
    assert_eq!(freed_of(&reply), vec![7, 8]);
    assert_eq!(ns.lookup(VOL, "/old").unwrap().ino, src.ino);
    assert_eq!(ns.getattr(old.ino).unwrap_err().code(), "not_found");
    assert_eq!(ns.lookup(VOL, "/new").unwrap_err().code(), "not_found");
}

#[test]
fn rename_moves_a_directory_and_its_subtree() {
    let mut ns = namespace();
    ok(&mut ns, mkdir("/a/b/c", true));
    ok(&mut ns, put("/a/b/c/f", &[1], 1));
    ok(&mut ns, mkdir("/x", false));
    let b = inode_of(&ok(&mut ns, rename("/a/b", "/x/b2")));
    let x = ns.lookup(VOL, "/x").unwrap();
    assert_eq!(
        (b.parent, x.nlink, ns.lookup(VOL, "/a").unwrap().nlink),
        (x.ino, 3, 2)
    );
    assert_eq!(
        ns.lookup(VOL, "/x/b2/c/f").unwrap().chunks,
        vec![chunk(1, 1)]
    );
    ok(&mut ns, rename("/x/b2", "/x/b3"));
    assert_eq!(ns.lookup(VOL, "/x").unwrap().nlink, 3);
}

#[test]
fn a_directory_replaces_only_an_empty_directory() {
    let mut ns = namespace();
    ok(&mut ns, mkdir("/src/inner", true));
    ok(&mut ns, mkdir("/empty", false));
    ok(&mut ns, mkdir("/full/x", true));
    assert_eq!(
        fail(&mut ns, rename("/src", "/full")),
        DirError::NotEmpty {
            path: "/full".into()
        }
    );
    let (_, before) = ns.stats();
    ok(&mut ns, rename("/src", "/empty"));
    assert_eq!(ns.stats().1, before - 1);
    assert!(ns.lookup(VOL, "/empty/inner").unwrap().is_dir());
    assert_eq!(ns.lookup(VOL, "/").unwrap().nlink, 2 + 2);
}

#[test]
fn file_over_dir_and_dir_over_file_are_refused() {
    let mut ns = namespace();
    ok(&mut ns, mkdir("/d", false));
    ok(&mut ns, put("/f", &[1], 1));
    assert_eq!(
        fail(&mut ns, rename("/f", "/d")),
        DirError::IsDir { path: "/d".into() }
    );
    assert_eq!(
        fail(&mut ns, rename("/d", "/f")),
        DirError::NotDir { path: "/f".into() }
    );
}

#[test]
fn a_directory_cannot_move_into_its_own_subtree() {
    let mut ns = namespace();
    ok(&mut ns, mkdir("/a/b/c", true));
    for to in ["/a/x", "/a/b/x", "/a/b/c/x"] {
        assert_eq!(code(&mut ns, rename("/a", to)), "invalid_argument", "{to}");
    }
    assert_eq!(
        code(&mut ns, rename("/a/b", "/a/b/c/d")),
        "invalid_argument"
    );
    ok(&mut ns, rename("/a/b/c", "/c"));
    ok(&mut ns, rename("/a/b", "/c/b"));
}

#[test]
fn rename_onto_itself_is_a_no_op() {
    let mut ns = namespace();
    ok(&mut ns, put("/f", &[1], 1));
    ok(&mut ns, mkdir("/d", false));
    ns.take_changes();
    let before = ns.clone();
    assert_eq!(
        freed_of(&ok(&mut ns, rename("/f", "/f"))),
        Vec::<u128>::new()
    );
    ok(&mut ns, rename("/d", "/d/"));
    assert_eq!(ns, before);
    assert!(ns.take_changes().is_empty());
}

#[test]
fn rename_refuses_the_root_and_missing_paths() {
    let mut ns = namespace();
    ok(&mut ns, put("/f", &[1], 1));
    assert_eq!(code(&mut ns, rename("/", "/x")), "invalid_argument");
    assert_eq!(code(&mut ns, rename("/f", "/")), "invalid_argument");
    assert_eq!(code(&mut ns, rename("/g", "/h")), "not_found");
    assert_eq!(code(&mut ns, rename("/f", "/x/y")), "not_found");
    assert_eq!(code(&mut ns, rename("/f", "/f/y")), "not_dir");
    assert_eq!(code(&mut ns, rename("/f/y", "/z")), "not_dir");
}
