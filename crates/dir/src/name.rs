//! Names and paths: what a volume name, a path component and a path may be.
//!
//! Owns: [`parse_path`], [`validate_name`], [`validate_volume_name`]; every
//! path-taking command and read goes through them, and gateways use them to refuse a
//! bad name before it reaches Raft. Must never: look at the namespace (validity of a
//! name does not depend on what exists).

use crate::DirError;

/// The longest name of a directory entry, in bytes.
pub const MAX_NAME_BYTES: usize = 255;

/// The longest volume name, in bytes.
const MAX_VOLUME_NAME_BYTES: usize = 64;

/// Splits an absolute path into its validated components: `"/"` is the root (no
/// components), `"/a/b"` is `["a", "b"]`. A single trailing slash is tolerated
/// (`"/a/b/"`; commands then require the target to be a directory), an empty component
/// anywhere else (`""`, `"//"`, `"/a//b"`) is an error, and so is a relative path.
pub fn parse_path(path: &str) -> Result<Vec<String>, DirError> {
    let Some(rest) = path.strip_prefix('/') else {
        return Err(DirError::invalid_name(path, "path must start with '/'"));
    };
    if rest.is_empty() {
        return Ok(Vec::new());
    }
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    rest.split('/')
        .map(|name| {
            validate_name(name)
                .map(|()| name.to_owned())
                .map_err(|reason| DirError::invalid_name(path, reason))
        })
        .collect()
}

/// Whether a path ends with a slash after something (`"/a/"`), which asks that it
/// name a directory.
pub(crate) fn names_dir(path: &str) -> bool {
    path.len() > 1 && path.ends_with('/')
}

/// The rule a name with a control character breaks (NUL, tab, newline, DEL, C1...).
pub const CONTROL_RULE: &str =
    "control characters (NUL, tab, newline, U+0001 to U+001F, U+007F to U+009F) are not allowed in names";

/// Checks one directory entry name; the error is the reason, for a message. A name is
/// stored exactly as given or refused: nothing is stripped. Any other character,
/// `\\` included, is allowed.
pub fn validate_name(name: &str) -> Result<(), &'static str> {
    match name {
        "" => Err("empty path component"),
        "." => Err("'.' is not allowed"),
        ".." => Err("'..' is not allowed"),
        _ if name.len() > MAX_NAME_BYTES => Err("name longer than 255 bytes"),
        _ if name.chars().any(char::is_control) => Err(CONTROL_RULE),
        _ if name.contains('/') => Err("'/' in a name"),
        _ => Ok(()),
    }
}

/// Checks a volume name: 1 to 64 of `[A-Za-z0-9_-]`.
pub fn validate_volume_name(name: &str) -> Result<(), DirError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_VOLUME_NAME_BYTES
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(DirError::invalid_name(
            name,
            "a volume name is 1 to 64 of [A-Za-z0-9_-]",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(path: &str) -> String {
        match parse_path(path) {
            Err(DirError::InvalidName { reason, .. }) => reason,
            other => panic!("{path:?} gave {other:?}"),
        }
    }

    #[test]
    fn good_paths_split() {
        assert_eq!(parse_path("/").unwrap(), Vec::<String>::new());
        assert_eq!(parse_path("/a").unwrap(), vec!["a"]);
        assert_eq!(parse_path("/a/b c/").unwrap(), vec!["a", "b c"]);
        assert_eq!(parse_path("/...").unwrap(), vec!["..."]);
        assert_eq!(
            parse_path("/back\\slash.txt").unwrap(),
            vec!["back\\slash.txt"]
        );
        assert_eq!(parse_path("/é ü ✓").unwrap(), vec!["é ü ✓"]);
        assert_eq!(
            parse_path(&format!("/{}", "x".repeat(255))).unwrap().len(),
            1
        );
    }

    #[test]
    fn hostile_paths_are_refused_with_a_reason() {
        assert_eq!(reason("/a/.."), "'..' is not allowed");
        assert_eq!(reason("/./a"), "'.' is not allowed");
        assert_eq!(reason("/a\0b"), CONTROL_RULE);
        assert_eq!(reason("/new\nline.txt"), CONTROL_RULE);
        assert_eq!(reason("/tab\there"), CONTROL_RULE);
        assert_eq!(reason("/d/cr\r"), CONTROL_RULE);
        assert_eq!(reason("/del\u{7f}"), CONTROL_RULE);
        assert_eq!(reason("/c1\u{85}"), CONTROL_RULE);
        assert_eq!(
            reason(&format!("/{}", "x".repeat(256))),
            "name longer than 255 bytes"
        );
        assert_eq!(reason("//"), "empty path component");
        assert_eq!(reason("/a//b"), "empty path component");
        assert_eq!(reason("/a//"), "empty path component");
        assert_eq!(reason(""), "path must start with '/'");
        assert_eq!(reason("a/b"), "path must start with '/'");
    }

    #[test]
    fn names_and_volume_names() {
        assert_eq!(validate_name("a/b"), Err("'/' in a name"));
        assert!(validate_name("ok").is_ok());
        assert!(validate_volume_name("vol_1-A").is_ok());
        assert!(validate_volume_name(&"v".repeat(64)).is_ok());
        for bad in ["", "a b", "a/b", "é", &"v".repeat(65)] {
            assert_eq!(
                validate_volume_name(bad).unwrap_err().code(),
                "invalid_name"
            );
        }
        assert!(names_dir("/a/") && !names_dir("/") && !names_dir("/a"));
    }
}
