//! `PutFile`: creating a file and replacing its content atomically.

mod common;

use common::*;
use keel_dir::{DirCommand, DirError, FileKind};

fn with_parents(mut cmd: DirCommand) -> DirCommand {
    if let DirCommand::PutFile { create_parents, .. } = &mut cmd {
        *create_parents = true;
    }
    cmd
}

#[test]
fn put_creates_a_file() {
    let mut ns = namespace();
    let reply = ok(&mut ns, put("/f", &[1, 2], 100));
    assert_eq!(freed_of(&reply), Vec::<u128>::new());
    let file = inode_of(&reply);
    assert_eq!(
        (file.kind, file.size, file.generation, file.nlink),
        (FileKind::File, CS + 100, 1, 1)
    );
    assert_eq!(
        (file.mode, file.uid, file.gid, file.mtime),
        (0o640, 10, 20, 200)
    );
    assert_eq!(file.chunks, vec![chunk(1, CS), chunk(2, 100)]);
    assert_eq!(ns.lookup(VOL, "/f").unwrap(), file);
    let root = ns.lookup(VOL, "/").unwrap();
    assert_eq!((root.nlink, root.mtime, file.parent), (2, 200, root.ino));
}

#[test]
fn put_replaces_content_and_reports_what_it_no_longer_references() {
    let mut ns = namespace();
    let first = inode_of(&ok(&mut ns, put("/f", &[1, 2, 3], 5)));
    let mut again = put("/f", &[1, 4], 7);
    if let DirCommand::PutFile { mode, uid, at, .. } = &mut again {
        (*mode, *uid, *at) = (0o777, 99, 250);
    }
    let reply = ok(&mut ns, again);
    assert_eq!(freed_of(&reply), vec![2, 3]);
    let file = inode_of(&reply);
    assert_eq!(
        (file.ino, file.generation, file.size),
        (first.ino, 2, CS + 7)
    );
    assert_eq!(
        (file.mode, file.uid),
        (0o640, 10),
        "mode and owner are kept"
    );
    assert_eq!((file.atime, file.mtime, file.ctime), (200, 250, 250));
    assert_eq!(
        ns.lookup(VOL, "/").unwrap().mtime,
        200,
        "replacing does not touch the directory"
    );
    assert_eq!(freed_of(&ok(&mut ns, put("/f", &[], 0))), vec![1, 4]);
    assert_eq!(ns.lookup(VOL, "/f").unwrap().generation, 3);
}

#[test]
fn put_refuses_directories_and_missing_parents() {
    let mut ns = namespace();
    ok(&mut ns, mkdir("/d", false));
    ok(&mut ns, put("/f", &[], 0));
    assert_eq!(
        fail(&mut ns, put("/d", &[1], 1)),
        DirError::IsDir { path: "/d".into() }
    );
    assert_eq!(code(&mut ns, put("/", &[1], 1)), "is_dir");
    assert_eq!(code(&mut ns, put("/x/f", &[1], 1)), "not_found");
    assert_eq!(code(&mut ns, put("/f/g", &[1], 1)), "not_dir");
    assert_eq!(
        code(&mut ns, with_parents(put("/f/g/h", &[1], 1))),
        "not_dir"
    );
}

#[test]
fn create_parents_makes_the_missing_directories() {
    let mut ns = namespace();
    ok(&mut ns, mkdir("/a", false));
    let file = inode_of(&ok(&mut ns, with_parents(put("/a/b/c/f", &[1], 1))));
    let c = ns.lookup(VOL, "/a/b/c").unwrap();
    assert_eq!((c.mode, c.uid, c.gid, file.parent), (0o755, 10, 20, c.ino));
    ok(&mut ns, with_parents(put("/a/b/c/f", &[2], 1)));
    assert_eq!(ns.lookup(VOL, "/a/b/c/f").unwrap().generation, 2);
}

#[test]
fn chunk_lists_must_fit_the_size_and_chunk_size() {
    let mut ns = namespace();
    let bad = |size: u64, chunks: Vec<keel_dir::ChunkRef>| {
        let mut cmd = put("/f", &[], 0);
        if let DirCommand::PutFile {
            size: s, chunks: c, ..
        } = &mut cmd
        {
            (*s, *c) = (size, chunks);
        }
        cmd
    };
    for cmd in [
        bad(CS + 1, vec![chunk(1, CS + 1)]),
        bad(10, vec![chunk(1, 0)]),
        bad(CS, vec![chunk(1, CS), chunk(2, 1)]),
        bad(2 * CS, vec![chunk(1, CS), chunk(1, CS)]),
    ] {
        assert_eq!(code(&mut ns, cmd), "invalid_argument");
    }
    let sparse = inode_of(&ok(&mut ns, bad(10 * CS, vec![chunk(1, 5), chunk(2, CS)])));
    assert_eq!(sparse.size, 10 * CS);
}
