//! Human-readable and JSON renderings of status and events.

use keel_client::verdict::{age, bytes};
use keel_core::{Event, MemberRef};
use keel_node::admin_api::{NodeView, SetView, StatusView};
use std::fmt::Write;

/// The status as one JSON object (the contract: `health`, `reasons`, `stale`,
/// `leader`, `nodes[]`, `sets[]`; capacity in `nodes[].capacity`, `sets[].objects`,
/// `sets[].bytes` and `totals`).
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

/// The verdict: its first line is the health, then one reason per line.
pub fn health_text(s: &StatusView) -> String {
    let mut out = format!("{}\n", s.health);
    for r in &s.reasons {
        let _ = writeln!(out, "  - {r}");
    }
    out
}

pub fn status_table(s: &StatusView) -> String {
    let mut out = health_text(s);
    let leader = s
        .leader
        .map(|l| l.to_string())
        .unwrap_or_else(|| "none".into());
    let _ = writeln!(
        out,
        "cluster {}  leader {}  term {}  (view of node {}{})",
        s.cluster,
        leader,
        s.term,
        s.answered_by,
        if s.stale {
            ", which cannot reach a quorum: STALE"
        } else {
            ""
        }
    );
    let _ = writeln!(
        out,
        "{:<5} {:<5} {:<15} {:<8} {:<24} {:<7} {:<21} {:<24} LINKS",
        "NODE", "SITE", "ADDR", "PID", "STATE", "HEALTH", "DISK USED/FREE", "ROLES"
    );
    for n in &s.nodes {
        let links = n
            .links
            .iter()
            .map(|l| format!("{}={}", l.name, if l.down { "down" } else { "up" }))
            .collect::<Vec<_>>()
            .join(" ");
        let health = n
            .health
            .map(|h| h.to_string())
            .unwrap_or_else(|| "-".into());
        let disk = n
            .capacity
            .as_ref()
            .map(|c| format!("{}/{}", bytes(c.disk_used_bytes), bytes(c.disk_free_bytes)))
            .unwrap_or_else(|| "-".into());
        let roles = if n.roles.is_empty() {
            "-".to_string()
        } else {
            n.roles.join(",")
        };
        let _ = writeln!(
            out,
            "{:<5} {:<5} {:<15} {:<8} {:<24} {:<7} {:<21} {:<24} {}",
            n.id,
            n.site,
            n.addr,
            n.pid,
            node_state(n, s.at),
            health,
            disk,
            roles,
            links
        );
    }
    out.push_str(&sets_table(&s.sets, &s.nodes));
    if let Some(t) = &s.totals {
        let _ = writeln!(
            out,
            "total: {}/{} nodes up, disk {} used, {} free; {} object{}, {}",
            t.nodes_up,
            t.nodes,
            bytes(t.disk_used_bytes),
            bytes(t.disk_free_bytes),
            t.objects,
            if t.objects == 1 { "" } else { "s" },
            bytes(t.bytes)
        );
    }
    out
}

/// `up 5m`, `failed 12s ago`, with `(drained)` and recent failures.
fn node_state(n: &NodeView, now: i64) -> String {
    let mut state = match (n.state.as_str(), n.up_since, n.failed_at) {
        ("up", Some(t), _) => format!("up {}", age(now - t)),
        ("failed" | "quarantined", _, Some(t)) => format!("{} {} ago", n.state, age(now - t)),
        _ => n.state.clone(),
    };
    if n.drained {
        state.push_str(" (drained)");
    }
    if n.recent_failures > 0 && n.state == "up" {
        let _ = write!(state, " ({}x failed)", n.recent_failures);
    }
    state
}

/// The sets, one a line; an in-sync member that is not up is marked (`2(failed)`).
pub fn sets_table(sets: &[SetView], nodes: &[NodeView]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<16} {:<9} {:<12} {:<6} {:<8} {:<10} {:<11} {:<20} {:>8} {:>10}",
        "SET",
        "KIND",
        "COMPOSITION",
        "EPOCH",
        "PRIMARY",
        "SECONDARY",
        "ALTERNATES",
        "IN-SYNC",
        "OBJECTS",
        "BYTES"
    );
    for s in sets {
        let storage = s.kind == "storage";
        let in_sync = if storage {
            let listed = s
                .in_sync
                .iter()
                .map(|n| match nodes.iter().find(|v| v.id == *n) {
                    Some(v) if v.state != "up" => format!("{n}({})", v.state),
                    _ => n.to_string(),
                })
                .collect::<Vec<_>>()
                .join(",");
            format!("{listed} of {}", s.replication)
        } else {
            "-".to_string()
        };
        let (objects, size) = match (s.objects, s.bytes) {
            (Some(o), Some(b)) if storage => (o.to_string(), bytes(b)),
            _ => ("-".to_string(), "-".to_string()),
        };
        let _ = writeln!(
            out,
            "{:<16} {:<9} {:<12} {:<6} {:<8} {:<10} {:<11} {:<20} {:>8} {:>10}",
            s.id,
            s.kind,
            s.composition,
            s.epoch,
            role(&s.primary),
            role(&s.secondary),
            list(&s.alternates),
            in_sync,
            objects,
            size
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
    if s.kind == "storage" {
        let in_sync: Vec<String> = s.in_sync.iter().map(|n| n.to_string()).collect();
        let _ = writeln!(
            out,
            "  in sync     {} of {}",
            if in_sync.is_empty() {
                "none".to_string()
            } else {
                in_sync.join(",")
            },
            s.replication
        );
        if let (Some(o), Some(b)) = (s.objects, s.bytes) {
            let _ = writeln!(out, "  objects     {o} ({})", bytes(b));
        }
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
