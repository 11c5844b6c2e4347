//! The file commands: put, get, ls, mkdir, mv, rm, stat, with a progress bar for
//! transfers (shown only on a terminal).
//!
//! Paths as users expect: a trailing slash names a directory (`put f /dir/` writes
//! `/dir/f`, and so does `put f /dir` when `/dir` is a directory); `put -` reads
//! standard input; `put -r`/`get -r` copy trees; `mv` never replaces an existing
//! target without `--force` (and never a directory by a file).
//!
//! Must never: exit 0 for a put the cluster did not acknowledge, leave a partial
//! local file after a failed get, or exit 0 for a read answered by a directory
//! replica that may lag unless `--allow-stale` was given.

use crate::cli::VolumeArg;
use anyhow::{bail, Result};
use indicatif::{ProgressBar, ProgressStyle};
use keel_client::{Client, ClientError};
use std::path::{Path, PathBuf};

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

/// The last component of a cluster path (`""` for the root).
fn base_name(path: &str) -> &str {
    path.trim_end_matches('/').rsplit('/').next().unwrap_or("")
}

/// `dir` joined with `name` (`dir` may end with a slash).
fn join(dir: &str, name: &str) -> String {
    format!("{}/{name}", dir.trim_end_matches('/'))
}

/// Whether `path` is an existing directory of the cluster (a missing one is not).
async fn is_remote_dir(c: &Client, path: &str, v: &VolumeArg) -> Result<bool> {
    match c.stat(path, v.volume.as_deref()).await {
        Ok(f) => Ok(f.kind == "dir"),
        Err(e) if e.code() == Some("not_found") || e.code() == Some("no_volume") => Ok(false),
        Err(e) => Err(current_only(path, e)),
    }
}

/// Where a local file `name` lands for the target `path`: inside it when it ends with
/// a slash or is an existing directory, else at `path`.
async fn target_in(c: &Client, path: &str, name: &str, v: &VolumeArg) -> Result<String> {
    if path.ends_with('/') {
        if name.is_empty() {
            bail!("{path}: names a directory, and there is no file name to put in it");
        }
        return Ok(join(path, name));
    }
    if !name.is_empty() && is_remote_dir(c, path, v).await? {
        return Ok(join(path, name));
    }
    Ok(path.to_string())
}

fn durability(f: &keel_node::gateway::api::FileView) -> &'static str {
    match f.replication.as_deref() {
        Some("async") => {
            "durable on the Primary's site, the other sites in the background (async volume)"
        }
        _ => "durable on every in-sync replica",
    }
}

pub async fn put(
    c: &Client,
    local: &Path,
    path: &str,
    recursive: bool,
    v: &VolumeArg,
) -> Result<()> {
    if local == Path::new("-") {
        if recursive {
            bail!("put -r -: a tree cannot come from standard input");
        }
        if path.ends_with('/') {
            bail!("put - {path}: standard input has no file name: give the file's full path");
        }
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut data)?;
        let f = c.put_bytes(path, data, v.volume.as_deref()).await?;
        println!(
            "{}: {} bytes in {} chunks from standard input, {} (generation {})",
            f.path,
            f.size,
            f.chunks,
            durability(&f),
            f.generation
        );
        return Ok(());
    }
    let meta = std::fs::metadata(local).map_err(|e| anyhow::anyhow!("{}: {e}", local.display()))?;
    let name = local
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if meta.is_dir() {
        if !recursive {
            bail!(
                "{}: is a directory: `keel put -r` copies a tree",
                local.display()
            );
        }
        return put_tree(c, local, &target_in(c, path, &name, v).await?, v).await;
    }
    let target = target_in(c, path, &name, v).await?;
    let pb = bar(Some(meta.len()));
    let progress = {
        let pb = pb.clone();
        move |n: u64| pb.set_position(n)
    };
    let r = c
        .put_file(local, &target, v.volume.as_deref(), progress)
        .await;
    pb.finish_and_clear();
    let f = r?;
    println!(
        "{}: {} bytes in {} chunk{}, {} (generation {})",
        f.path,
        f.size,
        f.chunks,
        if f.chunks == 1 { "" } else { "s" },
        durability(&f),
        f.generation
    );
    Ok(())
}

/// A local file of a tree: its path, its path relative to the tree (`/a/b`), its size.
type LocalFile = (PathBuf, String, u64);

/// Every entry under a local directory, parents before children, in name order:
/// directories (as cluster paths relative to the tree) and regular files.
fn local_tree(root: &Path) -> Result<(Vec<String>, Vec<LocalFile>)> {
    let mut dirs = vec![];
    let mut files = vec![];
    let mut todo = vec![(root.to_path_buf(), String::new())];
    while let Some((dir, rel)) = todo.pop() {
        let mut entries: Vec<_> = std::fs::read_dir(&dir)
            .map_err(|e| anyhow::anyhow!("{}: {e}", dir.display()))?
            .collect::<Result<_, _>>()?;
        entries.sort_by_key(|e| e.file_name());
        for e in entries.into_iter().rev() {
            let name = e.file_name().to_string_lossy().into_owned();
            let child = format!("{rel}/{name}");
            let t = e.file_type()?;
            if t.is_dir() {
                dirs.push(child.clone());
                todo.push((e.path(), child));
            } else if t.is_file() {
                files.push((e.path(), child, e.metadata()?.len()));
            } else {
                eprintln!(
                    "warning: {}: not a regular file or directory, skipped",
                    e.path().display()
                );
            }
        }
    }
    dirs.sort();
    files.sort_by(|a, b| a.1.cmp(&b.1));
    Ok((dirs, files))
}

/// `put -r`: the tree at `local` becomes `remote` (directories first, then files),
/// with one progress bar over all bytes.
async fn put_tree(c: &Client, local: &Path, remote: &str, v: &VolumeArg) -> Result<()> {
    let (dirs, files) = local_tree(local)?;
    let vol = v.volume.as_deref();
    if remote != "/" {
        c.mkdir_with(remote, vol, true).await?;
    }
    for d in &dirs {
        c.mkdir_with(&join(remote, d.trim_start_matches('/')), vol, true)
            .await?;
    }
    let total: u64 = files.iter().map(|f| f.2).sum();
    let pb = bar(Some(total));
    let mut done = 0u64;
    for (path, rel, len) in &files {
        let target = join(remote, rel.trim_start_matches('/'));
        let progress = {
            let pb = pb.clone();
            move |n: u64| pb.set_position(done + n)
        };
        let r = c.put_file(path, &target, vol, progress).await;
        if let Err(e) = r {
            pb.finish_and_clear();
            return Err(e.into());
        }
        done += len;
    }
    pb.finish_and_clear();
    println!(
        "{remote}: {} files, {total} bytes, {} directories from {}",
        files.len(),
        dirs.len(),
        local.display()
    );
    Ok(())
}

/// `get -r`: the tree at `remote` becomes the local directory `local`.
async fn get_tree(c: &Client, remote: &str, local: &Path, v: &VolumeArg) -> Result<()> {
    if !is_remote_dir(c, remote, v).await? {
        bail!("{remote}: not a directory (`keel get` without -r reads a file)");
    }
    let vol = v.volume.as_deref();
    // Walk the remote tree: directories and files, parents first.
    let mut files: Vec<(String, PathBuf, u64)> = vec![];
    let mut dirs: Vec<PathBuf> = vec![local.to_path_buf()];
    let mut todo = vec![(remote.to_string(), local.to_path_buf())];
    let mut stale = false;
    while let Some((dir, ldir)) = todo.pop() {
        let (entries, s) = c.list(&dir, vol).await.map_err(|e| current_only(&dir, e))?;
        stale |= s;
        for e in entries {
            let rpath = join(&dir, &e.name);
            let lpath = ldir.join(&e.name);
            if e.kind == "dir" {
                dirs.push(lpath.clone());
                todo.push((rpath, lpath));
            } else {
                files.push((rpath, lpath, e.size));
            }
        }
    }
    if stale {
        eprintln!("{STALE_WARNING}");
    }
    for d in &dirs {
        std::fs::create_dir_all(d).map_err(|e| anyhow::anyhow!("{}: {e}", d.display()))?;
    }
    let total: u64 = files.iter().map(|f| f.2).sum();
    let pb = bar(Some(total));
    let mut done = 0u64;
    let mut bytes = 0u64;
    for (rpath, lpath, _) in &files {
        let progress = {
            let pb = pb.clone();
            move |n: u64, _total: Option<u64>| pb.set_position(done + n)
        };
        let r = c.get_file(rpath, lpath, vol, progress).await;
        match r {
            Ok(o) => {
                stale |= o.stale;
                done += o.bytes;
                bytes += o.bytes;
            }
            Err(e) => {
                pb.finish_and_clear();
                return Err(current_only(rpath, e));
            }
        }
    }
    pb.finish_and_clear();
    if stale {
        eprintln!("{STALE_WARNING}");
    }
    println!(
        "{remote}: {} files, {bytes} bytes, {} directories written to {}",
        files.len(),
        dirs.len() - 1,
        local.display()
    );
    Ok(())
}

pub async fn get(
    c: &Client,
    path: &str,
    local: &Path,
    recursive: bool,
    v: &VolumeArg,
) -> Result<()> {
    if recursive {
        if local == Path::new("-") {
            bail!("get -r: a tree cannot go to standard output");
        }
        let local = if local.is_dir() && !base_name(path).is_empty() {
            local.join(base_name(path))
        } else {
            local.to_path_buf()
        };
        return get_tree(c, path, &local, v).await;
    }
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
    let joined;
    let local = if local.is_dir() && !base_name(path).is_empty() {
        joined = local.join(base_name(path));
        joined.as_path()
    } else {
        local
    };
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

pub async fn mkdir(c: &Client, path: &str, parents: bool, v: &VolumeArg) -> Result<()> {
    let f = c.mkdir_with(path, v.volume.as_deref(), parents).await?;
    println!("{}: directory created (inode {})", f.path, f.ino);
    Ok(())
}

/// `mv FROM TO`: into `TO` when it ends with a slash or is a directory; an existing
/// target is replaced only with `--force`, and a directory never by a file. (The
/// check runs before the rename: a target created in between is replaced as the
/// directory's rename does.)
pub async fn mv(c: &Client, from: &str, to: &str, force: bool, v: &VolumeArg) -> Result<()> {
    let vol = v.volume.as_deref();
    let name = base_name(from);
    let mut target = to.to_string();
    if name.is_empty() {
        // The root: the cluster refuses it with its own reason.
    } else if to.ends_with('/') || is_remote_dir(c, to, v).await? {
        target = join(to, name);
    }
    if !name.is_empty() {
        match c.stat(&target, vol).await {
            Ok(existing) => {
                let source = c.stat(from, vol).await.map_err(|e| current_only(from, e))?;
                if existing.ino == source.ino {
                    bail!("{from} and {target} are the same entry");
                }
                if existing.kind == "dir" && source.kind != "dir" {
                    bail!("{target}: is a directory: mv never replaces a directory by a file");
                }
                if !force {
                    bail!("{target}: already exists: `keel mv --force` replaces it");
                }
            }
            Err(e) if e.code() == Some("not_found") => {}
            Err(e) => return Err(current_only(&target, e)),
        }
    }
    let f = c.rename(from, &target, vol).await?;
    println!("{from} -> {}", f.path);
    Ok(())
}
