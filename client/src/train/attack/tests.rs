//! A small end-to-end run of the experiment on tiny synthetic embeddings: real local training,
//! a scaled attacker, the processor's detection, exclusion and aggregation, in well under a
//! second.

use bcfl_processor::anomaly::simulate::Rng;

use super::bench::{run_bench, BenchConfig};
use super::detect::Detector;
use super::embed::Embeddings;
use super::experiment::{prepare, run_all, Defence, Scenario};
use super::head::LocalConfig;
use crate::train::data::{Dataset, Example};
use crate::train::split::Partition;
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

fn scenario(attackers: usize, attack: AttackKind) -> Scenario {
    Scenario {
        members: 6,
        attackers,
        attacks: vec![attack],
        rounds: 2,
        partition: Partition::Iid,
        local: LocalConfig {
            epochs: 2,
            batch_size: 8,
            learning_rate: 1.0,
        },
        sketch_length: 256,
        tuning: Default::default(),
        test_fraction: 0.25,
        seed: 3,
    }
}

#[test]
fn a_scaled_attacker_is_excluded_and_exclusion_beats_no_defence() {
    let (dataset, embeddings) = tiny(400);
    let s = scenario(1, AttackKind::Scale);
    let prepared = prepare(&embeddings, &dataset, &s).unwrap();
    let attackers = prepared.attackers();
    assert_eq!(attackers.len(), 1);
    let dir = tempfile::tempdir().unwrap();
    let defences = [
        Defence::None,
        Defence::Exclusion(Detector::Ensemble),
        Defence::Exclusion(Detector::ZScore),
    ];
    let outcomes = run_all(&prepared, &s, &defences, dir.path()).unwrap();
    let (none, excluded) = (&outcomes[0], &outcomes[1]);
    // Every round, the ensemble and the z-score exclude exactly the attacker.
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
    // Without attackers the z-score excludes nobody (PageRank's mean +/- 1 std rule and
    // DBSCAN over standardized features can agree on an honest member in so small a round),
    // and the exclusion run is about as good as the clean run.
    let clean = run_all(&prepared.clean(), &s, &defences, dir.path()).unwrap();
    assert!(
        clean[2].excluded.iter().all(Vec::is_empty),
        "{:?}",
        clean[2].excluded
    );
    assert!((clean[0].accuracy - excluded.accuracy).abs() < 0.05);
    // Running each defence alone gives the same as running them together.
    let alone = run_all(&prepared, &s, &defences[1..], dir.path()).unwrap();
    assert_eq!(alone[0], outcomes[1]);
}

#[test]
fn bench_report_has_every_defence_and_detector() {
    let (dataset, embeddings) = tiny(240);
    let config = BenchConfig {
        members: vec![6],
        fractions: vec![0.2],
        attacks: vec![AttackKind::SignFlip, AttackKind::StaleRider],
        seeds: vec![1],
        rounds: 2,
        local: scenario(0, AttackKind::Scale).local,
        partition: Partition::Iid,
        sketch_length: 16,
        tuning: Default::default(),
        test_fraction: 0.25,
        detectors: vec![Detector::ZScore, Detector::Ensemble],
    };
    let mut cells = 0;
    let report = run_bench(&dataset, &embeddings, &config, |_| cells += 1).unwrap();
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
        (6, 1, "sign-flip")
    );
    let defences: Vec<&str> = cell.accuracy.iter().map(|a| a.defence.as_str()).collect();
    assert_eq!(
        defences,
        [
            "clean",
            "no_defence",
            "exclude_zscore",
            "exclude_ensemble",
            "krum",
            "trimmed_mean"
        ]
    );
    // Two rounds with one attacker: TP + FN = 2 per detector.
    for d in &cell.detection {
        assert_eq!(d.tp + d.r#fn, 2, "{d:?}");
    }
    let md = report.markdown();
    assert!(
        md.contains("| 6 | 1 | sign-flip |") && md.contains("frozen"),
        "{md}"
    );
}
