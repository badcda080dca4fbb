//! Disputed commitments and the verifier committee.

use bcfl_protos::bcfl as pb;
use pb::AggregationRule::FEDAVG;
use pb::Finality::{CONTESTED, FINAL, PENDING};
use pb::RoundMode::SERVERLESS;
use pb::RoundPhase::CLOSED;
use pb::StatMismatch::{MALFORMED, NORM, SIZE};

use super::*;
use crate::testing::packed;

fn dispute(
    round: u64,
    member: &str,
    build: impl FnOnce(&mut pb::DisputeCommitment),
) -> pb::BcflPayload {
    with(|p| {
        let mut d = pb::DisputeCommitment {
            round,
            member: member.into(),
            mismatch: NORM,
            size_bytes: 1000,
            norm_micro: 99_000_000,
            ..Default::default()
        };
        build(&mut d);
        p.set_dispute_commitment(d)
    })
}

fn attest(round: u64, model: &str, false_disputes: &[&str]) -> pb::BcflPayload {
    with(|p| {
        p.set_attest_aggregate(pb::AttestAggregate {
            round,
            model_sha256: model.into(),
            false_disputes: false_disputes.iter().map(|k| (*k).to_owned()).collect(),
            ..Default::default()
        })
    })
}

fn with_committee(size: u32) -> World {
    World::with_params(pb::ConsortiumParams {
        committee_size: size,
        ..params()
    })
}

#[test]
fn dispute_rules() {
    let mut w = World::new();
    let (m0, m1, m2) = (w.m(0), w.m(1), w.m(2));
    w.round_one_committed();
    let msg = rejected(w.ledger.submit(&m1, &dispute(1, &m0, |_| {})));
    assert_eq!(
        msg,
        "only an admin or the round's aggregator may dispute a commitment of round 1"
    );
    let msg = rejected(w.ledger.submit(&m0, &dispute(1, &m0, |_| {})));
    assert_eq!(msg, "a member may not dispute its own commitment");
    let msg = rejected(w.ledger.submit(&m0, &dispute(1, &m2, |_| {})));
    assert_eq!(msg, format!("{m2} did not commit to round 1"));
    // The committed norm is 3.0 (3_000_000): a recomputed 3.000001 agrees.
    let msg = rejected(
        w.ledger
            .submit(&m0, &dispute(1, &m1, |d| d.norm_micro = 3_000_001)),
    );
    assert_eq!(
        msg,
        format!("the recomputed NORM agrees with {m1}'s commitment: nothing to dispute")
    );
    let msg = rejected(w.ledger.submit(
        &m0,
        &dispute(1, &m1, |d| {
            d.mismatch = pb::StatMismatch::SKETCH;
            d.sketch = vec![9, 9];
        }),
    ));
    assert_eq!(msg, "the recomputed sketch must hold 4 values, got 2");
    let msg = rejected(
        w.ledger
            .submit(&m0, &dispute(1, &m1, |d| d.mismatch = SIZE)),
    );
    assert!(msg.contains("nothing to dispute"), "{msg}");
    let msg = rejected(w.ledger.submit(
        &m0,
        &dispute(1, &m1, |d| {
            d.mismatch = pb::StatMismatch::STAT_MISMATCH_UNSET
        }),
    ));
    assert!(msg.contains("dispute_commitment.mismatch"), "{msg}");
    let msg = rejected(
        w.ledger
            .submit(&m0, &dispute(1, &m1, |d| d.mismatch = MALFORMED)),
    );
    assert!(msg.contains("carries no recomputed statistics"), "{msg}");

    let events = w.ledger.submit(&m0, &dispute(1, &m1, |_| {})).unwrap();
    assert_eq!(events[0].attribute("mismatch"), Some("NORM"));
    let round = w.ledger.round(1).unwrap();
    assert_eq!(round.disputes.len(), 1);
    assert_eq!(
        (
            round.disputes[0].member.as_str(),
            round.disputes[0].reported_by.as_str()
        ),
        (m1.as_str(), m0.as_str())
    );
    let msg = rejected(w.ledger.submit(&m0, &dispute(1, &m1, |_| {})));
    assert_eq!(
        msg,
        format!("{m1}'s commitment to round 1 is already disputed")
    );

    // The verdict excludes the disputed member unscored, and no dispute is possible afterwards.
    w.ledger.submit(&m0, &evaluate(1)).unwrap();
    let verdict = w.ledger.verdict(1).unwrap();
    assert_eq!(verdict.accepted.to_vec(), vec![m0.clone()]);
    assert_eq!(verdict.excluded.to_vec(), vec![m1.clone()]);
    assert_eq!(verdict.disputed.to_vec(), vec![m1.clone()]);
    let msg = rejected(w.ledger.submit(&m0, &dispute(1, &m1, |_| {})));
    assert_eq!(
        msg,
        "round 1 is EVALUATED; commitments can be disputed only while it is OPEN (or SEALED)"
    );
    // An admin may dispute too (in another round).
    w.ledger
        .submit(&m0, &aggregate(1, &hash("g1"), &[&m0], &[&m1], FEDAVG))
        .unwrap();
    w.ledger.submit(&m0, &close(1)).unwrap();
    w.admin_submit(&open(2, &hash("g1"), &m2, SERVERLESS))
        .unwrap();
    w.ledger.submit(&m0, &commit(2, "v0", SKETCH)).unwrap();
    w.admin_submit(&dispute(2, &m0, |d| {
        d.mismatch = MALFORMED;
        d.size_bytes = 0;
        d.norm_micro = 0;
    }))
    .unwrap();
}

#[test]
fn disputed_members_are_left_out_of_the_anomaly_history() {
    let mut w = World::new();
    let (m0, m1) = (w.m(0), w.m(1));
    w.round_one_committed();
    w.ledger.submit(&m0, &dispute(1, &m1, |_| {})).unwrap();
    w.ledger.submit(&m0, &evaluate(1)).unwrap();
    let state = w.ledger.state();
    let prefix = crate::address::type_prefix(crate::address::AddressKind::SketchSum);
    let sums: Vec<pb::SketchSum> = state
        .iter()
        .filter(|(a, _)| a.starts_with(&prefix))
        .flat_map(|(_, v)| {
            let list = <pb::SketchSumList as protobuf::Message>::parse_from_bytes(v).unwrap();
            bcfl_protos::compact::Compact::expanded(list)
                .unwrap()
                .entries
                .into_vec()
        })
        .collect();
    assert!(sums.iter().any(|s| s.member == m0));
    assert!(sums.iter().all(|s| s.member != m1), "{sums:?}");
}

#[test]
fn a_committee_attests_and_finality_decides_what_the_next_round_starts_from() {
    let mut w = with_committee(1);
    let (m0, m1, m2) = (w.m(0), w.m(1), w.m(2));
    w.round_one_evaluated();
    let model = hash("g1");
    let events = w
        .ledger
        .submit(&m0, &aggregate(1, &model, &[&m0, &m1], &[], FEDAVG))
        .unwrap();
    let aggregate1 = w.ledger.aggregate(1).unwrap();
    assert_eq!(aggregate1.finality, PENDING);
    assert_eq!(aggregate1.committee.len(), 1);
    let verifier = aggregate1.committee[0].clone();
    assert_ne!(verifier, m0, "the aggregator never verifies itself");
    assert_eq!(events[0].attribute("committee"), Some(verifier.as_str()));
    let outsider = if verifier == m1 {
        m2.clone()
    } else {
        m1.clone()
    };

    // Closing waits for the committee; only an admin may close unverified.
    let msg = rejected(w.ledger.submit(&m0, &close(1)));
    assert_eq!(
        msg,
        "round 1's aggregate awaits its verifier committee (0 of 1 attested); only an admin may close it unverified"
    );
    let msg = rejected(w.ledger.submit(&outsider, &attest(1, &model, &[])));
    assert_eq!(
        msg,
        format!("{outsider} is not on round 1's verifier committee")
    );
    let msg = rejected(w.ledger.submit(&verifier, &attest(1, &model, &[&m1])));
    assert_eq!(
        msg,
        format!("{m1}'s commitment to round 1 was not disputed")
    );
    let events = w.ledger.submit(&verifier, &attest(1, &model, &[])).unwrap();
    assert_eq!(events[0].attribute("finality"), Some("FINAL"));
    assert_eq!(w.ledger.aggregate(1).unwrap().finality, FINAL);
    let msg = rejected(w.ledger.submit(&verifier, &attest(1, &model, &[])));
    assert_eq!(msg, format!("{verifier} already attested round 1"));
    w.ledger.submit(&m0, &close(1)).unwrap();
    assert!(!w.ledger.round(1).unwrap().closed_unverified);

    // Round 2: the verifier recomputes another hash; the aggregate is CONTESTED and round 3
    // starts from round 2's parent.
    w.admin_submit(&open(2, &model, &m0, SERVERLESS)).unwrap();
    w.ledger.submit(&m0, &commit(2, "v0", SKETCH)).unwrap();
    w.ledger.submit(&m1, &commit(2, "v1", SKETCH)).unwrap();
    w.ledger.submit(&m0, &evaluate(2)).unwrap();
    let forged = hash("forged");
    w.ledger
        .submit(&m0, &aggregate(2, &forged, &[&m0, &m1], &[], FEDAVG))
        .unwrap();
    let verifier = w.ledger.aggregate(2).unwrap().committee[0].clone();
    let events = w
        .ledger
        .submit(&verifier, &attest(2, &hash("honest"), &[]))
        .unwrap();
    assert_eq!(events[0].attribute("finality"), Some("CONTESTED"));
    w.ledger.submit(&m0, &close(2)).unwrap();
    let msg = rejected(w.admin_submit(&open(3, &forged, &m0, SERVERLESS)));
    assert_eq!(
        msg,
        format!("round 3 must start from model {model}, not {forged}")
    );
    w.admin_submit(&open(3, &model, &m0, SERVERLESS)).unwrap();

    // Round 3: nobody attests; the admin closes it unverified and round 4 starts from it.
    w.ledger.submit(&m0, &commit(3, "w0", SKETCH)).unwrap();
    w.ledger.submit(&m1, &commit(3, "w1", SKETCH)).unwrap();
    w.ledger.submit(&m0, &evaluate(3)).unwrap();
    let g3 = hash("g3");
    w.ledger
        .submit(&m0, &aggregate(3, &g3, &[&m0, &m1], &[], FEDAVG))
        .unwrap();
    w.admin_submit(&close(3)).unwrap();
    let round3 = w.ledger.round(3).unwrap();
    assert_eq!(round3.phase, CLOSED);
    assert!(round3.closed_unverified);
    w.admin_submit(&open(4, &g3, &m0, SERVERLESS)).unwrap();
    // A late attestation is still recorded for auditors.
    let verifier = w.ledger.aggregate(3).unwrap().committee[0].clone();
    w.ledger.submit(&verifier, &attest(3, &g3, &[])).unwrap();
    assert_eq!(w.ledger.aggregate(3).unwrap().finality, FINAL);
}

#[test]
fn a_false_dispute_contests_the_aggregate() {
    let mut w = with_committee(2);
    let (m0, m1, m2) = (w.m(0), w.m(1), w.m(2));
    w.admin_submit(&open(1, &base_model(), &m0, SERVERLESS))
        .unwrap();
    for (i, m) in [&m0, &m1, &m2].into_iter().enumerate() {
        w.ledger
            .submit(m, &commit(1, &format!("u{i}"), SKETCH))
            .unwrap();
    }
    w.ledger.submit(&m0, &dispute(1, &m2, |_| {})).unwrap();
    w.ledger.submit(&m0, &evaluate(1)).unwrap();
    let model = hash("g1");
    w.ledger
        .submit(&m0, &aggregate(1, &model, &[&m0, &m1], &[&m2], FEDAVG))
        .unwrap();
    // The excluded m2 is not eligible: the committee is m1 alone, whatever its size.
    let aggregate1 = w.ledger.aggregate(1).unwrap();
    assert_eq!(aggregate1.committee.to_vec(), vec![m1.clone()]);
    w.ledger.submit(&m1, &attest(1, &model, &[&m2])).unwrap();
    assert_eq!(w.ledger.aggregate(1).unwrap().finality, CONTESTED);
}

#[test]
fn committee_size_is_bounded() {
    let mut payload = init(&[&test_key("admin")]);
    payload.mut_init_consortium().mut_params().committee_size = 17;
    let mut ledger = MemoryLedger::new();
    let msg = rejected(ledger.submit(&test_key("admin"), &payload));
    assert!(msg.contains("params.committee_size"), "{msg}");
    payload.mut_init_consortium().mut_params().committee_size = 0;
    payload
        .mut_init_consortium()
        .mut_params()
        .link_agreement_ppm = 999_999;
    let msg = rejected(ledger.submit(&test_key("admin"), &payload));
    assert!(msg.contains("params.link_agreement_ppm"), "{msg}");
}

#[test]
fn an_accepted_commitment_the_aggregator_did_not_dispute_contests_the_aggregate() {
    let mut w = with_committee(1);
    let (m0, m1, m2) = (w.m(0), w.m(1), w.m(2));
    w.round_one_evaluated();
    let model = hash("g1");
    w.ledger
        .submit(&m0, &aggregate(1, &model, &[&m0, &m1], &[], FEDAVG))
        .unwrap();
    let verifier = w.ledger.aggregate(1).unwrap().committee[0].clone();
    let missed = |key: &str| {
        let mut payload = attest(1, &model, &[]);
        payload.mut_attest_aggregate().missed = vec![key.to_owned()].into();
        payload
    };
    let msg = rejected(w.ledger.submit(&verifier, &missed(&m2)));
    assert_eq!(msg, format!("{m2} is not an accepted member of round 1"));
    let events = w.ledger.submit(&verifier, &missed(&m0)).unwrap();
    assert_eq!(events[0].attribute("finality"), Some("CONTESTED"));
    assert_eq!(
        w.ledger.aggregate(1).unwrap().attestations[0]
            .missed
            .to_vec(),
        vec![m0]
    );
}

/// A consortium that samples 3 coordinates, with round 1 open (m0 aggregating): the world, m0
/// and m1.
fn sampling_round() -> (World, String, String) {
    let mut w = World::with_params(pb::ConsortiumParams {
        coordinate_samples: 3,
        ..params()
    });
    let (m0, m1) = (w.m(0), w.m(1));
    w.admin_submit(&open(1, &base_model(), &m0, SERVERLESS))
        .unwrap();
    (w, m0, m1)
}

#[test]
fn sampled_coordinates_are_committed_in_full_and_disputed_like_the_sketch() {
    let (mut w, m0, m1) = sampling_round();
    // Steps of one nano-unit: the values as written.
    let with_coordinates = |tag: &str, steps: Vec<i32>| {
        let mut payload = commit(1, tag, SKETCH);
        payload.mut_commit_update().coordinate_step_nano = 1;
        payload.mut_commit_update().coordinate_steps = packed(&steps);
        payload
    };
    let msg = rejected(w.ledger.submit(&m1, &commit(1, "u1", SKETCH)));
    assert_eq!(
        msg,
        "the commitment must carry 3 sampled coordinates, got 0"
    );
    let msg = rejected(
        w.ledger
            .submit(&m1, &with_coordinates("u1", vec![1, 2, 3, 4])),
    );
    assert_eq!(
        msg,
        "the commitment must carry 3 sampled coordinates, got 4"
    );
    w.ledger
        .submit(&m0, &with_coordinates("u0", vec![-5, 0, 5]))
        .unwrap();
    w.ledger
        .submit(&m1, &with_coordinates("u1", vec![7, -8, 9]))
        .unwrap();
    let stored = w.ledger.commitment(1, &m1).unwrap();
    assert_eq!(
        (stored.coordinate_step_nano, stored.coordinate_steps),
        (1, packed(&[7, -8, 9]))
    );
    let recomputed = |step: u64, steps: Vec<i32>| {
        dispute(1, &m1, |d| {
            d.mismatch = pb::StatMismatch::COORDINATES;
            d.norm_micro = 3_000_000;
            d.sketch = (0..SKETCH as u8).collect();
            d.coordinate_step_nano = step;
            d.coordinate_steps = packed(&steps);
        })
    };
    let msg = rejected(w.ledger.submit(&m0, &recomputed(1, vec![7, -8])));
    assert_eq!(msg, "the recomputed coordinates must hold 3 values, got 2");
    // The step within one nano-unit and every value within one step: nothing to dispute.
    let msg = rejected(w.ledger.submit(&m0, &recomputed(2, vec![8, -9, 9])));
    assert_eq!(
        msg,
        format!("the recomputed COORDINATES agrees with {m1}'s commitment: nothing to dispute")
    );
    // A step further off is a mismatch even with the same steps.
    let far = w.ledger.submit(&m0, &recomputed(3, vec![7, -8, 9]));
    assert!(far.is_ok(), "{far:?}");
    let round = w.ledger.round(1).unwrap();
    assert_eq!(round.disputes[0].coordinate_steps, packed(&[7, -8, 9]));
    assert_eq!(round.disputes[0].coordinate_step_nano, 3);
}

#[test]
fn a_value_two_steps_off_is_disputed() {
    let (mut w, m0, m1) = sampling_round();
    let mut payload = commit(1, "u1", SKETCH);
    payload.mut_commit_update().coordinate_step_nano = 5;
    payload.mut_commit_update().coordinate_steps = packed(&[7, -8, 9]);
    w.ledger.submit(&m1, &payload).unwrap();
    let events = w
        .ledger
        .submit(
            &m0,
            &dispute(1, &m1, |d| {
                d.mismatch = pb::StatMismatch::COORDINATES;
                d.norm_micro = 3_000_000;
                d.sketch = (0..SKETCH as u8).collect();
                d.coordinate_step_nano = 5;
                d.coordinate_steps = packed(&[7, -8, -9]);
            }),
        )
        .unwrap();
    assert_eq!(events[0].attribute("mismatch"), Some("COORDINATES"));
}

/// When sketches come after the commitments, commitments can be disputed while the round is
/// SEALED too; a disputed member is listed as disputed, not as unrevealed.
#[test]
fn a_sealed_round_takes_disputes() {
    let mut w = World::with_params(pb::ConsortiumParams {
        sketch_after_commit: true,
        ..params()
    });
    let (m0, m1, m2) = (w.m(0), w.m(1), w.m(2));
    w.admin_submit(&open(1, &base_model(), &m0, pb::RoundMode::SERVERLESS))
        .unwrap();
    for m in [&m1, &m2] {
        w.ledger.submit(m, &commit(1, m, 0)).unwrap();
    }
    w.ledger.submit(&m0, &seal(1)).unwrap();
    w.ledger.submit(&m2, &reveal(1, SKETCH)).unwrap();
    let events = w.ledger.submit(&m0, &dispute(1, &m1, |_| {})).unwrap();
    assert_eq!(events[0].attribute("mismatch"), Some("NORM"));
    w.ledger.submit(&m0, &evaluate(1)).unwrap();
    let verdict = w.ledger.verdict(1).unwrap();
    assert_eq!(verdict.accepted.to_vec(), vec![m2.clone()]);
    assert_eq!(verdict.disputed.to_vec(), vec![m1.clone()]);
    assert!(verdict.unrevealed.is_empty());
}
