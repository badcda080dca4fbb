//! `bcfl-devnet`: a single-node ledger wire-compatible with a Sawtooth 1.2 validator plus its
//! REST API. Transaction processors connect to `--bind-component`; clients use `--bind-rest`.
//!
//! On start it prints one line per endpoint and the validator public key:
//!
//! ```text
//! component: tcp://127.0.0.1:4004
//! rest: http://127.0.0.1:8008
//! validator public key: 02...
//! ```
//!
//! SIGINT/SIGTERM stop it cleanly (exit 0); every committed block is already durable.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use bcfl_devnet::ledger::{Devnet, DevnetConfig};
use clap::{Args, Parser, Subcommand};

/// A single-node Sawtooth 1.2-compatible ledger for laptops, CI and tests.
#[derive(Parser, Debug)]
#[command(name = "bcfl-devnet", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the ledger (the default).
    Run(RunArgs),
}

/// Settings of `bcfl-devnet run`.
#[derive(Args, Debug, Clone)]
struct RunArgs {
    /// Directory of the ledger file and the validator key.
    #[arg(long, env = "BCFL_DEVNET_DATA_DIR", default_value = "./devnet-data")]
    data_dir: PathBuf,
    /// ZMQ endpoint for transaction processors (port 0 picks a free port).
    #[arg(long, default_value = "tcp://127.0.0.1:4004")]
    bind_component: String,
    /// Address of the REST API (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:8008")]
    bind_rest: String,
    /// Minimum time between the starts of two blocks, in milliseconds.
    #[arg(long, default_value_t = 20)]
    block_interval_ms: u64,
    /// Maximum batches per block (0: unlimited).
    #[arg(long, default_value_t = 0)]
    max_batches_per_block: usize,
    /// Pending batches accepted before submissions get "queue full" (HTTP 429).
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..))]
    max_pending_batches: u64,
    /// Pending batches one batch signer may hold; beyond it only that signer gets "queue full",
    /// so one key flooding the queue cannot lock the others out.
    #[arg(long, default_value_t = 1_000, value_parser = clap::value_parser!(u64).range(1..))]
    max_pending_per_signer: u64,
    /// `sawtooth.validator.transaction_families` for the genesis of a new chain: a JSON list
    /// such as `[{"family":"sawtooth_settings","version":"1.0"},{"family":"bcfl","version":"1.0"}]`.
    /// Submissions of other families are then refused (HTTP 400, code 30). Unset: every family
    /// is allowed. An existing chain keeps its on-chain value.
    #[arg(long, env = "BCFL_DEVNET_TRANSACTION_FAMILIES")]
    transaction_families: Option<String>,
    /// Retries of a transaction after INTERNAL_ERROR before its batch is invalid.
    #[arg(long, default_value_t = 3)]
    max_internal_retries: u32,
    /// Seconds a processor may take for one transaction.
    #[arg(long, default_value_t = 60)]
    processor_timeout_s: u64,
    /// Transactions executing at once; a transaction starts before earlier ones finish only
    /// when their declared addresses do not conflict (1: strictly serial, like Sawtooth's
    /// serial scheduler).
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u64).range(1..=256))]
    max_inflight_txns: u64,
    /// Page cache of the chain's store, MiB.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..))]
    cache_mib: u64,
    /// Serve the REST API over HTTPS (and wss:// subscriptions) with this certificate chain
    /// (PEM, leaf first); needs --tls-key.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// More logging (-v debug, -vv trace); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count)]
    verbose: u8,
}

impl RunArgs {
    fn config(&self) -> DevnetConfig {
        DevnetConfig {
            data_dir: self.data_dir.clone(),
            component_endpoint: self.bind_component.clone(),
            block_interval: Duration::from_millis(self.block_interval_ms),
            max_batches_per_block: self.max_batches_per_block,
            max_pending_batches: self.max_pending_batches as usize,
            max_pending_per_signer: self.max_pending_per_signer as usize,
            transaction_families: self.transaction_families.clone(),
            max_internal_retries: self.max_internal_retries,
            processor_timeout: Duration::from_secs(self.processor_timeout_s),
            max_inflight_txns: self.max_inflight_txns as usize,
            cache_bytes: (self.cache_mib as usize) << 20,
            ..DevnetConfig::default()
        }
    }
}

fn init_logging(verbose: u8) {
    let level = match verbose {
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing a SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let args = match cli.command {
        Some(Command::Run(args)) => args,
        None => cli.run,
    };
    init_logging(args.verbose);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(
            bcfl_tls::ServerTls::from_pem_files(cert, key)
                .context("loading the TLS certificate")?,
        ),
        _ => None,
    };
    let devnet = Devnet::start(args.config())
        .with_context(|| format!("starting the ledger in {}", args.data_dir.display()))?;
    let served = runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(&args.bind_rest)
            .await
            .with_context(|| format!("binding the REST API on {}", args.bind_rest))?;
        let rest_addr = listener.local_addr()?;
        // A closed stdout (e.g. a parent that stopped reading) must not stop the ledger.
        let announce = || -> std::io::Result<()> {
            let mut out = std::io::stdout().lock();
            writeln!(out, "component: {}", devnet.component_endpoint())?;
            let scheme = if tls.is_some() { "https" } else { "http" };
            writeln!(out, "rest: {scheme}://{rest_addr}")?;
            writeln!(
                out,
                "validator public key: {}",
                devnet.validator_public_key()
            )?;
            out.flush()
        };
        if let Err(error) = announce() {
            tracing::warn!(%error, "could not print the endpoints on stdout");
        }
        bcfl_devnet::rest::serve_tls_with_config(
            listener,
            devnet.ledger(),
            bcfl_devnet::rest::RestConfig::default(),
            tls,
            shutdown_signal(),
        )
        .await
        .context("serving the REST API")
    });
    tracing::info!("shutting down");
    devnet.shutdown();
    runtime.shutdown_timeout(Duration::from_secs(2));
    served
}
