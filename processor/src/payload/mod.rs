//! Payload parsing: `BcflPayload` bytes become a typed, validated [`Action`].
//!
//! Parse, don't validate: every field of an [`Action`] obtained from [`Action::parse`] or
//! [`Action::from_proto`] already satisfies the family's field rules (key and hash formats, text
//! and URI rules, bounds on every count, sorted unique key lists), so the rules in
//! [`crate::rules`] only check what depends on state and on the signer.
//!
//! Canonical forms: key lists (`admin_keys`, `contributors`, `excluded`) and measurement lists may
//! arrive in any order but must not repeat an entry; the parsed action holds them sorted.
//! [`Action::to_proto`] writes that canonical form, and parsing it again gives the same action.
//! Defaults are made explicit: `open_round.sync = ROUND_SYNC_UNSET` is read as `SYNCHRONOUS`,
//! `commit_update.base_round = 0` as the commitment's own round, and `open_round.privacy` is held
//! sorted by enum value.
//!
//! Any decode failure, an empty or unknown `action` oneof, unknown fields in a known message
//! (including unknown enum values, which protobuf keeps as unknown fields), or a field that breaks
//! its rule is a [`PayloadError`]; the handler turns it into an invalid transaction.
//!
//! ```
//! use bcfl_processor::payload::Action;
//! use bcfl_protos::bcfl::{BcflPayload, CloseRound};
//!
//! let mut payload = BcflPayload::new();
//! payload.set_close_round(CloseRound { round: 4, ..Default::default() });
//! let action = Action::from_proto(&payload).unwrap();
//! assert_eq!(action.name(), "close_round");
//! assert_eq!(action.round(), Some(4));
//! assert!(Action::parse(&[0xff, 0xff]).is_err());
//! ```

mod actions;
mod fields;
mod params;
#[cfg(test)]
mod tests;

use bcfl_protos::bcfl as pb;
use bcfl_protos::bcfl::BcflPayload_oneof_action as Oneof;
use protobuf::Message;
use thiserror::Error;

pub use actions::{
    AttestAggregate, CloseRound, CommitAggregate, CommitUpdate, DisputeCommitment, EvaluateRound,
    InitConsortium, LinkMeasurement, OpenRound, RegisterMember, ReportBandwidth, RevealSketch,
    SealRound, SuspendMember, UpdateMember,
};
pub use fields::{BlobUri, Endpoint, FieldError, MemberName, PublicKey, Reason, Sha256Hash};
pub use params::validate_params;

/// Why a payload was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PayloadError {
    /// The bytes are not a `BcflPayload` protobuf.
    #[error("payload is not a valid BcflPayload protobuf: {0}")]
    Decode(String),
    /// The `action` oneof is empty, or holds a field number this version does not know.
    #[error("payload carries no known action (empty or unknown oneof)")]
    NoAction,
    /// A known message carries fields (or enum values) this version does not know.
    #[error("{message} carries unknown fields or enum values")]
    UnknownFields {
        /// The message, e.g. `open_round`.
        message: &'static str,
    },
    /// A field value breaks its format rule.
    #[error("{field}: {source}")]
    Field {
        /// The field, e.g. `open_round.aggregator`.
        field: &'static str,
        /// The broken rule.
        source: FieldError,
    },
    /// A field value breaks a bound or a cross-field rule.
    #[error("{field}: {reason}")]
    Invalid {
        /// The field, e.g. `commit_update.sketch`.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
}

/// Result alias of payload parsing.
pub type Result<T, E = PayloadError> = std::result::Result<T, E>;

/// Attaches a field name to a [`FieldError`].
pub(crate) fn field<T>(name: &'static str, result: Result<T, FieldError>) -> Result<T> {
    result.map_err(|source| PayloadError::Field {
        field: name,
        source,
    })
}

/// A bound or cross-field violation on `name`.
pub(crate) fn invalid(name: &'static str, reason: String) -> PayloadError {
    PayloadError::Invalid {
        field: name,
        reason,
    }
}

/// Refuses a message that carries unknown fields.
pub(crate) fn reject_unknown_fields<M: Message>(message: &M, name: &'static str) -> Result<()> {
    if message.get_unknown_fields().iter().next().is_some() {
        Err(PayloadError::UnknownFields { message: name })
    } else {
        Ok(())
    }
}

/// One transaction's action, validated.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Create the consortium (once).
    InitConsortium(InitConsortium),
    /// Register a member, or reinstate a suspended one.
    RegisterMember(RegisterMember),
    /// Change a member's name or endpoint.
    UpdateMember(UpdateMember),
    /// Suspend a member.
    SuspendMember(SuspendMember),
    /// Open the next round.
    OpenRound(OpenRound),
    /// Commit a member's update to the open round.
    CommitUpdate(CommitUpdate),
    /// Report measured bandwidth of the signer's outgoing links.
    ReportBandwidth(ReportBandwidth),
    /// Evaluate the open round: record the anomaly verdict.
    EvaluateRound(EvaluateRound),
    /// Commit the round's aggregated global model.
    CommitAggregate(CommitAggregate),
    /// Close (or abandon) a round.
    CloseRound(CloseRound),
    /// Report that a commitment's statistics do not describe its blob.
    DisputeCommitment(DisputeCommitment),
    /// A committee member's recomputation of the round's aggregate.
    AttestAggregate(AttestAggregate),
    /// Close an OPEN round's commitments and draw its sketch seed (sketches after commitments).
    SealRound(SealRound),
    /// A committer's sketch, made with the sealed round's seed.
    RevealSketch(RevealSketch),
}

impl Action {
    /// Decodes and validates serialized `BcflPayload` bytes.
    pub fn parse(bytes: &[u8]) -> Result<Action> {
        let payload = pb::BcflPayload::parse_from_bytes(bytes)
            .map_err(|e| PayloadError::Decode(e.to_string()))?;
        Action::from_proto(&payload)
    }

    /// Validates a decoded `BcflPayload`.
    pub fn from_proto(payload: &pb::BcflPayload) -> Result<Action> {
        reject_unknown_fields(payload, "payload")?;
        Ok(
            match payload.action.as_ref().ok_or(PayloadError::NoAction)? {
                Oneof::init_consortium(m) => Action::InitConsortium(InitConsortium::from_proto(m)?),
                Oneof::register_member(m) => Action::RegisterMember(RegisterMember::from_proto(m)?),
                Oneof::update_member(m) => Action::UpdateMember(UpdateMember::from_proto(m)?),
                Oneof::suspend_member(m) => Action::SuspendMember(SuspendMember::from_proto(m)?),
                Oneof::open_round(m) => Action::OpenRound(OpenRound::from_proto(m)?),
                Oneof::commit_update(m) => Action::CommitUpdate(CommitUpdate::from_proto(m)?),
                Oneof::report_bandwidth(m) => {
                    Action::ReportBandwidth(ReportBandwidth::from_proto(m)?)
                }
                Oneof::evaluate_round(m) => Action::EvaluateRound(EvaluateRound::from_proto(m)?),
                Oneof::commit_aggregate(m) => {
                    Action::CommitAggregate(CommitAggregate::from_proto(m)?)
                }
                Oneof::close_round(m) => Action::CloseRound(CloseRound::from_proto(m)?),
                Oneof::dispute_commitment(m) => {
                    Action::DisputeCommitment(DisputeCommitment::from_proto(m)?)
                }
                Oneof::attest_aggregate(m) => {
                    Action::AttestAggregate(AttestAggregate::from_proto(m)?)
                }
                Oneof::seal_round(m) => Action::SealRound(SealRound::from_proto(m)?),
                Oneof::reveal_sketch(m) => Action::RevealSketch(RevealSketch::from_proto(m)?),
            },
        )
    }

    /// The canonical `BcflPayload` of this action.
    pub fn to_proto(&self) -> pb::BcflPayload {
        let mut payload = pb::BcflPayload::new();
        match self {
            Action::InitConsortium(a) => payload.set_init_consortium(a.to_proto()),
            Action::RegisterMember(a) => payload.set_register_member(a.to_proto()),
            Action::UpdateMember(a) => payload.set_update_member(a.to_proto()),
            Action::SuspendMember(a) => payload.set_suspend_member(a.to_proto()),
            Action::OpenRound(a) => payload.set_open_round(a.to_proto()),
            Action::CommitUpdate(a) => payload.set_commit_update(a.to_proto()),
            Action::ReportBandwidth(a) => payload.set_report_bandwidth(a.to_proto()),
            Action::EvaluateRound(a) => payload.set_evaluate_round(a.to_proto()),
            Action::CommitAggregate(a) => payload.set_commit_aggregate(a.to_proto()),
            Action::CloseRound(a) => payload.set_close_round(a.to_proto()),
            Action::DisputeCommitment(a) => payload.set_dispute_commitment(a.to_proto()),
            Action::AttestAggregate(a) => payload.set_attest_aggregate(a.to_proto()),
            Action::SealRound(a) => payload.set_seal_round(a.to_proto()),
            Action::RevealSketch(a) => payload.set_reveal_sketch(a.to_proto()),
        }
        payload
    }

    /// The canonical serialized payload of this action (the bytes a transaction carries).
    pub fn to_bytes(&self) -> Vec<u8> {
        self.to_proto()
            .write_to_bytes()
            .expect("a BcflPayload always serializes")
    }

    /// The action's snake_case name, as in the proto oneof (`open_round`, ...). Events are named
    /// `bcfl/<name>`.
    pub fn name(&self) -> &'static str {
        match self {
            Action::InitConsortium(_) => "init_consortium",
            Action::RegisterMember(_) => "register_member",
            Action::UpdateMember(_) => "update_member",
            Action::SuspendMember(_) => "suspend_member",
            Action::OpenRound(_) => "open_round",
            Action::CommitUpdate(_) => "commit_update",
            Action::ReportBandwidth(_) => "report_bandwidth",
            Action::EvaluateRound(_) => "evaluate_round",
            Action::CommitAggregate(_) => "commit_aggregate",
            Action::CloseRound(_) => "close_round",
            Action::DisputeCommitment(_) => "dispute_commitment",
            Action::AttestAggregate(_) => "attest_aggregate",
            Action::SealRound(_) => "seal_round",
            Action::RevealSketch(_) => "reveal_sketch",
        }
    }

    /// The round the action is about, for round actions.
    pub fn round(&self) -> Option<u64> {
        match self {
            Action::OpenRound(a) => Some(a.round),
            Action::CommitUpdate(a) => Some(a.round),
            Action::EvaluateRound(a) => Some(a.round),
            Action::CommitAggregate(a) => Some(a.round),
            Action::CloseRound(a) => Some(a.round),
            Action::DisputeCommitment(a) => Some(a.round),
            Action::AttestAggregate(a) => Some(a.round),
            Action::SealRound(a) => Some(a.round),
            Action::RevealSketch(a) => Some(a.round),
            _ => None,
        }
    }
}
