//! Payload round trips (property tests) and the refusal of malformed payloads.

use bcfl_protos::bcfl as pb;
use proptest::collection::{btree_set, vec};
use proptest::prelude::*;
use protobuf::Message;

use super::*;
use crate::access::action_addresses;
use crate::address;
use crate::statistics::Coordinates;

fn key() -> impl Strategy<Value = PublicKey> {
    "0[23][0-9a-f]{64}".prop_map(|k| PublicKey::parse(&k).unwrap())
}

fn sha() -> impl Strategy<Value = Sha256Hash> {
    "[0-9a-f]{64}".prop_map(|h| Sha256Hash::parse(&h).unwrap())
}

fn name() -> impl Strategy<Value = MemberName> {
    "[A-Za-z0-9][A-Za-z0-9 _.-]{0,62}[A-Za-z0-9]".prop_map(|n| MemberName::parse(&n).unwrap())
}

fn endpoint() -> impl Strategy<Value = Endpoint> {
    ("https?", "[a-z0-9-]{1,15}(\\.[a-z0-9-]{1,15}){0,2}", 1u16..)
        .prop_map(|(s, h, p)| Endpoint::parse(&format!("{s}://{h}:{p}")).unwrap())
}

fn blob_uri() -> impl Strategy<Value = Option<BlobUri>> {
    proptest::option::of(
        "(http|https|bcfl)://[a-z0-9]{1,20}(/[a-z0-9]{0,20})?"
            .prop_map(|u| BlobUri::parse(&u).unwrap()),
    )
}

fn keys(min: usize, max: usize) -> impl Strategy<Value = Vec<PublicKey>> {
    btree_set(key(), min..=max).prop_map(|s| s.into_iter().collect())
}

fn params() -> impl Strategy<Value = pb::ConsortiumParams> {
    (1u32..50, sha(), 1u32..=4096, proptest::option::of(sha())).prop_flat_map(
        |(min, base, sketch, initial)| {
            (1..=min).prop_map(move |quorum| pb::ConsortiumParams {
                min_participants: min,
                commit_quorum: quorum,
                aggregation_rule: pb::AggregationRule::FEDAVG,
                model_id: "model".into(),
                base_model_sha256: base.as_str().to_owned(),
                sketch_length: sketch,
                initial_model_sha256: initial
                    .as_ref()
                    .map(|h| h.as_str().to_owned())
                    .unwrap_or_default(),
                ..Default::default()
            })
        },
    )
}

fn mode() -> impl Strategy<Value = pb::RoundMode> {
    prop_oneof![Just(pb::RoundMode::SERVERLESS), Just(pb::RoundMode::SERVER)]
}

/// Synchronization, buffer size and staleness bound within the payload's limits (whether they fit
/// together is a rule, not a payload property).
fn schedule() -> impl Strategy<Value = (pb::RoundSync, u32, u32)> {
    (
        prop_oneof![
            Just(pb::RoundSync::SYNCHRONOUS),
            Just(pb::RoundSync::BUFFERED_ASYNC)
        ],
        0..=crate::limits::MAX_ROUND_COMMITTERS as u32,
        0..=crate::limits::MAX_STALENESS,
    )
}

/// A privacy list in canonical form: distinct guarantees sorted by enum value.
fn privacy() -> impl Strategy<Value = Vec<pb::PrivacyGuarantee>> {
    (any::<bool>(), any::<bool>()).prop_map(|(dp, sa)| {
        let mut list = Vec::new();
        if dp {
            list.push(pb::PrivacyGuarantee::DIFFERENTIAL_PRIVACY);
        }
        if sa {
            list.push(pb::PrivacyGuarantee::SECURE_AGGREGATION);
        }
        list
    })
}

/// A sample cap, or none.
fn sample_cap() -> impl Strategy<Value = Option<u64>> {
    proptest::option::of(1..=crate::limits::MAX_NUM_SAMPLES)
}

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![
        (keys(1, 32), params())
            .prop_map(|(admins, params)| Action::InitConsortium(InitConsortium { admins, params })),
        (key(), name(), endpoint(), sample_cap()).prop_map(
            |(public_key, name, endpoint, max_samples)| {
                Action::RegisterMember(RegisterMember {
                    public_key,
                    name,
                    endpoint,
                    max_samples,
                })
            }
        ),
        (
            key(),
            proptest::option::of(name()),
            endpoint(),
            sample_cap()
        )
            .prop_map(|(public_key, name, e, max_samples)| {
                Action::UpdateMember(UpdateMember {
                    public_key,
                    endpoint: Some(e),
                    name,
                    max_samples,
                })
            }),
        (key(), "[a-z][a-z ]{0,100}[a-z]").prop_map(|(public_key, r)| {
            Action::SuspendMember(SuspendMember {
                public_key,
                reason: Reason::parse(&r).unwrap(),
            })
        }),
        (1u64.., sha(), key(), mode(), schedule(), privacy()).prop_map(
            |(round, parent, aggregator, mode, (sync, buffer_size, max_staleness), privacy)| {
                Action::OpenRound(OpenRound {
                    round,
                    parent_model_sha256: parent,
                    aggregator,
                    mode,
                    sync,
                    buffer_size,
                    max_staleness,
                    privacy,
                })
            }
        ),
        (
            (
                1u64..,
                sha(),
                1..=crate::limits::MAX_BLOB_BYTES,
                1..=crate::limits::MAX_NUM_SAMPLES
            ),
            (
                any::<i64>(),
                any::<u64>(),
                vec(any::<i8>(), 1..64),
                blob_uri()
            ),
            (
                1u64..,
                vec(-127i32..=127, 0..16),
                1..=crate::statistics::MAX_COORDINATE_STEP_NANO
            )
        )
            .prop_map(
                |(
                    (round, sha, size, samples),
                    (loss, norm, sketch, blob_uri),
                    (base_round, steps, step),
                )| {
                    let step = if steps.is_empty() { 0 } else { step };
                    let coordinates = Coordinates::new(step, steps).unwrap();
                    Action::CommitUpdate(CommitUpdate {
                        round,
                        update_sha256: sha,
                        size_bytes: size,
                        num_samples: samples,
                        loss_micro: loss,
                        norm_micro: norm,
                        sketch,
                        coordinates,
                        blob_uri,
                        base_round,
                    })
                }
            ),
        (
            any::<u64>(),
            keys(1, 20),
            1..=crate::limits::MAX_BYTES_PER_SEC,
            0..=crate::limits::MAX_RTT_US
        )
            .prop_map(|(epoch, targets, bps, rtt)| {
                let measurements = targets
                    .into_iter()
                    .map(|to| LinkMeasurement {
                        to,
                        bytes_per_sec: bps,
                        rtt_us: rtt,
                        probe_bytes: 1,
                    })
                    .collect();
                Action::ReportBandwidth(ReportBandwidth {
                    epoch,
                    measurements,
                })
            }),
        (1u64..).prop_map(|round| Action::EvaluateRound(EvaluateRound { round })),
        (
            1u64..,
            sha(),
            keys(1, 30),
            1..=crate::limits::MAX_BLOB_BYTES,
            blob_uri()
        )
            .prop_map(|(round, model, mut all, size, blob_uri)| {
                let excluded = all.split_off(all.len().div_ceil(2));
                Action::CommitAggregate(CommitAggregate {
                    round,
                    model_sha256: model,
                    contributors: all,
                    rule: pb::AggregationRule::MEDIAN,
                    excluded,
                    size_bytes: size,
                    blob_uri,
                })
            }),
        (1u64..).prop_map(|round| Action::CloseRound(CloseRound { round })),
        (1u64..).prop_map(|round| Action::SealRound(SealRound { round })),
        (
            1u64..,
            vec(any::<i8>(), 1..=crate::limits::MAX_SKETCH_LENGTH)
        )
            .prop_map(|(round, sketch)| Action::RevealSketch(RevealSketch { round, sketch })),
    ]
}

proptest! {
    #[test]
    fn actions_round_trip_through_bytes(action in action()) {
        let bytes = action.to_bytes();
        prop_assert_eq!(Action::parse(&bytes).unwrap(), action.clone());
        // The canonical encoding is stable.
        prop_assert_eq!(Action::parse(&bytes).unwrap().to_bytes(), bytes);
    }

    #[test]
    fn declared_addresses_are_sorted_valid_and_in_namespace(action in action(), signer in key()) {
        let access = action_addresses(&action, &signer);
        for list in [&access.inputs, &access.outputs] {
            prop_assert!(!list.is_empty());
            prop_assert!(list.windows(2).all(|w| w[0] < w[1]));
            for a in list.iter() {
                prop_assert!(address::is_valid_prefix(a) && a.starts_with(crate::NAMESPACE), "{}", a);
            }
        }
        prop_assert!(access.inputs.contains(&address::consortium_address()));
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in vec(any::<u8>(), 0..256)) {
        let _ = Action::parse(&bytes);
    }
}

#[test]
fn key_lists_are_sorted_whatever_the_input_order() {
    let (a, b) = (
        "02".to_owned() + &"a".repeat(64),
        "03".to_owned() + &"0".repeat(64),
    );
    let mut m = pb::CommitAggregate {
        round: 1,
        model_sha256: "0".repeat(64),
        contributors: vec![b.clone(), a.clone()].into(),
        rule: pb::AggregationRule::FEDAVG,
        size_bytes: 1,
        ..Default::default()
    };
    let mut payload = pb::BcflPayload::new();
    payload.set_commit_aggregate(m.clone());
    let Action::CommitAggregate(parsed) = Action::from_proto(&payload).unwrap() else {
        panic!("wrong action");
    };
    assert_eq!(
        parsed.contributors,
        vec![PublicKey::parse(&a).unwrap(), PublicKey::parse(&b).unwrap()]
    );
    m.excluded = vec![a.clone()].into();
    payload.set_commit_aggregate(m);
    let err = Action::from_proto(&payload).unwrap_err().to_string();
    assert_eq!(
        err,
        "commit_aggregate.excluded: must not name a contributor"
    );
}

#[test]
fn malformed_payloads_are_refused() {
    assert_eq!(Action::parse(&[]), Err(PayloadError::NoAction));
    assert!(matches!(
        Action::parse(&[0x0a, 0x05, 0x01]),
        Err(PayloadError::Decode(_))
    ));
    // Field 99 (varint): unknown oneof member.
    assert_eq!(
        Action::parse(&[0x98, 0x06, 0x01]),
        Err(PayloadError::UnknownFields { message: "payload" })
    );
    // A known action with an unknown field inside: close_round { round: 1, field 9: 1 }.
    let inner = [0x08, 0x01, 0x48, 0x01];
    let mut bytes = vec![0x52, inner.len() as u8];
    bytes.extend_from_slice(&inner);
    assert_eq!(
        Action::parse(&bytes),
        Err(PayloadError::UnknownFields {
            message: "close_round"
        })
    );
    // An unknown enum value (mode = 7) is kept as an unknown field by protobuf.
    let mut open = pb::OpenRound {
        round: 1,
        parent_model_sha256: "0".repeat(64),
        aggregator: "02".to_owned() + &"1".repeat(64),
        mode: pb::RoundMode::SERVER,
        ..Default::default()
    };
    let mut payload = pb::BcflPayload::new();
    payload.set_open_round(open.clone());
    let mut bytes = payload.write_to_bytes().unwrap();
    let mode_byte = bytes.iter().rposition(|b| *b == 2).unwrap();
    bytes[mode_byte] = 7;
    assert!(Action::parse(&bytes).is_err());
    open.mode = pb::RoundMode::ROUND_MODE_UNSET;
    payload.set_open_round(open);
    assert_eq!(
        Action::from_proto(&payload).unwrap_err().to_string(),
        "open_round.mode: must be set"
    );
}

#[test]
fn bounds_are_enforced() {
    let mut commit = pb::CommitUpdate {
        round: 1,
        update_sha256: "0".repeat(64),
        size_bytes: 1,
        num_samples: 1,
        sketch: vec![0; crate::limits::MAX_SKETCH_LENGTH + 1],
        ..Default::default()
    };
    let mut payload = pb::BcflPayload::new();
    payload.set_commit_update(commit.clone());
    let err = Action::from_proto(&payload).unwrap_err().to_string();
    assert_eq!(
        err,
        "commit_update.sketch: must hold at most 4096 values, got 4097"
    );
    let mut reveal = pb::RevealSketch {
        round: 1,
        ..Default::default()
    };
    for (len, err) in [
        (0, "reveal_sketch.sketch: must hold 1..=4096 values, got 0"),
        (
            4097,
            "reveal_sketch.sketch: must hold 1..=4096 values, got 4097",
        ),
    ] {
        reveal.sketch = vec![0; len];
        payload.set_reveal_sketch(reveal.clone());
        assert_eq!(Action::from_proto(&payload).unwrap_err().to_string(), err);
    }
    commit.sketch = vec![1];
    commit.coordinate_step_nano = 1;
    commit.coordinate_steps = vec![0; crate::limits::MAX_COORDINATE_SAMPLES + 1];
    payload.set_commit_update(commit.clone());
    let err = Action::from_proto(&payload).unwrap_err().to_string();
    assert_eq!(
        err,
        "commit_update.coordinate_steps: must hold at most 4096 values, got 4097"
    );
    // One byte a step: 0x80 is -128, outside the symmetric range.
    commit.coordinate_steps = vec![3, 0x80];
    payload.set_commit_update(commit.clone());
    let err = Action::from_proto(&payload).unwrap_err().to_string();
    assert_eq!(
        err,
        "commit_update.coordinate_steps: every step must be within 127 in magnitude, got -128"
    );
    commit.coordinate_steps = vec![3, 0x81];
    payload.set_commit_update(commit.clone());
    let Action::CommitUpdate(parsed) = Action::from_proto(&payload).unwrap() else {
        panic!("a commit_update")
    };
    assert_eq!(parsed.coordinates.steps(), &[3, -127]);
    commit.coordinate_step_nano = 0;
    commit.coordinate_steps = vec![3];
    payload.set_commit_update(commit.clone());
    let err = Action::from_proto(&payload).unwrap_err().to_string();
    assert!(
        err.contains("the step must be 0 exactly when there are no steps"),
        "{err}"
    );
    commit.coordinate_steps.clear();
    commit.size_bytes = 0;
    payload.set_commit_update(commit.clone());
    let err = Action::from_proto(&payload).unwrap_err().to_string();
    assert!(
        err.starts_with("commit_update.size_bytes: must be in 1..="),
        "{err}"
    );
    commit.size_bytes = 1;
    commit.blob_uri = "file:///etc/passwd".into();
    payload.set_commit_update(commit);
    let err = Action::from_proto(&payload).unwrap_err().to_string();
    assert!(
        err.starts_with("commit_update.blob_uri: must be a URI"),
        "{err}"
    );

    let too_many: Vec<pb::LinkMeasurement> = (0..=crate::limits::MAX_MEASUREMENTS)
        .map(|i| pb::LinkMeasurement {
            to: format!("02{i:064x}"),
            bytes_per_sec: 1,
            probe_bytes: 1,
            ..Default::default()
        })
        .collect();
    payload.set_report_bandwidth(pb::ReportBandwidth {
        epoch: 1,
        measurements: too_many.into(),
        ..Default::default()
    });
    let err = Action::from_proto(&payload).unwrap_err().to_string();
    assert_eq!(
        err,
        "report_bandwidth.measurements: must hold 1..=256 measurements, got 257"
    );

    let admins: Vec<String> = (0..=crate::limits::MAX_ADMINS)
        .map(|i| format!("03{i:064x}"))
        .collect();
    payload.set_init_consortium(pb::InitConsortium {
        admin_keys: admins.into(),
        ..Default::default()
    });
    let err = Action::from_proto(&payload).unwrap_err().to_string();
    assert_eq!(
        err,
        "init_consortium.admin_keys: must list 1..=32 keys, got 33"
    );
}

fn open_round_payload(build: impl FnOnce(&mut pb::OpenRound)) -> pb::BcflPayload {
    let mut open = pb::OpenRound {
        round: 2,
        parent_model_sha256: "0".repeat(64),
        aggregator: "02".to_owned() + &"1".repeat(64),
        mode: pb::RoundMode::SERVERLESS,
        ..Default::default()
    };
    build(&mut open);
    let mut payload = pb::BcflPayload::new();
    payload.set_open_round(open);
    payload
}

fn open_round_error(build: impl FnOnce(&mut pb::OpenRound)) -> String {
    Action::from_proto(&open_round_payload(build))
        .unwrap_err()
        .to_string()
}

#[test]
fn open_round_schedule_and_privacy_fields() {
    // An unset synchronization is read as SYNCHRONOUS, and written back explicitly.
    let Action::OpenRound(parsed) = Action::from_proto(&open_round_payload(|_| {})).unwrap() else {
        panic!("wrong action");
    };
    assert_eq!(parsed.sync, pb::RoundSync::SYNCHRONOUS);
    assert_eq!((parsed.buffer_size, parsed.max_staleness), (0, 0));
    assert!(parsed.privacy.is_empty());
    assert_eq!(
        Action::OpenRound(parsed.clone())
            .to_proto()
            .get_open_round()
            .sync,
        pb::RoundSync::SYNCHRONOUS
    );
    // Within their limits the fields parse, whatever the synchronization (the rules check that
    // they fit together); privacy lists are held sorted.
    let Action::OpenRound(parsed) = Action::from_proto(&open_round_payload(|o| {
        o.sync = pb::RoundSync::BUFFERED_ASYNC;
        o.buffer_size = 1024;
        o.max_staleness = 16;
        o.privacy = vec![
            pb::PrivacyGuarantee::SECURE_AGGREGATION,
            pb::PrivacyGuarantee::DIFFERENTIAL_PRIVACY,
        ];
    }))
    .unwrap() else {
        panic!("wrong action");
    };
    assert_eq!(
        (parsed.sync, parsed.buffer_size, parsed.max_staleness),
        (pb::RoundSync::BUFFERED_ASYNC, 1024, 16)
    );
    assert_eq!(
        parsed.privacy,
        vec![
            pb::PrivacyGuarantee::DIFFERENTIAL_PRIVACY,
            pb::PrivacyGuarantee::SECURE_AGGREGATION
        ]
    );
    assert_eq!(
        open_round_error(|o| o.buffer_size = 1025),
        "open_round.buffer_size: must be in 0..=1024, got 1025"
    );
    assert_eq!(
        open_round_error(|o| o.max_staleness = 17),
        "open_round.max_staleness: must be in 0..=16, got 17"
    );
    assert_eq!(
        open_round_error(|o| o.privacy = vec![pb::PrivacyGuarantee::PRIVACY_GUARANTEE_UNSET]),
        "open_round.privacy: must not contain PRIVACY_GUARANTEE_UNSET"
    );
    assert_eq!(
        open_round_error(|o| {
            o.privacy = vec![
                pb::PrivacyGuarantee::SECURE_AGGREGATION,
                pb::PrivacyGuarantee::SECURE_AGGREGATION,
            ]
        }),
        "open_round.privacy: must not repeat a guarantee"
    );
    // Unknown enum values are unknown fields, as for every enum of the family.
    let mut bytes = open_round_payload(|o| o.sync = pb::RoundSync::BUFFERED_ASYNC)
        .write_to_bytes()
        .unwrap();
    let sync_byte = bytes.iter().rposition(|b| *b == 2).unwrap();
    bytes[sync_byte] = 9;
    assert!(Action::parse(&bytes).is_err());
}

#[test]
fn commit_base_round_defaults_to_the_round_and_declares_the_base() {
    let signer = PublicKey::parse(&("03".to_owned() + &"4".repeat(64))).unwrap();
    let mut commit = pb::CommitUpdate {
        round: 5,
        update_sha256: "0".repeat(64),
        size_bytes: 1,
        num_samples: 1,
        sketch: vec![1],
        ..Default::default()
    };
    let mut payload = pb::BcflPayload::new();
    payload.set_commit_update(commit.clone());
    let action = Action::from_proto(&payload).unwrap();
    let Action::CommitUpdate(parsed) = &action else {
        panic!("wrong action");
    };
    assert_eq!(parsed.base_round, 5);
    let access = action_addresses(&action, &signer);
    assert!(!access.inputs.contains(&address::round_address(3)));
    commit.base_round = 3;
    payload.set_commit_update(commit);
    let action = Action::from_proto(&payload).unwrap();
    let Action::CommitUpdate(parsed) = &action else {
        panic!("wrong action");
    };
    assert_eq!(parsed.base_round, 3);
    let access = action_addresses(&action, &signer);
    assert!(access.inputs.contains(&address::round_address(3)));
    assert!(!access.outputs.contains(&address::round_address(3)));
}
