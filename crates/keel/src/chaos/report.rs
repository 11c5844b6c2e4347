//! The chaos run's report: one JSON object (`--json`) or a readable summary.
//!
//! Owns: the report's shape (the keys scripts rely on: `acknowledged_writes`,
//! `lost_writes`, `wrong_reads`, `unreadable_after_heal`, `in_sync_violations`,
//! `stall_ms` with `p50`, `p99`, `max`, and `faults` by kind). Must never: print
//! anything but the report on stdout.

use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write;

#[derive(Serialize, Debug, Default, Clone, Copy)]
pub struct Stalls {
    pub p50: u64,
    pub p99: u64,
    pub max: u64,
}

impl Stalls {
    pub fn of(mut v: Vec<u64>) -> Stalls {
        if v.is_empty() {
            return Stalls::default();
        }
        v.sort_unstable();
        // Nearest rank.
        let at = |q: usize| v[(v.len() * q).div_ceil(100).max(1) - 1];
        Stalls {
            p50: at(50),
            p99: at(99),
            max: v[v.len() - 1],
        }
    }
}

#[derive(Serialize, Debug, Default)]
pub struct Ops {
    pub puts: u64,
    pub gets: u64,
    pub gets_failed: u64,
    pub moves: u64,
    pub moves_acknowledged: u64,
    pub removes: u64,
    pub removes_acknowledged: u64,
}

#[derive(Serialize, Debug, Default)]
pub struct Report {
    pub seed: u64,
    pub duration_s: u64,
    pub nodes: u8,
    pub sites: u8,
    pub clients: usize,
    /// Puts (new files and overwrites) acknowledged.
    pub acknowledged_writes: u64,
    /// Files whose last acknowledged content was gone (or older) after the heal.
    pub lost_writes: u64,
    /// Reads (during the run or after the heal) of content never acknowledged there,
    /// of an older content or no file without a stale mark, and mv/rm that answered
    /// "no such file" for an acknowledged file.
    pub wrong_reads: u64,
    /// Files that could not be read at all after the heal.
    pub unreadable_after_heal: u64,
    /// In-sync members lacking an acknowledged object at its latest version.
    pub in_sync_violations: u64,
    /// Objects a file refers to that no member of their set holds.
    pub lost_objects: u64,
    /// Reads of an older content marked stale (allowed: the caller is told).
    pub stale_reads: u64,
    pub stall_ms: Stalls,
    pub ops: Ops,
    pub files_checked: u64,
    /// Faults injected, by kind.
    pub faults: BTreeMap<String, u64>,
    /// Faults after which the cluster was not whole again in time.
    pub heal_timeouts: Vec<String>,
    /// Node processes that exited without being killed.
    pub unexpected_exits: Vec<String>,
    pub examples: Vec<String>,
    pub fault_timeline: Vec<String>,
}

impl Report {
    /// The counts that must be zero.
    pub fn failures(&self) -> u64 {
        self.lost_writes
            + self.wrong_reads
            + self.unreadable_after_heal
            + self.in_sync_violations
            + self.lost_objects
    }

    pub fn summary(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "keel dev chaos: {} s, seed {}, {} nodes in {} site(s), {} clients",
            self.duration_s, self.seed, self.nodes, self.sites, self.clients
        );
        let faults: Vec<String> = self
            .faults
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        let _ = writeln!(s, "faults injected:        {}", faults.join(", "));
        let _ = writeln!(
            s,
            "operations:             {} puts ({} acknowledged), {} gets ({} failed), {} mv ({} acknowledged), {} rm ({} acknowledged)",
            self.ops.puts,
            self.acknowledged_writes,
            self.ops.gets,
            self.ops.gets_failed,
            self.ops.moves,
            self.ops.moves_acknowledged,
            self.ops.removes,
            self.ops.removes_acknowledged
        );
        let _ = writeln!(
            s,
            "put stall (ms):         p50 {} / p99 {} / max {}",
            self.stall_ms.p50, self.stall_ms.p99, self.stall_ms.max
        );
        let _ = writeln!(s, "files checked at end:   {}", self.files_checked);
        for (what, n) in [
            ("lost writes", self.lost_writes),
            ("wrong reads", self.wrong_reads),
            ("unreadable after heal", self.unreadable_after_heal),
            ("in-sync violations", self.in_sync_violations),
            ("lost objects", self.lost_objects),
        ] {
            let _ = writeln!(
                s,
                "{what:<23} {n}{}",
                if n > 0 { "   <-- FAILED" } else { "" }
            );
        }
        let _ = writeln!(s, "stale reads (marked):   {}", self.stale_reads);
        if !self.heal_timeouts.is_empty() {
            let _ = writeln!(s, "not whole again in time after:");
            for h in &self.heal_timeouts {
                let _ = writeln!(s, "  - {h}");
            }
        }
        for u in &self.unexpected_exits {
            let _ = writeln!(s, "unexpected exit: {u}");
        }
        if !self.examples.is_empty() {
            let _ = writeln!(s, "examples:");
            for e in &self.examples {
                let _ = writeln!(s, "  - {e}");
            }
        }
        let _ = writeln!(
            s,
            "{}",
            if self.failures() == 0 {
                "result: no acknowledged write lost"
            } else {
                "result: FAILED"
            }
        );
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_stalls() {
        let s = Stalls::of((1..=100).collect());
        assert_eq!((s.p50, s.p99, s.max), (50, 99, 100));
        assert_eq!(Stalls::of(vec![]).max, 0);
        assert_eq!(Stalls::of(vec![7]).p99, 7);
    }

    #[test]
    fn the_json_has_the_keys_scripts_rely_on() {
        let v = serde_json::to_value(Report::default()).expect("json");
        for k in [
            "acknowledged_writes",
            "lost_writes",
            "wrong_reads",
            "unreadable_after_heal",
            "in_sync_violations",
            "faults",
        ] {
            assert!(v.get(k).is_some(), "{k}");
        }
        for k in ["p50", "p99", "max"] {
            assert!(v["stall_ms"].get(k).is_some(), "{k}");
        }
    }
}
