//! `keel lab up | down | fault`: the CLI side of the lab (the network, journal, faults
//! and supervisor live in the `keel-lab` crate). Node configs, the secret, the CA and
//! cluster.json are written by the same functions as `keel dev up` (`dev::init_dir`,
//! `dev::layout_with`, `dev::supervised`, `dev::cluster_file`), with each node's links
//! bound to its host's addresses.
//!
//! `up` starts a detached supervisor (`keel lab supervise`, hidden) that runs the
//! nodes, then runs `keel lab setup` (hidden) inside the client host to wait for the
//! quorum and create the access key, default set and layout, and returns.
//!
//! With a data port per host (`--ports` 1 or more), every gateway node serves export
//! `default` (set `gw` over the storage hosts) on the moving address 198.18.140.1,
//! held on its data port 0 (`gateway.hold`): the set's Active adds and announces it.
//!
//! Must never: run without root, or leave what it made behind when `up` fails (it
//! takes the lab down again).

use crate::cli::{LabCommand, LabFault, LabLinkArgs, LabUpArgs};
use crate::dev;
use anyhow::{anyhow, bail, Context, Result};
use keel_client::{Client, ClusterFile};
use keel_config::{AddressHold, ExportConfig, ExportPolicy, GatewayConfig, LinkConfig, NodeConfig};
use keel_core::MemberRef;
use keel_lab::journal::{Entry, Journal};
use keel_lab::plan::Plan;
use keel_lab::{fault::Fault, net, say, supervise};
use std::net::{IpAddr, Ipv4Addr};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

/// The rpc port of every lab node (each host has its own addresses, so all agree).
const BASE_PORT: u16 = 7100;

pub async fn run(cmd: LabCommand) -> Result<()> {
    keel_lab::require_root()?;
    match cmd {
        LabCommand::Up(args) => tokio::task::spawn_blocking(move || up(args)).await?,
        LabCommand::Down { dir } => tokio::task::spawn_blocking(move || down(&dir)).await?,
        LabCommand::Fault(f) => {
            let dir = canonical(&f.dir)?;
            if keel_lab::journal::read(&dir)?.is_empty() {
                return Err(keel_lab::LabError::NoLab(dir.display().to_string()).into());
            }
            let plan = Plan::load(&dir)?;
            let fault = match f.action {
                LabFault::Kill { host } => Fault::Kill(host),
                LabFault::Pause { host } => Fault::Pause(host),
                LabFault::Resume { host } => Fault::Resume(host),
                LabFault::Cut(a) => link_fault(a, false),
                LabFault::Restore(a) => link_fault(a, true),
                LabFault::Isolate { host } => Fault::Isolate { host, up: false },
                LabFault::Rejoin { host } => Fault::Isolate { host, up: true },
                LabFault::Partition { sites } => Fault::Partition { sites },
                LabFault::Heal => Fault::Heal,
            };
            Ok(keel_lab::fault::apply(&plan, &fault)?)
        }
        LabCommand::Supervise {
            dir,
            restart_delay_ms,
        } => tokio::task::spawn_blocking(move || supervise_nodes(&dir, restart_delay_ms)).await?,
        LabCommand::Setup { dir, replicas } => setup(&dir, replicas).await,
    }
}

fn link_fault(a: LabLinkArgs, up: bool) -> Fault {
    match (a.link, a.port) {
        (Some(link), _) => Fault::Link {
            host: a.host,
            link,
            up,
        },
        (None, Some(port)) => Fault::Port {
            host: a.host,
            port,
            up,
        },
        // clap requires one of them.
        (None, None) => Fault::Port {
            host: a.host,
            port: u8::MAX,
            up,
        },
    }
}

fn canonical(dir: &Path) -> Result<PathBuf> {
    dir.canonicalize()
        .with_context(|| format!("no lab in {}", dir.display()))
}

/// The links of lab host `id` of site `site`: its addresses on the site's bridges.
fn lab_links(id: u64, site: u8) -> Option<Vec<LinkConfig>> {
    Some(
        ["a", "b"]
            .iter()
            .enumerate()
            .map(|(plane, name)| LinkConfig {
                name: (*name).into(),
                addr: IpAddr::V4(keel_lab::plan::link_addr(site, id, plane)),
            })
            .collect(),
    )
}

/// The lab's moving gateway address (in 198.18.140.0/22, left for them by the plan).
pub(crate) const LAB_EXPORT_ADDR: Ipv4Addr = Ipv4Addr::new(198, 18, 140, 1);

/// The lab's gateway role: export `default` of set `gw` on [`LAB_EXPORT_ADDR`], NFS
/// on port 7120 and S3 on 7121, held on the host's first data port: the Active adds
/// it there over netlink and announces it; it moves to the new Active on failover.
fn lab_gateway() -> GatewayConfig {
    GatewayConfig {
        hold: AddressHold::Interface(keel_lab::plan::port_if(0)),
        exports: vec![ExportConfig {
            name: "default".into(),
            set: dev::GATEWAY_SET.into(),
            address: IpAddr::V4(LAB_EXPORT_ADDR),
            nfs_port: Some(BASE_PORT + 20),
            s3_port: Some(BASE_PORT + 21),
            volume: "default".into(),
            policy: ExportPolicy::ActivePassive,
        }],
        ..Default::default()
    }
}

fn up(args: LabUpArgs) -> Result<()> {
    if args.hosts == 0 || args.hosts > 64 {
        bail!("--hosts must be 1 to 64");
    }
    if args.sites == 0 || args.sites > 8 || args.sites > args.hosts {
        bail!("--sites must be 1 to 8 and at most --hosts");
    }
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("creating {}", args.dir.display()))?;
    let dir = canonical(&args.dir)?;
    if !keel_lab::journal::read(&dir)?.is_empty() {
        return Err(keel_lab::LabError::AlreadyUp(dir.display().to_string()).into());
    }
    let (dir, exe) = dev::init_dir(&dir)?;
    let mut cfgs = dev::layout_with(&dir, args.hosts, args.sites, BASE_PORT, lab_links);
    // With a data port, the gateway nodes serve the export on a moving address.
    if args.ports >= 1 {
        for c in &mut cfgs {
            if c.roles.contains(&keel_core::NodeRole::Gateway) {
                c.gateway = lab_gateway();
            }
        }
    }
    let hosts: Vec<(u64, u8)> = cfgs
        .iter()
        .map(|c| (c.id, c.site.parse().unwrap_or(0)))
        .collect();
    let plan = Plan::new(&dir, &hosts, args.ports)?;
    say(format!(
        "lab in {} (prefix {}): {} host(s), {} site(s), {} data port(s) per host",
        dir.display(),
        plan.prefix,
        plan.hosts.len(),
        plan.sites.len(),
        args.ports
    ));
    plan.save()?;
    match start(&dir, &exe, &plan, cfgs, &args) {
        Ok(()) => Ok(()),
        Err(e) => {
            say(format!("lab up failed ({e:#}); taking down what it made"));
            if let Err(d) = net::teardown(&dir) {
                say(format!("taking it down failed too: {d}"));
            }
            Err(e)
        }
    }
}

fn start(
    dir: &Path,
    exe: &Path,
    plan: &Plan,
    cfgs: Vec<NodeConfig>,
    args: &LabUpArgs,
) -> Result<()> {
    let mut journal = Journal::open(dir)?;
    net::build(plan, &mut journal)?;
    for cfg in cfgs {
        let id = cfg.id;
        dev::supervised(dir, exe, cfg)?;
        supervise::release(dir, id)?;
    }
    say("node configs written; starting the supervisor");
    journal.record(&Entry::Supervisor {
        dir: dir.to_path_buf(),
    })?;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("supervisor.log"))?;
    let mut cmd = std::process::Command::new(exe);
    cmd.args(["lab", "supervise", "--dir"])
        .arg(dir)
        .arg("--restart-delay-ms")
        .arg(args.restart_delay_ms.to_string())
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    // Detached: it outlives `lab up`, in its own session.
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    let sup = cmd.spawn().context("starting the lab supervisor")?;
    let pid = sup.id() as i32;
    journal.record(&Entry::Process {
        pid,
        start_ticks: keel_lab::start_ticks(pid).unwrap_or(0),
    })?;
    say(format!(
        "supervisor pid {pid}, log {}",
        dir.join("supervisor.log").display()
    ));

    // cluster.json names the nodes once the supervisor started them all.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(f) = ClusterFile::load(dir) {
            if f.supervisor_pid == Some(pid as u32) && f.nodes.iter().all(|n| n.pid != 0) {
                break;
            }
        }
        if keel_lab::start_ticks(pid).is_none() {
            bail!(
                "the supervisor exited; see {}",
                dir.join("supervisor.log").display()
            );
        }
        if Instant::now() > deadline {
            bail!("the supervisor did not start the nodes in 30 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    say(format!(
        "{} node(s) started; waiting for a quorum (from the client host)",
        plan.hosts.len()
    ));
    let mut setup = std::process::Command::new("ip")
        .args(["netns", "exec", &plan.client_ns])
        .arg(exe)
        .args(["lab", "setup", "--dir"])
        .arg(dir)
        .arg("--replicas")
        .arg(args.replicas.to_string())
        .stdin(Stdio::null())
        .spawn()
        .context("running the setup in the client host")?;
    let deadline = Instant::now() + Duration::from_secs(180);
    let status = loop {
        if let Some(s) = setup.try_wait()? {
            break s;
        }
        if Instant::now() > deadline {
            let _ = setup.kill();
            let _ = setup.wait();
            bail!(
                "the cluster did not come up in 180 s; see the node logs in {}",
                dir.display()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    if !status.success() {
        bail!("the cluster did not come up ({status}); see the node logs");
    }
    say("the lab is up. From the client host:");
    say(format!(
        "    ip netns exec {} keel --cluster {} status",
        plan.client_ns,
        dir.display()
    ));
    say(format!(
        "    keel lab fault --dir {} kill --host 2     # and cut, isolate, partition...",
        dir.display()
    ));
    say(format!("    keel lab down --dir {}", dir.display()));
    Ok(())
}

fn down(dir: &Path) -> Result<()> {
    let dir = match dir.canonicalize() {
        Ok(d) => d,
        Err(_) => {
            say(format!("no lab in {}: nothing to take down", dir.display()));
            return Ok(());
        }
    };
    let n = net::teardown(&dir)?;
    let held = dir.join("held");
    if held.exists() {
        std::fs::remove_dir_all(&held)?;
    }
    // The plan names what is gone now: `fault` must not act on it.
    match std::fs::remove_file(dir.join("lab.json")) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e.into()),
    }
    if let Ok(mut f) = ClusterFile::load(&dir) {
        f.supervisor_pid = None;
        for node in &mut f.nodes {
            node.pid = 0;
        }
        f.save(&dir)?;
    }
    say(format!(
        "the lab in {} is down ({n} journal entries undone)",
        dir.display()
    ));
    Ok(())
}

/// The supervisor (`keel lab supervise`): runs each host's node in its namespace and
/// keeps cluster.json's pids current.
fn supervise_nodes(dir: &Path, restart_delay_ms: u64) -> Result<()> {
    let dir = canonical(dir)?;
    let plan = Plan::load(&dir)?;
    let exe = std::env::current_exe().context("locating the keel binary")?;
    let exe = PathBuf::from(exe.to_string_lossy().trim_end_matches(" (deleted)"));
    let mut nodes = vec![];
    let mut procs = vec![];
    for h in &plan.hosts {
        let config = dir.join(format!("n{}", h.id)).join("keel.toml");
        let cfg = NodeConfig::load(&config).map_err(|e| anyhow!("{}: {e}", config.display()))?;
        let s = dev::supervised(&dir, &exe, cfg)?;
        procs.push(supervise::Proc {
            host: h.id,
            ns: h.ns.clone(),
            argv: vec![
                exe.clone().into(),
                "node".into(),
                "--config".into(),
                s.config_path.clone().into(),
            ],
            log: s.log_path.clone(),
            release: moving_addresses(&s.cfg.gateway),
        });
        nodes.push(s);
    }
    let core = plan.core_ns.clone();
    let on_change = |pids: &[(u64, u32)]| {
        let mut file = dev::cluster_file(&dir, &nodes);
        file.name = "lab".into();
        for n in &mut file.nodes {
            n.pid = pids.iter().find(|(h, _)| *h == n.id).map_or(0, |(_, p)| *p);
        }
        if let Err(e) = file.save(&dir) {
            println!("[lab] writing cluster.json: {e}");
        }
    };
    supervise::run(
        &dir,
        &core,
        procs,
        Duration::from_millis(restart_delay_ms),
        on_change,
    )?;
    Ok(())
}

/// The (interface, address) pairs a node configured with `gateway` may add to its
/// host: the supervisor removes them when the node dies.
fn moving_addresses(g: &GatewayConfig) -> Vec<(String, Ipv4Addr)> {
    let AddressHold::Interface(iface) = &g.hold else {
        return vec![];
    };
    g.exports
        .iter()
        .filter_map(|e| match e.address {
            IpAddr::V4(a) if e.policy == ExportPolicy::ActivePassive => Some((iface.clone(), a)),
            _ => None,
        })
        .collect()
}

/// Run inside the client host: waits for every node and a leader, then creates the
/// access key, the default set and the storage layout, as `keel dev up` does.
async fn setup(dir: &Path, replicas: usize) -> Result<()> {
    let dir = canonical(dir)?;
    let file = ClusterFile::load(&dir)?;
    let members: Vec<MemberRef> = file
        .nodes
        .iter()
        .filter(|n| n.roles.len() > 1)
        .map(|n| MemberRef::Node(n.id))
        .collect();
    let client = Client::open(&dir)?;
    dev::wait_ready(&client, file.nodes.len()).await?;
    let client = dev::ensure_data_key(&client, &dir).await?;
    dev::ensure_default_set(&client, members.clone()).await?;
    dev::apply_layout(&client, replicas).await?;
    if Plan::load(&dir)?.hosts.iter().all(|h| !h.ports.is_empty()) {
        let gw = lab_gateway();
        print!(
            "{}",
            dev::ensure_export(&client, &dir, members, &gw.exports[0]).await?
        );
    }
    let status = dev::wait_acting(&client).await?;
    print!("{}", crate::output::status_table(&status));
    Ok(())
}
