//! Human-readable and JSON renderings of status and events.

use keel_core::{Event, MemberRef};
use keel_node::admin_api::{SetView, StatusView};
use std::fmt::Write;

/// The status as one JSON object (the contract: `leader`, `nodes[]`, `sets[]`).
pub fn status_json(s: &StatusView) -> serde_json::Value {
    serde_json::to_value(s).unwrap_or_default()
}

fn role(r: &Option<MemberRef>) -> String {
    r.as_ref()
        .map(|r| r.to_string())
        .unwrap_or_else(|| "-".into())
}

fn list(v: &[MemberRef]) -> String {
    if v.is_empty() {
        "-".into()
    } else {
        v.iter()
            .map(|m| m.to_string())
            .collect::<Vec<_>>()
            .join(",")
    }
}

pub fn status_table(s: &StatusView) -> String {
    let mut out = String::new();
    let leader = s
        .leader
        .map(|l| l.to_string())
        .unwrap_or_else(|| "none".into());
    let _ = writeln!(
        out,
        "cluster {}  leader {}  term {}",
        s.cluster, leader, s.term
    );
    let _ = writeln!(
        out,
        "{:<5} {:<5} {:<15} {:<8} {:<12} {:<7} LINKS",
        "NODE", "SITE", "ADDR", "PID", "STATE", "HEALTH"
    );
    for n in &s.nodes {
        let links = n
            .links
            .iter()
            .map(|l| format!("{}={}", l.name, if l.down { "down" } else { "up" }))
            .collect::<Vec<_>>()
            .join(" ");
        let state = if n.drained {
            format!("{} (drained)", n.state)
        } else {
            n.state.clone()
        };
        let health = n
            .health
            .map(|h| h.to_string())
            .unwrap_or_else(|| "-".into());
        let _ = writeln!(
            out,
            "{:<5} {:<5} {:<15} {:<8} {:<12} {:<7} {}",
            n.id, n.site, n.addr, n.pid, state, health, links
        );
    }
    out.push_str(&sets_table(&s.sets));
    out
}

pub fn sets_table(sets: &[SetView]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<16} {:<9} {:<12} {:<6} {:<8} {:<10} {:<11} IN-SYNC",
        "SET", "KIND", "COMPOSITION", "EPOCH", "PRIMARY", "SECONDARY", "ALTERNATES"
    );
    for s in sets {
        let in_sync = if s.kind == "storage" {
            s.in_sync
                .iter()
                .map(|n| n.to_string())
                .collect::<Vec<_>>()
                .join(",")
        } else {
            "-".to_string()
        };
        let _ = writeln!(
            out,
            "{:<16} {:<9} {:<12} {:<6} {:<8} {:<10} {:<11} {}",
            s.id,
            s.kind,
            s.composition,
            s.epoch,
            role(&s.primary),
            role(&s.secondary),
            list(&s.alternates),
            in_sync
        );
    }
    out
}

pub fn set_detail(s: &SetView) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "set {} ({} {})", s.id, s.kind, s.composition);
    let _ = writeln!(out, "  epoch       {}", s.epoch);
    let _ = writeln!(out, "  primary     {}", role(&s.primary));
    let _ = writeln!(out, "  secondary   {}", role(&s.secondary));
    let _ = writeln!(out, "  alternates  {}", list(&s.alternates));
    let _ = writeln!(out, "  members     {}", list(&s.members));
    let _ = writeln!(out, "  threshold   {}", s.health_threshold);
    let _ = writeln!(out, "  failovers   {}", s.failovers);
    if let Some(h) = s.lease_holder {
        let _ = writeln!(out, "  lease       held by {h}");
    }
    if let Some(b) = &s.async_backlog {
        let lagging = if b.lagging.is_empty() {
            String::new()
        } else {
            format!("; lagging, writes held: {:?}", b.lagging)
        };
        let _ = writeln!(
            out,
            "  async       {} writes, {} bytes not yet on the other sites{lagging}",
            b.writes, b.bytes
        );
    }
    out
}

pub fn event_line(e: &Event) -> String {
    let mut line = format!("{} #{:<5} {:<20}", e.time_rfc3339(), e.seq, e.kind.as_str());
    if let Some(s) = &e.set {
        let _ = write!(line, " set={s}");
    }
    if let Some(n) = e.node {
        let _ = write!(line, " node={n}");
    }
    if let Some(ep) = e.epoch {
        let _ = write!(line, " epoch={ep}");
    }
    if !e.detail.is_empty() {
        let _ = write!(line, "  {}", e.detail);
    }
    line
}

/// A time in milliseconds since the Unix epoch, as RFC 3339 UTC (seconds).
pub fn time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_else(|| ms.to_string())
}
