//! Bucket names, object keys, upload ids and list tokens: the pure parsers every S3
//! request goes through before it reaches the file service.
//!
//! Owns: which bucket names are DNS-safe, which keys name a file (no traversal, no
//! empty segment, not the reserved upload directory), the shape of an upload id, the
//! encoding of continuation tokens and of `encoding-type=url`. Must never: touch the
//! file service, or accept a key that `FileService::resolve` would read as a
//! different path than the one the client named.

use std::fmt;

/// The hidden directory at a volume's root that holds multipart uploads in progress
/// (`.keel-uploads/<upload-id>/`). Never listed, never addressable as a key.
pub const UPLOADS_DIR: &str = ".keel-uploads";

/// The longest key S3 allows, in bytes.
pub const MAX_KEY_LEN: usize = 1024;

/// The longest name of one path segment the file service allows, in bytes.
pub const MAX_SEGMENT_LEN: usize = 255;

/// Whether `name` is a DNS-safe bucket name: 3 to 63 bytes of lowercase letters,
/// digits and hyphens, neither starting nor ending with a hyphen. (Stricter than S3,
/// which also allows dots; a dotted name cannot be a volume.)
pub fn is_bucket_name(name: &str) -> bool {
    let b = name.as_bytes();
    (3..=63).contains(&b.len())
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

/// Why a key is refused.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum KeyError {
    #[error("the key is longer than {MAX_KEY_LEN} bytes")]
    TooLong,
    #[error("invalid key: {0}")]
    Invalid(&'static str),
}

/// A key checked to name a path inside a volume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key<'a> {
    /// The path as the file service reads it (`a/b/c`, no trailing slash).
    pub path: &'a str,
    /// The key ended with `/`: a "folder" marker, i.e. a directory.
    pub dir_marker: bool,
}

impl Key<'_> {
    /// The directory part and the last name (`("a/b", "c")`; `("", "c")` at the root).
    pub fn split(&self) -> (&str, &str) {
        match self.path.rsplit_once('/') {
            Some((d, n)) => (d, n),
            None => ("", self.path),
        }
    }
}

/// Checks a key: at most 1024 bytes; no NUL; not starting with `/`; no empty, `.` or
/// `..` segment; no segment over 255 bytes; the first segment not the reserved
/// upload directory. One trailing `/` is allowed and marks a directory.
pub fn parse_key(key: &str) -> Result<Key<'_>, KeyError> {
    if key.len() > MAX_KEY_LEN {
        return Err(KeyError::TooLong);
    }
    if key.is_empty() {
        return Err(KeyError::Invalid("an empty key"));
    }
    if key.contains('\0') {
        return Err(KeyError::Invalid("a NUL byte"));
    }
    if key.starts_with('/') {
        return Err(KeyError::Invalid("a leading '/'"));
    }
    let (path, dir_marker) = match key.strip_suffix('/') {
        Some(p) => (p, true),
        None => (key, false),
    };
    if path.is_empty() {
        return Err(KeyError::Invalid("an empty key"));
    }
    for (i, seg) in path.split('/').enumerate() {
        match seg {
            "" => return Err(KeyError::Invalid("an empty path segment")),
            "." | ".." => return Err(KeyError::Invalid("a '.' or '..' segment")),
            s if s.len() > MAX_SEGMENT_LEN => {
                return Err(KeyError::Invalid("a path segment over 255 bytes"))
            }
            UPLOADS_DIR if i == 0 => {
                return Err(KeyError::Invalid("the reserved upload directory"))
            }
            _ => {}
        }
    }
    Ok(Key { path, dir_marker })
}

/// An upload id: 32 lowercase hex digits (so it is a safe directory name).
pub fn is_upload_id(id: &str) -> bool {
    id.len() == 32
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The file name of part `n` in an upload directory (sorts in part order).
pub fn part_name(n: i32) -> String {
    format!("part-{n:05}")
}

/// The part number a part file's name carries.
pub fn parse_part_name(name: &str) -> Option<i32> {
    let n = name.strip_prefix("part-")?;
    if n.len() != 5 || !n.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    n.parse().ok().filter(|n| (1..=10_000).contains(n))
}

/// Why a continuation token is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadToken;

impl fmt::Display for BadToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the continuation token is not valid")
    }
}

/// A ListObjectsV2 continuation token: the last key or common prefix returned, hex.
pub fn encode_token(last: &str) -> String {
    hex::encode(last.as_bytes())
}

/// The longest key a continuation token may carry. Longer than [`MAX_KEY_LEN`]: a
/// path made over NFS can be longer than an S3 key, and a listing must be able to
/// continue after it.
pub const MAX_TOKEN_KEY_LEN: usize = 64 << 10;

pub fn decode_token(token: &str) -> Result<String, BadToken> {
    if token.len() > 2 * MAX_TOKEN_KEY_LEN {
        return Err(BadToken);
    }
    let bytes = hex::decode(token).map_err(|_| BadToken)?;
    String::from_utf8(bytes).map_err(|_| BadToken)
}

/// `encoding-type=url`: percent-encodes everything but unreserved characters and `/`.
pub fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The `max-keys` (or `max-parts`) asked for, clamped to `0..=1000` (default 1000).
pub fn clamp_max(asked: Option<i32>) -> usize {
    asked.map_or(1000, |n| n.clamp(0, 1000) as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_names() {
        for ok in ["abc", "a-b", "0ab", &"a".repeat(63), "my-bucket-1"] {
            assert!(is_bucket_name(ok), "{ok}");
        }
        for bad in [
            "ab",
            &"a".repeat(64),
            "-ab",
            "ab-",
            "Abc",
            "a_b",
            "a.b",
            "a b",
            "",
            "ab\0",
            "ä-b",
        ] {
            assert!(!is_bucket_name(bad), "{bad}");
        }
    }

    #[test]
    fn keys() {
        assert_eq!(
            parse_key("a/b/c").unwrap(),
            Key {
                path: "a/b/c",
                dir_marker: false
            }
        );
        assert_eq!(parse_key("a/b/").unwrap().path, "a/b");
        assert!(parse_key("a/b/").unwrap().dir_marker);
        assert_eq!(parse_key("a/b/c").unwrap().split(), ("a/b", "c"));
        assert_eq!(parse_key("c").unwrap().split(), ("", "c"));
        assert_eq!(
            parse_key("x/.keel-uploads").unwrap().path,
            "x/.keel-uploads"
        );
        assert_eq!(parse_key("..a").unwrap().path, "..a");
        for bad in [
            "",
            "/",
            "/a",
            "a//b",
            "a/../b",
            "..",
            ".",
            "a/.",
            "./a",
            "a\0b",
            "a//",
            ".keel-uploads",
            ".keel-uploads/x/part-00001",
        ] {
            assert!(
                matches!(parse_key(bad), Err(KeyError::Invalid(_))),
                "{bad:?}"
            );
        }
        assert_eq!(parse_key(&"a".repeat(1025)), Err(KeyError::TooLong));
        assert!(parse_key(&"a".repeat(256)).is_err());
        assert!(parse_key(&format!("{}/{}", "a".repeat(255), "b".repeat(255))).is_ok());
    }

    #[test]
    fn tokens_and_parts() {
        for s in ["", "a/b", "ü/x y"] {
            assert_eq!(decode_token(&encode_token(s)).unwrap(), s);
        }
        // Found by the fuzz target `names`: a key over 1024 bytes (a path made over
        // NFS can be) gave a token that was refused, so a listing could not go on.
        let long = "é/".repeat(1500);
        assert_eq!(decode_token(&encode_token(&long)).unwrap(), long);
        assert_eq!(
            decode_token(&"61".repeat(MAX_TOKEN_KEY_LEN + 1)),
            Err(BadToken)
        );
        assert_eq!(decode_token("zz"), Err(BadToken));
        assert_eq!(decode_token("ff"), Err(BadToken));
        assert_eq!(parse_part_name(&part_name(7)), Some(7));
        assert_eq!(parse_part_name("part-00000"), None);
        assert_eq!(parse_part_name("part-0001"), None);
        assert_eq!(parse_part_name("upload"), None);
        assert!(is_upload_id(&"0a".repeat(16)));
        assert!(!is_upload_id("../../x"));
        assert_eq!(url_encode("a b/ü+"), "a%20b/%C3%BC%2B");
        assert_eq!(clamp_max(None), 1000);
        assert_eq!(clamp_max(Some(-3)), 0);
        assert_eq!(clamp_max(Some(5000)), 1000);
    }
}
