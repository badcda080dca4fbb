//! A real ledger on loopback: [`Devnet`] is the `bcfl-devnet` binary on free ports, [`Ledger`]
//! adds the `bcfl-tp` processor registered with it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::{Binary, Spawned};

/// How long the devnet may take to print its endpoints, and the processor to register.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// The `bcfl-devnet` binary (`run`), its two endpoints bound to port 0 on 127.0.0.1 and read
/// from what it prints. Killed when dropped.
///
/// Everything lives in the directory given to [`Devnet::start`]: the chain in `ledger/`, the
/// output in `bcfl-devnet.log`.
#[derive(Debug)]
pub struct Devnet {
    process: Spawned,
    data_dir: PathBuf,
    component: String,
    rest_url: String,
}

impl Devnet {
    /// Starts `bcfl-devnet run` with its data in `dir/ledger` and `extra_args` after the
    /// endpoint options, and waits until it prints its endpoints (its REST API listens by then).
    ///
    /// Starting it again on the same `dir` reopens the same chain, on new ports.
    pub fn start(dir: &Path, extra_args: &[&str]) -> Self {
        let data_dir = dir.join("ledger");
        let mut command = Command::new(Binary::BcflDevnet.path());
        command
            .arg("run")
            .arg("--data-dir")
            .arg(&data_dir)
            .args([
                "--bind-component",
                "tcp://127.0.0.1:0",
                "--bind-rest",
                "127.0.0.1:0",
            ])
            .args(extra_args)
            .env("NO_COLOR", "1");
        let mut process = Spawned::start("bcfl-devnet", command, dir);
        // It prints `component: ...`, then `rest: ...`, each line flushed.
        let rest_url = process
            .wait_for_line("rest: ", START_TIMEOUT)
            .trim_start_matches("rest: ")
            .trim()
            .to_owned();
        let component = process
            .output()
            .lines()
            .find_map(|line| line.strip_prefix("component: "))
            .unwrap_or_else(|| {
                panic!(
                    "bcfl-devnet printed no component endpoint\n{}",
                    process.log_text()
                )
            })
            .trim()
            .to_owned();
        Self {
            process,
            data_dir,
            component,
            rest_url,
        }
    }

    /// The ZMQ endpoint processors connect to, `tcp://127.0.0.1:PORT`.
    pub fn component(&self) -> &str {
        &self.component
    }

    /// The REST API's base URL, `http://127.0.0.1:PORT` (`https://` with `--tls-cert`).
    pub fn rest_url(&self) -> &str {
        &self.rest_url
    }

    /// The REST API's address, `127.0.0.1:PORT`.
    pub fn rest_addr(&self) -> &str {
        self.rest_url
            .trim_start_matches("https://")
            .trim_start_matches("http://")
    }

    /// The chain's directory, `<dir>/ledger`.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The process: to kill it, check that it runs, or read its log.
    pub fn process(&mut self) -> &mut Spawned {
        &mut self.process
    }

    /// The devnet's log (stdout and stderr), for failure messages.
    pub fn log_text(&self) -> String {
        self.process.log_text()
    }
}

/// A running ledger: a [`Devnet`] and `bcfl-tp` connected to it and registered. Both are killed
/// when dropped.
///
/// The chain is in `dir/ledger`, the processes' output in `dir/bcfl-devnet.log` and
/// `dir/bcfl-tp.log`.
#[derive(Debug)]
pub struct Ledger {
    // Dropped first: the processor before the ledger it talks to.
    tp: Spawned,
    devnet: Devnet,
}

impl Ledger {
    /// Starts the devnet in `dir` (see [`Devnet::start`]) and `bcfl-tp -v` against it, and
    /// waits until the processor says it is registered.
    pub fn start(dir: &Path) -> Self {
        Self::start_with(dir, &[])
    }

    /// [`Ledger::start`] with more `bcfl-devnet` arguments (e.g. `--tls-cert`, `--tls-key`:
    /// the URL is then `https://`).
    pub fn start_with(dir: &Path, devnet_args: &[&str]) -> Self {
        let devnet = Devnet::start(dir, devnet_args);
        let mut command = Command::new(Binary::BcflTp.path());
        command
            .args(["--connect", devnet.component(), "-v"])
            // `-v` logs the registration at info level, which RUST_LOG could hide.
            .env_remove("RUST_LOG")
            .env("NO_COLOR", "1");
        let mut tp = Spawned::start("bcfl-tp", command, dir);
        tp.wait_for_line("registered", START_TIMEOUT);
        Self { tp, devnet }
    }

    /// The REST API's base URL, `http://127.0.0.1:PORT`.
    pub fn url(&self) -> &str {
        self.devnet.rest_url()
    }

    /// The devnet.
    pub fn devnet(&mut self) -> &mut Devnet {
        &mut self.devnet
    }

    /// The `bcfl-tp` process.
    pub fn processor(&mut self) -> &mut Spawned {
        &mut self.tp
    }

    /// Both logs, for failure messages.
    pub fn log_text(&self) -> String {
        format!("{}\n{}", self.devnet.log_text(), self.tp.log_text())
    }
}
