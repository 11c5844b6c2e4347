//! `keel events`: the event log in commit order (sequence numbers), each event once,
//! with filters (`--set`, `--node`, `--kind`, `--since`, `-n`).
//!
//! Owns: parsing the filters and choosing what to print. Must never reorder events by
//! their times (an event's time is when its recorder saw it; the log's order is the
//! order the cluster committed them) or print one twice across pages.

use crate::output;
use anyhow::{bail, Context, Result};
use keel_client::Client;
use keel_core::{Event, EventKind};
use std::time::Duration;

/// Where the listing starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Since {
    /// At this sequence number.
    Seq(u64),
    /// At this time (ms since the Unix epoch).
    Time(i64),
}

/// What to keep.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Filter {
    pub since: Option<Since>,
    pub set: Option<String>,
    pub node: Option<u64>,
    pub kinds: Vec<EventKind>,
}

impl Filter {
    pub fn keeps(&self, e: &Event) -> bool {
        let since = match self.since {
            Some(Since::Seq(s)) => e.seq >= s,
            Some(Since::Time(t)) => e.time >= t,
            None => true,
        };
        since
            && self.set.as_ref().is_none_or(|s| e.set.as_ref() == Some(s))
            && self.node.is_none_or(|n| e.node == Some(n))
            && (self.kinds.is_empty() || self.kinds.contains(&e.kind))
    }

    /// The first sequence number worth asking for.
    fn first_seq(&self) -> u64 {
        match self.since {
            Some(Since::Seq(s)) => s,
            _ => 0,
        }
    }
}

/// `--since`: a duration back from `now_ms` (`30s`, `10m`, `2h`, `1d`), an RFC 3339
/// time, or a sequence number.
pub fn parse_since(s: &str, now_ms: i64) -> Result<Since> {
    let s = s.trim();
    if let Ok(seq) = s.parse::<u64>() {
        return Ok(Since::Seq(seq));
    }
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Ok(Since::Time(t.timestamp_millis()));
    }
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (n, unit) = s.split_at(split);
    let ms_per = match unit {
        "ms" => 1,
        "s" => 1000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => 0,
    };
    match n.parse::<i64>() {
        Ok(n) if ms_per > 0 => Ok(Since::Time(now_ms - n.saturating_mul(ms_per))),
        _ => bail!(
            "--since {s:?}: give a duration (30s, 10m, 2h, 1d), a time (2026-12-01T02:00:00Z) or a sequence number"
        ),
    }
}

/// `--kind`: event kinds by their names (`node_failed`).
pub fn parse_kinds(kinds: &[String]) -> Result<Vec<EventKind>> {
    kinds
        .iter()
        .map(|k| {
            serde_json::from_value::<EventKind>(serde_json::Value::String(k.trim().to_string()))
                .map_err(|_| anyhow::anyhow!("--kind {k:?}: no such event kind (for example node_failed, failover_decided, leader_elected)"))
        })
        .collect()
}

pub struct Options {
    pub json: bool,
    pub follow: bool,
    pub last: Option<usize>,
    pub filter: Filter,
}

pub async fn run(c: Client, o: Options) -> Result<()> {
    let print = |e: &Event| -> Result<()> {
        if o.json {
            println!("{}", serde_json::to_string(e)?);
        } else {
            println!("{}", output::event_line(e));
        }
        Ok(())
    };
    // Every page is read until the log is exhausted (`-n` keeps only the tail), then
    // `--follow` waits for more. `next` only grows: an event is printed once.
    let mut next = o.filter.first_seq();
    let mut tail: std::collections::VecDeque<Event> = Default::default();
    loop {
        let page = c
            .events(next, Duration::ZERO)
            .await
            .context("reading events")?;
        let mut events = page.events;
        events.sort_by_key(|e| e.seq);
        let fresh: Vec<Event> = events.into_iter().filter(|e| e.seq >= next).collect();
        if fresh.is_empty() {
            break;
        }
        next = fresh.last().map_or(next, |e| e.seq + 1).max(page.next);
        for e in fresh.into_iter().filter(|e| o.filter.keeps(e)) {
            match o.last {
                Some(n) => {
                    tail.push_back(e);
                    if tail.len() > n {
                        tail.pop_front();
                    }
                }
                None => print(&e)?,
            }
        }
    }
    for e in &tail {
        print(e)?;
    }
    if !o.follow {
        return Ok(());
    }
    loop {
        let page = c
            .events(next, Duration::from_secs(10))
            .await
            .context("reading events")?;
        let mut events = page.events;
        events.sort_by_key(|e| e.seq);
        for e in events {
            if e.seq < next {
                continue;
            }
            next = e.seq + 1;
            if o.filter.keeps(&e) {
                print(&e)?;
            }
        }
        next = next.max(page.next);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000_000;

    fn ev(seq: u64, time: i64, kind: EventKind) -> Event {
        let mut e = Event::new(time, kind);
        e.seq = seq;
        e
    }

    #[test]
    fn since_reads_durations_times_and_sequence_numbers() {
        assert_eq!(parse_since("10m", NOW).unwrap(), Since::Time(NOW - 600_000));
        assert_eq!(parse_since("30s", NOW).unwrap(), Since::Time(NOW - 30_000));
        assert_eq!(
            parse_since("1d", NOW).unwrap(),
            Since::Time(NOW - 86_400_000)
        );
        assert_eq!(parse_since("42", NOW).unwrap(), Since::Seq(42));
        assert_eq!(
            parse_since("2027-01-15T08:00:00Z", NOW).unwrap(),
            Since::Time(1_800_000_000_000)
        );
        assert!(parse_since("10 minutes", NOW).is_err());
        assert!(parse_since("m", NOW).is_err());
    }

    #[test]
    fn kinds_are_checked_by_name() {
        assert_eq!(
            parse_kinds(&["node_failed".into(), "leader_elected".into()]).unwrap(),
            vec![EventKind::NodeFailed, EventKind::LeaderElected]
        );
        assert!(parse_kinds(&["node_exploded".into()]).is_err());
    }

    #[test]
    fn the_filter_keeps_what_every_criterion_allows() {
        let f = Filter {
            since: Some(Since::Time(NOW - 1000)),
            set: Some("st-1".into()),
            node: Some(2),
            kinds: vec![EventKind::FailoverDecided],
        };
        let good = ev(5, NOW, EventKind::FailoverDecided).set("st-1").node(2);
        assert!(f.keeps(&good));
        assert!(!f.keeps(
            &ev(5, NOW - 5000, EventKind::FailoverDecided)
                .set("st-1")
                .node(2)
        ));
        assert!(!f.keeps(&ev(5, NOW, EventKind::FailoverDecided).set("st-2").node(2)));
        assert!(!f.keeps(&ev(5, NOW, EventKind::FailoverDecided).set("st-1").node(3)));
        assert!(!f.keeps(&ev(5, NOW, EventKind::NodeFailed).set("st-1").node(2)));
        assert!(Filter::default().keeps(&ev(0, 0, EventKind::NodeUp)));
    }
}
