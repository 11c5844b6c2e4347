//! Object listings (ListObjects, ListObjectsV2): the volume's tree walked in S3 key
//! order, with prefix, delimiter (common prefixes), a start key and a page size.
//!
//! Owns: the order of keys (bytewise over the whole key, so a directory `a` sorts as
//! `a/`, after a file `a-b`), which directories a listing must read (those whose keys
//! can match the prefix and come after the start key), and the roll-up into common
//! prefixes. Must never: list the reserved upload directory, or read a directory
//! whose keys cannot be part of the answer.
//!
//! Directories are listed as S3 "folders": under a delimiter that rolls them up they
//! appear as a common prefix even when empty; without a delimiter an empty directory
//! contributes no key (S3 has no empty folders, only keys).

use crate::names::UPLOADS_DIR;
use keel_fs::{Attr, FileService, FsError, FsResult};

/// What a listing asks for.
#[derive(Debug, Clone, Default)]
pub struct Query<'a> {
    pub prefix: &'a str,
    pub delimiter: Option<&'a str>,
    /// Only keys (and common prefixes) after this one. A value that is itself a common
    /// prefix under `delimiter` (what a continuation after a prefix carries) skips
    /// every key under it.
    pub after: Option<&'a str>,
    pub max: usize,
}

/// One line of a listing.
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    Object { key: String, attr: Attr },
    Prefix(String),
}

impl Item {
    pub fn key(&self) -> &str {
        match self {
            Item::Object { key, .. } | Item::Prefix(key) => key,
        }
    }
}

#[derive(Debug, Default)]
pub struct Listing {
    pub items: Vec<Item>,
    /// More items follow the last one.
    pub truncated: bool,
}

struct Entry {
    /// The full key: `dir/name` for a file, `dir/name/` for a directory.
    key: String,
    attr: Attr,
}

struct Frame {
    entries: Vec<Entry>,
    next: usize,
}

/// How many entries one `readdir` call asks for.
const PAGE: usize = 1000;

/// Reads a whole directory, keeps the entries whose keys can match `prefix`, sorted
/// by key.
async fn read_dir(
    fs: &dyn FileService,
    ino: keel_fs::Ino,
    key_prefix: &str,
    is_root: bool,
    prefix: &str,
) -> FsResult<Frame> {
    let mut entries = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = fs.readdir(ino, after.as_deref(), PAGE).await?;
        for e in &page.entries {
            if is_root && e.name == UPLOADS_DIR {
                continue;
            }
            let key = if e.attr.is_dir() {
                format!("{key_prefix}{}/", e.name)
            } else {
                format!("{key_prefix}{}", e.name)
            };
            let fits = key.starts_with(prefix) || (e.attr.is_dir() && prefix.starts_with(&key));
            if fits {
                entries.push(Entry {
                    key,
                    attr: e.attr.clone(),
                });
            }
        }
        match (page.more, page.entries.last()) {
            (true, Some(last)) => after = Some(last.name.clone()),
            _ => break,
        }
    }
    entries.sort_by(|a, b| a.key.as_bytes().cmp(b.key.as_bytes()));
    Ok(Frame { entries, next: 0 })
}

/// Lists `volume` as S3 keys. A prefix whose directory part does not exist (or is not
/// a directory, or is not a valid path) lists nothing.
pub async fn list(fs: &dyn FileService, volume: &str, q: &Query<'_>) -> FsResult<Listing> {
    let mut out = Listing::default();
    if q.max == 0 {
        return Ok(out);
    }
    let delimiter = q.delimiter.filter(|d| !d.is_empty());
    // Start at the deepest directory the prefix names.
    let dir_path = match q.prefix.rfind('/') {
        Some(i) => &q.prefix[..i],
        None => "",
    };
    if !dir_path.is_empty() && crate::names::parse_key(dir_path).is_err() {
        return Ok(out);
    }
    let start = match fs.resolve(volume, dir_path).await {
        Ok(a) if a.is_dir() => a,
        Ok(_) | Err(FsError::NotFound) | Err(FsError::NotDir) => return Ok(out),
        Err(e) => return Err(e),
    };
    let start_key = if dir_path.is_empty() {
        String::new()
    } else {
        format!("{dir_path}/")
    };
    // A start key that is a common prefix skips everything under it.
    let skip_under: Option<&str> = match (q.after, delimiter) {
        (Some(a), Some(d)) if a.starts_with(q.prefix) && a.len() > q.prefix.len() => {
            let rest = &a[q.prefix.len()..];
            match rest.find(d) {
                Some(i) if i + d.len() == rest.len() => Some(a),
                _ => None,
            }
        }
        _ => None,
    };
    let mut stack = vec![read_dir(fs, start.ino, &start_key, dir_path.is_empty(), q.prefix).await?];
    let mut last_prefix: Option<String> = None;
    while let Some(frame) = stack.last_mut() {
        let Some(e) = frame.entries.get(frame.next) else {
            stack.pop();
            continue;
        };
        frame.next += 1;
        let is_dir = e.attr.is_dir();
        let key = e.key.as_str();
        if let Some(a) = q.after {
            // A directory's keys all start with its key: skip it when they all sort
            // at or before the start key.
            let before = if is_dir {
                key <= a && !a.starts_with(key)
            } else {
                key <= a
            };
            if before {
                continue;
            }
        }
        if skip_under.is_some_and(|s| key.starts_with(s)) {
            continue;
        }
        if let Some(d) = delimiter {
            if let Some(rest) = key.strip_prefix(q.prefix) {
                if let Some(i) = rest.find(d) {
                    let cp = &key[..q.prefix.len() + i + d.len()];
                    if last_prefix.as_deref() != Some(cp) {
                        last_prefix = Some(cp.to_string());
                        out.items.push(Item::Prefix(cp.to_string()));
                    }
                    if out.items.len() > q.max {
                        break;
                    }
                    continue;
                }
            }
        }
        if is_dir {
            let (ino, key) = (e.attr.ino, e.key.clone());
            match read_dir(fs, ino, &key, false, q.prefix).await {
                Ok(f) => stack.push(f),
                // Removed while we walked: it has no keys now.
                Err(FsError::NotFound) | Err(FsError::Stale) | Err(FsError::NotDir) => {}
                Err(e) => return Err(e),
            }
            continue;
        }
        out.items.push(Item::Object {
            key: e.key.clone(),
            attr: e.attr.clone(),
        });
        if out.items.len() > q.max {
            break;
        }
    }
    if out.items.len() > q.max {
        out.items.truncate(q.max);
        out.truncated = true;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use keel_fs::mem::MemFs;
    use keel_fs::PutOptions;

    async fn fs_with(keys: &[&str]) -> MemFs {
        let fs = MemFs::new();
        fs.create_volume("v").await.unwrap();
        for k in keys {
            let body = Box::pin(futures::stream::iter(vec![Ok(Bytes::from_static(b"x"))]));
            fs.put_file("v", k, body, PutOptions::default())
                .await
                .unwrap();
        }
        fs
    }

    fn keys(l: &Listing) -> Vec<&str> {
        l.items
            .iter()
            .map(|i| match i {
                Item::Object { key, .. } => key.as_str(),
                Item::Prefix(p) => p.as_str(),
            })
            .collect()
    }

    async fn all(fs: &MemFs, prefix: &str, delimiter: Option<&str>, max: usize) -> Vec<String> {
        // Pages through with the last item as the start key, as the gateway does.
        let mut out = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let q = Query {
                prefix,
                delimiter,
                after: after.as_deref(),
                max,
            };
            let l = list(fs, "v", &q).await.unwrap();
            out.extend(keys(&l).into_iter().map(String::from));
            if !l.truncated {
                return out;
            }
            after = Some(l.items.last().unwrap().key().to_string());
        }
    }

    #[tokio::test]
    async fn bytewise_key_order_across_directories() {
        let fs = fs_with(&["a/b", "a-c", "a0", "b", "a/a/z"]).await;
        let l = list(
            &fs,
            "v",
            &Query {
                max: 100,
                ..Default::default()
            },
        )
        .await
        .unwrap();
        assert_eq!(keys(&l), vec!["a-c", "a/a/z", "a/b", "a0", "b"]);
        assert!(!l.truncated);
    }

    #[tokio::test]
    async fn prefix_delimiter_and_pages() {
        let fs = fs_with(&["p/1", "p/2", "p/d/x", "p/d/y", "p/e/z", "q", "p-x"]).await;
        for max in [1, 2, 3, 100] {
            assert_eq!(
                all(&fs, "p/", Some("/"), max).await,
                vec!["p/1", "p/2", "p/d/", "p/e/"],
                "max {max}"
            );
            assert_eq!(
                all(&fs, "", None, max).await,
                vec!["p-x", "p/1", "p/2", "p/d/x", "p/d/y", "p/e/z", "q"]
            );
            assert_eq!(all(&fs, "", Some("/"), max).await, vec!["p-x", "p/", "q"]);
            assert_eq!(
                all(&fs, "p", Some("-"), max).await,
                vec!["p-", "p/1", "p/2", "p/d/x", "p/d/y", "p/e/z"]
            );
            assert_eq!(all(&fs, "p/d", None, max).await, vec!["p/d/x", "p/d/y"]);
        }
        assert_eq!(all(&fs, "nope/", Some("/"), 10).await, Vec::<String>::new());
        assert_eq!(all(&fs, "q/", Some("/"), 10).await, Vec::<String>::new());
        assert_eq!(all(&fs, "a//b/", None, 10).await, Vec::<String>::new());
        let l = list(
            &fs,
            "v",
            &Query {
                max: 0,
                ..Default::default()
            },
        )
        .await
        .unwrap();
        assert!(l.items.is_empty() && !l.truncated);
    }

    #[tokio::test]
    async fn uploads_dir_is_hidden_and_empty_dirs_are_prefixes() {
        let fs = fs_with(&[".keel-uploads/u/part-00001", "a"]).await;
        let root = fs.resolve("v", "").await.unwrap();
        fs.mkdir(root.ino, "empty", 0o755).await.unwrap();
        assert_eq!(all(&fs, "", None, 10).await, vec!["a"]);
        assert_eq!(all(&fs, "", Some("/"), 10).await, vec!["a", "empty/"]);
    }
}
