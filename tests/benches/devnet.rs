//! Ledger benchmark: committed `bcfl` transactions per second and submit-to-commit latency on
//! `bcfl-devnet`, through the real `bcfl-tp` processor and the REST API. Prints one JSON object.
//!
//! ```text
//! cargo build --release -p bcfl-tp --bin bcfl-tp
//! cargo bench -p bcfl-tests --bench devnet                  # defaults below
//! cargo bench -p bcfl-tests --bench devnet -- --batches 100 --latency-samples 200
//! ```
//!
//! Set-up (not timed): the ledger is embedded in this process (the same library as the
//! `bcfl-devnet` binary) with its REST API on a loopback port; `bcfl-tp` runs as a child process
//! connected to the component endpoint; an admin creates the consortium and registers `--members`
//! members. Every timed transaction is a `ReportBandwidth` by a member about one of its outgoing
//! links: the processor reads the consortium, the signer, the target member and the link, and
//! writes the link (a real read-modify-write with the family's validation).
//!
//! Scenarios:
//! * `batched`: `--batches` batches of `--txns-per-batch` transactions, all signed beforehand,
//!   posted in lists of 10 batches; committed transactions per second from the first POST to the
//!   moment the ledger reports the last batch COMMITTED (read in process, so polling does not
//!   slow the ledger);
//! * `single`: the same number of transactions, one per batch;
//! * `latency`: `--latency-samples` single-transaction batches posted one after another, each
//!   waited for; submit (POST start) to COMMITTED, p50 / p95 / max in milliseconds.
//!
//! * `soak` (only with `--soak-seconds N`, instead of the others): N seconds of steady load, rounds
//!   of 5 batches of 10 transactions posted together and each waited for; per window of
//!   `--soak-window` seconds the batches committed, p50 / p95 submit-to-COMMITTED latency, and the
//!   resident memory of this process (ledger and REST API) and of the processor; at the end every
//!   batch is checked COMMITTED, none lost.
//!
//! Client-side signing is measured separately (`signing`). The throughput scenarios also report
//! the CPU time per transaction of this process (ledger, REST API and the posting client) and of
//! the processor, from `/proc`: with 2 cores, throughput cannot exceed 2 s / (sum of both).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use bcfl_devnet::ledger::{Devnet, DevnetConfig};
use bcfl_devnet::view::{BatchStatusKind, LedgerView};
use bcfl_ledger::keys::{PrivateKey, Signer};
use bcfl_ledger::protocol::{Batch, BatchList};
use bcfl_ledger::rest::RestClient;
use clap::Parser;
use serde_json::json;

mod workload;
use workload::{build_batches, consortium_batch, latency_summary, round1, round3};

/// Ledger benchmark options.
#[derive(Parser, Debug)]
struct Options {
    /// Batches in the batched throughput run.
    #[arg(long, default_value_t = 50)]
    batches: usize,
    /// Transactions per batch in the batched run (the single run uses 1).
    #[arg(long, default_value_t = 100)]
    txns_per_batch: usize,
    /// Sequential single-transaction batches in the latency run.
    #[arg(long, default_value_t = 200)]
    latency_samples: usize,
    /// Registered members (signers of the reports).
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u16).range(2..))]
    members: u16,
    /// Block interval of the ledger in milliseconds.
    #[arg(long, default_value_t = 20)]
    block_interval_ms: u64,
    /// The processor binary (default: `bcfl-tp` in this benchmark's target directory).
    #[arg(long)]
    tp: Option<PathBuf>,
    /// Transactions the ledger executes at once (1: serial).
    #[arg(long, default_value_t = 8)]
    max_inflight: usize,
    /// Processes of `bcfl-tp` connected to the ledger.
    #[arg(long, default_value_t = 1)]
    processors: usize,
    /// Connect the processor over a Unix socket (`ipc://`) instead of loopback TCP.
    #[arg(long)]
    ipc: bool,
    /// Run only the soak scenario, for this many seconds.
    #[arg(long, default_value_t = 0)]
    soak_seconds: u64,
    /// Window of the soak's per-period figures, seconds.
    #[arg(long, default_value_t = 60)]
    soak_window: u64,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

/// `bcfl-tp` next to this benchmark's profile directory (`target/<profile>/bcfl-tp`).
fn locate_tp(explicit: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    if let Some(path) = explicit {
        return Ok(path);
    }
    let exe = std::env::current_exe()?;
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .context("locating the target directory")?;
    let tp = profile_dir.join("bcfl-tp");
    if !tp.exists() {
        bail!(
            "{} is missing: run `cargo build --release -p bcfl-tp --bin bcfl-tp` first \
             (or pass --tp PATH)",
            tp.display()
        );
    }
    Ok(tp)
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits (in process) until every id is COMMITTED; fails on INVALID or after `timeout`.
async fn await_committed(
    ledger: &Arc<dyn LedgerView>,
    ids: &[String],
    timeout: Duration,
) -> anyhow::Result<Instant> {
    let mut changes = ledger.status_changes();
    let deadline = Instant::now() + timeout;
    let mut from = 0;
    loop {
        let statuses = ledger.batch_statuses(&ids[from..]);
        if let Some(bad) = statuses
            .iter()
            .find(|s| s.status == BatchStatusKind::Invalid)
        {
            bail!(
                "batch {} is INVALID: {:?}",
                bad.id,
                bad.invalid_transactions
            );
        }
        match statuses
            .iter()
            .position(|s| s.status != BatchStatusKind::Committed)
        {
            None => return Ok(Instant::now()),
            Some(first_open) => from += first_open,
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            bail!("{} batches not committed in {timeout:?}", ids.len() - from);
        }
        let _ = tokio::time::timeout(left.min(Duration::from_millis(50)), changes.changed()).await;
    }
}

async fn post(client: &RestClient, batches: &[Batch]) -> anyhow::Result<()> {
    for chunk in batches.chunks(10) {
        client
            .submit_batches(&BatchList::new(chunk.to_vec()))
            .await?;
    }
    Ok(())
}

/// CPU seconds (user + system) a process has used so far, from `/proc/PID/stat`.
fn cpu_seconds(pid: &str) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return f64::NAN;
    };
    // Fields after the command name (which may hold spaces) start at field 3 (state).
    let rest = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok());
    match (ticks(11), ticks(12)) {
        // utime and stime are fields 14 and 15; clock ticks are 100 per second on Linux.
        (Some(user), Some(system)) => (user + system) / 100.0,
        _ => f64::NAN,
    }
}

/// CPU seconds of this process (ledger, REST API, client) and of the processor.
fn cpu_now(tp_pids: &[u32]) -> (f64, f64) {
    let processors = tp_pids
        .iter()
        .map(|pid| cpu_seconds(&pid.to_string()))
        .sum();
    (cpu_seconds("self"), processors)
}

async fn throughput(
    client: &RestClient,
    ledger: &Arc<dyn LedgerView>,
    batches: Vec<Batch>,
    tp_pids: &[u32],
) -> anyhow::Result<serde_json::Value> {
    let txns: usize = batches.iter().map(|b| b.transactions().len()).sum();
    let ids: Vec<String> = batches.iter().map(|b| b.id().to_owned()).collect();
    let blocks_before = ledger.chain_head().map(|b| block_num(&b)).unwrap_or(0);
    let cpu_before = cpu_now(tp_pids);
    let start = Instant::now();
    post(client, &batches).await?;
    let posted = start.elapsed();
    let done = await_committed(ledger, &ids, Duration::from_secs(600)).await?;
    let elapsed = done - start;
    let cpu_after = cpu_now(tp_pids);
    let per_txn_us = |before: f64, after: f64| round1((after - before) * 1e6 / txns as f64);
    let blocks_after = ledger.chain_head().map(|b| block_num(&b)).unwrap_or(0);
    Ok(json!({
        "batches": batches.len(),
        "transactions": txns,
        "seconds": round3(elapsed.as_secs_f64()),
        "post_seconds": round3(posted.as_secs_f64()),
        "committed_txns_per_sec": round1(txns as f64 / elapsed.as_secs_f64()),
        "blocks": blocks_after - blocks_before,
        "cpu_us_per_txn": {
            "ledger_rest_and_client": per_txn_us(cpu_before.0, cpu_after.0),
            "processor": per_txn_us(cpu_before.1, cpu_after.1),
        },
    }))
}

fn block_num(block: &sawtooth_sdk::messages::block::Block) -> u64 {
    protobuf::Message::parse_from_bytes(block.get_header())
        .map(|h: sawtooth_sdk::messages::block::BlockHeader| h.get_block_num())
        .unwrap_or(0)
}

async fn latency(
    client: &RestClient,
    ledger: &Arc<dyn LedgerView>,
    batches: Vec<Batch>,
) -> anyhow::Result<serde_json::Value> {
    let mut samples = Vec::with_capacity(batches.len());
    for batch in batches {
        let id = [batch.id().to_owned()];
        let start = Instant::now();
        client.submit_batches(&BatchList::new(vec![batch])).await?;
        let done = await_committed(ledger, &id, Duration::from_secs(60)).await?;
        samples.push((done - start).as_secs_f64() * 1e3);
    }
    Ok(latency_summary(samples))
}

/// Resident memory of a process in MiB (`VmRSS`), or NaN.
fn rss_mib(pid: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kib| kib / 1024.0)
}

/// The soak scenario (see the module docs).
async fn soak(
    client: &RestClient,
    ledger: &Arc<dyn LedgerView>,
    members: &[Signer],
    tp_pids: &[u32],
    seconds: u64,
    window: u64,
) -> anyhow::Result<serde_json::Value> {
    let start = Instant::now();
    let end = start + Duration::from_secs(seconds);
    let mut all_ids = Vec::new();
    let mut windows = Vec::new();
    let mut nonce = 10_000_000u64;
    while Instant::now() < end {
        let window_end = (Instant::now() + Duration::from_secs(window)).min(end);
        let mut samples = Vec::new();
        while Instant::now() < window_end {
            let batches = build_batches(members, 5, 10, nonce)?;
            nonce += 50;
            let ids: Vec<String> = batches.iter().map(|b| b.id().to_owned()).collect();
            let posted = Instant::now();
            post(client, &batches).await?;
            let mut pending: Vec<String> = ids.clone();
            let mut changes = ledger.status_changes();
            while !pending.is_empty() {
                let statuses = ledger.batch_statuses(&pending);
                if let Some(bad) = statuses
                    .iter()
                    .find(|s| s.status == BatchStatusKind::Invalid)
                {
                    bail!("batch {} is INVALID during the soak", bad.id);
                }
                let now = Instant::now();
                for s in statuses
                    .iter()
                    .filter(|s| s.status == BatchStatusKind::Committed)
                {
                    samples.push((now - posted).as_secs_f64() * 1e3);
                    pending.retain(|id| id != &s.id);
                }
                if !pending.is_empty() {
                    if now - posted > Duration::from_secs(60) {
                        bail!("{} batches not committed within 60 s", pending.len());
                    }
                    let _ =
                        tokio::time::timeout(Duration::from_millis(20), changes.changed()).await;
                }
            }
            all_ids.extend(ids);
        }
        samples.sort_by(f64::total_cmp);
        let pick = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
        windows.push(json!({
            "end_s": round1(start.elapsed().as_secs_f64()),
            "batches": samples.len(),
            "p50_ms": round3(pick(0.5)),
            "p95_ms": round3(pick(0.95)),
            "ledger_rss_mib": round1(rss_mib("self")),
            "processor_rss_mib": round1(tp_pids.iter().map(|p| rss_mib(&p.to_string())).sum()),
        }));
    }
    let statuses = ledger.batch_statuses(&all_ids);
    let lost = statuses
        .iter()
        .filter(|s| s.status != BatchStatusKind::Committed)
        .count();
    Ok(json!({
        "seconds": seconds,
        "batches": all_ids.len(),
        "transactions": all_ids.len() * 10,
        "not_committed_at_the_end": lost,
        "windows": windows,
    }))
}

async fn set_up(
    client: &RestClient,
    ledger: &Arc<dyn LedgerView>,
    admin: &Signer,
    members: &[Signer],
) -> anyhow::Result<()> {
    let batch = consortium_batch(admin, members)?;
    let id = [batch.id().to_owned()];
    client.submit_batches(&BatchList::new(vec![batch])).await?;
    await_committed(ledger, &id, Duration::from_secs(60))
        .await
        .context("creating the consortium (is bcfl-tp connected?)")?;
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let options = Options::parse();
    if options.batches == 0 || options.txns_per_batch == 0 || options.latency_samples == 0 {
        bail!("--batches, --txns-per-batch and --latency-samples must be at least 1");
    }
    let tp_path = locate_tp(options.tp.clone())?;
    let dir = tempfile::tempdir()?;
    let component = if options.ipc {
        format!("ipc://{}", dir.path().join("component.sock").display())
    } else {
        format!("tcp://127.0.0.1:{}", free_port()?)
    };
    let devnet = Devnet::start(DevnetConfig {
        data_dir: dir.path().join("ledger"),
        component_endpoint: component.clone(),
        block_interval: Duration::from_millis(options.block_interval_ms),
        max_inflight_txns: options.max_inflight,
        ..DevnetConfig::default()
    })?;
    let ledger = devnet.ledger();
    let processors = (0..options.processors.max(1))
        .map(|_| {
            Command::new(&tp_path)
                .args(["-C", &component])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .map(KillOnDrop)
                .with_context(|| format!("starting {}", tp_path.display()))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let tp_pids: Vec<u32> = processors.iter().map(|p| p.0.id()).collect();

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let result = runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let server = tokio::spawn(bcfl_devnet::rest::serve(listener, ledger.clone(), async {
            let _ = stopped.await;
        }));
        let client = RestClient::new(&url)?;
        let admin = Signer::new(PrivateKey::random());
        let members: Vec<Signer> = (0..usize::from(options.members))
            .map(|_| Signer::new(PrivateKey::random()))
            .collect();
        set_up(&client, &ledger, &admin, &members).await?;
        if options.soak_seconds > 0 {
            let report = soak(
                &client,
                &ledger,
                &members,
                &tp_pids,
                options.soak_seconds,
                options.soak_window.max(1),
            )
            .await?;
            let _ = stop.send(());
            server.await??;
            return anyhow::Ok(json!({
                "benchmark": "devnet soak",
                "profile": if cfg!(debug_assertions) { "debug" } else { "release" },
                "transaction": "bcfl ReportBandwidth (1 link) via bcfl-tp",
                "soak": report,
            }));
        }

        let txns = options.batches * options.txns_per_batch;
        let sign_start = Instant::now();
        let batched = build_batches(&members, options.batches, options.txns_per_batch, 0)?;
        let signing = sign_start.elapsed();
        let singles = build_batches(&members, txns, 1, txns as u64)?;
        let latency_batches = build_batches(&members, options.latency_samples, 1, 2 * txns as u64)?;
        // Warm-up: a few blocks through the whole path before timing.
        let warmup = build_batches(&members, 20, 1, 3 * txns as u64)?;
        throughput(&client, &ledger, warmup, &tp_pids).await?;

        let batched = throughput(&client, &ledger, batched, &tp_pids).await?;
        let single = throughput(&client, &ledger, singles, &tp_pids).await?;
        let latency = latency(&client, &ledger, latency_batches).await?;
        let _ = stop.send(());
        server.await??;
        anyhow::Ok(json!({
            "benchmark": "devnet",
            "profile": if cfg!(debug_assertions) { "debug" } else { "release" },
            "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
            "processor_binary": tp_path.display().to_string(),
            "members": options.members,
            "block_interval_ms": options.block_interval_ms,
            "component_endpoint": if options.ipc { "ipc" } else { "tcp" },
            "max_inflight_txns": options.max_inflight,
            "processors": tp_pids.len(),
            "transaction": "bcfl ReportBandwidth (1 link) via bcfl-tp",
            "signing": {
                "transactions": txns,
                "txns_per_sec": round1(txns as f64 / signing.as_secs_f64()),
            },
            "batched": batched,
            "single": single,
            "latency": latency,
        }))
    });
    drop(runtime);
    devnet.shutdown();
    let report = result?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}
