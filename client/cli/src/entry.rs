//! How both binaries start and end: SIGPIPE, logging on stderr, a current-thread async runtime,
//! and the exit status.
//!
//! Exit status: what the command returns (0, or 1 when `audit verify` finds a mismatch), 2 on
//! any error, printed on stderr with its causes. A closed output pipe ends the program quietly
//! (SIGPIPE), as for any Unix filter.

use std::future::Future;
use std::process::ExitCode;

/// Restores the default action of SIGPIPE (terminate quietly), which Rust programs ignore, so
/// that `bcfl --json audit rounds | head -1` ends like any Unix filter instead of panicking in
/// `println!` on the closed pipe.
///
/// Call it first thing in `main`, before any other thread exists. The setting survives the
/// `exec` of `bcfl-train`.
#[allow(unsafe_code)]
pub fn default_sigpipe() {
    // SAFETY: called first thing in `main`, before any other thread exists; `signal` with
    // `SIG_DFL` installs no handler code.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// Logging on stderr: `RUST_LOG` when set, else by `-v` count (warnings, then bcfl's debug
/// messages, then everything's).
pub fn init_tracing(verbose: u8) {
    init_tracing_from(verbose, "warn");
}

/// [`init_tracing`] with `quiet` as the filter without `-v` (a long-running node logs each
/// phase at `info`).
pub fn init_tracing_from(verbose: u8, quiet: &str) {
    let default = match verbose {
        0 => quiet,
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

/// Starts logging, runs `command` on a current-thread runtime and turns its outcome into the
/// exit status: its own code, or 2 after printing the error.
pub fn run<F>(verbose: u8, command: F) -> ExitCode
where
    F: Future<Output = anyhow::Result<ExitCode>>,
{
    run_from(verbose, "warn", command)
}

/// [`run`] with `quiet` as the log filter without `-v` (see [`init_tracing_from`]).
pub fn run_from<F>(verbose: u8, quiet: &str, command: F) -> ExitCode
where
    F: Future<Output = anyhow::Result<ExitCode>>,
{
    init_tracing_from(verbose, quiet);
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
    match runtime.block_on(command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
