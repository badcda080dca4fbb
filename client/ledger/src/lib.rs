//! The Sawtooth client layer of bcfl, transact style: native types with borrowing getters,
//! consuming builders, protobuf only at the edges. It links neither libtorch nor the Sawtooth SDK
//! (Sawtooth's batch and transaction messages come from `bcfl-protos`), so the ledger and audit
//! commands start in milliseconds; devnet's tests and benchmarks build their batches with it too.
//!
//! - [`keys`]: private and public keys, key files, the [`keys::Signer`].
//! - [`protocol`]: [`protocol::TransactionBuilder`], [`protocol::BatchBuilder`] and the
//!   `BatchList` body of a submission.
//! - [`family`]: transactions of the `bcfl` family, with inputs and outputs from the processor's
//!   access rules.
//! - [`rest`]: the async client of Sawtooth's REST API (submit, wait, state, blocks).
//! - [`state`]: typed decoding of the family's state objects by address.
//! - [`json`]: JSON rendering of the family's protobuf messages with stable field names.

pub mod family;
pub mod json;
pub mod keys;
pub mod protocol;
pub mod rest;
pub mod state;
