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
//! | coordinates | same length, every value within 1 |
//!
//! The recomputation is deterministic (`f64` sums in a fixed order), so an honest member's
//! numbers match exactly; the tolerance only spares other implementations that sum in another
//! order, and a lie within it cannot move a verdict.
//!
//! ```
//! use bcfl_processor::statistics::{mismatch, Recomputed};
//! use bcfl_protos::bcfl as pb;
//!
//! let committed = pb::Commitment { size_bytes: 10, norm_micro: 2_000_000, sketch: vec![5, -3], ..Default::default() };
//! let honest = Recomputed { size_bytes: 10, norm_micro: 2_000_001, sketch: vec![5, -2], coordinates: vec![] };
//! assert_eq!(mismatch(&committed, &honest), None);
//! let shrunk = Recomputed { norm_micro: 9_000_000, ..honest };
//! assert_eq!(mismatch(&committed, &shrunk), Some(pb::StatMismatch::NORM));
//! ```

use bcfl_protos::bcfl as pb;

/// Statistics recomputed from a fetched blob.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Recomputed {
    /// The blob's size in bytes.
    pub size_bytes: u64,
    /// The update's L2 norm in micro-units.
    pub norm_micro: u64,
    /// The update's sketch.
    pub sketch: Vec<i32>,
    /// The update's sampled coordinates (nano-units).
    pub coordinates: Vec<i64>,
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

/// Whether two coordinate samples agree within the tolerance.
pub fn coordinates_match(committed: &[i64], recomputed: &[i64]) -> bool {
    committed.len() == recomputed.len()
        && committed
            .iter()
            .zip(recomputed)
            .all(|(a, b)| a.abs_diff(*b) <= 1)
}

/// The first statistic (size, norm, sketch, coordinates) of `commitment` that `recomputed`
/// contradicts.
pub fn mismatch(commitment: &pb::Commitment, recomputed: &Recomputed) -> Option<pb::StatMismatch> {
    if commitment.size_bytes != recomputed.size_bytes {
        Some(pb::StatMismatch::SIZE)
    } else if !norm_matches(commitment.norm_micro, recomputed.norm_micro) {
        Some(pb::StatMismatch::NORM)
    } else if !sketch_matches(&commitment.sketch, &recomputed.sketch) {
        Some(pb::StatMismatch::SKETCH)
    } else if !coordinates_match(&commitment.coordinates, &recomputed.coordinates) {
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
        pb::StatMismatch::SKETCH => !sketch_matches(&commitment.sketch, &recomputed.sketch),
        pb::StatMismatch::COORDINATES => {
            !coordinates_match(&commitment.coordinates, &recomputed.coordinates)
        }
        pb::StatMismatch::STAT_MISMATCH_UNSET => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn commitment(size: u64, norm: u64, sketch: Vec<i32>) -> pb::Commitment {
        pb::Commitment {
            size_bytes: size,
            norm_micro: norm,
            sketch,
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
            coordinates: vec![],
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
        assert!(coordinates_match(&[], &[]));
        assert!(coordinates_match(&[i64::MIN, 7], &[i64::MIN + 1, 6]));
        assert!(!coordinates_match(&[7], &[9]));
        assert!(!coordinates_match(&[7], &[7, 0]));
        let sampled = pb::Commitment {
            coordinates: vec![-3, 5],
            ..c.clone()
        };
        let moved = Recomputed {
            coordinates: vec![-3, 500],
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
                coordinates: vec![-2, 5],
                ..moved
            }
        ));
    }

    proptest! {
        /// A statistic always matches itself, and `mismatch` names a statistic exactly when
        /// that statistic contradicts.
        #[test]
        fn mismatch_agrees_with_contradicts(
            size in 0u64..10, norm in 0u64..u64::MAX / 2, dn in -3i64..3,
            sketch in proptest::collection::vec(-5i32..5, 0..4),
            other in proptest::collection::vec(-5i32..5, 0..4),
        ) {
            let c = commitment(size, norm, sketch.clone());
            let same = Recomputed { size_bytes: size, norm_micro: norm, sketch: sketch.clone(), coordinates: vec![] };
            prop_assert_eq!(mismatch(&c, &same), None);
            let moved = Recomputed {
                size_bytes: size,
                norm_micro: norm.saturating_add_signed(dn),
                sketch: other,
                coordinates: vec![],
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
