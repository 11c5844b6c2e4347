//! `keel bench gateways`: throughput and small-file operations per second through one
//! gateway — NFS (keel's NFSv3 gateway), S3 (keel's S3 gateway) and the native API —
//! on a fresh local cluster, side by side in the same run with the raw disk, with
//! nfs-ganesha (VFS backend exporting a local directory on the same disk) and with
//! Garage (one node, one copy: the closest it allows to a local disk), each driven by
//! the same client: `nfs-cp`/`nfs-cat` (libnfs-utils) for both NFS servers, one boto3
//! program ([`S3_DRIVER`]) for both S3 servers.
//!
//! Reads run twice: "cold" right after the writes (nothing read yet) and "warm" (the
//! gateway's data cache, and every other server's page cache, may now hold it).
//!
//! A benchmark measures and reports; it never passes or fails on time. It fails if a
//! read returns other bytes than were written. A comparison server that is not
//! installed is skipped with a line saying so.

use crate::bench::percentile;
use crate::bench_io::{self, Phase};
use anyhow::{bail, Context, Result};
use rand::RngCore;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The boto3 program both S3 servers are measured with.
pub const S3_DRIVER: &str = include_str!("bench_s3_driver.py");

pub struct Args {
    pub files: u32,
    pub size: String,
    pub small: u32,
    pub dir: Option<PathBuf>,
    pub base_port: u16,
}

pub async fn run(args: Args) -> Result<()> {
    let size = bench_io::parse_size(&args.size)?;
    if args.files == 0 || args.small == 0 {
        bail!("--files and --small must be positive");
    }
    let dir = match &args.dir {
        Some(d) => d.clone(),
        None => std::env::temp_dir().join(format!("keel-bench-gw-{}", std::process::id())),
    };
    std::fs::create_dir_all(&dir)?;
    println!(
        "bench gateways: {} files of {size} bytes and {} files of 4 KiB, in {}",
        args.files,
        args.small,
        dir.display()
    );
    let payloads: Vec<Vec<u8>> = (0..args.files)
        .map(|_| {
            let mut v = vec![0u8; size as usize];
            rand::thread_rng().fill_bytes(&mut v);
            v
        })
        .collect();
    let small: Vec<Vec<u8>> = (0..args.small)
        .map(|_| {
            let mut v = vec![0u8; 4096];
            rand::thread_rng().fill_bytes(&mut v);
            v
        })
        .collect();
    let src = dir.join("src");
    std::fs::create_dir_all(&src)?;
    for (i, p) in payloads.iter().enumerate() {
        std::fs::write(src.join(format!("f{i}")), p)?;
    }
    for (i, p) in small.iter().enumerate() {
        std::fs::write(src.join(format!("s{i}")), p)?;
    }

    let (raw_w, raw_r) = bench_io::raw_disk(&dir.join("raw"), &payloads)?;
    let mut rows: Vec<Phase> = vec![raw_w, raw_r];

    // keel: one fresh 3-node cluster, replication 2.
    let cdir = dir.join("keel");
    println!("starting a 3-node keel cluster in {}", cdir.display());
    let mut dev = bench_io::start_cluster(&cdir, 3, 2, args.base_port)?;
    let result = keel_phases(&cdir, &src, &payloads, &small).await;
    bench_io::stop_cluster(&mut dev).await;
    rows.extend(result.with_context(|| format!("keel; logs in {}", cdir.display()))?);

    match ganesha_phases(&dir.join("ganesha"), &src, &payloads, &small) {
        Ok(r) => rows.extend(r),
        Err(e) => println!("nfs-ganesha skipped: {e:#}"),
    }
    match garage_phases(&dir.join("garage"), &payloads, &small) {
        Ok(r) => rows.extend(r),
        Err(e) => println!("Garage skipped: {e:#}"),
    }
    report(&rows);
    let _ = std::fs::remove_dir_all(&src);
    Ok(())
}

/// What `keel dev up` wrote into cluster.json for the gateways.
struct Gateways {
    nfs_host: String,
    nfs_port: u16,
    nfs_export: String,
    s3_endpoint: String,
    s3_key: String,
    s3_secret: String,
    s3_bucket: String,
}

fn gateways(cdir: &Path) -> Result<Gateways> {
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(cdir.join("cluster.json"))?)?;
    let s = |a: &str, b: &str| -> Result<String> {
        let x = &v[a][b];
        x.as_str()
            .map(str::to_string)
            .or_else(|| x.as_u64().map(|n| n.to_string()))
            .with_context(|| format!("cluster.json has no {a}.{b}"))
    };
    Ok(Gateways {
        nfs_host: s("nfs", "host")?,
        nfs_port: s("nfs", "port")?.parse()?,
        nfs_export: s("nfs", "export")?,
        s3_endpoint: s("s3", "endpoint")?,
        s3_key: s("s3", "access_key")?,
        s3_secret: s("s3", "secret_key")?,
        s3_bucket: s("s3", "bucket")?,
    })
}

async fn keel_phases(
    cdir: &Path,
    src: &Path,
    payloads: &[Vec<u8>],
    small: &[Vec<u8>],
) -> Result<Vec<Phase>> {
    let client = bench_io::wait_storage(cdir).await?;
    let gw = gateways(cdir)?;
    let mut rows = vec![];
    let shared = std::sync::Arc::new(payloads.to_vec());
    rows.push(bench_io::writes(&client, &shared, 1, "native write", "/bench-native").await?);
    rows.push(bench_io::reads(&client, &shared, 1, "native read cold", "/bench-native").await?);
    rows.push(bench_io::reads(&client, &shared, 1, "native read warm", "/bench-native").await?);
    let small_shared = std::sync::Arc::new(small.to_vec());
    rows.push(
        bench_io::writes(
            &client,
            &small_shared,
            1,
            "native small put",
            "/bench-small",
        )
        .await?,
    );
    rows.push(
        bench_io::reads(
            &client,
            &small_shared,
            1,
            "native small get",
            "/bench-small",
        )
        .await?,
    );

    let export = gw.nfs_export.trim_start_matches('/').to_string();
    let url = |name: &str| {
        format!(
            "nfs://{}/{}/{name}?nfsport={p}&mountport={p}",
            gw.nfs_host,
            export,
            p = gw.nfs_port
        )
    };
    // The export must be reachable before it is measured (the gateway's Active binds
    // once it holds its lease).
    wait_nfs(&url(""))?;
    rows.extend(nfs_phases(
        "keel nfs",
        src,
        payloads,
        small,
        &url,
        &cdir.join("nfs-out"),
    )?);
    rows.extend(s3_phases(
        "keel s3",
        &gw.s3_endpoint,
        &gw.s3_key,
        &gw.s3_secret,
        &gw.s3_bucket,
        payloads,
        small,
        cdir,
    )?);
    Ok(rows)
}

fn wait_nfs(root_url: &str) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let ok = Command::new("nfs-ls")
            .arg(root_url)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if ok {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("the NFS export {root_url} did not answer nfs-ls within 60 s");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn run_ok(cmd: &mut Command) -> Result<()> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Runs `op(i)` for i in 0..n, one at a time, as a measured phase.
fn phase(
    name: &str,
    bytes: u64,
    n: usize,
    mut op: impl FnMut(usize) -> Result<()>,
) -> Result<Phase> {
    let start = Instant::now();
    let mut lat = vec![];
    for i in 0..n {
        let t = Instant::now();
        op(i).with_context(|| format!("{name}, operation {i}"))?;
        lat.push(t.elapsed().as_millis() as i64);
    }
    Ok(Phase {
        name: name.to_string(),
        bytes,
        ops: n,
        elapsed: start.elapsed(),
        latencies_ms: lat,
    })
}

/// The same NFS client steps for any server: `nfs-cp` in, `nfs-cp` out twice (cold,
/// warm), then small files in with `nfs-cp` and out with `nfs-cat`.
fn nfs_phases(
    label: &str,
    src: &Path,
    payloads: &[Vec<u8>],
    small: &[Vec<u8>],
    url: &dyn Fn(&str) -> String,
    out: &Path,
) -> Result<Vec<Phase>> {
    std::fs::create_dir_all(out)?;
    let big: u64 = payloads.iter().map(|p| p.len() as u64).sum();
    let mut rows = vec![phase(
        &format!("{label} write"),
        big,
        payloads.len(),
        |i| {
            run_ok(
                Command::new("nfs-cp")
                    .arg(src.join(format!("f{i}")))
                    .arg(url(&format!("f{i}"))),
            )
        },
    )?];
    for temp in ["cold", "warm"] {
        rows.push(phase(
            &format!("{label} read {temp}"),
            big,
            payloads.len(),
            |i| {
                let to = out.join(format!("f{i}"));
                let _ = std::fs::remove_file(&to);
                run_ok(Command::new("nfs-cp").arg(url(&format!("f{i}"))).arg(&to))?;
                if std::fs::read(&to)? != payloads[i] {
                    bail!("{label}: f{i} read back other bytes than were written");
                }
                Ok(())
            },
        )?);
    }
    let sb: u64 = small.iter().map(|p| p.len() as u64).sum();
    rows.push(phase(
        &format!("{label} small put"),
        sb,
        small.len(),
        |i| {
            run_ok(
                Command::new("nfs-cp")
                    .arg(src.join(format!("s{i}")))
                    .arg(url(&format!("s{i}"))),
            )
        },
    )?);
    rows.push(phase(
        &format!("{label} small get"),
        sb,
        small.len(),
        |i| {
            let o = Command::new("nfs-cat")
                .arg(url(&format!("s{i}")))
                .stdin(Stdio::null())
                .output()?;
            if !o.status.success() || o.stdout != small[i] {
                bail!(
                    "{label}: s{i} read back wrong ({})",
                    String::from_utf8_lossy(&o.stderr).trim()
                );
            }
            Ok(())
        },
    )?);
    let _ = std::fs::remove_dir_all(out);
    Ok(rows)
}

#[allow(clippy::too_many_arguments)]
fn s3_phases(
    label: &str,
    endpoint: &str,
    key: &str,
    secret: &str,
    bucket: &str,
    payloads: &[Vec<u8>],
    small: &[Vec<u8>],
    work: &Path,
) -> Result<Vec<Phase>> {
    let driver = work.join("bench_s3_driver.py");
    std::fs::write(&driver, S3_DRIVER)?;
    let size = payloads.first().map_or(0, |p| p.len());
    let out = Command::new("python3")
        .arg(&driver)
        .args([endpoint, key, secret, bucket])
        .arg(payloads.len().to_string())
        .arg(size.to_string())
        .arg(small.len().to_string())
        .arg(format!("bench-{}", std::process::id()))
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .stdin(Stdio::null())
        .output()
        .context("running python3 (boto3)")?;
    if !out.status.success() {
        bail!(
            "{label}: the boto3 driver failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .with_context(|| format!("{label}: the driver printed no JSON"))?;
    let mut rows = vec![];
    for (k, name) in [
        ("write", "write"),
        ("read_cold", "read cold"),
        ("read_warm", "read warm"),
        ("small_put", "small put"),
        ("small_get", "small get"),
        ("small_head", "small head"),
    ] {
        let p = &v[k];
        rows.push(Phase {
            name: format!("{label} {name}"),
            bytes: p["bytes"].as_u64().unwrap_or(0),
            ops: p["ops"].as_u64().unwrap_or(0) as usize,
            elapsed: Duration::from_secs_f64(p["seconds"].as_f64().unwrap_or(0.0)),
            latencies_ms: p["latencies_ms"]
                .as_array()
                .map(|a| a.iter().map(|x| x.as_f64().unwrap_or(0.0) as i64).collect())
                .unwrap_or_default(),
        });
    }
    Ok(rows)
}

/// A process the benchmark started, stopped when dropped.
struct Server(std::process::Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn ganesha_phases(
    dir: &Path,
    src: &Path,
    payloads: &[Vec<u8>],
    small: &[Vec<u8>],
) -> Result<Vec<Phase>> {
    which("ganesha.nfsd")
        .context("nfs-ganesha is not installed (apt-get install nfs-ganesha nfs-ganesha-vfs)")?;
    let export = dir.join("export");
    std::fs::create_dir_all(&export)?;
    let export = export.canonicalize()?;
    let (nfs_port, mnt_port) = (20490u16, 20491u16);
    let conf = dir.join("ganesha.conf");
    std::fs::write(
        &conf,
        format!(
            "NFS_CORE_PARAM {{ Protocols = 3; NFS_Port = {nfs_port}; MNT_Port = {mnt_port}; \
             NLM_Port = 20492; Rquota_Port = 20493; Enable_NLM = false; Enable_RQUOTA = false; \
             Bind_addr = 127.0.0.1; }}\n\
             NFSV4 {{ Graceless = true; }}\n\
             EXPORT {{ Export_Id = 1; Path = {p}; Pseudo = /bench; Access_Type = RW; \
             Squash = No_Root_Squash; Protocols = 3; Transports = TCP; SecType = sys; \
             FSAL {{ Name = VFS; }} }}\n\
             LOG {{ Default_Log_Level = EVENT; }}\n",
            p = export.display()
        ),
    )?;
    // Ganesha registers its programs with rpcbind and stops without one.
    if Command::new("rpcinfo")
        .arg("-p")
        .output()
        .map(|o| !o.status.success())
        .unwrap_or(true)
    {
        let _ = Command::new("rpcbind").arg("-w").status();
    }
    println!(
        "starting nfs-ganesha (VFS) on 127.0.0.1:{nfs_port}, exporting {}",
        export.display()
    );
    let _server = Server(
        Command::new("ganesha.nfsd")
            .args(["-F", "-f"])
            .arg(&conf)
            .arg("-L")
            .arg(dir.join("ganesha.log"))
            .arg("-p")
            .arg(dir.join("ganesha.pid"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting ganesha.nfsd")?,
    );
    let base = format!("nfs://127.0.0.1{}", export.display());
    let url = |name: &str| format!("{base}/{name}?nfsport={nfs_port}&mountport={mnt_port}");
    wait_nfs(&url(""))?;
    let rows = nfs_phases("ganesha nfs", src, payloads, small, &url, &dir.join("out"))?;
    let _ = std::fs::remove_dir_all(&export);
    Ok(rows)
}

fn which(cmd: &str) -> Result<PathBuf> {
    std::env::var_os("PATH")
        .and_then(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join(cmd))
                .find(|f| f.is_file())
        })
        .with_context(|| format!("{cmd} not found on PATH"))
}

fn garage_phases(dir: &Path, payloads: &[Vec<u8>], small: &[Vec<u8>]) -> Result<Vec<Phase>> {
    let garage = std::env::var_os("KEEL_BENCH_GARAGE")
        .map(PathBuf::from)
        .map(Ok)
        .unwrap_or_else(|| which("garage"))
        .context("Garage is not installed (cargo install garage, or set KEEL_BENCH_GARAGE)")?;
    std::fs::create_dir_all(dir)?;
    let dir = dir.canonicalize()?;
    let mut secret = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut secret);
    let hex: String = secret.iter().map(|b| format!("{b:02x}")).collect();
    let conf = dir.join("garage.toml");
    std::fs::write(
        &conf,
        format!(
            "metadata_dir = \"{d}/meta\"\ndata_dir = \"{d}/data\"\ndb_engine = \"lmdb\"\n\
             replication_factor = 1\nmetadata_fsync = true\ndata_fsync = true\n\
             rpc_bind_addr = \"127.0.0.1:3901\"\nrpc_public_addr = \"127.0.0.1:3901\"\n\
             rpc_secret = \"{hex}\"\n\n[s3_api]\ns3_region = \"us-east-1\"\n\
             api_bind_addr = \"127.0.0.1:3900\"\nroot_domain = \".s3.garage.localhost\"\n",
            d = dir.display()
        ),
    )?;
    println!("starting Garage (one node, one copy, fsync on) on 127.0.0.1:3900");
    let _server = Server(
        Command::new(&garage)
            .arg("-c")
            .arg(&conf)
            .arg("server")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(dir.join("garage.log"))?)
            .stderr(std::fs::File::create(dir.join("garage.err"))?)
            .spawn()
            .context("starting garage server")?,
    );
    let cli = |args: &[&str]| -> Result<String> {
        let o = Command::new(&garage)
            .arg("-c")
            .arg(&conf)
            .args(args)
            .output()?;
        if !o.status.success() {
            bail!(
                "garage {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&o.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&o.stdout).into_owned())
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    let id = loop {
        if let Ok(out) = cli(&["node", "id", "-q"]) {
            break out.trim().split('@').next().unwrap_or("").to_string();
        }
        if Instant::now() > deadline {
            bail!("garage did not answer within 30 s; see {}", dir.display());
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    cli(&["layout", "assign", "-z", "dc1", "-c", "10G", &id])?;
    cli(&["layout", "apply", "--version", "1"])?;
    let key = cli(&["key", "create", "bench"])?;
    let field = |name: &str| {
        key.lines()
            .find(|l| l.trim_start().starts_with(name))
            .and_then(|l| l.split(':').nth(1))
            .map(|s| s.trim().to_string())
            .with_context(|| format!("garage key create printed no {name}: {key}"))
    };
    let (kid, ksecret) = (field("Key ID")?, field("Secret key")?);
    cli(&["bucket", "create", "bench"])?;
    cli(&[
        "bucket", "allow", "--read", "--write", "--owner", "bench", "--key", "bench",
    ])?;
    s3_phases(
        "garage s3",
        "http://127.0.0.1:3900",
        &kid,
        &ksecret,
        "bench",
        payloads,
        small,
        &dir,
    )
}

fn report(rows: &[Phase]) {
    let raw_w = rows.first().map_or(1.0, |p| p.mb_s());
    let raw_r = rows.get(1).map_or(1.0, |p| p.mb_s());
    let native = |suffix: &str| {
        rows.iter()
            .find(|p| p.name == format!("native {suffix}"))
            .map(|p| (p.mb_s(), p.ops_s()))
    };
    println!();
    println!(
        "{:<28} {:>8} {:>8} {:>7} {:>7} {:>7} {:>7} {:>9}",
        "PHASE", "MB/s", "ops/s", "P50", "P99", "MAX", "vs raw", "vs native"
    );
    for p in rows {
        let mut l = p.latencies_ms.clone();
        l.sort_unstable();
        let raw = if p.name.contains("read") || p.name.contains("get") || p.name.contains("head") {
            raw_r
        } else {
            raw_w
        };
        // Compare with the native API's phase of the same kind.
        let kind = ["write", "read cold", "read warm", "small put", "small get"]
            .into_iter()
            .find(|k| p.name.ends_with(k));
        let vs_native = match (kind.and_then(native), kind) {
            (Some((_, ops)), Some(k)) if k.starts_with("small") => {
                format!("{:.2}", p.ops_s() / ops)
            }
            (Some((mb, _)), Some(_)) => format!("{:.2}", p.mb_s() / mb),
            _ => "-".into(),
        };
        println!(
            "{:<28} {:>8.1} {:>8.1} {:>5}ms {:>5}ms {:>5}ms {:>7.2} {:>9}",
            p.name,
            p.mb_s(),
            p.ops_s(),
            percentile(&l, 50.0),
            percentile(&l, 99.0),
            l.last().copied().unwrap_or(-1),
            p.mb_s() / raw,
            vs_native
        );
    }
}
