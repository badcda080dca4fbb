//! When a commitment's statistics describe its blob: the one tolerance that the aggregator's
//! recomputation, the processor's check of a `DisputeCommitment` and the verifier committee use.
//!
//! A member commits its update's size, L2 norm (micro-units), sketch and, when the consortium
//! samples them, coordinates (nano-units); the anomaly methods score those numbers, so a member
//! that reports an honest-looking norm for a hostile update would slip past them. Whoever
//! fetches the blob recomputes them (the client's `bcfl_fed::sketch`, on the update minus its
//! base model) and compares:
//!
//! | statistic | matches when |
//! | --- | --- |
//! | size | equal |
//! | norm | `|committed - recomputed| <= 1 + max(committed, recomputed) / 10^6` (one micro-unit and one part per million) |
//! | sketch | same length, every value within 1 |
//! | coordinates | same length, steps within 1 nano-unit, every value within 1 step |
//!
//! The recomputation is deterministic (`f64` sums in a fixed order), so an honest member's
//! numbers match exactly; the tolerance only spares other implementations that sum or round in
//! another order, and a lie within it moves a value by no more than one rounding step.
//!
//! Sampled coordinates travel and are stored compactly ([`Coordinates`]): a step in nano-units,
//! the largest magnitude over [`COORDINATE_STEPS_MAX`] (127) rounded up, and each value as a
//! whole number of steps, so a value takes one or two bytes on the ledger instead of the three
//! to five of its nano-units. The rounding moves a value by at most half a step (about 1/254 of
//! the largest); the anomaly features read the values back as nano-units ([`Coordinates::nano`]).
//!
//! ```
//! use bcfl_processor::statistics::{mismatch, Recomputed};
//! use bcfl_protos::bcfl as pb;
//! use bcfl_protos::signed_bytes::pack;
//!
//! let committed = pb::Commitment { size_bytes: 10, norm_micro: 2_000_000, sketch: pack(&[5, -3]).unwrap(), ..Default::default() };
//! let honest = Recomputed { size_bytes: 10, norm_micro: 2_000_001, sketch: vec![5, -2], ..Default::default() };
//! assert_eq!(mismatch(&committed, &honest), None);
//! let shrunk = Recomputed { norm_micro: 9_000_000, ..honest };
//! assert_eq!(mismatch(&committed, &shrunk), Some(pb::StatMismatch::NORM));
//! ```

use bcfl_protos::bcfl as pb;
use bcfl_protos::signed_bytes;

/// Statistics recomputed from a fetched blob.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Recomputed {
    /// The blob's size in bytes.
    pub size_bytes: u64,
    /// The update's L2 norm in micro-units.
    pub norm_micro: u64,
    /// The update's sketch.
    pub sketch: Vec<i32>,
    /// The update's sampled coordinates.
    pub coordinates: Coordinates,
}

/// The largest magnitude of a sketch's values: one byte each on the ledger
/// ([`bcfl_protos::signed_bytes`]).
pub const SKETCH_MAX: i32 = 127;

/// A sketch from its raw projection: scaled so that the largest magnitude is [`SKETCH_MAX`] and
/// rounded (all zeros stay zeros; so does a projection with a non-finite value). The members'
/// sketches and the synthetic rounds' are made by it.
pub fn scaled_sketch(projection: &[f64]) -> Vec<i32> {
    let max = projection.iter().fold(0f64, |m, v| m.max(v.abs()));
    if max == 0.0 || !max.is_finite() {
        return vec![0; projection.len()];
    }
    projection
        .iter()
        .map(|v| (v / max * f64::from(SKETCH_MAX)).round() as i32)
        .collect()
}

/// The largest magnitude of a sampled coordinate's steps ([`Coordinates`]): like the sketch's
/// values, one byte on the ledger ([`bcfl_protos::signed_bytes`]); -128 is refused so that the
/// range is symmetric.
pub const COORDINATE_STEPS_MAX: i32 = 127;

/// The largest step (nano-units): what [`Coordinates::quantize`] takes for `i64::MIN` (127 such
/// steps saturate at the ends of `i64` when read back).
pub const MAX_COORDINATE_STEP_NANO: u64 = (1u64 << 63).div_ceil(COORDINATE_STEPS_MAX as u64);

/// Sampled coordinates as a commitment carries them: value `i` is `steps[i] x step_nano`
/// nano-units, `|steps[i]| <= 127`; the step is 0 exactly when there are no steps.
///
/// ```
/// use bcfl_processor::statistics::Coordinates;
///
/// let c = Coordinates::quantize(&[1_270, -300, 4]);
/// assert_eq!((c.step_nano(), c.steps()), (10, &[127, -30, 0][..]));
/// assert_eq!(c.nano(), vec![1_270, -300, 0]);
/// assert!(Coordinates::new(10, vec![128]).is_err());
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Coordinates {
    step_nano: u64,
    steps: Vec<i32>,
}

impl Coordinates {
    /// `nano` (values in nano-units) in steps of the largest magnitude over 127, rounded up (1
    /// when all are 0), each value rounded half away from zero to a whole number of steps.
    pub fn quantize(nano: &[i64]) -> Self {
        if nano.is_empty() {
            return Self::default();
        }
        let largest = nano.iter().map(|v| v.unsigned_abs()).max().unwrap_or(0);
        let step = largest.div_ceil(COORDINATE_STEPS_MAX as u64).max(1);
        let steps = nano
            .iter()
            .map(|&v| {
                // Half away from zero on the magnitude; at most 127 since |v| <= 127 x step.
                let magnitude =
                    (2 * u128::from(v.unsigned_abs()) + u128::from(step)) / (2 * u128::from(step));
                let magnitude = magnitude as i32;
                if v < 0 {
                    -magnitude
                } else {
                    magnitude
                }
            })
            .collect();
        Self {
            step_nano: step,
            steps,
        }
    }

    /// Coordinates from a payload's step and steps, or why they are not: a step of 0 exactly
    /// without steps, at most [`MAX_COORDINATE_STEP_NANO`], every step within 127.
    pub fn new(step_nano: u64, steps: Vec<i32>) -> Result<Self, String> {
        if steps.is_empty() != (step_nano == 0) {
            return Err(format!(
                "the step must be 0 exactly when there are no steps (step {step_nano}, {} steps)",
                steps.len()
            ));
        }
        if step_nano > MAX_COORDINATE_STEP_NANO {
            return Err(format!(
                "the step must be at most {MAX_COORDINATE_STEP_NANO} nano-units, got {step_nano}"
            ));
        }
        if let Some(s) = steps
            .iter()
            .find(|s| s.unsigned_abs() > COORDINATE_STEPS_MAX as u32)
        {
            return Err(format!(
                "every step must be within {COORDINATE_STEPS_MAX} in magnitude, got {s}"
            ));
        }
        Ok(Self { step_nano, steps })
    }

    /// The coordinates a stored commitment carries (checked when it was committed).
    pub fn of_commitment(commitment: &pb::Commitment) -> Self {
        Self {
            step_nano: commitment.coordinate_step_nano,
            steps: signed_bytes::unpack(&commitment.coordinate_steps),
        }
    }

    /// The steps one byte each, as payloads and state carry them.
    pub fn packed_steps(&self) -> Vec<u8> {
        signed_bytes::pack(&self.steps).expect("every step lies within 127 in magnitude")
    }

    /// The step, nano-units (0 without coordinates).
    pub fn step_nano(&self) -> u64 {
        self.step_nano
    }

    /// The values in steps.
    pub fn steps(&self) -> &[i32] {
        &self.steps
    }

    /// How many coordinates.
    pub fn len(&self) -> usize {
        self.steps.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// The values in nano-units, saturating at the ends of `i64` (only steps of nearly
    /// [`MAX_COORDINATE_STEP_NANO`] reach them).
    pub fn nano(&self) -> Vec<i64> {
        let step = i64::try_from(self.step_nano).unwrap_or(i64::MAX);
        self.steps
            .iter()
            .map(|&s| i64::from(s).saturating_mul(step))
            .collect()
    }
}

/// Whether two norms (micro-units) agree within the tolerance.
pub fn norm_matches(committed: u64, recomputed: u64) -> bool {
    committed.abs_diff(recomputed) <= 1 + committed.max(recomputed) / 1_000_000
}

/// Whether two sketches agree within the tolerance.
pub fn sketch_matches(committed: &[i32], recomputed: &[i32]) -> bool {
    committed.len() == recomputed.len()
        && committed
            .iter()
            .zip(recomputed)
            .all(|(a, b)| i64::from(*a).abs_diff(i64::from(*b)) <= 1)
}

/// Whether two coordinate samples agree within the tolerance: as many, steps within 1
/// nano-unit of each other, every value within 1 step.
pub fn coordinates_match(committed: &Coordinates, recomputed: &Coordinates) -> bool {
    committed.len() == recomputed.len()
        && committed.step_nano.abs_diff(recomputed.step_nano) <= 1
        && committed
            .steps
            .iter()
            .zip(&recomputed.steps)
            .all(|(a, b)| a.abs_diff(*b) <= 1)
}

/// The first statistic (size, norm, sketch, coordinates) of `commitment` that `recomputed`
/// contradicts.
pub fn mismatch(commitment: &pb::Commitment, recomputed: &Recomputed) -> Option<pb::StatMismatch> {
    if commitment.size_bytes != recomputed.size_bytes {
        Some(pb::StatMismatch::SIZE)
    } else if !norm_matches(commitment.norm_micro, recomputed.norm_micro) {
        Some(pb::StatMismatch::NORM)
    } else if !sketch_matches(&commitment.sketch_values(), &recomputed.sketch) {
        Some(pb::StatMismatch::SKETCH)
    } else if !coordinates_match(
        &Coordinates::of_commitment(commitment),
        &recomputed.coordinates,
    ) {
        Some(pb::StatMismatch::COORDINATES)
    } else {
        None
    }
}

/// Whether `statistic` of `commitment` contradicts `recomputed` (`MALFORMED` always does: the
/// blob recomputes nothing).
pub fn contradicts(
    commitment: &pb::Commitment,
    statistic: pb::StatMismatch,
    recomputed: &Recomputed,
) -> bool {
    match statistic {
        pb::StatMismatch::MALFORMED => true,
        pb::StatMismatch::SIZE => commitment.size_bytes != recomputed.size_bytes,
        pb::StatMismatch::NORM => !norm_matches(commitment.norm_micro, recomputed.norm_micro),
        pb::StatMismatch::SKETCH => {
            !sketch_matches(&commitment.sketch_values(), &recomputed.sketch)
        }
        pb::StatMismatch::COORDINATES => !coordinates_match(
            &Coordinates::of_commitment(commitment),
            &recomputed.coordinates,
        ),
        pb::StatMismatch::STAT_MISMATCH_UNSET => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn sketches_are_scaled_to_a_largest_magnitude_of_127() {
        assert_eq!(scaled_sketch(&[2.0, -1.0, 0.5]), vec![127, -64, 32]);
        assert_eq!(scaled_sketch(&[-0.001, 0.0002]), vec![-127, 25]);
        assert_eq!(scaled_sketch(&[0.0, 0.0]), vec![0, 0]);
        assert_eq!(scaled_sketch(&[f64::INFINITY, 1.0]), vec![0, 0]);
        assert!(scaled_sketch(&[]).is_empty());
        // Every scaled sketch fits the byte the ledger keeps.
        let sketch = scaled_sketch(&[1e300, -3e299, 7.0]);
        assert!(signed_bytes::pack(&sketch).is_some());
    }

    fn commitment(size: u64, norm: u64, sketch: Vec<i32>) -> pb::Commitment {
        pb::Commitment {
            size_bytes: size,
            norm_micro: norm,
            sketch: crate::testing::packed(&sketch),
            ..Default::default()
        }
    }

    #[test]
    fn known_answers() {
        assert!(norm_matches(0, 1));
        assert!(!norm_matches(0, 2));
        assert!(norm_matches(5_000_000, 5_000_006));
        assert!(!norm_matches(5_000_000, 5_000_007));
        assert!(sketch_matches(&[], &[]));
        assert!(!sketch_matches(&[1], &[1, 0]));
        assert!(sketch_matches(&[i32::MIN], &[i32::MIN + 1]));
        assert!(!sketch_matches(&[i32::MIN], &[i32::MAX]));
        let c = commitment(3, 10, vec![1, 2]);
        let r = |size, norm, sketch: Vec<i32>| Recomputed {
            size_bytes: size,
            norm_micro: norm,
            sketch,
            coordinates: Coordinates::default(),
        };
        assert_eq!(mismatch(&c, &r(3, 10, vec![1, 2])), None);
        assert_eq!(
            mismatch(&c, &r(4, 99, vec![])),
            Some(pb::StatMismatch::SIZE)
        );
        assert_eq!(
            mismatch(&c, &r(3, 99, vec![])),
            Some(pb::StatMismatch::NORM)
        );
        assert_eq!(
            mismatch(&c, &r(3, 10, vec![1, 4])),
            Some(pb::StatMismatch::SKETCH)
        );
        assert!(contradicts(
            &c,
            pb::StatMismatch::MALFORMED,
            &r(3, 10, vec![1, 2])
        ));
        assert!(!contradicts(&c, pb::StatMismatch::SIZE, &r(3, 99, vec![])));
        let steps = |step, steps: Vec<i32>| Coordinates::new(step, steps).unwrap();
        assert!(coordinates_match(
            &Coordinates::default(),
            &Coordinates::default()
        ));
        assert!(coordinates_match(
            &steps(9, vec![-127, 7]),
            &steps(10, vec![-126, 6])
        ));
        assert!(!coordinates_match(&steps(9, vec![7]), &steps(11, vec![7])));
        assert!(!coordinates_match(&steps(9, vec![7]), &steps(9, vec![9])));
        assert!(!coordinates_match(
            &steps(9, vec![7]),
            &steps(9, vec![7, 0])
        ));
        let sampled = pb::Commitment {
            coordinate_step_nano: 4,
            coordinate_steps: crate::testing::packed(&[-3, 5]),
            ..c.clone()
        };
        let moved = Recomputed {
            coordinates: steps(4, vec![-3, 127]),
            ..r(3, 10, vec![1, 2])
        };
        assert_eq!(
            mismatch(&sampled, &moved),
            Some(pb::StatMismatch::COORDINATES)
        );
        assert!(contradicts(&sampled, pb::StatMismatch::COORDINATES, &moved));
        assert!(!contradicts(
            &sampled,
            pb::StatMismatch::COORDINATES,
            &Recomputed {
                coordinates: steps(4, vec![-2, 5]),
                ..moved
            }
        ));
    }

    #[test]
    fn coordinates_are_checked_when_built_from_a_payload() {
        assert_eq!(Coordinates::new(0, vec![]), Ok(Coordinates::default()));
        assert!(Coordinates::new(0, vec![1])
            .unwrap_err()
            .contains("must be 0 exactly"));
        assert!(Coordinates::new(3, vec![])
            .unwrap_err()
            .contains("must be 0 exactly"));
        assert!(Coordinates::new(MAX_COORDINATE_STEP_NANO + 1, vec![1])
            .unwrap_err()
            .contains("at most"));
        assert!(Coordinates::new(1, vec![-128])
            .unwrap_err()
            .contains("within 127"));
        let largest = Coordinates::new(MAX_COORDINATE_STEP_NANO, vec![127, -127]).unwrap();
        assert_eq!(largest.nano(), vec![i64::MAX, i64::MIN]);
        assert_eq!(Coordinates::quantize(&[]), Coordinates::default());
        assert_eq!(Coordinates::quantize(&[0, 0]).steps(), &[0, 0]);
        assert_eq!(Coordinates::quantize(&[0, 0]).step_nano(), 1);
        // Half a step rounds away from zero; the extremes of i64 stay in range.
        assert_eq!(Coordinates::quantize(&[254, 1, -1]).steps(), &[127, 1, -1]);
        assert_eq!(
            Coordinates::quantize(&[1270, 5, -5, 4]).steps(),
            &[127, 1, -1, 0]
        );
        let extreme = Coordinates::quantize(&[i64::MIN, i64::MAX, 0]);
        assert_eq!(extreme.steps(), &[-127, 127, 0]);
        assert!(Coordinates::new(extreme.step_nano(), extreme.steps().to_vec()).is_ok());
    }

    proptest! {
        /// Quantized coordinates are valid, the largest spans at least 64 steps (unless the step
        /// is 1 nano-unit), and each value comes back within half a step.
        #[test]
        fn quantized_coordinates_are_within_half_a_step(
            nano in proptest::collection::vec(any::<i64>(), 1..64),
            shift in 0u32..60,
        ) {
            let nano: Vec<i64> = nano.iter().map(|v| v >> shift).collect();
            let c = Coordinates::quantize(&nano);
            prop_assert_eq!(Coordinates::new(c.step_nano(), c.steps().to_vec()), Ok(c.clone()));
            if c.step_nano() > 1 {
                prop_assert!(c.steps().iter().any(|s| s.abs() >= 64));
            }
            for (back, v) in c.nano().iter().zip(&nano) {
                prop_assert!(2 * i128::from(*back).abs_diff(i128::from(*v)) <= u128::from(c.step_nano()));
            }
        }

        /// A statistic always matches itself, and `mismatch` names a statistic exactly when
        /// that statistic contradicts.
        #[test]
        fn mismatch_agrees_with_contradicts(
            size in 0u64..10, norm in 0u64..u64::MAX / 2, dn in -3i64..3,
            sketch in proptest::collection::vec(-5i32..5, 0..4),
            other in proptest::collection::vec(-5i32..5, 0..4),
        ) {
            let c = commitment(size, norm, sketch.clone());
            let same = Recomputed { size_bytes: size, norm_micro: norm, sketch: sketch.clone(), coordinates: Coordinates::default() };
            prop_assert_eq!(mismatch(&c, &same), None);
            let moved = Recomputed {
                size_bytes: size,
                norm_micro: norm.saturating_add_signed(dn),
                sketch: other,
                coordinates: Coordinates::default(),
            };
            match mismatch(&c, &moved) {
                None => {
                    for s in [pb::StatMismatch::SIZE, pb::StatMismatch::NORM, pb::StatMismatch::SKETCH] {
                        prop_assert!(!contradicts(&c, s, &moved));
                    }
                }
                Some(s) => prop_assert!(contradicts(&c, s, &moved)),
            }
        }
    }
}
