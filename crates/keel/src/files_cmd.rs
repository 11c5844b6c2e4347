//! The file commands: put, get, ls, mkdir, mv, rm, stat, with a progress bar for
//! transfers (shown only on a terminal).
//!
//! Must never: exit 0 for a put the cluster did not acknowledge, leave a partial
//! local file after a failed get, or exit 0 for a read answered by a directory
//! replica that may lag unless `--allow-stale` was given.

use crate::cli::VolumeArg;
use anyhow::Result;
use indicatif::{ProgressBar, ProgressStyle};
use keel_client::{Client, ClientError};
use std::path::Path;

/// A read that no current replica answered: one line naming `--allow-stale`.
fn current_only(path: &str, e: ClientError) -> anyhow::Error {
    if e.code() == Some("no_control_plane") {
        anyhow::anyhow!(
            "{path}: no member that reaches the control plane's majority answered, so any answer could be stale; \
             --allow-stale accepts one from a directory replica that may lag"
        )
    } else {
        e.into()
    }
}

const STALE_WARNING: &str = "warning: --allow-stale: answered from a directory replica that may be stale (no member reaching the control plane's majority answered)";

fn bar(len: Option<u64>) -> ProgressBar {
    let pb = match len {
        Some(n) => ProgressBar::new(n),
        None => ProgressBar::new_spinner(),
    };
    if let Ok(style) = ProgressStyle::with_template(
        "{spinner} {bytes}/{total_bytes} {wide_bar} {bytes_per_sec} eta {eta}",
    ) {
        pb.set_style(style);
    }
    pb
}

pub async fn put(c: &Client, local: &Path, path: &str, v: &VolumeArg) -> Result<()> {
    let len = std::fs::metadata(local).ok().map(|m| m.len());
    let pb = bar(len);
    let progress = {
        let pb = pb.clone();
        move |n: u64| pb.set_position(n)
    };
    let r = c.put_file(local, path, v.volume.as_deref(), progress).await;
    pb.finish_and_clear();
    let f = r?;
    let durable = match f.replication.as_deref() {
        Some("async") => {
            "durable on the Primary's site, the other sites in the background (async volume)"
        }
        _ => "durable on every in-sync replica",
    };
    println!(
        "{}: {} bytes in {} chunk{}, {durable} (generation {})",
        f.path,
        f.size,
        f.chunks,
        if f.chunks == 1 { "" } else { "s" },
        f.generation
    );
    Ok(())
}

pub async fn get(c: &Client, path: &str, local: &Path, v: &VolumeArg) -> Result<()> {
    if local == Path::new("-") {
        let (bytes, o) = c
            .get_bytes(path, None, v.volume.as_deref())
            .await
            .map_err(|e| current_only(path, e))?;
        if o.stale {
            eprintln!("{STALE_WARNING}");
        }
        use std::io::Write;
        std::io::stdout().write_all(&bytes)?;
        return Ok(());
    }
    let pb = bar(None);
    let progress = {
        let pb = pb.clone();
        move |n: u64, total: Option<u64>| {
            if let Some(t) = total {
                pb.set_length(t);
            }
            pb.set_position(n);
        }
    };
    let r = c.get_file(path, local, v.volume.as_deref(), progress).await;
    pb.finish_and_clear();
    let o = r.map_err(|e| current_only(path, e))?;
    if o.stale {
        eprintln!("{STALE_WARNING}");
        println!(
            "{path}: {} bytes written to {} (stale: from a replica that may lag)",
            o.bytes,
            local.display()
        );
    } else {
        println!("{path}: {} bytes written to {}", o.bytes, local.display());
    }
    Ok(())
}

pub async fn ls(c: &Client, path: &str, json: bool, v: &VolumeArg) -> Result<()> {
    let (entries, stale) = c
        .list(path, v.volume.as_deref())
        .await
        .map_err(|e| current_only(path, e))?;
    if stale {
        eprintln!("{STALE_WARNING}");
    }
    if json {
        println!("{}", serde_json::to_string(&entries)?);
        return Ok(());
    }
    for e in entries {
        let name = if e.kind == "dir" {
            format!("{}/", e.name)
        } else {
            e.name
        };
        println!("{:>12}  {}  {name}", e.size, crate::output::time(e.mtime));
    }
    Ok(())
}

pub async fn stat(c: &Client, path: &str, json: bool, v: &VolumeArg) -> Result<()> {
    let f = c
        .stat(path, v.volume.as_deref())
        .await
        .map_err(|e| current_only(path, e))?;
    if f.stale {
        eprintln!("{STALE_WARNING}");
    }
    if json {
        println!("{}", serde_json::to_string(&f)?);
        return Ok(());
    }
    println!("path:       {}", f.path);
    println!("kind:       {}", f.kind);
    println!("inode:      {}", f.ino);
    println!("size:       {}", f.size);
    println!("mode:       {:o}", f.mode);
    println!("owner:      {}:{}", f.uid, f.gid);
    println!("links:      {}", f.nlink);
    println!("chunks:     {}", f.chunks);
    println!("generation: {}", f.generation);
    println!("modified:   {}", crate::output::time(f.mtime));
    Ok(())
}
