//! Why a transaction failed ([`TxnError`]), and the one place that turns it into the
//! processor's answer ([`ApplyError`], the family's statement of the SDK's error of the same name:
//! `bcfl-tp` maps it one to one).
//!
//! A rule violation, a bad payload, an undeclared address and corrupt state are deterministic: every
//! validator reaches the same answer, so they are `ApplyError::InvalidTransaction` and the batch is
//! rejected. Only a failure of the validator context itself (transport, protocol) is
//! `ApplyError::InternalError`, which makes the validator retry the transaction.
//!
//! This differs on purpose from the SDK's own `From<ContextError> for ApplyError`, which calls
//! every context failure except receipt errors an invalid transaction (a dropped connection would
//! then invalidate a good transaction).

use thiserror::Error;

use crate::payload::PayloadError;
use crate::state::StateError;

/// A processor's answer to a transaction it could not apply, as the validator takes it.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ApplyError {
    /// The transaction is invalid: its batch is rejected, on every validator alike.
    #[error("invalid transaction: {0}")]
    InvalidTransaction(String),
    /// Processing failed for a reason outside the transaction; the validator retries it.
    #[error("internal error: {0}")]
    InternalError(String),
}

/// A failed transaction.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TxnError {
    /// A rule of the family refused the action; the message says which and why.
    #[error("{0}")]
    Rejected(String),
    /// The payload (or the signer key) does not parse.
    #[error("invalid payload: {0}")]
    Payload(#[from] PayloadError),
    /// State access failed.
    #[error(transparent)]
    State(#[from] StateError),
}

impl TxnError {
    /// Whether the validator should retry (a context failure) rather than reject.
    pub fn is_transient(&self) -> bool {
        matches!(self, TxnError::State(StateError::Context(_)))
    }
}

impl From<TxnError> for ApplyError {
    fn from(err: TxnError) -> Self {
        if err.is_transient() {
            ApplyError::InternalError(err.to_string())
        } else {
            ApplyError::InvalidTransaction(err.to_string())
        }
    }
}

/// Result alias of transaction processing.
pub type Result<T, E = TxnError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::ContextError;

    #[test]
    fn only_context_failures_are_internal() {
        let rejected: ApplyError = TxnError::Rejected("no".into()).into();
        assert!(matches!(rejected, ApplyError::InvalidTransaction(m) if m == "no"));
        let auth: ApplyError =
            TxnError::from(StateError::from(ContextError::Authorization("x".into()))).into();
        assert!(matches!(auth, ApplyError::InvalidTransaction(_)));
        let recv: ApplyError = TxnError::from(StateError::from(ContextError::Failed(
            "status unset".into(),
        )))
        .into();
        assert!(matches!(recv, ApplyError::InternalError(m) if m.contains("status unset")));
        let payload: ApplyError = TxnError::Payload(PayloadError::NoAction).into();
        assert!(
            matches!(payload, ApplyError::InvalidTransaction(m) if m.starts_with("invalid payload"))
        );
    }
}
