//! The anomaly verdict end to end through the real handler on a [`MemoryLedger`]: members commit,
//! report bandwidth, the round is evaluated on chain, and the aggregate must leave the excluded
//! members out.

use super::member_scores;
use crate::error::ApplyError;
use bcfl_protos::bcfl as pb;
use protobuf::SingularPtrField;

use crate::testing::{packed, test_key, MemoryLedger};

const SKETCH: [i32; 8] = [100, -40, 70, 30, -80, 50, 20, -60];

fn hash(tag: &str) -> String {
    crate::address::sha512_hex(tag.as_bytes())[..64].to_owned()
}

fn payload(build: impl FnOnce(&mut pb::BcflPayload)) -> pb::BcflPayload {
    let mut p = pb::BcflPayload::new();
    build(&mut p);
    p
}

fn open_round(round: u64, aggregator: &str) -> pb::BcflPayload {
    payload(|p| {
        p.set_open_round(pb::OpenRound {
            round,
            parent_model_sha256: hash("base"),
            aggregator: aggregator.to_owned(),
            mode: pb::RoundMode::SERVERLESS,
            ..Default::default()
        })
    })
}

fn anomaly_config() -> pb::AnomalyConfig {
    let features = vec![
        pb::Feature::UPDATE_NORM,
        pb::Feature::SKETCH_COSINE_DISTANCE,
    ];
    let mut config = pb::AnomalyConfig {
        ensemble_min_votes: 2,
        ..Default::default()
    };
    *config.mut_pagerank() = pb::PageRankConfig {
        damping_ppm: 850_000,
        k_ppm: 1_000_000,
        weight: pb::PageRankWeight::BANDWIDTH,
        max_iterations: 200,
        tolerance_ppb: 1,
        ..Default::default()
    };
    *config.mut_dbscan() = pb::DbscanConfig {
        eps_ppm: 1_000_000,
        min_points: 3,
        features: features.clone(),
        ..Default::default()
    };
    *config.mut_zscore() = pb::ZScoreConfig {
        threshold_ppm: 3_500_000,
        features,
        ..Default::default()
    };
    config
}

struct Round {
    ledger: MemoryLedger,
    admin: String,
    /// Member keys by name index: 0..=5 honest (2 behind slow links), 6 sign flip, 7 scaled x10.
    members: Vec<String>,
}

/// FedAvg consortium parameters for `members` members, `quorum` commitments a round and
/// `anomaly`, with sketches of `SKETCH`'s length.
fn params(members: u32, quorum: u32, anomaly: Option<pb::AnomalyConfig>) -> pb::ConsortiumParams {
    pb::ConsortiumParams {
        min_participants: members,
        commit_quorum: quorum,
        aggregation_rule: pb::AggregationRule::FEDAVG,
        model_id: "test-model".into(),
        base_model_sha256: hash("base"),
        sketch_length: SKETCH.len() as u32,
        anomaly: anomaly.into(),
        ..Default::default()
    }
}

/// A ledger holding a consortium with `params` (its admin) and `n` registered members.
fn registered(n: usize, params: pb::ConsortiumParams) -> (MemoryLedger, String, Vec<String>) {
    let mut ledger = MemoryLedger::new();
    let admin = test_key("admin");
    let members: Vec<String> = (0..n).map(|i| test_key(&format!("member{i}"))).collect();
    let init = pb::InitConsortium {
        admin_keys: vec![admin.clone()].into(),
        params: SingularPtrField::some(params),
        ..Default::default()
    };
    ledger
        .submit(&admin, &payload(|p| p.set_init_consortium(init)))
        .unwrap();
    for (i, key) in members.iter().enumerate() {
        let register = pb::RegisterMember {
            public_key: key.clone(),
            name: format!("member{i}"),
            endpoint: format!("http://127.0.0.1:{}", 7000 + i),
            ..Default::default()
        };
        ledger
            .submit(&admin, &payload(|p| p.set_register_member(register)))
            .unwrap();
    }
    (ledger, admin, members)
}

fn committed_round(anomaly: Option<pb::AnomalyConfig>) -> Round {
    let (mut ledger, admin, members) = registered(8, params(8, 8, anomaly));
    let submit = |ledger: &mut MemoryLedger, signer: &str, p: pb::BcflPayload| {
        ledger.submit(signer, &p).unwrap();
    };
    submit(&mut ledger, &admin, open_round(1, &members[0]));
    for (i, key) in members.iter().enumerate() {
        // Honest updates: the same direction with small per-member perturbations, norm ~3.
        let jitter = i as i32 % 3 - 1;
        let mut sketch: Vec<i32> = SKETCH.iter().map(|v| v + jitter * (v / 10)).collect();
        sketch[i % SKETCH.len()] += 3;
        let mut norm = 3_000_000 + 20_000 * i as u64;
        match i {
            6 => sketch.iter_mut().for_each(|v| *v = -*v),
            // Scaled x10: its sketch is scaled to 127 as a member's own code scales it (the
            // scaling leaves no trace there); its norm shows it.
            7 => {
                let projection: Vec<f64> = sketch.iter().map(|v| f64::from(*v) * 10.0).collect();
                sketch = crate::statistics::scaled_sketch(&projection);
                norm *= 10;
            }
            _ => {}
        }
        let commit = pb::CommitUpdate {
            round: 1,
            update_sha256: hash(&format!("update{i}")),
            size_bytes: 4096,
            num_samples: 100,
            loss_micro: 1_200_000,
            norm_micro: norm,
            sketch: packed(&sketch),
            ..Default::default()
        };
        submit(&mut ledger, key, payload(|p| p.set_commit_update(commit)));
        // Every member measures every other; links of members 2 and 3 are 100x slower (both
        // ends report them so: the graph evidence uses only links both ends confirm).
        let measurements = members
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(j, to)| pb::LinkMeasurement {
                to: to.clone(),
                bytes_per_sec: if j == 2 || j == 3 || i == 2 || i == 3 {
                    1_000_000
                } else {
                    100_000_000
                },
                rtt_us: 500,
                probe_bytes: 1 << 20,
                ..Default::default()
            })
            .collect();
        let report = pb::ReportBandwidth {
            epoch: 1,
            measurements,
            ..Default::default()
        };
        submit(
            &mut ledger,
            key,
            payload(|p| p.set_report_bandwidth(report)),
        );
    }
    Round {
        ledger,
        admin,
        members,
    }
}

/// The consensus record in `ledger`'s state.
fn consensus(ledger: &MemoryLedger) -> pb::ConsensusSketch {
    <pb::ConsensusSketch as protobuf::Message>::parse_from_bytes(
        &ledger.state()[&crate::address::consensus_address()],
    )
    .unwrap()
}

/// The consensus archives in `ledger`'s state, by round.
fn archives(ledger: &MemoryLedger) -> std::collections::BTreeMap<u64, Vec<i64>> {
    let prefix = crate::address::type_prefix(crate::address::AddressKind::ConsensusArchive);
    ledger
        .state()
        .iter()
        .filter(|(address, _)| address.starts_with(&prefix))
        .map(|(_, bytes)| {
            let a = <pb::ConsensusArchive as protobuf::Message>::parse_from_bytes(bytes).unwrap();
            (a.round, a.sum)
        })
        .collect()
}

/// Member `key` (the `i`-th) commits to `round` with `samples`, the sketch `SKETCH` and the
/// sampled coordinates `steps`, in steps of `step_nano` nano-units.
fn commit_coordinates(
    ledger: &mut MemoryLedger,
    key: &str,
    round: u64,
    i: usize,
    samples: u64,
    steps: [i32; 4],
    step_nano: u64,
) {
    let commit = pb::CommitUpdate {
        round,
        update_sha256: hash(&format!("update{round}-{i}")),
        size_bytes: 4096,
        num_samples: samples,
        norm_micro: 3_000_000,
        sketch: packed(&SKETCH),
        coordinate_step_nano: step_nano,
        coordinate_steps: packed(&steps),
        ..Default::default()
    };
    ledger
        .submit(key, &payload(|p| p.set_commit_update(commit)))
        .unwrap();
}

/// The `EvaluateRound` payload of `round`.
fn evaluate(round: u64) -> pb::BcflPayload {
    payload(|p| {
        p.set_evaluate_round(pb::EvaluateRound {
            round,
            ..Default::default()
        })
    })
}

/// `admin` evaluates `round`; its verdict.
fn evaluate_round(ledger: &mut MemoryLedger, admin: &str, round: u64) -> pb::Verdict {
    ledger.submit(admin, &evaluate(round)).unwrap();
    ledger.verdict(round).unwrap()
}

/// `admin` closes `round`.
fn close_round(ledger: &mut MemoryLedger, admin: &str, round: u64) {
    let close = pb::CloseRound {
        round,
        ..Default::default()
    };
    ledger
        .submit(admin, &payload(|p| p.set_close_round(close)))
        .unwrap();
}

fn sorted(keys: &[&String]) -> Vec<String> {
    let mut v: Vec<String> = keys.iter().map(|k| (*k).clone()).collect();
    v.sort();
    v
}

fn aggregate(contributors: Vec<String>, excluded: Vec<String>) -> pb::BcflPayload {
    payload(|p| {
        p.set_commit_aggregate(pb::CommitAggregate {
            round: 1,
            model_sha256: hash("global"),
            contributors: contributors.into(),
            rule: pb::AggregationRule::FEDAVG,
            excluded: excluded.into(),
            size_bytes: 4096,
            ..Default::default()
        })
    })
}

#[test]
fn sign_flipped_and_scaled_committers_are_excluded_on_chain() {
    let Round {
        mut ledger,
        admin,
        members: m,
    } = committed_round(Some(anomaly_config()));
    let events = ledger.submit(&admin, &evaluate(1)).unwrap();
    let verdict = ledger.verdict(1).unwrap();
    let excluded = sorted(&[&m[6], &m[7]]);
    assert_eq!(verdict.excluded.to_vec(), excluded);
    assert_eq!(
        events[0].attribute("excluded"),
        Some(excluded.join(",").as_str())
    );
    let accepted = sorted(&m[..6].iter().collect::<Vec<_>>());
    assert_eq!(verdict.accepted.to_vec(), accepted);
    // The ledger stores the verdict without them: they are the round's committers without the
    // excluded, restored on reading.
    let raw = &ledger.state()[&crate::address::verdict_address(1)];
    let stored = <pb::Verdict as protobuf::Message>::parse_from_bytes(raw).unwrap();
    assert!(stored.accepted.is_empty());
    // Nor the excluded members' keys: their positions among the round's committers.
    let committers = ledger.round(1).unwrap().committers.to_vec();
    assert!(stored.excluded.is_empty() && stored.excluded_keys.is_empty());
    let positions: Vec<u32> = excluded
        .iter()
        .map(|k| committers.iter().position(|c| c == k).unwrap() as u32)
        .collect();
    assert_eq!(stored.excluded_positions, positions);
    use bcfl_protos::compact::Compact;
    assert_eq!(stored, verdict.stored(&committers).compacted());
    assert_eq!(stored.expanded().unwrap(), verdict.stored(&committers));
    let methods: Vec<pb::AnomalyMethod> = verdict.methods.iter().map(|v| v.method).collect();
    use pb::AnomalyMethod::*;
    assert_eq!(methods, vec![PAGERANK, DBSCAN, MODIFIED_ZSCORE]);
    assert!(verdict.scored().windows(2).all(|w| w[0] < w[1]));
    assert_eq!(verdict.scored().len(), 8);
    let flagged_by = |method: usize| -> Vec<String> {
        assert_eq!(verdict.methods[method].scores_micro.len(), 8);
        member_scores(&verdict.scored(), &verdict.methods[method])
            .filter(|s| s.flagged)
            .map(|s| s.member.to_owned())
            .collect()
    };
    // PageRank flags the two members behind slow links (weight B_ij): one vote is not enough.
    assert_eq!(flagged_by(0), sorted(&[&m[2], &m[3]]));
    assert_eq!(flagged_by(1), excluded);
    assert_eq!(flagged_by(2), excluded);
    let rank_sum: i64 = verdict.methods[0].scores_micro.iter().sum();
    assert!((rank_sum - 1_000_000).abs() <= 8, "{rank_sum}");

    // The aggregate must leave the excluded members out.
    let all = sorted(&m.iter().collect::<Vec<_>>());
    match ledger.submit(&m[0], &aggregate(all, vec![])) {
        Err(ApplyError::InvalidTransaction(msg)) => {
            assert!(
                msg.contains("exactly the verdict's accepted members"),
                "{msg}"
            )
        }
        other => panic!("expected a rejection, got {other:?}"),
    }
    ledger
        .submit(&m[0], &aggregate(accepted.clone(), excluded.clone()))
        .unwrap();
    // The stored aggregate names its contributors and exclusions once, through the verdict.
    let stored = ledger.aggregate(1).unwrap();
    assert_eq!(stored.model_sha256, hash("global"));
    assert_eq!(ledger.verdict(1).unwrap(), verdict);
}

#[test]
fn any_vote_excludes_with_ensemble_of_one() {
    let mut config = anomaly_config();
    config.ensemble_min_votes = 0;
    let Round {
        mut ledger,
        admin,
        members: m,
    } = committed_round(Some(config));
    ledger.submit(&admin, &evaluate(1)).unwrap();
    let verdict = ledger.verdict(1).unwrap();
    assert_eq!(
        verdict.excluded.to_vec(),
        sorted(&[&m[2], &m[3], &m[6], &m[7]])
    );
}

#[test]
fn without_a_configuration_everyone_is_accepted() {
    let Round {
        mut ledger, admin, ..
    } = committed_round(None);
    ledger.submit(&admin, &evaluate(1)).unwrap();
    let verdict = ledger.verdict(1).unwrap();
    assert_eq!(verdict.accepted.len(), 8);
    assert!(verdict.excluded.is_empty() && verdict.methods.is_empty());
}

/// Integer evidence from a linear congruential generator (no floating point in the inputs).
fn lcg_evidence() -> (Vec<pb::Commitment>, Vec<pb::Link>) {
    let mut x: u64 = 12345;
    let mut next = move |m: u64| {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (x >> 33) % m
    };
    let keys: Vec<String> = (0..12).map(|i| format!("k{i:02}")).collect();
    let commitments = keys
        .iter()
        .enumerate()
        .map(|(i, k)| {
            let flip = if i == 3 { -1 } else { 1 };
            pb::Commitment {
                member: k.clone(),
                norm_micro: 2_000_000 + next(400_000) + if i == 7 { 20_000_000 } else { 0 },
                loss_micro: 400_000 + next(100_000) as i64,
                num_samples: 80 + next(40),
                sketch: packed(
                    &SKETCH
                        .iter()
                        .map(|v| flip * (v + next(21) as i32 - 10))
                        .collect::<Vec<_>>(),
                ),
                ..Default::default()
            }
        })
        .collect();
    let mut links = Vec::new();
    for from in &keys {
        for to in &keys {
            if from != to && next(3) > 0 {
                links.push(pb::Link {
                    from: from.clone(),
                    to: to.clone(),
                    samples: (0..3)
                        .map(|e| pb::LinkSample {
                            epoch: e,
                            bytes_per_sec: 1_000_000 + next(99_000_000),
                            ..Default::default()
                        })
                        .collect(),
                    ..Default::default()
                });
            }
        }
    }
    (commitments, links)
}

/// Every validator must compute the same verdict bytes, across builds and platforms: this pins
/// them. If a change to the methods alters this digest, it changes consensus: every validator
/// must upgrade at once. The stored bytes' digest is pinned apart: the ledger stores a verdict
/// without `accepted` since each key is stored once a round; that digest last changed when the
/// excluded members became positions among the round's committers. The bytes' digest last
/// changed when the verdict stopped storing
/// `scored` (derived from `accepted`, `excluded` and `disputed`), before the family's first
/// release, and before that when it began to store its scores aligned with the scored members
/// instead of one keyed entry each; the scores' own digest (every member's score and flag, method by method) pins what
/// the methods compute, and did not change then (it was last changed when the graph evidence
/// began to use only links both ends confirm).
#[test]
fn verdict_bytes_are_pinned() {
    use protobuf::Message;
    use sha2::{Digest, Sha256};

    let (commitments, links) = lcg_evidence();
    let mut config = anomaly_config();
    config
        .mut_dbscan()
        .features
        .push(pb::Feature::PAGERANK_SCORE);
    config.mut_zscore().features.extend([
        pb::Feature::TRAINING_LOSS,
        pb::Feature::SAMPLE_COUNT,
        pb::Feature::BANDWIDTH_IN,
        pb::Feature::BANDWIDTH_OUT,
    ]);
    // Links whose two ends differ by up to a factor 100 count (the random bandwidths span 1-100 MB/s).
    let data =
        super::MemberData::from_evidence(&commitments, &links, &Default::default(), 100_000_000);
    let e = super::evaluate(&config, &data).unwrap();
    // The sign-flipped k03 and the scaled k07. (Before links needed both ends' confirmation,
    // k11's one-sided links made its PageRank unusual and DBSCAN, which here also uses the
    // PageRank score, found it apart too.)
    assert_eq!(e.excluded, ["k03", "k07"]);
    let verdict = pb::Verdict {
        round: 1,
        methods: e.methods.into(),
        accepted: e.accepted.into(),
        excluded: e.excluded.into(),
        ..Default::default()
    };
    let digest = hex::encode(Sha256::digest(verdict.write_to_bytes().unwrap()));
    // What the ledger stores: the verdict without its accepted members (the round's committers
    // without the excluded), the excluded as positions among the committers.
    let mut committers = verdict.scored();
    committers.sort();
    let stored = hex::encode(Sha256::digest(
        verdict.stored(&committers).write_to_bytes().unwrap(),
    ));
    assert_eq!(
        stored,
        "ea0fc7a431fdab1bce9f4e654a8b2a5a88986c82a8acdb8d4242694c7f50c133"
    );
    let scored = verdict.scored();
    let scores: String = verdict
        .methods
        .iter()
        .flat_map(|m| member_scores(&scored, m))
        .map(|s| format!("{}:{}:{};", s.member, s.score_micro, s.flagged))
        .collect();
    assert_eq!(
        hex::encode(Sha256::digest(scores.as_bytes())),
        "01733b90b5818c02fd45641ca77b03070e5cdc3a1096e8f22e4f89687ad03840"
    );
    let flagged: Vec<Vec<&str>> = verdict
        .methods
        .iter()
        .map(|m| {
            member_scores(&scored, m)
                .filter(|s| s.flagged)
                .map(|s| s.member)
                .collect()
        })
        .collect();
    assert_eq!(
        flagged,
        [
            vec!["k04", "k07", "k08", "k11"],
            vec!["k03", "k07"],
            vec!["k03", "k07"]
        ]
    );
    assert_eq!(
        digest,
        "b343573c06d15c719ff203351b4a4da8b0b9c1faacf025531e54708d6df600a9"
    );
}

#[test]
fn the_sketch_history_carries_a_past_attack_into_the_next_verdict() {
    // Only the cumulative feature: a member is judged by everything it committed so far.
    let mut config = pb::AnomalyConfig {
        ensemble_min_votes: 1,
        ..Default::default()
    };
    *config.mut_zscore() = pb::ZScoreConfig {
        threshold_ppm: 3_500_000,
        features: vec![pb::Feature::CUMULATIVE_SKETCH_COSINE_DISTANCE],
        ..Default::default()
    };
    let Round {
        mut ledger,
        admin,
        members: m,
    } = committed_round(Some(config));
    ledger.submit(&admin, &evaluate(1)).unwrap();
    // Round 1: the sign flipper is excluded; the x10 member points the right way.
    assert_eq!(
        ledger.verdict(1).unwrap().excluded.to_vec(),
        vec![m[6].clone()]
    );
    let commitments: Vec<pb::Commitment> =
        m.iter().map(|k| ledger.commitment(1, k).unwrap()).collect();
    // Every member's sum sits at its own address.
    let stored = |ledger: &MemoryLedger| {
        let mut entries: Vec<pb::SketchSum> = m
            .iter()
            .flat_map(|k| {
                let bytes = &ledger.state()[&crate::address::sketch_sum_address(k)];
                let list = <pb::SketchSumList as protobuf::Message>::parse_from_bytes(bytes);
                bcfl_protos::compact::Compact::expanded(list.unwrap())
                    .unwrap()
                    .entries
                    .into_vec()
            })
            .collect();
        entries.sort_by(|a, b| a.member.cmp(&b.member));
        pb::SketchHistory {
            entries: entries.into(),
            ..Default::default()
        }
    };
    // The records restored as `EvaluateRound` reads them: sums with their last sketch back.
    let restored = |ledger: &MemoryLedger| {
        let records = stored(ledger).entries.into_vec();
        assert!(records.iter().all(|e| e.sum.is_empty()));
        let last = ledger.last_commitments(&records);
        let entries =
            super::stored::restored_sums(&records, &consensus(ledger), &archives(ledger), &last)
                .unwrap();
        pb::SketchHistory {
            entries: entries.into(),
            ..Default::default()
        }
    };
    let after_one = restored(&ledger);
    assert_eq!(after_one.entries.len(), 8);
    // The consensus is the mean sketch of the seven accepted members.
    let accepted_one: Vec<&pb::Commitment> =
        commitments.iter().filter(|c| c.member != m[6]).collect();
    assert_eq!(
        consensus(&ledger),
        pb::ConsensusSketch {
            evaluated_round: 1,
            followers: 8,
            ..super::features::extend_consensus(&Default::default(), 1, &accepted_one, &[])
        }
    );
    assert_eq!(consensus(&ledger).rounds, 1);
    for (entry, c) in after_one.entries.iter().zip({
        let mut sorted = commitments.clone();
        sorted.sort_by(|a, b| a.member.cmp(&b.member));
        sorted
    }) {
        assert_eq!(entry.member, c.member);
        assert_eq!((entry.rounds, entry.last_round), (1, 1));
        let expected: Vec<i64> = c.sketch_values().into_iter().map(i64::from).collect();
        assert_eq!(entry.sum, expected);
    }

    // Abandon round 1, open round 2: everybody now commits the honest direction, the former
    // sign flipper at half strength. Alone, round 2 shows nothing wrong with it.
    close_round(&mut ledger, &admin, 1);
    ledger.submit(&admin, &open_round(2, &m[0])).unwrap();
    for (i, key) in m.iter().enumerate() {
        let sketch: Vec<i32> = SKETCH
            .iter()
            .enumerate()
            .map(|(k, v)| {
                if i == 6 {
                    v / 2
                } else {
                    v + (k + i) as i32 % 5
                }
            })
            .collect();
        let commit = pb::CommitUpdate {
            round: 2,
            update_sha256: hash(&format!("update2-{i}")),
            size_bytes: 4096,
            num_samples: 100,
            loss_micro: 1_000_000,
            norm_micro: 3_000_000,
            sketch: packed(&sketch),
            ..Default::default()
        };
        ledger
            .submit(key, &payload(|p| p.set_commit_update(commit)))
            .unwrap();
    }
    let round_two: Vec<pb::Commitment> =
        m.iter().map(|k| ledger.commitment(2, k).unwrap()).collect();
    let mut sorted_two = round_two.clone();
    sorted_two.sort_by(|a, b| a.member.cmp(&b.member));
    let sketches: Vec<Vec<i32>> = sorted_two
        .iter()
        .map(pb::Commitment::sketch_values)
        .collect();
    let per_round = super::features::sketch_cosine_distances(
        &sketches.iter().map(|s| &s[..]).collect::<Vec<_>>(),
    );
    let six = sorted_two.iter().position(|c| c.member == m[6]).unwrap();
    assert!(per_round[six] < 0.01, "{per_round:?}");

    ledger.submit(&admin, &evaluate(2)).unwrap();
    let verdict = ledger.verdict(2).unwrap();
    // Its history (-S) plus S/2 still points against everybody else's 2S.
    assert_eq!(verdict.excluded.to_vec(), vec![m[6].clone()]);
    let scored = verdict.scored();
    let score = member_scores(&scored, &verdict.methods[0])
        .find(|s| s.member == m[6])
        .unwrap();
    assert!(score.flagged && score.score_micro > 3_500_000, "{score:?}");
    let after_two = restored(&ledger);
    let sums = |h: &pb::SketchHistory| -> Vec<Vec<i64>> {
        h.entries.iter().map(|e| e.sum.to_vec()).collect()
    };
    assert_eq!(
        sums(&after_two),
        sums(&super::features::extend_history(&after_one, 2, &sorted_two))
    );
    // Everybody committed to both rounds, so each member's consensus is the consortium's: the
    // records store none, and nothing was archived.
    assert!(stored(&ledger)
        .entries
        .iter()
        .all(|e| e.consensus.is_empty() && e.missed_consensus.is_empty()));
    assert!(!consensus(&ledger).sum.is_empty());
    assert!(archives(&ledger).is_empty());
    assert_eq!(consensus(&ledger).rounds, 2);
    assert_eq!(consensus(&ledger).last_round, 2);
    assert!(after_two
        .entries
        .iter()
        .all(|e| e.rounds == 2 && e.last_round == 2));
}

/// The inconsistent-change method on chain: `EvaluateRound` reads each committer's commitment to
/// the last round it had evaluated (declared through the commitments' type prefix) and flags a
/// member whose change turns away from its own previous one. A member's first round, and a
/// member new in round 2, have nothing to compare with.
#[test]
fn the_inconsistent_method_compares_each_member_with_its_own_previous_commitment() {
    let mut anomaly = pb::AnomalyConfig::default();
    anomaly.mut_inconsistent().min_cosine_ppm = super::INCONSISTENT_MIN_COSINE_PPM;
    let params = pb::ConsortiumParams {
        coordinate_samples: 4,
        ..params(6, 5, Some(anomaly))
    };
    let (mut ledger, admin, m) = registered(6, params);
    let commit = |ledger: &mut MemoryLedger, round: u64, i: usize, steps: [i32; 4]| {
        commit_coordinates(ledger, &m[i], round, i, 100, steps, 1_000);
    };
    let evaluate = |ledger: &mut MemoryLedger, round: u64| evaluate_round(ledger, &admin, round);
    // Round 1: members 0-4, each moving its own way; member 5 sits it out.
    let first: [[i32; 4]; 5] = [
        [40, -20, 10, 5],
        [-30, 50, 0, 10],
        [10, 10, 60, -40],
        [50, 0, -30, 20],
        [-10, -60, 20, 30],
    ];
    ledger.submit(&admin, &open_round(1, &m[0])).unwrap();
    for (i, steps) in first.iter().enumerate() {
        commit(&mut ledger, 1, i, *steps);
    }
    let one = evaluate(&mut ledger, 1);
    assert!(
        one.excluded.is_empty(),
        "nothing to compare with in round 1"
    );
    let scores = |verdict: &pb::Verdict| -> Vec<(String, i64, bool)> {
        member_scores(&verdict.scored(), &verdict.methods[0])
            .map(|s| (s.member.to_owned(), s.score_micro, s.flagged))
            .collect()
    };
    assert!(scores(&one).iter().all(|(_, s, f)| *s == 1_000_000 && !f));
    close_round(&mut ledger, &admin, 1);
    // Round 2: members 0-2 keep their direction (a little changed), member 3 sends a change
    // orthogonal to its first, member 4 its first one reversed, member 5 commits for the first
    // time.
    ledger.submit(&admin, &open_round(2, &m[0])).unwrap();
    let second: [[i32; 4]; 6] = [
        [36, -22, 12, 4],
        [-20, 40, 5, 10],
        [12, 8, 50, -30],
        [0, 20, 0, 0],
        [10, 60, -20, -30],
        [1, 2, 3, 4],
    ];
    for (i, steps) in second.iter().enumerate() {
        commit(&mut ledger, 2, i, *steps);
    }
    let two = evaluate(&mut ledger, 2);
    let mut expected_excluded = vec![m[3].clone(), m[4].clone()];
    expected_excluded.sort();
    assert_eq!(two.excluded.to_vec(), expected_excluded);
    // The scores are the cosines of the committed coordinates with each member's round-1 ones.
    let previous: Vec<pb::Commitment> = (0..5)
        .map(|i| ledger.commitment(1, &m[i]).unwrap())
        .collect();
    let mut now: Vec<pb::Commitment> = (0..6)
        .map(|i| ledger.commitment(2, &m[i]).unwrap())
        .collect();
    now.sort_by(|a, b| a.member.cmp(&b.member));
    let cosines = super::features::own_change_cosines(&now, &previous);
    let expected: Vec<(String, i64, bool)> = now
        .iter()
        .zip(&cosines)
        .map(|(c, &cos)| {
            (
                c.member.clone(),
                crate::fixed::saturating_micro(cos),
                cos < 0.25,
            )
        })
        .collect();
    assert_eq!(scores(&two), expected);
    let of = |i: usize| cosines[now.iter().position(|c| c.member == m[i]).unwrap()];
    assert!(of(0) > 0.99 && of(1) > 0.9 && of(2) > 0.9, "{cosines:?}");
    assert_eq!(of(3), 0.0);
    assert!((of(4) + 1.0).abs() < 1e-12);
    assert_eq!(of(5), 1.0, "a first commitment has nothing to compare with");
}

/// The mislabelled-change method on chain: the reference's values sit in the consortium's
/// parameters, `EvaluateRound` scores each committer by its coordinates' cosine with them,
/// averaged over its rounds (stored in its sketch sum), and excludes a member below the limit
/// on its own. A member whose first round lay on the reference and whose second lies against it
/// averages 0 and stays in; one against it both rounds is excluded both rounds.
#[test]
fn the_mislabelled_method_averages_each_members_margins_over_its_rounds() {
    let mut anomaly = pb::AnomalyConfig::default();
    anomaly.mut_mislabelled().reference_steps = packed(&[3, -4, 0, 0]);
    let params = pb::ConsortiumParams {
        coordinate_samples: 4,
        ..params(4, 4, Some(anomaly))
    };
    let (mut ledger, admin, m) = registered(4, params);
    let rounds: [[[i32; 4]; 4]; 2] = [
        [[3, -4, 1, 0], [30, -40, 0, 0], [-6, 8, 0, 0], [0, 0, 5, 5]],
        [[6, -8, 0, 7], [-30, 40, 0, 0], [-3, 4, 0, 0], [1, 0, 0, 0]],
    ];
    let margins = |verdict: &pb::Verdict| -> Vec<(usize, i64, bool)> {
        let mut v: Vec<(usize, i64, bool)> = member_scores(&verdict.scored(), &verdict.methods[0])
            .map(|s| {
                let i = m.iter().position(|k| k == s.member).unwrap();
                (i, s.score_micro, s.flagged)
            })
            .collect();
        v.sort();
        v
    };
    let mut verdicts = Vec::new();
    for (r, steps) in rounds.iter().enumerate() {
        let round = r as u64 + 1;
        ledger.submit(&admin, &open_round(round, &m[0])).unwrap();
        for (i, s) in steps.iter().enumerate() {
            commit_coordinates(&mut ledger, &m[i], round, i, 100, *s, 1_000);
        }
        let verdict = evaluate_round(&mut ledger, &admin, round);
        verdicts.push(margins(&verdict));
        close_round(&mut ledger, &admin, round);
    }
    // Round 1: cos([3, -4, 1, 0], r) = 25 / (sqrt 26 * 5) = 0.980581; member 3 is orthogonal.
    assert_eq!(
        verdicts[0],
        [
            (0, 980_581, false),
            (1, 1_000_000, false),
            (2, -1_000_000, true),
            (3, 0, false)
        ]
    );
    // Round 2, the mean of the two rounds' cosines: member 0 (0.980581 + 50 / (sqrt 149 * 5)
    // = 0.819232) / 2,
    // member 1 (1 - 1) / 2 = 0, member 2 -1, member 3 (0 + 0.6) / 2.
    assert_eq!(
        verdicts[1],
        [
            (0, 899_907, false),
            (1, 0, false),
            (2, -1_000_000, true),
            (3, 300_000, false)
        ]
    );
    let sum = |i: usize| ledger.sketch_sum(&m[i]).unwrap();
    assert_eq!(
        (sum(0).margin_sum_ppm, sum(0).margin_rounds),
        (1_799_813, 2)
    );
    assert_eq!(
        (sum(2).margin_sum_ppm, sum(2).margin_rounds),
        (-2_000_000, 2)
    );
}

/// The opposed-change method on chain: a member committing the honest members' mean reversed
/// (IPM) is excluded from its first round on, its sketch sum pointing against the consensus; in
/// round 2 the consensus is the mean of round 1's accepted members (the IPM member's sketch not
/// among them) and the honest members, moving the same way, stay accepted. The scores are the
/// cumulative sketch distances.
#[test]
fn the_opposed_method_excludes_a_member_undoing_the_consensus() {
    let mut anomaly = pb::AnomalyConfig::default();
    anomaly.mut_opposed().min_distance_ppm = super::EVERY_ATTACK_OPPOSED_DISTANCE_PPM;
    let (mut ledger, admin, m) = registered(6, params(6, 6, Some(anomaly)));
    // Members 0-4 move along SKETCH, each a little its own way; member 5 sends their mean
    // reversed.
    let honest = |round: u64, i: usize| -> Vec<i32> {
        SKETCH
            .iter()
            .enumerate()
            .map(|(k, v)| v + ((k + i + round as usize) % 5) as i32 * 6 - 12)
            .collect()
    };
    for round in 1..=2u64 {
        ledger.submit(&admin, &open_round(round, &m[0])).unwrap();
        let sketches: Vec<Vec<i32>> = (0..5).map(|i| honest(round, i)).collect();
        let reversed: Vec<i32> = (0..SKETCH.len())
            .map(|k| -sketches.iter().map(|s| s[k]).sum::<i32>() / 5)
            .collect();
        for (i, key) in m.iter().enumerate() {
            let sketch = if i == 5 { &reversed } else { &sketches[i] };
            let commit = pb::CommitUpdate {
                round,
                update_sha256: hash(&format!("update{round}-{i}")),
                size_bytes: 4096,
                num_samples: 100,
                norm_micro: if i == 5 { 300_000 } else { 3_000_000 },
                sketch: packed(sketch),
                ..Default::default()
            };
            ledger
                .submit(key, &payload(|p| p.set_commit_update(commit)))
                .unwrap();
        }
        let verdict = evaluate_round(&mut ledger, &admin, round);
        assert_eq!(verdict.excluded.to_vec(), [m[5].clone()], "round {round}");
        let method = &verdict.methods[0];
        assert_eq!(super::method_name(method.method), "opposed");
        for s in member_scores(&verdict.scored(), method) {
            if s.member == m[5] {
                assert!(
                    s.flagged && s.score_micro > 1_990_000,
                    "round {round}: {s:?}"
                );
            } else {
                assert!(!s.flagged && s.score_micro < 50_000, "round {round}: {s:?}");
            }
        }
        close_round(&mut ledger, &admin, round);
    }
}

/// The oversized-update method on chain: eight members whose norms grow as the 0.3th power of
/// their sample counts (5 to 640), one of them (40 samples) sending five times its norm, and a
/// free rider with a zero norm. The line through `(ln samples, ln norm)` is the honest members'
/// (slope 0.3), the scaled member lies ln 5 above it and is excluded on that alone, the others
/// at 0. The scores are pinned to the micro-unit (computed outside Rust with the same
/// arithmetic), so a platform whose logarithm rounded otherwise would show here.
#[test]
fn the_oversized_method_excludes_a_norm_its_samples_do_not_explain() {
    let mut anomaly = pb::AnomalyConfig::default();
    anomaly.mut_oversized().min_residual_ppm = super::EVERY_ATTACK_OVERSIZED_RESIDUAL_PPM;
    let (mut ledger, admin, m) = registered(9, params(9, 9, Some(anomaly)));
    let samples = [5u64, 10, 20, 40, 80, 160, 320, 640, 100];
    let norms = [
        1_000_000u64,
        1_231_144,
        1_515_716,
        9_330_325,
        2_297_396,
        2_828_427,
        3_482_202,
        4_287_093,
        0,
    ];
    ledger.submit(&admin, &open_round(1, &m[0])).unwrap();
    for (i, key) in m.iter().enumerate() {
        let commit = pb::CommitUpdate {
            round: 1,
            update_sha256: hash(&format!("update{i}")),
            size_bytes: 4096,
            num_samples: samples[i],
            norm_micro: norms[i],
            sketch: packed(&SKETCH),
            ..Default::default()
        };
        ledger
            .submit(key, &payload(|p| p.set_commit_update(commit)))
            .unwrap();
    }
    let verdict = evaluate_round(&mut ledger, &admin, 1);
    assert_eq!(verdict.excluded.to_vec(), [m[3].clone()]);
    let method = &verdict.methods[0];
    assert_eq!(super::method_name(method.method), "oversized");
    for s in member_scores(&verdict.scored(), method) {
        let expected = if s.member == m[3] { 1_609_437 } else { 0 };
        assert_eq!(s.score_micro, expected, "{s:?}");
        assert_eq!(s.flagged, s.member == m[3]);
    }
}

/// Withdrawal on chain (`AnomalyConfig.withdraw`): round 1 accepts members 0-4 and is
/// aggregated by FedAvg; in round 2 the inconsistent-change method excludes members 3 and 4,
/// whose round-1 commitments the verdict then withdraws, and the kept previous change is round
/// 2's mean with their round-1 contributions taken back out. When round 1 was abandoned instead
/// (round 2's parent is not its aggregate), nothing is withdrawn.
#[test]
fn a_flag_of_a_method_comparing_with_the_previous_commitment_withdraws_it() {
    let first: [[i32; 4]; 5] = [
        [40, -20, 10, 5],
        [-30, 50, 0, 10],
        [10, 10, 60, -40],
        [50, 0, -30, 20],
        [-10, -60, 20, 30],
    ];
    let second: [[i32; 4]; 5] = [
        [36, -22, 12, 4],
        [-20, 40, 5, 10],
        [12, 8, 50, -30],
        [0, 20, 0, 0],
        [10, 60, -20, -30],
    ];
    for aggregated in [true, false] {
        let mut anomaly = pb::AnomalyConfig::default();
        anomaly.mut_inconsistent().min_cosine_ppm = super::INCONSISTENT_MIN_COSINE_PPM;
        anomaly.withdraw = true;
        let params = pb::ConsortiumParams {
            coordinate_samples: 4,
            ..params(5, 5, Some(anomaly))
        };
        let (mut ledger, admin, m) = registered(5, params);
        let commit = |ledger: &mut MemoryLedger, round: u64, i: usize, steps: [i32; 4]| {
            commit_coordinates(ledger, &m[i], round, i, 100 + 10 * i as u64, steps, 1_000);
        };
        let evaluate =
            |ledger: &mut MemoryLedger, round: u64| evaluate_round(ledger, &admin, round);
        ledger.submit(&admin, &open_round(1, &m[0])).unwrap();
        for (i, steps) in first.iter().enumerate() {
            commit(&mut ledger, 1, i, *steps);
        }
        let one = evaluate(&mut ledger, 1);
        assert!(one.excluded.is_empty() && one.withdrawn.is_empty());
        if aggregated {
            let all: Vec<&String> = m.iter().collect();
            ledger
                .submit(&m[0], &aggregate(sorted(&all), Vec::new()))
                .unwrap();
        }
        close_round(&mut ledger, &admin, 1);
        let parent = if aggregated { "global" } else { "base" };
        let mut open = open_round(2, &m[0]);
        open.mut_open_round().parent_model_sha256 = hash(parent);
        ledger.submit(&admin, &open).unwrap();
        for (i, steps) in second.iter().enumerate() {
            commit(&mut ledger, 2, i, *steps);
        }
        let kept_before = consensus(&ledger);
        let two = evaluate(&mut ledger, 2);
        let flagged = sorted(&[&m[3], &m[4]]);
        assert_eq!(two.excluded.to_vec(), flagged);
        let kept = consensus(&ledger);
        let accepted: Vec<pb::Commitment> = (0..3)
            .map(|i| ledger.commitment(2, &m[i]).unwrap())
            .collect();
        let accepted: Vec<&pb::Commitment> = accepted.iter().collect();
        let mean = super::features::weighted_mean_coordinates(&accepted).unwrap();
        assert_eq!(kept.previous_change_samples, 100 + 110 + 120);
        if aggregated {
            assert_eq!(two.withdrawn_members(), flagged);
            let mut withdrawn: Vec<pb::Commitment> = [3, 4]
                .map(|i| ledger.commitment(1, &m[i]).unwrap())
                .to_vec();
            withdrawn.sort_by(|a, b| a.member.cmp(&b.member));
            let withdrawn: Vec<&pb::Commitment> = withdrawn.iter().collect();
            let expected = super::features::withdrawn_change(&mean, &kept_before, &withdrawn);
            assert_ne!(expected, mean);
            assert_eq!(kept.previous_change.to_vec(), expected);
        } else {
            assert!(two.withdrawn.is_empty(), "round 1 was never aggregated");
            assert_eq!(kept.previous_change.to_vec(), mean);
        }
    }
}

/// Members' consensus stored once: a member that commits to every round stores none of it, one
/// that sat rounds out stores what it missed, restored from the archive the round it last
/// counts keeps; and its sum without its last sketch, restored from its commitment to that
/// round. Round by round, the ledger's records restored are the history replayed from its
/// commitments and verdicts; without the archive or the commitment, `EvaluateRound` is refused.
#[test]
fn members_store_only_the_consensus_they_missed() {
    let (mut ledger, admin, m) = registered(5, params(5, 4, None));
    // Who commits each round: member 4 sits round 2 out, member 0 round 4.
    let rounds: [&[usize]; 4] = [
        &[0, 1, 2, 3, 4],
        &[0, 1, 2, 3],
        &[0, 1, 2, 3, 4],
        &[1, 2, 3, 4],
    ];
    let mut replayed = pb::SketchHistory::default();
    for (r, committers) in rounds.iter().enumerate() {
        let round = r as u64 + 1;
        ledger.submit(&admin, &open_round(round, &m[1])).unwrap();
        for &i in committers.iter() {
            let sketch: Vec<i32> = SKETCH
                .iter()
                .enumerate()
                .map(|(k, v)| v + ((k * 7 + i * 3 + r * 5) % 11) as i32 - 5)
                .collect();
            let commit = pb::CommitUpdate {
                round,
                update_sha256: hash(&format!("update{round}-{i}")),
                size_bytes: 4096,
                num_samples: 100,
                norm_micro: 3_000_000,
                sketch: packed(&sketch),
                ..Default::default()
            };
            ledger
                .submit(&m[i], &payload(|p| p.set_commit_update(commit)))
                .unwrap();
        }
        if round == 3 {
            // Without round 1's archive, member 4's record cannot be restored.
            let address = crate::address::consensus_archive_address(1);
            let kept = ledger.state_mut().remove(&address).unwrap();
            let refused = ledger.submit(&admin, &evaluate(round)).unwrap_err();
            assert!(
                matches!(&refused, ApplyError::InvalidTransaction(e)
                    if e.contains("consensus archive of round 1")),
                "{refused:?}"
            );
            ledger.state_mut().insert(address, kept);
            // Without member 1's commitment to round 2, its sum lacks its last sketch.
            let address = crate::address::commitment_address(2, &m[1]);
            let kept = ledger.state_mut().remove(&address).unwrap();
            let refused = ledger.submit(&admin, &evaluate(round)).unwrap_err();
            assert!(
                matches!(&refused, ApplyError::InvalidTransaction(e)
                    if e.contains(&format!("{}'s commitment to round 2", m[1]))),
                "{refused:?}"
            );
            ledger.state_mut().insert(address, kept);
        }
        let verdict = evaluate_round(&mut ledger, &admin, round);
        let mut commitments: Vec<pb::Commitment> = committers
            .iter()
            .map(|&i| ledger.commitment(round, &m[i]).unwrap())
            .collect();
        commitments.sort_by(|a, b| a.member.cmp(&b.member));
        replayed = super::features::extend_after_verdict(
            &replayed,
            round,
            &commitments,
            &verdict.accepted,
            &[],
        );
        close_round(&mut ledger, &admin, round);

        let mut records: Vec<pb::SketchSum> =
            m.iter().filter_map(|k| ledger.sketch_sum(k)).collect();
        records.sort_by(|a, b| a.member.cmp(&b.member));
        let kept = archives(&ledger);
        let last = ledger.last_commitments(&records);
        let restored =
            super::stored::restored_sums(&records, &consensus(&ledger), &kept, &last).unwrap();
        // Each record's sum leaves out its last sketch: a member's first round stores none.
        for r in &records {
            assert!(r.sum.is_empty(), "round {round}");
            assert_eq!(r.earlier_sum.is_empty(), r.rounds == 1, "round {round}");
        }
        assert_eq!(restored, replayed.entries.to_vec(), "round {round}");
        assert_eq!(
            &consensus(&ledger),
            replayed.get_consensus(),
            "round {round}"
        );
        // The rounds some member left: 1 (member 4) and 3 (member 0); nothing else is kept.
        let expected: Vec<u64> = [1, 3].into_iter().filter(|&r| r < round).collect();
        assert_eq!(kept.keys().copied().collect::<Vec<_>>(), expected);
        // Only a member that sat a round out stores a consensus: member 4 from round 3 on.
        for (i, key) in m.iter().enumerate() {
            let record = ledger.sketch_sum(key).unwrap();
            assert!(record.consensus.is_empty());
            let missed = i == 4 && round >= 3;
            assert_eq!(
                !record.missed_consensus.is_empty(),
                missed,
                "member {i} round {round}"
            );
        }
    }
}

/// The ascent method with `leave_one_out` on chain: round 2's responses compare each member's
/// change of change with the others' move, and the sums record whom round 1 accepted. Three
/// members change three different coordinates in round 1; in round 2 the third turns to a
/// fourth coordinate and leans towards the other two's move, as a sign flipper that varies from
/// round to round would. Against the full move its own round-1 change, a third of it, pulls its
/// response to -0.304; against the others' move it is +0.124, above the limit.
#[test]
fn leave_one_out_move_responses_flag_a_member_leaning_with_the_others() {
    let run = |leave_one_out: bool| {
        let mut anomaly = pb::AnomalyConfig::default();
        *anomaly.mut_ascent() = pb::AscentConfig {
            max_response_ppm: super::ASCENT_MAX_RESPONSE_PPM,
            leave_one_out,
            ..Default::default()
        };
        let params = pb::ConsortiumParams {
            coordinate_samples: 4,
            ..params(3, 3, Some(anomaly))
        };
        let (mut ledger, admin, m) = registered(3, params);
        let rounds: [[[i32; 4]; 3]; 2] = [
            [[40, 0, 0, 0], [0, 40, 0, 0], [0, 0, 40, 0]],
            [[30, -5, -5, 10], [-5, 30, -5, 10], [5, 5, 0, 40]],
        ];
        let mut verdicts = Vec::new();
        for (r, steps) in rounds.iter().enumerate() {
            let round = r as u64 + 1;
            ledger.submit(&admin, &open_round(round, &m[0])).unwrap();
            for (i, s) in steps.iter().enumerate() {
                // Steps of a thousandth, so that the dot products keep their digits in the
                // sums' units of 10^-9.
                commit_coordinates(&mut ledger, &m[i], round, i, 100, *s, 1_000_000);
            }
            verdicts.push(evaluate_round(&mut ledger, &admin, round));
            close_round(&mut ledger, &admin, round);
        }
        let kept: Vec<bool> = m
            .iter()
            .map(|k| {
                let bytes = &ledger.state()[&crate::address::sketch_sum_address(k)];
                let list =
                    <pb::SketchSumList as protobuf::Message>::parse_from_bytes(bytes).unwrap();
                bcfl_protos::compact::Compact::expanded(list)
                    .unwrap()
                    .entries[0]
                    .last_kept
            })
            .collect();
        let two = &verdicts[1];
        let score = |i: usize| {
            member_scores(&two.scored(), &two.methods[0])
                .find(|s| s.member == m[i])
                .map(|s| (s.score_micro, s.flagged))
                .unwrap()
        };
        (
            m.clone(),
            kept,
            two.excluded.to_vec(),
            [score(0), score(1), score(2)],
        )
    };
    let (_, kept, excluded, scores) = run(false);
    assert_eq!(kept, [false; 3], "nothing recorded without leave-one-out");
    assert!(excluded.is_empty());
    // (5, 5, -40, 40) . (13.333, 13.333, 13.333, 0) / (57.009 * 23.094).
    assert_eq!(scores[2], (-303_822, false));
    let (m, kept, excluded, scores) = run(true);
    // Round 2 accepted the first two.
    assert_eq!(kept, [true, true, false]);
    assert_eq!(excluded, vec![m[2].clone()]);
    // (5, 5, -40, 40) . (20, 20, 0, 0) / (57.009 * 28.284).
    assert_eq!(scores[2], (124_035, true));
    // The honest members move against the others' move: (-10, -5, -5, 10) . (0, 20, 20, 0).
    assert!(scores[0].0 < 0 && scores[1].0 < 0 && !scores[0].1 && !scores[1].1);
}
