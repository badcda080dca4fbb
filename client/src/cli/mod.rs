//! Argument parsing and dispatch of the `bcfl` command line.

mod anomaly;
mod audit;
mod centre;
mod context;
mod history;
mod keys;
mod submit;
mod table;
mod verdict;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

pub(crate) use context::Context;

/// Command line of the bcfl consortium ledger client.
#[derive(Debug, Parser)]
#[command(name = "bcfl", version, about, propagate_version = true)]
pub(crate) struct Cli {
    #[command(flatten)]
    pub(crate) global: GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

/// Options every command accepts.
#[derive(Debug, Args)]
pub(crate) struct GlobalArgs {
    /// Base URL of the ledger's REST API.
    #[arg(
        long,
        global = true,
        env = "BCFL_URL",
        default_value = "http://127.0.0.1:8008"
    )]
    pub(crate) url: String,
    /// Signing key: a path to a private key file, or a key name in the key directory
    /// (default: $USER).
    #[arg(long, global = true, env = "BCFL_KEY")]
    pub(crate) key: Option<String>,
    /// Directory of named keys (NAME.priv, NAME.pub) [default: ~/.sawtooth/keys].
    #[arg(long, global = true, env = "BCFL_KEY_DIR")]
    pub(crate) key_dir: Option<PathBuf>,
    /// Print machine-readable JSON instead of tables.
    #[arg(long, global = true)]
    pub(crate) json: bool,
    /// More logging on stderr (-v, -vv).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub(crate) verbose: u8,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create a key pair NAME.priv (mode 0600) and NAME.pub in the key directory.
    Keygen(keys::KeygenArgs),
    /// Consortium administration.
    #[command(subcommand)]
    Consortium(submit::ConsortiumCommand),
    /// Member registry.
    #[command(subcommand)]
    Member(submit::MemberCommand),
    /// Round lifecycle.
    #[command(subcommand)]
    Round(submit::RoundCommand),
    /// Commit this member's update to a round.
    Commit(submit::CommitArgs),
    /// Bandwidth measurements.
    #[command(subcommand)]
    Bandwidth(submit::BandwidthCommand),
    /// Global model commitments.
    #[command(subcommand)]
    Aggregate(submit::AggregateCommand),
    /// Read-only queries of the ledger.
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// Routing and transfer planning over measured bandwidths.
    #[command(subcommand)]
    Net(bcfl_client::net::NetCommand),
    /// A member's peer network: blob server, bandwidth probes, routed fetch and distribution.
    #[command(subcommand)]
    Node(bcfl_client::net::node::NodeCommand),
    /// Score members with PageRank, DBSCAN or the modified z-score, from files (no ledger).
    Anomaly(anomaly::AnomalyArgs),
    /// Fine-tune a model on one dataset (centralized baseline) and save its adapters and head.
    #[cfg(feature = "train")]
    Train(bcfl_client::train::command::TrainArgs),
    /// Evaluate a saved model on a labelled file.
    #[cfg(feature = "train")]
    Eval(bcfl_client::train::command::EvalArgs),
    /// Federated learning without a ledger.
    #[cfg(feature = "train")]
    #[command(subcommand)]
    Fl(bcfl_client::train::command::FlCommand),
    /// The consortium's model package.
    #[cfg(feature = "train")]
    #[command(subcommand)]
    Model(bcfl_client::round::model::ModelCommand),
    /// A complete federated fine-tuning run of N members through the ledger, in one process.
    #[cfg(feature = "train")]
    Demo(Box<bcfl_client::demo::DemoArgs>),
    /// Labelled data: cut a corpus into the members' private shard files.
    #[cfg(feature = "train")]
    #[command(subcommand)]
    Data(bcfl_client::train::data_command::DataCommand),
}

/// Runs the parsed command; the exit code is 0, or 1 for an `audit verify` mismatch.
pub(crate) async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let ctx = Context::new(cli.global);
    match cli.command {
        Command::Keygen(args) => keys::keygen(&ctx, args),
        Command::Consortium(cmd) => submit::consortium(&ctx, cmd).await,
        Command::Member(cmd) => submit::member(&ctx, cmd).await,
        Command::Round(cmd) => submit::round(&ctx, cmd).await,
        Command::Commit(args) => submit::commit(&ctx, args).await,
        Command::Bandwidth(cmd) => submit::bandwidth(&ctx, cmd).await,
        Command::Aggregate(cmd) => submit::aggregate(&ctx, cmd).await,
        Command::Audit(cmd) => audit::audit(&ctx, cmd).await,
        Command::Net(cmd) => cmd
            .run(|| ctx.client(), ctx.json())
            .await
            .map(|()| ExitCode::SUCCESS),
        Command::Node(cmd) => cmd
            .run(ctx.client()?, || ctx.signer(), ctx.json())
            .await
            .map(|()| ExitCode::SUCCESS),
        Command::Anomaly(args) => anomaly::anomaly(&ctx, args),
        #[cfg(feature = "train")]
        Command::Train(args) => {
            bcfl_client::train::command::run_train(&args, ctx.json()).map(|()| ExitCode::SUCCESS)
        }
        #[cfg(feature = "train")]
        Command::Eval(args) => {
            bcfl_client::train::command::run_eval(&args, ctx.json()).map(|()| ExitCode::SUCCESS)
        }
        #[cfg(feature = "train")]
        Command::Fl(cmd) => cmd.run(ctx.json()).await.map(|()| ExitCode::SUCCESS),
        #[cfg(feature = "train")]
        Command::Model(cmd) => cmd.run(ctx.json()).map(|()| ExitCode::SUCCESS),
        #[cfg(feature = "train")]
        Command::Demo(args) => {
            bcfl_client::demo::command(&args, ctx.client()?.base_url(), ctx.json())
                .await
                .map(|()| ExitCode::SUCCESS)
        }
        #[cfg(feature = "train")]
        Command::Data(cmd) => cmd.run(ctx.json()).map(|()| ExitCode::SUCCESS),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn positional_member_keys_do_not_clobber_the_signing_key() {
        for args in [
            &[
                "bcfl",
                "--key",
                "admin",
                "member",
                "register",
                "alice",
                "--name",
                "a",
                "--endpoint",
                "e",
            ][..],
            &[
                "bcfl", "member", "suspend", "alice", "--reason", "r", "--key", "admin",
            ][..],
            &["bcfl", "--key", "admin", "audit", "member", "alice"][..],
        ] {
            let cli = Cli::try_parse_from(args).unwrap();
            assert_eq!(cli.global.key.as_deref(), Some("admin"), "{args:?}");
        }
    }
}
