//! Round life-cycle rules.

use bcfl_protos::bcfl as pb;
use pb::AggregationRule::{FEDAVG, MEDIAN};
use pb::RoundMode::{SERVER, SERVERLESS};
use pb::RoundPhase::{AGGREGATED, CLOSED, EVALUATED, OPEN};

use super::*;
use crate::testing::{test_key, MemoryLedger};

#[test]
fn open_round_rules() {
    let mut w = World::new();
    let (m0, m1) = (w.m(0), w.m(1));
    let msg = rejected(
        w.ledger
            .submit(&m0, &open(1, &base_model(), &m0, SERVERLESS)),
    );
    assert_eq!(msg, "only an admin may open rounds");
    let msg = rejected(w.admin_submit(&open(2, &base_model(), &m0, SERVERLESS)));
    assert_eq!(msg, "the next round is 1, not 2");
    let msg = rejected(w.admin_submit(&open(1, &hash("other"), &m0, SERVERLESS)));
    assert_eq!(
        msg,
        format!(
            "round 1 must start from model {}, not {}",
            base_model(),
            hash("other")
        )
    );
    let stranger = test_key("stranger");
    let msg = rejected(w.admin_submit(&open(1, &base_model(), &stranger, SERVERLESS)));
    assert_eq!(
        msg,
        format!("aggregator {stranger} is not a registered member")
    );
    w.admin_submit(&suspend(&m1)).unwrap();
    let msg = rejected(w.admin_submit(&open(1, &base_model(), &m1, SERVERLESS)));
    assert_eq!(msg, format!("aggregator {m1} is suspended"));
    let msg = rejected(w.admin_submit(&open(1, &base_model(), &m0, SERVERLESS)));
    assert_eq!(
        msg,
        "opening a round needs at least 3 active members, there are 2"
    );
    w.admin_submit(&register(&m1, "back")).unwrap();
    let events = w
        .admin_submit(&open(1, &base_model(), &m0, SERVERLESS))
        .unwrap();
    assert_eq!(events[0].event_type, "bcfl/open_round");
    assert_eq!(events[0].attribute("round"), Some("1"));
    let round = w.ledger.round(1).unwrap();
    assert_eq!(
        (round.phase, round.aggregator.as_str()),
        (OPEN, m0.as_str())
    );
    assert_eq!(w.ledger.consortium().unwrap().current_round, 1);
    let msg = rejected(w.admin_submit(&open(2, &base_model(), &m0, SERVERLESS)));
    assert_eq!(msg, "round 1 is OPEN; close it before opening round 2");
    let msg = rejected(w.admin_submit(&open(0, &base_model(), &m0, SERVERLESS)));
    assert!(msg.contains("rounds are numbered from 1"), "{msg}");
}

#[test]
fn commit_update_rules() {
    let mut w = World::new();
    let (m0, m1, m2) = (w.m(0), w.m(1), w.m(2));
    let msg = rejected(w.ledger.submit(&m0, &commit(1, "u", SKETCH)));
    assert_eq!(msg, "round 1 does not exist");
    w.admin_submit(&open(1, &base_model(), &m0, SERVERLESS))
        .unwrap();
    let msg = rejected(w.ledger.submit(&m1, &commit(1, "u", SKETCH + 1)));
    assert_eq!(
        msg,
        format!("the sketch must hold {SKETCH} values, got {}", SKETCH + 1)
    );
    // Commit in reverse key order: the round keeps committers sorted.
    w.ledger.submit(&m2, &commit(1, "u2", SKETCH)).unwrap();
    w.ledger.submit(&m1, &commit(1, "u1", SKETCH)).unwrap();
    let msg = rejected(w.ledger.submit(&m1, &commit(1, "again", SKETCH)));
    assert_eq!(msg, format!("{m1} already committed to round 1"));
    assert_eq!(
        w.ledger.round(1).unwrap().committers.to_vec(),
        vec![m1.clone(), m2.clone()]
    );
    let c = w.ledger.commitment(1, &m1).unwrap();
    assert_eq!(
        (c.update_sha256.clone(), c.sketch.len()),
        (hash("u1"), SKETCH)
    );
    let admin = w.admin.clone();
    let admin_msg = rejected(w.ledger.submit(&admin, &commit(1, "u", SKETCH)));
    assert_eq!(
        admin_msg,
        format!("signer {admin} is not a registered member")
    );
    w.admin_submit(&suspend(&m0)).unwrap();
    let msg = rejected(w.ledger.submit(&m0, &commit(1, "u0", SKETCH)));
    assert_eq!(msg, format!("signer {m0} is suspended"));
}

#[test]
fn evaluate_round_rules() {
    let mut w = World::new();
    let (m0, m1, m2) = (w.m(0), w.m(1), w.m(2));
    w.admin_submit(&open(1, &base_model(), &m0, SERVERLESS))
        .unwrap();
    w.ledger.submit(&m1, &commit(1, "u1", SKETCH)).unwrap();
    let msg = rejected(w.ledger.submit(&m0, &evaluate(1)));
    assert_eq!(msg, "round 1 has 1 commitments, the quorum is 2");
    w.ledger.submit(&m2, &commit(1, "u2", SKETCH)).unwrap();
    let msg = rejected(w.ledger.submit(&m1, &evaluate(1)));
    assert_eq!(
        msg,
        "only an admin or the round's aggregator may evaluate round 1"
    );
    let events = w.ledger.submit(&m0, &evaluate(1)).unwrap();
    assert_eq!(events[0].attribute("accepted"), Some("2"));
    let verdict = w.ledger.verdict(1).unwrap();
    assert_eq!(verdict.accepted.to_vec(), vec![m1.clone(), m2.clone()]);
    assert!(verdict.excluded.is_empty() && verdict.methods.is_empty());
    assert_eq!(verdict.evaluated_by, m0);
    assert_eq!(w.ledger.round(1).unwrap().phase, EVALUATED);
    let msg = rejected(w.admin_submit(&evaluate(1)));
    assert_eq!(msg, "round 1 is EVALUATED, not OPEN");
    let msg = rejected(w.ledger.submit(&m2, &commit(1, "late", SKETCH)));
    assert_eq!(msg, "round 1 is EVALUATED, not OPEN");
}

#[test]
fn commit_aggregate_rules() {
    let mut w = World::new();
    let (m0, m1) = (w.m(0), w.m(1));
    w.round_one_committed();
    let model = hash("global 1");
    let msg = rejected(
        w.ledger
            .submit(&m0, &aggregate(1, &model, &[&m0, &m1], &[], FEDAVG)),
    );
    assert_eq!(msg, "round 1 is OPEN, not EVALUATED");
    w.ledger.submit(&m0, &evaluate(1)).unwrap();
    let msg = rejected(
        w.ledger
            .submit(&m1, &aggregate(1, &model, &[&m0, &m1], &[], FEDAVG)),
    );
    assert!(msg.starts_with("only the round's aggregator"), "{msg}");
    let msg = rejected(w.admin_submit(&aggregate(1, &model, &[&m0, &m1], &[], FEDAVG)));
    assert!(
        msg.starts_with("only the round's aggregator"),
        "admins may not in SERVERLESS mode: {msg}"
    );
    let msg = rejected(
        w.ledger
            .submit(&m0, &aggregate(1, &model, &[&m0], &[], FEDAVG)),
    );
    assert!(
        msg.starts_with("the contributors must be exactly the verdict's accepted members"),
        "{msg}"
    );
    let msg = rejected(
        w.ledger
            .submit(&m0, &aggregate(1, &model, &[&m0, &m1], &[&w.m(2)], FEDAVG)),
    );
    assert!(
        msg.starts_with("the excluded members must be exactly the verdict's"),
        "{msg}"
    );
    let msg = rejected(
        w.ledger
            .submit(&m0, &aggregate(1, &model, &[&m0, &m1], &[], MEDIAN)),
    );
    assert_eq!(
        msg,
        "the aggregation rule must be the consortium's FEDAVG, not MEDIAN"
    );
    // Contributors in any order are accepted (they are a set).
    w.ledger
        .submit(&m0, &aggregate(1, &model, &[&m1, &m0], &[], FEDAVG))
        .unwrap();
    let agg = w.ledger.aggregate(1).unwrap();
    assert_eq!(agg.contributors.to_vec(), vec![m0.clone(), m1.clone()]);
    assert_eq!(
        (agg.model_sha256.as_str(), agg.submitted_by.as_str()),
        (model.as_str(), m0.as_str())
    );
    assert_eq!(w.ledger.round(1).unwrap().phase, AGGREGATED);
}

#[test]
fn server_mode_lets_an_admin_aggregate() {
    let mut w = World::new();
    let (m0, m1) = (w.m(0), w.m(1));
    w.admin_submit(&open(1, &base_model(), &m0, SERVER))
        .unwrap();
    w.ledger.submit(&m0, &commit(1, "u0", SKETCH)).unwrap();
    w.ledger.submit(&m1, &commit(1, "u1", SKETCH)).unwrap();
    w.admin_submit(&evaluate(1)).unwrap();
    w.admin_submit(&aggregate(1, &hash("g"), &[&m0, &m1], &[], FEDAVG))
        .unwrap();
    assert_eq!(w.ledger.aggregate(1).unwrap().submitted_by, w.admin);
}

#[test]
fn close_round_rules() {
    let mut w = World::new();
    let (m0, m1) = (w.m(0), w.m(1));
    w.round_one_evaluated();
    let msg = rejected(w.ledger.submit(&m0, &close(1)));
    assert_eq!(msg, "only an admin may abandon round 1 (EVALUATED)");
    w.ledger
        .submit(&m0, &aggregate(1, &hash("g1"), &[&m0, &m1], &[], FEDAVG))
        .unwrap();
    let msg = rejected(w.ledger.submit(&m1, &close(1)));
    assert_eq!(
        msg,
        "only an admin or the round's aggregator may close round 1"
    );
    let events = w.ledger.submit(&m0, &close(1)).unwrap();
    assert_eq!(events[0].attribute("abandoned"), Some("false"));
    assert_eq!(w.ledger.round(1).unwrap().phase, CLOSED);
    let msg = rejected(w.admin_submit(&close(1)));
    assert_eq!(msg, "round 1 is already CLOSED");
    let msg = rejected(w.admin_submit(&close(9)));
    assert_eq!(msg, "round 9 does not exist");
}

#[test]
fn parents_follow_aggregates_and_abandoned_rounds() {
    let mut w = World::new();
    let (m0, m1) = (w.m(0), w.m(1));
    w.round_one_evaluated();
    let g1 = hash("g1");
    w.ledger
        .submit(&m0, &aggregate(1, &g1, &[&m0, &m1], &[], FEDAVG))
        .unwrap();
    w.ledger.submit(&m0, &close(1)).unwrap();
    // Round 2 must start from round 1's aggregate.
    let msg = rejected(w.admin_submit(&open(2, &base_model(), &m1, SERVERLESS)));
    assert_eq!(
        msg,
        format!("round 2 must start from model {g1}, not {}", base_model())
    );
    w.admin_submit(&open(2, &g1, &m1, SERVERLESS)).unwrap();
    // Abandon round 2 while OPEN: round 3 starts from round 2's parent.
    let events = w.admin_submit(&close(2)).unwrap();
    assert_eq!(events[0].attribute("abandoned"), Some("true"));
    let msg = rejected(w.admin_submit(&open(3, &hash("g2"), &m1, SERVERLESS)));
    assert!(
        msg.starts_with(&format!("round 3 must start from model {g1}")),
        "{msg}"
    );
    w.admin_submit(&open(3, &g1, &m1, SERVERLESS)).unwrap();
    assert_eq!(w.ledger.round(3).unwrap().parent_model_sha256, g1);
}

/// The same transactions give the same state bytes (no hidden nondeterminism).
#[test]
fn replay_is_deterministic() {
    let run = || {
        let mut w = World::new();
        w.round_one_evaluated();
        let (m0, m1) = (w.m(0), w.m(1));
        w.ledger
            .submit(&m0, &aggregate(1, &hash("g1"), &[&m0, &m1], &[], FEDAVG))
            .unwrap();
        w.ledger.submit(&m0, &close(1)).unwrap();
        w.ledger.state().clone()
    };
    let first = run();
    assert_eq!(first, run());
    assert!(first.keys().all(|a| crate::address::is_full_address(a)));
    let _ = MemoryLedger::new();
}
