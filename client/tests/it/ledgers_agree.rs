//! The in-memory ledger of the round library and a real ledger with `bcfl-tp` agree, on devnet
//! and on a real Sawtooth 1.2.6 validator (`on_sawtooth`, skipped where its sources are absent):
//! the same sequence of rounds (three of them: synchronous with an attacker excluded, a refused
//! aggregator the previous verdict excluded, a buffered-asynchronous round with a stale update)
//! gives the same accept/refuse answers, with the same reasons, and the same state, byte for
//! byte.

use bcfl_client::round::ledger::{Ledger, LedgerError};
use bcfl_client::round::memory::MemoryLedger;
use bcfl_client::round::rest::RestLedger;
use bcfl_ledger::keys::{PrivateKey, Signer};
use bcfl_ledger::rest::RestClient;
use bcfl_processor::NAMESPACE;
use bcfl_protos::bcfl as pb;
use bcfl_testkit::{AnyLedger, LedgerKind};

fn signer(seed: u8) -> Signer {
    Signer::new(PrivateKey::from_hex(&format!("{seed:02x}").repeat(32)).unwrap())
}

fn sha(c: char) -> String {
    c.to_string().repeat(64)
}

struct Script {
    admin: Signer,
    members: Vec<Signer>,
}

impl Script {
    fn key(&self, i: usize) -> String {
        self.members[i].public_key().as_hex().to_owned()
    }
}

fn payload(build: impl FnOnce(&mut pb::BcflPayload)) -> pb::BcflPayload {
    let mut p = pb::BcflPayload::new();
    build(&mut p);
    p
}

fn commit(round: u64, base_round: u64, norm: u64, sketch: [i32; 4]) -> pb::BcflPayload {
    payload(|p| {
        p.set_commit_update(pb::CommitUpdate {
            round,
            update_sha256: sha(char::from(b'a' + round as u8)),
            size_bytes: 100,
            num_samples: 10,
            loss_micro: 500_000,
            norm_micro: norm,
            sketch: bcfl_processor::testing::packed(&sketch),
            base_round,
            ..Default::default()
        })
    })
}

/// One step's outcome: `Ok`, or the rejection's reason.
fn outcome(result: Result<(), LedgerError>) -> Result<(), String> {
    match result {
        Ok(()) => Ok(()),
        Err(LedgerError::Rejected { reason, .. }) => Err(reason),
        Err(e) => panic!("not a rejection: {e}"),
    }
}

/// Runs the script on `ledger`, returning every step's outcome.
async fn play(ledger: &impl Ledger, s: &Script) -> Vec<Result<(), String>> {
    let mut out = Vec::new();
    let mut step = |r: Result<(), LedgerError>| out.push(outcome(r));
    let admin = &s.admin;
    let mut params = pb::ConsortiumParams {
        min_participants: 3,
        commit_quorum: 3,
        model_id: "test".into(),
        aggregation_rule: pb::AggregationRule::FEDAVG,
        base_model_sha256: sha('b'),
        sketch_length: 4,
        ..Default::default()
    };
    params.initial_model_sha256 = sha('1');
    params.set_anomaly(pb::AnomalyConfig {
        zscore: Some(pb::ZScoreConfig {
            threshold_ppm: 3_500_000,
            features: vec![pb::Feature::UPDATE_NORM],
            ..Default::default()
        })
        .into(),
        ..Default::default()
    });
    step(
        ledger
            .submit(
                admin,
                payload(|p| {
                    p.set_init_consortium(pb::InitConsortium {
                        admin_keys: vec![admin.public_key().as_hex().to_owned()].into(),
                        params: Some(params).into(),
                        ..Default::default()
                    })
                }),
                "init",
            )
            .await,
    );
    for i in 0..4 {
        let key = s.key(i);
        step(
            ledger
                .submit(
                    admin,
                    payload(|p| {
                        p.set_register_member(pb::RegisterMember {
                            public_key: key,
                            name: format!("m{i}"),
                            endpoint: format!("http://127.0.0.1:{}", 7000 + i),
                            ..Default::default()
                        })
                    }),
                    "register",
                )
                .await,
        );
    }
    let open = |round: u64, aggregator: String, sync: pb::RoundSync| {
        payload(move |p| {
            let buffered = sync == pb::RoundSync::BUFFERED_ASYNC;
            p.set_open_round(pb::OpenRound {
                round,
                parent_model_sha256: String::new(),
                aggregator,
                mode: pb::RoundMode::SERVERLESS,
                sync,
                buffer_size: if buffered { 2 } else { 0 },
                max_staleness: if buffered { 1 } else { 0 },
                ..Default::default()
            })
        })
    };
    let with_parent = |mut p: pb::BcflPayload, parent: String| {
        p.mut_open_round().parent_model_sha256 = parent;
        p
    };

    // Round 1: four commitments, m3's norm is a gross outlier.
    step(
        ledger
            .submit(
                admin,
                with_parent(open(1, s.key(0), pb::RoundSync::SYNCHRONOUS), sha('1')),
                "open 1",
            )
            .await,
    );
    for (i, norm) in [1_000_000, 1_100_000, 900_000, 100_000_000]
        .into_iter()
        .enumerate()
    {
        step(
            ledger
                .submit(&s.members[i], commit(1, 0, norm, [1, 2, 3, 4]), "commit 1")
                .await,
        );
    }
    step(
        ledger
            .submit(
                &s.members[0],
                payload(|p| {
                    p.set_report_bandwidth(pb::ReportBandwidth {
                        epoch: 1,
                        measurements: (1..4)
                            .map(|j| pb::LinkMeasurement {
                                to: s.key(j),
                                bytes_per_sec: 1_000_000 * j as u64,
                                rtt_us: 100,
                                probe_bytes: 65_536,
                                ..Default::default()
                            })
                            .collect::<Vec<_>>()
                            .into(),
                        ..Default::default()
                    })
                }),
                "bandwidth",
            )
            .await,
    );
    step(
        ledger
            .submit(
                &s.members[0],
                payload(|p| {
                    p.set_evaluate_round(pb::EvaluateRound {
                        round: 1,
                        ..Default::default()
                    })
                }),
                "evaluate 1",
            )
            .await,
    );
    let verdict = ledger.state().await.unwrap().verdicts[&1].clone();
    assert_eq!(
        verdict.excluded.to_vec(),
        vec![s.key(3)],
        "the outlier is excluded"
    );
    let aggregate = |round: u64, v: &pb::Verdict, model: char| {
        payload(|p| {
            p.set_commit_aggregate(pb::CommitAggregate {
                round,
                model_sha256: sha(model),
                contributors: v.accepted.clone(),
                rule: pb::AggregationRule::FEDAVG,
                excluded: v.excluded.clone(),
                size_bytes: 100,
                ..Default::default()
            })
        })
    };
    step(
        ledger
            .submit(&s.members[0], aggregate(1, &verdict, 'e'), "aggregate 1")
            .await,
    );
    let close = |round: u64| {
        payload(|p| {
            p.set_close_round(pb::CloseRound {
                round,
                ..Default::default()
            })
        })
    };
    step(ledger.submit(&s.members[0], close(1), "close 1").await);

    // Round 2: the excluded member may not aggregate; then a buffered round with K = 2.
    step(
        ledger
            .submit(
                admin,
                with_parent(open(2, s.key(3), pb::RoundSync::BUFFERED_ASYNC), sha('e')),
                "open 2 (excluded aggregator)",
            )
            .await,
    );
    step(
        ledger
            .submit(
                admin,
                with_parent(open(2, s.key(1), pb::RoundSync::BUFFERED_ASYNC), sha('e')),
                "open 2",
            )
            .await,
    );
    step(
        ledger
            .submit(
                &s.members[0],
                commit(2, 0, 1_000_000, [1, 2, 3, 5]),
                "commit 2",
            )
            .await,
    );
    step(
        ledger
            .submit(
                &s.members[1],
                commit(2, 2, 1_050_000, [1, 2, 4, 4]),
                "commit 2",
            )
            .await,
    );
    // Evaluated at K = 2 although the consortium's quorum is 3.
    step(
        ledger
            .submit(
                &s.members[1],
                payload(|p| {
                    p.set_evaluate_round(pb::EvaluateRound {
                        round: 2,
                        ..Default::default()
                    })
                }),
                "evaluate 2",
            )
            .await,
    );
    let verdict = ledger.state().await.unwrap().verdicts[&2].clone();
    step(
        ledger
            .submit(&s.members[1], aggregate(2, &verdict, 'f'), "aggregate 2")
            .await,
    );
    step(ledger.submit(&s.members[1], close(2), "close 2").await);

    // Round 3 (buffered): m2 commits an update trained from round 2's parent (staleness 1),
    // m3 one from round 1's (staleness 2: refused), a future base is refused.
    step(
        ledger
            .submit(
                admin,
                with_parent(open(3, s.key(2), pb::RoundSync::BUFFERED_ASYNC), sha('f')),
                "open 3",
            )
            .await,
    );
    step(
        ledger
            .submit(
                &s.members[2],
                commit(3, 2, 1_000_000, [2, 2, 3, 4]),
                "stale commit",
            )
            .await,
    );
    step(
        ledger
            .submit(
                &s.members[3],
                commit(3, 1, 1_000_000, [2, 2, 3, 4]),
                "too stale",
            )
            .await,
    );
    step(
        ledger
            .submit(
                &s.members[0],
                commit(3, 4, 1_000_000, [2, 2, 3, 4]),
                "future base",
            )
            .await,
    );
    out
}

bcfl_testkit::on_each_ledger!(
    the_in_memory_ledger_and_a_real_ledger_give_the_same_answers_and_state
);

fn the_in_memory_ledger_and_a_real_ledger_give_the_same_answers_and_state(kind: LedgerKind) {
    // The ledger's processes are started here, on the test's own thread: they die with the
    // thread that started them (bcfl-testkit's `Spawned`).
    let dir = tempfile::tempdir().unwrap();
    let Some(ledger) = AnyLedger::start(kind, dir.path()) else {
        return;
    };
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(compare(ledger.url()));
}

async fn compare(url: &str) {
    let script = Script {
        admin: signer(1),
        members: (2..6).map(signer).collect(),
    };
    let memory = MemoryLedger::new();
    let in_memory = play(&memory, &script).await;

    let rest = RestLedger::new(&[url.to_owned()], std::time::Duration::from_secs(30)).unwrap();
    let on_ledger = play(&rest, &script).await;

    assert_eq!(in_memory, on_ledger);
    let refused: Vec<&String> = in_memory.iter().filter_map(|r| r.as_ref().err()).collect();
    assert_eq!(refused.len(), 3, "{in_memory:?}");
    assert!(refused[0].contains("excluded"), "{}", refused[0]);
    assert!(
        refused[1].contains("stale") || refused[1].contains("staleness"),
        "{}",
        refused[1]
    );

    let snapshot = RestClient::new(url)
        .unwrap()
        .state_list(NAMESPACE, None)
        .await
        .unwrap();
    let on_chain: std::collections::BTreeMap<String, Vec<u8>> = snapshot
        .entries
        .into_iter()
        .map(|e| (e.address, e.data))
        .collect();
    assert_eq!(memory.raw_state(), on_chain);
    let state = memory.state().await.unwrap();
    assert_eq!(state.commitments[&(3, script.key(2))].staleness, 1);
}
