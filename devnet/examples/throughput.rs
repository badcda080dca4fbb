//! Devnet throughput and latency benchmark; prints one JSON object.
//!
//! Embeds the ledger, starts the fixture processor (`bcfl-devnet-fixture-tp`, built next to this
//! example: `cargo build -p bcfl-devnet --bins --examples`), and measures:
//!
//! * `throughput`: `--batches` batches of `--txns-per-batch` transactions (each a read and a write
//!   of its own address, like a bcfl commitment) submitted at once; committed txns per second
//!   from the first submission to the last commit;
//! * `latency`: `--latency-samples` single-transaction batches submitted one after another, each
//!   waited for; p50/p90/max submit-to-commit in milliseconds.
//!
//! ```text
//! cargo run -p bcfl-devnet --example throughput -- --batches 50 --txns-per-batch 100
//! ```

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bcfl_devnet::ledger::{Devnet, DevnetConfig};
use bcfl_devnet::view::{BatchStatusKind, LedgerView};
use clap::Parser;
use protobuf::{Message as _, RepeatedField};
use sawtooth_sdk::messages::batch::{Batch, BatchHeader};
use sawtooth_sdk::messages::transaction::{Transaction, TransactionHeader};
use sawtooth_sdk::signing::{create_context, CryptoFactory};
use sha2::{Digest, Sha512};

/// Devnet benchmark.
#[derive(Parser, Debug)]
struct Cli {
    /// Batches in the throughput run.
    #[arg(long, default_value_t = 50)]
    batches: usize,
    /// Transactions per batch in the throughput run.
    #[arg(long, default_value_t = 100)]
    txns_per_batch: usize,
    /// Sequential single-batch submissions in the latency run.
    #[arg(long, default_value_t = 100)]
    latency_samples: usize,
    /// Block interval in milliseconds.
    #[arg(long, default_value_t = 20)]
    block_interval_ms: u64,
    /// The processor binary (default: the fixture next to this example).
    #[arg(long)]
    tp: Option<PathBuf>,
}

struct Keys {
    signer: sawtooth_sdk::signing::Signer<'static>,
    public: String,
}

fn keys() -> Keys {
    let ctx: &'static dyn sawtooth_sdk::signing::Context =
        Box::leak(create_context("secp256k1").unwrap());
    let key: &'static dyn sawtooth_sdk::signing::PrivateKey =
        Box::leak(ctx.new_random_private_key().unwrap());
    let factory: &'static CryptoFactory<'static> = Box::leak(Box::new(CryptoFactory::new(ctx)));
    let signer = factory.new_signer(key);
    let public = signer.get_public_key().unwrap().as_hex();
    Keys { signer, public }
}

fn batch(keys: &Keys, scripts: &[String]) -> Batch {
    let txns: Vec<Transaction> = scripts
        .iter()
        .map(|script| {
            let mut h = TransactionHeader::new();
            h.set_family_name("fixture".into());
            h.set_family_version("1.0".into());
            h.set_batcher_public_key(keys.public.clone());
            h.set_signer_public_key(keys.public.clone());
            h.set_payload_sha512(hex::encode(Sha512::digest(script.as_bytes())));
            h.set_nonce(format!("{:x}", rand::random::<u64>()));
            h.set_inputs(RepeatedField::from_vec(vec!["f1f1f1".into()]));
            h.set_outputs(RepeatedField::from_vec(vec!["f1f1f1".into()]));
            let hb = h.write_to_bytes().unwrap();
            let mut t = Transaction::new();
            t.set_header_signature(keys.signer.sign(&hb).unwrap());
            t.set_header(hb);
            t.set_payload(script.as_bytes().to_vec());
            t
        })
        .collect();
    let mut bh = BatchHeader::new();
    bh.set_signer_public_key(keys.public.clone());
    bh.set_transaction_ids(
        txns.iter()
            .map(|t| t.get_header_signature().to_string())
            .collect(),
    );
    let hb = bh.write_to_bytes().unwrap();
    let mut b = Batch::new();
    b.set_header_signature(keys.signer.sign(&hb).unwrap());
    b.set_header(hb);
    b.set_transactions(RepeatedField::from_vec(txns));
    b
}

/// Waits until every id is COMMITTED, re-checking only when the ledger says a status changed.
fn wait_all(runtime: &tokio::runtime::Runtime, ledger: &Arc<dyn LedgerView>, ids: &[String]) {
    let mut changes = ledger.status_changes();
    loop {
        changes.borrow_and_update();
        let statuses = ledger.batch_statuses(ids);
        if statuses
            .iter()
            .all(|s| s.status == BatchStatusKind::Committed)
        {
            return;
        }
        let bad = statuses
            .into_iter()
            .find(|s| s.status == BatchStatusKind::Invalid);
        assert!(bad.is_none(), "invalid batch: {bad:?}");
        let _ = runtime.block_on(async {
            tokio::time::timeout(Duration::from_secs(1), changes.changed()).await
        });
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .init();
    }
    let dir = tempfile::tempdir()?;
    let devnet = Devnet::start(DevnetConfig {
        data_dir: dir.path().to_path_buf(),
        component_endpoint: "tcp://127.0.0.1:0".into(),
        block_interval: Duration::from_millis(cli.block_interval_ms),
        max_pending_batches: cli.batches + 10,
        max_pending_per_signer: cli.batches + 10,
        ..DevnetConfig::default()
    })?;
    let tp_path = match cli.tp {
        Some(p) => p,
        None => std::env::current_exe()?
            .parent()
            .and_then(|p| p.parent())
            .unwrap()
            .join("bcfl-devnet-fixture-tp"),
    };
    let mut tp = Command::new(&tp_path)
        .args(["-C", devnet.component_endpoint()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let ledger = devnet.ledger();
    let keys = keys();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()?;

    // Warm-up: wait for the processor to register.
    let warm = batch(&keys, &[format!("set f1f1f1{} w", "f".repeat(64))]);
    let warm_id = warm.get_header_signature().to_string();
    ledger
        .submit_batches(vec![warm])
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    wait_all(&runtime, &ledger, &[warm_id]);

    let batches: Vec<Batch> = (0..cli.batches)
        .map(|b| {
            let scripts: Vec<String> = (0..cli.txns_per_batch)
                .map(|t| {
                    let a = format!("f1f1f1{:064x}", b * cli.txns_per_batch + t);
                    if std::env::var_os("BENCH_SET_ONLY").is_some() {
                        format!("set {a} committed")
                    } else {
                        format!("expect {a} -;set {a} committed")
                    }
                })
                .collect();
            batch(&keys, &scripts)
        })
        .collect();
    let ids: Vec<String> = batches
        .iter()
        .map(|b| b.get_header_signature().to_string())
        .collect();
    let start = Instant::now();
    for b in batches {
        ledger
            .submit_batches(vec![b])
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    wait_all(&runtime, &ledger, &ids);
    let elapsed = start.elapsed().as_secs_f64();
    let txns = cli.batches * cli.txns_per_batch;

    let mut latencies = Vec::with_capacity(cli.latency_samples);
    for i in 0..cli.latency_samples {
        let b = batch(
            &keys,
            &[format!("inc f1f1f1{:064x}", 1u64 << 40 | i as u64)],
        );
        let id = b.get_header_signature().to_string();
        let t0 = Instant::now();
        ledger
            .submit_batches(vec![b])
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        wait_all(&runtime, &ledger, &[id]);
        latencies.push(t0.elapsed().as_secs_f64() * 1000.0);
    }
    latencies.sort_by(f64::total_cmp);
    let pct = |q: f64| {
        latencies
            .get(((latencies.len() as f64 - 1.0) * q).round() as usize)
            .copied()
            .unwrap_or(0.0)
    };
    let report = serde_json::json!({
        "throughput": {
            "batches": cli.batches,
            "txns_per_batch": cli.txns_per_batch,
            "seconds": elapsed,
            "txns_per_second": txns as f64 / elapsed,
        },
        "latency_ms": { "samples": latencies.len(), "p50": pct(0.5), "p90": pct(0.9), "max": pct(1.0) },
        "block_interval_ms": cli.block_interval_ms,
        "profile": if cfg!(debug_assertions) { "dev" } else { "release" },
    });
    println!("{}", serde_json::to_string_pretty(&report)?);
    let _ = tp.kill();
    let _ = tp.wait();
    devnet.shutdown();
    Ok(())
}
