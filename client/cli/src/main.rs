//! `bcfl`: the command line of a bcfl consortium member, admin or auditor.
//!
//! Commands (see `docs/cli.md` for every flag and the JSON output):
//!
//! - `keygen NAME`: a Sawtooth-format key pair in the key directory;
//! - `consortium init`, `member register|update|suspend`, `round open|evaluate|close`,
//!   `commit`, `bandwidth report`, `aggregate commit`: sign a `bcfl` transaction, submit it,
//!   and wait for its batch to commit (`--no-wait` to skip);
//! - `audit ...`: read-only queries of the family's state, hash verification, export;
//! - `net ...`, `node serve|probe|fetch|distribute`, `anomaly`: routing, the peer network and
//!   the anomaly methods;
//! - `train`, `eval`, `fl`, `model`, `data`, `demo`, `node run`, `anomaly bench|paper-table|plot`:
//!   the commands that need libtorch run in `bcfl-train`, next to this executable, which this
//!   one replaces itself with (`exec`) passing every argument and the environment along
//!   ([`cli::forward`]). This binary links no libtorch.
//!
//! Exit status: 0 on success, 1 when `audit verify` finds a mismatch, 2 on any error (a
//! rejected batch included, with the processor's reason on stderr). A closed output pipe ends
//! the program quietly (SIGPIPE), as for any Unix filter.

mod cli;

use std::process::ExitCode;

use bcfl_cli::entry;
use clap::Parser;

fn main() -> ExitCode {
    entry::default_sigpipe();
    let argv: Vec<_> = std::env::args_os().collect();
    if cli::forward::help_is_forwarded(&argv) {
        return cli::forward::exec_train(argv);
    }
    let args = cli::Cli::parse_from(&argv);
    if args.is_forwarded() {
        return cli::forward::exec_train(argv);
    }
    entry::run(args.global.verbose, cli::run(args))
}
