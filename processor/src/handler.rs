//! [`BcflHandler`]: the Sawtooth `TransactionHandler` of the `bcfl` family.
//!
//! `apply` parses the signer (from the expanded header) and the payload, runs the rules over
//! [`BcflState`], emits a `bcfl/<action>` event (attributes: `signer` and action-specific ones),
//! and maps failures to `ApplyError` through [`TxnError`]: rule and
//! payload failures are invalid transactions, only context failures are internal errors.
//!
//! It runs on `bcfl-tp`'s own runtime ([`crate::runtime`]) and on the SDK's loop alike:
//!
//! ```no_run
//! use std::sync::{atomic::AtomicBool, Arc};
//! use bcfl_processor::handler::{context_error, BcflHandler};
//! use bcfl_processor::runtime::Processor;
//!
//! let handler = BcflHandler::new();
//! let stop = Arc::new(AtomicBool::new(false));
//! Processor::new("tcp://localhost:4004", &handler, context_error, stop).run()?;
//! # Ok::<(), bcfl_processor::runtime::ProcessorError>(())
//! ```
//!
//! ```no_run
//! use bcfl_processor::handler::BcflHandler;
//! use sawtooth_sdk::processor::TransactionProcessor;
//!
//! let handler = BcflHandler::new();
//! let mut processor = TransactionProcessor::new("tcp://localhost:4004");
//! processor.add_handler(&handler);
//! processor.start();
//! ```

use sawtooth_sdk::messages::processor::TpProcessRequest;
use sawtooth_sdk::processor::handler::{
    ApplyError, ContextError, TransactionContext, TransactionHandler,
};

use crate::error::{Result, TxnError};
use crate::payload::{field, Action, PublicKey};
use crate::rules::{self, attr};
use crate::state::{BcflState, StateError};
use crate::{FAMILY_NAME, FAMILY_VERSION, NAMESPACE};

/// The transaction handler of family `bcfl` version `1.0`.
#[derive(Clone, Copy, Debug, Default)]
pub struct BcflHandler;

impl BcflHandler {
    /// A handler.
    pub fn new() -> Self {
        Self
    }

    /// Processes one request; the typed core of [`TransactionHandler::apply`].
    pub fn process(
        &self,
        request: &TpProcessRequest,
        context: &dyn TransactionContext,
    ) -> Result<()> {
        let header = request.get_header();
        if header.get_family_name() != FAMILY_NAME || header.get_family_version() != FAMILY_VERSION
        {
            return Err(TxnError::Rejected(format!(
                "this processor handles {FAMILY_NAME} {FAMILY_VERSION}, not {} {}",
                header.get_family_name(),
                header.get_family_version()
            )));
        }
        let signer = field(
            "signer_public_key",
            PublicKey::parse(header.get_signer_public_key()),
        )?;
        let action = Action::parse(request.get_payload())?;
        let mut state = BcflState::new(context);
        let mut attributes = vec![attr("signer", &signer)];
        attributes.extend(rules::apply(&mut state, &signer, &action)?);
        state.flush()?;
        state.emit(format!("{FAMILY_NAME}/{}", action.name()), attributes)?;
        Ok(())
    }
}

/// The family's mapping of a context failure that surfaces after `apply` (a pipelined write or
/// event the validator refused; see [`crate::runtime`]): the same as inside `apply`, an
/// authorization failure is an invalid transaction, anything else an internal error.
pub fn context_error(err: ContextError) -> ApplyError {
    TxnError::from(StateError::from(err)).into()
}

impl TransactionHandler for BcflHandler {
    fn family_name(&self) -> String {
        FAMILY_NAME.to_owned()
    }

    fn family_versions(&self) -> Vec<String> {
        vec![FAMILY_VERSION.to_owned()]
    }

    fn namespaces(&self) -> Vec<String> {
        vec![NAMESPACE.to_owned()]
    }

    fn apply(
        &self,
        request: &TpProcessRequest,
        context: &mut dyn TransactionContext,
    ) -> std::result::Result<(), ApplyError> {
        let txn = request.get_signature();
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
