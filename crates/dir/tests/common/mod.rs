//! Helpers shared by the directory tests: a namespace with a volume, command builders,
//! and `ok` / `fail`, which apply a command and check the namespace's invariants (and,
//! on failure, that nothing changed).

#![allow(dead_code)]

pub mod random;
pub mod store;

use keel_core::ObjectId;
use keel_dir::{
    ChunkRef, DirCommand, DirError, DirReply, Inode, Namespace, Replication, MIN_CHUNK_SIZE,
};

/// The volume every test works in.
pub const VOL: &str = "v";
/// Its chunk size: 4 KiB.
pub const CS: u64 = MIN_CHUNK_SIZE;

/// A namespace holding the empty volume [`VOL`] with chunks of [`CS`] bytes.
pub fn namespace() -> Namespace {
    let mut ns = Namespace::new();
    ok(&mut ns, create_volume(VOL));
    ns
}

pub fn create_volume(name: &str) -> DirCommand {
    DirCommand::CreateVolume {
        name: name.into(),
        chunk_size: Some(CS),
        replication: Replication::Sync,
        at: 1,
    }
}

pub fn mkdir(path: &str, parents: bool) -> DirCommand {
    DirCommand::Mkdir {
        volume: VOL.into(),
        path: path.into(),
        mode: 0o750,
        uid: 10,
        gid: 20,
        parents,
        at: 100,
        token: None,
    }
}

/// A chunk of object `id` holding `len` bytes.
pub fn chunk(id: u128, len: u64) -> ChunkRef {
    ChunkRef {
        object: ObjectId(id),
        len,
    }
}

/// Whole chunks with ids `ids`, the last one holding `last` bytes; size follows.
pub fn put(path: &str, ids: &[u128], last: u64) -> DirCommand {
    let chunks: Vec<ChunkRef> = ids
        .iter()
        .enumerate()
        .map(|(i, &id)| chunk(id, if i + 1 == ids.len() { last } else { CS }))
        .collect();
    let size = match chunks.len() {
        0 => 0,
        n => (n as u64 - 1) * CS + last,
    };
    DirCommand::PutFile {
        volume: VOL.into(),
        path: path.into(),
        size,
        chunks,
        mode: 0o640,
        uid: 10,
        gid: 20,
        create_parents: false,
        at: 200,
        token: None,
        md5: None,
        meta: Default::default(),
    }
}

pub fn unlink(path: &str) -> DirCommand {
    DirCommand::Unlink {
        volume: VOL.into(),
        path: path.into(),
        at: 300,
        token: None,
    }
}

pub fn rmdir(path: &str) -> DirCommand {
    DirCommand::Rmdir {
        volume: VOL.into(),
        path: path.into(),
        at: 300,
        token: None,
    }
}

pub fn rename(from: &str, to: &str) -> DirCommand {
    DirCommand::Rename {
        volume: VOL.into(),
        from: from.into(),
        to: to.into(),
        at: 400,
        token: None,
    }
}

/// `SetAttr` changing only the size.
pub fn truncate(path: &str, size: u64) -> DirCommand {
    DirCommand::SetAttr {
        volume: VOL.into(),
        path: path.into(),
        mode: None,
        uid: None,
        gid: None,
        size: Some(size),
        atime: None,
        mtime: None,
        at: 500,
        token: None,
    }
}

/// The command with its token set.
pub fn with_token(mut cmd: DirCommand, new: u128) -> DirCommand {
    match &mut cmd {
        DirCommand::CreateVolume { .. } | DirCommand::DeleteVolume { .. } => {
            panic!("volume commands carry no token")
        }
        DirCommand::Expect { then, .. } => {
            let inner = with_token((**then).clone(), new);
            **then = inner;
        }
        DirCommand::WriteChunks { token, .. } => *token = Some(new),
        DirCommand::Mkdir { token, .. }
        | DirCommand::PutFile { token, .. }
        | DirCommand::Unlink { token, .. }
        | DirCommand::Rmdir { token, .. }
        | DirCommand::Rename { token, .. }
        | DirCommand::SetAttr { token, .. } => *token = Some(new),
    }
    cmd
}

/// Applies a command that must succeed; checks the invariants after it.
pub fn ok(ns: &mut Namespace, cmd: DirCommand) -> DirReply {
    let shown = format!("{cmd:?}");
    let reply = ns
        .apply(cmd)
        .unwrap_or_else(|e| panic!("{shown} failed: {e}"));
    ns.check_invariants().unwrap();
    reply
}

/// Applies a command (without a token) that must fail; checks that it changed nothing.
pub fn fail(ns: &mut Namespace, cmd: DirCommand) -> DirError {
    assert_eq!(cmd.token(), None, "a token would be remembered");
    ns.take_changes();
    let before = ns.clone();
    let shown = format!("{cmd:?}");
    let err = match ns.apply(cmd) {
        Ok(reply) => panic!("{shown} succeeded: {reply:?}"),
        Err(e) => e,
    };
    assert_eq!(
        *ns, before,
        "{shown} failed ({err}) but changed the namespace"
    );
    assert!(ns.take_changes().is_empty(), "{shown} recorded changes");
    assert!(!err.to_string().contains('\n'), "multi-line message: {err}");
    err
}

/// The error code of a failing command.
pub fn code(ns: &mut Namespace, cmd: DirCommand) -> &'static str {
    fail(ns, cmd).code()
}

/// The inode of a `Freed` or `Inode` reply.
pub fn inode_of(reply: &DirReply) -> Inode {
    match reply {
        DirReply::Inode(inode) => inode.clone(),
        DirReply::Freed {
            inode: Some(inode), ..
        } => inode.clone(),
        other => panic!("no inode in {other:?}"),
    }
}

/// The freed objects' ids of a `Freed` reply.
pub fn freed_of(reply: &DirReply) -> Vec<u128> {
    match reply {
        DirReply::Freed { freed, .. } => freed.iter().map(|o| o.0).collect(),
        other => panic!("not a Freed reply: {other:?}"),
    }
}
