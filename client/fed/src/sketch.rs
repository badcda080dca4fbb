//! The statistics a commitment carries about an update: sample count, loss, L2 norm, a
//! fixed-length sketch from which cosine similarities between updates can be estimated on chain
//! without the updates, and (when the consortium asks for them) the update's values at a few
//! sampled coordinates.
//!
//! The sketch is a seeded random projection `s = R x` of the flattened update `x` (tensors in
//! name order, each row-major), with `R` a `length × dim` matrix of ±1 signs, quantized to
//! integers. Row `r` of `R` is the bit stream of a SplitMix64 generator whose state starts at
//! `seed ⊕ (r + 1) · 0x9E3779B97F4A7C15`: each 64-bit output signs the next 64 coordinates, low
//! bit first, a set bit meaning −1. Sums run over coordinates in order in `f64`. The projection
//! is then scaled so that its largest magnitude is [`SKETCH_MAX`] (127) and rounded (all zeros
//! stay zeros).
//!
//! By the Johnson-Lindenstrauss lemma, `cos(s_a, s_b)` estimates `cos(x_a, x_b)` with a standard
//! error of about `1/√length` (0.06 for the default 256); the scaling does not change cosines,
//! and the rounding (at most half a step in 127 on each value) moves them by at most about 1e-3,
//! far below that error. The ledger stores the sketch one byte a value (256 bytes for 256),
//! where zigzag varints took two for every magnitude from 64 (about 300) and the 32767 of earlier
//! versions three (770).
//!
//! Members sketch round `t`'s update with seed `t`, so all sketches of one round share one
//! projection. Across rounds the projections differ, which shapes the on-chain cumulative
//! feature (a member's sketches summed over rounds): what members share in a round (the common
//! descent direction) stays aligned in the sum, while a member's own persistent bias (its shard's
//! pull, the same every round) is projected differently each round and adds up like noise
//! instead of linearly. One fixed seed for all rounds was measured too (attack benchmark, 5
//! seeds, 10 and 20 members, with the median of the sums as the feature's centre, before the
//! consensus replaced it): it caught stale updates better (ensemble F1 0.97-1.0 instead of
//! 0.86-0.94) but Gaussian noise worse in five of six cells (10 / 20 / 30 % attackers: 0.938 /
//! 0.947 / 0.902 at 10 members and 1.0 / 0.879 / 0.792 at 20, against 0.968 / 0.983 / 0.935 and
//! 0.992 / 0.961 / 0.831 per round), and noise is one of the attacks the detection is judged
//! on, so the seed stays per round.
//!
//! The sampled coordinates ([`coordinates`]) are `count` positions of the flattened update
//! drawn uniformly with replacement from a SplitMix64 stream whose state starts at
//! `seed ⊕ 0x636F6F7264696E61` (position = output mod the length of the values in the
//! consortium's [`CoordinateScope`], counted from the first of them: every value, or the
//! classification head's alone, the tensors named [`HEAD_PREFIX`]`*`, which lie together since
//! tensors are in name order; [`scope_range`]), and the update's values there in nano-units
//! ([`fixed::saturating_nano`]), quantized like the sketch: in steps of the largest magnitude
//! over 127 ([`Coordinates::quantize`]), which keeps the step so that the processor can compare
//! values across members. Commitments use one seed for every
//! round, [`COORDINATE_SEED`]: every member samples the same positions, so the processor can
//! compare members coordinate by coordinate (the `COORDINATE_SIGN_BALANCE` feature), and the
//! same positions every round, so it can compare a member's change with the previous round's
//! accepted mean change (the `PREVIOUS_CHANGE_DISTANCE` feature, which a resent change lands
//! on). Like the projection, the positions are known in advance: an attacker that knows them
//! can leave them alone and attack elsewhere, and hide its change in the projection's null
//! space. [`visible_part`] computes what the statistics see of an update; the adaptive attack
//! `hidden-reversal` keeps that and replaces the rest.

use std::ops::Range;

use bcfl_processor::fixed;
use bcfl_processor::statistics::Coordinates;
use bcfl_protos::bcfl as pb;

use crate::update::Update;

/// Default sketch length (the consortium's `sketch_length`).
pub const DEFAULT_LENGTH: usize = 256;

/// The largest magnitude of a sketch's values (see the module docs).
pub use bcfl_processor::statistics::SKETCH_MAX;

/// The shape of a commitment's statistics, from the consortium's parameters: how long the sketch
/// is, how many coordinates it samples and where.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StatsShape {
    /// Values in the sketch (`sketch_length`).
    pub sketch_length: usize,
    /// Sampled coordinates (`coordinate_samples`; 0: none).
    pub coordinate_samples: usize,
    /// Which values the coordinates are drawn among (`coordinate_scope`).
    pub coordinate_scope: CoordinateScope,
}

impl StatsShape {
    /// The shape `params` asks for.
    pub fn of(params: &pb::ConsortiumParams) -> Self {
        Self {
            sketch_length: params.sketch_length as usize,
            coordinate_samples: params.coordinate_samples as usize,
            coordinate_scope: params.coordinate_scope,
        }
    }

    /// Whether `update` has values where this shape samples coordinates (always, when it
    /// samples none): an error naming the scope otherwise, such as a decoder's update, which has
    /// no classification head, in a consortium sampling the head.
    pub fn check(&self, update: &Update) -> Result<(), String> {
        if self.coordinate_samples == 0 || scope_range(update, self.coordinate_scope).is_some() {
            return Ok(());
        }
        Err(match self.coordinate_scope {
            CoordinateScope::EVERY_TENSOR => "the update has no values to sample".to_owned(),
            CoordinateScope::CLASSIFIER_HEAD => format!(
                "the consortium samples coordinates in the classification head, and the update \
                 has no tensor named {HEAD_PREFIX}*"
            ),
        })
    }

    /// The shape of what a commitment itself carries: [`StatsShape::of`], without the sketch
    /// when the consortium's sketches come after the commitments (`sketch_after_commit`: each
    /// member reveals it once the round is sealed, with the seed the commitments drew).
    pub fn committed(params: &pb::ConsortiumParams) -> Self {
        Self {
            sketch_length: if params.sketch_after_commit {
                0
            } else {
                params.sketch_length as usize
            },
            ..Self::of(params)
        }
    }
}

/// Where sampled coordinates are drawn: among every value of the update or the classification
/// head's (see the module docs).
pub use pb::CoordinateScope;

/// The name prefix of the classification head's tensors ([`CoordinateScope::CLASSIFIER_HEAD`]):
/// a BERT package's `classifier.weight` and `classifier.bias`.
pub const HEAD_PREFIX: &str = "classifier.";

/// The seed of the sampled coordinates' positions, the same in every round (see the module
/// docs; the sketch's projection, by contrast, is seeded with the round).
pub const COORDINATE_SEED: u64 = 0;

/// Statistics of one update.
#[derive(Clone, Debug, PartialEq)]
pub struct UpdateStats {
    /// Training examples behind the update.
    pub samples: u64,
    /// Mean training loss.
    pub loss: f64,
    /// L2 norm of the flattened update.
    pub l2_norm: f64,
    /// Quantized random projection.
    pub sketch: Vec<i32>,
    /// The update at the sampled coordinates (empty when none are asked for).
    pub coordinates: Coordinates,
}

impl UpdateStats {
    /// Statistics of `update` in `shape`, sketched with `seed`, its coordinates sampled at the
    /// positions of [`COORDINATE_SEED`].
    pub fn new(update: &Update, samples: u64, loss: f64, shape: StatsShape, seed: u64) -> Self {
        Self {
            samples,
            loss,
            l2_norm: l2_norm(update),
            sketch: sketch(update, shape.sketch_length, seed),
            coordinates: coordinates(
                update,
                shape.coordinate_samples,
                shape.coordinate_scope,
                COORDINATE_SEED,
            ),
        }
    }
}

/// The update's values at `count` positions in `scope` drawn with `seed`, quantized (see the
/// module docs); all zeros for an update without values in `scope` ([`StatsShape::check`]
/// tells a member so before it commits).
pub fn coordinates(
    update: &Update,
    count: usize,
    scope: CoordinateScope,
    seed: u64,
) -> Coordinates {
    Coordinates::quantize(&nano_coordinates(update, count, scope, seed))
}

/// The update's values at `count` positions in `scope` drawn with `seed`, in nano-units.
fn nano_coordinates(update: &Update, count: usize, scope: CoordinateScope, seed: u64) -> Vec<i64> {
    let tensors: Vec<&[f32]> = update.tensors.values().map(|(_, v)| &v[..]).collect();
    match sampled_positions(update, count, scope, seed) {
        Some(at) => at
            .into_iter()
            .map(|(t, i)| fixed::saturating_nano(f64::from(tensors[t][i])))
            .collect(),
        None => vec![0; count],
    }
}

/// Where each tensor's values lie in the flattened update ([`Update::flattened`]), in name
/// order.
fn layout(update: &Update) -> Vec<Range<usize>> {
    let mut start = 0;
    update
        .tensors
        .values()
        .map(|(_, v)| {
            let range = start..start + v.len();
            start = range.end;
            range
        })
        .collect()
}

/// The run of `ranges` (`update`'s [`layout`]) that `scope` covers, `None` when it holds no
/// value: the tensors named [`HEAD_PREFIX`]`*` lie together, since tensors are in name order.
fn scope_within(
    update: &Update,
    ranges: &[Range<usize>],
    scope: CoordinateScope,
) -> Option<Range<usize>> {
    let prefix = match scope {
        CoordinateScope::EVERY_TENSOR => "",
        CoordinateScope::CLASSIFIER_HEAD => HEAD_PREFIX,
    };
    let mut covered = update
        .tensors
        .keys()
        .zip(ranges)
        .filter(|(name, _)| name.starts_with(prefix))
        .map(|(_, range)| range);
    let first = covered.next()?;
    let end = covered.next_back().unwrap_or(first).end;
    Some(first.start..end).filter(|r| !r.is_empty())
}

/// Where `scope`'s values lie in the flattened update ([`Update::flattened`]): every value, or
/// the values of the tensors named [`HEAD_PREFIX`]`*`, one run since tensors are in name
/// order. `None` when there are none.
pub fn scope_range(update: &Update, scope: CoordinateScope) -> Option<Range<usize>> {
    scope_within(update, &layout(update), scope)
}

/// Where the `count` positions in `scope` drawn with `seed` fall (see the module docs): each
/// one's tensor, as its index in name order, and its offset in that tensor's values. `None` for
/// an update without values in `scope`.
pub fn sampled_positions(
    update: &Update,
    count: usize,
    scope: CoordinateScope,
    seed: u64,
) -> Option<Vec<(usize, usize)>> {
    let ranges = layout(update);
    let within = scope_within(update, &ranges, scope)?;
    Some(
        positions(count, within, seed)
            .map(|position| {
                // The last tensor starting at or before `position` holds it (empty ones never do).
                let t = ranges.partition_point(|r| r.start <= position) - 1;
                (t, position - ranges[t].start)
            })
            .collect(),
    )
}

/// L2 norm of the flattened update, summed in `f64` in tensor-name order.
pub fn l2_norm(update: &Update) -> f64 {
    update
        .tensors
        .values()
        .flat_map(|(_, v)| v.iter())
        .map(|&x| f64::from(x) * f64::from(x))
        .sum::<f64>()
        .sqrt()
}

/// `count` positions in `within` (not empty), drawn with replacement with `seed` (see the
/// module docs).
fn positions(count: usize, within: Range<usize>, seed: u64) -> impl Iterator<Item = usize> {
    let mut state = seed ^ 0x636F_6F72_6469_6E61;
    let total = within.len() as u64;
    (0..count).map(move |_| within.start + (splitmix64(&mut state) % total) as usize)
}

/// Row `r` of the projection seeded with `seed`, `words` 64-bit words of signs: bit `i` of
/// word `w` signs coordinate `64 w + i`, a set bit meaning −1 (see the module docs).
fn row_words(seed: u64, r: u64, words: usize) -> impl Iterator<Item = u64> {
    let mut state = seed ^ (r + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    (0..words).map(move |_| splitmix64(&mut state))
}

fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The quantized sketch of `update` (see the module docs).
pub fn sketch(update: &Update, length: usize, seed: u64) -> Vec<i32> {
    bcfl_processor::statistics::scaled_sketch(&projection(update, length, seed))
}

/// The projection `R x` before it is scaled and rounded.
fn projection(update: &Update, length: usize, seed: u64) -> Vec<f64> {
    let values = update.flattened();
    let words = values.len().div_ceil(64);
    (0..length as u64)
        .map(|r| {
            let mut sum = 0.0;
            for (block, signs) in values.chunks(64).zip(row_words(seed, r, words)) {
                for (bit, &x) in block.iter().enumerate() {
                    if signs >> bit & 1 == 1 {
                        sum -= x;
                    } else {
                        sum += x;
                    }
                }
            }
            sum
        })
        .collect()
}

/// The part of a flattened update ([`Update::flattened`]) that a commitment's statistics in
/// `shape` see when it is sketched with `seed`: its orthogonal projection onto the span of the
/// projection's rows and the sampled positions (those of [`COORDINATE_SEED`] in `sampled_in`,
/// where [`scope_range`] puts the consortium's scope: `0..values.len()` for every tensor).
/// Adding to an update anything orthogonal to that span, which is zero at the sampled
/// positions and in the projection's null space, changes neither its sketch nor its sampled
/// coordinates (up to rounding), and, when it is also orthogonal to the update, keeps its norm.
///
/// The span has at most `sketch_length + coordinate_samples` dimensions (512 with the preset)
/// of the update's thousands or millions, and both the seed and the positions are public before
/// anyone commits (the module docs), so an attacker can hide most of an update's change where
/// no statistic looks: the adaptive attack `hidden-reversal`
/// (`bcfl_processor::anomaly::attack`) does, and only a statistic drawn after the commitments
/// would see it.
///
/// Solved exactly: the Gram matrix of the span's vectors (sign rows as bit words, so a dot
/// product of two rows is `dim − 2 · popcount`) by Cholesky, in `f64`. An update with no more
/// coordinates than the span has vectors, or whose vectors are linearly dependent, is seen whole
/// (the values come back).
pub fn visible_part(
    values: &[f64],
    shape: StatsShape,
    sampled_in: Range<usize>,
    seed: u64,
) -> Vec<f64> {
    let dim = values.len();
    let count = if sampled_in.is_empty() || sampled_in.end > dim {
        0
    } else {
        shape.coordinate_samples
    };
    let mut sampled: Vec<usize> = positions(count, sampled_in, COORDINATE_SEED).collect();
    sampled.sort_unstable();
    sampled.dedup();
    let rows = shape.sketch_length;
    let m = rows + sampled.len();
    if dim <= m {
        return values.to_vec();
    }
    let words = dim.div_ceil(64);
    let signs: Vec<Vec<u64>> = (0..rows as u64)
        .map(|r| {
            let mut row: Vec<u64> = row_words(seed, r, words).collect();
            // Only the update's coordinates count.
            if dim % 64 != 0 {
                row[words - 1] &= (1u64 << (dim % 64)) - 1;
            }
            row
        })
        .collect();
    let sign = |r: usize, i: usize| {
        if signs[r][i / 64] >> (i % 64) & 1 == 1 {
            -1.0
        } else {
            1.0
        }
    };
    // The Gram matrix of [projection rows; unit vectors at the sampled positions].
    let mut gram = vec![0.0; m * m];
    for a in 0..rows {
        for b in a..rows {
            let differ: u32 = signs[a]
                .iter()
                .zip(&signs[b])
                .map(|(x, y)| (x ^ y).count_ones())
                .sum();
            let dot = dim as f64 - 2.0 * f64::from(differ);
            gram[a * m + b] = dot;
            gram[b * m + a] = dot;
        }
        for (j, &p) in sampled.iter().enumerate() {
            gram[a * m + rows + j] = sign(a, p);
            gram[(rows + j) * m + a] = sign(a, p);
        }
    }
    for j in 0..sampled.len() {
        gram[(rows + j) * m + rows + j] = 1.0;
    }
    let mut rhs: Vec<f64> = (0..rows)
        .map(|r| (0..dim).map(|i| sign(r, i) * values[i]).sum())
        .collect();
    rhs.extend(sampled.iter().map(|&p| values[p]));
    let Some(weights) = cholesky_solve(gram, m, rhs) else {
        return values.to_vec();
    };
    let mut seen = vec![0.0; dim];
    for (r, w) in weights[..rows].iter().enumerate() {
        for (i, v) in seen.iter_mut().enumerate() {
            *v += w * sign(r, i);
        }
    }
    for (&p, w) in sampled.iter().zip(&weights[rows..]) {
        seen[p] += w;
    }
    seen
}

/// Solves `a x = b` for a symmetric positive definite `m × m` matrix `a` (row-major) by
/// Cholesky; `None` when `a` is not positive definite (to rounding).
fn cholesky_solve(mut a: Vec<f64>, m: usize, mut b: Vec<f64>) -> Option<Vec<f64>> {
    // a = L Lᵀ, L stored in the lower triangle.
    for j in 0..m {
        let mut d = a[j * m + j];
        for k in 0..j {
            d -= a[j * m + k] * a[j * m + k];
        }
        // Not positive (or NaN): dependent vectors.
        if d.is_nan() || d <= 1e-9 * a[j * m + j].abs() {
            return None;
        }
        let d = d.sqrt();
        a[j * m + j] = d;
        for i in j + 1..m {
            let mut s = a[i * m + j];
            for k in 0..j {
                s -= a[i * m + k] * a[j * m + k];
            }
            a[i * m + j] = s / d;
        }
    }
    for i in 0..m {
        let mut s = b[i];
        for k in 0..i {
            s -= a[i * m + k] * b[k];
        }
        b[i] = s / a[i * m + i];
    }
    for i in (0..m).rev() {
        let mut s = b[i];
        for k in i + 1..m {
            s -= a[k * m + i] * b[k];
        }
        b[i] = s / a[i * m + i];
    }
    Some(b)
}

/// Cosine similarity of two sketches (0 when either is all zeros).
pub fn sketch_cosine(a: &[i32], b: &[i32]) -> f64 {
    let dot: f64 = a
        .iter()
        .zip(b)
        .map(|(&x, &y)| f64::from(x) * f64::from(y))
        .sum();
    let norm = |s: &[i32]| s.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>().sqrt();
    let denominator = norm(a) * norm(b);
    if denominator == 0.0 {
        0.0
    } else {
        dot / denominator
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    const EVERY: CoordinateScope = CoordinateScope::EVERY_TENSOR;
    const HEAD: CoordinateScope = CoordinateScope::CLASSIFIER_HEAD;

    fn update(values: Vec<f32>) -> Update {
        let mut u = Update::default();
        let half = values.len() / 2;
        u.tensors
            .insert("a".into(), (vec![half], values[..half].to_vec()));
        u.tensors.insert(
            "b".into(),
            (vec![values.len() - half], values[half..].to_vec()),
        );
        u
    }

    fn cosine(a: &[f32], b: &[f32]) -> f64 {
        let dot: f64 = a
            .iter()
            .zip(b)
            .map(|(&x, &y)| f64::from(x) * f64::from(y))
            .sum();
        let n = |v: &[f32]| v.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>().sqrt();
        dot / (n(a) * n(b))
    }

    #[test]
    fn sketch_cosines_estimate_update_cosines() {
        let mut rng = StdRng::seed_from_u64(5);
        let dim = 5_000;
        let base: Vec<f32> = (0..dim).map(|_| rng.gen_range(-1.0..1.0)).collect();
        let mut worst = 0f64;
        for mix in [0.0f32, 0.3, 0.6, 0.9, 1.0] {
            let noise: Vec<f32> = (0..dim).map(|_| rng.gen_range(-1.0..1.0)).collect();
            let other: Vec<f32> = base
                .iter()
                .zip(&noise)
                .map(|(b, n)| mix * b + (1.0 - mix) * n)
                .collect();
            let truth = cosine(&base, &other);
            let estimate = sketch_cosine(
                &sketch(&update(base.clone()), DEFAULT_LENGTH, 9),
                &sketch(&update(other), DEFAULT_LENGTH, 9),
            );
            worst = worst.max((truth - estimate).abs());
        }
        assert!(worst < 0.2, "largest cosine error {worst}");
    }

    #[test]
    fn rounding_to_127_moves_cosines_far_less_than_the_projection_and_stays_near_300_bytes() {
        let mut rng = StdRng::seed_from_u64(6);
        let dim = 5_000;
        let mut worst = 0f64;
        let mut varint_bytes = 0usize;
        for round in 0..20u64 {
            let a: Vec<f32> = (0..dim).map(|_| rng.gen_range(-1.0..1.0)).collect();
            let b: Vec<f32> = (0..dim).map(|_| rng.gen_range(-1.0..1.0)).collect();
            let b: Vec<f32> = a.iter().zip(&b).map(|(x, y)| 0.5 * x + y).collect();
            let (ua, ub) = (update(a), update(b));
            let exact = {
                let (pa, pb) = (
                    projection(&ua, DEFAULT_LENGTH, round),
                    projection(&ub, DEFAULT_LENGTH, round),
                );
                let dot: f64 = pa.iter().zip(&pb).map(|(x, y)| x * y).sum();
                let n = |v: &[f64]| v.iter().map(|x| x * x).sum::<f64>().sqrt();
                dot / (n(&pa) * n(&pb))
            };
            let sa = sketch(&ua, DEFAULT_LENGTH, round);
            let rounded = sketch_cosine(&sa, &sketch(&ub, DEFAULT_LENGTH, round));
            worst = worst.max((exact - rounded).abs());
            // Zigzag varints, as protobuf stores `repeated sint32`: one byte below 64.
            varint_bytes += sa
                .iter()
                .map(|v| if v.abs() < 64 { 1 } else { 2 })
                .sum::<usize>();
        }
        assert!(worst < 2e-3, "rounding moved a cosine by {worst}");
        let mean = varint_bytes as f64 / 20.0;
        assert!((256.0..=350.0).contains(&mean), "{mean} bytes a sketch");
    }

    #[test]
    fn sketch_is_deterministic_scale_free_and_seed_dependent() {
        let values: Vec<f32> = (0..300).map(|i| (i as f32 * 0.1).cos()).collect();
        let a = sketch(&update(values.clone()), 64, 1);
        assert_eq!(a.len(), 64);
        assert_eq!(a, sketch(&update(values.clone()), 64, 1));
        assert_eq!(a.iter().map(|x| x.abs()).max(), Some(SKETCH_MAX));
        let doubled: Vec<f32> = values.iter().map(|x| x * 2.0).collect();
        assert_eq!(a, sketch(&update(doubled), 64, 1));
        assert_ne!(a, sketch(&update(values.clone()), 64, 2));
        assert_eq!(sketch(&update(vec![0.0; 10]), 8, 1), vec![0; 8]);
        let shape = StatsShape {
            sketch_length: 16,
            ..StatsShape::default()
        };
        let stats = UpdateStats::new(&update(vec![3.0, 4.0]), 7, 0.5, shape, 1);
        assert_eq!(
            (stats.samples, stats.l2_norm, stats.sketch.len()),
            (7, 5.0, 16)
        );
        assert!(stats.coordinates.is_empty());
        // A commitment carries no sketch when sketches come after the commitments.
        let mut params = pb::ConsortiumParams {
            sketch_length: 16,
            coordinate_samples: 4,
            ..Default::default()
        };
        assert_eq!(StatsShape::committed(&params), StatsShape::of(&params));
        params.sketch_after_commit = true;
        let committed = StatsShape::committed(&params);
        assert_eq!(
            (committed.sketch_length, committed.coordinate_samples),
            (0, 4)
        );
        assert_eq!(StatsShape::of(&params).sketch_length, 16);
        let stats = UpdateStats::new(&update(vec![3.0, 4.0]), 7, 0.5, committed, 1);
        assert!(stats.sketch.is_empty());
    }

    /// Adding what lies outside an update's visible part changes neither its sketch nor its
    /// sampled coordinates; the visible part is a projection (idempotent, orthogonal to the
    /// rest) and holds about `span / dim` of a random vector's energy; an update no longer
    /// than the span is seen whole.
    #[test]
    fn the_statistics_see_only_the_visible_part() {
        let mut rng = StdRng::seed_from_u64(11);
        let dim = 3_000;
        let shape = StatsShape {
            sketch_length: 64,
            coordinate_samples: 64,
            ..StatsShape::default()
        };
        let random = |rng: &mut StdRng| -> Vec<f64> {
            (0..dim)
                .map(|_| f64::from(rng.gen_range(-1.0f32..1.0)))
                .collect()
        };
        let (x, y) = (random(&mut rng), random(&mut rng));
        let seen = visible_part(&y, shape, 0..dim, 5);
        let unseen: Vec<f64> = y.iter().zip(&seen).map(|(a, b)| a - b).collect();
        let to_update = |v: &[f64]| update(v.iter().map(|&a| a as f32).collect());
        let moved: Vec<f64> = x.iter().zip(&unseen).map(|(a, u)| a + 3.0 * u).collect();
        let (before, after) = (
            UpdateStats::new(&to_update(&x), 1, 0.0, shape, 5),
            UpdateStats::new(&to_update(&moved), 1, 0.0, shape, 5),
        );
        assert_eq!(before.sketch, after.sketch);
        assert_eq!(before.coordinates, after.coordinates);
        assert!(after.l2_norm > 2.0 * before.l2_norm);
        // Another round's projection sees the change.
        assert_ne!(
            UpdateStats::new(&to_update(&x), 1, 0.0, shape, 6).sketch,
            UpdateStats::new(&to_update(&moved), 1, 0.0, shape, 6).sketch
        );
        let twice = visible_part(&seen, shape, 0..dim, 5);
        let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(p, q)| p * q).sum::<f64>();
        let worst = seen
            .iter()
            .zip(&twice)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max);
        assert!(worst < 1e-9, "{worst}");
        assert!(dot(&seen, &unseen).abs() < 1e-9 * dot(&y, &y));
        let share = dot(&seen, &seen) / dot(&y, &y);
        assert!((0.03..0.06).contains(&share), "{share}");
        let short = vec![1.0, -2.0, 3.0];
        assert_eq!(visible_part(&short, shape, 0..3, 5), short);
        assert_eq!(visible_part(&[], shape, 0..0, 5), Vec::<f64>::new());
    }

    #[test]
    fn coordinates_are_the_updates_values_at_positions_drawn_with_a_seed() {
        // Value i at position i, so a sampled value names its position.
        let values: Vec<f32> = (0..1000).map(|i| i as f32 * 1e-3).collect();
        let u = update(values.clone());
        let a = nano_coordinates(&u, 256, EVERY, 7);
        assert_eq!(a.len(), 256);
        assert_eq!(a, nano_coordinates(&u, 256, EVERY, 7));
        assert_ne!(a, nano_coordinates(&u, 256, EVERY, 8));
        for nano in &a {
            let position = (*nano as f64 / 1e6).round() as usize;
            assert_eq!(*nano, fixed::saturating_nano(f64::from(values[position])));
        }
        // Positions spread over both tensors, with few repeats.
        let positions: std::collections::BTreeSet<i64> = a.iter().copied().collect();
        assert!(positions.len() > 200, "{} distinct", positions.len());
        assert!(a.iter().any(|v| *v < 500_000_000) && a.iter().any(|v| *v >= 500_000_000));
        // Known answer (SplitMix64 from 7 ^ 0x636F6F7264696E61, computed independently): the
        // first positions drawn with seed 7 are 379, 939, 967, 857.
        let first: Vec<i64> = [379, 939, 967, 857]
            .iter()
            .map(|&i| fixed::saturating_nano(f64::from(values[i])))
            .collect();
        assert_eq!(a[..4], first[..]);
        // An empty tensor holds no position: the same values with one in the middle.
        let mut with_empty = u.clone();
        with_empty.tensors.insert("a0".into(), (vec![0], vec![]));
        assert_eq!(nano_coordinates(&with_empty, 256, EVERY, 7), a);
        assert_eq!(coordinates(&u, 0, EVERY, 7), Coordinates::default());
        assert_eq!(
            coordinates(&Update::default(), 3, EVERY, 7).nano(),
            vec![0, 0, 0]
        );
        // Committed quantized: steps of the largest value over 127, each within half a step.
        let committed = coordinates(&u, 256, EVERY, 7);
        assert_eq!(committed, Coordinates::quantize(&a));
        let largest = a.iter().map(|v| v.unsigned_abs()).max().unwrap();
        assert_eq!(committed.step_nano(), largest.div_ceil(127));
        for (back, nano) in committed.nano().iter().zip(&a) {
            assert!(back.abs_diff(*nano) <= committed.step_nano() / 2);
        }
        let shape = StatsShape {
            sketch_length: 8,
            coordinate_samples: 5,
            ..StatsShape::default()
        };
        // Commitments sample the same positions in every round; the sketch changes with it.
        let round7 = UpdateStats::new(&u, 1, 0.0, shape, 7);
        let round8 = UpdateStats::new(&u, 1, 0.0, shape, 8);
        assert_eq!(
            round7.coordinates,
            coordinates(&u, 5, EVERY, COORDINATE_SEED)
        );
        assert_eq!(round7.coordinates, round8.coordinates);
        assert_ne!(round7.sketch, round8.sketch);
    }

    /// The head's scope draws every position among the `classifier.*` tensors, which lie
    /// together between the others in name order, and as many distinct ones as every value's
    /// scope would among as many values; every value's scope draws where it always did; an
    /// update without a head has no values in the head's scope, which `check` says.
    #[test]
    fn the_heads_scope_samples_the_classifier_tensors_alone() {
        let mut u = Update::default();
        let filled = |len: usize, from: usize| -> Vec<f32> {
            (from..from + len).map(|i| i as f32 * 1e-3).collect()
        };
        // Flattened in name order: `a` 0..500, `classifier.bias` 500..505,
        // `classifier.weight` 505..905, `encoder` 905..1905.
        u.tensors.insert("a".into(), (vec![500], filled(500, 0)));
        u.tensors
            .insert("classifier.bias".into(), (vec![5], filled(5, 500)));
        u.tensors
            .insert("classifier.weight".into(), (vec![5, 80], filled(400, 505)));
        u.tensors
            .insert("encoder".into(), (vec![1000], filled(1000, 905)));
        assert_eq!(scope_range(&u, HEAD), Some(500..905));
        assert_eq!(scope_range(&u, EVERY), Some(0..1905));
        let at = |scope| nano_coordinates(&u, 256, scope, 7);
        let head: std::collections::BTreeSet<i64> = at(HEAD).into_iter().collect();
        for nano in &head {
            let position = (*nano as f64 / 1e6).round() as usize;
            assert!((500..905).contains(&position), "position {position}");
        }
        assert!(head.len() > 180, "{} distinct of 256", head.len());
        // The same draws as every value's scope over an update of the head alone.
        let mut alone = Update::default();
        alone
            .tensors
            .insert("classifier.bias".into(), (vec![5], filled(5, 0)));
        alone
            .tensors
            .insert("classifier.weight".into(), (vec![5, 80], filled(400, 5)));
        // `alone`'s tensors 0 and 1 are `u`'s 1 and 2.
        let shifted: Vec<(usize, usize)> = sampled_positions(&alone, 256, EVERY, 7)
            .unwrap()
            .into_iter()
            .map(|(t, i)| (t + 1, i))
            .collect();
        assert_eq!(sampled_positions(&u, 256, HEAD, 7).unwrap(), shifted);
        assert_eq!(
            nano_coordinates(&alone, 256, HEAD, 7),
            nano_coordinates(&alone, 256, EVERY, 7)
        );
        // Without a head.
        let mut headless = u.clone();
        headless
            .tensors
            .retain(|name, _| !name.starts_with(HEAD_PREFIX));
        assert_eq!(scope_range(&headless, HEAD), None);
        assert_eq!(coordinates(&headless, 3, HEAD, 7).nano(), vec![0, 0, 0]);
        let shape = StatsShape {
            coordinate_samples: 3,
            coordinate_scope: HEAD,
            ..StatsShape::default()
        };
        assert_eq!(shape.check(&u), Ok(()));
        let error = shape.check(&headless).unwrap_err();
        assert!(error.contains("no tensor named classifier.*"), "{error}");
        assert_eq!(
            StatsShape {
                coordinate_samples: 0,
                ..shape
            }
            .check(&headless),
            Ok(())
        );
        // The consortium's parameters carry the scope.
        let params = pb::ConsortiumParams {
            coordinate_samples: 3,
            coordinate_scope: HEAD,
            ..Default::default()
        };
        assert_eq!(StatsShape::of(&params).coordinate_scope, HEAD);
        assert_eq!(StatsShape::committed(&params).coordinate_scope, HEAD);
        // What the statistics see of a flattened update: positions in the head's range only.
        let values: Vec<f64> = u.flattened();
        let shape = StatsShape {
            coordinate_samples: 64,
            coordinate_scope: HEAD,
            ..StatsShape::default()
        };
        let seen = visible_part(&values, shape, 500..905, 3);
        for (i, (v, x)) in seen.iter().zip(&values).enumerate() {
            if !(500..905).contains(&i) {
                assert_eq!(*v, 0.0, "value {i} ({x}) seen outside the head");
            }
        }
    }
}
