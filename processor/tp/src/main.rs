//! `bcfl-tp`: the Sawtooth transaction processor of the `bcfl` family.
//!
//! Connects to a validator's component endpoint (ZMQ, default `tcp://localhost:4004`), registers
//! family `bcfl` 1.0 for namespace `085493`, and applies transactions with
//! [`bcfl_processor::BcflHandler`] (through [`bcfl_tp::sdk::TpHandler`]) on the runtime of
//! [`bcfl_tp::runtime`] (the component protocol on one socket, trailing writes pipelined). SIGINT or SIGTERM finishes the transaction
//! in hand, unregisters from the validator and exits with status 0.
//!
//! ```text
//! bcfl-tp -C tcp://validator:4004 -vv
//! ```

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{Context as _, Result};
use bcfl_processor::{FAMILY_NAME, FAMILY_VERSION, NAMESPACE};
use bcfl_tp::runtime::Processor;
use bcfl_tp::sdk::{context_error, TpHandler};
use clap::Parser;
use tracing_subscriber::EnvFilter;

/// Transaction processor of the bcfl family (Hyperledger Sawtooth 1.2).
#[derive(Debug, Parser)]
#[command(name = "bcfl-tp", version, about)]
struct Args {
    /// Validator component endpoint.
    #[arg(
        short = 'C',
        long = "connect",
        default_value = "tcp://localhost:4004",
        env = "BCFL_TP_CONNECT"
    )]
    connect: String,

    /// Log more: -v info, -vv debug, -vvv trace (default: warnings). RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count)]
    verbose: u8,
}

impl Args {
    fn log_level(&self) -> &'static str {
        match self.verbose {
            0 => "warn",
            1 => "info",
            2 => "debug",
            _ => "trace",
        }
    }

    fn validate(&self) -> Result<()> {
        let ok = ["tcp://", "ipc://", "inproc://"]
            .iter()
            .any(|scheme| self.connect.starts_with(scheme) && self.connect.len() > scheme.len());
        anyhow::ensure!(
            ok,
            "--connect must be a ZMQ endpoint such as tcp://localhost:4004, got {:?}",
            self.connect
        );
        Ok(())
    }
}

fn main() -> Result<()> {
    let args = Args::parse();
    args.validate()?;
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(args.log_level()));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init()
        .map_err(|e| anyhow::anyhow!("cannot install the log subscriber: {e}"))?;

    tracing::info!(
        endpoint = %args.connect,
        family = FAMILY_NAME,
        version = FAMILY_VERSION,
        namespace = NAMESPACE,
        "starting bcfl-tp"
    );
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    ctrlc::set_handler(move || flag.store(true, Ordering::SeqCst))
        .context("cannot install the SIGINT/SIGTERM handler")?;
    let handler = TpHandler::new();
    // Runs until SIGINT/SIGTERM, then unregisters from the validator.
    Processor::new(&args.connect, &handler, context_error, stop).run()?;
    tracing::info!("bcfl-tp stopped");
    Ok(())
}
