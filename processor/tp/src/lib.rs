//! `bcfl-tp`: the `bcfl` family's transaction handler behind a Sawtooth validator.
//!
//! The family itself (addresses, payloads, rules, state, the handler) is the `bcfl-processor`
//! crate, which links no transport. This crate adds what talking to a validator takes:
//!
//! - [`sdk`]: the handler as a Sawtooth SDK `TransactionHandler` ([`sdk::TpHandler`]), the SDK's
//!   context seen as the family's [`bcfl_processor::StateContext`], and the one mapping of errors
//!   between the two;
//! - [`runtime`]: the component protocol on one ZMQ socket, in the thread that applies the
//!   transactions (faster than the SDK's own loop; see its docs);
//! - the `bcfl-tp` binary (`src/main.rs`), which connects them to a validator's component
//!   endpoint.

pub mod runtime;
pub mod sdk;
