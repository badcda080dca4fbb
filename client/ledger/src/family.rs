//! Transactions of the `bcfl` family.
//!
//! A [`BcflTransaction`] wraps one [`BcflPayload`] action. Building it runs the processor's own
//! payload validation (`bcfl_processor::access::declared_addresses` parses the action with the
//! same rules `bcfl-tp` applies), so a malformed action fails here, before signing, with the
//! processor's message. The header's inputs and outputs are exactly what the processor declares
//! for the action and signer, and the nonce is random unless one is given.
//!
//! ```
//! use bcfl_ledger::family::BcflTransaction;
//! use bcfl_ledger::keys::{PrivateKey, Signer};
//! use bcfl_protos::bcfl::{BcflPayload, CloseRound};
//!
//! let signer = Signer::new(PrivateKey::random());
//! let mut payload = BcflPayload::new();
//! payload.set_close_round(CloseRound { round: 1, ..Default::default() });
//! let batches = BcflTransaction::new(payload).into_batch_list(&signer).unwrap();
//! assert_eq!(batches.batches()[0].transactions()[0].header().family_name(), "bcfl");
//! ```

use bcfl_processor::{access, FAMILY_NAME, FAMILY_VERSION};
use bcfl_protos::bcfl::BcflPayload;
use protobuf::Message as _;

use super::keys::Signer;
use super::protocol::{BatchBuilder, BatchList, ProtocolError, Transaction, TransactionBuilder};

/// Why a `bcfl` transaction could not be built.
#[derive(Debug, thiserror::Error)]
pub enum FamilyError {
    /// The processor would reject the action (its message).
    #[error("invalid bcfl action: {0}")]
    Payload(bcfl_processor::PayloadError),
    /// The transaction or batch could not be built.
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
}

// Not `#[from]`: the message already carries the processor's text, and a source would repeat it
// in error chains.
impl From<bcfl_processor::PayloadError> for FamilyError {
    fn from(e: bcfl_processor::PayloadError) -> Self {
        Self::Payload(e)
    }
}

/// A `bcfl` transaction under construction: one action, optional nonce and dependencies.
#[derive(Debug, Clone)]
#[must_use]
pub struct BcflTransaction {
    payload: BcflPayload,
    nonce: Option<String>,
    dependencies: Vec<String>,
}

impl BcflTransaction {
    /// A transaction carrying `payload`.
    pub fn new(payload: BcflPayload) -> Self {
        Self {
            payload,
            nonce: None,
            dependencies: Vec::new(),
        }
    }

    /// Uses a fixed nonce instead of a random one.
    pub fn with_nonce(mut self, nonce: impl Into<String>) -> Self {
        self.nonce = Some(nonce.into());
        self
    }

    /// Transactions that must commit first.
    pub fn with_dependencies(mut self, dependencies: Vec<String>) -> Self {
        self.dependencies = dependencies;
        self
    }

    /// The action.
    pub fn payload(&self) -> &BcflPayload {
        &self.payload
    }

    /// Validates the action, declares its addresses, and signs.
    pub fn build(self, signer: &Signer) -> Result<Transaction, FamilyError> {
        let (inputs, outputs) =
            access::declared_addresses(&self.payload, signer.public_key().as_hex())?;
        let bytes = self.payload.write_to_bytes().map_err(ProtocolError::from)?;
        let mut builder = TransactionBuilder::new()
            .with_family_name(FAMILY_NAME)
            .with_family_version(FAMILY_VERSION)
            .with_inputs(inputs)
            .with_outputs(outputs)
            .with_dependencies(self.dependencies)
            .with_payload(bytes);
        if let Some(nonce) = self.nonce {
            builder = builder.with_nonce(nonce);
        }
        Ok(builder.build(signer)?)
    }

    /// Builds the transaction in a batch of its own, signed by the same key, ready to submit.
    pub fn into_batch_list(self, signer: &Signer) -> Result<BatchList, FamilyError> {
        let txn = self.build(signer)?;
        let batch = BatchBuilder::new().with_transaction(txn).build(signer)?;
        Ok(BatchList::new(vec![batch]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::PrivateKey;
    use bcfl_processor::address;
    use bcfl_protos::bcfl::{CloseRound, CommitUpdate, RegisterMember};

    #[test]
    fn headers_declare_the_processor_addresses() {
        let signer = Signer::new(PrivateKey::random());
        let member = Signer::new(PrivateKey::random());
        let mut payload = BcflPayload::new();
        payload.set_register_member(RegisterMember {
            public_key: member.public_key().as_hex().to_owned(),
            name: "hospital-a".into(),
            endpoint: "http://127.0.0.1:9000".into(),
            ..Default::default()
        });
        let txn = BcflTransaction::new(payload.clone())
            .build(&signer)
            .unwrap();
        let (inputs, outputs) =
            access::declared_addresses(&payload, signer.public_key().as_hex()).unwrap();
        assert_eq!(txn.header().inputs(), inputs.as_slice());
        assert_eq!(txn.header().outputs(), outputs.as_slice());
        assert!(txn
            .header()
            .outputs()
            .contains(&address::member_address(member.public_key().as_hex())));
        assert_eq!(txn.header().family_name(), FAMILY_NAME);
        assert_eq!(txn.header().family_version(), FAMILY_VERSION);
        assert_eq!(
            BcflPayload::parse_from_bytes(txn.payload()).unwrap(),
            payload
        );
        assert!(txn.verify());
    }

    #[test]
    fn invalid_actions_fail_before_signing() {
        let signer = Signer::new(PrivateKey::random());
        let mut payload = BcflPayload::new();
        payload.set_commit_update(CommitUpdate {
            round: 1,
            update_sha256: "not a hash".into(),
            ..Default::default()
        });
        let err = BcflTransaction::new(payload).build(&signer).unwrap_err();
        assert!(matches!(err, FamilyError::Payload(_)), "{err}");
        assert!(BcflTransaction::new(BcflPayload::new())
            .build(&signer)
            .is_err());
    }

    #[test]
    fn nonces_are_random_unless_fixed() {
        let signer = Signer::new(PrivateKey::random());
        let mut payload = BcflPayload::new();
        payload.set_close_round(CloseRound {
            round: 3,
            ..Default::default()
        });
        let a = BcflTransaction::new(payload.clone())
            .build(&signer)
            .unwrap();
        let b = BcflTransaction::new(payload.clone())
            .build(&signer)
            .unwrap();
        assert_ne!(a.header().nonce(), b.header().nonce());
        let c = BcflTransaction::new(payload)
            .with_nonce("fixed")
            .build(&signer)
            .unwrap();
        assert_eq!(c.header().nonce(), "fixed");
    }
}
