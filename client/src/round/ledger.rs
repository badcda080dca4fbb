//! The [`Ledger`] the roles run over, and its errors.
//!
//! A role reads the whole family state ([`FamilyState`]), decides, and submits one action at a
//! time, each waited for until it commits. Two implementations: [`RestLedger`] (any Sawtooth
//! REST API: a real validator or `bcfl-devnet`, several URLs used in turn) and [`MemoryLedger`]
//! (the processor's real rules over an in-memory state, for fast tests and large simulations).
//!
//! [`RestLedger`]: super::rest::RestLedger
//! [`MemoryLedger`]: super::memory::MemoryLedger

use std::future::Future;
use std::time::Duration;

use bcfl_protos::bcfl as pb;

use bcfl_ledger::keys::Signer;
use bcfl_ledger::state::FamilyState;

/// A failed ledger operation.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    /// The processor refused the transaction (`InvalidTransaction`): retrying the same action
    /// cannot help.
    #[error("{action} was rejected: {reason}")]
    Rejected {
        /// The action, e.g. `EvaluateRound 3`.
        action: String,
        /// The processor's message.
        reason: String,
    },
    /// No ledger answered, or the batch did not commit in time: the same action may succeed
    /// later.
    #[error("{action}: {reason}")]
    Unavailable {
        /// What was attempted.
        action: String,
        /// Why it failed.
        reason: String,
    },
    /// The state does not decode, or the payload cannot be built.
    #[error("{0}")]
    Invalid(String),
}

impl LedgerError {
    /// Whether the processor refused the action (as opposed to a transport failure).
    pub fn is_rejection(&self) -> bool {
        matches!(self, Self::Rejected { .. })
    }
}

/// A ledger of the `bcfl` family, as the round roles see it.
pub trait Ledger: Send + Sync + 'static {
    /// The whole family state at the chain head.
    fn state(&self) -> impl Future<Output = Result<FamilyState, LedgerError>> + Send;

    /// Signs `payload` with `signer`, submits it and waits until it commits; `action` names it
    /// in logs and errors.
    fn submit(
        &self,
        signer: &Signer,
        payload: pb::BcflPayload,
        action: &str,
    ) -> impl Future<Output = Result<(), LedgerError>> + Send;

    /// Returns once the chain head may have moved past `head`, or after `timeout` (polling is
    /// always a correct implementation: callers re-read the state either way).
    fn changed(&self, head: &str, timeout: Duration) -> impl Future<Output = ()> + Send;

    /// Where the ledger is, for logs and reports.
    fn describe(&self) -> String;
}
