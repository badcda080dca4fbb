//! Random action sequences from a small pool of keys: whatever the order, the declared addresses
//! always suffice (no "state access refused"), nothing is an internal error, and the state stays
//! canonical and consistent.

use bcfl_protos::bcfl as pb;
use proptest::prelude::*;
use sawtooth_sdk::processor::handler::ApplyError;

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
    },
    Commit {
        next: bool,
        tag: u8,
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
        3 => (rare, who.clone(), rare, any::<bool>()).prop_map(|(later, aggregator, parent_base, server)| {
            Step::Open { later, aggregator, parent_base, server }
        }),
        8 => (rare, any::<u8>()).prop_map(|(next, tag)| Step::Commit { next, tag }),
        2 => (who, 0u64..5).prop_map(|(to, epoch)| Step::Report { to, epoch }),
        4 => rare.prop_map(|next| Step::Evaluate { next }),
        4 => (rare, proptest::bool::weighted(0.8)).prop_map(|(next, all)| Step::Aggregate { next, all }),
        1 => rare.prop_map(|next| Step::Close { next }),
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
            open(round, &parent, &person(w, *aggregator), mode)
        }
        Step::Commit { next, tag } => commit(pick(*next), &format!("u{tag}"), SKETCH),
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
        Step::Evaluate { .. } | Step::Aggregate { .. } | Step::Close { .. } => aggregator(),
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
    for n in 1..=consortium.current_round {
        let round = w.ledger.round(n).unwrap();
        assert!(round.committers.windows(2).all(|p| p[0] < p[1]));
        for c in round.get_committers() {
            assert_eq!(w.ledger.commitment(n, c).unwrap().round, n);
        }
        if let Some(agg) = w.ledger.aggregate(n) {
            assert_eq!(agg.contributors, w.ledger.verdict(n).unwrap().accepted);
        }
    }
    assert!(w.ledger.round(consortium.current_round + 1).is_none());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]
    #[test]
    fn random_sequences_keep_state_consistent(steps in proptest::collection::vec(step(), 1..60)) {
        let mut w = World::new();
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
}
