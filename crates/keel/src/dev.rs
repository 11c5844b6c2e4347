//! `keel dev up`: a local cluster of separate node processes on loopback, supervised
//! like a service manager would: a node process that dies is restarted after a delay.
//!
//! Layout: node `n` of site `s` has link `a` at 127.0.s.n and link `b` at 127.1.s.n, so
//! sites differ only in the subnet part. With two or more sites a control-only
//! tiebreaker node stands in an extra site. Must never touch addresses outside
//! 127.0.0.0/8.

use crate::cli::DevUpArgs;
use anyhow::{bail, Context, Result};
use keel_client::{Client, ClusterFile, LinkEntry, NfsEntry, NodeEntry, S3Entry};
use keel_config::{
    DevConfig, DiscoveryConfig, ExportConfig, ExportPolicy, GatewayConfig, LinkConfig, NodeConfig,
    PortsConfig, TimingsConfig,
};
use keel_core::{Composition, MemberRef, NodeRole, SetKind, SetSpec};
use keel_node::admin_api::AdminRequest;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

/// The nodes of a dev cluster: configs in site order, plus the tiebreaker.
pub fn layout(dir: &Path, nodes: u8, sites: u8, base_port: u16) -> Vec<NodeConfig> {
    layout_with(dir, nodes, sites, base_port, |_, _| None)
}

/// [`layout`], with each node's links replaced by `links(id, site)` where it returns
/// some (the lab's hosts have their own addresses), before the seeds are computed.
pub(crate) fn layout_with(
    dir: &Path,
    nodes: u8,
    sites: u8,
    base_port: u16,
    links: impl Fn(u64, u8) -> Option<Vec<LinkConfig>>,
) -> Vec<NodeConfig> {
    let mut cfgs = vec![];
    let mut id = 0u64;
    for s in 1..=sites {
        let here = nodes / sites + u8::from(s <= nodes % sites);
        for n in 1..=here {
            id += 1;
            cfgs.push(node_config(dir, id, s, n, base_port, all_roles()));
        }
    }
    if sites >= 2 {
        id += 1;
        cfgs.push(node_config(
            dir,
            id,
            sites + 1,
            1,
            base_port,
            [NodeRole::Control].into(),
        ));
    }
    for c in &mut cfgs {
        let site = c.site.parse().unwrap_or(0);
        if let Some(l) = links(c.id, site) {
            c.links = l;
        }
    }
    let seeds: Vec<SocketAddr> = cfgs
        .iter()
        .map(|c| SocketAddr::new(c.links[0].addr, c.ports.rpc))
        .collect();
    for c in &mut cfgs {
        c.discovery.seeds = seeds
            .iter()
            .copied()
            .filter(|s| s.ip() != c.links[0].addr)
            .collect();
    }
    cfgs
}

pub(crate) fn all_roles() -> std::collections::BTreeSet<NodeRole> {
    [NodeRole::Control, NodeRole::Storage, NodeRole::Gateway].into()
}

pub(crate) fn node_config(
    dir: &Path,
    id: u64,
    site: u8,
    n: u8,
    base_port: u16,
    roles: std::collections::BTreeSet<NodeRole>,
) -> NodeConfig {
    let home = dir.join(format!("n{id}"));
    NodeConfig {
        id,
        cluster: "dev".into(),
        site: site.to_string(),
        data_dir: home.join("data"),
        secret_file: dir.join("secret.pem"),
        links: vec![
            LinkConfig {
                name: "a".into(),
                addr: IpAddr::V4(Ipv4Addr::new(127, 0, site, n)),
            },
            LinkConfig {
                name: "b".into(),
                addr: IpAddr::V4(Ipv4Addr::new(127, 1, site, n)),
            },
        ],
        ports: PortsConfig {
            rpc: base_port,
            heartbeat: base_port + 1,
            admin: base_port + 80,
        },
        discovery: DiscoveryConfig {
            bootstrap: id == 1,
            ..Default::default()
        },
        timings: TimingsConfig::default(),
        locator: Default::default(),
        async_replication: Default::default(),
        dev: DevConfig {
            faults: true,
            protocol_override: None,
        },
        http: Default::default(),
        gateway: if roles.contains(&NodeRole::Gateway) {
            dev_gateway(base_port)
        } else {
            Default::default()
        },
        dns: Default::default(),
        roles,
    }
}

/// The dev cluster's gateway failover set: every gateway node.
pub(crate) const GATEWAY_SET: &str = "gw";

/// The dev cluster's one export, `default`: volume `default` on 127.0.10.1, NFS on
/// the base port + 20, S3 on the base port + 21, served by set [`GATEWAY_SET`]
/// active-passive.
pub(crate) fn dev_gateway(base_port: u16) -> GatewayConfig {
    GatewayConfig {
        exports: vec![ExportConfig {
            name: "default".into(),
            set: GATEWAY_SET.into(),
            address: IpAddr::V4(Ipv4Addr::new(127, 0, 10, 1)),
            nfs_port: Some(base_port + 20),
            s3_port: Some(base_port + 21),
            volume: "default".into(),
            policy: ExportPolicy::ActivePassive,
        }],
        ..Default::default()
    }
}

/// Set by `keel dev chaos`, whose stdout is reserved for its report: the start-up
/// lines then go to stderr.
pub(crate) static PROGRESS_ON_STDERR: std::sync::atomic::AtomicBool =
    std::sync::atomic::AtomicBool::new(false);

/// One line of start-up progress (stdout, or stderr for `dev chaos`).
fn say(line: String) {
    if PROGRESS_ON_STDERR.load(std::sync::atomic::Ordering::Relaxed) {
        eprintln!("{line}");
    } else {
        println!("{line}");
    }
}

pub(crate) struct Supervised {
    pub(crate) exe: PathBuf,
    pub(crate) cfg: NodeConfig,
    pub(crate) config_path: PathBuf,
    pub(crate) log_path: PathBuf,
    pub(crate) child: Option<Child>,
    pub(crate) died_at: Option<Instant>,
}

pub(crate) fn spawn(s: &mut Supervised) -> Result<u32> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&s.log_path)?;
    let mut cmd = std::process::Command::new(&s.exe);
    cmd.arg("node")
        .arg("--config")
        .arg(&s.config_path)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    // The node dies with its supervisor, and Ctrl-C at the terminal reaches only us.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            libc::setpgid(0, 0);
            Ok(())
        });
    }
    let child = cmd
        .spawn()
        .with_context(|| format!("starting node {}", s.cfg.id))?;
    let pid = child.id();
    s.child = Some(child);
    s.died_at = None;
    Ok(pid)
}

pub(crate) fn cluster_file(dir: &Path, nodes: &[Supervised]) -> ClusterFile {
    ClusterFile {
        name: "dev".into(),
        secret_file: dir.join("secret.pem"),
        dev: true,
        supervisor_pid: Some(std::process::id()),
        nodes: nodes
            .iter()
            .map(|s| NodeEntry {
                id: s.cfg.id,
                site: s.cfg.site.clone(),
                addr: s.cfg.links[0].addr.to_string(),
                links: s
                    .cfg
                    .links
                    .iter()
                    .map(|l| LinkEntry {
                        name: l.name.clone(),
                        addr: l.addr.to_string(),
                    })
                    .collect(),
                admin: SocketAddr::new(s.cfg.links[0].addr, s.cfg.ports.admin).to_string(),
                roles: s
                    .cfg
                    .roles
                    .iter()
                    .map(|r| format!("{r:?}").to_lowercase())
                    .collect(),
                pid: s.child.as_ref().map(|c| c.id()).unwrap_or(0),
                config: Some(s.config_path.clone()),
                log: Some(s.log_path.clone()),
            })
            .collect(),
        ca_cert: Some(dir.join(ClusterFile::CA_CERT)),
        timings: nodes.first().map(|s| keel_client::ClientTimings {
            fail_after_ms: s.cfg.timings.fail_after_ms,
            lease_ms: s.cfg.timings.lease_ms,
        }),
        // Rewritten as nodes restart: keep the data key `ensure_data_key` wrote, and
        // the NFS and S3 entries `ensure_export` wrote.
        ..keep_written(dir)
    }
}

/// What `dev up` wrote into `DIR/cluster.json` after the nodes started (the data key,
/// the NFS and S3 entries), as defaults for a rewrite of the file.
fn keep_written(dir: &Path) -> ClusterFile {
    let old = ClusterFile::load(dir).ok();
    let old = old.as_ref();
    ClusterFile {
        name: String::new(),
        secret_file: PathBuf::new(),
        nodes: vec![],
        dev: true,
        supervisor_pid: None,
        key: old.and_then(|f| f.key.clone()),
        ca_cert: None,
        nfs: old.and_then(|f| f.nfs.clone()),
        s3: old.and_then(|f| f.s3.clone()),
        timings: None,
        dns: old.and_then(|f| f.dns.clone()),
    }
}

/// Creates a read-write access key named `dev` and writes it into `DIR/cluster.json`
/// (the CLI's default key), and the admin token into `DIR/admin-token` for the
/// operator. Retries while the cluster elects a leader (up to 30 s). Returns a client
/// that uses the key.
pub(crate) async fn ensure_data_key(client: &Client, dir: &Path) -> Result<Client> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let req = keel_node::admin_api::NewKeyRequest {
        name: "dev".into(),
        volumes: vec![],
        read_only: false,
    };
    let k = loop {
        match client.create_key(&req).await {
            Ok(k) => break k,
            Err(e) if Instant::now() >= deadline => {
                return Err(anyhow::anyhow!("creating the dev access key: {e}"))
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    };
    let mut file = ClusterFile::load(dir)?;
    file.key = Some(format!("{}:{}", k.key.id, k.secret));
    file.save(dir)?;
    if let Some(t) = client.admin_token() {
        if !dir.join(ClusterFile::ADMIN_TOKEN).exists() {
            keel_client::save_admin_token(dir, t)?;
        }
    }
    Ok(Client::open(dir)?)
}

fn alive(pid: u32) -> bool {
    pid != 0 && unsafe { libc::kill(pid as i32, 0) } == 0
}

pub async fn up(args: DevUpArgs) -> Result<()> {
    if args.nodes == 0 || args.nodes > 64 {
        bail!("--nodes must be 1 to 64");
    }
    if args.sites == 0 || args.sites > 8 || args.sites > args.nodes {
        bail!("--sites must be 1 to 8 and at most --nodes");
    }
    if args.base_port < 1024 || args.base_port > 65000 {
        bail!("--base-port must be 1024 to 65000");
    }
    let (dir, mut nodes) = prepare(&args.dir, args.nodes, args.sites, args.base_port)?;
    let dir = &dir;
    for s in &mut nodes {
        let pid = spawn(s)?;
        println!(
            "[dev] node {} (site {}, {}) started, pid {pid}, log {}",
            s.cfg.id,
            s.cfg.site,
            s.cfg.links[0].addr,
            s.log_path.display()
        );
    }
    cluster_file(dir, &nodes).save(dir)?;

    let client = Client::open(dir)?;
    let term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let (count, members) = (nodes.len(), default_members(&nodes));
    let replicas = args.replicas;
    let base_port = args.base_port;
    // Startup runs while the supervisor already restarts nodes that die.
    let startup = async move {
        wait_ready(&client, count).await?;
        let client = ensure_data_key(&client, dir).await?;
        println!(
            "[dev] access key `dev` (read-write) written to {}; admin token in {}",
            dir.join(ClusterFile::NAME).display(),
            dir.join(ClusterFile::ADMIN_TOKEN).display()
        );
        ensure_default_set(&client, members.clone()).await?;
        apply_layout(&client, replicas).await?;
        let export =
            ensure_export(&client, dir, members, &dev_gateway(base_port).exports[0]).await?;
        let status = wait_acting(&client).await?;
        demo_put_get(&client, dir).await;
        println!();
        print!("{}", crate::output::status_table(&status));
        if let Some(set) = status.sets.iter().find(|s| s.id == "default") {
            if let (Some(p), Some(h)) = (&set.primary, set.lease_holder) {
                println!("[dev] set default: node {p} is Primary at epoch {} and acts under its lease (holder {h})", set.epoch);
            }
        }
        println!();
        println!("[dev] cluster is up. In another terminal:");
        println!(
            "    keel --cluster {0} status            # members, sets, epochs",
            dir.display()
        );
        println!(
            "    keel --cluster {0} events --follow   # failover timelines",
            dir.display()
        );
        println!(
            "    keel --cluster {0} put FILE /path     # store a file (durable on every in-sync replica)",
            dir.display()
        );
        println!(
            "    keel --cluster {0} get /path FILE     # read it back",
            dir.display()
        );
        println!("    kill -9 <pid of the Primary>          # watch another member take over");
        print!("{export}");
        println!("[dev] Ctrl-C stops every node.");
        Ok::<(), anyhow::Error>(())
    };
    supervise(dir, &mut nodes, &args, term, startup).await
}

/// Makes `dir` a dev cluster's home (refusing one whose supervisor still runs): the
/// cluster secret if missing, and each node's directory and `keel.toml`. Starts
/// nothing; returns the canonical directory and the nodes, in id order.
pub(crate) fn prepare(
    dir: &Path,
    nodes: u8,
    sites: u8,
    base_port: u16,
) -> Result<(PathBuf, Vec<Supervised>)> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let dir = &dir.canonicalize()?;
    if let Ok(old) = ClusterFile::load(dir) {
        if let Some(pid) = old
            .supervisor_pid
            .filter(|p| *p != std::process::id() && alive(*p))
        {
            bail!(
                "a dev cluster is already running in {} (supervisor pid {pid})",
                dir.display()
            );
        }
    }
    let (dir, exe) = init_dir(dir)?;
    let dir = &dir;
    let mut out = vec![];
    let cfgs = layout(dir, nodes, sites, base_port);
    check_ports(&cfgs)?;
    for cfg in cfgs {
        out.push(supervised(dir, &exe, cfg)?);
    }
    Ok((dir.clone(), out))
}

/// Makes `dir` a cluster's home: creates it, the cluster secret if missing, and the CA
/// certificate. Returns the canonical directory and the keel binary to run nodes with.
/// (Shared by `keel dev up` and `keel lab up`.)
pub(crate) fn init_dir(dir: &Path) -> Result<(PathBuf, PathBuf)> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let dir = &dir.canonicalize()?;
    let secret_path = dir.join("secret.pem");
    if !secret_path.exists() {
        keel_net::ClusterSecret::generate("dev")?.save(&secret_path)?;
        say(format!(
            "[dev] cluster secret created: {} (mode 0600)",
            secret_path.display()
        ));
    }
    // The CA certificate alone (no key): what data clients verify the HTTP port with.
    let ca = keel_net::ClusterSecret::load(&secret_path)?.ca_cert_pem();
    std::fs::write(dir.join(ClusterFile::CA_CERT), ca)?;
    // Resolved once: a rebuilt binary replaces the file, and a restart then runs the new one.
    let exe = std::env::current_exe().context("locating the keel binary")?;
    let exe = PathBuf::from(exe.to_string_lossy().trim_end_matches(" (deleted)"));
    Ok((dir.clone(), exe))
}

/// Writes node `cfg.id`'s directory and `keel.toml` under `dir`.
pub(crate) fn supervised(dir: &Path, exe: &Path, cfg: NodeConfig) -> Result<Supervised> {
    let home = dir.join(format!("n{}", cfg.id));
    std::fs::create_dir_all(&home)?;
    let config_path = home.join("keel.toml");
    std::fs::write(&config_path, cfg.to_toml())?;
    Ok(Supervised {
        exe: exe.to_path_buf(),
        log_path: home.join("node.log"),
        config_path,
        cfg,
        child: None,
        died_at: None,
    })
}

/// The configuration of one more storage node for a running dev cluster of `nodes`:
/// the next id, the next address of site `site`, every existing node as a seed. Start
/// it with `keel node --config DIR/nK/keel.toml`; it is admitted as a member, and
/// `keel layout apply` gives it a storage set. (How `keel dev chaos` adds a node.)
pub(crate) fn extra_node(dir: &Path, nodes: &[NodeConfig], site: u8) -> NodeConfig {
    let id = nodes.iter().map(|c| c.id).max().unwrap_or(0) + 1;
    let in_site = nodes.iter().filter(|c| c.site == site.to_string()).count() as u8;
    let base_port = nodes.first().map_or(7100, |c| c.ports.rpc);
    let mut cfg = node_config(dir, id, site, in_site + 1, base_port, all_roles());
    cfg.discovery.seeds = nodes
        .iter()
        .map(|c| SocketAddr::new(c.links[0].addr, c.ports.rpc))
        .collect();
    cfg
}

/// Fails, naming the first port in use, unless every port of every node can be bound
/// (rpc and admin over TCP, heartbeat over UDP, on each link): started on a port
/// another process holds, a node would crash-loop and the supervisor would read the
/// other process's cluster as its own.
pub fn check_ports(cfgs: &[NodeConfig]) -> Result<()> {
    let mut exports = std::collections::BTreeSet::new();
    for e in cfgs.iter().flat_map(|c| &c.gateway.exports) {
        for port in [e.nfs_port, e.s3_port].into_iter().flatten() {
            exports.insert((e.name.clone(), SocketAddr::new(e.address, port)));
        }
    }
    for (name, addr) in exports {
        if let Err(e) = std::net::TcpListener::bind(addr) {
            bail!(
                "{addr} (export {name}) is in use: {e}; stop what holds it or choose another --base-port"
            );
        }
    }
    for c in cfgs {
        for l in &c.links {
            let tcp = [("rpc", c.ports.rpc), ("admin", c.ports.admin)];
            for (what, port) in tcp {
                let addr = SocketAddr::new(l.addr, port);
                if let Err(e) = std::net::TcpListener::bind(addr) {
                    bail!(
                        "port {port} ({what} port of node {}) on {} is in use: {e}; stop what holds it or choose another --base-port",
                        c.id,
                        l.addr
                    );
                }
            }
            let addr = SocketAddr::new(l.addr, c.ports.heartbeat);
            if let Err(e) = std::net::UdpSocket::bind(addr) {
                bail!(
                    "port {} (heartbeat port of node {}, UDP) on {} is in use: {e}; stop what holds it or choose another --base-port",
                    c.ports.heartbeat,
                    c.id,
                    l.addr
                );
            }
        }
    }
    Ok(())
}

pub(crate) async fn wait_ready(client: &Client, want: usize) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut last = String::new();
    loop {
        let line = match client.status().await {
            Ok(s) => {
                let up = s.nodes.iter().filter(|n| n.state == "up").count();
                if s.leader.is_some() && up == want {
                    say(format!(
                        "[dev] all {want} nodes up, leader {}",
                        s.leader.unwrap_or(0)
                    ));
                    return Ok(());
                }
                match s.leader {
                    Some(l) => format!("leader {l}, {up}/{want} nodes up"),
                    None => format!("no leader yet, {up}/{want} nodes up"),
                }
            }
            Err(_) => "waiting for the first node to answer".to_string(),
        };
        if line != last {
            say(format!("[dev] {line}"));
            last = line;
        }
        if Instant::now() > deadline {
            bail!("the cluster did not come up in 90 s ({last}); see the node logs");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Applies the storage layout (a storage set per storage node), retrying (up to 30 s)
/// while members restart.
pub(crate) async fn apply_layout(client: &Client, replicas: usize) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let req = AdminRequest::ApplyLayout {
            replicas: Some(replicas),
            dry_run: false,
        };
        match client.admin(&req).await {
            Ok(r) => {
                say(format!("[dev] {}", r.message));
                return Ok(());
            }
            Err(e) if Instant::now() > deadline => return Err(e.into()),
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

/// The gateway set over `members`, the export's volume, and `nfs` and `s3` in
/// `DIR/cluster.json`; waits (up to 15 s) until the export answers. Returns the lines
/// `dev up` prints about them.
pub(crate) async fn ensure_export(
    client: &Client,
    dir: &Path,
    members: Vec<MemberRef>,
    export: &ExportConfig,
) -> Result<String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match create_gateway_set(client, members.clone()).await {
            Ok(()) => break,
            Err(e) if Instant::now() > deadline => return Err(e),
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
    loop {
        let exists = client
            .volumes()
            .await
            .map(|vs| vs.iter().any(|v| v.name == export.volume));
        let made = match exists {
            Ok(true) => Ok(()),
            Ok(false) => client
                .create_volume(&export.volume, "sync", None)
                .await
                .map(|_| ()),
            Err(e) => Err(e),
        };
        match made {
            Ok(()) => break,
            Err(e) if Instant::now() > deadline => {
                return Err(anyhow::anyhow!("creating volume {}: {e}", export.volume))
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
    let (nfs_port, s3_port) = (
        export.nfs_port.unwrap_or_default(),
        export.s3_port.unwrap_or_default(),
    );
    let mut file = ClusterFile::load(dir)?;
    let (access_key, secret_key) = file
        .key
        .as_deref()
        .and_then(|k| k.split_once(':'))
        .map(|(a, s)| (a.to_string(), s.to_string()))
        .context("cluster.json has no access key")?;
    let host = export.address.to_string();
    file.nfs = Some(NfsEntry {
        host: host.clone(),
        port: nfs_port,
        export: export.name.clone(),
    });
    file.s3 = Some(S3Entry {
        endpoint: format!("http://{host}:{s3_port}"),
        access_key: access_key.clone(),
        secret_key,
        bucket: export.volume.clone(),
    });
    file.save(dir)?;
    let answers = tokio::time::timeout(Duration::from_secs(15), async {
        while tokio::net::TcpStream::connect((export.address, nfs_port))
            .await
            .is_err()
        {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .is_ok();
    let mut out = format!(
        "[dev] NFS: {host} port {nfs_port}, export /{0} (volume {1}); e.g. nfs-ls 'nfs://{host}/{0}?nfsport={nfs_port}&mountport={nfs_port}'\n",
        export.name, export.volume
    );
    out += &format!(
        "[dev] S3: endpoint http://{host}:{s3_port}, bucket {}, access key {access_key} (secret in {})\n",
        export.volume,
        dir.join(ClusterFile::NAME).display()
    );
    out += &format!(
        "[dev] export {} is served by the Active of gateway set {GATEWAY_SET}{}\n",
        export.name,
        if answers { "" } else { " (not answering yet)" }
    );
    Ok(out)
}

async fn create_gateway_set(client: &Client, members: Vec<MemberRef>) -> Result<()> {
    let status = client.status().await?;
    if status.sets.iter().any(|s| s.id == GATEWAY_SET) {
        return Ok(());
    }
    let composition = if members.len() >= 2 {
        Composition::NWay
    } else {
        Composition::Single
    };
    let spec = SetSpec {
        id: GATEWAY_SET.into(),
        kind: SetKind::Gateway,
        composition,
        members,
        health_threshold: 50,
        auto_giveback_ms: None,
    };
    let reply = client.admin(&AdminRequest::CreateSet { spec }).await?;
    say(format!("[dev] {}", reply.message));
    Ok(())
}

/// Shows the cluster working: a small file written and read back.
async fn demo_put_get(client: &Client, dir: &Path) {
    let text = format!("hello from keel, {}\n", chrono::Utc::now().to_rfc3339());
    let put = client
        .put_bytes("/hello.txt", text.clone().into_bytes(), None)
        .await;
    let got = match put {
        Ok(_) => client
            .get_bytes("/hello.txt", None, None)
            .await
            .map(|(b, _)| b),
        Err(e) => Err(e),
    };
    match got {
        Ok(b) if b == text.as_bytes() => println!(
            "[dev] wrote and read back /hello.txt ({} bytes): keel --cluster {} get /hello.txt -",
            b.len(),
            dir.display()
        ),
        Ok(_) => println!("[dev] /hello.txt read back different bytes"),
        Err(e) => println!("[dev] demo put/get of /hello.txt failed: {e}"),
    }
}

/// Waits (up to 15 s) until the Primary of `default` and of every storage set holds
/// its lease: the cluster works.
/// A member that does not answer meanwhile (it may be restarting) is no error.
pub(crate) async fn wait_acting(client: &Client) -> Result<keel_node::admin_api::StatusView> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let status = client.status().await;
        let acting = status.as_ref().is_ok_and(|st| {
            st.sets
                .iter()
                .filter(|s| s.id == "default" || s.kind == "storage")
                .all(|s| s.lease_holder.is_some() && s.lease_holder == s.primary_node())
        });
        if acting || Instant::now() > deadline {
            return Ok(status?);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The `default` set: every node but the control-only tiebreaker, in id order.
pub(crate) fn default_members(nodes: &[Supervised]) -> Vec<MemberRef> {
    nodes
        .iter()
        .filter(|s| s.cfg.roles.len() > 1)
        .map(|s| MemberRef::Node(s.cfg.id))
        .collect()
}

/// Creates the `default` set unless it exists, retrying (up to 30 s) while members
/// restart.
pub(crate) async fn ensure_default_set(client: &Client, members: Vec<MemberRef>) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match create_default_set(client, members.clone()).await {
            Ok(()) => return Ok(()),
            Err(e) if Instant::now() > deadline => return Err(e),
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

async fn create_default_set(client: &Client, members: Vec<MemberRef>) -> Result<()> {
    let composition = if members.len() >= 2 {
        Composition::NWay
    } else {
        Composition::Single
    };
    let status = client.status().await?;
    if status.sets.iter().all(|s| s.id != "default") {
        let spec = SetSpec {
            id: "default".into(),
            kind: SetKind::Generic,
            composition,
            members,
            health_threshold: 50,
            auto_giveback_ms: None,
        };
        let reply = client.admin(&AdminRequest::CreateSet { spec }).await?;
        say(format!("[dev] {}", reply.message));
    }
    Ok(())
}

pub(crate) fn stop_all(nodes: &mut [Supervised]) {
    for s in nodes.iter() {
        if let Some(c) = &s.child {
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
        }
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    for s in nodes.iter_mut() {
        if let Some(c) = s.child.as_mut() {
            while Instant::now() < deadline {
                if matches!(c.try_wait(), Ok(Some(_))) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            if matches!(c.try_wait(), Ok(None)) {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
        s.child = None;
    }
}

/// Restarts nodes that die until Ctrl-C or SIGTERM. `startup` (waiting for the
/// cluster, creating the default set) runs meanwhile; if it fails, every node stops.
async fn supervise(
    dir: &Path,
    nodes: &mut [Supervised],
    args: &DevUpArgs,
    mut term: tokio::signal::unix::Signal,
    startup: impl std::future::Future<Output = Result<()>>,
) -> Result<()> {
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    tokio::pin!(startup);
    let mut starting = true;
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = term.recv() => break,
            r = &mut startup, if starting => {
                starting = false;
                if let Err(e) = r {
                    stop_all(nodes);
                    return Err(e);
                }
            }
            _ = tick.tick() => {}
        }
        let mut changed = false;
        for s in nodes.iter_mut() {
            if let Some(c) = s.child.as_mut() {
                if let Ok(Some(status)) = c.try_wait() {
                    let pid = c.id();
                    s.child = None;
                    s.died_at = Some(Instant::now());
                    changed = true;
                    if args.no_restart {
                        println!("[dev] node {} (pid {pid}) exited: {status}; not restarting (--no-restart)", s.cfg.id);
                    } else {
                        println!(
                            "[dev] node {} (pid {pid}) exited: {status}; restarting in {} ms",
                            s.cfg.id, args.restart_delay_ms
                        );
                    }
                }
            } else if !args.no_restart
                && s.died_at
                    .is_some_and(|t| t.elapsed() >= Duration::from_millis(args.restart_delay_ms))
            {
                match spawn(s) {
                    Ok(pid) => println!("[dev] node {} restarted, pid {pid}", s.cfg.id),
                    Err(e) => {
                        println!(
                            "[dev] node {} could not be restarted ({e:#}); trying again",
                            s.cfg.id
                        );
                        s.died_at = Some(Instant::now());
                    }
                }
                changed = true;
            }
        }
        if changed {
            cluster_file(dir, nodes).save(dir)?;
        }
    }
    println!("[dev] stopping every node");
    stop_all(nodes);
    let mut file = cluster_file(dir, nodes);
    file.supervisor_pid = None;
    file.save(dir)?;
    println!("[dev] stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_site_layout_mirrors_and_adds_a_tiebreaker() {
        let cfgs = layout(Path::new("/tmp/x"), 4, 2, 7100);
        let addrs: Vec<String> = cfgs.iter().map(|c| c.links[0].addr.to_string()).collect();
        assert_eq!(
            addrs,
            [
                "127.0.1.1",
                "127.0.1.2",
                "127.0.2.1",
                "127.0.2.2",
                "127.0.3.1"
            ]
        );
        assert_eq!(cfgs[4].roles, [NodeRole::Control].into());
        assert!(cfgs.iter().all(|c| c.validate().is_ok()));
        assert_eq!(cfgs.iter().filter(|c| c.discovery.bootstrap).count(), 1);
        assert_eq!(cfgs[0].discovery.seeds.len(), 4);
    }
}
