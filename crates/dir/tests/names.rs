//! Hostile names and paths, through every path-taking command and read; trailing
//! slashes.

mod common;

use common::*;
use keel_dir::{DirCommand, DirError};

const HOSTILE: [(&str, &str); 11] = [
    ("/..", "'..' is not allowed"),
    ("/a/../b", "'..' is not allowed"),
    ("/.", "'.' is not allowed"),
    ("/a\0b", keel_dir::CONTROL_RULE),
    ("/new\nline.txt", keel_dir::CONTROL_RULE),
    ("/tab\there", keel_dir::CONTROL_RULE),
    ("/del\u{7f}", keel_dir::CONTROL_RULE),
    ("//", "empty path component"),
    ("/a//b", "empty path component"),
    ("", "path must start with '/'"),
    ("a", "path must start with '/'"),
];

fn every_command(path: &str) -> Vec<DirCommand> {
    let mut put = put(path, &[1], 1);
    if let DirCommand::PutFile { create_parents, .. } = &mut put {
        *create_parents = true;
    }
    vec![
        mkdir(path, true),
        mkdir(path, false),
        put,
        unlink(path),
        rmdir(path),
        rename(path, "/ok"),
        rename("/ok", path),
        truncate(path, 0),
    ]
}

#[test]
fn hostile_paths_are_refused_by_every_command_with_the_reason() {
    let mut ns = namespace();
    ok(&mut ns, put("/ok", &[], 0));
    let long = format!("/{}", "x".repeat(256));
    let hostile = HOSTILE
        .iter()
        .map(|(p, r)| (p.to_string(), *r))
        .chain([(long, "name longer than 255 bytes")]);
    for (path, reason) in hostile {
        for cmd in every_command(&path) {
            match fail(&mut ns, cmd) {
                DirError::InvalidName { path: p, reason: r } => {
                    assert_eq!((p.as_str(), r.as_str()), (path.as_str(), reason))
                }
                other => panic!("{path:?}: {other:?}"),
            }
        }
        assert_eq!(ns.lookup(VOL, &path).unwrap_err().code(), "invalid_name");
        assert_eq!(
            ns.readdir(VOL, &path, None, 1).unwrap_err().code(),
            "invalid_name"
        );
    }
}

#[test]
fn a_255_byte_name_and_odd_but_legal_names_work() {
    let mut ns = namespace();
    for name in [
        "x".repeat(255),
        "...".into(),
        ".hidden".into(),
        "a b c".into(),
        "back\\slash".into(),
        "é".repeat(127),
    ] {
        let path = format!("/{name}");
        ok(&mut ns, put(&path, &[], 0));
        assert_eq!(ns.lookup(VOL, &path).unwrap().size, 0);
    }
    let path = format!("/{}", "é".repeat(128)); // 256 bytes
    assert_eq!(code(&mut ns, put(&path, &[], 0)), "invalid_name");
}

#[test]
fn a_trailing_slash_asks_for_a_directory() {
    let mut ns = namespace();
    ok(&mut ns, mkdir("/d/", false));
    ok(&mut ns, put("/f", &[1], 10));
    assert!(ns.lookup(VOL, "/d/").unwrap().is_dir());
    assert_eq!(ns.lookup(VOL, "/f/").unwrap_err().code(), "not_dir");
    assert_eq!(code(&mut ns, put("/f/", &[2], 10)), "not_dir");
    assert_eq!(code(&mut ns, put("/new/", &[2], 10)), "is_dir");
    assert_eq!(code(&mut ns, unlink("/f/")), "not_dir");
    assert_eq!(code(&mut ns, rename("/f/", "/g")), "not_dir");
    assert_eq!(code(&mut ns, rename("/f", "/g/")), "not_dir");
    assert_eq!(code(&mut ns, truncate("/f/", 0)), "not_dir");
    ok(&mut ns, rename("/d/", "/e/"));
    ok(&mut ns, rmdir("/e/"));
}
