//! The command line: every command and flag, documented for `--help`.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(
    name = "keel",
    version,
    about = "keel: a highly available storage cluster"
)]
pub struct Cli {
    /// The cluster's directory (holds cluster.json and the secret). Also $KEEL_CLUSTER.
    #[arg(long, global = true, env = "KEEL_CLUSTER")]
    pub cluster: Option<PathBuf>,
    /// The access key of data commands (put, get, ls, ...): `ID:SECRET` as `keel key
    /// create` prints it. Also $KEEL_KEY. Default: the key in cluster.json.
    #[arg(long, global = true, env = "KEEL_KEY", hide_env_values = true)]
    pub key: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run a node (`--config FILE`), or act on one: drain, undrain, clear, remove.
    Node(NodeArgs),
    /// Local development cluster.
    #[command(subcommand)]
    Dev(DevCommand),
    /// A lab of hosts on this machine (root only): network namespaces joined by veth
    /// pairs and bridges, a keel node in each, and faults on real links.
    #[command(subcommand)]
    Lab(LabCommand),
    /// A verdict (HEALTH_OK, HEALTH_WARN or HEALTH_ERR, with reasons), members with
    /// their states and capacity, failover sets with roles, epochs, in-sync lists and
    /// objects. The view of a member that reaches a quorum; said plainly if none does.
    Status {
        #[arg(long)]
        json: bool,
        /// For scripts: exit 2 on HEALTH_ERR (0 otherwise).
        #[arg(long)]
        check: bool,
    },
    /// The verdict alone (HEALTH_OK, HEALTH_WARN or HEALTH_ERR and its reasons); exits 2
    /// on HEALTH_ERR, 0 otherwise.
    Health {
        #[arg(long)]
        json: bool,
    },
    /// The event log in commit order: detections, decisions, takeovers, with times.
    Events {
        #[arg(long)]
        json: bool,
        /// Keep printing new events as they happen.
        #[arg(long)]
        follow: bool,
        /// Only events from then on: a duration back from now (`30s`, `10m`, `2h`,
        /// `1d`), a time (`2026-12-01T02:00:00Z`), or a sequence number (`42`).
        #[arg(long)]
        since: Option<String>,
        /// Only events about this set.
        #[arg(long)]
        set: Option<String>,
        /// Only events about this node.
        #[arg(long)]
        node: Option<u64>,
        /// Only events of these kinds (`node_failed,failover_decided`).
        #[arg(long, value_delimiter = ',')]
        kind: Vec<String>,
        /// Only the last N events (of those the other filters keep).
        #[arg(short = 'n', long = "last")]
        last: Option<usize>,
    },
    /// Failover sets.
    #[command(subcommand)]
    Set(SetCommand),
    /// Graceful manual takeover: make NODE (or a child set) the Primary of SET.
    Takeover {
        set: String,
        #[arg(long)]
        to: String,
        /// Refuse (stale epoch) unless the set is still at this epoch.
        #[arg(long)]
        epoch: Option<u64>,
    },
    /// Fault injection on a dev cluster.
    #[command(subcommand)]
    Fault(FaultCommand),
    /// The cluster secret (the cluster CA): `keel secret new FILE` at cluster creation.
    #[command(subcommand)]
    Secret(SecretCommand),
    /// Benchmarks (measure, report p50/p99/max; never pass/fail on time).
    #[command(subcommand)]
    Bench(BenchCommand),
    /// The storage layout: storage sets and the placement map.
    #[command(subcommand)]
    Layout(LayoutCommand),
    /// Volumes: separate trees of files with their own chunk size and replication.
    #[command(subcommand)]
    Volume(VolumeCommand),
    /// Access keys for data: created and revoked with the admin token.
    #[command(subcommand)]
    Key(KeyCommand),
    /// The admin token: print it, rotate it.
    #[command(subcommand)]
    Admin(AdminCommand),
    /// Write a local file into the cluster at PATH (exits 0 only once it is durable on
    /// every in-sync replica and committed in the directory).
    Put {
        /// A local file, `-` for standard input, or a directory with `-r`.
        local: PathBuf,
        /// The cluster path; ending with `/` (or naming a directory) puts the file
        /// inside it under its own name.
        path: String,
        /// Copy a local directory tree (directories created, files put).
        #[arg(short = 'r', long)]
        recursive: bool,
        #[command(flatten)]
        volume: VolumeArg,
    },
    /// Read PATH from the cluster into a local file.
    Get {
        path: String,
        /// A local file, `-` for standard output, or an existing directory (the file
        /// lands inside it under its own name).
        local: PathBuf,
        /// Copy a directory tree of the cluster into a local directory.
        #[arg(short = 'r', long)]
        recursive: bool,
        /// If no member that reaches the control plane's majority answers, accept an
        /// answer from a directory replica that may lag (warned on stderr). Without it
        /// such a read fails with a non-zero exit.
        #[arg(long)]
        allow_stale: bool,
        #[command(flatten)]
        volume: VolumeArg,
    },
    /// List a directory.
    Ls {
        #[arg(default_value = "/")]
        path: String,
        #[arg(long)]
        json: bool,
        /// If no member that reaches the control plane's majority answers, accept an
        /// answer from a directory replica that may lag (warned on stderr). Without it
        /// such a read fails with a non-zero exit.
        #[arg(long)]
        allow_stale: bool,
        #[command(flatten)]
        volume: VolumeArg,
    },
    /// Create a directory.
    Mkdir {
        path: String,
        /// Create missing parent directories too; an existing directory is no error.
        #[arg(short = 'p', long)]
        parents: bool,
        #[command(flatten)]
        volume: VolumeArg,
    },
    /// Rename (move) a file or directory, atomically.
    Mv {
        from: String,
        /// The new path; ending with `/` (or naming a directory) moves FROM inside it.
        to: String,
        /// Replace an existing target (never a directory by a file).
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        volume: VolumeArg,
    },
    /// Remove a file or an empty directory.
    Rm {
        path: String,
        #[command(flatten)]
        volume: VolumeArg,
    },
    /// A file's or directory's attributes.
    Stat {
        path: String,
        #[arg(long)]
        json: bool,
        /// If no member that reaches the control plane's majority answers, accept an
        /// answer from a directory replica that may lag (warned on stderr). Without it
        /// such a read fails with a non-zero exit.
        #[arg(long)]
        allow_stale: bool,
        #[command(flatten)]
        volume: VolumeArg,
    },
}

#[derive(Args, Debug, Clone)]
pub struct VolumeArg {
    /// The volume (default: `default`).
    #[arg(long)]
    pub volume: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum VolumeCommand {
    /// Create a volume.
    Create {
        name: String,
        /// Acknowledge writes once the Primary's own site has them; other sites get
        /// them in the background. RISK: losing the Primary's site loses acknowledged
        /// writes that had not reached the other site yet.
        #[arg(long = "async")]
        async_replication: bool,
        /// Chunk size in bytes (4 KiB to 64 MiB; default 4 MiB).
        #[arg(long)]
        chunk_size: Option<u64>,
    },
    /// List volumes.
    List {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum LayoutCommand {
    /// The current storage layout (sets, members, in-sync lists, placement groups)
    /// and what `layout apply` would change: a dry run, it changes nothing.
    Show {
        /// The replication factor to plan for (default: the cluster's).
        #[arg(long)]
        replicas: Option<usize>,
    },
    /// Create a storage set for each storage node that has none, and spread the
    /// placement groups over the sets (run again after adding storage nodes). With
    /// `--replicas N`, existing storage sets are brought to N members too (new
    /// members catch up before they join the in-sync list), or the apply is refused
    /// with the reason.
    Apply {
        /// Members per storage set (the replication factor). Default: the cluster's
        /// setting (2), and existing sets keep their members.
        #[arg(long)]
        replicas: Option<usize>,
    },
}

#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct NodeArgs {
    /// Run a node with this configuration file.
    #[arg(long)]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub action: Option<NodeAction>,
}

#[derive(Subcommand, Debug)]
pub enum NodeAction {
    /// Move every Primary and Secondary role off the node.
    Drain {
        id: u64,
        /// Drain even if a set is left without an eligible Primary (its only up,
        /// in-sync member).
        #[arg(long)]
        force: bool,
    },
    /// Let the node take roles again.
    Undrain { id: u64 },
    /// Clear a quarantined node: it re-integrates as an Alternate.
    Clear { id: u64 },
    /// Remove a node for good (it must be in no failover set).
    Remove { id: u64 },
}

#[derive(Subcommand, Debug)]
pub enum DevCommand {
    /// Start a local cluster of node processes on loopback and supervise it.
    Up(DevUpArgs),
    /// Start a fresh local cluster, run a workload against a seeded nemesis (kills,
    /// pauses, link cuts, a wiped disk, a node added and removed), heal, and check
    /// that no acknowledged write was lost. Exits non-zero if anything was.
    Chaos(ChaosArgs),
}

#[derive(Args, Debug, Clone)]
pub struct ChaosArgs {
    /// Where the cluster lives (created; configs, data, logs, cluster.json).
    #[arg(long)]
    pub dir: PathBuf,
    /// How long the nemesis runs: seconds, or with a unit (`90s`, `10m`, `1h`).
    #[arg(long, default_value = "60")]
    pub duration: String,
    /// Seeds every random choice of the nemesis and the workload.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    #[arg(long, default_value_t = 3)]
    pub nodes: u8,
    #[arg(long, default_value_t = 1)]
    pub sites: u8,
    /// Concurrent workload clients.
    #[arg(long, default_value_t = 4)]
    pub clients: usize,
    /// Largest file a client puts, in KiB (files are 1 KiB to this, log-uniform).
    #[arg(long, default_value_t = 12 * 1024)]
    pub max_file_kib: u64,
    /// First port (rpc = P, heartbeat = P+1, admin = P+80).
    #[arg(long, default_value_t = 7400)]
    pub base_port: u16,
    /// Print one JSON object on stdout instead of the readable summary.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug, Clone)]
pub struct DevUpArgs {
    /// Where the cluster lives (configs, data, logs, cluster.json).
    #[arg(long)]
    pub dir: PathBuf,
    #[arg(long, default_value_t = 3)]
    pub nodes: u8,
    #[arg(long, default_value_t = 1)]
    pub sites: u8,
    /// Do not restart node processes that die.
    #[arg(long)]
    pub no_restart: bool,
    /// Delay before restarting a dead node process (ms).
    #[arg(long, default_value_t = 1000)]
    pub restart_delay_ms: u64,
    /// First port: rpc = P, heartbeat = P+1, admin = P+80. Differ it to run several
    /// dev clusters on one machine.
    #[arg(long, default_value_t = 7100)]
    pub base_port: u16,
    /// Members per storage set (the replication factor).
    #[arg(long, default_value_t = 2)]
    pub replicas: usize,
}

#[derive(Subcommand, Debug)]
pub enum SetCommand {
    /// Create a failover set.
    Create {
        id: String,
        /// Members in order of preference: node ids, or set ids for a hierarchical set.
        #[arg(long, value_delimiter = ',', required = true)]
        members: Vec<String>,
        #[arg(long, value_enum, default_value_t = CompositionArg::Nway)]
        composition: CompositionArg,
        #[arg(long, value_enum, default_value_t = KindArg::Generic)]
        kind: KindArg,
        /// Health score (0-100) below which a member is failed.
        #[arg(long, default_value_t = 50)]
        threshold: u8,
        /// Give Primary back to the first member after it has been up this long (ms).
        #[arg(long)]
        giveback_ms: Option<u64>,
    },
    List {
        #[arg(long)]
        json: bool,
    },
    Show {
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Delete a set. A storage set that the placement map (current or previous) names,
    /// or that still holds objects, is refused unless `--force`.
    Delete {
        id: String,
        /// Delete even a storage set in use (its objects become unreachable).
        #[arg(long)]
        force: bool,
    },
}

#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum CompositionArg {
    Single,
    Nway,
    Hierarchical,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum KindArg {
    Generic,
    Storage,
    Directory,
    Gateway,
}

#[derive(Subcommand, Debug)]
pub enum SecretCommand {
    /// Create a new cluster secret (written with mode 0600; refuses to overwrite).
    New {
        file: PathBuf,
        /// The cluster's name (nodes' `cluster` field).
        #[arg(long, default_value = "keel")]
        cluster_name: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum FaultCommand {
    /// Cut (down) or restore (up) one link of one node: it stops sending and receiving
    /// on it.
    Link {
        node: u64,
        link: String,
        #[arg(value_enum)]
        state: LinkState,
    },
}

#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum LinkState {
    Down,
    Up,
}

#[derive(Subcommand, Debug)]
pub enum BenchCommand {
    /// Inject single faults N times each on a fresh local cluster (kill or pause of a
    /// Primary that is not the Raft leader, of the leader; a node or the leader cut
    /// off) while clients put files; report detection, takeover, a new leader and the
    /// longest stall the clients saw.
    Failover {
        #[arg(long, default_value_t = 10)]
        trials: u32,
        #[arg(long, default_value_t = 3)]
        nodes: u8,
        /// Where to put the benchmark's cluster (default: a temporary directory).
        #[arg(long)]
        dir: Option<PathBuf>,
        #[arg(long, default_value_t = 7300)]
        base_port: u16,
        /// Faults, comma-separated: kill-primary, pause-primary, kill-leader,
        /// pause-leader, partition-node, partition-leader.
        #[arg(
            long,
            default_value = "kill-primary,pause-primary,kill-leader,pause-leader,partition-node,partition-leader"
        )]
        faults: String,
        /// How long a pause or a cut lasts (ms).
        #[arg(long, default_value_t = 3000)]
        hold_ms: u64,
        /// Clients putting files during the trials.
        #[arg(long, default_value_t = 3)]
        clients: usize,
        /// Size of each put (suffixes k, m: 64k).
        #[arg(long, default_value = "64k")]
        put_size: String,
    },
    /// Write then read N files of SIZE bytes through the native API, on fresh local
    /// clusters with replication factor 2 and 3; report MB/s, ops/s and latency, and
    /// the raw throughput of the same disk (write+fsync, then read) as a baseline.
    Io {
        #[arg(long, default_value_t = 64)]
        files: u32,
        /// File size in bytes (suffixes k, m: 4m).
        #[arg(long, default_value = "1m")]
        size: String,
        /// Concurrent clients.
        #[arg(long, default_value_t = 4)]
        parallel: usize,
        #[arg(long, default_value_t = 3)]
        nodes: u8,
        /// Where to put the benchmark's clusters (default: a temporary directory).
        #[arg(long)]
        dir: Option<PathBuf>,
        #[arg(long, default_value_t = 7400)]
        base_port: u16,
    },
    /// NFS, S3 and native-API throughput (write, cold and warm read) and 4 KiB-file
    /// operations per second through one gateway of a fresh 3-node cluster, next to the
    /// raw disk, nfs-ganesha (VFS) and Garage (one node) measured in the same run with
    /// the same clients (nfs-cp/nfs-cat, boto3).
    Gateways {
        #[arg(long, default_value_t = 8)]
        files: u32,
        /// Size of the large files (suffixes k, m: 32m).
        #[arg(long, default_value = "32m")]
        size: String,
        /// How many 4 KiB files for the small-file operations.
        #[arg(long, default_value_t = 200)]
        small: u32,
        /// Where to put the clusters and servers (default: a temporary directory).
        #[arg(long)]
        dir: Option<PathBuf>,
        #[arg(long, default_value_t = 7500)]
        base_port: u16,
    },
}

#[derive(Subcommand, Debug)]
pub enum KeyCommand {
    /// Create an access key; prints its id and secret (the secret only this once) and
    /// the `ID:SECRET` to give as --key or $KEEL_KEY.
    Create {
        name: String,
        /// A volume the key may use (repeat for more); none: every volume.
        #[arg(long)]
        volume: Vec<String>,
        /// Reads only: get, stat, ls.
        #[arg(long)]
        read_only: bool,
        #[arg(long)]
        json: bool,
    },
    /// Every access key (never their secrets).
    List {
        #[arg(long)]
        json: bool,
    },
    /// Revoke an access key: requests with it are refused at once.
    Delete { id: String },
}

#[derive(Subcommand, Debug)]
pub enum AdminCommand {
    /// Print the admin token this CLI uses (from DIR/admin-token, $KEEL_ADMIN_TOKEN, or
    /// derived from the cluster secret).
    Token,
    /// Make a new admin token: the current one stops working. Prints it and writes it to
    /// DIR/admin-token (mode 0600).
    RotateToken,
}

#[derive(Subcommand, Debug)]
pub enum LabCommand {
    /// Make the hosts (network namespaces), their links and ports, the client host, and
    /// start a node in each; returns once the cluster has a quorum and works.
    Up(LabUpArgs),
    /// Remove everything the lab in DIR made (processes, namespaces, bridges, veth
    /// pairs), even after a crash: it follows DIR/lab.journal in reverse.
    Down {
        #[arg(long)]
        dir: PathBuf,
    },
    /// Inject a fault into the lab in DIR.
    Fault(LabFaultArgs),
    /// (internal) The lab's supervisor: runs and restarts the nodes.
    #[command(hide = true)]
    Supervise {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long, default_value_t = 1000)]
        restart_delay_ms: u64,
    },
    /// (internal) Run in the client host by `lab up`: waits for the quorum, creates the
    /// access key, the default set and the storage layout.
    #[command(hide = true)]
    Setup {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long, default_value_t = 2)]
        replicas: usize,
    },
}

#[derive(Args, Debug, Clone)]
pub struct LabUpArgs {
    /// Where the lab lives (journal, configs, data, logs, cluster.json).
    #[arg(long)]
    pub dir: PathBuf,
    /// Hosts, each running one node (with two or more sites a control-only
    /// tiebreaker host is added, as in `keel dev up`).
    #[arg(long, default_value_t = 3)]
    pub hosts: u8,
    /// Data ports per host (on the data LAN with the client host).
    #[arg(long, default_value_t = 1)]
    pub ports: u8,
    #[arg(long, default_value_t = 1)]
    pub sites: u8,
    /// Delay before the supervisor restarts a node that died (ms).
    #[arg(long, default_value_t = 1000)]
    pub restart_delay_ms: u64,
    /// Members per storage set (the replication factor).
    #[arg(long, default_value_t = 2)]
    pub replicas: usize,
}

#[derive(Args, Debug)]
pub struct LabFaultArgs {
    #[arg(long)]
    pub dir: PathBuf,
    #[command(subcommand)]
    pub action: LabFault,
}

#[derive(Subcommand, Debug)]
pub enum LabFault {
    /// SIGKILL the host's node; it stays down until `resume`.
    Kill {
        #[arg(long)]
        host: u64,
    },
    /// SIGSTOP the host's node.
    Pause {
        #[arg(long)]
        host: u64,
    },
    /// Continue a paused node, or let the supervisor restart a killed one.
    Resume {
        #[arg(long)]
        host: u64,
    },
    /// Cut one link (`--link a|b`) or one data port (`--port P`) of a host.
    Cut(LabLinkArgs),
    /// Restore one link or one data port of a host.
    Restore(LabLinkArgs),
    /// Cut every link and port of a host.
    Isolate {
        #[arg(long)]
        host: u64,
    },
    /// Restore every link and port of a host.
    Rejoin {
        #[arg(long)]
        host: u64,
    },
    /// Partition the sites named (`--sites 1` or `--sites 1,2`) from the others.
    Partition {
        #[arg(long, value_delimiter = ',', required = true)]
        sites: Vec<u8>,
    },
    /// Remove every partition.
    Heal,
}

#[derive(Args, Debug)]
pub struct LabLinkArgs {
    #[arg(long)]
    pub host: u64,
    #[arg(long, conflicts_with = "port", required_unless_present = "port")]
    pub link: Option<String>,
    #[arg(long)]
    pub port: Option<u8>,
}
