//! `CreateVolume`, the volume reads, and commands naming an unknown volume.

mod common;

use common::*;
use keel_dir::{
    DirCommand, DirError, DirReply, FileKind, Namespace, Replication, DEFAULT_CHUNK_SIZE,
    MAX_CHUNK_SIZE, MIN_CHUNK_SIZE,
};

fn create(name: &str, chunk_size: Option<u64>, replication: Replication) -> DirCommand {
    DirCommand::CreateVolume {
        name: name.into(),
        chunk_size,
        replication,
        at: 42,
    }
}

#[test]
fn a_volume_gets_a_root_directory() {
    let mut ns = Namespace::new();
    let DirReply::Volume(volume) = ok(&mut ns, create("data", None, Replication::Async)) else {
        panic!("not a volume reply");
    };
    assert_eq!(volume.chunk_size, DEFAULT_CHUNK_SIZE);
    assert_eq!(volume.replication, Replication::Async);
    assert_eq!(volume.created_at, 42);
    assert_eq!(ns.volume("data"), Some(&volume));
    let root = ns.lookup("data", "/").unwrap();
    assert_eq!(root.ino, volume.root);
    assert_eq!(
        (root.kind, root.nlink, root.parent),
        (FileKind::Dir, 2, root.ino)
    );
    assert_eq!((root.mode, root.uid, root.gid), (0o755, 0, 0));
    assert_eq!(ns.getattr(volume.root).unwrap(), root);
    assert_eq!(ns.stats(), (1, 1));
}

#[test]
fn creating_again_is_idempotent_unless_settings_differ() {
    let mut ns = Namespace::new();
    let first = ok(&mut ns, create("data", None, Replication::Sync));
    let again = ok(
        &mut ns,
        create("data", Some(DEFAULT_CHUNK_SIZE), Replication::Sync),
    );
    assert_eq!(first, again);
    assert_eq!(ns.stats(), (1, 1));
    assert_eq!(
        fail(&mut ns, create("data", None, Replication::Async)),
        DirError::Exists {
            path: "data".into()
        }
    );
    assert_eq!(
        code(
            &mut ns,
            create("data", Some(MIN_CHUNK_SIZE), Replication::Sync)
        ),
        "exists"
    );
}

#[test]
fn bad_names_and_chunk_sizes_are_refused() {
    let mut ns = Namespace::new();
    for name in ["", "a b", "../x", "a/b", "é", &"v".repeat(65)] {
        assert_eq!(
            code(&mut ns, create(name, None, Replication::Sync)),
            "invalid_name"
        );
    }
    // The largest chunk is the one limit the store and the RPC use: 64 MiB, not 1 GiB.
    assert_eq!(MAX_CHUNK_SIZE, keel_core::limits::MAX_CHUNK_SIZE);
    assert_eq!(MAX_CHUNK_SIZE, 64 << 20);
    for size in [0, MIN_CHUNK_SIZE - 1, MAX_CHUNK_SIZE + 1, 1 << 30] {
        assert_eq!(
            code(&mut ns, create("v", Some(size), Replication::Sync)),
            "invalid_argument"
        );
    }
    ok(
        &mut ns,
        create(&"v".repeat(64), Some(MAX_CHUNK_SIZE), Replication::Sync),
    );
    ok(
        &mut ns,
        create("A-z_09", Some(MIN_CHUNK_SIZE), Replication::Sync),
    );
    let names: Vec<&str> = ns.volumes().map(|v| v.name.as_str()).collect();
    assert_eq!(names, vec!["A-z_09", &"v".repeat(64)]);
}

#[test]
fn volumes_have_separate_trees_and_never_share_inode_numbers() {
    let mut ns = namespace();
    ok(&mut ns, create_volume("w"));
    ok(&mut ns, mkdir("/a", false));
    let a = ns.lookup(VOL, "/a").unwrap();
    assert_eq!(ns.lookup("w", "/a").unwrap_err().code(), "not_found");
    let w_root = ns.lookup("w", "/").unwrap();
    assert!(a.ino > w_root.ino && w_root.ino > ns.lookup(VOL, "/").unwrap().ino);
}

#[test]
fn an_unknown_volume_is_no_volume() {
    let mut ns = namespace();
    let mut cmd = mkdir("/a", true);
    if let DirCommand::Mkdir { volume, .. } = &mut cmd {
        *volume = "nope".into();
    }
    assert_eq!(
        fail(&mut ns, cmd),
        DirError::NoVolume {
            volume: "nope".into()
        }
    );
    assert_eq!(ns.lookup("nope", "/").unwrap_err().code(), "no_volume");
    assert_eq!(
        ns.readdir("nope", "/", None, 10).unwrap_err().code(),
        "no_volume"
    );
    assert!(ns.volume("nope").is_none());
}

#[test]
fn errors_have_stable_codes_and_one_line_messages_naming_the_path() {
    let err = DirError::NotFound {
        path: "/a\nb".into(),
    };
    assert_eq!(err.to_string(), r#""/a\nb": no such file or directory"#);
    let json = serde_json::to_string(&err).unwrap();
    assert_eq!(json, r#"{"code":"not_found","path":"/a\nb"}"#);
    assert_eq!(serde_json::from_str::<DirError>(&json).unwrap(), err);
    let ns = namespace();
    assert_eq!(
        ns.getattr(999).unwrap_err().to_string(),
        r##""#999": no such file or directory"##
    );
}
