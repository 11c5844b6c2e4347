//! Repeated failures logged once with a count, not per attempt.
//!
//! A node cut off from a site retries many things many times a second (Raft votes and
//! appends, leadership confirmation, probes, catch-up, the locator): each retry that
//! fails logs the same warning or error. [`Coalesce`] is a per-layer filter for the log
//! output: the first of a run of alike warnings or errors (same place in the code, same
//! text but for its numbers: see [`shape`]) is written; alike lines within [`WINDOW`]
//! are only counted; the first one after the window is written after a line saying
//! how many were left out.
//! One mechanism for every loop, including the libraries' own (openraft).
//!
//! Owns: the counts. Must never drop the first occurrence of a message, hold a lock
//! while writing, or touch info and lower levels (they are not failures).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Metadata, Subscriber};
use tracing_subscriber::layer::{Context, Filter};

/// How long identical lines are counted instead of written.
pub const WINDOW: Duration = Duration::from_secs(30);

/// Lines remembered at most (the oldest windows are forgotten beyond it).
const REMEMBERED: usize = 4096;

struct Run {
    since: Instant,
    left_out: u64,
}

/// The decision, kept apart from tracing so that it can be tested alone.
#[derive(Default)]
pub struct Counter {
    runs: HashMap<String, Run>,
}

/// What to do with one line.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Write it.
    Write,
    /// Write that `n` identical lines were left out in the last `secs` seconds, then it.
    WriteAfter { left_out: u64, secs: u64 },
    /// Count it only.
    LeaveOut,
}

impl Counter {
    pub fn see(&mut self, key: &str, now: Instant) -> Verdict {
        if self.runs.len() >= REMEMBERED {
            self.runs
                .retain(|_, r| now.duration_since(r.since) < WINDOW);
        }
        match self.runs.get_mut(key) {
            Some(run) if now.duration_since(run.since) < WINDOW => {
                run.left_out += 1;
                Verdict::LeaveOut
            }
            Some(run) => {
                let left_out = std::mem::take(&mut run.left_out);
                let secs = now.duration_since(run.since).as_secs();
                run.since = now;
                if left_out == 0 {
                    Verdict::Write
                } else {
                    Verdict::WriteAfter { left_out, secs }
                }
            }
            None => {
                self.runs.insert(
                    key.to_string(),
                    Run {
                        since: now,
                        left_out: 0,
                    },
                );
                Verdict::Write
            }
        }
    }
}

/// A line's shape: its text with every run of digits as `#`, so that retries that
/// differ only by a term, a node id or a duration count as one run.
pub fn shape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_number = false;
    for c in text.chars() {
        if c.is_ascii_digit() {
            if !in_number {
                out.push('#');
            }
            in_number = true;
        } else {
            out.push(c);
            in_number = false;
        }
    }
    out
}

/// The per-layer filter (see the module header).
#[derive(Default)]
pub struct Coalesce {
    counter: Mutex<Counter>,
}

struct Text(String);

impl Visit for Text {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let _ = write!(self.0, " {}={:?}", field.name(), value);
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        let _ = write!(self.0, " {}={value}", field.name());
    }
}

impl<S: Subscriber> Filter<S> for Coalesce {
    fn enabled(&self, _: &Metadata<'_>, _: &Context<'_, S>) -> bool {
        true
    }

    fn event_enabled(&self, event: &Event<'_>, _: &Context<'_, S>) -> bool {
        let meta = event.metadata();
        if *meta.level() > Level::WARN {
            return true;
        }
        let mut text = Text(format!("{}:{}", meta.target(), meta.line().unwrap_or(0)));
        event.record(&mut text);
        let verdict = self
            .counter
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .see(&shape(&text.0), Instant::now());
        match verdict {
            Verdict::Write => true,
            Verdict::LeaveOut => false,
            Verdict::WriteAfter { left_out, secs } => {
                // A log call made here would be dropped (tracing does not re-enter a
                // subscriber): the count goes straight to the log's output.
                let line = format!(
                    "{}  {} {left_out} more line{} like the next one in the last {secs} s (not shown)\n",
                    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.6fZ"),
                    meta.level(),
                    if left_out == 1 { "" } else { "s" },
                );
                let _ = std::io::stdout().lock().write_all(line.as_bytes());
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_differing_only_by_numbers_have_one_shape() {
        assert_eq!(
            shape("vote T171-N4: timeout after 40ms target=2"),
            shape("vote T172-N3: timeout after 41ms target=4")
        );
        assert_ne!(shape("vote refused"), shape("vote granted"));
    }

    #[test]
    fn a_run_of_identical_lines_is_written_once_then_counted() {
        let mut c = Counter::default();
        let t0 = Instant::now();
        assert_eq!(c.see("timeout to 3", t0), Verdict::Write);
        for i in 1..=40 {
            assert_eq!(
                c.see("timeout to 3", t0 + Duration::from_millis(25 * i)),
                Verdict::LeaveOut
            );
        }
        // Another line is not held back by the first one's run.
        assert_eq!(c.see("timeout to 4", t0), Verdict::Write);
        assert_eq!(
            c.see("timeout to 3", t0 + WINDOW + Duration::from_secs(1)),
            Verdict::WriteAfter {
                left_out: 40,
                secs: WINDOW.as_secs() + 1
            }
        );
        // A line that stopped repeating is written plainly the next time.
        assert_eq!(c.see("timeout to 4", t0 + WINDOW * 3), Verdict::Write);
    }
}
