//! Small end-to-end runs of the experiment on tiny synthetic embeddings, on the round library:
//! real local training of the head, attackers, the processor's `EvaluateRound` verdict from
//! the members' commitments and reported links, exclusion and the aggregator's rule, a few
//! members and one or two rounds each (a few seconds in all).

use bcfl_processor::anomaly::simulate::Rng;
use bcfl_protos::bcfl as pb;

use super::bench::{run_bench, BenchConfig};
use super::detect::Detector;
use super::embed::Embeddings;
use super::experiment::{prepare, run_all, Defence, Prepared, Scenario};
use super::head::{LinearHead, LocalConfig};
use super::paper::{paper_table, PaperConfig};
use crate::demo::attack::CollusionNoise;
use crate::round::coordinator::CoordinatorConfig;
use crate::round::member::CHUNK_SIZE;
use crate::round::simulation::{simulate, SimulationConfig};
use crate::train::data::{Dataset, Example};
use crate::train::split::Partition;
use bcfl_fed::rule::Rule;
use bcfl_fed::update::{Encoding, Update};
use bcfl_net::blob::BlobStore;
use bcfl_net::manifest::BlobId;
use bcfl_processor::anomaly::attack::AttackKind;

/// `n` examples of 5 overlapping Gaussian classes in 16 dimensions, and their "texts".
fn tiny(n: usize) -> (Dataset, Embeddings) {
    let (classes, dim) = (5, 16);
    let mut rng = Rng::new(42);
    let centres: Vec<Vec<f64>> = (0..classes)
        .map(|_| (0..dim).map(|_| rng.normal()).collect())
        .collect();
    let mut values = Vec::with_capacity(n * dim);
    let mut examples = Vec::with_capacity(n);
    for i in 0..n {
        let label = i % classes;
        values.extend(
            centres[label]
                .iter()
                .map(|c| (c + 1.2 * rng.normal()) as f32),
        );
        examples.push(Example {
            text: format!("example {i}"),
            label,
        });
    }
    let label_names: Vec<String> = (0..classes).map(|c| format!("class{c}")).collect();
    let labels = examples.iter().map(|e| e.label).collect();
    (
        Dataset {
            examples,
            label_names: label_names.clone(),
        },
        Embeddings {
            dim,
            values,
            labels,
            label_names,
        },
    )
}

fn scenario(members: usize, attackers: usize, attack: AttackKind, rounds: usize) -> Scenario {
    Scenario {
        members,
        attackers,
        attacks: vec![attack],
        rounds,
        partition: Partition::Iid,
        local: LocalConfig {
            epochs: 2,
            batch_size: 8,
            learning_rate: 1.0,
        },
        sketch_length: 256,
        coordinate_samples: 0,
        sketch_after_commit: false,
        tuning: Default::default(),
        test_fraction: 0.25,
        seed: 3,
        collusion_noise: CollusionNoise::NONE,
        blind_projection: false,
    }
}

/// One round of `prepared`'s members (5 classes, 16 dimensions) from a zero head, as a
/// consortium with `defence`, blob stores under `dir`.
fn one_round(
    s: &Scenario,
    prepared: &Prepared,
    defence: Defence,
    dir: &std::path::Path,
) -> SimulationConfig {
    SimulationConfig {
        params: defence
            .params(s.attackers, s.members, s, &prepared.base_sha256())
            .unwrap(),
        schedule: CoordinatorConfig::new(1),
        initial: LinearHead::zeros(5, 16).to_update(),
        encoding: Encoding::F32,
        seed: s.seed,
        work_dir: dir.to_path_buf(),
        first_scores: false,
        links: prepared.links.clone(),
        collusion_noise: CollusionNoise::NONE,
        blind_projection: false,
    }
}

#[test]
fn defences_map_onto_consortium_parameters() {
    let s = scenario(10, 3, AttackKind::Scale, 1);
    let none = Defence::None.params(3, 10, &s, &"0".repeat(64)).unwrap();
    assert!(!none.has_anomaly());
    assert_eq!(Rule::from_params(&none).unwrap(), Rule::FedAvg);
    assert_eq!((none.min_participants, none.commit_quorum), (10, 10));
    assert_eq!(none.sketch_length, 256);
    let ensemble = Defence::Exclusion(Detector::Ensemble)
        .params(3, 10, &s, &"0".repeat(64))
        .unwrap();
    assert_eq!(
        ensemble.get_anomaly(),
        &Detector::Ensemble.config(&s.tuning)
    );
    assert_eq!(Rule::from_params(&ensemble).unwrap(), Rule::FedAvg);
    // Exclusion followed by the trimmed mean: the detector's configuration and the rule.
    let both = Defence::ExclusionTrimmed(Detector::Ensemble)
        .params(3, 10, &s, &"0".repeat(64))
        .unwrap();
    assert_eq!(both.get_anomaly(), ensemble.get_anomaly());
    assert_eq!(
        Rule::from_params(&both).unwrap(),
        Rule::TrimmedMean { trim: 0.1 }
    );
    assert_eq!(
        Defence::ExclusionTrimmed(Detector::Both).name(),
        "exclude_both_trimmed_mean"
    );
    // Each exclusion has its detection row; the robust rules have none.
    assert_eq!(
        Defence::ExclusionTrimmed(Detector::Both).detection_name(),
        Some("both_trimmed_mean".to_owned())
    );
    assert_eq!(
        Defence::Exclusion(Detector::Both).detection_name(),
        Some("both".to_owned())
    );
    assert_eq!(Defence::Krum.detection_name(), None);
    let krum = Defence::Krum.params(3, 10, &s, &"0".repeat(64)).unwrap();
    assert_eq!(Rule::from_params(&krum).unwrap(), Rule::Krum { f: 3 });
    assert!(!krum.has_anomaly());
    let trimmed = Defence::TrimmedMean
        .params(3, 10, &s, &"0".repeat(64))
        .unwrap();
    assert_eq!(
        Rule::from_params(&trimmed).unwrap(),
        Rule::TrimmedMean { trim: 0.3 }
    );
    let multi = Defence::MultiKrum
        .params(3, 10, &s, &"0".repeat(64))
        .unwrap();
    assert_eq!(
        Rule::from_params(&multi).unwrap(),
        Rule::MultiKrum { f: 3, k: 7 }
    );
    let median = Defence::Median.params(3, 10, &s, &"0".repeat(64)).unwrap();
    assert_eq!(Rule::from_params(&median).unwrap(), Rule::Median);
    // Krum's f stays within what the processor accepts for the quorum.
    let few = Defence::MultiKrum
        .params(3, 6, &s, &"0".repeat(64))
        .unwrap();
    assert_eq!(
        Rule::from_params(&few).unwrap(),
        Rule::MultiKrum { f: 1, k: 5 }
    );
}

/// The update blob `sha` in simulated member `name`'s store under `dir`.
fn stored_update(dir: &std::path::Path, name: &str, sha: &str) -> Update {
    let store = BlobStore::open(dir.join(name), CHUNK_SIZE).unwrap();
    let bytes = std::fs::read(store.path(&BlobId::parse(sha).unwrap())).unwrap();
    Update::from_bytes(&bytes).unwrap()
}

/// Colluding attackers on the round library: each waits for the honest members' commitments,
/// fetches their updates from their blob servers and commits the one update crafted from them;
/// what they commit is exactly [`collude`](crate::demo::attack::collude) of the honest blobs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn colluders_commit_the_update_crafted_from_the_honest_blobs() {
    let (dataset, embeddings) = tiny(300);
    for attack in [AttackKind::Alie, AttackKind::MinMax] {
        let s = scenario(6, 2, attack, 1);
        let prepared = prepare(&embeddings, &dataset, &s).unwrap();
        let attackers = prepared.attackers();
        let dir = tempfile::tempdir().unwrap();
        let config = one_round(&s, &prepared, Defence::None, dir.path());
        let outcome = simulate(config, prepared.members(&s).unwrap(), |_| {})
            .await
            .unwrap();
        let state = &outcome.state;
        let blob = |name: &str, sha: &str| stored_update(dir.path(), name, sha);
        let mut honest = Vec::new();
        let mut sent = Vec::new();
        for m in &outcome.members {
            let c = &state.commitments[&(1, m.key.clone())];
            if attackers.contains(&m.name) {
                sent.push(c.update_sha256.clone());
            } else {
                honest.push(blob(&m.name, &c.update_sha256));
            }
        }
        assert_eq!(honest.len(), 4);
        assert_eq!(sent.len(), 2);
        assert_eq!(sent[0], sent[1], "{attack}: colluders send one update");
        let parent = LinearHead::zeros(5, 16).to_update();
        let crafted = crate::demo::attack::collude(attack, &parent, &honest, 6, 2).unwrap();
        assert_eq!(
            blob(&attackers[0], &sent[0]),
            crafted,
            "{attack}: the committed update is the crafted one"
        );
        assert!(!honest.contains(&crafted));
    }
}

/// With collusion noise each colluder commits its own copy: the crafted update moved by noise
/// of the asked share of its change, so the two copies differ, and the duplicate method at
/// the every-attack distance no longer sees them as one update.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn noisy_colluders_commit_copies_of_their_own() {
    let (dataset, embeddings) = tiny(300);
    let mut s = scenario(6, 2, AttackKind::MinMax, 1);
    s.collusion_noise = "0.3".parse().unwrap();
    let prepared = prepare(&embeddings, &dataset, &s).unwrap();
    let attackers = prepared.attackers();
    let dir = tempfile::tempdir().unwrap();
    let mut config = one_round(&s, &prepared, Defence::None, dir.path());
    config.collusion_noise = s.collusion_noise;
    config.params.anomaly = Some(pb::AnomalyConfig {
        duplicate: Some(pb::DuplicateConfig {
            max_distance_ppm: bcfl_processor::anomaly::EVERY_ATTACK_DUPLICATE_DISTANCE_PPM,
            ..Default::default()
        })
        .into(),
        ..Default::default()
    })
    .into();
    let outcome = simulate(config, prepared.members(&s).unwrap(), |_| {})
        .await
        .unwrap();
    let state = &outcome.state;
    let blob = |name: &str, sha: &str| stored_update(dir.path(), name, sha);
    let (mut honest, mut sent) = (Vec::new(), Vec::new());
    for m in &outcome.members {
        let c = &state.commitments[&(1, m.key.clone())];
        let update = blob(&m.name, &c.update_sha256);
        if attackers.contains(&m.name) {
            sent.push(update);
        } else {
            honest.push(update);
        }
    }
    assert_eq!((honest.len(), sent.len()), (4, 2));
    assert_ne!(sent[0], sent[1], "each colluder moves its own copy");
    let parent = LinearHead::zeros(5, 16).to_update();
    let crafted = crate::demo::attack::collude(AttackKind::MinMax, &parent, &honest, 6, 2).unwrap();
    let change = crafted.minus(&parent).unwrap();
    for copy in &sent {
        let moved = copy.minus(&crafted).unwrap();
        let share = bcfl_fed::sketch::l2_norm(&moved) / bcfl_fed::sketch::l2_norm(&change);
        assert!((share - 0.3).abs() < 0.01, "moved by {share} of the change");
    }
    let verdict = &state.verdicts[&1];
    assert!(
        verdict.excluded.is_empty(),
        "copies 0.08 apart pass the duplicate method at 0.001: {:?}",
        verdict.excluded
    );
}

/// Six members of the tiny data set, one of them a hidden reversal, with a statistics span of
/// at most 32 dimensions (16 sketch rows, 16 positions) of the head's 85 values: the scenario,
/// its members and the attacker's name.
fn hidden_reversal() -> (Scenario, Prepared, String) {
    let (dataset, embeddings) = tiny(300);
    let mut s = scenario(6, 1, AttackKind::HiddenReversal, 1);
    s.sketch_length = 16;
    s.coordinate_samples = 16;
    let prepared = prepare(&embeddings, &dataset, &s).unwrap();
    let attacker = prepared.attackers()[0].clone();
    (s, prepared, attacker)
}

/// One round of `s` as a consortium without defence, every member honest unless `attack`;
/// `member`'s commitment, with the round's disputes (none expected).
async fn commitment_of(
    s: &Scenario,
    prepared: &Prepared,
    member: &str,
    attack: bool,
    blind_projection: bool,
) -> pb::Commitment {
    let dir = tempfile::tempdir().unwrap();
    let mut config = one_round(s, prepared, Defence::None, dir.path());
    config.blind_projection = blind_projection;
    let mut members = prepared.members(s).unwrap();
    if !attack {
        for m in &mut members {
            m.attack = None;
        }
    }
    let outcome = simulate(config, members, |_| {}).await.unwrap();
    assert!(outcome.state.rounds[&1].disputes.is_empty());
    let key = &outcome
        .members
        .iter()
        .find(|m| m.name == member)
        .unwrap()
        .key;
    outcome.state.commitments[&(1, key.clone())].clone()
}

/// A hidden reversal commits what its honest update would: the same sketch, sampled
/// coordinates and norm, which the aggregator's recomputation from its blob confirms (no
/// dispute), for another blob. Hiding from a projection it does not know
/// (`blind_projection`), its coordinates and norm are still the honest ones, its sketch not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hidden_reversal_commits_its_honest_statistics() {
    let (s, prepared, attacker) = hidden_reversal();
    let honest = commitment_of(&s, &prepared, &attacker, false, false).await;
    let hidden = commitment_of(&s, &prepared, &attacker, true, false).await;
    let blind = commitment_of(&s, &prepared, &attacker, true, true).await;
    let coordinates = |c: &pb::Commitment| (c.coordinate_step_nano, c.coordinate_steps.clone());
    assert_ne!(hidden.update_sha256, honest.update_sha256);
    assert_eq!(hidden.sketch, honest.sketch);
    assert_eq!(coordinates(&hidden), coordinates(&honest));
    assert!(hidden.norm_micro.abs_diff(honest.norm_micro) <= 1);
    assert_ne!(blind.sketch, honest.sketch);
    assert_eq!(coordinates(&blind), coordinates(&honest));
    assert!(blind.norm_micro.abs_diff(honest.norm_micro) <= 1);
}

/// With sketches after the commitments, the round is sealed and every member reveals the
/// sketch of its committed change, made with the seed the commitments drew: the aggregator's
/// recomputation from the blobs disputes none, nobody is left unrevealed, and the round is
/// aggregated. A hidden reversal, which hid from the projection of the round number, reveals
/// the sketch its blob has under the round's seed, not the one it prepared.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sealed_rounds_reveal_sketches_made_with_the_seed_the_commitments_drew() {
    let (s, prepared, attacker) = hidden_reversal();
    let dir = tempfile::tempdir().unwrap();
    let mut config = one_round(&s, &prepared, Defence::None, dir.path());
    config.params.sketch_after_commit = true;
    let outcome = simulate(config, prepared.members(&s).unwrap(), |_| {})
        .await
        .unwrap();
    let state = &outcome.state;
    let round = &state.rounds[&1];
    let commitments: Vec<pb::Commitment> = state.round_commitments(1).cloned().collect();
    assert_eq!(commitments.len(), 6);
    assert_eq!(
        round.sketch_seed,
        bcfl_processor::rules::rounds::sketch_seed(1, &commitments)
    );
    assert!(round.disputes.is_empty());
    let verdict = &state.verdicts[&1];
    assert!(verdict.unrevealed.is_empty());
    assert_eq!(verdict.accepted.len(), 6);
    assert!(state.aggregates.contains_key(&1));
    let parent = LinearHead::zeros(5, 16).to_update();
    for m in &outcome.members {
        let c = &state.commitments[&(1, m.key.clone())];
        let blob = stored_update(dir.path(), &m.name, &c.update_sha256);
        let change = blob.minus(&parent).unwrap();
        let sketch = bcfl_fed::sketch::sketch(&change, 16, round.sketch_seed);
        assert_eq!(c.sketch_values(), sketch, "{}", m.name);
        if m.name == attacker {
            let hid_from = bcfl_fed::sketch::sketch(&change, 16, 1);
            assert_ne!(hid_from, sketch);
        }
    }
}

/// With sampled coordinates, every member commits its change at the round's positions (the
/// aggregator recomputes them from each blob and disputes none), and the modified z-score on
/// the coordinate sign balance alone excludes exactly the min-max colluders, whose one update
/// lies below the centre at every coordinate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sampled_coordinates_are_committed_verified_and_expose_min_max_colluders() {
    let (dataset, embeddings) = tiny(300);
    let mut s = scenario(8, 2, AttackKind::MinMax, 1);
    s.coordinate_samples = 64;
    s.tuning.features = vec![pb::Feature::COORDINATE_SIGN_BALANCE];
    let prepared = prepare(&embeddings, &dataset, &s).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = one_round(
        &s,
        &prepared,
        Defence::Exclusion(Detector::ZScore),
        dir.path(),
    );
    let outcome = simulate(config, prepared.members(&s).unwrap(), |_| {})
        .await
        .unwrap();
    let state = &outcome.state;
    let parent = LinearHead::zeros(5, 16).to_update();
    for m in &outcome.members {
        let c = &state.commitments[&(1, m.key.clone())];
        let store = BlobStore::open(dir.path().join(&m.name), CHUNK_SIZE).unwrap();
        let bytes = std::fs::read(store.path(&BlobId::parse(&c.update_sha256).unwrap())).unwrap();
        let change = Update::from_bytes(&bytes).unwrap().minus(&parent).unwrap();
        let sampled = bcfl_fed::sketch::coordinates(
            &change,
            64,
            bcfl_fed::sketch::CoordinateScope::EVERY_TENSOR,
            bcfl_fed::sketch::COORDINATE_SEED,
        );
        assert_eq!(
            (c.coordinate_step_nano, c.coordinate_steps.clone()),
            (sampled.step_nano(), sampled.packed_steps()),
            "{}",
            m.name
        );
    }
    assert!(state.rounds[&1].disputes.is_empty());
    let mut excluded: Vec<String> = state.verdicts[&1]
        .excluded
        .iter()
        .map(|k| {
            let m = outcome.members.iter().find(|m| &m.key == k).unwrap();
            m.name.clone()
        })
        .collect();
    excluded.sort();
    assert_eq!(excluded, prepared.attackers());
}

/// One round, one sign flipper among five: the processor's verdict (ensemble detection on
/// chain) excludes exactly the flipper, and the global model on chain is the FedAvg of the
/// accepted members' committed updates.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sign_flipper_is_excluded_on_chain_and_the_aggregate_is_fedavg_of_the_rest() {
    let (dataset, embeddings) = tiny(300);
    let s = scenario(5, 1, AttackKind::SignFlip, 1);
    let prepared = prepare(&embeddings, &dataset, &s).unwrap();
    let attackers = prepared.attackers();
    assert_eq!(attackers.len(), 1);
    let dir = tempfile::tempdir().unwrap();
    let config = one_round(
        &s,
        &prepared,
        Defence::Exclusion(Detector::Ensemble),
        dir.path(),
    );
    let outcome = simulate(config, prepared.members(&s).unwrap(), |_| {})
        .await
        .unwrap();
    let state = &outcome.state;
    let name_of = |key: &str| outcome.name_of(key);
    let verdict = &state.verdicts[&1];
    let excluded: Vec<String> = verdict.excluded.iter().map(|k| name_of(k)).collect();
    assert_eq!(excluded, attackers);
    assert_eq!(verdict.accepted.len(), 4);
    // The links were reported on chain by their members (20 directed links among 5).
    assert_eq!(state.links.len(), 20);
    assert!(state.aggregates.contains_key(&1));
    // FedAvg of the accepted updates, recomputed here from the blobs their commitments name.
    let mut sum = vec![0.0f64; 5 * 16 + 5];
    let mut samples = 0u64;
    for key in &verdict.accepted {
        let commitment = &state.commitments[&(1, key.clone())];
        let store = BlobStore::open(dir.path().join(name_of(key)), CHUNK_SIZE).unwrap();
        let id = BlobId::parse(&commitment.update_sha256).unwrap();
        let bytes = std::fs::read(store.path(&id)).unwrap();
        let head = LinearHead::from_update(&Update::from_bytes(&bytes).unwrap(), 5, 16).unwrap();
        for (total, v) in sum.iter_mut().zip(head.flat()) {
            *total += commitment.num_samples as f64 * v;
        }
        samples += commitment.num_samples;
    }
    let global = LinearHead::from_update(&outcome.global, 5, 16)
        .unwrap()
        .flat();
    for (g, total) in global.iter().zip(&sum) {
        let mean = total / samples as f64;
        assert!((g - mean).abs() < 1e-5, "{g} against {mean}");
    }
    assert_eq!(
        pb::AggregationRule::FEDAVG,
        state
            .consortium
            .as_ref()
            .unwrap()
            .get_params()
            .aggregation_rule
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scaled_attacker_is_excluded_and_exclusion_beats_no_defence() {
    let (dataset, embeddings) = tiny(400);
    let s = scenario(6, 1, AttackKind::Scale, 2);
    let prepared = prepare(&embeddings, &dataset, &s).unwrap();
    let attackers = prepared.attackers();
    assert_eq!(attackers.len(), 1);
    let dir = tempfile::tempdir().unwrap();
    let defences = [
        Defence::None,
        Defence::Exclusion(Detector::Ensemble),
        Defence::Exclusion(Detector::ZScore),
        Defence::ExclusionTrimmed(Detector::Ensemble),
    ];
    let outcomes = run_all(&prepared, &s, &defences, dir.path()).await.unwrap();
    let (none, excluded) = (&outcomes[0], &outcomes[1]);
    assert!(none.excluded.is_empty());
    // Every round, the ensemble and the z-score exclude exactly the attacker, also when the
    // accepted updates are then combined with the trimmed mean.
    for outcome in &outcomes[1..] {
        assert_eq!(outcome.excluded, vec![attackers.clone(), attackers.clone()]);
        assert_eq!(outcome.counts.f1(), 1.0);
    }
    assert!(
        excluded.accuracy > none.accuracy,
        "exclusion {} vs no defence {}",
        excluded.accuracy,
        none.accuracy
    );
    // Without attackers the z-score excludes nobody, and the exclusion run is about as good
    // as the clean run.
    let clean = run_all(&prepared.clean(), &s, &defences, dir.path())
        .await
        .unwrap();
    assert!(
        clean[2].excluded.iter().all(Vec::is_empty),
        "{:?}",
        clean[2].excluded
    );
    assert!((clean[0].accuracy - excluded.accuracy).abs() < 0.05);
    // A consortium rerun alone gives the same outcome (keys and training are seeded).
    let alone = run_all(&prepared, &s, &defences[1..2], dir.path())
        .await
        .unwrap();
    assert_eq!(alone[0], outcomes[1]);
    // The honest members alone: the attacker, its shard and its links are gone, and since the
    // ensemble excluded the attacker in every round, its FedAvg scores exactly the same.
    let honest = prepared.honest_only();
    assert_eq!(honest.keys.len(), 5);
    assert!(honest.roles.iter().all(Option::is_none));
    assert!(!honest.keys.contains(&attackers[0]));
    assert!(honest
        .links
        .iter()
        .all(|l| l.from != attackers[0] && l.to != attackers[0]));
    assert!(!honest.links.is_empty());
    let absent = run_all(&honest, &s, &defences[..1], dir.path())
        .await
        .unwrap();
    assert_eq!(absent[0].accuracy, excluded.accuracy);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_report_has_every_defence_and_detector() {
    let (dataset, embeddings) = tiny(240);
    let config = BenchConfig {
        members: vec![5],
        fractions: vec![0.2],
        attacks: vec![AttackKind::SignFlip, AttackKind::StaleRider],
        seeds: vec![1],
        rounds: 2,
        local: scenario(5, 0, AttackKind::Scale, 2).local,
        partition: Partition::Iid,
        sketch_length: 16,
        coordinate_samples: 0,
        sketch_after_commit: false,
        tuning: Default::default(),
        test_fraction: 0.25,
        detectors: vec![Detector::ZScore, Detector::Ensemble],
        detection_only: false,
        exclusion_trimmed: true,
        collusion_noise: CollusionNoise::NONE,
        blind_projection: false,
    };
    let mut cells = 0;
    let report = run_bench(&dataset, &embeddings, &config, |_| cells += 1)
        .await
        .unwrap();
    assert_eq!(cells, 2);
    assert_eq!(report.cells.len(), 2);
    assert_eq!(
        report.detection.features,
        ["update_norm", "cumulative_sketch_cosine_distance"]
    );
    assert_eq!(report.detection.dbscan_eps, 1.5);
    let cell = &report.cells[0];
    assert_eq!(
        (cell.members, cell.attackers, cell.attack.as_str()),
        (5, 1, "sign-flip")
    );
    let defences: Vec<&str> = cell.accuracy.iter().map(|a| a.defence.as_str()).collect();
    assert_eq!(
        defences,
        [
            "clean",
            "attackers_absent",
            "no_defence",
            "exclude_zscore",
            "exclude_ensemble",
            "exclude_zscore_trimmed_mean",
            "exclude_ensemble_trimmed_mean",
            "krum",
            "multi_krum",
            "trimmed_mean",
            "median"
        ]
    );
    // Two rounds with one attacker: TP + FN = 2 per detector, and per detector followed by the
    // trimmed mean.
    let detectors: Vec<&str> = cell.detection.iter().map(|d| d.detector.as_str()).collect();
    assert_eq!(
        detectors,
        [
            "zscore",
            "ensemble",
            "zscore_trimmed_mean",
            "ensemble_trimmed_mean"
        ]
    );
    for d in &cell.detection {
        assert_eq!(d.tp + d.r#fn, 2, "{d:?}");
    }
    let md = report.markdown();
    assert!(
        md.contains("| 5 | 1 | sign-flip |") && md.contains("frozen"),
        "{md}"
    );
    // The figures: F1 of the ensemble per attack, the defences' worst accuracy.
    let figures = report.figures(None).unwrap();
    let names: Vec<&str> = figures.iter().map(|(n, _)| *n).collect();
    assert_eq!(names, ["f1", "accuracy"]);
    let (f1, accuracy) = (&figures[0].1, &figures[1].1);
    assert!(f1.contains("Detection F1 (ensemble)"), "{f1}");
    // The report reads back from its JSON and draws the same; another detector on request,
    // and a clear error for one it did not measure.
    let json = serde_json::to_string(&report).unwrap();
    let back: super::bench::BenchReport = serde_json::from_str(&json).unwrap();
    assert_eq!(back.cells.len(), report.cells.len());
    assert_eq!(back.figures(None).unwrap(), figures);
    let zscore = back.figures(Some("zscore")).unwrap();
    assert!(zscore[0].1.contains("Detection F1 (zscore)"));
    let missing = back.figures(Some("both")).unwrap_err().to_string();
    assert!(
        missing.contains("no \"both\"") && missing.contains("zscore, ensemble"),
        "{missing}"
    );
    assert!(f1.contains("sign-flip") && f1.contains("stale-rider"));
    assert!(f1.contains("attackers, % of members"));
    for defence in [
        "no_defence",
        "exclude_ensemble",
        "multi_krum",
        "median",
        "clean run",
    ] {
        assert!(accuracy.contains(defence), "{defence}");
    }
}

/// A consortium that samples half of its six members: each round the ledger draws three, only
/// they train and commit, the aggregate is theirs, the reports say who was drawn, and the draw
/// changes from round to round.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sampling_consortium_trains_only_the_members_the_ledger_draws() {
    let (dataset, embeddings) = tiny(300);
    let s = scenario(6, 0, AttackKind::SignFlip, 4);
    let prepared = prepare(&embeddings, &dataset, &s).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut params = Defence::None
        .params(0, 6, &s, &prepared.base_sha256())
        .unwrap();
    params.sample_ppm = 500_000;
    params.commit_quorum = 3;
    let config = SimulationConfig {
        params,
        schedule: CoordinatorConfig::new(4),
        initial: LinearHead::zeros(5, 16).to_update(),
        encoding: Encoding::F32,
        seed: s.seed,
        work_dir: dir.path().to_path_buf(),
        first_scores: false,
        links: prepared.links.clone(),
        collusion_noise: CollusionNoise::NONE,
        blind_projection: false,
    };
    let outcome = simulate(config, prepared.members(&s).unwrap(), |_| {})
        .await
        .unwrap();
    let state = &outcome.state;
    let mut draws = std::collections::BTreeSet::new();
    for n in 1..=4u64 {
        let round = &state.rounds[&n];
        let drawn = round.participants.to_vec();
        assert_eq!(drawn.len(), 3, "round {n}");
        assert_eq!(round.committers.to_vec(), drawn, "round {n}");
        assert_eq!(state.verdicts[&n].accepted.to_vec(), drawn);
        let report = &outcome.rounds[usize::try_from(n).unwrap() - 1];
        assert_eq!(report.members.iter().filter(|m| m.drawn).count(), 3);
        assert!(report.members.iter().all(|m| m.drawn == m.committed));
        draws.insert(drawn);
    }
    assert!(draws.len() > 1, "four rounds drew the same members");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_paper_table_removes_a_slow_link_and_reports_every_method() {
    let (dataset, embeddings) = tiny(240);
    let config = PaperConfig {
        members: 6,
        attackers: 1,
        attacks: vec![AttackKind::SlowLink],
        seeds: vec![3],
        rounds: 2,
        local: scenario(6, 0, AttackKind::Scale, 3).local,
        alpha: 0.5,
        sketch_length: 16,
        coordinate_samples: 0,
        tuning: Default::default(),
        test_fraction: 0.25,
        size_bytes: Some(1_000_000.0),
        delay_s: 0.0,
    };
    let mut heard = Vec::new();
    let table = paper_table(
        &dataset,
        &embeddings,
        &config,
        |seed, partition, done, total| heard.push((seed, partition, done, total)),
    )
    .await
    .unwrap();
    assert_eq!(
        heard,
        [
            (3, Partition::Iid, 1, 2),
            (3, Partition::Dirichlet { alpha: 0.5 }, 2, 2)
        ]
    );
    let methods: Vec<&str> = table.rows.iter().map(|r| r.method.as_str()).collect();
    assert_eq!(
        methods,
        ["none", "pagerank", "dbscan", "zscore", "ensemble", "any", "both"]
    );
    let row = |name: &str| table.rows.iter().find(|r| r.method == name).unwrap();
    // Nobody is removed without a method, so the slow member's links carry the distribution.
    assert_eq!(row("none").anomalous_nodes.mean, 0.0);
    for r in &table.rows {
        assert!(r.attackers_found.mean <= r.anomalous_nodes.mean, "{r:?}");
        assert!(r.asynchronous_s.mean > 0.0, "{r:?}");
        assert!((0.0..=1.0).contains(&r.iid_accuracy.mean), "{r:?}");
        assert!((0.0..=1.0).contains(&r.non_iid_accuracy.mean), "{r:?}");
    }
    // PageRank over the reported links finds the member whose links run 100 times slower, and
    // distributing without it is faster than through it.
    assert_eq!(row("pagerank").attackers_found.mean, 1.0);
    assert!(row("pagerank").asynchronous_s.mean < row("none").asynchronous_s.mean);
    assert_eq!(table.size_bytes, 1_000_000.0);
    assert!(table.markdown().contains("| pagerank |"));
}

/// A stale rider resends the previous round's change of the global model. Members sample the
/// same coordinates every round, and under FedAvg that change is the weighted mean of the
/// accepted members' changes, which the processor keeps: from round 2 the rider's coordinates
/// land on it (distance 0), and the z-score on the previous-change distance alone excludes
/// exactly the rider, where no sketch feature sees it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_rider_lands_on_the_previous_change_and_is_excluded() {
    let (dataset, embeddings) = tiny(300);
    let mut s = scenario(6, 1, AttackKind::StaleRider, 3);
    s.coordinate_samples = 64;
    s.tuning.features = vec![pb::Feature::PREVIOUS_CHANGE_DISTANCE];
    let prepared = prepare(&embeddings, &dataset, &s).unwrap();
    let attackers = prepared.attackers();
    let dir = tempfile::tempdir().unwrap();
    let outcome = super::experiment::run(
        &prepared,
        &s,
        Defence::Exclusion(Detector::ZScore),
        dir.path(),
    )
    .await
    .unwrap();
    // Round 1 has no previous change: everyone scores 1 and nobody is flagged (the rider's
    // zero update is a matter for the other features).
    assert_eq!(
        outcome.excluded,
        vec![vec![], attackers.clone(), attackers.clone()]
    );
}

/// Withdrawal on the round library (`AnomalyConfig.withdraw`): the ascent method excludes a
/// sign flipper from its second round on, the second round's verdict withdraws its first
/// update, and the second round's aggregate (fetched, computed and committed by the
/// aggregator member) is FedAvg of the accepted updates with the flipper's first contribution
/// taken back out, recomputed here from the blobs the chain names.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sign_flippers_first_update_is_withdrawn_and_taken_back_out_of_the_model() {
    let (dataset, embeddings) = tiny(300);
    let mut s = scenario(6, 1, AttackKind::SignFlip, 3);
    s.coordinate_samples = 64;
    // The voting methods stay out of it: the ascent method alone decides.
    s.tuning.zscore_threshold = 100.0;
    s.tuning.ascent_response = Some(0.05);
    s.tuning.withdraw = true;
    let prepared = prepare(&embeddings, &dataset, &s).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut config = one_round(
        &s,
        &prepared,
        Defence::Exclusion(Detector::ZScore),
        dir.path(),
    );
    config.schedule = CoordinatorConfig::new(3);
    assert!(config.params.get_anomaly().withdraw);
    let outcome = simulate(config, prepared.members(&s).unwrap(), |_| {})
        .await
        .unwrap();
    let state = &outcome.state;
    let flipper = outcome.key_of(&prepared.attackers()[0]).unwrap().to_owned();
    let verdict = |round: u64| &state.verdicts[&round];
    assert!(verdict(1).excluded.is_empty() && verdict(1).withdrawn.is_empty());
    assert_eq!(
        verdict(2).excluded.as_slice(),
        std::slice::from_ref(&flipper)
    );
    assert_eq!(
        verdict(2).withdrawn_members().as_slice(),
        std::slice::from_ref(&flipper)
    );
    // Its round-2 update was never accepted: nothing more to withdraw.
    assert_eq!(
        verdict(3).excluded.as_slice(),
        std::slice::from_ref(&flipper)
    );
    assert!(verdict(3).withdrawn.is_empty());
    // Any member's store holds the global models; each member's its own updates.
    let names: Vec<String> = outcome.members.iter().map(|m| m.name.clone()).collect();
    let model = |sha: &str| {
        let id = BlobId::parse(sha).unwrap();
        let name = names
            .iter()
            .find(|n| {
                BlobStore::open(dir.path().join(n), CHUNK_SIZE)
                    .unwrap()
                    .contains(&id)
            })
            .unwrap();
        stored_update(dir.path(), name, sha).flattened()
    };
    let name_of = |key: &str| outcome.name_of(key);
    let update = |round: u64, key: &str| {
        let c = &state.commitments[&(round, key.to_owned())];
        (
            c.num_samples as f64,
            stored_update(dir.path(), &name_of(key), &c.update_sha256).flattened(),
        )
    };
    let parent = model(&state.aggregates[&1].model_sha256);
    let mut expected = vec![0.0f64; parent.len()];
    let mut samples = 0.0;
    for key in &verdict(2).accepted {
        let (n, u) = update(2, key);
        for (e, x) in expected.iter_mut().zip(&u) {
            *e += n * x;
        }
        samples += n;
    }
    let before: f64 = verdict(1).accepted.iter().map(|k| update(1, k).0).sum();
    let (n, withdrawn) = update(1, &flipper);
    for ((e, p), x) in expected.iter_mut().zip(&parent).zip(&withdrawn) {
        *e = *e / samples + n / (before - n) * (p - x);
    }
    let global = model(&state.aggregates[&2].model_sha256);
    let moved: f64 = parent
        .iter()
        .zip(&withdrawn)
        .map(|(p, x)| (p - x).abs())
        .sum();
    assert!(moved > 1.0, "the withdrawal moves the model: {moved}");
    for (g, e) in global.iter().zip(&expected) {
        assert!((g - e).abs() < 1e-5, "{g} against {e}");
    }
}

/// Members registered with their shard's size as a cap (as `bcfl demo` and `bcfl fl simulate`
/// register them): the processor refuses the commitment of a member that claims more
/// (`inflated-samples`), and the round goes on without it once the commit deadline passes,
/// with the quorum the others make; every honest member's claim is its shard.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_above_the_registered_cap_is_refused_in_a_simulation() {
    let (dataset, embeddings) = tiny(300);
    let s = scenario(5, 1, AttackKind::InflatedSamples, 1);
    let prepared = prepare(&embeddings, &dataset, &s).unwrap();
    let attacker = prepared.attackers()[0].clone();
    let dir = tempfile::tempdir().unwrap();
    let mut config = one_round(&s, &prepared, Defence::None, dir.path());
    config.params.commit_quorum = 4;
    config.schedule.commit_timeout = std::time::Duration::from_secs(2);
    let mut members = prepared.members(&s).unwrap();
    for (m, shard) in members.iter_mut().zip(&prepared.shards) {
        m.max_samples = shard.len() as u64;
    }
    let outcome = simulate(config, members, |_| {}).await.unwrap();
    let state = &outcome.state;
    for m in &outcome.members {
        let shard = prepared.shards[prepared.keys.iter().position(|k| *k == m.name).unwrap()].len();
        assert_eq!(
            state.members[&m.key].max_samples, shard as u64,
            "{}",
            m.name
        );
        let commitment = state.commitments.get(&(1, m.key.clone()));
        if m.name == attacker {
            assert!(commitment.is_none(), "the inflated claim was recorded");
        } else {
            assert_eq!(commitment.unwrap().num_samples, shard as u64, "{}", m.name);
        }
    }
    assert_eq!(state.rounds[&1].committers.len(), 4);
    assert!(state.aggregates.contains_key(&1));
}
