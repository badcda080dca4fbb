//! Evidence checked by someone other than its author: disputed commitments and the verifier
//! committee's attestations of an aggregate.
//!
//! **Disputes.** Statistics are self-reported, so while a round is OPEN its aggregator (or an
//! admin) fetches every committed blob, recomputes its size, norm and sketch, and files a
//! `DisputeCommitment` for each that contradicts its commitment ([`crate::statistics`]). The
//! processor checks that the recomputed values it is given do contradict the commitment (it
//! cannot see the blob); `EvaluateRound` then excludes every disputed member without scoring it,
//! so invented statistics reach neither the verdict nor the anomaly history. A false dispute is
//! caught by the committee below, which recomputes the disputed statistics too.
//!
//! **The committee.** `CommitAggregate` chooses `committee_size` members ([`select_committee`]):
//! the active members other than the aggregator, the submitter and the verdict's excluded,
//! ordered by `SHA-256(seed || key)`, where the seed hashes the round number and every
//! commitment of the round (member and update hash, in member order) — data fixed before the
//! verdict, which the aggregator cannot change once it knows who committed. Each committee member
//! recomputes the aggregate from the accepted updates, rechecks the statistics of every update
//! it fetched (accepted and disputed), then files `AttestAggregate`. [`finality`]: FINAL when
//! every committee member attested the committed hash and found no dispute false and no accepted
//! commitment false (`missed`: one the aggregator should have disputed); CONTESTED as soon as
//! one attests another hash, a false dispute or a missed one; PENDING until then. With no committee (size 0, or nobody eligible) an aggregate is FINAL when
//! committed.
//!
//! What follows from finality (in [`super::rounds`]): a round whose aggregate is CONTESTED is
//! closed without a global model (the next round starts from its parent); a PENDING aggregate
//! may be closed only by an admin (the coordinator, after its attestation deadline), which the
//! round records as `closed_unverified`. Attestations are accepted after the round closed, so
//! a late one still marks the aggregate for auditors.

use bcfl_protos::bcfl as pb;
use bcfl_protos::signed_bytes;
use sha2::{Digest, Sha256};

use super::{attr, ensure, is_admin, reject, require_consortium, require_round, Attributes};
use crate::error::Result;
use crate::payload::{AttestAggregate, DisputeCommitment, PublicKey};
use crate::state::BcflState;
use crate::statistics::{contradicts, Recomputed};

/// The committee of round `round`: `size` of `candidates` (sorted keys), [`draw`]n with
/// `seed = SHA-256("bcfl/committee" || round (8 bytes, big endian) || member || update_sha256
/// ...)` over `commitments` in member order.
pub fn select_committee(
    round: u64,
    commitments: &[pb::Commitment],
    candidates: &[String],
    size: usize,
) -> Vec<String> {
    let mut seed = Sha256::new();
    seed.update(b"bcfl/committee");
    seed.update(round.to_be_bytes());
    for c in commitments {
        seed.update(c.member.as_bytes());
        seed.update(c.update_sha256.as_bytes());
    }
    draw(&seed.finalize().into(), candidates, size)
}

/// A deterministic draw of `size` of `candidates` (all of them when there are fewer): the keys
/// with the smallest tickets `SHA-256(seed || key)`, in ticket order. Every node computes the
/// same draw from the same state, and nobody can choose their ticket without choosing the seed.
pub fn draw(seed: &[u8; 32], candidates: &[String], size: usize) -> Vec<String> {
    let mut tickets: Vec<([u8; 32], &String)> = candidates
        .iter()
        .map(|key| {
            let mut h = Sha256::new();
            h.update(seed);
            h.update(key.as_bytes());
            (h.finalize().into(), key)
        })
        .collect();
    tickets.sort();
    tickets
        .into_iter()
        .take(size)
        .map(|(_, key)| key.clone())
        .collect()
}

/// The finality of `aggregate` from its committee and attestations (see the module docs).
pub fn finality(aggregate: &pb::Aggregate) -> pb::Finality {
    let contested = aggregate.attestations.iter().any(|a| {
        a.model_sha256 != aggregate.model_sha256
            || !a.false_disputes.is_empty()
            || !a.missed.is_empty()
    });
    if contested {
        pb::Finality::CONTESTED
    } else if aggregate.attestations.len() >= aggregate.committee.len() {
        pb::Finality::FINAL
    } else {
        pb::Finality::PENDING
    }
}

/// `DisputeCommitment`: records that a committer's statistics contradict its blob.
pub fn dispute_commitment(
    state: &mut BcflState<'_>,
    signer: &PublicKey,
    action: &DisputeCommitment,
) -> Result<Attributes> {
    let consortium = require_consortium(state)?;
    let n = action.round;
    let mut round = require_round(state, n)?;
    let aggregator = round.aggregator == signer.as_str();
    ensure!(
        is_admin(&consortium, signer) || aggregator,
        "only an admin or the round's aggregator may dispute a commitment of round {n}"
    );
    if aggregator {
        super::require_active_member(state, signer.as_str(), "aggregator")?;
    }
    ensure!(
        matches!(round.phase, pb::RoundPhase::OPEN | pb::RoundPhase::SEALED),
        "round {n} is {:?}; commitments can be disputed only while it is OPEN (or SEALED)",
        round.phase
    );
    let member = action.member.as_str();
    ensure!(
        member != signer.as_str(),
        "a member may not dispute its own commitment"
    );
    let commitment = state
        .commitment(n, member)?
        .ok_or_else(|| reject(format!("{member} did not commit to round {n}")))?;
    let position = round
        .disputes
        .binary_search_by(|d| d.member.as_str().cmp(member));
    let Err(position) = position else {
        return Err(reject(format!(
            "{member}'s commitment to round {n} is already disputed"
        )));
    };
    let length = consortium.get_params().sketch_length as usize;
    if action.mismatch == pb::StatMismatch::SKETCH {
        ensure!(
            action.sketch.len() == length,
            "the recomputed sketch must hold {length} values, got {}",
            action.sketch.len()
        );
    }
    let samples = consortium.get_params().coordinate_samples as usize;
    if action.mismatch == pb::StatMismatch::COORDINATES {
        ensure!(
            action.coordinates.len() == samples,
            "the recomputed coordinates must hold {samples} values, got {}",
            action.coordinates.len()
        );
    }
    let recomputed = Recomputed {
        size_bytes: action.size_bytes,
        norm_micro: action.norm_micro,
        sketch: action.sketch.iter().map(|&v| i32::from(v)).collect(),
        coordinates: action.coordinates.clone(),
    };
    ensure!(
        contradicts(&commitment, action.mismatch, &recomputed),
        "the recomputed {:?} agrees with {member}'s commitment: nothing to dispute",
        action.mismatch
    );
    round.disputes.insert(
        position,
        pb::Dispute {
            member: member.to_owned(),
            mismatch: action.mismatch,
            size_bytes: action.size_bytes,
            norm_micro: action.norm_micro,
            sketch: signed_bytes::from_i8(&action.sketch),
            coordinate_step_nano: action.coordinates.step_nano(),
            coordinate_steps: action.coordinates.packed_steps(),
            reported_by: signer.as_str().to_owned(),
            ..Default::default()
        },
    );
    state.put_round(&round)?;
    Ok(vec![
        attr("round", n),
        attr("member", member),
        attr("mismatch", format!("{:?}", action.mismatch)),
    ])
}

/// `AttestAggregate`: records a committee member's recomputation of the aggregate.
pub fn attest_aggregate(
    state: &mut BcflState<'_>,
    signer: &PublicKey,
    action: &AttestAggregate,
) -> Result<Attributes> {
    require_consortium(state)?;
    let n = action.round;
    let round = require_round(state, n)?;
    let mut aggregate = state
        .aggregate(n)?
        .ok_or_else(|| reject(format!("round {n} has no aggregate to attest")))?;
    ensure!(
        aggregate.committee.iter().any(|k| k == signer.as_str()),
        "{signer} is not on round {n}'s verifier committee"
    );
    ensure!(
        state.member(signer.as_str())?.is_some(),
        "{signer} is not a registered member"
    );
    let position = aggregate
        .attestations
        .binary_search_by(|a| a.member.as_str().cmp(signer.as_str()));
    let Err(position) = position else {
        return Err(reject(format!("{signer} already attested round {n}")));
    };
    for key in &action.false_disputes {
        ensure!(
            round
                .disputes
                .binary_search_by(|d| d.member.as_str().cmp(key.as_str()))
                .is_ok(),
            "{key}'s commitment to round {n} was not disputed"
        );
    }
    let verdict = state.verdict(n)?.unwrap_or_default();
    for key in &action.missed {
        ensure!(
            verdict
                .accepted
                .binary_search_by(|k| k.as_str().cmp(key.as_str()))
                .is_ok(),
            "{key} is not an accepted member of round {n}"
        );
    }
    aggregate.attestations.insert(
        position,
        pb::Attestation {
            member: signer.as_str().to_owned(),
            model_sha256: action.model_sha256.as_str().to_owned(),
            false_disputes: action
                .false_disputes
                .iter()
                .map(|k| k.as_str().to_owned())
                .collect(),
            missed: action
                .missed
                .iter()
                .map(|k| k.as_str().to_owned())
                .collect(),
            ..Default::default()
        },
    );
    aggregate.finality = finality(&aggregate);
    state.put_aggregate(&aggregate)?;
    Ok(vec![
        attr("round", n),
        attr("model_sha256", &action.model_sha256),
        attr("finality", format!("{:?}", aggregate.finality)),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn commitment(member: &str, hash: &str) -> pb::Commitment {
        pb::Commitment {
            member: member.into(),
            update_sha256: hash.into(),
            ..Default::default()
        }
    }

    #[test]
    fn committee_is_a_deterministic_sample_of_the_candidates() {
        let candidates: Vec<String> = ["a", "b", "c", "d", "e"].map(String::from).to_vec();
        let commitments = [commitment("a", "11"), commitment("b", "22")];
        let one = select_committee(4, &commitments, &candidates, 3);
        assert_eq!(one, select_committee(4, &commitments, &candidates, 3));
        assert_eq!(one.len(), 3);
        assert!(one.iter().all(|k| candidates.contains(k)));
        let mut unique = one.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), 3);
        // More than the candidates: all of them.
        assert_eq!(select_committee(4, &commitments, &candidates, 9).len(), 5);
        assert!(select_committee(4, &commitments, &[], 3).is_empty());
        // Another round or other commitments draw other orders (over 20 rounds, not always the same).
        let draws: std::collections::BTreeSet<Vec<String>> = (1..=20)
            .map(|r| select_committee(r, &commitments, &candidates, 2))
            .collect();
        assert!(draws.len() > 1);
    }

    #[test]
    fn finality_follows_the_attestations() {
        let attestation = |member: &str, hash: &str, false_disputes: &[&str]| pb::Attestation {
            member: member.into(),
            model_sha256: hash.into(),
            false_disputes: false_disputes.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        };
        let mut aggregate = pb::Aggregate {
            model_sha256: "aa".into(),
            ..Default::default()
        };
        assert_eq!(finality(&aggregate), pb::Finality::FINAL);
        aggregate.committee = vec!["x".to_string(), "y".to_string()].into();
        assert_eq!(finality(&aggregate), pb::Finality::PENDING);
        aggregate.attestations.push(attestation("x", "aa", &[]));
        assert_eq!(finality(&aggregate), pb::Finality::PENDING);
        aggregate.attestations.push(attestation("y", "aa", &[]));
        assert_eq!(finality(&aggregate), pb::Finality::FINAL);
        aggregate.attestations[1] = attestation("y", "bb", &[]);
        assert_eq!(finality(&aggregate), pb::Finality::CONTESTED);
        aggregate.attestations[1] = attestation("y", "aa", &["z"]);
        assert_eq!(finality(&aggregate), pb::Finality::CONTESTED);
        aggregate.attestations[1] = attestation("y", "aa", &[]);
        aggregate.attestations[1].missed = vec!["w".to_string()].into();
        assert_eq!(finality(&aggregate), pb::Finality::CONTESTED);
        aggregate.attestations.truncate(1);
        aggregate.attestations[0] = attestation("x", "bb", &[]);
        assert_eq!(finality(&aggregate), pb::Finality::CONTESTED);
    }
}
