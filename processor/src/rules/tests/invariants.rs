//! Random action sequences from a small pool of keys: whatever the order, the declared addresses
//! always suffice (no "state access refused"), nothing is an internal error, and the state stays
//! canonical and consistent.

use crate::error::ApplyError;
use bcfl_protos::bcfl as pb;
use proptest::prelude::*;

use super::*;
use crate::testing::test_key;

/// Signer 0 is the admin, 1..=3 the registered members, 4 a stranger.
const PEOPLE: usize = 5;

fn person(w: &World, i: usize) -> String {
    match i {
        0 => w.admin.clone(),
        1..=3 => w.m(i - 1),
        _ => test_key("stranger"),
    }
}

#[derive(Clone, Debug)]
enum Step {
    Register(usize),
    Suspend(usize),
    Open {
        later: bool,
        aggregator: usize,
        parent_base: bool,
        server: bool,
        schedule: Schedule,
    },
    Commit {
        next: bool,
        tag: u8,
        /// How many rounds before the round the update's base round is (0: the payload's 0;
        /// [`AFTER`]: a base round after the round).
        stale: u8,
    },
    Report {
        to: usize,
        epoch: u64,
    },
    Evaluate {
        next: bool,
    },
    Aggregate {
        next: bool,
        all: bool,
    },
    Close {
        next: bool,
    },
    /// Dispute a committer's norm (`honest`: a recomputed norm equal to the committed one).
    Dispute {
        committer: usize,
        honest: bool,
    },
    /// Attest the current round's aggregate (`matching`: its hash; `false_dispute`: name a
    /// disputed member as falsely disputed).
    Attest {
        matching: bool,
        false_dispute: bool,
    },
}

/// A commit's `stale` that names the round after the commitment's.
const AFTER: u8 = 9;

/// An `OpenRound`'s synchronization fields, valid or not.
#[derive(Clone, Debug)]
struct Schedule {
    sync: pb::RoundSync,
    buffer_size: u32,
    max_staleness: u32,
    privacy: Vec<pb::PrivacyGuarantee>,
}

fn schedule() -> impl Strategy<Value = Schedule> {
    let schedule = |sync, buffer_size, max_staleness, privacy| Schedule {
        sync,
        buffer_size,
        max_staleness,
        privacy,
    };
    let any_sync = prop_oneof![
        Just(pb::RoundSync::ROUND_SYNC_UNSET),
        Just(pb::RoundSync::SYNCHRONOUS),
        Just(pb::RoundSync::BUFFERED_ASYNC),
    ];
    let privacy = prop_oneof![
        Just(vec![pb::PrivacyGuarantee::DIFFERENTIAL_PRIVACY]),
        Just(vec![pb::PrivacyGuarantee::SECURE_AGGREGATION]),
    ];
    prop_oneof![
        // Valid synchronous rounds (unset or explicit).
        4 => prop_oneof![
            Just(pb::RoundSync::ROUND_SYNC_UNSET),
            Just(pb::RoundSync::SYNCHRONOUS)
        ]
        .prop_map(move |sync| schedule(sync, 0, 0, vec![])),
        // Valid buffered rounds, with small buffers so that they fill.
        4 => (1u32..4, 0u32..4)
            .prop_map(move |(b, s)| schedule(pb::RoundSync::BUFFERED_ASYNC, b, s, vec![])),
        // Anything within (or just beyond) the payload's limits, or a privacy claim.
        1 => (any_sync.clone(), 0u32..20, 0u32..20)
            .prop_map(move |(sync, b, s)| schedule(sync, b, s, vec![])),
        1 => (any_sync, privacy).prop_map(move |(sync, p)| schedule(sync, 0, 0, p)),
    ]
}

fn step() -> impl Strategy<Value = (usize, Step)> {
    // 5 means "the natural signer of the step" (see `natural_signer`).
    let signer =
        prop_oneof![4 => Just(5usize), 2 => Just(0usize), 3 => 1usize..4, 1 => Just(4usize)];
    let who = 1..PEOPLE;
    let rare = proptest::bool::weighted(0.1);
    let s = prop_oneof![
        2 => who.clone().prop_map(Step::Register),
        1 => who.clone().prop_map(Step::Suspend),
        3 => (rare, who.clone(), rare, any::<bool>(), schedule()).prop_map(
            |(later, aggregator, parent_base, server, schedule)| {
                Step::Open { later, aggregator, parent_base, server, schedule }
            }
        ),
        8 => (rare, any::<u8>(), prop_oneof![6 => Just(0u8), 3 => 1u8..4, 1 => Just(AFTER)])
            .prop_map(|(next, tag, stale)| Step::Commit { next, tag, stale }),
        2 => (who, 0u64..5).prop_map(|(to, epoch)| Step::Report { to, epoch }),
        4 => rare.prop_map(|next| Step::Evaluate { next }),
        4 => (rare, proptest::bool::weighted(0.8)).prop_map(|(next, all)| Step::Aggregate { next, all }),
        2 => rare.prop_map(|next| Step::Close { next }),
        1 => (0usize..3, rare).prop_map(|(committer, honest)| Step::Dispute { committer, honest }),
        2 => (proptest::bool::weighted(0.8), rare)
            .prop_map(|(matching, false_dispute)| Step::Attest { matching, false_dispute }),
    ];
    (signer, s)
}

fn payload(w: &World, step: &Step) -> pb::BcflPayload {
    let current = w.ledger.consortium().unwrap().current_round;
    let pick = |next: bool| current.max(1) + u64::from(next);
    match step {
        Step::Register(i) => register(&person(w, *i), &format!("p{i}")),
        Step::Suspend(i) => suspend(&person(w, *i)),
        Step::Open {
            later,
            aggregator,
            parent_base,
            server,
            schedule,
        } => {
            let round = current + 1 + u64::from(*later);
            let parent = match (parent_base, w.ledger.round(current)) {
                (true, _) | (_, None) => base_model(),
                (false, Some(r)) => w
                    .ledger
                    .aggregate(current)
                    .map(|a| a.model_sha256)
                    .unwrap_or(r.parent_model_sha256),
            };
            let mode = if *server {
                pb::RoundMode::SERVER
            } else {
                pb::RoundMode::SERVERLESS
            };
            let mut payload = open(round, &parent, &person(w, *aggregator), mode);
            let o = payload.mut_open_round();
            o.sync = schedule.sync;
            o.buffer_size = schedule.buffer_size;
            o.max_staleness = schedule.max_staleness;
            o.privacy = schedule.privacy.clone();
            payload
        }
        Step::Commit { next, tag, stale } => {
            let round = pick(*next);
            let base = match *stale {
                0 => 0,
                AFTER => round + 1,
                s => round.saturating_sub(u64::from(s)).max(1),
            };
            let mut payload = commit_from(round, &format!("u{tag}"), base);
            // Sketches that differ from commitment to commitment, so that the consensus and
            // what each member's record missed of it differ too.
            payload.mut_commit_update().sketch = (0..SKETCH as u8)
                .map(|k| {
                    tag.wrapping_mul(k.wrapping_add(3))
                        .wrapping_add(round as u8)
                })
                .collect();
            payload
        }
        Step::Report { to, epoch } => with(|p| {
            p.set_report_bandwidth(pb::ReportBandwidth {
                epoch: *epoch,
                measurements: vec![pb::LinkMeasurement {
                    to: person(w, *to),
                    bytes_per_sec: 1000,
                    probe_bytes: 10,
                    ..Default::default()
                }]
                .into(),
                ..Default::default()
            })
        }),
        Step::Evaluate { next } => evaluate(pick(*next)),
        Step::Aggregate { next, all } => {
            let round = pick(*next);
            let accepted: Vec<String> = w
                .ledger
                .verdict(round)
                .map(|v| v.accepted.to_vec())
                .unwrap_or_default();
            let take = if *all {
                accepted.len()
            } else {
                accepted.len().saturating_sub(1)
            };
            let refs: Vec<&str> = accepted[..take].iter().map(String::as_str).collect();
            aggregate(
                round,
                &hash(&format!("g{round}")),
                &refs,
                &[],
                pb::AggregationRule::FEDAVG,
            )
        }
        Step::Close { next } => close(pick(*next)),
        Step::Dispute { committer, honest } => {
            let round = pick(false);
            let member = w
                .ledger
                .round(round)
                .and_then(|r| r.committers.get(*committer).cloned())
                .unwrap_or_else(|| w.m(*committer));
            let norm = w
                .ledger
                .commitment(round, &member)
                .map_or(0, |c| c.norm_micro);
            with(|p| {
                p.set_dispute_commitment(pb::DisputeCommitment {
                    round,
                    member,
                    mismatch: pb::StatMismatch::NORM,
                    norm_micro: if *honest { norm } else { norm + 10_000_000 },
                    ..Default::default()
                })
            })
        }
        Step::Attest {
            matching,
            false_dispute,
        } => {
            let round = pick(false);
            let model = match (matching, w.ledger.aggregate(round)) {
                (true, Some(a)) => a.model_sha256,
                _ => hash("another model"),
            };
            let false_disputes: Vec<String> = match (false_dispute, w.ledger.round(round)) {
                (true, Some(r)) => r
                    .disputes
                    .iter()
                    .map(|d| d.member.clone())
                    .take(1)
                    .collect(),
                _ => Vec::new(),
            };
            with(|p| {
                p.set_attest_aggregate(pb::AttestAggregate {
                    round,
                    model_sha256: model,
                    false_disputes: false_disputes.into(),
                    ..Default::default()
                })
            })
        }
    }
}

/// The signer the step's rule expects: admins administer, members commit and report, the current
/// round's aggregator evaluates, aggregates and closes.
fn natural_signer(w: &World, step: &Step) -> String {
    let current = w.ledger.consortium().unwrap().current_round;
    let aggregator = || {
        w.ledger
            .round(current)
            .map(|r| r.aggregator)
            .unwrap_or_else(|| w.admin.clone())
    };
    match step {
        Step::Register(_) | Step::Suspend(_) | Step::Open { .. } => w.admin.clone(),
        Step::Commit { tag, .. } => w.m(usize::from(*tag) % 3),
        Step::Report { epoch, .. } => w.m(*epoch as usize % 3),
        Step::Evaluate { .. }
        | Step::Aggregate { .. }
        | Step::Close { .. }
        | Step::Dispute { .. } => aggregator(),
        Step::Attest { .. } => w
            .ledger
            .aggregate(current)
            .and_then(|a| a.committee.first().cloned())
            .unwrap_or_else(|| w.m(0)),
    }
}

fn check_state(w: &World) {
    let consortium = w.ledger.consortium().unwrap();
    let directory = w.ledger.directory();
    assert!(directory
        .windows(2)
        .all(|p| p[0].public_key < p[1].public_key));
    for entry in &directory {
        assert_eq!(
            w.ledger.member(&entry.public_key).unwrap().status,
            entry.status
        );
    }
    // Every stored link is in its sender's link index, and the index names nothing else.
    {
        use crate::address::{link_index_address, AddressKind};
        use protobuf::Message;
        let mut linked: std::collections::BTreeMap<String, Vec<String>> = Default::default();
        for (address, bytes) in w.ledger.state() {
            if AddressKind::of(address) == Some(AddressKind::Link) {
                for l in pb::LinkList::parse_from_bytes(bytes).unwrap().entries {
                    linked.entry(l.from.clone()).or_default().push(l.to.clone());
                }
            }
        }
        for (from, mut targets) in linked {
            targets.sort();
            let list =
                pb::LinkIndexList::parse_from_bytes(&w.ledger.state()[&link_index_address(&from)])
                    .unwrap();
            let index = list.entries.into_iter().find(|i| i.from == from).unwrap();
            assert_eq!(index.targets.into_vec(), targets);
        }
    }
    check_sketch_history(w);
    let params = consortium.get_params();
    for n in 1..=consortium.current_round {
        let round = w.ledger.round(n).unwrap();
        assert!(round.committers.windows(2).all(|p| p[0] < p[1]));
        // The stored schedule is explicit and consistent; no privacy guarantee in 1.0.
        assert_ne!(round.sync, pb::RoundSync::ROUND_SYNC_UNSET);
        let buffered = round.sync == pb::RoundSync::BUFFERED_ASYNC;
        if buffered {
            assert!((1..=crate::limits::MAX_ROUND_COMMITTERS as u32).contains(&round.buffer_size));
            assert!(round.max_staleness <= crate::limits::MAX_STALENESS);
        } else {
            assert_eq!((round.buffer_size, round.max_staleness), (0, 0));
        }
        assert!(round.privacy.is_empty());
        // A sampling consortium's rounds name who trains them, and only they commit.
        let drawn = round.get_participants();
        assert_eq!(params.sample_ppm == 0, drawn.is_empty());
        assert!(drawn.windows(2).all(|p| p[0] < p[1]));
        if !drawn.is_empty() {
            assert!(round.committers.iter().all(|c| drawn.contains(c)));
            if round.mode == pb::RoundMode::SERVER {
                assert!(!drawn.contains(&round.aggregator));
            }
        }
        // A verdict binds the next aggregator only when it accepted someone (one that
        // accepted nobody, its one committer falsely disputed, says nothing about who is
        // trustworthy): the case proptest found is kept in proptest-regressions.
        if n > 1 {
            if let Some(previous) = w.ledger.verdict(n - 1).filter(|v| !v.accepted.is_empty()) {
                assert!(!previous.excluded.contains(&round.aggregator));
            }
        }
        for c in round.get_committers() {
            let commitment = w.ledger.commitment(n, c).unwrap();
            assert_eq!(commitment.round, n);
            // Base round explicit and recorded (its parent model is the update's base), staleness
            // within the round's bound.
            assert!((1..=n).contains(&commitment.base_round));
            assert!(w.ledger.round(commitment.base_round).is_some());
            assert_eq!(u64::from(commitment.staleness), n - commitment.base_round);
            let bound = if buffered { round.max_staleness } else { 0 };
            assert!(commitment.staleness <= bound);
        }
        // Disputes name committers once each, sorted; the verdict excludes exactly them unscored.
        let disputed: Vec<String> = round.disputes.iter().map(|d| d.member.clone()).collect();
        assert!(disputed.windows(2).all(|p| p[0] < p[1]));
        assert!(disputed.iter().all(|d| round.committers.contains(d)));
        if let Some(verdict) = w.ledger.verdict(n) {
            let needed = crate::rules::rounds::commitments_needed(params, &round);
            assert!(verdict.accepted.len() + verdict.excluded.len() >= needed as usize);
            assert_eq!(verdict.disputed.to_vec(), disputed);
            assert!(disputed.iter().all(|d| verdict.excluded.contains(d)));
            assert!(verdict.scored().iter().all(|s| !disputed.contains(s)));
            assert!(verdict
                .methods
                .iter()
                .all(|m| m.scores_micro.len() == verdict.scored().len()));
        }
        if let Some(agg) = w.ledger.aggregate(n) {
            // Its contributors and exclusions are the verdict's, stored there once.
            let verdict = w.ledger.verdict(n).unwrap();
            // The committee: at most its size, never the aggregator, the submitter or an
            // excluded member; attestations only from it; finality as the attestations say.
            assert!(agg.committee.len() <= params.committee_size as usize);
            for k in agg.get_committee() {
                assert_ne!(k, &round.aggregator);
                assert_ne!(k, &agg.submitted_by);
                assert!(!verdict.excluded.contains(k));
            }
            assert!(agg
                .attestations
                .iter()
                .all(|a| agg.committee.contains(&a.member)));
            assert_eq!(agg.finality, crate::rules::verification::finality(&agg));
            // The next round starts from a contested aggregate's parent, never from it (unless
            // an admin closed the round unverified and the contest came late).
            if let Some(next) = w.ledger.round(n + 1) {
                if !round.closed_unverified {
                    let expected = match agg.finality {
                        pb::Finality::CONTESTED => &round.parent_model_sha256,
                        _ => &agg.model_sha256,
                    };
                    assert_eq!(&next.parent_model_sha256, expected);
                }
            }
        }
        if round.closed_unverified {
            assert_eq!(round.phase, pb::RoundPhase::CLOSED);
        }
    }
    assert!(w.ledger.round(consortium.current_round + 1).is_none());
}

/// The stored sketch history is the one the commitments and verdicts of the evaluated rounds
/// replay to (as an auditor replays it): every record, restored from the consensus record or
/// the archive of its last round (which must exist) and the member's commitment to that round,
/// equals the replayed entry, the consensus record the replayed one; records store no consensus
/// and no whole sum, verdicts no accepted members.
fn check_sketch_history(w: &World) {
    use crate::address::AddressKind;
    use crate::anomaly::{features, stored};
    use bcfl_protos::compact::Compact;
    use protobuf::Message;
    let state = w.ledger.state();
    let (mut records, mut archives) = (Vec::new(), std::collections::BTreeMap::new());
    let mut kept = pb::ConsensusSketch::default();
    for (address, bytes) in state {
        match AddressKind::of(address) {
            Some(AddressKind::SketchSum) => {
                let list = pb::SketchSumList::parse_from_bytes(bytes).unwrap();
                records.extend(list.expanded().unwrap().entries);
            }
            Some(AddressKind::ConsensusArchive) => {
                let a = pb::ConsensusArchive::parse_from_bytes(bytes).unwrap();
                archives.insert(a.round, a.sum);
            }
            Some(AddressKind::Consensus) => {
                kept = pb::ConsensusSketch::parse_from_bytes(bytes).unwrap();
            }
            Some(AddressKind::Verdict) => {
                assert!(pb::Verdict::parse_from_bytes(bytes)
                    .unwrap()
                    .accepted
                    .is_empty());
            }
            _ => {}
        }
    }
    records.sort_by(|a, b| a.member.cmp(&b.member));
    // Records store no consensus, and their sum without the sketch of their last commitment.
    assert!(records
        .iter()
        .all(|r| r.consensus.is_empty() && r.sum.is_empty()));
    let last = w.ledger.last_commitments(&records);
    let restored = stored::restored_sums(&records, &kept, &archives, &last)
        .unwrap_or_else(|missing| panic!("the state lacks {missing}"));
    let mut replayed = pb::SketchHistory::default();
    let current = w.ledger.consortium().unwrap().current_round;
    for n in 1..=current {
        let Some(verdict) = w.ledger.verdict(n) else {
            continue;
        };
        let round = w.ledger.round(n).unwrap();
        let commitments: Vec<pb::Commitment> = round
            .committers
            .iter()
            .filter(|c| !verdict.disputed.contains(c) && !verdict.unrevealed.contains(c))
            .map(|c| w.ledger.commitment(n, c).unwrap())
            .collect();
        replayed = features::extend_after_verdict(
            &replayed,
            n,
            &commitments,
            &verdict.accepted,
            &verdict.withdrawn_members(),
        );
    }
    assert_eq!(restored, replayed.entries.to_vec());
    assert_eq!(&kept, replayed.get_consensus());
}

/// Submits `payload`: it may be refused, but never for an undeclared address, corrupt state or
/// an internal error. Returns whether it was accepted.
fn submit_checked(
    w: &mut World,
    signer: &str,
    payload: &pb::BcflPayload,
) -> Result<bool, TestCaseError> {
    match w.ledger.submit(signer, payload) {
        Ok(events) if events.len() == 1 => Ok(true),
        Ok(events) => Err(TestCaseError::fail(format!("{} events", events.len()))),
        Err(ApplyError::InvalidTransaction(msg))
            if msg.starts_with("state access refused") || msg.contains("is not a valid") =>
        {
            Err(TestCaseError::fail(msg))
        }
        Err(ApplyError::InvalidTransaction(_)) => Ok(false),
        Err(other) => Err(TestCaseError::fail(format!("{other:?}"))),
    }
}

/// One round of a chain: its schedule, then commitments `(member, rounds stale)`.
fn chain_round() -> impl Strategy<Value = (Schedule, Vec<(usize, u8)>)> {
    (
        schedule(),
        proptest::collection::vec((0usize..3, prop_oneof![2 => Just(0u8), 3 => 1u8..5]), 0..5),
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]
    #[test]
    fn random_sequences_keep_state_consistent(
        steps in proptest::collection::vec(step(), 1..60),
        sample_ppm in prop_oneof![Just(0u32), Just(600_000u32)],
    ) {
        let mut w = World::with_params(pb::ConsortiumParams { committee_size: 1, sample_ppm, ..params() });
        for (signer, step) in steps {
            let signer = if signer == 5 { natural_signer(&w, &step) } else { person(&w, signer) };
            let payload = payload(&w, &step);
            match w.ledger.submit(&signer, &payload) {
                Ok(events) => prop_assert_eq!(events.len(), 1),
                Err(ApplyError::InvalidTransaction(msg)) => {
                    prop_assert!(!msg.starts_with("state access refused"), "{:?}: {}", step, msg);
                    prop_assert!(!msg.contains("is not a valid"), "{:?}: {}", step, msg);
                }
                Err(other) => prop_assert!(false, "{:?}: {:?}", step, other),
            }
            check_state(&w);
        }
    }

    /// Chains of rounds driven in order (open, commit, evaluate, aggregate, close), with random
    /// schedules and updates trained from earlier rounds: stale commitments reach deep rounds,
    /// their base rounds are declared, and the state stays consistent.
    #[test]
    fn chains_of_buffered_rounds_keep_commitments_consistent(
        rounds in proptest::collection::vec(chain_round(), 1..7),
    ) {
        let mut w = World::new();
        let admin = w.admin.clone();
        for (schedule, commits) in rounds {
            let current = w.ledger.consortium().unwrap().current_round;
            let n = current + 1;
            let parent = match w.ledger.round(current) {
                None => base_model(),
                Some(r) => w.ledger.aggregate(current).map(|a| a.model_sha256).unwrap_or(r.parent_model_sha256),
            };
            let aggregator = w.m(usize::try_from(n % 3).unwrap());
            let mut open = open(n, &parent, &aggregator, pb::RoundMode::SERVERLESS);
            let o = open.mut_open_round();
            o.sync = schedule.sync;
            o.buffer_size = schedule.buffer_size;
            o.max_staleness = schedule.max_staleness;
            o.privacy = schedule.privacy.clone();
            if !submit_checked(&mut w, &admin, &open)? {
                continue;
            }
            for (i, (member, stale)) in commits.iter().enumerate() {
                let base = n.saturating_sub(u64::from(*stale)).max(1);
                let m = w.m(*member);
                submit_checked(&mut w, &m, &commit_from(n, &format!("u{n}.{i}"), base))?;
                check_state(&w);
            }
            if submit_checked(&mut w, &aggregator, &evaluate(n))? {
                let accepted = w.ledger.verdict(n).unwrap().accepted.to_vec();
                let refs: Vec<&str> = accepted.iter().map(String::as_str).collect();
                let model = hash(&format!("g{n}"));
                submit_checked(
                    &mut w,
                    &aggregator,
                    &aggregate(n, &model, &refs, &[], pb::AggregationRule::FEDAVG),
                )?;
            }
            prop_assert!(submit_checked(&mut w, &admin, &close(n))?);
            check_state(&w);
        }
    }
}
