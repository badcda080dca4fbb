//! The family's deterministic rules: who may do what, and how each action changes state.
//!
//! [`apply`] checks a parsed [`Action`] from `signer` against the current state and writes the
//! result through [`BcflState`]. It returns the attributes of the `bcfl/<action>` event. Every
//! refusal is a [`TxnError::Rejected`] with a human-readable message (listed in
//! `docs/transaction-family.md`).
//!
//! Determinism: no clocks, no randomness, no hash-map iteration; lists written to state are kept
//! sorted, so the same transactions always produce the same bytes.
//!
//! - [`membership`]: consortium creation and the member registry.
//! - [`rounds`]: the round life cycle OPEN -> EVALUATED -> AGGREGATED -> CLOSED.
//! - [`bandwidth`]: link measurements.
//! - [`evaluation`]: the verdict computed from a round's evidence (the plug-in point of the
//!   anomaly methods).
//! - [`verification`]: disputed commitments and the verifier committee's attestations.

pub mod bandwidth;
pub mod evaluation;
pub mod membership;
pub mod rounds;
#[cfg(test)]
mod tests;
pub mod verification;

use bcfl_protos::bcfl as pb;

use crate::error::{Result, TxnError};
use crate::payload::{Action, PublicKey};
use crate::state::BcflState;

/// Attributes of the event an accepted action emits (besides `signer`, which the handler adds).
pub type Attributes = Vec<(String, String)>;

/// Refuses the transaction with `message`.
pub(crate) fn reject(message: impl Into<String>) -> TxnError {
    TxnError::Rejected(message.into())
}

/// Refuses the transaction with a formatted message unless the condition holds.
macro_rules! ensure {
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            return Err($crate::rules::reject(format!($($msg)+)));
        }
    };
}
pub(crate) use ensure;

/// Checks `action`, signed by `signer`, against state and applies it.
pub fn apply(state: &mut BcflState<'_>, signer: &PublicKey, action: &Action) -> Result<Attributes> {
    match action {
        Action::InitConsortium(a) => membership::init_consortium(state, signer, a),
        Action::RegisterMember(a) => membership::register_member(state, signer, a),
        Action::UpdateMember(a) => membership::update_member(state, signer, a),
        Action::SuspendMember(a) => membership::suspend_member(state, signer, a),
        Action::OpenRound(a) => rounds::open_round(state, signer, a),
        Action::CommitUpdate(a) => rounds::commit_update(state, signer, a),
        Action::ReportBandwidth(a) => bandwidth::report_bandwidth(state, signer, a),
        Action::EvaluateRound(a) => rounds::evaluate_round(state, signer, a),
        Action::CommitAggregate(a) => rounds::commit_aggregate(state, signer, a),
        Action::CloseRound(a) => rounds::close_round(state, signer, a),
        Action::DisputeCommitment(a) => verification::dispute_commitment(state, signer, a),
        Action::AttestAggregate(a) => verification::attest_aggregate(state, signer, a),
        Action::SealRound(a) => rounds::seal_round(state, signer, a),
        Action::RevealSketch(a) => rounds::reveal_sketch(state, signer, a),
    }
}

/// The consortium, or a refusal if it is not initialized.
pub(crate) fn require_consortium(state: &mut BcflState<'_>) -> Result<pb::Consortium> {
    state
        .consortium()?
        .ok_or_else(|| reject("the consortium is not initialized"))
}

/// Whether `key` is one of the consortium's admins.
pub(crate) fn is_admin(consortium: &pb::Consortium, key: &PublicKey) -> bool {
    consortium
        .admin_keys
        .binary_search_by(|k| k.as_str().cmp(key.as_str()))
        .is_ok()
}

/// Refuses unless `signer` is an admin; `what` completes "only an admin may ...".
pub(crate) fn require_admin(
    consortium: &pb::Consortium,
    signer: &PublicKey,
    what: &str,
) -> Result<()> {
    ensure!(is_admin(consortium, signer), "only an admin may {what}");
    Ok(())
}

/// The member with `key` if it is registered and active; `role` names it in the refusal
/// (e.g. "signer", "aggregator").
pub(crate) fn require_active_member(
    state: &mut BcflState<'_>,
    key: &str,
    role: &str,
) -> Result<pb::Member> {
    let member = state
        .member(key)?
        .ok_or_else(|| reject(format!("{role} {key} is not a registered member")))?;
    ensure!(
        member.status == pb::MemberStatus::ACTIVE,
        "{role} {key} is suspended"
    );
    Ok(member)
}

/// Round `round`, or a refusal if it was never opened.
pub(crate) fn require_round(state: &mut BcflState<'_>, round: u64) -> Result<pb::Round> {
    state
        .round(round)?
        .ok_or_else(|| reject(format!("round {round} does not exist")))
}

/// An event attribute.
pub(crate) fn attr(key: &str, value: impl ToString) -> (String, String) {
    (key.to_owned(), value.to_string())
}
