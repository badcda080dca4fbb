//! Cross-crate integration tests of bcfl, in one test binary: devnet, `bcfl-tp` and clients as
//! real processes on loopback (started with `bcfl-testkit`).
//!
//! - `compose`: static checks of the docker-compose files;
//! - `python_compat`: the official Sawtooth Python SDK against bcfl;
//! - `netns_ledger`: the peer network with the ledger, on loopback;
//! - `netns`: the peer network across shaped links in network namespaces (`testbed`), skipped
//!   where they cannot be made; `netns_bench`, its figures (ignored by default).
//!
//! ```text
//! cargo test -p bcfl-tests --test it                                       # all
//! cargo test -p bcfl-tests --test it python_compat -- --nocapture          # one module
//! cargo test -p bcfl-tests --test it netns_bench -- --ignored --nocapture  # the figures, as root
//! ```

mod compose;
mod netns;
mod netns_bench;
mod netns_ledger;
mod python_compat;
mod testbed;
