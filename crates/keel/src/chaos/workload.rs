//! The chaos workload: several concurrent clients, each in its own directory
//! (`/chaos/c{k}/`), putting files of 1 KiB to 12 MiB of seeded random bytes,
//! overwriting them, reading them back (checked against what was acknowledged), moving
//! and removing them, through `keel-client` as any application would. Each client
//! records in its [`Model`] what it was acknowledged; an operation whose outcome is
//! unknown is recorded as "either".
//!
//! Owns: the clients' loops and what they saw while the nemesis ran. Must never:
//! judge a read against anything but its own client's model (clients do not share
//! paths), or run an operation without a deadline.

use super::model::{digest, Content, Judged, Model};
use keel_client::{Client, ClientError};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The longest one operation may take, retries included, before its outcome is
/// taken as unknown.
pub const OP_DEADLINE: Duration = Duration::from_secs(180);
/// The smallest file.
const MIN_LEN: usize = 1024;
/// Examples kept per client.
const EXAMPLES: usize = 20;

/// Counters every client adds to as it goes (for progress lines).
#[derive(Default)]
pub struct Progress {
    pub puts_acked: AtomicU64,
    pub ops: AtomicU64,
    pub anomalies: AtomicU64,
}

/// What one client did and saw.
#[derive(Default, Debug)]
pub struct ClientLog {
    pub client: usize,
    pub model: Model,
    pub puts: u64,
    pub puts_acked: u64,
    pub gets: u64,
    pub gets_failed: u64,
    pub moves: u64,
    pub moves_acked: u64,
    pub removes: u64,
    pub removes_acked: u64,
    /// Reads (and directory decisions of mv/rm) that contradicted what was
    /// acknowledged, without being marked stale.
    pub wrong_reads: u64,
    /// Reads marked stale (`x-keel-stale`) that returned an older content.
    pub stale_reads: u64,
    /// For each acknowledged put: how long this client's puts had kept failing or
    /// waiting before it (from the first put since the previous acknowledgement).
    pub stalls_ms: Vec<u64>,
    pub examples: Vec<String>,
}

impl ClientLog {
    fn example(&mut self, progress: &Progress, what: String) {
        progress.anomalies.fetch_add(1, Ordering::Relaxed);
        eprintln!("[chaos] client {}: {what}", self.client);
        if self.examples.len() < EXAMPLES {
            self.examples
                .push(format!("client {}: {what}", self.client));
        }
    }
}

/// The workload's tasks.
pub struct Workload {
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<ClientLog>>,
    pub progress: Arc<Progress>,
}

impl Workload {
    /// Starts `clients` clients against the cluster in `dir`.
    pub fn start(
        dir: &std::path::Path,
        clients: usize,
        seed: u64,
        max_len: usize,
    ) -> anyhow::Result<Workload> {
        let stop = Arc::new(AtomicBool::new(false));
        let progress = Arc::new(Progress::default());
        let mut tasks = vec![];
        for k in 0..clients {
            let client = Client::open(dir)?;
            let (stop, progress) = (stop.clone(), progress.clone());
            let seed = seed ^ (k as u64 + 1).wrapping_mul(0xA076_1D64_78BD_642F);
            tasks.push(tokio::spawn(run_client(
                k,
                client,
                seed,
                max_len.max(MIN_LEN),
                stop,
                progress,
            )));
        }
        Ok(Workload {
            stop,
            tasks,
            progress,
        })
    }

    /// Stops every client after its operation under way; returns their logs.
    pub async fn stop(self) -> Vec<ClientLog> {
        self.stop.store(true, Ordering::SeqCst);
        let mut logs = vec![];
        for t in self.tasks {
            match t.await {
                Ok(log) => logs.push(log),
                Err(e) => eprintln!("[chaos] a client task failed: {e}"),
            }
        }
        logs
    }
}

/// An error, cut to one readable line for the progress output.
pub fn brief(e: &impl std::fmt::Display) -> String {
    let s = e.to_string();
    match s.char_indices().nth(200) {
        Some((i, _)) => format!("{}...", &s[..i]),
        None => s,
    }
}

fn is_not_found(e: &ClientError) -> bool {
    e.code() == Some("not_found")
}

/// A file length, log-uniform between 1 KiB and `max`.
fn draw_len(rng: &mut StdRng, max: usize) -> usize {
    let (lo, hi) = ((MIN_LEN as f64).ln(), (max as f64).ln());
    let x: f64 = rng.gen_range(0.0..=1.0);
    ((lo + (hi - lo) * x).exp() as usize).clamp(MIN_LEN, max)
}

async fn with_deadline<T>(
    f: impl std::future::Future<Output = Result<T, ClientError>>,
) -> Result<T, ClientError> {
    match tokio::time::timeout(OP_DEADLINE, f).await {
        Ok(r) => r,
        Err(_) => Err(ClientError::Unavailable {
            what: "operation".into(),
            tried: format!("no answer within {OP_DEADLINE:?}"),
        }),
    }
}

async fn run_client(
    k: usize,
    client: Client,
    seed: u64,
    max_len: usize,
    stop: Arc<AtomicBool>,
    progress: Arc<Progress>,
) -> ClientLog {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut log = ClientLog {
        client: k,
        ..Default::default()
    };
    let mut next_name = 0u64;
    let mut streak: Option<Instant> = None;
    while !stop.load(Ordering::SeqCst) {
        progress.ops.fetch_add(1, Ordering::Relaxed);
        let present = log.model.maybe_present();
        let roll: f64 = rng.gen_range(0.0..1.0);
        let pick = |rng: &mut StdRng| present[rng.gen_range(0..present.len())].clone();
        // 35 % new files, 20 % overwrites, 30 % gets, 8 % mv, 7 % rm.
        let new_file = present.is_empty() || roll < 0.35;
        if new_file || roll < 0.55 {
            let path = if new_file {
                next_name += 1;
                format!("/chaos/c{k}/f{next_name}")
            } else {
                pick(&mut rng)
            };
            let len = draw_len(&mut rng, max_len);
            let content_seed: u64 = rng.gen();
            let (content, bytes) =
                match tokio::task::spawn_blocking(move || Content::new(content_seed, len)).await {
                    Ok(x) => x,
                    Err(_) => break,
                };
            log.puts += 1;
            let started = Instant::now();
            let since = *streak.get_or_insert(started);
            match with_deadline(client.put_bytes(&path, bytes, None)).await {
                Ok(_) => {
                    log.puts_acked += 1;
                    progress.puts_acked.fetch_add(1, Ordering::Relaxed);
                    log.model.put_acknowledged(&path, content);
                    log.stalls_ms.push(since.elapsed().as_millis() as u64);
                    streak = None;
                }
                Err(e) => {
                    eprintln!(
                        "[chaos] client {k}: put {path} ({len} bytes) not acknowledged: {}",
                        brief(&e)
                    );
                    log.model.put_unknown(&path, content);
                }
            }
        } else if roll < 0.85 {
            let path = pick(&mut rng);
            log.gets += 1;
            match with_deadline(client.get_bytes(&path, None, None)).await {
                Ok((bytes, outcome)) => {
                    let got = (bytes.len(), digest(&bytes));
                    match log.model.judge(&path, Some(got)) {
                        Judged::Right => {}
                        judged if outcome.stale => {
                            log.stale_reads += 1;
                            log.example(
                                &progress,
                                format!("get {path}: {judged:?} content, marked stale"),
                            );
                        }
                        judged => {
                            log.wrong_reads += 1;
                            log.example(
                                &progress,
                                format!(
                                    "get {path}: {} bytes that are {} (not marked stale)",
                                    got.0,
                                    if judged == Judged::Lost {
                                        "an older acknowledged content"
                                    } else {
                                        "no content ever put there"
                                    }
                                ),
                            );
                        }
                    }
                }
                Err(e) if is_not_found(&e) => {
                    if log.model.judge(&path, None) != Judged::Right {
                        log.wrong_reads += 1;
                        log.example(
                            &progress,
                            format!("get {path}: {e}, but its put was acknowledged"),
                        );
                    }
                }
                Err(e) => {
                    log.gets_failed += 1;
                    eprintln!("[chaos] client {k}: get {path} failed: {}", brief(&e));
                }
            }
        } else if roll < 0.93 {
            let from = pick(&mut rng);
            next_name += 1;
            let to = format!("/chaos/c{k}/f{next_name}");
            log.moves += 1;
            let must_exist = log.model.paths.get(&from).is_some_and(|s| s.must_exist());
            match with_deadline(client.rename(&from, &to, None)).await {
                Ok(_) => {
                    log.moves_acked += 1;
                    log.model.mv_acknowledged(&from, &to);
                }
                Err(e) => {
                    if is_not_found(&e) && must_exist {
                        log.wrong_reads += 1;
                        log.example(
                            &progress,
                            format!("mv {from} {to}: {e}, but {from} was acknowledged"),
                        );
                    } else {
                        eprintln!(
                            "[chaos] client {k}: mv {from} {to} not acknowledged: {}",
                            brief(&e)
                        );
                    }
                    log.model.mv_unknown(&from, &to);
                }
            }
        } else {
            let path = pick(&mut rng);
            log.removes += 1;
            let must_exist = log.model.paths.get(&path).is_some_and(|s| s.must_exist());
            match with_deadline(client.remove(&path, None)).await {
                Ok(()) => {
                    log.removes_acked += 1;
                    log.model.rm_acknowledged(&path);
                }
                Err(e) => {
                    if is_not_found(&e) && must_exist {
                        log.wrong_reads += 1;
                        log.example(
                            &progress,
                            format!("rm {path}: {e}, but {path} was acknowledged"),
                        );
                    } else {
                        eprintln!(
                            "[chaos] client {k}: rm {path} not acknowledged: {}",
                            brief(&e)
                        );
                    }
                    log.model.rm_unknown(&path);
                }
            }
        }
    }
    if let Some(since) = streak {
        log.stalls_ms.push(since.elapsed().as_millis() as u64);
    }
    log
}
