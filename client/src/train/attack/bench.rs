//! The attack benchmark: members x attacker fractions x attacks x seeds, every defence.
//!
//! For each cell (members, attackers, attack) and seed, [`experiment::prepare`](super::experiment::prepare)
//! draws the split, the shards, the attackers and the links, and
//! [`experiment::run_all`](super::experiment::run_all) runs one consortium per defence on the
//! round library: no defence, exclusion by each [`Detector`]'s on-chain verdict, Krum,
//! Multi-Krum, the trimmed mean and the median. The references: the clean run (the same
//! members, nobody attacking, FedAvg), the attackers-absent run (FedAvg of the honest members
//! alone, without the attackers' shards: what a perfect exclusion reaches, and so the most any
//! defence can recover), and the centralized head. Detection counts are summed over rounds and
//! seeds before precision, recall and F1 are taken (as the processor's synthetic benchmark
//! does); accuracies are averaged over seeds.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use bcfl_processor::anomaly::simulate::Counts;

use super::super::data::Dataset;
use super::super::split::Partition;
use super::super::Result;
use super::detect::Detector;
use super::embed::Embeddings;
use super::experiment::{centralized, prepare, run, run_all, Defence, Scenario};
use super::head::LocalConfig;
use crate::demo::attack::CollusionNoise;
use crate::figures::{curves_svg, Curve, FigureError, YAxis};
use bcfl_processor::anomaly::attack::AttackKind;

/// The grid and the training settings.
#[derive(Clone, Debug, PartialEq)]
pub struct BenchConfig {
    /// Member counts.
    pub members: Vec<usize>,
    /// Attacker fractions (attackers = round(members x fraction)).
    pub fractions: Vec<f64>,
    /// Attacks, one per cell.
    pub attacks: Vec<AttackKind>,
    /// Seeds.
    pub seeds: Vec<u64>,
    /// Federated rounds.
    pub rounds: usize,
    /// Local training.
    pub local: LocalConfig,
    /// How data is spread over members.
    pub partition: Partition,
    /// Sketch length of the commitments.
    pub sketch_length: usize,
    /// Coordinates each commitment samples (0: none).
    pub coordinate_samples: usize,
    /// Sketches come after the commitments (`sketch_after_commit`).
    pub sketch_after_commit: bool,
    /// The detectors' features, DBSCAN radius and neighbourhood size, z-score threshold.
    pub tuning: super::detect::Tuning,
    /// Held-out fraction.
    pub test_fraction: f64,
    /// Detectors whose exclusion is compared.
    pub detectors: Vec<Detector>,
    /// Run only the detectors' consortia (no references, no undefended run, no robust rule):
    /// for tuning detection, four times faster with one detector.
    pub detection_only: bool,
    /// Also run each detector's exclusion followed by the trimmed mean
    /// ([`Defence::ExclusionTrimmed`]) beside its exclusion followed by FedAvg.
    pub exclusion_trimmed: bool,
    /// How far each colluding attacker moves its copy of the crafted update.
    pub collusion_noise: CollusionNoise,
    /// Adaptive attackers hide from another projection than the round's: what a projection
    /// drawn after the commitments would make of them.
    pub blind_projection: bool,
}

/// A mean and a population standard deviation over seeds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Stat {
    /// Mean.
    pub mean: f64,
    /// Standard deviation.
    pub std: f64,
}

impl Stat {
    /// Of the values (0, 0 when empty).
    pub fn of(values: &[f64]) -> Self {
        if values.is_empty() {
            return Self::default();
        }
        let n = values.len() as f64;
        let mean = values.iter().sum::<f64>() / n;
        let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
        Self {
            mean,
            std: var.sqrt(),
        }
    }
}

/// Detection quality of one detector in one cell.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DetectionRow {
    /// Detector name (`both`), with `_trimmed_mean` for its exclusion followed by the trimmed
    /// mean ([`Defence::ExclusionTrimmed`]).
    pub detector: String,
    /// Attackers excluded (over rounds and seeds).
    pub tp: usize,
    /// Honest members excluded.
    pub fp: usize,
    /// Attackers kept.
    pub r#fn: usize,
    /// TP / (TP + FP).
    pub precision: f64,
    /// TP / (TP + FN).
    pub recall: f64,
    /// Their harmonic mean.
    pub f1: f64,
    /// Of `tp` and `fp`, the member-rounds flagged one round late: accepted by their round's
    /// verdict and withdrawn by the next one's (`AnomalyConfig.withdraw`; 0 in files written
    /// before it).
    #[serde(default)]
    pub withdrawn: usize,
}

impl DetectionRow {
    /// `detector`'s row from its counts (precision, recall and F1 as [`Counts`] takes them)
    /// and the member-rounds among them that a later verdict withdrew.
    pub(crate) fn new(detector: String, c: &Counts, withdrawn: usize) -> Self {
        Self {
            detector,
            tp: c.true_positives,
            fp: c.false_positives,
            r#fn: c.false_negatives,
            precision: c.precision(),
            recall: c.recall(),
            f1: c.f1(),
            withdrawn,
        }
    }
}

/// Final test accuracy of one defence in one cell.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AccuracyRow {
    /// Defence name (`clean` for the run without attackers, [`ATTACKERS_ABSENT`] for the
    /// honest members alone).
    pub defence: String,
    /// Over seeds.
    pub accuracy: Stat,
}

/// One cell of the grid.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Cell {
    /// Members.
    pub members: usize,
    /// Attackers.
    pub attackers: usize,
    /// Attack name.
    pub attack: String,
    /// Per detector.
    pub detection: Vec<DetectionRow>,
    /// Per defence, after the clean run and the attackers-absent run.
    pub accuracy: Vec<AccuracyRow>,
}

/// A detector the report did not measure ([`BenchReport::detector`]).
#[derive(Debug, thiserror::Error)]
#[error("the report has no detector {name:?} (it measured: {available})")]
pub struct UnknownDetector {
    /// The name asked for.
    pub name: String,
    /// The detectors it has, comma-separated.
    pub available: String,
}

/// The benchmark's result.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BenchReport {
    /// What was trained.
    pub setup: String,
    /// Seeds used.
    pub seeds: Vec<u64>,
    /// Rounds, local epochs, batch size, learning rate.
    pub rounds: usize,
    /// Local epochs per round.
    pub local_epochs: usize,
    /// Learning rate.
    pub learning_rate: f64,
    /// Partition scheme.
    pub partition: Partition,
    /// The detectors' features, DBSCAN radius and neighbourhood size, z-score threshold.
    pub detection: DetectionSettings,
    /// How far each colluding attacker moved its copy of the crafted update (absent: 0, the
    /// one copy; reports written before the option have none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collusion_noise: Option<f64>,
    /// Whether adaptive attackers hid from another projection than the round's (absent:
    /// they knew it, as they do on the ledger).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub blind_projection: bool,
    /// Whether sketches came after the commitments (absent: with them).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub sketch_after_commit: bool,
    /// The head trained centrally on the whole training split, over seeds.
    pub centralized_accuracy: Stat,
    /// The cells.
    pub cells: Vec<Cell>,
    /// Wall-clock seconds.
    pub seconds: f64,
}

/// [`super::detect::Tuning`] as the report writes it: feature names instead of enum values.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DetectionSettings {
    /// Features of DBSCAN and the z-score.
    pub features: Vec<String>,
    /// DBSCAN radius.
    pub dbscan_eps: f64,
    /// DBSCAN neighbourhood size.
    pub dbscan_min_points: u32,
    /// DBSCAN standardizes robustly.
    pub dbscan_robust: bool,
    /// The z-score threshold.
    pub zscore_threshold: f64,
    /// The duplicate method's distance (absent: no duplicate method, as in reports written
    /// before it existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duplicate_distance: Option<f64>,
    /// The unchanged-update method's norm ratio (absent: no such method, as in reports
    /// written before it existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unchanged_ratio: Option<f64>,
    /// The resent-change method's distance (absent: no such method, as in reports written
    /// before it existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resent_distance: Option<f64>,
    /// The inconsistent-change method's cosine (absent: no such method, as in reports written
    /// before it existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inconsistent_cosine: Option<f64>,
    /// The opposed-change method's cumulative sketch distance (absent: no such method, as in
    /// reports written before it existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub opposed_distance: Option<f64>,
    /// The ascent method's largest move response (absent: no such method, as in reports
    /// written before it existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ascent_response: Option<f64>,
    /// The ascent method compares each member with the others' move (absent: with the full
    /// move, as in reports written before the setting existed).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub ascent_leave_one_out: bool,
    /// The oversized-update method's smallest residual, natural-log units (absent: no such
    /// method, as in reports written before it existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oversized_residual: Option<f64>,
    /// The mean-copy method's smallest cosine with the others' summed sketches (absent: no
    /// such method, as in reports written before it existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mean_copy_cosine: Option<f64>,
    /// The mislabelled-change method's smallest reference margin (absent: no such method, as
    /// in reports written before it existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mislabelled_margin: Option<f64>,
    /// What the mislabelled-change method's reference rows were taken from, beside
    /// `mislabelled_margin` (absent: the class means, as in reports written before the
    /// setting existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mislabelled_reference: Option<super::head::ReferenceDirections>,
    /// Copies counted once towards DBSCAN's and the z-score's scales (absent: not, as in
    /// reports written before the setting existed).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub count_copies_once: bool,
    /// DBSCAN clustered only the members no excluding method flagged (absent: not, as in
    /// reports written before the setting existed).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dbscan_without_excluded: bool,
    /// The inconsistent-change and ascent methods' flags withdraw the member's previous
    /// commitment (absent: not, as in reports written before the setting existed).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub withdraw: bool,
}

impl From<&super::detect::Tuning> for DetectionSettings {
    fn from(t: &super::detect::Tuning) -> Self {
        Self {
            features: t
                .features
                .iter()
                .map(|f| bcfl_processor::anomaly::feature_name(*f).to_owned())
                .collect(),
            dbscan_eps: t.dbscan_eps,
            dbscan_min_points: t.dbscan_min_points,
            dbscan_robust: t.dbscan_robust,
            zscore_threshold: t.zscore_threshold,
            duplicate_distance: t.duplicate_distance,
            unchanged_ratio: t.unchanged_ratio,
            resent_distance: t.resent_distance,
            inconsistent_cosine: t.inconsistent_cosine,
            opposed_distance: t.opposed_distance,
            ascent_response: t.ascent_response,
            ascent_leave_one_out: t.ascent_leave_one_out,
            oversized_residual: t.oversized_residual,
            mean_copy_cosine: t.mean_copy_cosine,
            mislabelled_margin: t.mislabelled_margin,
            mislabelled_reference: t.mislabelled_margin.map(|_| t.mislabelled_reference),
            count_copies_once: t.count_copies_once,
            dbscan_without_excluded: t.dbscan_without_excluded,
            withdraw: t.withdraw,
        }
    }
}

/// What the experiment trains, said in every report.
pub const SETUP: &str = "federated training of the 384x5 classification head over frozen \
all-MiniLM-L6-v2 mean-pooled embeddings of Medical Abstracts (not LoRA fine-tuning)";

/// The accuracy row of the attackers-absent reference (see the module docs).
pub const ATTACKERS_ABSENT: &str = "attackers_absent";

/// The defences compared, in report order: only the detectors' exclusions when
/// `detection_only`, else no defence, the exclusions (each followed by the trimmed mean too
/// when `exclusion_trimmed`) and the robust rules.
pub fn defences(
    detectors: &[Detector],
    detection_only: bool,
    exclusion_trimmed: bool,
) -> Vec<Defence> {
    let exclusions = detectors.iter().map(|&x| Defence::Exclusion(x));
    if detection_only {
        return exclusions.collect();
    }
    let mut d = vec![Defence::None];
    d.extend(exclusions);
    if exclusion_trimmed {
        d.extend(detectors.iter().map(|&x| Defence::ExclusionTrimmed(x)));
    }
    d.extend([
        Defence::Krum,
        Defence::MultiKrum,
        Defence::TrimmedMean,
        Defence::Median,
    ]);
    d
}

/// Runs the grid; `progress` hears about each finished cell.
pub async fn run_bench(
    dataset: &Dataset,
    embeddings: &Embeddings,
    config: &BenchConfig,
    mut progress: impl FnMut(&Cell),
) -> Result<BenchReport> {
    let started = std::time::Instant::now();
    let work = tempfile::tempdir().map_err(|e| super::super::Error::io(std::env::temp_dir(), e))?;
    let scenario = |members: usize, attackers: usize, attack: AttackKind, seed: u64| Scenario {
        members,
        attackers,
        attacks: vec![attack],
        rounds: config.rounds,
        partition: config.partition,
        local: config.local,
        sketch_length: config.sketch_length,
        coordinate_samples: config.coordinate_samples,
        sketch_after_commit: config.sketch_after_commit,
        tuning: config.tuning.clone(),
        test_fraction: config.test_fraction,
        seed,
        collusion_noise: config.collusion_noise,
        blind_projection: config.blind_projection,
    };
    let mut centralized_accuracy = Vec::new();
    let mut clean: Vec<(usize, Vec<f64>)> = Vec::new();
    for &members in &config.members {
        let mut per_seed = Vec::new();
        for &seed in config.seeds.iter().filter(|_| !config.detection_only) {
            let s = scenario(members, 0, AttackKind::Scale, seed);
            let prepared = prepare(embeddings, dataset, &s)?;
            per_seed.push(
                run(&prepared, &s, Defence::None, &work.path().join("clean"))
                    .await?
                    .accuracy,
            );
            if centralized_accuracy.len() < config.seeds.len() {
                centralized_accuracy.push(centralized(&prepared, &s)?);
            }
        }
        clean.push((members, per_seed));
    }
    let defences = defences(
        &config.detectors,
        config.detection_only,
        config.exclusion_trimmed,
    );
    let mut cells = Vec::new();
    for (members, clean_accuracy) in &clean {
        let members = *members;
        for &fraction in &config.fractions {
            let attackers = ((members as f64) * fraction).round() as usize;
            // Who attacks depends on the seed and the count, not on the attack, so one run per
            // seed serves every attack of the share; without attackers it is the clean run.
            let absent = match config.attacks.first() {
                Some(&attack) if attackers > 0 && !config.detection_only => {
                    let mut accuracy = Vec::new();
                    for &seed in &config.seeds {
                        let s = scenario(members, attackers, attack, seed);
                        let honest = prepare(embeddings, dataset, &s)?.honest_only();
                        let dir = work.path().join("attackers-absent");
                        accuracy.push(run(&honest, &s, Defence::None, &dir).await?.accuracy);
                    }
                    accuracy
                }
                _ => clean_accuracy.clone(),
            };
            for &attack in &config.attacks {
                // Per defence; only those that exclude by a verdict count.
                let mut counts = vec![Counts::default(); defences.len()];
                let mut withdrawn = vec![0; defences.len()];
                let mut accuracy = vec![Vec::new(); defences.len()];
                for &seed in &config.seeds {
                    let s = scenario(members, attackers, attack, seed);
                    let prepared = prepare(embeddings, dataset, &s)?;
                    let outcomes = run_all(&prepared, &s, &defences, work.path()).await?;
                    for (k, (defence, outcome)) in defences.iter().zip(outcomes).enumerate() {
                        accuracy[k].push(outcome.accuracy);
                        if defence.detector().is_some() {
                            let c = &mut counts[k];
                            c.true_positives += outcome.counts.true_positives;
                            c.false_positives += outcome.counts.false_positives;
                            c.false_negatives += outcome.counts.false_negatives;
                            withdrawn[k] += outcome.withdrawn;
                        }
                    }
                }
                let mut rows = Vec::new();
                if !config.detection_only {
                    rows.push(AccuracyRow {
                        defence: "clean".into(),
                        accuracy: Stat::of(clean_accuracy),
                    });
                    rows.push(AccuracyRow {
                        defence: ATTACKERS_ABSENT.into(),
                        accuracy: Stat::of(&absent),
                    });
                }
                rows.extend(defences.iter().zip(&accuracy).map(|(d, a)| AccuracyRow {
                    defence: d.name(),
                    accuracy: Stat::of(a),
                }));
                let cell = Cell {
                    members,
                    attackers,
                    attack: attack.name().into(),
                    detection: defences
                        .iter()
                        .zip(counts.iter().zip(&withdrawn))
                        .filter_map(|(d, (c, w))| {
                            Some(DetectionRow::new(d.detection_name()?, c, *w))
                        })
                        .collect(),
                    accuracy: rows,
                };
                progress(&cell);
                cells.push(cell);
            }
        }
    }
    Ok(BenchReport {
        setup: SETUP.into(),
        detection: (&config.tuning).into(),
        collusion_noise: (config.collusion_noise != CollusionNoise::NONE)
            .then(|| config.collusion_noise.value()),
        blind_projection: config.blind_projection,
        sketch_after_commit: config.sketch_after_commit,
        seeds: config.seeds.clone(),
        rounds: config.rounds,
        local_epochs: config.local.epochs,
        learning_rate: config.local.learning_rate,
        partition: config.partition,
        centralized_accuracy: Stat::of(&centralized_accuracy),
        cells,
        seconds: started.elapsed().as_secs_f64(),
    })
}

impl BenchReport {
    /// The detector a figure or a scorecard reads: `requested` if the report measured it, else,
    /// without one, the on-chain configuration the grid is about: `both` (the every-attack
    /// preset's) when measured, else the default `ensemble`, else the first detector.
    pub fn detector(
        &self,
        requested: Option<&str>,
    ) -> std::result::Result<String, UnknownDetector> {
        let measured: Vec<&str> = self
            .cells
            .first()
            .map(|c| c.detection.iter().map(|d| d.detector.as_str()).collect())
            .unwrap_or_default();
        match requested {
            Some(name) if measured.contains(&name) => Ok(name.to_owned()),
            Some(name) => Err(UnknownDetector {
                name: name.to_owned(),
                available: measured.join(", "),
            }),
            None => Ok([Detector::Both.name(), Detector::Ensemble.name()]
                .into_iter()
                .find(|d| measured.contains(d))
                .or(measured.first().copied())
                .unwrap_or_default()
                .to_owned()),
        }
    }

    /// The grid's two figures, as (suffix, SVG):
    ///
    /// - `f1`: detection F1 of `detector` ([`BenchReport::detector`]) against the attackers'
    ///   share in percent, a line per attack;
    /// - `accuracy`: each defence's *lowest* final accuracy over the attacks at each share (its
    ///   worst case), a line per defence, the clean run as a dashed reference.
    ///
    /// With several member counts, each line is drawn per count (`..., 20 members`).
    pub fn figures(
        &self,
        detector: Option<&str>,
    ) -> std::result::Result<Vec<(&'static str, String)>, FigureError> {
        let member_counts: BTreeSet<usize> = self.cells.iter().map(|c| c.members).collect();
        let several = member_counts.len() > 1;
        let label = |what: &str, members: usize| {
            if several {
                format!("{what}, {members} members")
            } else {
                what.to_owned()
            }
        };
        let share =
            |c: &Cell| (100.0 * c.attackers as f64 / c.members.max(1) as f64).round() as u64;
        let detector = self
            .detector(detector)
            .map_err(|e| FigureError::MissingSeries {
                figure: "f1",
                name: e.name,
                available: e.available,
            })?;
        let mut f1: BTreeMap<(usize, String), Vec<(u64, f64)>> = BTreeMap::new();
        let mut worst: BTreeMap<(usize, String), BTreeMap<u64, f64>> = BTreeMap::new();
        let mut clean: BTreeMap<usize, f64> = BTreeMap::new();
        for cell in &self.cells {
            if let Some(d) = cell.detection.iter().find(|d| d.detector == detector) {
                f1.entry((cell.members, cell.attack.clone()))
                    .or_default()
                    .push((share(cell), d.f1));
            }
            for a in &cell.accuracy {
                if a.defence == "clean" {
                    clean.insert(cell.members, a.accuracy.mean);
                    continue;
                }
                let slot = worst
                    .entry((cell.members, a.defence.clone()))
                    .or_default()
                    .entry(share(cell))
                    .or_insert(f64::INFINITY);
                *slot = slot.min(a.accuracy.mean);
            }
        }
        let f1_curves: Vec<Curve> = f1
            .into_iter()
            .map(|((members, attack), points)| Curve {
                label: label(&attack, members),
                points,
            })
            .collect();
        // Defences in report order.
        let order: Vec<String> = self
            .cells
            .first()
            .map(|c| c.accuracy.iter().map(|a| a.defence.clone()).collect())
            .unwrap_or_default();
        let mut accuracy_curves: Vec<Curve> = Vec::new();
        for &members in &member_counts {
            for defence in &order {
                if let Some(points) = worst.get(&(members, defence.clone())) {
                    accuracy_curves.push(Curve {
                        label: label(defence, members),
                        points: points.iter().map(|(&x, &y)| (x, y)).collect(),
                    });
                }
            }
        }
        let references: Vec<(String, f64)> = clean
            .iter()
            .map(|(&members, &acc)| (label("clean run", members), acc))
            .collect();
        Ok(vec![
            (
                "f1",
                curves_svg(
                    &format!("Detection F1 ({detector})"),
                    "attackers, % of members",
                    YAxis::Fraction("F1"),
                    &f1_curves,
                    &[],
                )?,
            ),
            (
                "accuracy",
                curves_svg(
                    "Final accuracy, worst attack",
                    "attackers, % of members",
                    YAxis::Fraction("test accuracy"),
                    &accuracy_curves,
                    &references,
                )?,
            ),
        ])
    }

    /// A markdown table, one row per cell: members, attackers, attack, then `columns` filled by
    /// `values`.
    fn table(&self, columns: &[&str], values: impl Fn(&Cell) -> Vec<String>) -> String {
        let mut out = String::from("| members | attackers | attack |");
        for c in columns {
            out.push_str(&format!(" {c} |"));
        }
        out.push_str("\n| ---: | ---: | --- |");
        out.push_str(&" ---: |".repeat(columns.len()));
        out.push('\n');
        for cell in &self.cells {
            out.push_str(&format!(
                "| {} | {} | {} |",
                cell.members, cell.attackers, cell.attack
            ));
            for v in values(cell) {
                out.push_str(&format!(" {v} |"));
            }
            out.push('\n');
        }
        out
    }

    /// Two markdown tables: detection (F1, with precision/recall) and final accuracy.
    pub fn markdown(&self) -> String {
        let mut out = format!(
            "Setup: {}; {} rounds x {} local epochs, lr {}, {} shards, seeds {:?}. Centralized head: \
             {:.3} +/- {:.3}.\n\n",
            self.setup,
            self.rounds,
            self.local_epochs,
            self.learning_rate,
            self.partition,
            self.seeds,
            self.centralized_accuracy.mean,
            self.centralized_accuracy.std
        );
        let Some(first) = self.cells.first() else {
            return out;
        };
        out.push_str("Detection, F1 (precision / recall), over all rounds and seeds:\n\n");
        let detectors: Vec<&str> = first
            .detection
            .iter()
            .map(|d| d.detector.as_str())
            .collect();
        out.push_str(&self.table(&detectors, |c| {
            c.detection
                .iter()
                .map(|d| format!("{:.3} ({:.2} / {:.2})", d.f1, d.precision, d.recall))
                .collect()
        }));
        out.push_str("\nFinal test accuracy, mean over seeds:\n\n");
        let defences: Vec<&str> = first.accuracy.iter().map(|a| a.defence.as_str()).collect();
        out.push_str(&self.table(&defences, |c| {
            c.accuracy
                .iter()
                .map(|a| format!("{:.3}", a.accuracy.mean))
                .collect()
        }));
        out
    }
}
