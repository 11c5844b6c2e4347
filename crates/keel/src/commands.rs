//! Carries out each command. Node commands run a node; the rest talk to a running
//! cluster through the client library.

use crate::cli::*;
use crate::output;
use anyhow::{anyhow, bail, Result};
use keel_client::Client;
use keel_core::{Composition, MemberRef, SetKind, SetSpec};
use keel_node::admin_api::AdminRequest;
use std::path::PathBuf;

pub async fn run(cli: Cli) -> Result<()> {
    let _ = DATA_KEY.set(cli.key.clone());
    match cli.command {
        Command::Key(cmd) => crate::keys_cmd::key(client(cli.cluster)?, cmd).await,
        Command::Admin(cmd) => crate::keys_cmd::admin(client(cli.cluster)?, cmd).await,
        Command::Node(NodeArgs {
            config: Some(path), ..
        }) => run_node(path).await,
        Command::Node(NodeArgs {
            action: Some(action),
            ..
        }) => {
            let req = match action {
                NodeAction::Drain { id, force } => AdminRequest::Drain { node: id, force },
                NodeAction::Undrain { id } => AdminRequest::Undrain { node: id },
                NodeAction::Clear { id } => AdminRequest::Clear { node: id },
                NodeAction::Remove { id } => AdminRequest::Remove { node: id },
            };
            admin(cli.cluster, req).await
        }
        Command::Node(_) => {
            bail!("`keel node` needs --config FILE, or one of: drain, undrain, clear, remove")
        }
        Command::Dev(DevCommand::Up(args)) => crate::dev::up(args).await,
        Command::Dev(DevCommand::Chaos(args)) => crate::chaos::run(args).await,
        Command::Lab(cmd) => crate::lab_cmd::run(cmd).await,
        Command::Status { json, check } => {
            let status = client(cli.cluster)?.status().await?;
            if json {
                println!("{}", serde_json::to_string(&output::status_json(&status))?);
            } else {
                print!("{}", output::status_table(&status));
            }
            if check {
                exit_on_error(&status);
            }
            Ok(())
        }
        Command::Health { json } => {
            let status = client(cli.cluster)?.status().await?;
            if json {
                let v = serde_json::json!({
                    "health": status.health,
                    "reasons": status.reasons,
                    "stale": status.stale,
                });
                println!("{v}");
            } else {
                print!("{}", output::health_text(&status));
            }
            exit_on_error(&status);
            Ok(())
        }
        Command::Events {
            json,
            follow,
            since,
            set,
            node,
            kind,
            last,
        } => {
            let now = chrono::Utc::now().timestamp_millis();
            let filter = crate::events_cmd::Filter {
                since: since
                    .map(|s| crate::events_cmd::parse_since(&s, now))
                    .transpose()?,
                set,
                node,
                kinds: crate::events_cmd::parse_kinds(&kind)?,
            };
            let options = crate::events_cmd::Options {
                json,
                follow,
                last,
                filter,
            };
            crate::events_cmd::run(client(cli.cluster)?, options).await
        }
        Command::Set(cmd) => set(cli.cluster, cmd).await,
        Command::Takeover { set, to, epoch } => {
            admin(
                cli.cluster,
                AdminRequest::Takeover {
                    set,
                    to: member_ref(&to),
                    epoch: epoch.map(keel_core::Epoch),
                },
            )
            .await
        }
        Command::Fault(FaultCommand::Link { node, link, state }) => {
            let c = client(cli.cluster)?;
            if !c.file.dev {
                bail!("fault injection is only for clusters started by `keel dev up`");
            }
            let reply = c
                .fault_link(node, &link, matches!(state, LinkState::Up))
                .await?;
            println!("{}", reply.message);
            Ok(())
        }
        Command::Secret(SecretCommand::New { file, cluster_name }) => {
            if file.exists() {
                bail!(
                    "{} exists: refusing to overwrite a cluster secret",
                    file.display()
                );
            }
            keel_net::ClusterSecret::generate(&cluster_name)?.save(&file)?;
            println!(
                "cluster secret for {cluster_name:?} written to {} (mode 0600)",
                file.display()
            );
            Ok(())
        }
        Command::Layout(LayoutCommand::Apply { replicas }) => {
            admin(
                cli.cluster,
                AdminRequest::ApplyLayout {
                    replicas,
                    dry_run: false,
                },
            )
            .await
        }
        Command::Layout(LayoutCommand::Show { replicas }) => {
            admin(
                cli.cluster,
                AdminRequest::ApplyLayout {
                    replicas,
                    dry_run: true,
                },
            )
            .await
        }
        Command::Volume(VolumeCommand::Create {
            name,
            async_replication,
            chunk_size,
        }) => {
            let mode = if async_replication { "async" } else { "sync" };
            let v = client(cli.cluster)?
                .create_volume(&name, mode, chunk_size)
                .await?;
            println!(
                "volume {}: {} replication, {}-byte chunks",
                v.name, v.replication, v.chunk_size
            );
            if v.replication == "async" {
                eprintln!("warning: asynchronous replication: losing the Primary's site loses acknowledged writes that had not reached the other site");
            }
            Ok(())
        }
        Command::Volume(VolumeCommand::List { json }) => {
            let vs = client(cli.cluster)?.volumes().await?;
            if json {
                println!("{}", serde_json::to_string(&vs)?);
            } else {
                println!("{:<24} {:<11} {:>12}", "VOLUME", "REPLICATION", "CHUNK");
                for v in vs {
                    println!("{:<24} {:<11} {:>12}", v.name, v.replication, v.chunk_size);
                }
            }
            Ok(())
        }
        Command::Put {
            local,
            path,
            recursive,
            volume,
        } => crate::files_cmd::put(&client(cli.cluster)?, &local, &path, recursive, &volume).await,
        Command::Get {
            path,
            local,
            recursive,
            allow_stale,
            volume,
        } => {
            let c = client(cli.cluster)?.allowing_stale(allow_stale);
            crate::files_cmd::get(&c, &path, &local, recursive, &volume).await
        }
        Command::Ls {
            path,
            json,
            allow_stale,
            volume,
        } => {
            let c = client(cli.cluster)?.allowing_stale(allow_stale);
            crate::files_cmd::ls(&c, &path, json, &volume).await
        }
        Command::Stat {
            path,
            json,
            allow_stale,
            volume,
        } => {
            let c = client(cli.cluster)?.allowing_stale(allow_stale);
            crate::files_cmd::stat(&c, &path, json, &volume).await
        }
        Command::Mkdir {
            path,
            parents,
            volume,
        } => crate::files_cmd::mkdir(&client(cli.cluster)?, &path, parents, &volume).await,
        Command::Mv {
            from,
            to,
            force,
            volume,
        } => crate::files_cmd::mv(&client(cli.cluster)?, &from, &to, force, &volume).await,
        Command::Rm { path, volume } => {
            client(cli.cluster)?
                .remove(&path, volume.volume.as_deref())
                .await?;
            println!("{path}: removed");
            Ok(())
        }
        Command::Bench(BenchCommand::Io {
            files,
            size,
            parallel,
            nodes,
            dir,
            base_port,
        }) => crate::bench_io::run(files, &size, parallel, nodes, dir, base_port).await,
        Command::Bench(BenchCommand::Gateways {
            files,
            size,
            small,
            dir,
            base_port,
        }) => {
            crate::bench_gw::run(crate::bench_gw::Args {
                files,
                size,
                small,
                dir,
                base_port,
            })
            .await
        }
        Command::Bench(BenchCommand::Failover {
            trials,
            nodes,
            dir,
            base_port,
            faults,
            hold_ms,
            clients,
            put_size,
        }) => {
            let faults = faults
                .split(',')
                .map(|f| {
                    crate::bench::Fault::parse(f.trim())
                        .ok_or_else(|| anyhow::anyhow!("{f:?} is not a fault of the benchmark"))
                })
                .collect::<Result<Vec<_>>>()?;
            let put_size = crate::bench_io::parse_size(&put_size)? as usize;
            crate::bench::failover(crate::bench::Options {
                trials,
                nodes,
                dir,
                base_port,
                faults,
                hold: std::time::Duration::from_millis(hold_ms),
                clients,
                put_size,
            })
            .await
        }
    }
}

async fn run_node(path: PathBuf) -> Result<()> {
    let cfg = keel_config::NodeConfig::load(&path)?;
    init_tracing();
    keep_chunk_buffers_in_the_heap();
    let shutdown = async {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => return std::future::pending().await,
            };
        tokio::select! {
            _ = term.recv() => {},
            _ = tokio::signal::ctrl_c() => {},
        }
    };
    let servers = crate::gateway_servers::make();
    keel_node::run_with_gateway(cfg, shutdown, Some(servers)).await?;
    Ok(())
}

/// A node moves data in chunk-sized buffers (4 MiB). glibc would map each one
/// freshly (allocations over 128 KiB) and unmap it when freed, so every chunk would
/// fault in its pages anew: measured, a quarter of a node's CPU. Raising the mmap
/// threshold (to glibc's maximum, 32 MiB; the trim threshold with it) keeps such
/// buffers in the heap, reused.
fn keep_chunk_buffers_in_the_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator tuning; called before the node allocates
    // its buffers, with valid parameters.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 256 << 20);
    }
}

pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("KEEL_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,openraft=warn"));
    use tracing_subscriber::prelude::*;
    // Repeated warnings and errors (a retry loop failing) are written once with a count.
    let output = tracing_subscriber::fmt::layer()
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .with_filter(crate::log_limit::Coalesce::default());
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(output)
        .try_init();
}

/// `status --check` and `health`: exit 2 on HEALTH_ERR (after the output is flushed).
fn exit_on_error(status: &keel_node::admin_api::StatusView) {
    if status.health == keel_client::verdict::Health::Err.as_str() {
        use std::io::Write;
        let _ = std::io::stdout().flush();
        std::process::exit(2);
    }
}

/// The data key given as --key or $KEEL_KEY (set once, at the start of [`run`]).
static DATA_KEY: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();

fn client(dir: Option<PathBuf>) -> Result<Client> {
    let dir = dir.ok_or_else(|| anyhow!("--cluster DIR is required (or set KEEL_CLUSTER)"))?;
    let admin_token = std::env::var("KEEL_ADMIN_TOKEN")
        .ok()
        .filter(|t| !t.is_empty());
    Ok(Client::open(&dir)?
        .with_key(DATA_KEY.get().cloned().flatten())
        .with_admin_token(admin_token))
}

async fn admin(dir: Option<PathBuf>, req: AdminRequest) -> Result<()> {
    let reply = client(dir)?.admin(&req).await?;
    match reply.epoch {
        Some(e) => println!("{} (epoch {e})", reply.message),
        None => println!("{}", reply.message),
    }
    Ok(())
}

fn member_ref(s: &str) -> MemberRef {
    match s.parse::<u64>() {
        Ok(n) => MemberRef::Node(n),
        Err(_) => MemberRef::Set(s.to_string()),
    }
}

async fn set(dir: Option<PathBuf>, cmd: SetCommand) -> Result<()> {
    match cmd {
        SetCommand::Create {
            id,
            members,
            composition,
            kind,
            threshold,
            giveback_ms,
        } => {
            let composition = match composition {
                CompositionArg::Single => Composition::Single,
                CompositionArg::Nway => Composition::NWay,
                CompositionArg::Hierarchical => Composition::Hierarchical,
            };
            let kind = match kind {
                KindArg::Generic => SetKind::Generic,
                KindArg::Storage => SetKind::Storage,
                KindArg::Directory => SetKind::Directory,
                KindArg::Gateway => SetKind::Gateway,
            };
            let members = members.iter().map(|m| member_ref(m.trim())).collect();
            let spec = SetSpec {
                id,
                kind,
                composition,
                members,
                health_threshold: threshold,
                auto_giveback_ms: giveback_ms,
            };
            admin(dir, AdminRequest::CreateSet { spec }).await
        }
        SetCommand::Delete { id, force } => {
            admin(dir, AdminRequest::DeleteSet { set: id, force }).await
        }
        SetCommand::List { json } => {
            let status = client(dir)?.status().await?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string(&output::status_json(&status)["sets"])?
                );
            } else {
                print!("{}", output::sets_table(&status.sets, &status.nodes));
            }
            Ok(())
        }
        SetCommand::Show { id, json } => {
            let status = client(dir)?.status().await?;
            let set = status
                .sets
                .iter()
                .find(|s| s.id == id)
                .ok_or_else(|| anyhow!("unknown failover set {id:?}"))?;
            if json {
                println!("{}", serde_json::to_string(set)?);
            } else {
                print!("{}", output::set_detail(set));
            }
            Ok(())
        }
    }
}
