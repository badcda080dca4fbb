//! The federated round, written once: roles driven by ledger state, over a
//! [`Ledger`](ledger::Ledger).
//!
//! A round is a protocol between roles, each a state machine whose only inputs are the family
//! state on chain and its own blob store, so that any node can crash and resume:
//!
//! | role | who | does |
//! | --- | --- | --- |
//! | coordinator ([`coordinator`]) | an admin key | opens rounds (parent model, aggregator, mode), keeps the deadlines: evaluates or abandons a round whose members fell silent, closes a round whose aggregator did |
//! | member ([`member`]) | every member | trains from the round's parent model (checked against the chain), commits its update's hash and statistics, serves its blobs, probes its peers and reports the links, fetches and checks each global model |
//! | aggregator ([`member`]) | the member the round names | evaluates the round (the processor computes the anomaly verdict), fetches the accepted updates along Bellman-Ford routes without the excluded members, checks each against its commitment, aggregates with the consortium's rule, commits the aggregate, distributes it along the shortest-path tree, closes the round |
//! | auditor ([`replay`]) | anyone | recomputes verdicts (`bcfl audit verdict`) and aggregates (`bcfl audit replay`, with the aggregator's own [`replay::AggregatePlan`]) from the ledger and the blobs it names |
//!
//! What each decision depends on is in [`schedule`] (pure functions of the family state).
//! Modes are recorded on chain per round: **serverless** (the centre of the measured bandwidth
//! graph aggregates, transfers follow routes) or **server** (a fixed aggregator, star
//! topology); **synchronous** (the aggregator waits for every member, or the deadline and the
//! quorum) or **buffered asynchronous** (it aggregates as soon as K updates are in; an update
//! trained from an older global model counts in a later round, rebased onto that round's
//! parent and weighted by [`schedule::staleness_weight_ppm`]; the processor refuses it past
//! the round's staleness bound). Each round also records which privacy guarantees applied
//! (none in family version 1.0; the field is there for differential privacy and secure
//! aggregation later).
//!
//! The ledger is either the REST API of a Sawtooth network or `bcfl-devnet`
//! ([`rest::RestLedger`]) or an in-memory ledger running the processor's real rules
//! ([`memory::MemoryLedger`]). `bcfl node run` ([`node`]) runs a member and/or the coordinator
//! as one long-running process; `bcfl demo` starts one such process per member.
//!
//! ```
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use bcfl_ledger::keys::{PrivateKey, Signer};
//! use bcfl_client::round::coordinator::{Coordinator, CoordinatorConfig};
//! use bcfl_client::round::ledger::Ledger;
//! use bcfl_client::round::memory::MemoryLedger;
//!
//! let ledger = Arc::new(MemoryLedger::new());
//! let admin = Signer::new(PrivateKey::random());
//! let mut coordinator = Coordinator::new(ledger.clone(), admin, CoordinatorConfig::new(3));
//! // Without a consortium on chain there is nothing to open yet.
//! let state = ledger.state().await?;
//! coordinator.tick(&state).await?;
//! assert!(ledger.state().await?.rounds.is_empty());
//! # Ok(()) }
//! ```

pub mod coordinator;
#[cfg(feature = "train")]
pub mod decoder;
pub(crate) mod error;
pub mod ledger;
#[cfg(feature = "train")]
pub mod member;
pub mod memory;
#[cfg(feature = "train")]
pub mod model;
#[cfg(feature = "train")]
pub mod node;
pub mod payload;
pub mod replay;
pub mod report;
pub mod rest;
pub mod schedule;
#[cfg(feature = "train")]
pub mod simulation;
pub mod summary;

pub use error::{Error, Result};
