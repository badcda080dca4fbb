//! The bcfl command line, in two binaries.
//!
//! - `bcfl` (`src/main.rs`): the command users call for everything. It runs the ledger,
//!   audit, routing, peer-network and anomaly commands itself and links no libtorch, so that
//!   each call starts in milliseconds.
//! - `bcfl-train` (`src/bin/bcfl-train/`, built when bcfl-client's `train` feature is on): the
//!   commands that need libtorch (`train`, `eval`, `fl`, `model`, `data`, `demo`, `node run`,
//!   `anomaly bench`, `anomaly paper-table`), and `anomaly plot` and `anomaly scorecard`, which
//!   read the bench's reports. `bcfl` runs it in its own place (Unix `exec`), with the same
//!   arguments and environment, when one of those commands is asked for; it is found next to
//!   `bcfl`'s own executable.
//!
//! This library is what both binaries share: the global flags and the context they give
//! ([`context`]), how a binary starts and ends ([`entry`]), and the flags several commands
//! read once ([`sampling`], [`anomaly_preset`]), and how figures become files ([`figures`]). `docs/cli.md` documents every
//! command.
//!
//! A binary's command line takes the global flags and runs its command through [`entry::run`]
//! (the example compiles but does not run: with bcfl-client's `train` feature, the doctest
//! would load libtorch, from a folder only `bcfl-train` is linked to find):
//!
//! ```no_run
//! use std::process::ExitCode;
//!
//! use bcfl_cli::context::{Context, GlobalArgs};
//! use bcfl_cli::entry;
//! use clap::Parser;
//!
//! #[derive(Parser)]
//! struct Cli {
//!     #[command(flatten)]
//!     global: GlobalArgs,
//! }
//!
//! fn main() -> ExitCode {
//!     entry::default_sigpipe();
//!     let cli = Cli::parse();
//!     let verbose = cli.global.verbose;
//!     entry::run(verbose, async move {
//!         let ctx = Context::new(cli.global);
//!         let url = ctx.client()?.base_url().to_owned();
//!         if ctx.json() {
//!             ctx.print_json(&serde_json::json!({ "url": url }));
//!         }
//!         Ok(ExitCode::SUCCESS)
//!     })
//! }
//! ```

pub mod anomaly_preset;
pub mod context;
pub mod entry;
pub mod figures;
pub mod sampling;

/// The name of the binary that runs the commands needing libtorch.
pub const TRAIN_BINARY: &str = "bcfl-train";
