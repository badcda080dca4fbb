//! The modified z-score of Iglewicz and Hoaglin (1993), with a relative floor on the scale.
//!
//! For one feature column `x`, with `med` its median and `s` its robust scale
//! ([`super::stats::robust_scale`]):
//!
//! ```text
//! M_i = (x_i - med) / s,   s = max(MAD / 0.6745, 0.05 |med|, floor)    (MAD > 0)
//!                          s = max(1.253314 * MeanAD, 0.05 |med|, floor)   (MAD = 0)
//! M_i = 0                  when s = 0 (every value equals a median of 0)
//! ```
//!
//! `floor` is the feature's own floor ([`super::features::scale_floor`]): 0 for every feature
//! but the coordinate sign balance, whose honest spread is known from its sampling, and the
//! previous-change distance, a fifth of its median. With `AnomalyConfig.count_copies_once`,
//! `med` and `s` come from the members with distinct sketches (copies counted once,
//! [`super::MemberData::copies`]); every member is scored against them.
//!
//! Without the floor this is Iglewicz and Hoaglin's `0.6745 (x - med) / MAD`, with their
//! mean-absolute-deviation fallback when more than half the values are equal. The floor (5 % of
//! the median's magnitude) matters when honest members are nearly identical, as with equal IID
//! shards, whose update norms lie within a few per cent of each other: without it, a member 9 %
//! below the median norm scored beyond 3.5 on real training runs. With it, a value must differ
//! from the median by more than `threshold x 5 %` of the median (17.5 % at the default 3.5) to
//! be flagged. A member is flagged when `|M| > threshold` (3.5 by default) on any configured
//! feature; its score is the `M` of largest magnitude over the features (the first such feature
//! on a tie). The score is invariant under positive scaling of a column.
//!
//! ```
//! use bcfl_processor::anomaly::zscore::modified_zscores;
//!
//! let z = modified_zscores(&[1.0, 2.0, 3.0, 4.0, 100.0]);
//! assert_eq!(z[2], 0.0);
//! assert!(z[4] > 3.5 && z[3] < 3.5);
//! // Norms within a few per cent of each other: nobody is flagged.
//! let z = modified_zscores(&[1.10, 1.09, 1.11, 1.10, 1.12, 1.00]);
//! assert!(z.iter().all(|m| m.abs() < 3.5));
//! ```

use super::stats::{robust_standardize, Column};
pub use super::stats::{MAD_CONSTANT, MEAN_AD_CONSTANT};

/// The default flagging threshold of Iglewicz and Hoaglin.
pub const DEFAULT_THRESHOLD: f64 = 3.5;

/// The modified z-score of every value of one column, in input order: the column robustly
/// standardized ([`super::stats::robust_standardize`]) without an absolute floor.
pub fn modified_zscores(values: &[f64]) -> Vec<f64> {
    robust_standardize(values, 0.0)
}

/// The outcome for one member over several feature columns.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ZScoreOutcome {
    /// The score of largest magnitude over the features.
    pub score: f64,
    /// Whether any feature's `|score|` exceeds the threshold.
    pub flagged: bool,
}

/// Scores `columns` (each one feature, one value per member, same member order, standardized
/// with its own floor and the median and scale of the members it counts,
/// [`Column::robust_standardized`]) and flags members whose `|M|` exceeds `threshold` in any
/// column. No column gives every member score 0, unflagged.
pub fn score_columns(columns: &[Column], members: usize, threshold: f64) -> Vec<ZScoreOutcome> {
    let mut out = vec![
        ZScoreOutcome {
            score: 0.0,
            flagged: false
        };
        members
    ];
    for column in columns {
        for (slot, z) in out.iter_mut().zip(column.robust_standardized()) {
            if z.abs() > slot.score.abs() {
                slot.score = z;
            }
            if z.abs() > threshold {
                slot.flagged = true;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_answer_with_mad() {
        // median 3, deviations 2,1,0,1,97 -> MAD 1: M = 0.6745 (x - 3).
        let z = modified_zscores(&[1.0, 2.0, 3.0, 4.0, 100.0]);
        let expected = [-1.349, -0.6745, 0.0, 0.6745, 0.6745 * 97.0];
        for (got, want) in z.iter().zip(expected) {
            assert!((got - want).abs() < 1e-12, "{z:?}");
        }
    }

    #[test]
    fn mad_zero_falls_back_to_mean_absolute_deviation() {
        // median 5, deviations 0,0,0,0,5 -> MAD 0, MeanAD 1.
        let z = modified_zscores(&[5.0, 5.0, 5.0, 5.0, 10.0]);
        assert_eq!(z[0], 0.0);
        assert_eq!(z[4], 5.0 / 1.253314);
        assert!(z[4] > DEFAULT_THRESHOLD);
    }

    #[test]
    fn the_relative_floor_keeps_small_deviations_unflagged() {
        // MAD 0.01 would put 1.00 at 0.6745 * 0.1 / 0.01 = 6.7; the floor 0.055 gives 1.8.
        let z = modified_zscores(&[1.10, 1.09, 1.11, 1.10, 1.12, 1.00]);
        assert!((z[5] + 0.1 / 0.055).abs() < 1e-9, "{z:?}");
        // A tenfold norm is still far out.
        let z = modified_zscores(&[1.10, 1.09, 1.11, 1.10, 1.12, 11.0]);
        assert!(z[5] > 100.0, "{z:?}");
    }

    #[test]
    fn constant_column_scores_zero() {
        assert_eq!(modified_zscores(&[7.0; 4]), vec![0.0; 4]);
        assert!(modified_zscores(&[]).is_empty());
    }

    #[test]
    fn columns_keep_the_largest_magnitude_and_flag_any() {
        let columns = vec![
            Column::new(vec![1.0, 2.0, 3.0, 4.0, 100.0]),
            Column::new(vec![-50.0, 2.0, 3.0, 4.0, 5.0]),
        ];
        let out = score_columns(&columns, 5, DEFAULT_THRESHOLD);
        assert!(out[0].flagged && out[0].score < -3.5);
        assert!(out[4].flagged && out[4].score > 3.5);
        assert!(!out[1].flagged && !out[2].flagged && !out[3].flagged);
        assert!(score_columns(&[], 2, 3.5).iter().all(|o| !o.flagged));
    }

    #[test]
    fn a_feature_floor_widens_a_scale_its_mad_underestimates() {
        // Sign balances of honest members close together: the MAD (0.01) is under the relative
        // floor (5 % of 1), which puts 1.2 at 4.0 scales; the feature's floor 0.125 (2 / sqrt(256))
        // puts it at 1.6, while a crafted 0.1 stays far out.
        let values = vec![1.0, 1.01, 0.99, 1.01, 0.99, 1.0, 1.2, 0.1];
        let bare = score_columns(&[Column::new(values.clone())], 8, DEFAULT_THRESHOLD);
        assert!((bare[6].score - 4.0).abs() < 1e-12, "{bare:?}");
        assert!(bare[6].flagged && bare[7].flagged);
        let floored = score_columns(
            &[Column {
                floor: 0.125,
                ..Column::new(values)
            }],
            8,
            DEFAULT_THRESHOLD,
        );
        assert!((floored[6].score - 1.6).abs() < 1e-12, "{floored:?}");
        assert!(!floored[6].flagged && floored[7].flagged);
        assert!((floored[7].score + 7.2).abs() < 1e-12);
    }
}
