//! The client's ledger layer, transact style: native types with borrowing getters, consuming
//! builders, protobuf only at the edges.
//!
//! - [`keys`]: private and public keys, key files, the [`keys::Signer`].
//! - [`protocol`]: [`protocol::TransactionBuilder`], [`protocol::BatchBuilder`] and the
//!   `BatchList` body of a submission.
//! - [`family`]: transactions of the `bcfl` family, with inputs and outputs from the processor's
//!   access rules.
//! - [`rest`]: the async client of Sawtooth's REST API (submit, wait, state, blocks).
//! - [`state`]: typed decoding of the family's state objects by address.

pub mod family;
pub mod keys;
pub mod protocol;
pub mod rest;
pub mod state;
