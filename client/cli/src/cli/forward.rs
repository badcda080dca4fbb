//! The commands `bcfl-train` runs: their stand-ins in `bcfl`'s command line, and the hand-over.
//!
//! `bcfl` declares each such command ([`Forwarded`]) with its one-line help, so that
//! `bcfl --help` lists every command, but parses none of its arguments: when one is asked for,
//! [`exec_train`] replaces this process with `bcfl-train` from the same folder (Unix `exec`),
//! with the same arguments, `argv[0]` included, and environment. Ctrl-C, the exit status and
//! help texts are then exactly those of the command, as if `bcfl` ran it.

use std::ffi::{OsStr, OsString};
use std::path::PathBuf;
use std::process::ExitCode;

use bcfl_cli::TRAIN_BINARY;
use clap::Args;

/// The arguments of a command that `bcfl-train` runs: taken as they are and parsed there (its
/// `--help` included).
#[derive(Debug, Clone, Args)]
#[command(disable_help_flag = true, disable_version_flag = true)]
pub(crate) struct Forwarded {
    /// The command's arguments (see `bcfl COMMAND --help`).
    #[arg(
        num_args = 0..,
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "ARGS"
    )]
    // Never read: the hand-over passes the original command line on.
    #[allow(dead_code)]
    args: Vec<OsString>,
}

/// Top-level commands that run in `bcfl-train`.
const COMMANDS: [&str; 7] = ["train", "eval", "fl", "model", "data", "demo", "llm"];
/// Subcommands that run in `bcfl-train`, under a command `bcfl` runs itself.
const SUBCOMMANDS: [(&str, &str); 5] = [
    ("node", "run"),
    ("anomaly", "bench"),
    ("anomaly", "paper-table"),
    ("anomaly", "plot"),
    ("anomaly", "scorecard"),
];
/// Global options that take a value (`--url URL`).
const VALUED_OPTIONS: [&str; 3] = ["--url", "--key", "--key-dir"];

/// Whether `argv` asks for the help of a command `bcfl-train` runs, which only that binary has,
/// with clap's `help` subcommand: `bcfl [GLOBAL OPTIONS] help COMMAND...`, or `bcfl node help
/// run` and the like (`bcfl fl help simulate` is a command of `bcfl-train` anyway).
pub(crate) fn help_is_forwarded(argv: &[OsString]) -> bool {
    let mut words = Vec::new();
    let mut args = argv.iter().skip(1).map(|arg| arg.as_os_str());
    while let Some(arg) = args.next() {
        if VALUED_OPTIONS
            .iter()
            .any(|option| arg == OsStr::new(option))
        {
            args.next();
        } else if arg == "--" {
            words.extend(args.by_ref());
        } else if !arg.as_encoded_bytes().starts_with(b"-") {
            words.push(arg);
        }
        if words.len() == 3 {
            break;
        }
    }
    match words.as_slice() {
        [help, command, ..] if *help == "help" && COMMANDS.iter().any(|c| command == c) => true,
        [help, command, sub, ..] | [command, help, sub, ..] if *help == "help" => {
            SUBCOMMANDS.iter().any(|(c, s)| command == c && sub == s)
        }
        _ => false,
    }
}

/// `bcfl-train`'s path: next to this executable.
fn train_binary() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()
        .map_err(|e| anyhow::anyhow!("cannot locate the bcfl executable: {e}"))?;
    let dir = exe
        .parent()
        .ok_or_else(|| anyhow::anyhow!("{} has no parent folder", exe.display()))?;
    Ok(dir.join(format!("{TRAIN_BINARY}{}", std::env::consts::EXE_SUFFIX)))
}

/// Replaces this process with `bcfl-train`, passing `argv` (`argv[0]` included, so that usage
/// lines read `bcfl ...`) and the environment; returns only on failure, with exit status 2.
pub(crate) fn exec_train(argv: Vec<OsString>) -> ExitCode {
    let path = match train_binary() {
        Ok(path) => path,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::from(2);
        }
    };
    if !path.is_file() {
        eprintln!(
            "error: this command runs in {TRAIN_BINARY}, which is missing: {} (it needs \
             libtorch; build it with `cargo build -p bcfl-cli --features bcfl-client/train`, \
             after `. scripts/env.sh`)",
            path.display()
        );
        return ExitCode::from(2);
    }
    let mut argv = argv.into_iter();
    let arg0 = argv.next().unwrap_or_else(|| path.as_os_str().to_owned());
    let mut command = std::process::Command::new(&path);
    command.args(argv);
    let error = replace_process(&mut command, arg0);
    eprintln!("error: cannot run {}: {error}", path.display());
    ExitCode::from(2)
}

/// Runs `command` in this process's place; returns why it could not.
#[cfg(unix)]
fn replace_process(command: &mut std::process::Command, arg0: OsString) -> std::io::Error {
    use std::os::unix::process::CommandExt;
    command.arg0(arg0).exec()
}

/// Runs `command` as a child and exits with its status (no `exec` outside Unix).
#[cfg(not(unix))]
fn replace_process(command: &mut std::process::Command, _arg0: OsString) -> std::io::Error {
    match command.status() {
        Ok(status) => std::process::exit(status.code().unwrap_or(2)),
        Err(e) => e,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(args: &[&str]) -> Vec<OsString> {
        std::iter::once("bcfl")
            .chain(args.iter().copied())
            .map(OsString::from)
            .collect()
    }

    #[test]
    fn help_of_a_forwarded_command_is_forwarded() {
        for args in [
            &["help", "demo"][..],
            &["--url", "http://x", "help", "train"],
            &["--key", "help", "help", "fl", "simulate"],
            &["-v", "--json", "help", "node", "run"],
            &["help", "anomaly", "paper-table"],
            &["help", "anomaly", "plot"],
            &["help", "anomaly", "scorecard"],
            &["node", "help", "run"],
            &["anomaly", "help", "bench"],
        ] {
            assert!(help_is_forwarded(&argv(args)), "{args:?}");
        }
        for args in [
            &["help"][..],
            &["help", "audit"],
            &["help", "node"],
            &["help", "node", "serve"],
            &["help", "anomaly"],
            &["node", "help", "serve"],
            &["node", "help"],
            &["demo", "help"],
            &["--key", "help", "audit"],
            &[],
        ] {
            assert!(!help_is_forwarded(&argv(args)), "{args:?}");
        }
    }
}
