//! Withdrawing a flagged member's previous commitment (`AnomalyConfig.withdraw`).
//!
//! The inconsistent-change and ascent methods compare a member's commitment with its own
//! commitment to the round before: a change unrelated to the member's previous one, or changes
//! that move *with* the model's move as steps up a loss do. Their flag is evidence against the
//! pair, and the first of the two has already been aggregated. A sign flipper or a noise sender
//! is therefore caught from its second round on, and its first update stays in the model.
//!
//! With `withdraw`, round `r`'s verdict lists in `Verdict.withdrawn` (as positions among the
//! scored committers, [`pb::Verdict::withdrawn_members`]) every member that one of
//! those two methods flagged in round `r` whose commitment to round `r - 1` (of staleness 0)
//! round `r - 1`'s verdict accepted, when round `r - 1`'s FedAvg aggregate is round `r`'s parent
//! and round `r` aggregates at all (its verdict accepted someone). Round `r`'s aggregate then
//! takes those contributions back out: with `P` its parent (round `r - 1`'s aggregate), `W` the
//! weight of round `r - 1`'s accepted updates and `w_l`, `U_l` each withdrawn one's weight and
//! model, it adds `sum w_l (P - U_l) / (W - sum w_l)`, which is FedAvg of round `r - 1` without
//! them minus FedAvg with them (and `P_{r-1} - P`, undoing round `r - 1`, when they were all of
//! it). The processor keeps the model's move with the same correction on the sampled
//! coordinates ([`super::features::withdrawn_change`]), so that the resent-change and ascent
//! methods compare with the move the model made. A member that joined honestly and turned in
//! round `r` has its honest round `r - 1` withdrawn too: the pair's evidence cannot say which
//! of the two was false.
//!
//! The aggregator fetches a withdrawn update from round `r - 1`'s aggregator, which held it,
//! or from its member. Should neither serve it, round `r` cannot be aggregated and the
//! coordinator abandons it at its aggregation deadline; the round after, whose parent is then
//! not round `r`'s aggregate, withdraws nothing, so a withheld blob costs a round, never the
//! consortium's progress.
//!
//! Everything here is a pure function of the verdict and what `EvaluateRound` reads; an
//! auditor replaying a verdict calls the same.

use bcfl_protos::bcfl as pb;

/// What the withdrawal reads about round `r - 1`.
#[derive(Clone, Copy, Debug)]
pub struct RoundBefore<'a> {
    /// Its verdict's accepted members, sorted.
    pub accepted: &'a [String],
    /// Its aggregate is round `r`'s parent and the consortium's rule is FedAvg: withdrawing
    /// from it is FedAvg arithmetic.
    pub aggregated_by_fedavg: bool,
}

impl<'a> RoundBefore<'a> {
    /// What round `round` reads about the round before it from that round's verdict and
    /// aggregate (`None` for round 1, or without a verdict of the round before).
    pub fn of(
        params: &pb::ConsortiumParams,
        round: &pb::Round,
        verdict: Option<&'a pb::Verdict>,
        aggregate: Option<&pb::Aggregate>,
    ) -> Option<Self> {
        let verdict = verdict.filter(|v| v.round + 1 == round.number)?;
        Some(Self {
            accepted: &verdict.accepted,
            aggregated_by_fedavg: params.aggregation_rule == pb::AggregationRule::FEDAVG
                && aggregate.is_some_and(|a| {
                    a.round == verdict.round && a.model_sha256 == round.parent_model_sha256
                }),
        })
    }
}

/// Whether a method's flag is evidence against the member's previous commitment too: the
/// inconsistent-change and ascent methods, which compare with it.
pub fn compares_with_previous(method: pb::AnomalyMethod) -> bool {
    matches!(
        method,
        pb::AnomalyMethod::INCONSISTENT | pb::AnomalyMethod::ASCENT
    )
}

/// Whether `verdict` can withdraw anything under `config`: the consortium withdraws, the
/// verdict accepted someone (the round aggregates), and the inconsistent-change or ascent
/// method flagged someone. `EvaluateRound` reads the round before only then.
pub fn may_withdraw(config: &pb::AnomalyConfig, verdict: &pb::Verdict) -> bool {
    config.withdraw
        && !verdict.accepted.is_empty()
        && verdict
            .methods
            .iter()
            .any(|m| compares_with_previous(m.method) && !m.flagged.is_empty())
}

/// The positions among `verdict`'s scored committers of the members whose commitment to the
/// round before it withdraws (ascending; see the module docs): empty unless `config.withdraw`,
/// `before` is known and was aggregated by FedAvg, and `verdict` accepted someone. `previous`
/// is `SketchHistory.previous`, the committers' commitments to the last round each had
/// evaluated.
pub fn withdrawn(
    config: &pb::AnomalyConfig,
    verdict: &pb::Verdict,
    previous: &[pb::Commitment],
    before: Option<RoundBefore<'_>>,
) -> Vec<u32> {
    let Some(before) = before else {
        return Vec::new();
    };
    if !before.aggregated_by_fedavg || !may_withdraw(config, verdict) {
        return Vec::new();
    }
    let scored = verdict.scored();
    let mut positions: Vec<u32> = verdict
        .methods
        .iter()
        .filter(|m| compares_with_previous(m.method))
        .flat_map(|m| m.flagged.iter().copied())
        .filter(|&i| {
            scored.get(i as usize).is_some_and(|member| {
                previous.iter().any(|p| {
                    &p.member == member
                        && p.round.saturating_add(1) == verdict.round
                        && p.staleness == 0
                }) && before.accepted.binary_search(member).is_ok()
            })
        })
        .collect();
    positions.sort_unstable();
    positions.dedup();
    positions
}

#[cfg(test)]
mod tests {
    use super::*;

    fn commitment(member: &str, round: u64) -> pb::Commitment {
        pb::Commitment {
            member: member.to_owned(),
            round,
            num_samples: 10,
            ..Default::default()
        }
    }

    fn flagging(method: pb::AnomalyMethod, flagged: &[u32]) -> pb::MethodVerdict {
        pb::MethodVerdict {
            method,
            flagged: flagged.to_vec(),
            ..Default::default()
        }
    }

    /// Round 3: scored a, b, c, d, e (sorted). The ascent method flags b and d, the
    /// inconsistent-change method c, the z-score e.
    fn verdict() -> pb::Verdict {
        pb::Verdict {
            round: 3,
            accepted: vec!["a".to_owned()].into(),
            excluded: ["b", "c", "d", "e"].map(String::from).to_vec().into(),
            methods: vec![
                flagging(pb::AnomalyMethod::ASCENT, &[1, 3]),
                flagging(pb::AnomalyMethod::INCONSISTENT, &[2, 1]),
                flagging(pb::AnomalyMethod::MODIFIED_ZSCORE, &[4]),
            ]
            .into(),
            ..Default::default()
        }
    }

    #[test]
    fn only_the_pair_methods_flags_withdraw_an_accepted_fresh_previous_commitment() {
        let mut config = pb::AnomalyConfig {
            withdraw: true,
            ..Default::default()
        };
        let mut stale = commitment("d", 2);
        stale.staleness = 1;
        let previous = [
            commitment("a", 2),
            commitment("b", 2),
            commitment("c", 2),
            stale,
            commitment("e", 2),
        ];
        let accepted: Vec<String> = ["a", "b", "c", "d", "e"].map(String::from).to_vec();
        let before = RoundBefore {
            accepted: &accepted,
            aggregated_by_fedavg: true,
        };
        // b (ascent and inconsistent: once) and c; not d (its previous update was stale), not
        // e (the z-score's flag says nothing about its previous commitment).
        let members = |positions: Vec<u32>| {
            pb::Verdict {
                withdrawn: positions,
                ..verdict()
            }
            .withdrawn_members()
        };
        assert_eq!(
            members(withdrawn(&config, &verdict(), &previous, Some(before))),
            ["b", "c"].map(String::from)
        );
        // c's commitment to round 2 had been excluded: nothing of it to withdraw.
        let without_c: Vec<String> = ["a", "b", "d", "e"].map(String::from).to_vec();
        let before_c = RoundBefore {
            accepted: &without_c,
            ..before
        };
        assert_eq!(
            members(withdrawn(&config, &verdict(), &previous, Some(before_c))),
            ["b".to_owned()]
        );
        // b's last evaluated commitment is of round 1: it sat out round 2.
        let mut older = previous.clone();
        older[1].round = 1;
        assert_eq!(withdrawn(&config, &verdict(), &older, Some(before)), [2]);
        // Not under another rule or another parent, not without the round before, not when
        // this round aggregates nothing, not without the switch.
        let other_rule = RoundBefore {
            aggregated_by_fedavg: false,
            ..before
        };
        assert!(withdrawn(&config, &verdict(), &previous, Some(other_rule)).is_empty());
        assert!(withdrawn(&config, &verdict(), &previous, None).is_empty());
        let mut nobody = verdict();
        nobody.accepted.clear();
        nobody.excluded.push("a".to_owned());
        nobody.excluded.sort();
        assert!(withdrawn(&config, &nobody, &previous, Some(before)).is_empty());
        // Without a flag of either pair method there is nothing to read the round before for.
        assert!(may_withdraw(&config, &verdict()));
        let mut zscore_only = verdict();
        zscore_only.methods.remove(0);
        zscore_only.methods.remove(0);
        assert!(!may_withdraw(&config, &zscore_only));
        config.withdraw = false;
        assert!(!may_withdraw(&config, &verdict()));
        assert!(withdrawn(&config, &verdict(), &previous, Some(before)).is_empty());
    }
}
