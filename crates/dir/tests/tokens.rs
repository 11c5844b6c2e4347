//! Idempotency tokens: a retried command is applied once.

mod common;

use common::*;
use keel_dir::TOKEN_MEMORY;

#[test]
fn a_replayed_put_returns_the_same_reply_and_applies_once() {
    let mut ns = namespace();
    ok(&mut ns, put("/f", &[1], 1));
    let first = ok(&mut ns, with_token(put("/f", &[2], 1), 77));
    ns.take_changes();
    let after_first = ns.clone();
    let replay = ok(&mut ns, with_token(put("/f", &[2], 1), 77));
    assert_eq!(replay, first);
    assert_eq!(freed_of(&replay), vec![1]);
    assert_eq!(ns.lookup(VOL, "/f").unwrap().generation, 2, "bumped once");
    assert_eq!(ns, after_first);
    assert!(ns.take_changes().is_empty(), "a replay writes nothing");
    let fresh = ok(&mut ns, with_token(put("/f", &[2], 1), 78));
    assert_eq!(inode_of(&fresh).generation, 3);
}

#[test]
fn errors_are_remembered_too() {
    let mut ns = namespace();
    let cmd = with_token(rmdir("/d"), 5);
    let first = ns.apply(cmd.clone()).unwrap_err();
    assert_eq!(first.code(), "not_found");
    ok(&mut ns, mkdir("/d", false));
    assert_eq!(
        ns.apply(cmd).unwrap_err(),
        first,
        "not applied now that /d exists"
    );
    assert!(ns.lookup(VOL, "/d").is_ok());
}

#[test]
fn a_remembered_token_answers_whatever_the_command_says() {
    let mut ns = namespace();
    let reply = ok(&mut ns, with_token(mkdir("/a", false), 9));
    assert_eq!(ok(&mut ns, with_token(mkdir("/b", false), 9)), reply);
    assert_eq!(ns.lookup(VOL, "/b").unwrap_err().code(), "not_found");
}

#[test]
fn a_retried_unlink_and_rename_succeed_once() {
    let mut ns = namespace();
    ok(&mut ns, put("/f", &[1], 1));
    let unlinked = ok(&mut ns, with_token(unlink("/f"), 1));
    assert_eq!(ok(&mut ns, with_token(unlink("/f"), 1)), unlinked);
    ok(&mut ns, put("/g", &[2], 1));
    let renamed = ok(&mut ns, with_token(rename("/g", "/h"), 2));
    assert_eq!(ok(&mut ns, with_token(rename("/g", "/h"), 2)), renamed);
}

#[test]
fn the_oldest_token_is_forgotten_after_the_memory_fills() {
    let mut ns = namespace();
    ok(&mut ns, mkdir("/d", false));
    ok(&mut ns, with_token(mkdir("/d/first", false), 0));
    for token in 1..TOKEN_MEMORY as u128 {
        ns.apply(with_token(truncate("/nope", 0), token))
            .unwrap_err();
    }
    assert_eq!(ns.remembered_tokens(), TOKEN_MEMORY);
    ok(&mut ns, rmdir("/d/first"));
    ok(&mut ns, with_token(mkdir("/d/first", false), 0));
    assert!(
        ns.lookup(VOL, "/d/first").unwrap_err().code() == "not_found",
        "still remembered"
    );
    ns.take_changes();
    ns.apply(with_token(truncate("/nope", 0), u128::MAX))
        .unwrap_err();
    let changes = ns.take_changes();
    assert_eq!(changes.tokens.len(), 2, "one remembered, one forgotten");
    assert_eq!(changes.tokens[&0], None);
    assert!(changes.meta_changed);
    assert_eq!(ns.remembered_tokens(), TOKEN_MEMORY);
    ok(&mut ns, with_token(mkdir("/d/first", false), 0));
    assert!(
        ns.lookup(VOL, "/d/first").is_ok(),
        "forgotten: applied again"
    );
    ns.check_invariants().unwrap();
}

/// What the gateway sends when a client retries a removal on another member after the
/// first try committed: the path is gone, so it cannot tell a file from a directory
/// and sends `Unlink` with the client's token. The directory answers what the first
/// try answered (an `Rmdir`'s `Done`, an `Unlink`'s `Freed`), not "not found".
#[test]
fn a_retried_removal_of_a_gone_path_answers_as_applied() {
    let mut ns = namespace();
    ok(&mut ns, mkdir("/d", false));
    let removed = ok(&mut ns, with_token(rmdir("/d"), 11));
    assert_eq!(removed, keel_dir::DirReply::Done);
    assert_eq!(ok(&mut ns, with_token(unlink("/d"), 11)), removed);

    ok(&mut ns, put("/f", &[4], 1));
    let unlinked = ok(&mut ns, with_token(unlink("/f"), 12));
    assert_eq!(freed_of(&unlinked), vec![4]);
    assert_eq!(ok(&mut ns, with_token(unlink("/f"), 12)), unlinked);
    // Without a token a retry is what it is: not found.
    assert_eq!(code(&mut ns, unlink("/f")), "not_found");
}

/// A retried rename after the first committed answers with the moved inode, and the
/// namespace is left as the first try left it, even if the source path was reused.
#[test]
fn a_retried_rename_answers_as_applied_and_moves_nothing_more() {
    let mut ns = namespace();
    ok(&mut ns, put("/a", &[1], 1));
    let first = ok(&mut ns, with_token(rename("/a", "/b"), 21));
    ok(&mut ns, put("/a", &[2], 1));
    let before = ns.clone();
    assert_eq!(ok(&mut ns, with_token(rename("/a", "/b"), 21)), first);
    assert_eq!(ns, before, "the retry changed nothing");
    assert_eq!(inode_of(&first).ino, ns.lookup(VOL, "/b").unwrap().ino);
}

/// A retried mkdir answers with the directory, not "exists".
#[test]
fn a_retried_mkdir_answers_as_applied() {
    let mut ns = namespace();
    let first = ok(&mut ns, with_token(mkdir("/m", false), 31));
    assert_eq!(ok(&mut ns, with_token(mkdir("/m", false), 31)), first);
    assert_eq!(code(&mut ns, mkdir("/m", false)), "exists");
}

/// Creating a volume carries no token: a retry with the same settings answers with
/// the volume as it was created; other settings are refused.
#[test]
fn a_retried_volume_create_answers_as_applied() {
    let mut ns = namespace();
    let first = ok(&mut ns, create_volume("logs"));
    // The retry is proposed later (another `at`) by another member.
    let mut retry = create_volume("logs");
    if let keel_dir::DirCommand::CreateVolume { at, .. } = &mut retry {
        *at += 5_000;
    }
    assert_eq!(ok(&mut ns, retry), first);
    let mut other = create_volume("logs");
    if let keel_dir::DirCommand::CreateVolume { replication, .. } = &mut other {
        *replication = keel_dir::Replication::Async;
    }
    assert_eq!(code(&mut ns, other), "exists");
}
