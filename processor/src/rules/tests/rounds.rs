//! Round life-cycle rules.

use bcfl_protos::bcfl as pb;
use pb::AggregationRule::{FEDAVG, MEDIAN};
use pb::RoundMode::{SERVER, SERVERLESS};
use pb::RoundPhase::{AGGREGATED, CLOSED, EVALUATED, OPEN, SEALED};
use pb::RoundSync::{BUFFERED_ASYNC, ROUND_SYNC_UNSET, SYNCHRONOUS};

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
    assert_eq!(
        w.ledger.verdict(1).unwrap().accepted.to_vec(),
        vec![m0.clone(), m1.clone()]
    );
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

#[test]
fn open_round_schedule_rules() {
    let mut w = World::new();
    let m0 = w.m(0);
    let base = base_model();
    for sync in [SYNCHRONOUS, ROUND_SYNC_UNSET] {
        let msg = rejected(w.admin_submit(&open_with(1, &base, &m0, |o| {
            o.sync = sync;
            o.buffer_size = 3;
        })));
        assert_eq!(
            msg,
            "a SYNCHRONOUS round takes no buffer_size (got 3); buffer_size and max_staleness are \
             for BUFFERED_ASYNC rounds"
        );
        let msg = rejected(w.admin_submit(&open_with(1, &base, &m0, |o| {
            o.sync = sync;
            o.max_staleness = 2;
        })));
        assert_eq!(
            msg,
            "a SYNCHRONOUS round takes no max_staleness (got 2); buffer_size and max_staleness \
             are for BUFFERED_ASYNC rounds"
        );
    }
    let msg = rejected(w.admin_submit(&open_buffered(1, &base, &m0, 0, 1)));
    assert_eq!(
        msg,
        "a BUFFERED_ASYNC round needs a buffer_size of 1..=1024 commitments, got 0"
    );
    // Beyond the limits the payload itself is refused.
    let msg = rejected(w.admin_submit(&open_buffered(1, &base, &m0, 1025, 1)));
    assert!(
        msg.contains("open_round.buffer_size: must be in 0..=1024, got 1025"),
        "{msg}"
    );
    let msg = rejected(w.admin_submit(&open_buffered(1, &base, &m0, 2, 17)));
    assert!(
        msg.contains("open_round.max_staleness: must be in 0..=16, got 17"),
        "{msg}"
    );
    for (guarantee, name) in [
        (
            pb::PrivacyGuarantee::DIFFERENTIAL_PRIVACY,
            "DIFFERENTIAL_PRIVACY",
        ),
        (
            pb::PrivacyGuarantee::SECURE_AGGREGATION,
            "SECURE_AGGREGATION",
        ),
    ] {
        let msg = rejected(w.admin_submit(&open_with(1, &base, &m0, |o| {
            o.privacy = vec![guarantee];
        })));
        assert_eq!(
            msg,
            format!("privacy guarantee {name} is not supported by family version 1.0 yet")
        );
    }
    assert!(w.ledger.round(1).is_none());
    // An unset synchronization is stored as SYNCHRONOUS.
    let events = w.admin_submit(&open(1, &base, &m0, SERVERLESS)).unwrap();
    assert_eq!(events[0].attribute("sync"), Some("SYNCHRONOUS"));
    let round = w.ledger.round(1).unwrap();
    assert_eq!(
        (round.sync, round.buffer_size, round.max_staleness),
        (SYNCHRONOUS, 0, 0)
    );
    assert!(round.privacy.is_empty());
}

#[test]
fn buffered_async_rounds_store_their_schedule() {
    let mut w = World::new();
    let m0 = w.m(0);
    let events = w
        .admin_submit(&open_buffered(1, &base_model(), &m0, 256, 16))
        .unwrap();
    assert_eq!(events[0].attribute("sync"), Some("BUFFERED_ASYNC"));
    let round = w.ledger.round(1).unwrap();
    assert_eq!(
        (round.sync, round.buffer_size, round.max_staleness),
        (BUFFERED_ASYNC, 256, 16)
    );
    // Server mode combines with buffering.
    let mut w = World::new();
    let mut payload = open_buffered(1, &base_model(), &m0, 1, 0);
    payload.mut_open_round().mode = SERVER;
    w.admin_submit(&payload).unwrap();
    let round = w.ledger.round(1).unwrap();
    assert_eq!(
        (round.mode, round.sync, round.buffer_size),
        (SERVER, BUFFERED_ASYNC, 1)
    );
}

#[test]
fn schedule_check_bounds_hand_built_actions() {
    use crate::rules::rounds::check_schedule;
    assert!(check_schedule(BUFFERED_ASYNC, 256, 16).is_ok());
    assert!(check_schedule(SYNCHRONOUS, 0, 0).is_ok());
    assert!(check_schedule(ROUND_SYNC_UNSET, 0, 0).is_ok());
    let err = check_schedule(BUFFERED_ASYNC, 1025, 0)
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "a BUFFERED_ASYNC round needs a buffer_size of 1..=1024 commitments, got 1025"
    );
    let err = check_schedule(BUFFERED_ASYNC, 4, 17)
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "a BUFFERED_ASYNC round's max_staleness must be at most 16 rounds, got 17"
    );
}

/// Params whose modified z-score on the update norm excludes a clear outlier among three.
fn params_with_zscore() -> pb::ConsortiumParams {
    let mut params = params();
    let zscore = params.mut_anomaly().mut_zscore();
    zscore.threshold_ppm = 1_000_000;
    zscore.features = vec![pb::Feature::UPDATE_NORM];
    params
}

#[test]
fn an_excluded_member_cannot_aggregate_the_next_round() {
    let mut w = World::with_params(params_with_zscore());
    let (m0, m1, m2) = (w.m(0), w.m(1), w.m(2));
    w.admin_submit(&open(1, &base_model(), &m0, SERVERLESS))
        .unwrap();
    for (i, m) in [&m0, &m1, &m2].into_iter().enumerate() {
        let mut payload = commit(1, &format!("u{i}"), SKETCH);
        payload.mut_commit_update().norm_micro = if i == 2 { 300_000_000 } else { 3_000_000 };
        w.ledger.submit(m, &payload).unwrap();
    }
    w.ledger.submit(&m0, &evaluate(1)).unwrap();
    assert_eq!(
        w.ledger.verdict(1).unwrap().excluded.to_vec(),
        vec![m2.clone()]
    );
    let g1 = hash("g1");
    w.ledger
        .submit(&m0, &aggregate(1, &g1, &[&m0, &m1], &[&m2], FEDAVG))
        .unwrap();
    w.ledger.submit(&m0, &close(1)).unwrap();
    let msg = rejected(w.admin_submit(&open(2, &g1, &m2, SERVERLESS)));
    assert_eq!(
        msg,
        format!("aggregator {m2} was excluded by round 1's anomaly verdict")
    );
    w.admin_submit(&open(2, &g1, &m1, SERVERLESS)).unwrap();
    // Only the previous round's verdict counts: round 2 accepts everyone, so m2 may aggregate
    // round 3.
    for (i, m) in [&m0, &m1, &m2].into_iter().enumerate() {
        w.ledger
            .submit(m, &commit(2, &format!("v{i}"), SKETCH))
            .unwrap();
    }
    w.ledger.submit(&m1, &evaluate(2)).unwrap();
    assert!(w.ledger.verdict(2).unwrap().excluded.is_empty());
    w.admin_submit(&close(2)).unwrap();
    w.admin_submit(&open(3, &g1, &m2, SERVERLESS)).unwrap();
}

#[test]
fn a_verdict_that_excluded_everyone_binds_no_aggregator() {
    // DBSCAN needing more neighbours than there are members calls everyone noise.
    let mut params = params();
    let dbscan = params.mut_anomaly().mut_dbscan();
    dbscan.eps_ppm = 1_000_000;
    dbscan.min_points = 10;
    dbscan.features = vec![pb::Feature::UPDATE_NORM];
    let mut w = World::with_params(params);
    let (m0, m1, m2) = (w.m(0), w.m(1), w.m(2));
    w.admin_submit(&open(1, &base_model(), &m0, SERVERLESS))
        .unwrap();
    for (i, m) in [&m0, &m1, &m2].into_iter().enumerate() {
        w.ledger
            .submit(m, &commit(1, &format!("u{i}"), SKETCH))
            .unwrap();
    }
    w.ledger.submit(&m0, &evaluate(1)).unwrap();
    let verdict = w.ledger.verdict(1).unwrap();
    assert!(verdict.accepted.is_empty());
    assert_eq!(verdict.excluded.len(), 3);
    // Nothing to aggregate: the admin abandons the round, and round 2 may open with any
    // member as aggregator (otherwise nobody could aggregate again).
    w.admin_submit(&close(1)).unwrap();
    w.admin_submit(&open(2, &base_model(), &m2, SERVERLESS))
        .unwrap();
}

/// A commitment's base round, the model it names (that round's parent) and its staleness.
fn base_of(w: &World, c: &pb::Commitment) -> (u64, String, u32) {
    let base = w.ledger.round(c.base_round).expect("the base round exists");
    (c.base_round, base.parent_model_sha256, c.staleness)
}

#[test]
fn commitments_record_their_base_round() {
    let mut w = World::new();
    let (m0, m1) = (w.m(0), w.m(1));
    w.round_one_closed();
    let g1 = hash("g1");
    // Round 1's commitments were trained from round 1's parent.
    let c = w.ledger.commitment(1, &m0).unwrap();
    assert_eq!(base_of(&w, &c), (1, base_model(), 0));
    w.admin_submit(&open(2, &g1, &m0, SERVERLESS)).unwrap();
    let msg = rejected(w.ledger.submit(&m0, &commit_from(2, "u", 3)));
    assert_eq!(
        msg,
        "base round 3 is after round 2: an update is trained from a model that already exists"
    );
    let msg = rejected(w.ledger.submit(&m0, &commit_from(2, "u", 1)));
    assert_eq!(
        msg,
        "round 2 is SYNCHRONOUS: the update must be trained from round 2's own parent model, not \
         round 1's"
    );
    // An explicit base round equal to the round is the same as 0.
    let events = w.ledger.submit(&m0, &commit_from(2, "u0", 2)).unwrap();
    assert_eq!(events[0].attribute("base_round"), Some("2"));
    w.ledger.submit(&m1, &commit_from(2, "u1", 0)).unwrap();
    for m in [&m0, &m1] {
        let c = w.ledger.commitment(2, m).unwrap();
        assert_eq!(base_of(&w, &c), (2, g1.clone(), 0));
    }
}

#[test]
fn buffered_async_rounds_accept_stale_updates_and_evaluate_at_the_buffer() {
    let mut w = World::new();
    let (m0, m1, m2) = (w.m(0), w.m(1), w.m(2));
    w.round_one_closed();
    let g1 = hash("g1");
    // Round 2: a buffer of 3 (more than the quorum of 2), updates at most 1 round stale.
    w.admin_submit(&open_buffered(2, &g1, &m0, 3, 1)).unwrap();
    let events = w.ledger.submit(&m2, &commit_from(2, "u2", 1)).unwrap();
    assert_eq!(events[0].attribute("base_round"), Some("1"));
    let c = w.ledger.commitment(2, &m2).unwrap();
    assert_eq!(base_of(&w, &c), (1, base_model(), 1));
    w.ledger.submit(&m1, &commit_from(2, "u1", 0)).unwrap();
    let c = w.ledger.commitment(2, &m1).unwrap();
    assert_eq!(base_of(&w, &c), (2, g1.clone(), 0));
    // The quorum (2) is reached but not the buffer (3).
    let msg = rejected(w.ledger.submit(&m0, &evaluate(2)));
    assert_eq!(msg, "round 2 has 2 commitments, the buffer size is 3");
    w.ledger.submit(&m0, &commit_from(2, "u0", 2)).unwrap();
    w.ledger.submit(&m0, &evaluate(2)).unwrap();
    let g2 = hash("g2");
    w.ledger
        .submit(&m0, &aggregate(2, &g2, &[&m0, &m1, &m2], &[], FEDAVG))
        .unwrap();
    w.ledger.submit(&m0, &close(2)).unwrap();
    // Round 3: a buffer of 1 (less than the quorum), updates at most 1 round stale.
    w.admin_submit(&open_buffered(3, &g2, &m1, 1, 1)).unwrap();
    let msg = rejected(w.ledger.submit(&m0, &commit_from(3, "w0", 1)));
    assert_eq!(
        msg,
        "round 3 accepts updates at most 1 round stale; one trained from round 1's model is 2 \
         rounds stale"
    );
    let msg = rejected(w.ledger.submit(&m1, &evaluate(3)));
    assert_eq!(msg, "round 3 has 0 commitments, the buffer size is 1");
    w.ledger.submit(&m0, &commit_from(3, "w0", 2)).unwrap();
    let c = w.ledger.commitment(3, &m0).unwrap();
    assert_eq!(base_of(&w, &c), (2, g1.clone(), 1));
    w.ledger.submit(&m1, &evaluate(3)).unwrap();
    assert_eq!(
        w.ledger.verdict(3).unwrap().accepted.to_vec(),
        vec![m0.clone()]
    );
}

#[test]
fn round_one_starts_from_the_initial_model_when_set() {
    let initial = hash("initial adapters");
    let mut w = World::with_params(pb::ConsortiumParams {
        initial_model_sha256: initial.clone(),
        ..params()
    });
    let m0 = w.m(0);
    assert_eq!(
        w.ledger
            .consortium()
            .unwrap()
            .get_params()
            .initial_model_sha256,
        initial
    );
    let msg = rejected(w.admin_submit(&open(1, &base_model(), &m0, SERVERLESS)));
    assert_eq!(
        msg,
        format!(
            "round 1 must start from model {initial}, not {}",
            base_model()
        )
    );
    w.admin_submit(&open(1, &initial, &m0, SERVERLESS)).unwrap();
    assert_eq!(w.ledger.round(1).unwrap().parent_model_sha256, initial);
    w.ledger.submit(&m0, &commit(1, "u0", SKETCH)).unwrap();
    let c = w.ledger.commitment(1, &m0).unwrap();
    assert_eq!(base_of(&w, &c), (1, initial, 0));
}

#[test]
fn init_consortium_checks_the_initial_model_hash() {
    let admin = test_key("admin");
    let mut ledger = MemoryLedger::new();
    let mut payload = init(&[&admin]);
    payload
        .mut_init_consortium()
        .mut_params()
        .initial_model_sha256 = "not a hash".into();
    let msg = rejected(ledger.submit(&admin, &payload));
    assert_eq!(
        msg,
        "invalid payload: params.initial_model_sha256: must be 64 lowercase hex characters (a \
         SHA-256 digest)"
    );
}

#[test]
fn sample_sizes_are_known() {
    use crate::rules::rounds::sample_size;
    // (eligible, sample_ppm, needed) -> drawn
    let cases = [
        ((20, 100_000, 2), 2), // FlowerTune: 10 % of 20
        ((20, 100_000, 3), 3), // raised to what the round needs
        ((10, 250_000, 1), 3), // ceil(2.5)
        ((7, 1, 1), 1),        // any share draws someone
        ((3, 1_000_000, 2), 3),
        ((2, 500_000, 3), 2), // capped at the eligible
        ((0, 500_000, 2), 0),
        ((10_000, 999_999, 1), 10_000),
    ];
    for ((eligible, ppm, needed), drawn) in cases {
        assert_eq!(
            sample_size(eligible, ppm, needed),
            drawn,
            "{eligible} eligible, {ppm} ppm, {needed} needed"
        );
    }
}

#[test]
fn a_sampling_consortium_draws_who_trains_each_round() {
    use crate::rules::rounds::select_participants;
    let mut w = World::with_params(pb::ConsortiumParams {
        sample_ppm: 500_000,
        ..params()
    });
    let m0 = w.m(0);
    let events = w
        .admin_submit(&open(1, &base_model(), &m0, SERVERLESS))
        .unwrap();
    let round = w.ledger.round(1).unwrap();
    // ceil(3 / 2) = 2 of the 3 members, sorted, as anyone recomputes them from the round.
    let drawn = round.participants.to_vec();
    assert_eq!(drawn.len(), 2);
    assert!(drawn.windows(2).all(|p| p[0] < p[1]));
    assert!(drawn.iter().all(|k| w.members.contains(k)));
    assert_eq!(
        select_participants(
            &w.ledger.consortium().unwrap().params.unwrap(),
            &round,
            w.members.clone()
        ),
        drawn
    );
    assert_eq!(
        events[0].attribute("participants"),
        Some(drawn.join(",").as_str())
    );
    let left_out = w
        .members
        .iter()
        .find(|k| !drawn.contains(k))
        .unwrap()
        .clone();
    let msg = rejected(w.ledger.submit(&left_out, &commit(1, "u", SKETCH)));
    assert_eq!(
        msg,
        format!(
            "{left_out} was not drawn to train round 1 (the consortium samples 2 of its members a round)"
        )
    );
    for (i, key) in drawn.iter().enumerate() {
        w.ledger
            .submit(key, &commit(1, &format!("u{i}"), SKETCH))
            .unwrap();
    }
    w.admin_submit(&evaluate(1)).unwrap();
    assert_eq!(w.ledger.round(1).unwrap().phase, EVALUATED);
}

#[test]
fn a_server_round_never_draws_its_aggregator_and_an_unsampled_one_draws_nobody() {
    let mut w = World::with_params(pb::ConsortiumParams {
        sample_ppm: 1,
        ..params()
    });
    let m0 = w.m(0);
    w.admin_submit(&open(1, &base_model(), &m0, SERVER))
        .unwrap();
    // Two eligible (the central aggregator only aggregates), the quorum needs both.
    assert_eq!(
        w.ledger.round(1).unwrap().participants.to_vec(),
        vec![w.m(1), w.m(2)]
    );
    let mut w = World::new();
    w.admin_submit(&open(1, &base_model(), &m0, SERVERLESS))
        .unwrap();
    assert!(w.ledger.round(1).unwrap().participants.is_empty());
}

#[test]
fn draws_spread_over_the_members_and_change_with_the_parent() {
    use crate::rules::rounds::select_participants;
    let members: Vec<String> = (0..10).map(|i| test_key(&format!("m{i}"))).collect();
    let p = pb::ConsortiumParams {
        sample_ppm: 300_000,
        commit_quorum: 1,
        ..params()
    };
    let mut counts = std::collections::BTreeMap::<String, usize>::new();
    let mut distinct = std::collections::BTreeSet::new();
    for r in 1..=300u64 {
        let round = pb::Round {
            number: r,
            parent_model_sha256: hash(&format!("parent {r}")),
            mode: SERVERLESS,
            ..Default::default()
        };
        let drawn = select_participants(&p, &round, members.clone());
        assert_eq!(drawn.len(), 3);
        for k in &drawn {
            *counts.entry(k.clone()).or_default() += 1;
        }
        distinct.insert(drawn);
    }
    // 900 draws over 10 members: 90 each on average; a fair draw keeps every one near it.
    assert_eq!(counts.len(), 10);
    for (k, n) in &counts {
        assert!((55..=125).contains(n), "{k} drawn {n} times in 300 rounds");
    }
    assert!(
        distinct.len() > 60,
        "only {} distinct draws",
        distinct.len()
    );
}

/// Sketches after the commitments: commitments carry none; `SealRound` (the aggregator or an
/// admin, once the quorum is in) closes them and draws the seed from them; each committer
/// reveals its sketch once, exactly `sketch_length` values, only while SEALED; `EvaluateRound`
/// needs the round SEALED and excludes unscored whoever has not revealed. Without the setting
/// there is nothing to seal or reveal.
#[test]
fn sealed_rounds_commit_then_seal_then_reveal_then_evaluate() {
    let mut w = World::with_params(pb::ConsortiumParams {
        sketch_after_commit: true,
        ..params()
    });
    let (m0, m1, m2) = (w.m(0), w.m(1), w.m(2));
    w.admin_submit(&open(1, &base_model(), &m0, SERVERLESS))
        .unwrap();
    let msg = rejected(w.ledger.submit(&m1, &commit(1, "u1", SKETCH)));
    assert_eq!(
        msg,
        "the consortium's sketches come after the commitments (RevealSketch once round 1 is \
         SEALED): the commitment must carry none, got 4"
    );
    w.ledger.submit(&m1, &commit(1, "u1", 0)).unwrap();
    let msg = rejected(w.ledger.submit(&m1, &reveal(1, SKETCH)));
    assert_eq!(
        msg,
        "round 1 is OPEN, not SEALED: sketches are revealed after SealRound, before EvaluateRound"
    );
    let msg = rejected(w.ledger.submit(&m0, &seal(1)));
    assert_eq!(msg, "round 1 has 1 commitments, the quorum is 2");
    w.ledger.submit(&m2, &commit(1, "u2", 0)).unwrap();
    let msg = rejected(w.ledger.submit(&m0, &evaluate(1)));
    assert_eq!(
        msg,
        "round 1 is OPEN, not SEALED (the consortium's sketches come after the commitments: \
         SealRound first)"
    );
    let msg = rejected(w.ledger.submit(&m1, &seal(1)));
    assert_eq!(
        msg,
        "only an admin or the round's aggregator may seal round 1"
    );
    let events = w.ledger.submit(&m0, &seal(1)).unwrap();
    let round = w.ledger.round(1).unwrap();
    assert_eq!(round.phase, SEALED);
    let commitments = vec![
        w.ledger.commitment(1, &m1).unwrap(),
        w.ledger.commitment(1, &m2).unwrap(),
    ];
    assert_eq!(
        round.sketch_seed,
        crate::rules::rounds::sketch_seed(1, &commitments)
    );
    assert_eq!(
        events[0].attribute("sketch_seed"),
        Some(round.sketch_seed.to_string().as_str())
    );
    // Every commitment moves the seed.
    let mut other = commitments.clone();
    other[1].update_sha256 = hash("another");
    assert_ne!(
        crate::rules::rounds::sketch_seed(1, &other),
        round.sketch_seed
    );
    let msg = rejected(w.ledger.submit(&m0, &commit(1, "late", 0)));
    assert_eq!(msg, "round 1 is SEALED, not OPEN");
    let msg = rejected(w.ledger.submit(&m0, &seal(1)));
    assert_eq!(msg, "round 1 is SEALED, not OPEN");
    let msg = rejected(w.ledger.submit(&m0, &reveal(1, SKETCH)));
    assert_eq!(msg, format!("{m0} has no commitment in round 1"));
    let msg = rejected(w.ledger.submit(&m1, &reveal(1, SKETCH + 1)));
    assert_eq!(msg, "the sketch must hold 4 values, got 5");
    w.ledger.submit(&m1, &reveal(1, SKETCH)).unwrap();
    assert_eq!(
        w.ledger.commitment(1, &m1).unwrap().sketch,
        (0..SKETCH as u8).collect::<Vec<u8>>()
    );
    let msg = rejected(w.ledger.submit(&m1, &reveal(1, SKETCH)));
    assert_eq!(msg, format!("{m1} already revealed its sketch for round 1"));
    // m2 never reveals: excluded without being scored.
    w.ledger.submit(&m0, &evaluate(1)).unwrap();
    let verdict = w.ledger.verdict(1).unwrap();
    assert_eq!(verdict.accepted.to_vec(), vec![m1.clone()]);
    assert_eq!(verdict.excluded.to_vec(), vec![m2.clone()]);
    assert_eq!(verdict.unrevealed.to_vec(), vec![m2.clone()]);
    assert_eq!(verdict.scored(), vec![m1.clone()]);
    let msg = rejected(w.ledger.submit(&m2, &reveal(1, SKETCH)));
    assert_eq!(
        msg,
        "round 1 is EVALUATED, not SEALED: sketches are revealed after SealRound, before \
         EvaluateRound"
    );

    // Without the setting: nothing to seal, nothing to reveal, and a commitment needs its sketch.
    let mut w = World::new();
    w.round_one_committed();
    let m0 = w.m(0);
    let msg = rejected(w.ledger.submit(&m0, &seal(1)));
    assert_eq!(
        msg,
        "the consortium's sketches come with the commitments: round 1 is evaluated without being \
         sealed"
    );
    let msg = rejected(w.ledger.submit(&m0, &reveal(1, SKETCH)));
    assert_eq!(
        msg,
        "the consortium's sketches come with the commitments: there is nothing to reveal"
    );
    let m2 = w.m(2);
    let msg = rejected(w.ledger.submit(&m2, &commit(1, "u2", 0)));
    assert_eq!(msg, "the sketch must hold 4 values, got 0");
}
