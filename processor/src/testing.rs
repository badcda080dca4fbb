//! Test support (feature `test-utils`): an in-memory transaction context and ledger.
//!
//! [`MemoryContext`] enforces what a Sawtooth validator enforces on a transaction's context:
//! every address is 70 lowercase hex; a read must start with a header input and a write or delete
//! with a header output (`AuthorizationError` otherwise); a missing address reads as absent.
//! [`MemoryLedger`] runs [`BcflHandler`] over it, one transaction at a time, with headers built
//! from [`crate::access::declared_addresses`], and keeps the state of valid transactions only,
//! as a validator does. This is the real handler and the real rules; only the validator is
//! replaced.
//!
//! ```
//! use bcfl_processor::testing::{test_key, MemoryLedger};
//! use bcfl_protos::bcfl::{BcflPayload, CloseRound};
//!
//! let mut ledger = MemoryLedger::new();
//! let mut payload = BcflPayload::new();
//! payload.set_close_round(CloseRound { round: 1, ..Default::default() });
//! let err = ledger.submit(&test_key("admin"), &payload).unwrap_err();
//! assert!(err.to_string().contains("the consortium is not initialized"));
//! ```

use std::cell::RefCell;
use std::collections::BTreeMap;

use bcfl_protos::bcfl as pb;
use bcfl_protos::compact::Compact;
use protobuf::Message;

use crate::access::declared_addresses;
use crate::address::{self, is_full_address};
use crate::context::{ContextError, StateContext};
use crate::error::ApplyError;
use crate::handler::{BcflHandler, TransactionRequest};
use crate::{FAMILY_NAME, FAMILY_VERSION};

/// An event added through the context.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordedEvent {
    /// Event type, e.g. `bcfl/open_round`.
    pub event_type: String,
    /// Attributes in the order added.
    pub attributes: Vec<(String, String)>,
    /// Opaque data.
    pub data: Vec<u8>,
}

impl RecordedEvent {
    /// The value of attribute `key`, if present.
    pub fn attribute(&self, key: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// A transaction context over an in-memory state with validator-like access checks.
#[derive(Debug, Default)]
pub struct MemoryContext {
    state: RefCell<BTreeMap<String, Vec<u8>>>,
    inputs: Vec<String>,
    outputs: Vec<String>,
    events: RefCell<Vec<RecordedEvent>>,
    receipt_data: RefCell<Vec<Vec<u8>>>,
    written: RefCell<u64>,
}

impl MemoryContext {
    /// A context over `state` for a transaction declaring `inputs` and `outputs`.
    pub fn new(
        state: BTreeMap<String, Vec<u8>>,
        inputs: Vec<String>,
        outputs: Vec<String>,
    ) -> Self {
        Self {
            state: RefCell::new(state),
            inputs,
            outputs,
            ..Default::default()
        }
    }

    /// Bytes the transaction wrote so far: the lengths of every value it set, each time it set
    /// one (what a validator hashes into its Merkle-Radix tree).
    pub fn written_bytes(&self) -> u64 {
        *self.written.borrow()
    }

    /// The state after the transaction, and the events it added.
    pub fn into_parts(self) -> (BTreeMap<String, Vec<u8>>, Vec<RecordedEvent>) {
        (self.state.into_inner(), self.events.into_inner())
    }

    fn check(
        &self,
        addresses: &[String],
        allowed: &[String],
        verb: &str,
    ) -> Result<(), ContextError> {
        for a in addresses {
            if !is_full_address(a) || !allowed.iter().any(|p| a.starts_with(p.as_str())) {
                return Err(ContextError::Authorization(format!(
                    "Tried to {verb} unauthorized addresses: {addresses:?}"
                )));
            }
        }
        Ok(())
    }
}

impl StateContext for MemoryContext {
    fn get_state_entries(
        &self,
        addresses: &[String],
    ) -> Result<Vec<(String, Vec<u8>)>, ContextError> {
        self.check(addresses, &self.inputs, "get")?;
        let state = self.state.borrow();
        Ok(addresses
            .iter()
            .filter_map(|a| {
                state
                    .get(a)
                    .filter(|d| !d.is_empty())
                    .map(|d| (a.clone(), d.clone()))
            })
            .collect())
    }

    fn set_state_entries(&self, entries: Vec<(String, Vec<u8>)>) -> Result<(), ContextError> {
        let addresses: Vec<String> = entries.iter().map(|(a, _)| a.clone()).collect();
        self.check(&addresses, &self.outputs, "set")?;
        *self.written.borrow_mut() += entries.iter().map(|(_, v)| v.len() as u64).sum::<u64>();
        self.state.borrow_mut().extend(entries);
        Ok(())
    }

    fn delete_state_entries(&self, addresses: &[String]) -> Result<Vec<String>, ContextError> {
        self.check(addresses, &self.outputs, "delete")?;
        let mut state = self.state.borrow_mut();
        for a in addresses {
            state.remove(a);
        }
        Ok(addresses.to_vec())
    }

    fn add_receipt_data(&self, data: &[u8]) -> Result<(), ContextError> {
        self.receipt_data.borrow_mut().push(data.to_vec());
        Ok(())
    }

    fn add_event(
        &self,
        event_type: String,
        attributes: Vec<(String, String)>,
        data: &[u8],
    ) -> Result<(), ContextError> {
        self.events.borrow_mut().push(RecordedEvent {
            event_type,
            attributes,
            data: data.to_vec(),
        });
        Ok(())
    }
}

/// A deterministic test key in the format of a compressed public key (`02` + 64 hex derived from
/// `name`). It is not a point on the curve: the processor only checks the format.
pub fn test_key(name: &str) -> String {
    format!("02{}", &address::sha512_hex(name.as_bytes())[..64])
}

/// Sketch or coordinate-step values one byte each, as payloads and state carry them
/// ([`bcfl_protos::signed_bytes`]). Panics when a value lies outside -128..=127.
pub fn packed(values: &[i32]) -> Vec<u8> {
    bcfl_protos::signed_bytes::pack(values).expect("every value fits in a byte")
}

/// An in-memory ledger that applies transactions one by one through [`BcflHandler`].
#[derive(Debug, Default)]
pub struct MemoryLedger {
    state: BTreeMap<String, Vec<u8>>,
    handler: BcflHandler,
    applied: u64,
    last_written: u64,
}

impl MemoryLedger {
    /// An empty ledger.
    pub fn new() -> Self {
        Self::default()
    }

    /// Submits `payload` signed by `signer`, with the header inputs/outputs that
    /// [`declared_addresses`] gives (empty lists when the payload does not parse). On success the
    /// state changes are kept and the transaction's events returned; on failure state is unchanged.
    pub fn submit(
        &mut self,
        signer: &str,
        payload: &pb::BcflPayload,
    ) -> Result<Vec<RecordedEvent>, ApplyError> {
        let (inputs, outputs) = declared_addresses(payload, signer).unwrap_or_default();
        let bytes = payload
            .write_to_bytes()
            .map_err(|e| ApplyError::InternalError(e.to_string()))?;
        self.submit_raw(signer, &bytes, inputs, outputs)
    }

    /// Submits raw payload bytes with explicit header inputs and outputs.
    pub fn submit_raw(
        &mut self,
        signer: &str,
        payload: &[u8],
        inputs: Vec<String>,
        outputs: Vec<String>,
    ) -> Result<Vec<RecordedEvent>, ApplyError> {
        let id = format!("{:0128x}", self.applied);
        let request = TransactionRequest {
            family_name: FAMILY_NAME,
            family_version: FAMILY_VERSION,
            signer_public_key: signer,
            payload,
            id: &id,
        };
        let context = MemoryContext::new(self.state.clone(), inputs, outputs);
        self.handler.apply(&request, &context)?;
        self.last_written = context.written_bytes();
        let (state, events) = context.into_parts();
        self.state = state;
        self.applied += 1;
        Ok(events)
    }

    /// Bytes of state the last accepted transaction wrote ([`MemoryContext::written_bytes`]).
    pub fn last_written_bytes(&self) -> u64 {
        self.last_written
    }

    /// The raw state.
    pub fn state(&self) -> &BTreeMap<String, Vec<u8>> {
        &self.state
    }

    /// The raw state, to change: what a test forges a ledger no transaction wrote with.
    pub fn state_mut(&mut self) -> &mut BTreeMap<String, Vec<u8>> {
        &mut self.state
    }

    fn decode<M: Message>(&self, address: &str) -> Option<M> {
        self.state
            .get(address)
            .map(|b| M::parse_from_bytes(b).expect("ledger state decodes"))
    }

    /// A record stored with its keys and digests as bytes, expanded ([`Compact`]).
    fn expanded<M: Message + Compact>(&self, address: &str) -> Option<M> {
        self.decode::<M>(address)
            .map(|m| m.expanded().expect("ledger state expands"))
    }

    /// The consortium, if initialized.
    pub fn consortium(&self) -> Option<pb::Consortium> {
        self.decode(&address::consortium_address())
    }

    /// A member, if registered.
    pub fn member(&self, key: &str) -> Option<pb::Member> {
        self.decode::<pb::MemberList>(&address::member_address(key))
            .and_then(|l| l.entries.into_iter().find(|m| m.public_key == key))
    }

    /// The member directory entries.
    pub fn directory(&self) -> Vec<pb::Member> {
        self.decode::<pb::MemberList>(&address::directory_address())
            .map(|l| l.entries.into_vec())
            .unwrap_or_default()
    }

    /// A round, if opened.
    pub fn round(&self, round: u64) -> Option<pb::Round> {
        self.expanded(&address::round_address(round))
    }

    /// A commitment, if made.
    pub fn commitment(&self, round: u64, member: &str) -> Option<pb::Commitment> {
        self.expanded::<pb::CommitmentList>(&address::commitment_address(round, member))
            .and_then(|l| l.entries.into_iter().find(|c| c.member == member))
    }

    /// Each of `records`' commitment to its `last_round`, which its stored sum leaves out
    /// (`anomaly::stored`), in their order; one the state lacks is left out.
    pub fn last_commitments(&self, records: &[pb::SketchSum]) -> Vec<pb::Commitment> {
        records
            .iter()
            .filter_map(|r| self.commitment(r.last_round, &r.member))
            .collect()
    }

    /// A link, if measured.
    pub fn link(&self, from: &str, to: &str) -> Option<pb::Link> {
        self.decode::<pb::LinkList>(&address::link_address(from, to))
            .and_then(|l| l.entries.into_iter().find(|k| k.from == from && k.to == to))
    }

    /// A verdict, if recorded.
    pub fn verdict(&self, round: u64) -> Option<pb::Verdict> {
        let stored: pb::Verdict = self.expanded(&address::verdict_address(round))?;
        let committers = self.round(round).map(|r| r.committers).unwrap_or_default();
        Some(
            stored
                .restored(&committers)
                .expect("the processor stores verdicts that restore"),
        )
    }

    /// A member's sketch sum, if it has been evaluated.
    pub fn sketch_sum(&self, member: &str) -> Option<pb::SketchSum> {
        self.expanded::<pb::SketchSumList>(&address::sketch_sum_address(member))
            .and_then(|l| l.entries.into_iter().find(|s| s.member == member))
    }

    /// An aggregate, if committed.
    pub fn aggregate(&self, round: u64) -> Option<pb::Aggregate> {
        self.decode(&address::aggregate_address(round))
    }
}
