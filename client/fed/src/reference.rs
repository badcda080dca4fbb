//! The consortium's reference direction for the mislabelled-change method
//! (`MislabelledConfig`, the `REFERENCE_MARGIN` feature): a direction in the space of the
//! trainable tensors along which training on true labels moves a classification head, whatever
//! classes a member's shard holds, and training on wrong labels moves it against.
//!
//! Its row `c` of the head's weight is a direction `r_c`, every other value 0
//! ([`head_reference`]). One step of cross-entropy on rows `(x_i, y_i)` changes row `c` by
//! `η Σ_i (1[y_i = c] - p_c(x_i)) x_i`, `p` the model's probabilities, so the step's dot
//! product with the reference is `η Σ_i (s_{y_i}(x_i) - Σ_c p_c(x_i) s_c(x_i))` with
//! `s_c(x) = r_c · x`: how much the linear classifier `r` agrees with the member's labels,
//! beyond what it agrees with the model's predictions: a classifier that tells the classes
//! apart better on the features members train on sets true labels and shifted ones further
//! apart. Two classifiers, both from a labelled root set the consortium agrees on:
//!
//! - *Class means* ([`class_directions`]), the nearest-centroid classifier: with `μ_c` the mean
//!   feature (the head's input) of class `c`, `μ̄` the mean of those means and `P` the
//!   projection that removes the direction of `μ̄`, `r_c = P (μ_c - μ̄)`. From a head that
//!   predicts every class alike, with `x_i = μ̄ + (μ_{y_i} - μ̄)`, the dot product is
//!   `η Σ_i |P (μ_{y_i} - μ̄)|²`: positive for any mix of true labels, one class alone
//!   included (the property test checks it), since the rows of `r` sum to 0 and `P` removes the
//!   part of every feature that all classes share. Without `P`, a member holding one class `A`
//!   scores `|μ_A - μ̄|² + μ̄ · (μ_A - μ̄)`, below 0 for a class whose mean lies closer to the
//!   origin than the others' along `μ̄`; on the attack benchmark's embeddings (Dirichlet 0.1
//!   shards) the projection cut honest member-rounds below 0 from 7 to 3 of 180. Labels
//!   shifted to another class score `η Σ_i (P d_{y_i}) · (P d_{y_i + 1})`, with
//!   `d_c = μ_c - μ̄`: below 0 where different classes' centred means point apart, as they do
//!   on average (`Σ_{c ≠ A} d_A · d_c = -|d_A|²`).
//! - *A trained classifier* ([`classifier_directions`]): the weight rows `w_c` of a linear
//!   classifier trained on the root set, `r_c = P (w_c - w̄)`, the same centring and projection.
//!   Where the classes' features spread along directions their means do not separate, it
//!   weighs those directions down, as the class means cannot; with rows equal to the class
//!   means it gives the class means' directions.
//!
//! The processor never sees the direction: the consortium stores its values at the sampled
//! coordinates' positions ([`reference_steps`], quantized like a commitment's coordinates),
//! and compares each commitment's sampled coordinates with them. Where members train more than
//! the head (LoRA adapters below it), the positions that fall in the other tensors are marked
//! as outside the reference and left out of the comparison, so that the margin is the cosine of
//! the head's part of the change; [`covered`] counts the positions left to compare (about
//! `count` times the head's share of the trainable values).

use bcfl_processor::anomaly::features::OUTSIDE_REFERENCE;
use bcfl_protos::signed_bytes;

use crate::sketch::{coordinates, sampled_positions, CoordinateScope, COORDINATE_SEED};
use crate::update::Update;
use crate::Error;

/// The reference rows `P (μ_c - μ̄)` of class means `means` (one per class, all of one
/// dimension; see the module docs): the nearest-centroid classifier's directions.
pub fn class_directions(means: &[Vec<f64>]) -> Result<Vec<Vec<f64>>, Error> {
    // The nearest-centroid classifier's rows are the class means.
    classifier_directions(means, means)
}

/// The reference rows of a linear classifier trained on the root set (see the module docs):
/// its weight rows `w_c`, less their mean over the classes, with the part along the class means'
/// centre `μ̄` removed, `r_c = P (w_c - w̄)`. `means` are the root set's class means, as
/// [`class_directions`] takes them; with `weights` equal to `means` the two agree.
pub fn classifier_directions(
    weights: &[Vec<f64>],
    means: &[Vec<f64>],
) -> Result<Vec<Vec<f64>>, Error> {
    let centre = centre_of(means)?;
    let dim = centre.len();
    if weights.len() != means.len() || weights.iter().any(|w| w.len() != dim) {
        return Err(Error::Config(format!(
            "a classifier of {} rows of lengths {:?} for {} class means of {dim} values",
            weights.len(),
            weights.iter().map(Vec::len).collect::<Vec<_>>(),
            means.len()
        )));
    }
    if weights.iter().flatten().any(|v| !v.is_finite()) {
        return Err(Error::Config(
            "the classifier's weights are not finite".into(),
        ));
    }
    let mean = centre_of(weights)?;
    let rows: Vec<Vec<f64>> = weights
        .iter()
        .map(|w| w.iter().zip(&mean).map(|(a, b)| a - b).collect())
        .collect();
    without_centre(rows, &centre, weights)
}

/// The mean of `means` (at least two, of one non-zero dimension, finite).
fn centre_of(means: &[Vec<f64>]) -> Result<Vec<f64>, Error> {
    let dim = means.first().map_or(0, Vec::len);
    if means.len() < 2 || dim == 0 || means.iter().any(|m| m.len() != dim) {
        return Err(Error::Config(format!(
            "a reference needs at least two class means of one non-zero dimension, got {} of \
             lengths {:?}",
            means.len(),
            means.iter().map(Vec::len).collect::<Vec<_>>()
        )));
    }
    if let Some(c) = means.iter().position(|m| m.iter().any(|v| !v.is_finite())) {
        return Err(Error::Config(format!("class {c}'s mean is not finite")));
    }
    let k = means.len() as f64;
    Ok((0..dim)
        .map(|j| means.iter().map(|m| m[j]).sum::<f64>() / k)
        .collect())
}

/// `rows` with the part along `centre` removed (`P`); an error where nothing is left, at the
/// scale of `source` (what the rows came from).
fn without_centre(
    mut rows: Vec<Vec<f64>>,
    centre: &[f64],
    source: &[Vec<f64>],
) -> Result<Vec<Vec<f64>>, Error> {
    let length = centre.iter().map(|v| v * v).sum::<f64>().sqrt();
    if length > 0.0 {
        let unit: Vec<f64> = centre.iter().map(|v| v / length).collect();
        for row in &mut rows {
            let along: f64 = row.iter().zip(&unit).map(|(a, u)| a * u).sum();
            row.iter_mut().zip(&unit).for_each(|(a, u)| *a -= along * u);
        }
    }
    // Rounding leaves about 1e-16 of the scale where the rows lie along the centre alone.
    let scale = source.iter().flatten().fold(1.0f64, |a, v| a.max(v.abs()));
    if rows.iter().flatten().all(|v| v.abs() <= 1e-9 * scale) {
        return Err(Error::Config(
            "the classes differ only along their common mean: no reference".into(),
        ));
    }
    Ok(rows)
}

/// The reference in the layout of `template` (the consortium's trainable tensors): the tensor
/// `weight` (shape `[classes, dim]`) holds the reference rows `rows` ([`class_directions`] or
/// [`classifier_directions`]), every other tensor zeros.
pub fn head_reference(template: &Update, weight: &str, rows: &[Vec<f64>]) -> Result<Update, Error> {
    let (classes, dim) = (rows.len(), rows.first().map_or(0, Vec::len));
    match template.tensors.get(weight) {
        Some((shape, _)) if *shape == [classes, dim] => {}
        Some((shape, _)) => {
            return Err(Error::Config(format!(
                "{weight} has shape {shape:?}; {classes} reference rows of {dim} values need \
                 [{classes}, {dim}]"
            )))
        }
        None => return Err(Error::Config(format!("the model has no tensor {weight}"))),
    }
    let mut reference = template.clone();
    for (name, (_, values)) in reference.tensors.iter_mut() {
        if name == weight {
            *values = rows.iter().flatten().map(|&v| v as f32).collect();
        } else {
            values.iter_mut().for_each(|v| *v = 0.0);
        }
    }
    Ok(reference)
}

/// The reference's values at the `count` sampled coordinates in `scope` every commitment
/// carries ([`COORDINATE_SEED`]), one byte a value as `MislabelledConfig.reference_steps` holds
/// them, positions in a tensor the reference leaves at zero (a LoRA adapter's, beside a head) marked
/// [`OUTSIDE_REFERENCE`] so that the margin compares the changes only where the reference
/// looks; an error when it is 0 at every position it covers (the positions miss the head).
pub fn reference_steps(
    reference: &Update,
    count: usize,
    scope: CoordinateScope,
) -> Result<Vec<u8>, Error> {
    let sampled = coordinates(reference, count, scope, COORDINATE_SEED);
    let mut steps = signed_bytes::pack(sampled.steps()).expect("quantized steps lie within 127");
    let covers: Vec<bool> = reference
        .tensors
        .values()
        .map(|(_, v)| v.iter().any(|&x| x != 0.0))
        .collect();
    let at = sampled_positions(reference, count, scope, COORDINATE_SEED).unwrap_or_default();
    for (step, (tensor, _)) in steps.iter_mut().zip(at) {
        if !covers[tensor] {
            *step = OUTSIDE_REFERENCE;
        }
    }
    if covered(&steps) == 0 {
        return Err(Error::Config(format!(
            "the reference is 0 at all {count} sampled coordinates"
        )));
    }
    Ok(steps)
}

/// How many of [`reference_steps`]' values the mislabelled-change method compares changes at.
pub use bcfl_processor::anomaly::features::covered_positions as covered;

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use bcfl_processor::anomaly::features::margin_terms;
    use bcfl_protos::bcfl as pb;
    use proptest::prelude::*;

    use super::*;

    const EVERY: CoordinateScope = CoordinateScope::EVERY_TENSOR;

    fn dot(a: &[f64], b: &[f64]) -> f64 {
        a.iter().zip(b).map(|(x, y)| x * y).sum()
    }

    /// Known answer: means (1, 0), (3, 0), (2, 2): centre (2, 2/3); the rows, with the part
    /// along the centre removed, sum to 0 and are orthogonal to it.
    #[test]
    fn class_directions_known_answer() {
        let rows = class_directions(&[vec![1.0, 0.0], vec![3.0, 0.0], vec![2.0, 2.0]]).unwrap();
        let centre = [2.0, 2.0 / 3.0];
        for r in &rows {
            assert!(dot(r, &centre).abs() < 1e-12);
        }
        for j in 0..2 {
            assert!(rows.iter().map(|r| r[j]).sum::<f64>().abs() < 1e-12);
        }
        // d_0 = (-1, -2/3); unit centre (3, 1)/sqrt(10); along = -11/(3 sqrt 10).
        let along = -11.0 / (3.0 * 10f64.sqrt());
        let expected = [
            -1.0 - along * 3.0 / 10f64.sqrt(),
            -2.0 / 3.0 - along / 10f64.sqrt(),
        ];
        assert!(
            (rows[0][0] - expected[0]).abs() < 1e-12 && (rows[0][1] - expected[1]).abs() < 1e-12
        );
        assert!(class_directions(&[vec![1.0]]).is_err());
        assert!(class_directions(&[vec![1.0, 2.0], vec![1.0]]).is_err());
        assert!(class_directions(&[vec![f64::NAN], vec![1.0]]).is_err());
        // Means along one line through the origin differ only along their centre.
        assert!(class_directions(&[vec![1.0, 1.0], vec![2.0, 2.0]]).is_err());
    }

    /// Known answer: weights (2, 1), (0, 1), (1, 4) less their mean (1, 2) are (1, -1),
    /// (-1, -1), (0, 2); the means' centre is (2, 0), so `P` drops the first value. Shapes
    /// that do not match are refused.
    #[test]
    fn classifier_directions_known_answer() {
        let means = [vec![1.0, 1.0], vec![3.0, -1.0], vec![2.0, 0.0]];
        let weights = [vec![2.0, 1.0], vec![0.0, 1.0], vec![1.0, 4.0]];
        let rows = classifier_directions(&weights, &means).unwrap();
        assert_eq!(rows, [vec![0.0, -1.0], vec![0.0, -1.0], vec![0.0, 2.0]]);
        let err = |r: Result<Vec<Vec<f64>>, Error>| r.unwrap_err().to_string();
        assert!(err(classifier_directions(&weights[..2], &means)).contains("a classifier of 2"));
        assert!(err(classifier_directions(
            &[vec![1.0], vec![2.0], vec![3.0]],
            &means
        ))
        .contains("lengths [1, 1, 1]"));
        let nan = [vec![f64::NAN, 0.0], vec![0.0, 1.0], vec![1.0, 0.0]];
        assert!(err(classifier_directions(&nan, &means)).contains("not finite"));
        // Rows that differ only along the centre leave nothing.
        let along = [vec![1.0, 0.0], vec![2.0, 0.0], vec![3.0, 0.0]];
        assert!(err(classifier_directions(&along, &means)).contains("differ only"));
    }

    fn head(classes: usize, dim: usize) -> Update {
        Update {
            tensors: BTreeMap::from([
                ("head.bias".to_string(), (vec![classes], vec![0.5; classes])),
                (
                    "head.weight".to_string(),
                    (vec![classes, dim], vec![1.0; classes * dim]),
                ),
            ]),
        }
    }

    /// The reference in a model's layout, its sampled steps, and the errors a consortium sees.
    #[test]
    fn head_reference_and_its_steps() {
        let means = [vec![1.0, 0.0], vec![3.0, 0.0], vec![2.0, 2.0]];
        let rows = class_directions(&means).unwrap();
        let reference = head_reference(&head(3, 2), "head.weight", &rows).unwrap();
        assert_eq!(reference.tensors["head.bias"].1, vec![0.0; 3]);
        let flat: Vec<f32> = rows.iter().flatten().map(|&v| v as f32).collect();
        assert_eq!(reference.tensors["head.weight"].1, flat);
        let steps = reference_steps(&reference, 64, EVERY).unwrap();
        assert_eq!(steps.len(), 64);
        // The weight's values where the positions fall in it; the bias, all zero, not covered.
        let values = coordinates(&reference, 64, EVERY, COORDINATE_SEED).packed_steps();
        let at = sampled_positions(&reference, 64, EVERY, COORDINATE_SEED).unwrap();
        let in_bias = at.iter().filter(|(t, _)| *t == 0).count();
        assert!(in_bias > 0 && in_bias < 64, "{in_bias}");
        for ((step, value), (tensor, _)) in steps.iter().zip(&values).zip(&at) {
            let expected = if *tensor == 0 {
                OUTSIDE_REFERENCE
            } else {
                *value
            };
            assert_eq!(*step, expected);
        }
        assert_eq!(
            covered(&steps),
            values
                .iter()
                .zip(&at)
                .filter(|(v, (t, _))| **v != 0 && *t == 1)
                .count()
        );
        let err = |r: Result<Update, Error>| r.unwrap_err().to_string();
        assert!(err(head_reference(&head(2, 2), "head.weight", &rows)).contains("need [3, 2]"));
        assert!(err(head_reference(&head(3, 2), "w", &rows)).contains("no tensor w"));
        let zero = head_reference(&head(3, 2), "head.weight", &rows).map(|mut r| {
            r.tensors
                .insert("head.weight".into(), (vec![3, 2], vec![0.0; 6]));
            r
        });
        assert!(reference_steps(&zero.unwrap(), 8, EVERY).is_err());
    }

    proptest! {
        /// Any classifier's directions sum to 0 over the classes and are orthogonal to the
        /// class means' centre; they are those of the class means when its rows are the class
        /// means plus a vector shared by all rows and any multiple of the centre each.
        #[test]
        fn classifier_directions_drop_what_every_class_shares(
            means in prop::collection::vec(prop::collection::vec(-3.0f64..3.0, 5), 2..6),
            weights in prop::collection::vec(prop::collection::vec(-3.0f64..3.0, 5), 6),
            shared in prop::collection::vec(-3.0f64..3.0, 5),
            along in prop::collection::vec(-3.0f64..3.0, 6),
        ) {
            let k = means.len();
            let centre = centre_of(&means).unwrap();
            let Ok(rows) = classifier_directions(&weights[..k], &means) else { return Ok(()) };
            for j in 0..5 {
                prop_assert!(rows.iter().map(|r| r[j]).sum::<f64>().abs() < 1e-9);
            }
            for r in &rows {
                prop_assert!(dot(r, &centre).abs() < 1e-9);
            }
            let Ok(expected) = class_directions(&means) else { return Ok(()) };
            let shifted: Vec<Vec<f64>> = means
                .iter()
                .zip(&along)
                .map(|(m, t)| {
                    m.iter()
                        .zip(&shared)
                        .zip(&centre)
                        .map(|((a, s), c)| a + s + t * c)
                        .collect()
                })
                .collect();
            let got = classifier_directions(&shifted, &means).unwrap();
            for (g, e) in got.iter().flatten().zip(expected.iter().flatten()) {
                prop_assert!((g - e).abs() < 1e-9, "{g} {e}");
            }
        }

        /// From a head that predicts every class alike, one gradient step on true labels (any
        /// mix of classes, one alone included, features at their class means) has a positive
        /// dot product with the reference, and the processor's margin over every coordinate
        /// (each position once, as `margin_terms` compares them) is above 0; a negated step's
        /// below.
        #[test]
        fn true_labels_move_along_the_reference(
            means in prop::collection::vec(prop::collection::vec(-3.0f64..3.0, 6), 2..6),
            labels in prop::collection::vec(0usize..6, 1..30),
        ) {
            let k = means.len();
            let labels: Vec<usize> = labels.iter().map(|l| l % k).collect();
            let Ok(rows) = class_directions(&means) else { return Ok(()) };
            let mut step = vec![vec![0.0; 6]; k];
            for &y in &labels {
                for (c, row) in step.iter_mut().enumerate() {
                    let coefficient = f64::from(u8::from(c == y)) - 1.0 / k as f64;
                    for (s, x) in row.iter_mut().zip(&means[y]) {
                        *s += coefficient * x;
                    }
                }
            }
            let along: f64 = step.iter().zip(&rows).map(|(s, r)| dot(s, r)).sum();
            let expected: f64 = labels.iter().map(|&y| dot(&rows[y], &rows[y])).sum();
            prop_assert!((along - expected).abs() <= 1e-9 * expected.max(1.0));
            // Quantized as commitments carry them: the margin keeps its sign where the exact
            // cosine is not within the rounding (a few hundredths) of 0.
            let quantize = |v: &[f64]| {
                let nano: Vec<i64> = v.iter().map(|x| bcfl_processor::fixed::saturating_nano(*x)).collect();
                bcfl_processor::statistics::Coordinates::quantize(&nano)
            };
            let flat_step: Vec<f64> = step.iter().flatten().copied().collect();
            let flat_rows: Vec<f64> = rows.iter().flatten().copied().collect();
            let norms = dot(&flat_step, &flat_step).sqrt() * dot(&flat_rows, &flat_rows).sqrt();
            prop_assume!(norms > 0.0 && along / norms > 0.05);
            let reference = quantize(&flat_rows).packed_steps();
            let negated: Vec<f64> = flat_step.iter().map(|v| -v).collect();
            let commitments: Vec<pb::Commitment> = [&flat_step, &negated]
                .iter()
                .map(|v| {
                    let q = quantize(v);
                    pb::Commitment {
                        coordinate_step_nano: q.step_nano(),
                        coordinate_steps: q.packed_steps(),
                        ..Default::default()
                    }
                })
                .collect();
            let terms = margin_terms(&commitments, &reference);
            prop_assert!(terms[0].unwrap() > 0 && terms[1].unwrap() < 0, "{terms:?}");
        }
    }
}
