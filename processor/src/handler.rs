//! [`BcflHandler`]: the family's transaction handler.
//!
//! [`BcflHandler::apply`] takes one [`TransactionRequest`] (the header fields it needs and the
//! payload) and a [`StateContext`]: it checks the family and version, parses the signer and the
//! payload, runs the rules over [`BcflState`], emits a `bcfl/<action>` event (attributes:
//! `signer` and action-specific ones), and maps failures to [`ApplyError`] through [`TxnError`]:
//! rule and payload failures are invalid transactions, only context failures are internal errors.
//!
//! The same handler runs everywhere the family's rules run: behind a validator in `bcfl-tp`
//! (which adapts the Sawtooth SDK's request and context to these types), in the in-memory ledger
//! of `testing` (feature `test-utils`), and in `bcfl audit verdict`, which replays a block's transactions.
//!
//! ```
//! use bcfl_processor::context::{ContextError, StateContext};
//! use bcfl_processor::handler::{BcflHandler, TransactionRequest};
//! use bcfl_processor::ApplyError;
//!
//! /// A context with no state behind it: this transaction fails before it reads any.
//! struct Detached;
//! impl StateContext for Detached {
//!     fn get_state_entries(&self, _: &[String]) -> Result<Vec<(String, Vec<u8>)>, ContextError> {
//!         Err(ContextError::Failed("detached".into()))
//!     }
//!     fn set_state_entries(&self, _: Vec<(String, Vec<u8>)>) -> Result<(), ContextError> {
//!         Err(ContextError::Failed("detached".into()))
//!     }
//!     fn delete_state_entries(&self, _: &[String]) -> Result<Vec<String>, ContextError> {
//!         Err(ContextError::Failed("detached".into()))
//!     }
//!     fn add_receipt_data(&self, _: &[u8]) -> Result<(), ContextError> {
//!         Err(ContextError::Failed("detached".into()))
//!     }
//!     fn add_event(&self, _: String, _: Vec<(String, String)>, _: &[u8]) -> Result<(), ContextError> {
//!         Err(ContextError::Failed("detached".into()))
//!     }
//! }
//!
//! let request = TransactionRequest {
//!     family_name: "bcfl",
//!     family_version: "1.0",
//!     signer_public_key: "not a key",
//!     payload: &[],
//!     id: "txn-1",
//! };
//! let err = BcflHandler::new().apply(&request, &Detached).unwrap_err();
//! assert!(matches!(err, ApplyError::InvalidTransaction(m) if m.contains("signer_public_key")));
//! ```

use crate::context::{ContextError, StateContext};
use crate::error::{ApplyError, Result, TxnError};
use crate::payload::{field, Action, PublicKey};
use crate::rules::{self, attr};
use crate::state::{BcflState, StateError};
use crate::{FAMILY_NAME, FAMILY_VERSION};

/// What the handler reads of one transaction: its header's family, version and signer, its
/// payload, and its id (the header signature) for the logs.
#[derive(Clone, Copy, Debug)]
pub struct TransactionRequest<'a> {
    /// The header's family name.
    pub family_name: &'a str,
    /// The header's family version.
    pub family_version: &'a str,
    /// The header's signer: a 66-hex compressed secp256k1 public key.
    pub signer_public_key: &'a str,
    /// The payload bytes.
    pub payload: &'a [u8],
    /// The transaction id (its header signature).
    pub id: &'a str,
}

/// The transaction handler of family `bcfl` version `1.0`.
#[derive(Clone, Copy, Debug, Default)]
pub struct BcflHandler;

impl BcflHandler {
    /// A handler.
    pub fn new() -> Self {
        Self
    }

    /// Processes one transaction; the typed core of [`Self::apply`].
    pub fn process(
        &self,
        request: &TransactionRequest<'_>,
        context: &dyn StateContext,
    ) -> Result<()> {
        if request.family_name != FAMILY_NAME || request.family_version != FAMILY_VERSION {
            return Err(TxnError::Rejected(format!(
                "this processor handles {FAMILY_NAME} {FAMILY_VERSION}, not {} {}",
                request.family_name, request.family_version
            )));
        }
        let signer = field(
            "signer_public_key",
            PublicKey::parse(request.signer_public_key),
        )?;
        let action = Action::parse(request.payload)?;
        let mut state = BcflState::new(context);
        let mut attributes = vec![attr("signer", &signer)];
        attributes.extend(rules::apply(&mut state, &signer, &action)?);
        state.flush()?;
        state.emit(format!("{FAMILY_NAME}/{}", action.name()), attributes)?;
        Ok(())
    }

    /// Applies one transaction and logs the outcome: what a validator asks of a processor.
    pub fn apply(
        &self,
        request: &TransactionRequest<'_>,
        context: &dyn StateContext,
    ) -> std::result::Result<(), ApplyError> {
        let txn = request.id;
        match self.process(request, context) {
            Ok(()) => {
                tracing::info!(txn, "transaction applied");
                Ok(())
            }
            Err(err) => {
                if err.is_transient() {
                    tracing::warn!(txn, %err, "context failure; the validator will retry");
                } else {
                    tracing::info!(txn, %err, "transaction rejected");
                }
                Err(err.into())
            }
        }
    }
}

/// The family's mapping of a context failure that surfaces after `apply` (a pipelined write or
/// event the validator refused; see `bcfl-tp`'s runtime): the same as inside `apply`, an
/// authorization failure is an invalid transaction, anything else an internal error.
pub fn context_error(err: ContextError) -> ApplyError {
    TxnError::from(StateError::from(err)).into()
}
