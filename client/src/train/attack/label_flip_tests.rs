//! Two more statistics that do not separate label flippers from honest members with Dirichlet
//! 0.1 shards, on the real embeddings outside the ledger (docs/anomaly-detection.md, "What the
//! preset does not do"). Ignored by default: it needs the model and the corpus (`.
//! scripts/env.sh` sets both):
//!
//! ```sh
//! cargo test --release -p bcfl-client --features train --lib label_flip -- --ignored --nocapture
//! ```
//!
//! Ten members, seeds 0-2, six rounds of FedAvg over the honest updates; each member's honest
//! update and its label-flipped one (labels shifted by one class) from the same model:
//!
//! - *alignment with the model*: the cosine of the update with the global model's weights (from
//!   round 2, the head having started at zero). For a linear head under cross-entropy, the
//!   update's dot product with the weights is the learning rate times the sum over the member's
//!   rows of the true class's logit minus the logits' softmax mean: positive where the model
//!   already agrees with the member's labels. A label flipper's labels disagree with it; so do
//!   those of an honest member holding a class the model has not learnt.
//! - *row conflicts*: per class row of the head, the most negative cosine between the member's
//!   row and another member's (rows under 30 % of either update's largest row left out). A
//!   flipper pushes its class's row down along the class's own features, against the members
//!   holding that class; honest members holding different classes push shared rows in opposite
//!   directions as much.
//!
//! The test asserts the overlap on both and prints the ranges; with IID shards the alignment
//! separates them, and the row conflicts overlap there too, a little.
//!
//! Nor does the *pairing of rows with classes* (`label_flip_pairings_overlap`): take the reference's
//! class directions `r_k` (below) and the matrix `A[c][k] = Δrow_c · r_k` of the member's change.
//! A change trained on true labels should fit the identity pairing best, `Σ_c A[c][c]`; a
//! flipped one the pairing its labels were shifted by. Over the member's rounds (the numerators
//! summed over the sums of `|Δweight| |r|`), neither the trace minus the best other pairing
//! (what a consortium not knowing the attacker's permutation can test) nor the trace minus the
//! shift itself (an oracle that knows it) separates them with Dirichlet 0.1 shards: a member
//! holding one class whose features resemble another class's direction fits a shifted pairing
//! as a flipper does. With IID shards both do.
//!
//! A third statistic nearly separates them: the *reference margin* the mislabelled-change
//! method reads (`REFERENCE_MARGIN`, [`bcfl_fed::reference`]), the cosine of the member's
//! sampled coordinates with a reference direction built from class means, averaged over its
//! rounds. A change trained on true labels moves each class's row towards that class's own
//! features, whatever classes the shard holds; a flipped one towards another class's. Taken
//! from a linear classifier trained on the root set instead of its class means, it separates
//! them better here (`a_trained_classifier_...`).
//!
//! Other ways of combining a member's rounds than the mean do not remove the drift of honest
//! members' margins below the limit (`other_aggregations_of_the_margins_leave_the_drift`).

use super::experiment::ROOT_SET_ROWS;
use super::head::ReferenceDirections;
use super::honest_rounds::{cosine, honest_fedavg, norm, Round};
use crate::train::split::Partition;

/// One statistic's values over honest and label-flipped member-rounds.
#[derive(Debug, Default)]
struct Split {
    honest: Vec<f64>,
    flipped: Vec<f64>,
}

impl Split {
    fn range(v: &[f64]) -> (f64, f64) {
        let low = v.iter().copied().fold(f64::INFINITY, f64::min);
        let high = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        (low, high)
    }

    /// Honest values below `limit` and flipped ones at or above it.
    fn errors_at(&self, limit: f64) -> usize {
        self.honest.iter().filter(|x| **x < limit).count()
            + self.flipped.iter().filter(|x| **x >= limit).count()
    }

    /// The limit (among the values) with the fewest [`Self::errors_at`], and their number.
    fn fewest_errors(&self) -> (f64, usize) {
        self.honest
            .iter()
            .chain(&self.flipped)
            .map(|&t| (t, self.errors_at(t)))
            .fold(
                (0.0, usize::MAX),
                |best, (t, e)| if e < best.1 { (t, e) } else { best },
            )
    }

    /// Whether some threshold puts every flipped value below every honest one.
    fn separates(&self) -> bool {
        Self::range(&self.flipped).1 < Self::range(&self.honest).0
    }

    fn print(&self, name: &str) {
        let below = |v: &[f64]| v.iter().filter(|x| **x < 0.0).count();
        println!(
            "{name}: honest {:.3?} ({} of {} below 0), label-flipped {:.3?} ({} of {} below 0)",
            Self::range(&self.honest),
            below(&self.honest),
            self.honest.len(),
            Self::range(&self.flipped),
            below(&self.flipped),
            self.flipped.len()
        );
    }
}

/// The head's row `class` of a flat update (bias first, then the weight row by row).
fn row(round: &Round<'_>, v: &[f64], class: usize) -> Vec<f64> {
    let (classes, dim) = (round.global.classes, round.global.dim);
    v[classes + class * dim..classes + (class + 1) * dim].to_vec()
}

/// The most negative cosine of `v`'s rows with the same rows of the other members' honest
/// updates (rows under 30 % of either update's largest row left out).
fn row_conflict(round: &Round<'_>, member: usize, v: &[f64]) -> f64 {
    let classes = round.global.classes;
    let largest = |u: &[f64]| {
        (0..classes)
            .map(|c| norm(&row(round, u, c)))
            .fold(0.0, f64::max)
    };
    let mut worst = f64::INFINITY;
    for (j, (other, _)) in round.changes.iter().enumerate() {
        if j == member {
            continue;
        }
        for c in 0..classes {
            let (a, b) = (row(round, v, c), row(round, other, c));
            if norm(&a) >= 0.3 * largest(v) && norm(&b) >= 0.3 * largest(other) {
                worst = worst.min(cosine(&a, &b));
            }
        }
    }
    worst
}

fn measure(partition: Partition) -> (Split, Split) {
    let (mut alignment, mut conflict) = (Split::default(), Split::default());
    honest_fedavg(partition, 10, 0..3, |round| {
        let weights = round.global.flat();
        for (i, (honest, flipped)) in round.changes.iter().enumerate() {
            if round.number >= 2 {
                alignment.honest.push(cosine(honest, &weights));
                alignment.flipped.push(cosine(flipped, &weights));
            }
            conflict.honest.push(row_conflict(round, i, honest));
            conflict.flipped.push(row_conflict(round, i, flipped));
        }
    });
    (alignment, conflict)
}

#[test]
#[ignore = "needs the model and the corpus (scripts/env.sh); about 5 s in release"]
fn label_flips_align_and_conflict_as_rare_classes_do() {
    let (alignment, conflict) = measure(Partition::Dirichlet { alpha: 0.1 });
    alignment.print("Dirichlet 0.1, cosine with the model");
    conflict.print("Dirichlet 0.1, most negative row cosine");
    assert!(!alignment.separates() && !conflict.separates());
    let (alignment, conflict) = measure(Partition::Iid);
    alignment.print("IID, cosine with the model");
    conflict.print("IID, most negative row cosine");
    assert!(alignment.separates() && !conflict.separates());
}

/// The commitment of `change` as far as the margin reads it: its `count` sampled coordinates
/// (at the fixed positions every round uses), in steps.
fn sampled_commitment(
    round: &Round<'_>,
    change: &[f64],
    count: usize,
) -> bcfl_protos::bcfl::Commitment {
    use bcfl_fed::sketch::{coordinates, CoordinateScope, COORDINATE_SEED};
    let sampled = coordinates(
        &round.global.from_flat(change).to_update(),
        count,
        CoordinateScope::EVERY_TENSOR,
        COORDINATE_SEED,
    );
    bcfl_protos::bcfl::Commitment {
        coordinate_step_nano: sampled.step_nano(),
        coordinate_steps: sampled.packed_steps(),
        ..Default::default()
    }
}

/// Every member-round's `REFERENCE_MARGIN` as the processor computes it, for the honest and
/// the label-flipped update: each change committed as its 256 sampled coordinates, compared with
/// the reference the attack benchmark puts on chain
/// ([`super::experiment::Prepared::reference_steps`]); the round's cosine alone, and the mean
/// over the member's rounds so far (what the method reads).
fn reference_margins(
    partition: Partition,
    seeds: std::ops::Range<u64>,
    kind: ReferenceDirections,
) -> (Split, Split) {
    use bcfl_processor::anomaly::features::margin_terms;
    const COUNT: usize = 256;
    let (mut round_margins, mut cumulative) = (Split::default(), Split::default());
    let mut sums: Vec<(i64, i64)> = Vec::new();
    let mut reference = Vec::new();
    honest_fedavg(partition, 10, seeds, |round| {
        if round.number == 1 {
            reference = round
                .prepared
                .reference_steps(round.seed, COUNT, kind)
                .unwrap();
            sums = vec![(0, 0); round.changes.len()];
        }
        for (i, (honest, flipped)) in round.changes.iter().enumerate() {
            let commit = |change| sampled_commitment(round, change, COUNT);
            let terms = margin_terms(&[commit(honest), commit(flipped)], &reference);
            let (h, f) = (terms[0].unwrap_or(0), terms[1].unwrap_or(0));
            round_margins.honest.push(h as f64 / 1e6);
            round_margins.flipped.push(f as f64 / 1e6);
            sums[i].0 += h;
            sums[i].1 += f;
            let rounds = round.number as f64 * 1e6;
            cumulative.honest.push(sums[i].0 as f64 / rounds);
            cumulative.flipped.push(sums[i].1 as f64 / rounds);
        }
    });
    (round_margins, cumulative)
}

/// The reference margin nearly separates them where the two statistics above and the root
/// set's (`root_set_tests`) do not: with
/// Dirichlet 0.1 shards, over 180 member-rounds each, the mean over a member's rounds lay
/// below 0 for 4 honest member-rounds (down to -0.023) and 175 label-flipped ones (the others
/// up to 0.046); one round alone, for 10 honest and 175 flipped ones. With IID shards the mean
/// separates them. (The class means of the whole held-out split instead of the root set's 500
/// rows: 4 and 174; of 100 rows: 3 and 164. The positions matter as much: the same statistic
/// over every coordinate of the change put 6 honest and 173 flipped member-rounds below 0.)
#[test]
#[ignore = "needs the model and the corpus (scripts/env.sh); about 3 s in release"]
fn reference_margins_nearly_separate_label_flips() {
    let means = ReferenceDirections::ClassMeans;
    let (round, cumulative) = reference_margins(Partition::Dirichlet { alpha: 0.1 }, 0..3, means);
    round.print("Dirichlet 0.1, reference margin of the round");
    cumulative.print("Dirichlet 0.1, reference margin over the rounds");
    let below = |v: &[f64]| v.iter().filter(|x| **x < 0.0).count();
    assert!(below(&cumulative.flipped) >= 170 && below(&cumulative.honest) <= 5);
    let (round, cumulative) = reference_margins(Partition::Iid, 0..3, means);
    round.print("IID, reference margin of the round");
    cumulative.print("IID, reference margin over the rounds");
    assert!(cumulative.separates() && below(&cumulative.honest) == 0);
}

/// A linear classifier trained on the root set ([`ReferenceDirections::Classifier`])
/// against the class means, the mean over the member's rounds, with Dirichlet 0.1 shards on four
/// sets of seeds. On every set the fewest errors any limit makes (honest member-rounds below it,
/// flipped ones at or above it) are fewer or as few with the classifier (printed: 3 against 8,
/// 1 against 8, 29 against 31, 17 against 19); at the limits the benchmark runs them with, 0
/// for the classifier (the sign the module docs of [`bcfl_fed::reference`] derive) and -0.03
/// for the class means (chosen on seeds 0-2), the classifier makes fewer over the four sets
/// (58 against 104: 24 honest and 34 flipped against 14 and 90). With IID shards it separates
/// them, as the class means do.
#[test]
#[ignore = "needs the model and the corpus (scripts/env.sh); about 10 s in release"]
fn a_trained_classifier_separates_label_flips_better_than_class_means() {
    let (mut at_limits_means, mut at_limits_trained) = (0, 0);
    for first in [0, 100, 200, 300] {
        let seeds = first..first + 3;
        let dirichlet = Partition::Dirichlet { alpha: 0.1 };
        let margins = |kind| reference_margins(dirichlet, seeds.clone(), kind).1;
        let means = margins(ReferenceDirections::ClassMeans);
        let trained = margins(ReferenceDirections::Classifier);
        for (name, split, limit) in [
            ("class means", &means, -0.03),
            ("classifier", &trained, 0.0),
        ] {
            split.print(&format!("seeds {seeds:?}, {name}, over the rounds"));
            let (at, errors) = split.fewest_errors();
            println!(
                "  at {limit}: {} honest below, {} flipped above; fewest errors {errors} at {at:.3}",
                split.honest.iter().filter(|x| **x < limit).count(),
                split.flipped.iter().filter(|x| **x >= limit).count(),
            );
        }
        assert!(trained.fewest_errors().1 <= means.fewest_errors().1);
        at_limits_means += means.errors_at(-0.03);
        at_limits_trained += trained.errors_at(0.0);
    }
    println!("errors at the limits, four sets: {at_limits_trained} against {at_limits_means}");
    assert!(at_limits_trained < at_limits_means);
    let (_, iid) = reference_margins(Partition::Iid, 0..3, ReferenceDirections::Classifier);
    iid.print("IID, classifier, over the rounds");
    assert!(iid.separates());
}

/// Every permutation of `0..n`.
fn permutations(n: usize) -> Vec<Vec<usize>> {
    if n == 0 {
        return vec![vec![]];
    }
    let mut out = Vec::new();
    for p in permutations(n - 1) {
        for i in 0..=p.len() {
            let mut q = p.clone();
            q.insert(i, n - 1);
            out.push(q);
        }
    }
    out
}

/// A change's pairing margins (see the module docs): the trace of `A` minus the best other
/// pairing's sum, the trace minus the shifted pairing's (row `c + 1` with class `c`, the
/// flippers' own), and the normaliser `|Δweight| |r|`.
fn pairing_margins(round: &Round<'_>, directions: &[Vec<f64>], v: &[f64]) -> (f64, f64, f64) {
    let classes = round.global.classes;
    let a: Vec<Vec<f64>> = (0..classes)
        .map(|c| {
            let r = row(round, v, c);
            directions
                .iter()
                .map(|d| r.iter().zip(d).map(|(x, y)| x * y).sum())
                .collect()
        })
        .collect();
    let sum = |p: &[usize]| (0..classes).map(|c| a[c][p[c]]).sum::<f64>();
    let trace = (0..classes).map(|c| a[c][c]).sum::<f64>();
    let best_other = permutations(classes)
        .iter()
        .filter(|p| p.iter().enumerate().any(|(i, &j)| i != j))
        .map(|p| sum(p))
        .fold(f64::NEG_INFINITY, f64::max);
    let shifted = (0..classes).map(|c| a[(c + 1) % classes][c]).sum::<f64>();
    let length = directions
        .iter()
        .map(|d| norm(d).powi(2))
        .sum::<f64>()
        .sqrt();
    (
        trace - best_other,
        trace - shifted,
        norm(&v[classes..]) * length,
    )
}

/// Over every member-round, the two pairing margins summed over the member's rounds so far.
fn pairings(partition: Partition, seeds: std::ops::Range<u64>) -> (Split, Split) {
    let (mut other, mut shift) = (Split::default(), Split::default());
    let mut sums: Vec<[f64; 6]> = Vec::new();
    honest_fedavg(partition, 10, seeds, |round| {
        let p = round.prepared;
        let means = p
            .test
            .class_means(&p.root_set(round.seed, ROOT_SET_ROWS))
            .unwrap();
        let directions = bcfl_fed::reference::class_directions(&means).unwrap();
        if round.number == 1 {
            sums = vec![[0.0; 6]; round.changes.len()];
        }
        for (i, (honest, flipped)) in round.changes.iter().enumerate() {
            let s = &mut sums[i];
            for (at, v) in [(0, honest), (3, flipped)] {
                let (o, f, n) = pairing_margins(round, &directions, v);
                s[at] += o;
                s[at + 1] += f;
                s[at + 2] += n;
            }
            other.honest.push(s[0] / s[2]);
            shift.honest.push(s[1] / s[2]);
            other.flipped.push(s[3] / s[5]);
            shift.flipped.push(s[4] / s[5]);
        }
    });
    (other, shift)
}

/// The pairings overlap with Dirichlet 0.1 shards, on seeds 0-2 and 100-102, and separate with
/// IID ones (see the module docs; the ranges printed are the measurement).
#[test]
#[ignore = "needs the model and the corpus (scripts/env.sh); about 3 s in release"]
fn label_flip_pairings_overlap() {
    let overlaps = |(other, shift): &(Split, Split)| !other.separates() && !shift.separates();
    for seeds in [0..3, 100..103] {
        let name = format!("Dirichlet 0.1, seeds {seeds:?}");
        let found = pairings(Partition::Dirichlet { alpha: 0.1 }, seeds);
        found
            .0
            .print(&format!("{name}, trace minus the best other pairing"));
        found
            .1
            .print(&format!("{name}, trace minus the shifted pairing"));
        assert!(overlaps(&found));
    }
    let (other, shift) = pairings(Partition::Iid, 0..3);
    other.print("IID, trace minus the best other pairing");
    shift.print("IID, trace minus the shifted pairing");
    assert!(other.separates() && shift.separates());
}

/// Ways of combining a member's per-round reference margins, each a score per member-round from
/// the rounds so far: the first round's alone (from the head at zero, where a change on true
/// labels scores above 0 for rows at their class means, whatever the model learns later), the
/// mean (what the method reads), the mean of its first three rounds,
/// weights `1/round` (earlier rounds, when the model has learnt less of its rows, count more),
/// the median, the running maximum of the mean (once clearly positive, kept), and the mean of
/// each round's cosine times the change's norm over the norm its shard's size predicts (the
/// round's repeated-median line of `ln(norm)` on `ln(samples)`, as the oversized-update method
/// fits it: an honest member whose rows the model has learnt sends a short change, a flipper a
/// full one).
const AGGREGATIONS: [&str; 7] = [
    "first round",
    "mean",
    "first three rounds",
    "weights 1/round",
    "median",
    "running maximum",
    "scaled by the norm",
];

/// [`AGGREGATIONS`]' scores for one member's rounds so far: `margins[k]` its round `k + 1`'s
/// cosine, `scaled[k]` the same times the norm ratio.
fn aggregate_margins(margins: &[f64], scaled: &[f64]) -> [f64; 7] {
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let running = (1..=margins.len())
        .map(|k| mean(&margins[..k]))
        .fold(f64::NEG_INFINITY, f64::max);
    let weights: f64 = (1..=margins.len()).map(|k| 1.0 / k as f64).sum();
    let weighted: f64 = margins
        .iter()
        .enumerate()
        .map(|(k, m)| m / (k + 1) as f64)
        .sum();
    let mut sorted = margins.to_vec();
    sorted.sort_by(f64::total_cmp);
    [
        margins[0],
        mean(margins),
        mean(&margins[..margins.len().min(3)]),
        weighted / weights,
        sorted[sorted.len() / 2],
        running,
        mean(scaled),
    ]
}

/// Why the honest members' drift is not an artefact of the mean over the rounds: on the four
/// sets of seeds of `a_trained_classifier_...`, with 10 and 20 members, no other way of
/// combining a member's rounds ([`AGGREGATIONS`]) separates honest and flipped member-rounds
/// on seeds 200-202, with either reference (at the best limit for each, 24 to 32 errors of 360
/// at 10 members; printed: the fewest errors and their limit, and the errors at the method's
/// limit, 0 for the classifier and -0.03 for the class means). The earlier rounds carry more
/// of the difference (the first three rounds and the weights `1/round` make fewer errors on the
/// other sets), but the best limit moves from set to set, and the running maximum, which
/// keeps a member trusted once its mean was high, would never exclude an attacker that flips
/// its labels after some honest rounds. The first round alone shows what is left without the
/// drift: at 10 members every honest margin lies above 0 there (asserted), and the errors are
/// flipped changes that the reference scores above 0 too, their shifted labels read as right.
#[test]
#[ignore = "needs the model and the corpus (scripts/env.sh); about 15 s in release"]
fn other_aggregations_of_the_margins_leave_the_drift() {
    use bcfl_processor::anomaly::features::margin_terms;
    use bcfl_processor::anomaly::stats::repeated_median_line;
    const COUNT: usize = 256;
    for (kind, limit) in [
        (ReferenceDirections::ClassMeans, -0.03),
        (ReferenceDirections::Classifier, 0.0),
    ] {
        for members in [10, 20] {
            for first in [0, 100, 200, 300] {
                let mut splits: Vec<Split> =
                    AGGREGATIONS.iter().map(|_| Split::default()).collect();
                // Per member, per side (honest, flipped): the rounds' cosines and scaled cosines.
                let mut rounds: Vec<[(Vec<f64>, Vec<f64>); 2]> = Vec::new();
                let mut reference = Vec::new();
                let dirichlet = Partition::Dirichlet { alpha: 0.1 };
                honest_fedavg(dirichlet, members, first..first + 3, |round| {
                    if round.number == 1 {
                        reference = round
                            .prepared
                            .reference_steps(round.seed, COUNT, kind)
                            .unwrap();
                        rounds = vec![Default::default(); round.changes.len()];
                    }
                    let samples: Vec<f64> = round
                        .prepared
                        .shards
                        .iter()
                        .map(|s| s.len().max(1) as f64)
                        .collect();
                    let points: Vec<(f64, f64)> = round
                        .changes
                        .iter()
                        .zip(&samples)
                        .map(|((h, _), n)| (n.ln(), norm(h).max(f64::MIN_POSITIVE).ln()))
                        .collect();
                    let (intercept, slope) = repeated_median_line(&points);
                    for (i, (honest, flipped)) in round.changes.iter().enumerate() {
                        let commit = |change| sampled_commitment(round, change, COUNT);
                        let terms = margin_terms(&[commit(honest), commit(flipped)], &reference);
                        let predicted = (intercept + slope.clamp(0.0, 1.0) * samples[i].ln()).exp();
                        for (side, change) in [honest, flipped].into_iter().enumerate() {
                            let margin = terms[side].unwrap_or(0) as f64 / 1e6;
                            let (margins, scaled) = &mut rounds[i][side];
                            margins.push(margin);
                            scaled.push(margin * norm(change) / predicted);
                            let scores = aggregate_margins(margins, scaled);
                            for (split, score) in splits.iter_mut().zip(scores) {
                                if side == 0 {
                                    split.honest.push(score);
                                } else {
                                    split.flipped.push(score);
                                }
                            }
                        }
                    }
                });
                // The first round, from a head at zero: every value repeated over the member's
                // six rounds.
                let first_round = &splits[0];
                first_round.print(&format!(
                    "{kind:?}, {members} members, seeds {first}-{}, first round",
                    first + 2
                ));
                if members == 10 {
                    assert!(
                        Split::range(&first_round.honest).0 > 0.0,
                        "an honest first-round margin below 0"
                    );
                }
                for (name, split) in AGGREGATIONS.iter().zip(&splits) {
                    let (at, errors) = split.fewest_errors();
                    println!(
                        "{kind:?}, {members} members, seeds {first}-{}, {name}: fewest errors \
                         {errors} at {at:.3}, {} at {limit}",
                        first + 2,
                        split.errors_at(limit)
                    );
                    if first == 200 && members == 10 {
                        assert!(errors >= 20, "{name} separates them on seeds 200-202");
                    }
                }
            }
        }
    }
}
