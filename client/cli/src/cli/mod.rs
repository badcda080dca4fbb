//! Argument parsing and dispatch of the `bcfl` command line.
//!
//! The commands that need libtorch are stand-ins here ([`forward::Forwarded`]): `main` hands
//! them to `bcfl-train` before anything runs.

mod anomaly;
mod audit;
mod centre;
mod experiment;
pub(crate) mod forward;
mod history;
mod keys;
mod net;
mod node;
mod replay;
mod serve;
mod submit;
mod table;
mod verdict;

use std::process::ExitCode;

use bcfl_cli::context::{Context, GlobalArgs};
use clap::{Parser, Subcommand};

use forward::Forwarded;

/// Command line of the bcfl consortium ledger client.
#[derive(Debug, Parser)]
#[command(name = "bcfl", version, about, propagate_version = true)]
pub(crate) struct Cli {
    #[command(flatten)]
    pub(crate) global: GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

impl Cli {
    /// Whether the command runs in `bcfl-train`.
    pub(crate) fn is_forwarded(&self) -> bool {
        match &self.command {
            Command::Train(_)
            | Command::Eval(_)
            | Command::Fl(_)
            | Command::Model(_)
            | Command::Demo(_)
            | Command::Data(_)
            | Command::Llm(_)
            | Command::Node(NodeCommand::Run(_)) => true,
            Command::Anomaly(args) => args.is_forwarded(),
            _ => false,
        }
    }
}

// The one-line help of the forwarded commands is `bcfl-train`'s (client/cli/tests/it checks
// that the two lists agree).
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
    Net(net::NetCommand),
    /// A member's peer network: blob server, bandwidth probes, routed fetch and distribution.
    #[command(subcommand)]
    Node(NodeCommand),
    /// Score members with PageRank, DBSCAN or the modified z-score, from files (no ledger).
    Anomaly(anomaly::AnomalyArgs),
    /// Experiments without a model or a running ledger: `scale` (many members, one ledger).
    #[command(subcommand)]
    Experiment(experiment::ExperimentCommand),
    /// Fine-tune a model on one dataset (centralized baseline) and save its adapters and head.
    Train(Forwarded),
    /// Evaluate a saved model on a labelled file.
    Eval(Forwarded),
    /// Federated learning without a ledger.
    Fl(Forwarded),
    /// The consortium's model package.
    Model(Forwarded),
    /// A complete federated fine-tuning run of N members through the ledger, in one process.
    Demo(Forwarded),
    /// Labelled data: cut a corpus into the members' private shard files.
    Data(Forwarded),
    /// Decoder language models (GGUF files, Hugging Face checkpoints): generation, evaluation,
    /// export.
    Llm(Forwarded),
}

/// `bcfl node ...`: the peer network here, `node run` in `bcfl-train`.
#[derive(Debug, Subcommand)]
enum NodeCommand {
    #[command(flatten)]
    Network(node::NodeCommand),
    /// Run a member node (and/or the coordinator) that follows the ledger round after round.
    Run(Forwarded),
}

/// Runs the parsed command; the exit code is 0, or 1 for an `audit verify` mismatch.
pub(crate) async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let ctx = Context::try_new(cli.global)?;
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
        Command::Node(NodeCommand::Network(cmd)) => cmd
            .run(ctx.client()?, || ctx.signer(), ctx.json())
            .await
            .map(|()| ExitCode::SUCCESS),
        Command::Anomaly(args) => anomaly::anomaly(&ctx, args),
        Command::Experiment(cmd) => cmd.run(ctx.json()),
        Command::Node(NodeCommand::Run(_))
        | Command::Train(_)
        | Command::Eval(_)
        | Command::Fl(_)
        | Command::Model(_)
        | Command::Demo(_)
        | Command::Data(_)
        | Command::Llm(_) => {
            unreachable!("main hands the commands of bcfl-train over before running any")
        }
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
    fn commands_of_bcfl_train_are_forwarded_with_their_arguments() {
        for args in [
            &["bcfl", "demo", "--help"][..],
            &["bcfl", "--json", "demo", "--tiny", "--url", "http://x"],
            &["bcfl", "fl", "simulate", "-h"],
            &["bcfl", "model", "init", "--version"],
            &["bcfl", "node", "run", "--config", "c.toml"],
            &["bcfl", "anomaly", "bench", "--seeds", "1"],
            &["bcfl", "anomaly", "paper-table", "--help"],
            &[
                "bcfl",
                "anomaly",
                "plot",
                "--report",
                "r.json",
                "--figures",
                "out",
            ],
            &["bcfl", "--json", "anomaly", "scorecard", "a.json", "b.json"],
            &["bcfl", "data", "--", "split"],
        ] {
            let cli = Cli::try_parse_from(args).unwrap_or_else(|e| panic!("{args:?}: {e}"));
            assert!(cli.is_forwarded(), "{args:?}");
        }
        for args in [
            &["bcfl", "audit", "rounds"][..],
            &["bcfl", "node", "serve", "--store", "s"],
            &[
                "bcfl",
                "anomaly",
                "--method",
                "zscore",
                "--features",
                "f.csv",
            ],
        ] {
            let cli = Cli::try_parse_from(args).unwrap_or_else(|e| panic!("{args:?}: {e}"));
            assert!(!cli.is_forwarded(), "{args:?}");
        }
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
                "http://127.0.0.1:9000",
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
