//! What a transaction sees of the ledger: [`StateContext`], the family's own statement of a
//! Sawtooth transaction context, and [`ContextError`].
//!
//! The methods and their meaning are those of the Sawtooth SDK's `TransactionContext` (state
//! reads and writes by address, receipt data, events); this crate states them itself so that the
//! specification runs anywhere (the validator through `bcfl-tp`, the in-memory ledger of
//! `testing` (feature `test-utils`), an auditor replaying a block) without linking the SDK and its ZMQ
//! transport. `bcfl-tp` adapts the SDK's context to it.

use thiserror::Error;

/// A failed context request.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ContextError {
    /// The validator refused an address: not declared in the header, or malformed. Deterministic,
    /// so the transaction is invalid.
    #[error("authorization error: {0}")]
    Authorization(String),
    /// The context itself failed (transport, protocol); the validator retries the transaction.
    #[error("{0}")]
    Failed(String),
}

/// A transaction's view of global state, as a Sawtooth validator gives it to a processor.
pub trait StateContext {
    /// The entries at `addresses` that hold data (absent addresses are left out).
    fn get_state_entries(
        &self,
        addresses: &[String],
    ) -> Result<Vec<(String, Vec<u8>)>, ContextError>;

    /// Writes `entries` (address, data).
    fn set_state_entries(&self, entries: Vec<(String, Vec<u8>)>) -> Result<(), ContextError>;

    /// Deletes `addresses`; returns the ones that held data.
    fn delete_state_entries(&self, addresses: &[String]) -> Result<Vec<String>, ContextError>;

    /// Appends opaque data to the transaction's receipt.
    fn add_receipt_data(&self, data: &[u8]) -> Result<(), ContextError>;

    /// Emits an event of `event_type` with `attributes` and `data`, published when the block
    /// commits.
    fn add_event(
        &self,
        event_type: String,
        attributes: Vec<(String, String)>,
        data: &[u8],
    ) -> Result<(), ContextError>;
}
