//! The lab's journal, `DIR/lab.journal`: one JSON object per line naming a thing the
//! lab is about to make, appended and fsynced BEFORE the thing is made. `down` reads
//! it and undoes the entries in reverse, so a lab that crashed half-way is still taken
//! apart; an entry whose thing was never made (or is gone) is skipped. A torn last
//! line (a crash while appending) is ignored.
//!
//! Must never: record after creating, or lose an entry that was made (append only,
//! fsync per entry).

use crate::{LabError, Result};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};

/// One thing the lab makes.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum Entry {
    /// A network namespace (`ip netns add NAME`); undone by killing every process in
    /// it and `ip netns del NAME`, which also removes its interfaces.
    Netns { name: String },
    /// An interface (bridge or veth) in namespace `ns`; undone by `ip -n NS link del`.
    Link { ns: String, name: String },
    /// The supervisor is about to start for this lab directory: undone by finding it
    /// (by its command line) and stopping it, even if its pid was never written.
    Supervisor { dir: PathBuf },
    /// A process the lab started, with its start time (so a recycled pid is not
    /// killed).
    Process { pid: i32, start_ticks: u64 },
}

/// The journal file of a lab directory.
pub struct Journal {
    path: PathBuf,
    file: std::fs::File,
}

pub const FILE: &str = "lab.journal";

impl Journal {
    /// Opens (creating) the journal of `dir` for appending.
    pub fn open(dir: &Path) -> Result<Journal> {
        let path = dir.join(FILE);
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|source| LabError::Io {
                path: path.clone(),
                source,
            })?;
        Ok(Journal { path, file })
    }

    /// Appends `e` and makes it durable; call before making the thing.
    pub fn record(&mut self, e: &Entry) -> Result<()> {
        let mut line = serde_json::to_string(e).unwrap_or_default();
        line.push('\n');
        let io = |source| LabError::Io {
            path: self.path.clone(),
            source,
        };
        self.file.write_all(line.as_bytes()).map_err(io)?;
        self.file.sync_data().map_err(io)
    }
}

/// The entries of `dir`'s journal in the order they were made; none if there is no
/// journal. A torn (unparsable) last line is dropped; one elsewhere is an error.
pub fn read(dir: &Path) -> Result<Vec<Entry>> {
    let path = dir.join(FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
        Err(source) => return Err(LabError::Io { path, source }),
    };
    let lines: Vec<&str> = text.lines().collect();
    let mut out = vec![];
    for (i, l) in lines.iter().enumerate() {
        if l.trim().is_empty() {
            continue;
        }
        match serde_json::from_str(l) {
            Ok(e) => out.push(e),
            Err(_) if i + 1 == lines.len() && !text.ends_with('\n') => break,
            Err(e) => {
                return Err(LabError::Journal {
                    path,
                    line: i + 1,
                    reason: e.to_string(),
                })
            }
        }
    }
    Ok(out)
}

/// Removes the journal (after a complete `down`).
pub fn remove(dir: &Path) -> Result<()> {
    let path = dir.join(FILE);
    match std::fs::remove_file(&path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(LabError::Io { path, source }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_read_back_in_order_and_a_torn_tail_is_ignored() {
        let dir = std::env::temp_dir().join(format!("keel-lab-journal-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let _ = remove(&dir);
        assert!(read(&dir).unwrap().is_empty());
        let a = Entry::Netns {
            name: "k1-core".into(),
        };
        let b = Entry::Link {
            ns: "k1-core".into(),
            name: "k1d".into(),
        };
        {
            let mut j = Journal::open(&dir).unwrap();
            j.record(&a).unwrap();
            j.record(&b).unwrap();
        }
        assert_eq!(read(&dir).unwrap(), vec![a.clone(), b.clone()]);
        // A crash while appending leaves half a line: it is dropped.
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(dir.join(FILE))
            .unwrap();
        f.write_all(b"{\"netns\":{\"na").unwrap();
        assert_eq!(read(&dir).unwrap(), vec![a, b]);
        // A bad line in the middle is an error naming the line.
        std::fs::write(dir.join(FILE), "garbage\n{\"netns\":{\"name\":\"x\"}}\n").unwrap();
        assert!(matches!(read(&dir), Err(LabError::Journal { line: 1, .. })));
        remove(&dir).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
    }
}
