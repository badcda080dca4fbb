//! Devnet against the real Sawtooth 1.2.6 validator, side by side in one run, on the same `bcfl`
//! workload, both through their REST APIs with the same client. Prints one JSON object (and a
//! Markdown table with `--markdown`).
//!
//! ```text
//! cargo build --release -p bcfl-tp -p bcfl-devnet
//! cargo bench -p bcfl-tests --bench ledgers                        # defaults below
//! cargo bench -p bcfl-tests --bench ledgers -- --ledgers devnet,devmode --batches 40
//! ```
//!
//! Ledgers (`--ledgers`, default all three), each started fresh on loopback with the release
//! `bcfl-tp` of this target directory beside it:
//! * `devnet`: the `bcfl-devnet` binary (release), default settings;
//! * `devmode`: one real validator with the devmode engine (`scripts/sawtooth-net.py up
//!   --consensus devmode`; components built by `scripts/sawtooth-build.sh`, release);
//! * `pbft`: four real validators with PBFT (200 ms block publishing delay), the client posting to
//!   validator 0 and waiting on it.
//!
//! Set-up (not timed): one batch creates the consortium and registers `--members` members. The
//! timed transactions are the workload of `workload/mod.rs` (`ReportBandwidth`, a
//! read-modify-write through the family's rules), all signed beforehand:
//! * throughput: `--batches` batches of `--txns-per-batch` transactions posted in lists of 10;
//!   committed transactions per second from the first POST until every batch reads COMMITTED;
//! * latency: `--latency-samples` single-transaction batches posted one after another, each
//!   waited for (`batch_statuses?wait`); POST start to COMMITTED, p50 / p95 / max in ms.
//!
//! The real components are skipped with the reason when they are unavailable here.

use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use bcfl_ledger::keys::{PrivateKey, Signer};
use bcfl_ledger::protocol::{Batch, BatchList};
use bcfl_ledger::rest::{BatchStatusKind, RestClient};
use bcfl_testkit::{Consensus, Ledger, SawtoothNetwork};
use clap::Parser;
use serde_json::{json, Value};

mod workload;
use workload::{build_batches, consortium_batch, latency_summary, round1, round3};

/// Benchmark options.
#[derive(Parser, Debug)]
struct Options {
    /// Ledgers to measure, in order: devnet, devmode, pbft.
    #[arg(long, value_delimiter = ',', default_value = "devnet,devmode,pbft")]
    ledgers: Vec<String>,
    /// Batches in the throughput run.
    #[arg(long, default_value_t = 20)]
    batches: usize,
    /// Transactions per batch in the throughput run.
    #[arg(long, default_value_t = 50)]
    txns_per_batch: usize,
    /// Sequential single-transaction batches in the latency run.
    #[arg(long, default_value_t = 40)]
    latency_samples: usize,
    /// Registered members (signers of the reports).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u16).range(2..))]
    members: u16,
    /// Print a Markdown table after the JSON.
    #[arg(long)]
    markdown: bool,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

/// Waits until every id is COMMITTED (50 ids per request: the ids travel in the URL); fails on
/// INVALID or after `timeout`.
async fn await_committed(
    client: &RestClient,
    ids: &[String],
    timeout: Duration,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    for chunk in ids.chunks(50) {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                bail!("batches not committed within {timeout:?}");
            }
            let statuses = client.wait_for_batches(chunk, left).await?;
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
            if statuses
                .iter()
                .all(|s| s.status == BatchStatusKind::Committed)
            {
                break;
            }
        }
    }
    Ok(())
}

async fn block_height(client: &RestClient) -> anyhow::Result<u64> {
    Ok(client.chain_head().await?.block_num)
}

async fn throughput(client: &RestClient, batches: Vec<Batch>) -> anyhow::Result<Value> {
    let txns: usize = batches.iter().map(|b| b.transactions().len()).sum();
    let ids: Vec<String> = batches.iter().map(|b| b.id().to_owned()).collect();
    let blocks_before = block_height(client).await?;
    let start = Instant::now();
    for chunk in batches.chunks(10) {
        client
            .submit_batches(&BatchList::new(chunk.to_vec()))
            .await?;
    }
    let posted = start.elapsed();
    await_committed(client, &ids, Duration::from_secs(900)).await?;
    let elapsed = start.elapsed().as_secs_f64();
    Ok(json!({
        "batches": batches.len(),
        "transactions": txns,
        "seconds": round3(elapsed),
        "post_seconds": round3(posted.as_secs_f64()),
        "committed_txns_per_sec": round1(txns as f64 / elapsed),
        "blocks": block_height(client).await? - blocks_before,
    }))
}

async fn latency(client: &RestClient, batches: Vec<Batch>) -> anyhow::Result<Value> {
    let mut samples = Vec::with_capacity(batches.len());
    for batch in batches {
        let start = Instant::now();
        let statuses = client
            .submit(&BatchList::new(vec![batch]), Some(Duration::from_secs(120)))
            .await?;
        if statuses
            .iter()
            .any(|s| s.status != BatchStatusKind::Committed)
        {
            bail!("a latency batch did not commit: {statuses:?}");
        }
        samples.push(start.elapsed().as_secs_f64() * 1e3);
    }
    Ok(latency_summary(samples))
}

/// Set-up, throughput and latency against the REST API at `url`.
async fn measure(url: &str, options: &Options) -> anyhow::Result<Value> {
    let client = RestClient::new(url)?;
    let admin = Signer::new(PrivateKey::random());
    let members: Vec<Signer> = (0..usize::from(options.members))
        .map(|_| Signer::new(PrivateKey::random()))
        .collect();
    let setup = consortium_batch(&admin, &members)?;
    client
        .submit(&BatchList::new(vec![setup]), Some(Duration::from_secs(120)))
        .await
        .context("creating the consortium (is bcfl-tp registered?)")?;
    let batches = build_batches(&members, options.batches, options.txns_per_batch, 0)?;
    let singles = build_batches(&members, options.latency_samples, 1, 1 << 32)?;
    Ok(json!({
        "throughput": throughput(&client, batches).await?,
        "latency": latency(&client, singles).await?,
    }))
}

fn main() -> anyhow::Result<()> {
    let options = Options::parse();
    if options.batches == 0 || options.txns_per_batch == 0 || options.latency_samples == 0 {
        bail!("--batches, --txns-per-batch and --latency-samples must be at least 1");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let mut results = serde_json::Map::new();
    for name in &options.ledgers {
        let dir = tempfile::tempdir()?;
        eprintln!("[ledgers] {name}: starting");
        let result = match name.as_str() {
            "devnet" => {
                let ledger = Ledger::start(dir.path());
                runtime.block_on(measure(ledger.url(), &options))?
            }
            "devmode" | "pbft" => {
                if let Err(why) = SawtoothNetwork::available() {
                    eprintln!("[ledgers] {name}: skipped: {why}");
                    results.insert(name.clone(), json!({ "skipped": why }));
                    continue;
                }
                let (consensus, nodes) = if name == "pbft" {
                    (Consensus::Pbft, 4)
                } else {
                    (Consensus::Devmode, 1)
                };
                let network = SawtoothNetwork::start(dir.path(), consensus, nodes);
                runtime.block_on(measure(network.url(0), &options))?
            }
            other => bail!("--ledgers: unknown ledger {other:?} (devnet, devmode, pbft)"),
        };
        eprintln!("[ledgers] {name}: {result}");
        results.insert(name.clone(), result);
    }
    let ratio = |a: &str, b: &str| -> Option<f64> {
        let tps = |n: &str| results.get(n)?["throughput"]["committed_txns_per_sec"].as_f64();
        Some(round1(tps(a)? / tps(b)?))
    };
    let summary = json!({
        "workload": {
            "members": options.members,
            "batches": options.batches,
            "txns_per_batch": options.txns_per_batch,
            "latency_samples": options.latency_samples,
        },
        "ledgers": results,
        "devnet_over_devmode_throughput": ratio("devnet", "devmode"),
        "devnet_over_pbft_throughput": ratio("devnet", "pbft"),
    });
    println!("{}", serde_json::to_string_pretty(&summary)?);
    if options.markdown {
        println!("\n| ledger | committed txn/s | p50 latency ms | p95 latency ms |");
        println!("| --- | --- | --- | --- |");
        for name in &options.ledgers {
            let r = &results[name.as_str()];
            if r.get("skipped").is_some() {
                println!("| {name} | skipped | | |");
                continue;
            }
            println!(
                "| {name} | {} | {} | {} |",
                r["throughput"]["committed_txns_per_sec"],
                r["latency"]["p50_ms"],
                r["latency"]["p95_ms"]
            );
        }
    }
    Ok(())
}
