//! The decisions of a round that follow from the ledger alone: pure functions of the family
//! state, so that every node (and an auditor) reaches the same answer.
//!
//! - [`parent_of`]: the model a round starts from (the processor's rule);
//! - [`aggregator_candidates`] and [`choose_aggregator`]: who may aggregate the next round (not
//!   a member the previous verdict excluded, unless it excluded everyone) and who does (serverless: the centre of the measured bandwidth graph; server: the fixed one);
//! - [`commit_target`] and [`evaluation_quorum`]: when a round's commit phase may end;
//! - [`sketches_after_commit`], [`sketch_seed`], [`checked_seed`] and [`close_commits`]:
//!   whether the commit phase ends with `SealRound` (the sketches then revealed) or
//!   `EvaluateRound`, and the seed a round's sketches are made and checked with;
//! - [`staleness_weight_ppm`]: how much a buffered-asynchronous update counts by its age;
//! - [`routing_graph`]: the graph a round's transfers are routed on;
//! - [`globals_to_follow`]: which global models a member fetches and checks, in which order.

use std::collections::{BTreeMap, BTreeSet};

use bcfl_processor::graph::{BandwidthGraph, CentreCriterion, TransferModel};
use bcfl_processor::limits::LINK_SAMPLES_KEPT;
use bcfl_processor::rules::rounds;
use bcfl_protos::bcfl as pb;

use bcfl_ledger::state::FamilyState;

/// Size of the transfer the centre is computed for. Store-and-forward latencies all scale with
/// it, so the choice does not depend on it.
const CENTRE_MODEL_BYTES: f64 = 1_048_576.0;

/// A decision the ledger does not allow yet.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    /// No consortium on chain.
    #[error("the consortium is not initialized")]
    NoConsortium,
    /// A round the decision needs is not on chain.
    #[error("round {0} is not on chain")]
    NoRound(u64),
    /// Nobody can aggregate.
    #[error("no member can aggregate round {round}: {reason}")]
    NoAggregator {
        /// The round being opened.
        round: u64,
        /// Why.
        reason: String,
    },
}

/// The model `round` starts from, by the processor's rule (its own functions, where it has
/// them): round 1 from the consortium's initial model (or base model when none is recorded);
/// later rounds from the previous round's
/// aggregate, or, when that round was abandoned, from its own parent.
pub fn parent_of(state: &FamilyState, round: u64) -> Result<String, ScheduleError> {
    let consortium = state
        .consortium
        .as_ref()
        .ok_or(ScheduleError::NoConsortium)?;
    if round <= 1 {
        return Ok(rounds::initial_model(consortium.get_params()).to_owned());
    }
    if let Some(aggregate) = state.aggregates.get(&(round - 1)) {
        return Ok(aggregate.model_sha256.clone());
    }
    state
        .rounds
        .get(&(round - 1))
        .map(|r| r.parent_model_sha256.clone())
        .ok_or(ScheduleError::NoRound(round - 1))
}

/// The members that may aggregate round `round`: active, not excluded by round `round - 1`'s
/// verdict (the processor refuses those), and, when round `round - 1` had commitments, among
/// its committers (a member that stopped committing is probably gone; when that leaves nobody,
/// every active member not excluded is a candidate).
pub fn aggregator_candidates(state: &FamilyState, round: u64) -> BTreeSet<String> {
    // As the processor: a verdict that accepted nobody binds nobody.
    let excluded: BTreeSet<&String> = state
        .verdicts
        .get(&round.saturating_sub(1))
        .filter(|v| !v.accepted.is_empty())
        .map(|v| v.excluded.iter().collect())
        .unwrap_or_default();
    let eligible: BTreeSet<String> = state
        .members
        .values()
        .filter(|m| m.status == pb::MemberStatus::ACTIVE && !excluded.contains(&m.public_key))
        .map(|m| m.public_key.clone())
        .collect();
    let alive: BTreeSet<String> = state
        .rounds
        .get(&round.saturating_sub(1))
        .map(|r| {
            r.committers
                .iter()
                .filter(|c| eligible.contains(*c))
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    if alive.is_empty() {
        eligible
    } else {
        alive
    }
}

/// The centre of the measured bandwidth graph among `candidates` (links between two
/// candidates, each the median of its kept samples): the member whose worst round trip is
/// smallest, ties by total then key.
pub fn centre(
    state: &FamilyState,
    candidates: &BTreeSet<String>,
) -> Result<String, bcfl_processor::graph::GraphError> {
    let links = state
        .links
        .values()
        .filter(|l| candidates.contains(&l.from) && candidates.contains(&l.to));
    let graph = BandwidthGraph::from_ledger_links(links, LINK_SAMPLES_KEPT)?;
    let model = TransferModel::new(CENTRE_MODEL_BYTES, CENTRE_MODEL_BYTES)?;
    Ok(graph
        .centre(&model, CentreCriterion::MinMax)?
        .node
        .as_str()
        .to_owned())
}

/// The graph a round's transfers are routed on: each of `links` (the median of its kept
/// samples) less those from or to a member of `removed` and, in a SERVER round, only the links
/// from or to its server.
pub fn routing_graph<'a>(
    links: impl IntoIterator<Item = &'a pb::Link>,
    round: &pb::Round,
    removed: &BTreeSet<String>,
) -> Result<BandwidthGraph, bcfl_processor::graph::GraphError> {
    let server = (round.mode == pb::RoundMode::SERVER).then_some(&round.aggregator);
    let links = links.into_iter().filter(|l| {
        !removed.contains(&l.from)
            && !removed.contains(&l.to)
            && server.is_none_or(|s| &l.from == s || &l.to == s)
    });
    BandwidthGraph::from_ledger_links(links, LINK_SAMPLES_KEPT)
}

/// How the aggregator of a round is chosen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AggregatorChoice {
    /// Serverless: the centre of the measured graph among the candidates (the first candidate
    /// by key while the graph has no centre, e.g. before any link is measured).
    Centre,
    /// Server mode: always this member.
    Fixed(String),
}

/// The aggregator of round `round`.
pub fn choose_aggregator(
    state: &FamilyState,
    round: u64,
    choice: &AggregatorChoice,
) -> Result<String, ScheduleError> {
    let candidates = aggregator_candidates(state, round);
    match choice {
        AggregatorChoice::Fixed(key) => {
            let active = state
                .members
                .get(key)
                .is_some_and(|m| m.status == pb::MemberStatus::ACTIVE);
            let excluded = state
                .verdicts
                .get(&round.saturating_sub(1))
                .is_some_and(|v| !v.accepted.is_empty() && v.excluded.contains(key));
            if active && !excluded {
                Ok(key.clone())
            } else {
                Err(ScheduleError::NoAggregator {
                    round,
                    reason: format!("the server {key} is not an active member in good standing"),
                })
            }
        }
        AggregatorChoice::Centre => {
            let first =
                candidates
                    .iter()
                    .next()
                    .cloned()
                    .ok_or_else(|| ScheduleError::NoAggregator {
                        round,
                        reason: "no active member in good standing".into(),
                    })?;
            if candidates.len() == 1 {
                return Ok(first);
            }
            Ok(centre(state, &candidates).unwrap_or_else(|e| {
                tracing::info!(round, reason = %e, "no graph centre yet: the first candidate aggregates");
                first
            }))
        }
    }
}

/// Whether `round` aggregates buffered updates (FedBuff style) rather than waiting for all.
pub fn is_buffered(round: &pb::Round) -> bool {
    rounds::round_sync(round) == pb::RoundSync::BUFFERED_ASYNC
}

/// Whether `key` may train and commit to `round`: every active member may, unless the
/// consortium samples, in which case only the members the ledger drew at `OpenRound`.
pub fn drawn(round: &pb::Round, key: &str) -> bool {
    round.participants.is_empty() || round.participants.iter().any(|p| p == key)
}

/// The commitments an aggregator waits for before it evaluates `round` without waiting for a
/// deadline: one from each of [`trainers`] (synchronous), or the buffer size K (buffered
/// asynchronous).
pub fn commit_target(state: &FamilyState, round: &pb::Round) -> usize {
    if is_buffered(round) {
        return round.buffer_size as usize;
    }
    trainers(state, round).len()
}

/// The members expected to train `round`: every active member (in server mode every one but
/// the central aggregator, which does not train) or, when the consortium samples, every active
/// drawn one.
pub fn trainers(state: &FamilyState, round: &pb::Round) -> BTreeSet<String> {
    let active = |k: &String| {
        state
            .members
            .get(k)
            .is_some_and(|m| m.status == pb::MemberStatus::ACTIVE)
    };
    if !round.participants.is_empty() {
        return round
            .participants
            .iter()
            .filter(|k| active(k))
            .cloned()
            .collect();
    }
    state
        .members
        .keys()
        .filter(|k| active(k))
        .filter(|k| round.mode != pb::RoundMode::SERVER || **k != round.aggregator)
        .cloned()
        .collect()
}

/// The commitments the processor requires to evaluate `round`: the consortium's commit quorum
/// (synchronous) or the buffer size (buffered asynchronous).
pub fn evaluation_quorum(state: &FamilyState, round: &pb::Round) -> usize {
    state.consortium.as_ref().map_or(usize::MAX, |c| {
        rounds::commitments_needed(c.get_params(), round) as usize
    })
}

/// Whether the consortium's sketches come after the commitments (`sketch_after_commit`): its
/// rounds are sealed, then revealed, then evaluated.
pub fn sketches_after_commit(state: &FamilyState) -> bool {
    state
        .consortium
        .as_ref()
        .is_some_and(|c| c.get_params().sketch_after_commit)
}

/// The seed round `round`'s sketches are made with: its number, or, when sketches come after the
/// commitments, the seed `SealRound` drew (`None` before the round is sealed).
pub fn sketch_seed(state: &FamilyState, round: &pb::Round) -> Option<u64> {
    if !sketches_after_commit(state) {
        return Some(round.number);
    }
    (round.phase != pb::RoundPhase::OPEN).then_some(round.sketch_seed)
}

/// The seed round `round`'s commitments are checked against their blobs with: its
/// [`sketch_seed`], or the round number while it has none (a sealed consortium's round before
/// `SealRound`, whose commitments carry no sketch to check).
pub fn checked_seed(state: &FamilyState, round: u64) -> u64 {
    state
        .rounds
        .get(&round)
        .and_then(|r| sketch_seed(state, r))
        .unwrap_or(round)
}

/// The transaction that ends round `round`'s commit phase: `SealRound` when sketches come after
/// the commitments, else `EvaluateRound`; and its name for logs.
pub fn close_commits(state: &FamilyState, round: u64) -> (pb::BcflPayload, String) {
    let mut payload = pb::BcflPayload::new();
    if sketches_after_commit(state) {
        payload.set_seal_round(pb::SealRound {
            round,
            ..Default::default()
        });
        (payload, format!("SealRound {round}"))
    } else {
        (evaluate_payload(round), format!("EvaluateRound {round}"))
    }
}

/// `EvaluateRound` of `round`.
pub fn evaluate_payload(round: u64) -> pb::BcflPayload {
    let mut payload = pb::BcflPayload::new();
    payload.set_evaluate_round(pb::EvaluateRound {
        round,
        ..Default::default()
    });
    payload
}

/// The weight factor of an update `staleness` rounds old, in parts per million:
/// `round(1e6 / sqrt(1 + staleness))` (FedBuff's polynomial staleness function with exponent
/// 1/2). A fresh update counts fully (1,000,000); the aggregate weighs each update by its
/// sample count times this factor. IEEE `sqrt` is correctly rounded, so every node computes the
/// same integers.
pub fn staleness_weight_ppm(staleness: u32) -> u64 {
    (1e6 / (1.0 + f64::from(staleness)).sqrt()).round() as u64
}

/// The rounds whose aggregate (global model) a member holding `loaded` should fetch next, in
/// round order: every aggregated round from `from` on (the newest round aggregated when the
/// member started, so that a node starting late does not fetch the history) that it has not
/// loaded. Every one, not only the newest: a member busy while two aggregates go by still
/// holds, checks and scores the first.
pub fn globals_to_follow(
    aggregates: &BTreeMap<u64, pb::Aggregate>,
    loaded: &BTreeSet<u64>,
    from: u64,
) -> Vec<u64> {
    aggregates
        .range(from..)
        .map(|(&round, _)| round)
        .filter(|round| !loaded.contains(round))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_member_follows_every_global_model_since_it_started_in_order() {
        let aggregates: BTreeMap<u64, pb::Aggregate> =
            (1..=5).map(|r| (r, pb::Aggregate::default())).collect();
        // Round 2 loaded, 3 and 4 went by while the member was busy: 3, 4 and 5 in order.
        let loaded = BTreeSet::from([0, 1, 2]);
        assert_eq!(globals_to_follow(&aggregates, &loaded, 1), vec![3, 4, 5]);
        // A node that started when round 4 was the newest does not fetch the history.
        assert_eq!(
            globals_to_follow(&aggregates, &BTreeSet::new(), 4),
            vec![4, 5]
        );
        let all = (0..=5).collect();
        assert!(globals_to_follow(&aggregates, &all, 1).is_empty());
        assert!(globals_to_follow(&BTreeMap::new(), &loaded, 1).is_empty());
    }

    fn key(c: char) -> String {
        format!("02{}", c.to_string().repeat(64))
    }

    fn member(c: char, status: pb::MemberStatus) -> pb::Member {
        pb::Member {
            public_key: key(c),
            status,
            ..Default::default()
        }
    }

    fn link(from: char, to: char, bps: u64) -> pb::Link {
        pb::Link {
            from: key(from),
            to: key(to),
            samples: vec![pb::LinkSample {
                epoch: 1,
                bytes_per_sec: bps,
                rtt_us: 100,
                probe_bytes: 1,
                ..Default::default()
            }]
            .into(),
            ..Default::default()
        }
    }

    fn state(members: &[char]) -> FamilyState {
        let mut s = FamilyState::default();
        let mut params = pb::ConsortiumParams {
            base_model_sha256: "b".repeat(64),
            commit_quorum: 2,
            ..Default::default()
        };
        params.initial_model_sha256 = "i".repeat(64);
        s.consortium = Some(pb::Consortium {
            params: Some(params).into(),
            ..Default::default()
        });
        for &c in members {
            s.members
                .insert(key(c), member(c, pb::MemberStatus::ACTIVE));
        }
        s
    }

    #[test]
    fn parents_follow_the_processor_rule() {
        let mut s = state(&['a']);
        assert_eq!(parent_of(&s, 1).unwrap(), "i".repeat(64));
        s.consortium
            .as_mut()
            .unwrap()
            .mut_params()
            .initial_model_sha256 = String::new();
        assert_eq!(parent_of(&s, 1).unwrap(), "b".repeat(64));
        assert_eq!(parent_of(&s, 2), Err(ScheduleError::NoRound(1)));
        s.rounds.insert(
            1,
            pb::Round {
                number: 1,
                parent_model_sha256: "p".repeat(64),
                ..Default::default()
            },
        );
        // Abandoned round 1: round 2 starts from round 1's parent.
        assert_eq!(parent_of(&s, 2).unwrap(), "p".repeat(64));
        s.aggregates.insert(
            1,
            pb::Aggregate {
                round: 1,
                model_sha256: "g".repeat(64),
                ..Default::default()
            },
        );
        assert_eq!(parent_of(&s, 2).unwrap(), "g".repeat(64));
        assert_eq!(
            parent_of(&FamilyState::default(), 1),
            Err(ScheduleError::NoConsortium)
        );
    }

    #[test]
    fn excluded_suspended_and_silent_members_do_not_aggregate() {
        let mut s = state(&['a', 'b', 'c', 'd']);
        s.members
            .insert(key('d'), member('d', pb::MemberStatus::SUSPENDED));
        // Round 1: every active member.
        let all: BTreeSet<String> = ['a', 'b', 'c'].iter().map(|&c| key(c)).collect();
        assert_eq!(aggregator_candidates(&s, 1), all);
        // Round 1 had b and c commit, and its verdict excluded c: only b is left for round 2.
        s.rounds.insert(
            1,
            pb::Round {
                number: 1,
                committers: vec![key('b'), key('c')].into(),
                ..Default::default()
            },
        );
        s.verdicts.insert(
            1,
            pb::Verdict {
                round: 1,
                accepted: vec![key('b')].into(),
                excluded: vec![key('c')].into(),
                ..Default::default()
            },
        );
        let only_b: BTreeSet<String> = [key('b')].into();
        assert_eq!(aggregator_candidates(&s, 2), only_b);
        assert_eq!(
            choose_aggregator(&s, 2, &AggregatorChoice::Centre).unwrap(),
            key('b')
        );
        // A fixed server excluded by the verdict cannot aggregate.
        let err = choose_aggregator(&s, 2, &AggregatorChoice::Fixed(key('c'))).unwrap_err();
        assert!(err.to_string().contains("good standing"), "{err}");
        // A fixed server that did not commit (the server need not train) still can.
        assert_eq!(
            choose_aggregator(&s, 2, &AggregatorChoice::Fixed(key('a'))).unwrap(),
            key('a')
        );
    }

    #[test]
    fn a_verdict_that_excluded_everyone_binds_nobody() {
        let mut s = state(&['a', 'b']);
        s.verdicts.insert(
            1,
            pb::Verdict {
                round: 1,
                excluded: vec![key('a'), key('b')].into(),
                ..Default::default()
            },
        );
        assert_eq!(aggregator_candidates(&s, 2).len(), 2);
        assert_eq!(
            choose_aggregator(&s, 2, &AggregatorChoice::Fixed(key('b'))).unwrap(),
            key('b')
        );
    }

    #[test]
    fn the_centre_of_a_star_aggregates_and_no_links_means_the_first_key() {
        let mut s = state(&['a', 'b', 'c']);
        assert_eq!(
            choose_aggregator(&s, 1, &AggregatorChoice::Centre).unwrap(),
            key('a')
        );
        for (from, to) in [('a', 'b'), ('b', 'a'), ('c', 'b'), ('b', 'c')] {
            s.links.insert((key(from), key(to)), link(from, to, 1000));
        }
        assert_eq!(
            choose_aggregator(&s, 1, &AggregatorChoice::Centre).unwrap(),
            key('b')
        );
    }

    #[test]
    fn targets_and_quorums_by_mode() {
        let s = state(&['a', 'b', 'c']);
        let mut round = pb::Round {
            sync: pb::RoundSync::SYNCHRONOUS,
            ..Default::default()
        };
        assert_eq!(commit_target(&s, &round), 3);
        assert_eq!(evaluation_quorum(&s, &round), 2);
        // The central server of a server-mode round does not train.
        let server = pb::Round {
            mode: pb::RoundMode::SERVER,
            aggregator: key('a'),
            ..round.clone()
        };
        assert_eq!(commit_target(&s, &server), 2);
        // A sampled round waits for its drawn members that are still active.
        let mut s2 = state(&['a', 'b', 'c']);
        let sampled = pb::Round {
            participants: vec![key('a'), key('c')].into(),
            ..round.clone()
        };
        assert_eq!(commit_target(&s2, &sampled), 2);
        assert!(drawn(&sampled, &key('c')) && !drawn(&sampled, &key('b')));
        assert!(drawn(&round, &key('b')));
        s2.members.get_mut(&key('c')).unwrap().status = pb::MemberStatus::SUSPENDED;
        assert_eq!(commit_target(&s2, &sampled), 1);
        round.sync = pb::RoundSync::BUFFERED_ASYNC;
        round.buffer_size = 2;
        assert_eq!(commit_target(&s, &round), 2);
        assert_eq!(evaluation_quorum(&s, &round), 2);
    }

    #[test]
    fn staleness_weights_are_known_and_decreasing() {
        assert_eq!(staleness_weight_ppm(0), 1_000_000);
        assert_eq!(staleness_weight_ppm(1), 707_107);
        assert_eq!(staleness_weight_ppm(3), 500_000);
        assert_eq!(staleness_weight_ppm(8), 333_333);
        for s in 0..64 {
            assert!(staleness_weight_ppm(s + 1) < staleness_weight_ppm(s));
        }
    }
}
