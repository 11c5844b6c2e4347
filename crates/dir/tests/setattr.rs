//! `SetAttr`: attributes, truncation and sparse growth.

mod common;

use common::*;
use keel_dir::DirCommand;

fn attrs(path: &str) -> DirCommand {
    DirCommand::SetAttr {
        volume: VOL.into(),
        path: path.into(),
        mode: Some(0o100_600),
        uid: Some(1),
        gid: Some(2),
        size: None,
        atime: Some(11),
        mtime: Some(12),
        at: 500,
        token: None,
    }
}

#[test]
fn setattr_changes_mode_owner_and_times() {
    let mut ns = namespace();
    let before = inode_of(&ok(&mut ns, put("/f", &[1], 1)));
    let after = inode_of(&ok(&mut ns, attrs("/f")));
    assert_eq!(
        (after.mode, after.uid, after.gid),
        (0o600, 1, 2),
        "type bits are dropped"
    );
    assert_eq!((after.atime, after.mtime, after.ctime), (11, 12, 500));
    assert_eq!(
        (after.size, after.generation, &after.chunks),
        (before.size, 1, &before.chunks)
    );
    ok(&mut ns, mkdir("/d", false));
    assert_eq!(inode_of(&ok(&mut ns, attrs("/d"))).mode, 0o600);
    assert_eq!(inode_of(&ok(&mut ns, attrs("/"))).uid, 1);
}

#[test]
fn truncating_drops_chunks_past_the_end_and_shortens_the_last() {
    let mut ns = namespace();
    ok(&mut ns, put("/f", &[1, 2, 3], CS));
    let reply = ok(&mut ns, truncate("/f", CS + 10));
    assert_eq!(freed_of(&reply), vec![3]);
    let file = inode_of(&reply);
    assert_eq!(file.chunks, vec![chunk(1, CS), chunk(2, 10)]);
    assert_eq!(
        (file.size, file.generation, file.mtime, file.ctime),
        (CS + 10, 2, 500, 500)
    );
    assert_eq!(freed_of(&ok(&mut ns, truncate("/f", 0))), vec![1, 2]);
    assert!(ns.lookup(VOL, "/f").unwrap().chunks.is_empty());
}

#[test]
fn growing_only_sets_the_size() {
    let mut ns = namespace();
    ok(&mut ns, put("/f", &[1], 10));
    let grown = inode_of(&ok(&mut ns, truncate("/f", 100 * CS)));
    assert_eq!(
        (grown.size, grown.chunks.clone(), grown.generation),
        (100 * CS, vec![chunk(1, 10)], 2)
    );
    let same = inode_of(&ok(&mut ns, truncate("/f", 100 * CS)));
    assert_eq!(same.generation, 2, "same size: no content change");
    ok(&mut ns, truncate("/f", 5));
    ok(&mut ns, truncate("/f", CS));
    assert_eq!(
        ns.lookup(VOL, "/f").unwrap().chunks,
        vec![chunk(1, 5)],
        "the cut bytes stay a hole"
    );
}

#[test]
fn setattr_refuses_a_size_on_a_directory_and_missing_paths() {
    let mut ns = namespace();
    ok(&mut ns, mkdir("/d", false));
    assert_eq!(code(&mut ns, truncate("/d", 0)), "is_dir");
    assert_eq!(code(&mut ns, truncate("/", 0)), "is_dir");
    assert_eq!(code(&mut ns, truncate("/nope", 0)), "not_found");
    assert_eq!(code(&mut ns, attrs("/d/nope")), "not_found");
}
