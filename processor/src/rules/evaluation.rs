//! The round verdict, computed from the round's on-chain evidence.
//!
//! `EvaluateRound` gathers a [`RoundEvidence`] (the consortium parameters, the round, every
//! committer's commitment, the measured links among committers, the committers' sketch sums
//! over the earlier evaluated rounds and, where a method compares with them, their commitments
//! to the last of those rounds) and records whatever [`compute_verdict`] returns; it then
//! adds the round's sketches to the sums ([`crate::anomaly::features::extend_history`]).
//! [`compute_verdict`] is the single plug-in point of the anomaly methods (PageRank, DBSCAN,
//! modified z-score): it must stay a pure, deterministic function of the evidence.
//!
//! Behaviour: without an `anomaly` configuration every committer is accepted and none excluded.
//! With one, [`crate::anomaly::evaluate`] runs the configured methods over the features of
//! [`crate::anomaly::MemberData::from_evidence`]; the verdict stores one `MethodVerdict` per
//! method, with scores aligned with the committers it scored (`Verdict::scored()`: the accepted
//! and the excluded but not disputed, sorted) and flags as indices into them (read them with
//! [`crate::anomaly::member_scores`]), and the committers flagged by at least
//! `max(1, ensemble_min_votes)` methods as excluded.

use bcfl_protos::bcfl as pb;

use crate::anomaly::{evaluate, MemberData};
use crate::error::{Result, TxnError};

/// Everything on chain that a round's verdict may depend on.
#[derive(Clone, Debug)]
pub struct RoundEvidence<'a> {
    /// The consortium's parameters (anomaly configuration included).
    pub params: &'a pb::ConsortiumParams,
    /// The round being evaluated (phase OPEN, committers sorted).
    pub round: &'a pb::Round,
    /// One commitment per committer, sorted by member.
    pub commitments: &'a [pb::Commitment],
    /// Measured links between two committers, sorted by (from, to).
    pub links: &'a [pb::Link],
    /// The committers' sketch sums over the earlier evaluated rounds (before this round's
    /// sketches); committers without one are absent. Its `previous` holds each one's commitment
    /// to its sum's last round when the anomaly configuration reads them
    /// ([`crate::anomaly::reads_own_previous`]), and is empty otherwise.
    pub history: &'a pb::SketchHistory,
}

/// Computes the verdict of `evidence.round`: the per-method scores, and the committers accepted
/// and excluded (both sorted, together exactly the committers). `evaluated_by` is left empty for
/// the caller to fill.
pub fn compute_verdict(evidence: &RoundEvidence<'_>) -> Result<pb::Verdict> {
    if evidence.params.has_anomaly() {
        let data = MemberData::from_evidence(
            evidence.commitments,
            evidence.links,
            evidence.history,
            evidence.params.link_agreement_ppm,
        );
        let outcome = evaluate(evidence.params.get_anomaly(), &data)
            .map_err(|e| TxnError::Rejected(format!("anomaly evaluation failed: {e}")))?;
        let verdict = pb::Verdict {
            round: evidence.round.number,
            methods: outcome.methods.into(),
            accepted: outcome.accepted.into(),
            excluded: outcome.excluded.into(),
            ..Default::default()
        };
        // The scores are aligned with the evidence's order, sorted by member as the verdict's
        // derived list is.
        debug_assert_eq!(verdict.scored(), outcome.scored);
        return Ok(verdict);
    }
    let mut accepted: Vec<String> = evidence
        .commitments
        .iter()
        .map(|c| c.member.clone())
        .collect();
    accepted.sort();
    Ok(pb::Verdict {
        round: evidence.round.number,
        accepted: accepted.into(),
        ..Default::default()
    })
}

/// The committers of `round` to exclude without scoring them, each list sorted: the disputed
/// (a `DisputeCommitment` stands against them), and, when the consortium's sketches come after
/// the commitments (`sketch_after_commit`), the others whose commitment in `commitments` (the
/// round's, any order) holds no sketch: they never revealed one. `EvaluateRound` and `bcfl
/// audit verdict` both use it.
pub fn unscored(
    params: &pb::ConsortiumParams,
    round: &pb::Round,
    commitments: &[pb::Commitment],
) -> (Vec<String>, Vec<String>) {
    let mut disputed: Vec<String> = round.disputes.iter().map(|d| d.member.clone()).collect();
    disputed.sort();
    let mut unrevealed: Vec<String> = if params.sketch_after_commit {
        commitments
            .iter()
            .filter(|c| c.sketch.is_empty() && disputed.binary_search(&c.member).is_err())
            .map(|c| c.member.clone())
            .collect()
    } else {
        Vec::new()
    };
    unrevealed.sort();
    (disputed, unrevealed)
}

/// The verdict of a round whose `disputed` committers (sorted) are excluded without being
/// scored, as are its `unrevealed` ones (sorted; see [`unscored`]): [`compute_verdict`] over the
/// other committers' evidence (`evidence` holds only theirs), then every disputed and unrevealed
/// committer added to `excluded` and listed in `disputed` or `unrevealed`. With nobody left
/// to score, the verdict accepts nobody. `EvaluateRound` and `bcfl audit verdict` both use it.
pub fn verdict_excluding_disputed(
    evidence: &RoundEvidence<'_>,
    disputed: &[String],
    unrevealed: &[String],
) -> Result<pb::Verdict> {
    let mut verdict = if evidence.commitments.is_empty() {
        pb::Verdict {
            round: evidence.round.number,
            ..Default::default()
        }
    } else {
        compute_verdict(evidence)?
    };
    if !disputed.is_empty() || !unrevealed.is_empty() {
        let mut excluded = verdict.excluded.to_vec();
        excluded.extend(disputed.iter().chain(unrevealed).cloned());
        excluded.sort();
        verdict.excluded = excluded.into();
        verdict.disputed = disputed.to_vec().into();
        verdict.unrevealed = unrevealed.to_vec().into();
    }
    Ok(verdict)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_every_committer_sorted() {
        let params = pb::ConsortiumParams::default();
        let round = pb::Round {
            number: 3,
            ..Default::default()
        };
        let commitments: Vec<pb::Commitment> = ["b", "a", "c"]
            .iter()
            .map(|m| pb::Commitment {
                round: 3,
                member: (*m).to_owned(),
                ..Default::default()
            })
            .collect();
        let verdict = compute_verdict(&RoundEvidence {
            params: &params,
            round: &round,
            commitments: &commitments,
            links: &[],
            history: &Default::default(),
        })
        .unwrap();
        assert_eq!(verdict.round, 3);
        assert_eq!(verdict.accepted.to_vec(), vec!["a", "b", "c"]);
        assert!(verdict.excluded.is_empty());
        assert!(verdict.methods.is_empty());
    }
}
