//! Commands and reads by inode: `DeleteVolume`, `WriteChunks` (compare-and-swap of
//! chunks), `Expect` (fencing a path command on the inodes it was resolved from), the
//! MD5 and metadata a put stores, and reads by inode number.

mod common;

use common::*;
use keel_core::ObjectId;
use keel_dir::{ChunkChange, DirCommand, DirReply, Expected, Inode, Namespace};

fn write(ino: u64, changes: Vec<ChunkChange>, size: u64) -> DirCommand {
    DirCommand::WriteChunks {
        volume: VOL.into(),
        ino,
        changes,
        size,
        at: 900,
        token: None,
    }
}

fn change(index: u64, expect: Option<(u128, u64)>, new: (u128, u64)) -> ChunkChange {
    ChunkChange {
        index,
        expect: expect.map(|(id, len)| chunk(id, len)),
        chunk: chunk(new.0, new.1),
    }
}

#[test]
fn delete_volume_only_when_empty() {
    let mut ns = namespace();
    ok(&mut ns, put("/f", &[1], 10));
    let del = DirCommand::DeleteVolume {
        name: VOL.into(),
        at: 5,
    };
    assert_eq!(code(&mut ns, del.clone()), "not_empty");
    ok(&mut ns, unlink("/f"));
    assert_eq!(ok(&mut ns, del.clone()), DirReply::Done);
    assert!(ns.volume(VOL).is_none());
    assert_eq!(ns.stats(), (0, 0));
    assert_eq!(code(&mut ns, del), "no_volume");
    // The name can be taken again, with a new root (inode numbers are never reused).
    ok(&mut ns, create_volume(VOL));
    assert!(ns.volume(VOL).unwrap().root > 1);
}

#[test]
fn write_chunks_swaps_what_it_read_and_extends_densely() {
    let mut ns = namespace();
    let f = inode_of(&ok(&mut ns, put("/f", &[1, 2], 100)));
    // Replace chunk 1 and append chunk 2.
    let r = ok(
        &mut ns,
        write(
            f.ino,
            vec![change(1, Some((2, 100)), (3, CS)), change(2, None, (4, 7))],
            2 * CS + 7,
        ),
    );
    assert_eq!(freed_of(&r), vec![2]);
    let after = inode_of(&r);
    assert_eq!(after.chunks, vec![chunk(1, CS), chunk(3, CS), chunk(4, 7)]);
    assert_eq!(
        (after.size, after.generation),
        (2 * CS + 7, f.generation + 1)
    );
    assert_eq!(after.mtime, 900);
    // A stale expectation (chunk 1 is no longer object 2) changes nothing.
    let stale = write(f.ino, vec![change(1, Some((2, 100)), (5, CS))], 0);
    assert_eq!(code(&mut ns, stale), "moved");
    // A put that replaced the list fences every write computed before it.
    ok(&mut ns, put("/f", &[10], 5));
    let before_put = write(f.ino, vec![change(0, Some((1, CS)), (6, CS))], CS);
    assert_eq!(code(&mut ns, before_put), "moved");
    // A gap is refused; a file that is gone is not found.
    let gap = write(f.ino, vec![change(2, None, (7, 1))], 2 * CS + 1);
    assert_eq!(code(&mut ns, gap), "invalid_argument");
    ok(&mut ns, unlink("/f"));
    let gone = write(f.ino, vec![change(0, None, (8, 1))], 1);
    assert_eq!(code(&mut ns, gone), "not_found");
}

#[test]
fn write_chunks_never_shrinks_and_refuses_directories() {
    let mut ns = namespace();
    let f = inode_of(&ok(&mut ns, put("/f", &[1, 2], 100)));
    let r = ok(
        &mut ns,
        write(f.ino, vec![change(0, Some((1, CS)), (3, CS))], 1),
    );
    assert_eq!(inode_of(&r).size, CS + 100);
    let d = inode_of(&ok(&mut ns, mkdir("/d", false)));
    assert_eq!(
        code(&mut ns, write(d.ino, vec![change(0, None, (4, 1))], 1)),
        "is_dir"
    );
    // A chunk past the size it declares is refused by the chunk check.
    assert_eq!(
        code(&mut ns, write(f.ino, vec![change(2, None, (5, 10))], 0)),
        "invalid_argument"
    );
}

#[test]
fn expect_fences_a_path_command() {
    let mut ns = namespace();
    let d = inode_of(&ok(&mut ns, mkdir("/d", false)));
    let guarded = |path: &str, ino| DirCommand::Expect {
        expect: vec![Expected {
            path: path.into(),
            ino,
        }],
        then: Box::new(put("/d/f", &[1], 3)),
    };
    ok(&mut ns, guarded("/d", d.ino));
    ok(&mut ns, rename("/d", "/e"));
    ok(&mut ns, mkdir("/d", false));
    // "/d" now names another directory: the put proposed for the old one is refused.
    assert_eq!(code(&mut ns, guarded("/d", d.ino)), "moved");
    assert_eq!(code(&mut ns, guarded("/nowhere", d.ino)), "moved");
    // Inode 0: the name must be free.
    let free = |path: &str| DirCommand::Expect {
        expect: vec![Expected {
            path: path.into(),
            ino: 0,
        }],
        then: Box::new(put("/e/g", &[2], 3)),
    };
    assert_eq!(code(&mut ns, free("/e/f")), "moved");
    ok(&mut ns, free("/e/g"));
    let nested = DirCommand::Expect {
        expect: vec![],
        then: Box::new(guarded("/e", d.ino)),
    };
    assert_eq!(code(&mut ns, nested), "invalid_argument");
    // Token and volume come from the inner command.
    let tokened = with_token(guarded("/e", d.ino), 77);
    assert_eq!((tokened.token(), tokened.volume()), (Some(77), VOL));
}

#[test]
fn put_stores_md5_and_meta_and_changes_clear_the_md5() {
    let mut ns = namespace();
    let mut cmd = put("/f", &[1], 3);
    if let DirCommand::PutFile { md5, meta, .. } = &mut cmd {
        *md5 = Some([7; 16]);
        meta.insert("content-type".into(), "text/plain".into());
    }
    let f = inode_of(&ok(&mut ns, cmd));
    assert_eq!(f.md5, Some([7; 16]));
    assert_eq!(f.meta["content-type"], "text/plain");
    let w = inode_of(&ok(
        &mut ns,
        write(f.ino, vec![change(0, Some((1, 3)), (2, 4))], 4),
    ));
    assert_eq!((w.md5, w.meta.len()), (None, 1));
    let mut again = put("/f", &[3], 3);
    if let DirCommand::PutFile { md5, .. } = &mut again {
        *md5 = Some([8; 16]);
    }
    let p = inode_of(&ok(&mut ns, again));
    assert_eq!((p.md5, p.meta.len()), (Some([8; 16]), 0));
    let t = inode_of(&ok(&mut ns, truncate("/f", 1)));
    assert_eq!(t.md5, None);
}

#[test]
fn state_stored_before_md5_and_meta_still_decodes() {
    let old = serde_json::json!({
        "ino": 5, "kind": "file", "size": 0, "mode": 420, "uid": 0, "gid": 0,
        "atime": 0, "mtime": 0, "ctime": 0, "nlink": 1, "parent": 1,
        "chunks": [], "generation": 1
    });
    let inode: Inode = serde_json::from_value(old).unwrap();
    assert_eq!((inode.md5, inode.meta.len()), (None, 0));
    let old_put = serde_json::json!({
        "op": "put_file", "volume": "v", "path": "/f", "size": 0, "chunks": [],
        "mode": 420, "uid": 0, "gid": 0, "create_parents": false, "at": 1
    });
    let cmd: DirCommand = serde_json::from_value(old_put).unwrap();
    assert!(matches!(cmd, DirCommand::PutFile { md5: None, .. }));
    // New commands round-trip.
    for cmd in [
        write(3, vec![change(0, None, (1, 1))], 1),
        DirCommand::DeleteVolume {
            name: "v".into(),
            at: 1,
        },
        DirCommand::Expect {
            expect: vec![Expected {
                path: "/a".into(),
                ino: 2,
            }],
            then: Box::new(with_token(unlink("/a/b"), 9)),
        },
    ] {
        let back: DirCommand = serde_json::from_slice(&serde_json::to_vec(&cmd).unwrap()).unwrap();
        assert_eq!(back, cmd);
    }
}

#[test]
fn reads_by_inode() {
    let mut ns = namespace();
    ok(&mut ns, mkdir("/a", false));
    let f = inode_of(&ok(&mut ns, {
        let mut c = put("/a/f", &[1], 3);
        if let DirCommand::PutFile { create_parents, .. } = &mut c {
            *create_parents = true;
        }
        c
    }));
    let root = ns.volume(VOL).unwrap().root;
    assert_eq!(ns.path_of(f.ino).unwrap(), (VOL.to_string(), "/a/f".into()));
    assert_eq!(ns.path_of(root).unwrap(), (VOL.to_string(), "/".into()));
    assert_eq!(ns.volume_of(f.ino).as_deref(), Some(VOL));
    let a = ns.child_inode(root, "a").unwrap();
    assert_eq!(ns.child_inode(a.ino, "f").unwrap().ino, f.ino);
    assert_eq!(ns.child_inode(a.ino, "g").unwrap_err().code(), "not_found");
    assert_eq!(ns.child_inode(f.ino, "g").unwrap_err().code(), "not_dir");
    for n in ["b", "c", "d"] {
        ok(&mut ns, put(&format!("/a/{n}"), &[], 0));
    }
    let (page, more) = ns.list(a.ino, None, 2).unwrap();
    let names: Vec<_> = page.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!((names, more), (vec!["b", "c"], true));
    let (page, more) = ns.list(a.ino, Some("c"), 5).unwrap();
    let names: Vec<_> = page.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!((names, more), (vec!["d", "f"], false));
    ok(&mut ns, unlink("/a/f"));
    assert_eq!(ns.path_of(f.ino).unwrap_err().code(), "not_found");
    let _ = ObjectId(0);
    let _ = Namespace::new();
}
