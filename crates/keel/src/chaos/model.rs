//! What a chaos client knows it was acknowledged: for each of its paths, the contents
//! the path may hold now. An acknowledged put leaves one possibility; a put, mv or rm
//! whose outcome is unknown (an error, a timeout) adds one ("either"). A read is right
//! if it returns one of the possibilities; it is a lost write if it returns nothing
//! or an older acknowledged content where the path must hold a newer one.
//!
//! Owns: that bookkeeping, and the content of a file as a function of a seed. Must
//! never: do I/O, or narrow the possibilities on anything but an acknowledgement.

use std::collections::BTreeMap;
use std::hash::Hasher;

/// The content of one put: bytes drawn from `seed`, `len` of them, and their digest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Content {
    pub seed: u64,
    pub len: usize,
    pub digest: u64,
}

impl Content {
    /// Draws the content and returns it with its bytes.
    pub fn new(seed: u64, len: usize) -> (Content, Vec<u8>) {
        let bytes = bytes_of(seed, len);
        let digest = digest(&bytes);
        (Content { seed, len, digest }, bytes)
    }
}

/// `len` bytes of a xorshift stream seeded by `seed`.
pub fn bytes_of(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// A digest of bytes (SipHash with fixed keys: the same in every run).
pub fn digest(bytes: &[u8]) -> u64 {
    #[allow(deprecated)]
    let mut h = std::hash::SipHasher::new();
    h.write(bytes);
    h.finish()
}

/// What a path may hold: `None` is "no file".
#[derive(Clone, Debug, Default)]
pub struct PathState {
    pub possible: Vec<Option<Content>>,
    /// Every content ever acknowledged or tried at this path (to tell a lost write,
    /// an older content, from a wrong read).
    pub history: Vec<Content>,
}

impl PathState {
    pub fn may_be_absent(&self) -> bool {
        self.possible.contains(&None)
    }

    pub fn must_exist(&self) -> bool {
        !self.possible.is_empty() && !self.may_be_absent()
    }

    fn add(&mut self, c: Option<Content>) {
        if !self.possible.contains(&c) {
            self.possible.push(c);
        }
        if let Some(c) = c {
            if !self.history.contains(&c) {
                self.history.push(c);
            }
        }
    }
}

/// How a read compares with what was acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Judged {
    Right,
    /// Nothing, or an older content, where a newer acknowledged one must be.
    Lost,
    /// Bytes that were never put at this path.
    Wrong,
}

/// One client's paths.
#[derive(Default, Debug)]
pub struct Model {
    pub paths: BTreeMap<String, PathState>,
}

impl Model {
    fn state(&mut self, path: &str) -> &mut PathState {
        self.paths
            .entry(path.to_string())
            .or_insert_with(|| PathState {
                possible: vec![None],
                history: vec![],
            })
    }

    pub fn put_acknowledged(&mut self, path: &str, c: Content) {
        let s = self.state(path);
        s.possible = vec![Some(c)];
        s.add(Some(c));
    }

    pub fn put_unknown(&mut self, path: &str, c: Content) {
        self.state(path).add(Some(c));
    }

    pub fn rm_acknowledged(&mut self, path: &str) {
        self.state(path).possible = vec![None];
    }

    pub fn rm_unknown(&mut self, path: &str) {
        self.state(path).add(None);
    }

    pub fn mv_acknowledged(&mut self, from: &str, to: &str) {
        let moved = self.state(from).clone();
        self.state(from).possible = vec![None];
        let t = self.state(to);
        t.possible = moved.possible.into_iter().filter(Option::is_some).collect();
        for c in moved.history {
            if !t.history.contains(&c) {
                t.history.push(c);
            }
        }
        if t.possible.is_empty() {
            t.possible = vec![None];
        }
    }

    pub fn mv_unknown(&mut self, from: &str, to: &str) {
        let moved = self.state(from).clone();
        self.state(from).add(None);
        let t = self.state(to);
        for c in moved.possible {
            t.add(c);
        }
        t.add(None);
        for c in moved.history {
            if !t.history.contains(&c) {
                t.history.push(c);
            }
        }
    }

    /// Judges a read of `path` that returned bytes with `digest` (`None`: no file).
    pub fn judge(&self, path: &str, got: Option<(usize, u64)>) -> Judged {
        let Some(s) = self.paths.get(path) else {
            return if got.is_none() {
                Judged::Right
            } else {
                Judged::Wrong
            };
        };
        let matches = |c: &Content| got.is_some_and(|(len, d)| c.len == len && c.digest == d);
        match got {
            None if s.may_be_absent() => Judged::Right,
            None => Judged::Lost,
            Some(_) if s.possible.iter().flatten().any(matches) => Judged::Right,
            Some(_) if s.history.iter().any(matches) => Judged::Lost,
            Some(_) => Judged::Wrong,
        }
    }

    /// Paths that may hold a file.
    pub fn maybe_present(&self) -> Vec<String> {
        self.paths
            .iter()
            .filter(|(_, s)| s.possible.iter().any(Option::is_some))
            .map(|(p, _)| p.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(seed: u64) -> Content {
        Content::new(seed, 100).0
    }

    fn got(x: Content) -> Option<(usize, u64)> {
        Some((x.len, x.digest))
    }

    #[test]
    fn an_acknowledged_overwrite_makes_the_old_content_a_lost_write() {
        let mut m = Model::default();
        m.put_acknowledged("/a", c(1));
        m.put_acknowledged("/a", c(2));
        assert_eq!(m.judge("/a", got(c(2))), Judged::Right);
        assert_eq!(m.judge("/a", got(c(1))), Judged::Lost);
        assert_eq!(m.judge("/a", None), Judged::Lost);
        assert_eq!(m.judge("/a", got(c(3))), Judged::Wrong);
    }

    #[test]
    fn unknown_outcomes_admit_either() {
        let mut m = Model::default();
        m.put_acknowledged("/a", c(1));
        m.put_unknown("/a", c(2));
        assert_eq!(m.judge("/a", got(c(1))), Judged::Right);
        assert_eq!(m.judge("/a", got(c(2))), Judged::Right);
        m.rm_unknown("/a");
        assert_eq!(m.judge("/a", None), Judged::Right);
        m.mv_unknown("/a", "/b");
        assert_eq!(m.judge("/b", got(c(2))), Judged::Right);
        assert_eq!(m.judge("/b", None), Judged::Right);
    }

    #[test]
    fn an_acknowledged_move_moves_the_content() {
        let mut m = Model::default();
        m.put_acknowledged("/a", c(1));
        m.mv_acknowledged("/a", "/b");
        assert_eq!(m.judge("/a", None), Judged::Right);
        assert_eq!(m.judge("/b", got(c(1))), Judged::Right);
        assert_eq!(m.judge("/b", None), Judged::Lost);
        assert!(m.paths["/b"].must_exist());
    }
}
