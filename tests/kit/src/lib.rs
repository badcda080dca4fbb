//! Test kit of the bcfl workspace: the real `bcfl-devnet`, `bcfl-tp` and `bcfl` binaries as
//! child processes on loopback, for integration tests.
//!
//! Every crate of the workspace has one integration-test binary (`<crate>/tests/it/main.rs`) and
//! takes this crate as a dev-dependency. It links none of the workspace's crates: it runs their
//! binaries, so the processor's own tests can use it too.
//!
//! # Overview
//!
//! - [`Binary`] finds a workspace binary in the target directory the test runs from and builds
//!   it with cargo when it is missing, so `cargo test -p <one package>` works on its own.
//! - [`Spawned`] runs any [`Command`](std::process::Command) with its output in a log file:
//!   [`Spawned::wait_for_line`] waits for a line of that log, [`Spawned::kill`] is `kill -9`,
//!   [`Spawned::restart`] starts the same command again, and dropping it kills and reaps the
//!   process, also when the test panics. [`ChildGuard`] does the last part for a
//!   [`Child`](std::process::Child) started elsewhere.
//! - [`Devnet`] starts `bcfl-devnet` on free loopback ports and reads the chosen ports from its
//!   output; [`Ledger`] adds `bcfl-tp` and waits until the processor is registered.
//! - [`Cli`] runs `bcfl` with `--url` and `--key-dir`, checks exit statuses and parses `--json`
//!   output.
//! - [`ConsortiumSetup`] is the set-up most ledger tests start from: an admin key, a consortium,
//!   members registered.
//! - [`free_port`] hands out a loopback port that was free a moment ago.
//! - [`SawtoothNetwork`] is a real Sawtooth 1.2.6 network (devmode, or PBFT with several
//!   validators) started by `scripts/sawtooth-net.py`; [`AnyLedger`] is either ledger, and
//!   [`on_each_ledger!`] writes a test once for both.
//! - [`Browser`] is headless Chromium driven over the DevTools protocol, for the pages bcfl
//!   serves (`bcfl audit serve`).
//!
//! # Example
//!
//! A ledger with two registered members, and a member's node as a process of the test:
//!
//! ```no_run
//! use std::time::Duration;
//!
//! use bcfl_testkit::{free_port, Cli, ConsortiumSetup, Ledger, Spawned};
//!
//! let dir = tempfile::tempdir().unwrap();
//! let ledger = Ledger::start(dir.path());
//! let cli = Cli::with_temp_key_dir(ledger.url());
//! let port = free_port();
//! ConsortiumSetup::new()
//!     .with_init_args(&["--min-participants", "2"])
//!     .with_member("alice", &format!("http://127.0.0.1:{port}"))
//!     .with_member("bob", "http://127.0.0.1:9")
//!     .run(&cli);
//! let members = cli.json("admin", &["audit", "members"]);
//! assert_eq!(members.as_array().unwrap().len(), 2);
//!
//! let mut serve = cli.command("alice");
//! serve.args(["node", "serve", "--listen", &format!("127.0.0.1:{port}")]);
//! serve.arg("--store").arg(dir.path().join("store-alice"));
//! let mut node = Spawned::start("alice", serve, dir.path());
//! node.wait_for_line("\"listening\"", Duration::from_secs(10));
//! node.kill(); // kill -9
//! node.restart(); // the same command again, appending to the same log
//! ```
//!
//! # Binaries and features
//!
//! A binary that is missing is built with `cargo build -p <package> --bin <name>`, the
//! package's default features and those [`Binary::features`] lists (bcfl-client's `train` for
//! `bcfl-train`); one that exists is used as it is. `bcfl` runs the commands that train by
//! handing them over to `bcfl-train` next to it: a test of such a command asks for
//! [`Binary::BcflTrain`] too. `scripts/test.sh` builds every binary first (`cargo build
//! --workspace --bins --features bcfl-client/train`).

mod binary;
mod browser;
mod cli;
mod consortium;
mod guard;
mod ledger;
mod net;
mod sawtooth;
mod spawned;

pub use binary::{profile_dir, Binary};
pub use browser::Browser;
pub use cli::Cli;
pub use consortium::ConsortiumSetup;
pub use guard::ChildGuard;
pub use ledger::{Devnet, Ledger};
pub use net::free_port;
pub use sawtooth::{AnyLedger, Component, Consensus, LedgerKind, SawtoothNetwork};
pub use spawned::Spawned;
