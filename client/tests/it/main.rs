//! Integration tests of `bcfl-client`, in one test binary (one module per subject).
//!
//! The end-to-end tests run the `bcfl` binary (package `bcfl-cli`, and its `bcfl-train` for the
//! commands that train) against a real `bcfl-devnet` ledger with the real `bcfl-tp` processor,
//! started as child processes on free loopback ports by `bcfl-testkit`, which finds the other
//! packages' binaries in the target directory and builds them when they are missing (build them
//! first after a change: `cargo build --workspace --bins --features bcfl-client/train`). The
//! modules behind the `train` feature need libtorch:
//!
//! ```text
//! cargo test -p bcfl-client --features train --test it             # all
//! cargo test -p bcfl-client --features train --test it cli_rules    # one module
//! ```

mod anomaly_cli;
mod audit_page;
mod audit_replay;
mod audit_serve;
mod blob_auth;
mod cli_devnet;
mod cli_pipe;
mod cli_rules;
mod demo_devnet;
mod ledgers_agree;
mod llm_reference;
mod net_plan_cli;
mod node_rounds;
mod poisoned_round;
mod sawtooth_pbft;
mod sealed_cli;
mod tch_smoke;
mod tls_cli;
mod train_engine;
mod train_minilm;
