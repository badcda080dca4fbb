//! `bcfl`: the command line of a bcfl consortium member, admin or auditor.
//!
//! Commands (see `docs/cli.md` for every flag and the JSON output):
//!
//! - `keygen NAME`: a Sawtooth-format key pair in the key directory;
//! - `consortium init`, `member register|update|suspend`, `round open|evaluate|close`,
//!   `commit`, `bandwidth report`, `aggregate commit`: sign a `bcfl` transaction, submit it,
//!   and wait for its batch to commit (`--no-wait` to skip);
//! - `audit ...`: read-only queries of the family's state, hash verification, export.
//!
//! Exit status: 0 on success, 1 when `audit verify` finds a mismatch, 2 on any error (a
//! rejected batch included, with the processor's reason on stderr). A closed output pipe ends
//! the program quietly (SIGPIPE), as for any Unix filter.

mod cli;

use std::process::ExitCode;

use clap::Parser;

/// Restores the default action of SIGPIPE (terminate quietly), which Rust programs ignore, so
/// that `bcfl --json audit rounds | head -1` ends like any Unix filter instead of panicking in
/// `println!` on the closed pipe.
#[allow(unsafe_code)]
fn default_sigpipe() {
    // SAFETY: called first thing in `main`, before any other thread exists; `signal` with
    // `SIG_DFL` installs no handler code.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

fn main() -> ExitCode {
    default_sigpipe();
    let args = cli::Cli::parse();
    init_tracing(args.global.verbose);
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(cli::run(args)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn init_tracing(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info,bcfl_client=debug",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    // Colours only on a terminal: node logs usually go to files.
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .init();
}
