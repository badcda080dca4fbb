//! `bcfl` hands the commands that need libtorch over to `bcfl-train`: arguments, environment,
//! help texts and exit statuses come through as if `bcfl` ran them.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};

fn run(program: &Path, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .env_remove("BCFL_URL")
        .env_remove("BCFL_KEY")
        .env_remove("BCFL_KEY_DIR")
        .output()
        .unwrap_or_else(|e| panic!("running {} {args:?}: {e}", program.display()))
}

/// Stdout of a run that must succeed.
fn ok(program: &Path, args: &[&str]) -> String {
    let out = run(program, args);
    assert!(
        out.status.success(),
        "{} {args:?}: {:?}\n{}",
        program.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The `Commands:` section of a help text: name to one-line help.
fn commands(help: &str) -> BTreeMap<String, String> {
    help.lines()
        .skip_while(|line| *line != "Commands:")
        .skip(1)
        .take_while(|line| !line.is_empty())
        .filter_map(|line| {
            let (name, about) = line.trim().split_once(' ')?;
            Some((name.to_owned(), about.trim().to_owned()))
        })
        .filter(|(name, _)| name != "help")
        .collect()
}

#[test]
fn forwarded_commands_print_their_own_help() {
    let Some(_) = super::bcfl_train("forwarded_commands_print_their_own_help") else {
        return;
    };
    let bcfl = super::bcfl();
    for (args, usage) in [
        (
            &["model", "init", "--help"][..],
            "Usage: bcfl model init [OPTIONS]",
        ),
        (
            &["data", "split", "--help"],
            "Usage: bcfl data split [OPTIONS]",
        ),
        (&["--json", "demo", "-h"], "Usage: bcfl demo [OPTIONS]"),
        (&["help", "demo"], "Usage: bcfl demo [OPTIONS]"),
        (&["node", "run", "--help"], "Usage: bcfl node run [OPTIONS]"),
        (
            &["anomaly", "bench", "--help"],
            "Usage: bcfl anomaly bench [OPTIONS]",
        ),
        (&["fl", "--help"], "Usage: bcfl fl [OPTIONS] <COMMAND>"),
    ] {
        let help = ok(bcfl, args);
        assert!(help.contains(usage), "bcfl {args:?}:\n{help}");
    }
}

#[test]
fn arguments_environment_and_exit_status_pass_through() {
    let Some(_) = super::bcfl_train("arguments_environment_and_exit_status_pass_through") else {
        return;
    };
    let help = String::from_utf8(
        Command::new(super::bcfl())
            .args(["data", "split", "--help"])
            .env("BCFL_DATA_DIR", "/nowhere/bcfl-forwarding-test")
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    assert!(
        help.contains("[env: BCFL_DATA_DIR=/nowhere/bcfl-forwarding-test]"),
        "{help}"
    );
    let out = run(super::bcfl(), &["train", "--no-such-flag"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("'--no-such-flag'"), "{stderr}");
    assert!(stderr.contains("Usage: bcfl train"), "{stderr}");
}

#[test]
fn bcfl_lists_every_command_of_bcfl_train_with_its_help() {
    let Some(train) = super::bcfl_train("bcfl_lists_every_command_of_bcfl_train_with_its_help")
    else {
        return;
    };
    let bcfl = super::bcfl();
    let listed = commands(&ok(bcfl, &["--help"]));
    let trained = commands(&ok(train, &["--help"]));
    assert!(trained.contains_key("demo"), "{trained:?}");
    for (name, about) in &trained {
        match name.as_str() {
            // Commands that `bcfl` runs itself, with subcommands in bcfl-train.
            "node" | "anomaly" => {
                let listed = commands(&ok(bcfl, &[name, "--help"]));
                for (sub, about) in commands(&ok(train, &[name, "--help"])) {
                    assert_eq!(listed.get(&sub), Some(&about), "bcfl {name} {sub}");
                }
            }
            _ => assert_eq!(listed.get(name), Some(about), "bcfl {name}"),
        }
    }
}

#[test]
fn a_missing_bcfl_train_is_named_with_how_to_build_it() {
    let dir = tempfile::tempdir().unwrap();
    let alone = dir.path().join("bcfl");
    std::fs::copy(super::bcfl(), &alone).unwrap();
    let out = run(&alone, &["demo", "--tiny"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let missing = dir.path().join("bcfl-train");
    assert!(stderr.contains(&missing.display().to_string()), "{stderr}");
    assert!(stderr.contains("cargo build"), "{stderr}");
    // The commands of `bcfl` itself do not need it.
    assert!(run(&alone, &["audit", "--help"]).status.success());
}
