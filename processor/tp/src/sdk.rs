//! The family's handler as a Sawtooth SDK `TransactionHandler`.
//!
//! [`TpHandler`] reads the header fields [`BcflHandler`] needs from the SDK's `TpProcessRequest`,
//! hands the SDK's context over as a [`StateContext`], and maps the answer back. The mapping is
//! one to one: an invalid transaction stays invalid, an internal error stays internal (and is
//! retried by the validator), a refused address is an authorization error on both sides.
//!
//! It runs on `bcfl-tp`'s own runtime ([`crate::runtime`]) and on the SDK's loop alike:
//!
//! ```no_run
//! use std::sync::{atomic::AtomicBool, Arc};
//! use bcfl_tp::runtime::Processor;
//! use bcfl_tp::sdk::{context_error, TpHandler};
//!
//! let handler = TpHandler::new();
//! let stop = Arc::new(AtomicBool::new(false));
//! Processor::new("tcp://localhost:4004", &handler, context_error, stop).run()?;
//! # Ok::<(), bcfl_tp::runtime::ProcessorError>(())
//! ```
//!
//! ```no_run
//! use bcfl_tp::sdk::TpHandler;
//! use sawtooth_sdk::processor::TransactionProcessor;
//!
//! let handler = TpHandler::new();
//! let mut processor = TransactionProcessor::new("tcp://localhost:4004");
//! processor.add_handler(&handler);
//! processor.start();
//! ```

use bcfl_processor::handler::{BcflHandler, TransactionRequest};
use bcfl_processor::{ApplyError, ContextError, StateContext};
use bcfl_processor::{FAMILY_NAME, FAMILY_VERSION, NAMESPACE};
use sawtooth_sdk::messages::processor::TpProcessRequest;
use sawtooth_sdk::processor::handler as sdk;

/// [`BcflHandler`] as the SDK's `TransactionHandler` of family `bcfl` version `1.0`.
#[derive(Clone, Copy, Debug, Default)]
pub struct TpHandler(BcflHandler);

impl TpHandler {
    /// A handler.
    pub fn new() -> Self {
        Self(BcflHandler::new())
    }
}

impl sdk::TransactionHandler for TpHandler {
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
        context: &mut dyn sdk::TransactionContext,
    ) -> Result<(), sdk::ApplyError> {
        let header = request.get_header();
        let request = TransactionRequest {
            family_name: header.get_family_name(),
            family_version: header.get_family_version(),
            signer_public_key: header.get_signer_public_key(),
            payload: request.get_payload(),
            id: request.get_signature(),
        };
        self.0.apply(&request, &SdkContext(context)).map_err(to_sdk)
    }
}

/// The SDK's context as the family's.
struct SdkContext<'a>(&'a dyn sdk::TransactionContext);

impl StateContext for SdkContext<'_> {
    fn get_state_entries(
        &self,
        addresses: &[String],
    ) -> Result<Vec<(String, Vec<u8>)>, ContextError> {
        self.0.get_state_entries(addresses).map_err(from_sdk)
    }

    fn set_state_entries(&self, entries: Vec<(String, Vec<u8>)>) -> Result<(), ContextError> {
        self.0.set_state_entries(entries).map_err(from_sdk)
    }

    fn delete_state_entries(&self, addresses: &[String]) -> Result<Vec<String>, ContextError> {
        self.0.delete_state_entries(addresses).map_err(from_sdk)
    }

    fn add_receipt_data(&self, data: &[u8]) -> Result<(), ContextError> {
        self.0.add_receipt_data(data).map_err(from_sdk)
    }

    fn add_event(
        &self,
        event_type: String,
        attributes: Vec<(String, String)>,
        data: &[u8],
    ) -> Result<(), ContextError> {
        self.0
            .add_event(event_type, attributes, data)
            .map_err(from_sdk)
    }
}

/// The SDK's context failure as the family's: a refused address is an authorization error,
/// anything else (transport, protocol, a missing reply field) a failure of the context.
fn from_sdk(err: sdk::ContextError) -> ContextError {
    match err {
        sdk::ContextError::AuthorizationError(msg) => ContextError::Authorization(msg),
        other => ContextError::Failed(other.to_string()),
    }
}

/// The family's answer as the SDK's.
fn to_sdk(err: ApplyError) -> sdk::ApplyError {
    match err {
        ApplyError::InvalidTransaction(msg) => sdk::ApplyError::InvalidTransaction(msg),
        ApplyError::InternalError(msg) => sdk::ApplyError::InternalError(msg),
    }
}

/// The family's mapping ([`bcfl_processor::handler::context_error`]) of a context failure that
/// surfaces after `apply` (a pipelined write or event the validator refused), for
/// [`crate::runtime::Processor`].
pub fn context_error(err: sdk::ContextError) -> sdk::ApplyError {
    to_sdk(bcfl_processor::handler::context_error(from_sdk(err)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_map_one_to_one() {
        let auth = context_error(sdk::ContextError::AuthorizationError("x".into()));
        assert!(matches!(auth, sdk::ApplyError::InvalidTransaction(_)));
        let lost = context_error(sdk::ContextError::ResponseAttributeError("gone".into()));
        assert!(matches!(lost, sdk::ApplyError::InternalError(m) if m.contains("gone")));
        assert!(matches!(
            to_sdk(ApplyError::InvalidTransaction("no".into())),
            sdk::ApplyError::InvalidTransaction(m) if m == "no"
        ));
    }
}
