//! `bcfl-train`: the commands of the bcfl command line that need libtorch.
//!
//! `bcfl` hands these commands over to this binary (Unix `exec`, same arguments and
//! environment), so that `bcfl` itself links no libtorch and every ledger or audit call starts
//! in milliseconds; it is built only with bcfl-client's `train` feature and must lie next to
//! `bcfl`. It takes the same global flags (`--url`, `--key`, `--key-dir`, `--json`, `-v`) and
//! calls itself `bcfl` in help and error messages.
//!
//! - `train`, `eval`: the centralized baseline;
//! - `fl ...`: federated learning without a ledger;
//! - `model ...`: the consortium's model package;
//! - `data ...`: the members' private shard files;
//! - `demo`: a federated run of N member processes through a ledger (which start this binary
//!   again, as `node run`);
//! - `node run`: a member node and/or the coordinator that follows the ledger;
//! - `anomaly bench`, `anomaly paper-table`: the anomaly methods under attack on real training;
//! - `llm generate`, `llm eval`: greedy generation with a decoder language model read from a
//!   GGUF file, and its scores on PubMedQA.
//!
//! Exit status: 0 on success, 2 on any error.

mod anomaly_bench;
mod bench;
mod data;
mod demo;
mod llm;
mod model;
mod node;
mod plot;
mod train;

use std::process::ExitCode;

use bcfl_cli::context::{Context, GlobalArgs};
use bcfl_cli::entry;
use clap::{Parser, Subcommand};

/// The commands of the bcfl command line that train (run through `bcfl`).
#[derive(Debug, Parser)]
#[command(name = "bcfl", version, about, propagate_version = true)]
struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

// `bcfl --help` repeats these one-line helps (client/cli/tests/it checks that they agree).
#[derive(Debug, Subcommand)]
enum Command {
    /// Fine-tune a model on one dataset (centralized baseline) and save its adapters and head.
    Train(train::TrainArgs),
    /// Evaluate a saved model on a labelled file.
    Eval(train::EvalArgs),
    /// Federated learning without a ledger.
    #[command(subcommand)]
    Fl(train::FlCommand),
    /// The consortium's model package.
    #[command(subcommand)]
    Model(model::ModelCommand),
    /// A complete federated fine-tuning run of N members through the ledger, in one process.
    Demo(Box<demo::DemoArgs>),
    /// Labelled data: cut a corpus into the members' private shard files.
    #[command(subcommand)]
    Data(data::DataCommand),
    /// A member's peer network: `node run` (the other node commands run in `bcfl` itself).
    #[command(subcommand)]
    Node(NodeCommand),
    /// Anomaly methods on real training under attack (`bcfl anomaly` scores files itself).
    #[command(subcommand)]
    Anomaly(anomaly_bench::AnomalyCommand),
    /// Decoder language models (GGUF files, Hugging Face checkpoints): generation, evaluation,
    /// export.
    #[command(subcommand)]
    Llm(llm::LlmCommand),
}

/// `bcfl node ...` commands that train.
#[derive(Debug, Subcommand)]
enum NodeCommand {
    /// Run a member node (and/or the coordinator) that follows the ledger round after round.
    Run(node::NodeRunArgs),
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let ctx = Context::try_new(cli.global)?;
    match cli.command {
        Command::Train(args) => train::run_train(&args, ctx.json())?,
        Command::Eval(args) => train::run_eval(&args, ctx.json())?,
        Command::Fl(cmd) => cmd.run(ctx.json()).await?,
        Command::Model(cmd) => cmd.run(ctx.json())?,
        Command::Demo(args) => {
            demo::command(&args, ctx.client()?.base_url(), ctx.json()).await?;
        }
        Command::Data(cmd) => cmd.run(ctx.json())?,
        Command::Node(NodeCommand::Run(args)) => {
            node::run(&args, ctx.client()?.base_url()).await?;
        }
        Command::Anomaly(cmd) => anomaly_bench::run(&ctx, cmd).await?,
        Command::Llm(cmd) => cmd.run(ctx.json())?,
    }
    Ok(ExitCode::SUCCESS)
}

fn main() -> ExitCode {
    entry::default_sigpipe();
    let cli = Cli::parse();
    // A node shows each phase of each round (log lines at `info`) without `-v`.
    let quiet = match cli.command {
        Command::Node(_) => "warn,bcfl_client::round=info",
        _ => "warn",
    };
    entry::run_from(cli.global.verbose, quiet, run(cli))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn command_line_is_consistent() {
        Cli::command().debug_assert();
    }
}
