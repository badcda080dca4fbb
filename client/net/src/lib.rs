//! Networking between members: blob serving, bandwidth probes, verified relayed transfers, and
//! transfer planning.
//!
//! - [`activation`]: the listening socket a service manager (or `bcfl demo`) passed in,
//!   which a blob server takes instead of binding its own.
//! - [`auth`]: signed requests: the [`PeerClient`](auth::PeerClient) every node request goes
//!   through, and the [`Authenticator`](auth::Authenticator) that lets only members' signed
//!   requests into a blob server.
//! - [`manifest`]: blob ids (SHA-256) and per-chunk manifests checked while a transfer arrives.
//! - [`blob`]: the content-addressed blob store (atomic, verified inserts).
//! - [`server`]: the member's HTTP server (blobs with ranges, manifests, probes, relays, pulls).
//! - [`transfer`]: cut-through transfers along an upstream chain of relays.
//! - [`probe`]: bandwidth and RTT probes and their `ReportBandwidth` sweep.
//! - [`registry`]: the members a node may contact (node id -> registered endpoint) and the
//!   upstream chains it accepts (no loops, bounded depth).
//! - [`route`]: routed fetches with failover, and distribution along the route tree.
//! - [`node`]: what `bcfl node serve|probe|fetch|distribute` run, from plain requests.
//! - [`exclusion`]: the members a round's on-chain verdict excluded, removed from routing.
//! - [`edges`]: the CSV edge-list format (`from,to,bytes_per_sec`) with line-numbered errors.
//! - [`plan`]: what `bcfl net plan` runs: routes a transfer over the measured graph and
//!   predicts its time under the store-and-forward and pipelined models (see
//!   [`bcfl_processor::graph`], the maths shared with the processor).
//!
//! The command line over this library (`bcfl net`, `bcfl node`) is in the `bcfl-cli` package:
//! it parses its arguments into the requests of [`plan`] and [`node`]. Errors are [`NetError`].
//!
//! # Features
//!
//! | feature | what it adds |
//! | --- | --- |
//! | `clap` | `clap::ValueEnum` for [`route::DistributionMode`], for the command line |

pub mod activation;
pub mod auth;
pub mod blob;
pub mod edges;
mod error;
pub mod exclusion;
pub mod manifest;
pub mod node;
pub mod plan;
pub mod probe;
pub mod registry;
pub mod route;
pub mod server;
pub mod transfer;

/// TLS for blob servers and their clients ([`bcfl_tls`]).
pub use bcfl_tls as tls;
pub use error::{NetError, Result};

#[cfg(test)]
mod auth_tests;
#[cfg(test)]
mod hardening_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod transfer_tests;
