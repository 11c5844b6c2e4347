//! `readdir`: listing in name order, a page at a time.

mod common;

use common::*;
use keel_dir::{DirPage, FileKind};

#[test]
fn paging_over_a_thousand_entries_sees_each_once_in_order() {
    let mut ns = namespace();
    ok(&mut ns, mkdir("/big", false));
    ok(&mut ns, mkdir("/big/sub", false));
    for i in 0..1000 {
        ok(&mut ns, put(&format!("/big/f{i:04}"), &[i + 1], 10));
    }
    ok(&mut ns, put("/big/sub/hidden", &[], 0));
    ok(&mut ns, put("/bigger", &[], 0));
    let mut names = Vec::new();
    let mut after: Option<String> = None;
    let mut pages = 0;
    loop {
        let page = ns.readdir(VOL, "/big", after.as_deref(), 64).unwrap();
        pages += 1;
        assert!(page.entries.len() <= 64);
        names.extend(page.entries.iter().map(|e| e.name.clone()));
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    assert_eq!(pages, 1001_usize.div_ceil(64));
    let mut expected: Vec<String> = (0..1000).map(|i| format!("f{i:04}")).collect();
    expected.push("sub".into());
    assert_eq!(names, expected);
    let first = &ns.readdir(VOL, "/big", None, 1).unwrap().entries[0];
    assert_eq!(
        (first.kind, first.size, first.mtime),
        (FileKind::File, 10, 200)
    );
    assert_eq!(first.ino, ns.lookup(VOL, "/big/f0000").unwrap().ino);
}

#[test]
fn exact_pages_and_empty_directories() {
    let mut ns = namespace();
    ok(&mut ns, mkdir("/d", false));
    assert_eq!(
        ns.readdir(VOL, "/d", None, 5).unwrap(),
        DirPage {
            entries: vec![],
            next: None
        }
    );
    for name in ["b", "a", "c"] {
        ok(&mut ns, mkdir(&format!("/d/{name}"), false));
    }
    let page = ns.readdir(VOL, "/d", None, 3).unwrap();
    assert_eq!((page.entries.len(), page.next), (3, None));
    let page = ns.readdir(VOL, "/d", None, 2).unwrap();
    assert_eq!(page.next.as_deref(), Some("b"));
    let page = ns.readdir(VOL, "/d", Some("aa"), 10).unwrap();
    let names: Vec<&str> = page.entries.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, vec!["b", "c"], "after a name that is not there");
    assert!(ns
        .readdir(VOL, "/d", Some("c"), 10)
        .unwrap()
        .entries
        .is_empty());
    assert_eq!(
        ns.readdir(VOL, "/", None, 10).unwrap().entries[0].kind,
        FileKind::Dir
    );
}

#[test]
fn readdir_errors() {
    let mut ns = namespace();
    ok(&mut ns, put("/f", &[], 0));
    assert_eq!(
        ns.readdir(VOL, "/f", None, 1).unwrap_err().code(),
        "not_dir"
    );
    assert_eq!(
        ns.readdir(VOL, "/nope", None, 1).unwrap_err().code(),
        "not_found"
    );
    assert_eq!(
        ns.readdir(VOL, "/", None, 0).unwrap_err().code(),
        "invalid_argument"
    );
}
