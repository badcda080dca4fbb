//! The modified z-score of Iglewicz and Hoaglin (1993).
//!
//! For one feature column `x`, with `med` its median and `MAD` the median of `|x - med|`:
//!
//! ```text
//! M_i = 0.6745 (x_i - med) / MAD                      when MAD > 0
//! M_i = (x_i - med) / (1.253314 * MeanAD)             when MAD = 0 and MeanAD > 0
//! M_i = 0                                             when every value equals the median
//! ```
//!
//! `MeanAD` is the mean of `|x - med|`; `1.253314 ~ sqrt(pi/2)` makes it estimate the standard
//! deviation of normal data (the fallback Iglewicz and Hoaglin recommend when more than half the
//! values are equal). A member is flagged when `|M| > threshold` (3.5 by default) on any configured
//! feature; its score is the `M` of largest magnitude over the features (the first such feature
//! on a tie). The score is invariant under shifting and positive scaling of a column.
//!
//! ```
//! use bcfl_processor::anomaly::zscore::modified_zscores;
//!
//! let z = modified_zscores(&[1.0, 2.0, 3.0, 4.0, 100.0]);
//! assert_eq!(z[2], 0.0);
//! assert!(z[4] > 3.5 && z[3] < 3.5);
//! ```

use super::stats::{mean, median};

/// The consistency constant of the MAD form: the 0.75 quantile of the standard normal.
pub const MAD_CONSTANT: f64 = 0.6745;

/// The consistency constant of the mean absolute deviation fallback: `sqrt(pi / 2)`.
pub const MEAN_AD_CONSTANT: f64 = 1.253314;

/// The default flagging threshold of Iglewicz and Hoaglin.
pub const DEFAULT_THRESHOLD: f64 = 3.5;

/// The modified z-score of every value of one column, in input order.
pub fn modified_zscores(values: &[f64]) -> Vec<f64> {
    let med = median(values);
    let deviations: Vec<f64> = values.iter().map(|v| (v - med).abs()).collect();
    let mad = median(&deviations);
    if mad > 0.0 {
        return values
            .iter()
            .map(|v| MAD_CONSTANT * (v - med) / mad)
            .collect();
    }
    let mean_ad = mean(&deviations);
    if mean_ad > 0.0 {
        let denominator = MEAN_AD_CONSTANT * mean_ad;
        values.iter().map(|v| (v - med) / denominator).collect()
    } else {
        vec![0.0; values.len()]
    }
}

/// The outcome for one member over several feature columns.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ZScoreOutcome {
    /// The score of largest magnitude over the features.
    pub score: f64,
    /// Whether any feature's `|score|` exceeds the threshold.
    pub flagged: bool,
}

/// Scores `columns` (each one feature, one value per member, same member order) and flags members
/// whose `|M|` exceeds `threshold` in any column. No column gives every member score 0, unflagged.
pub fn score_columns(columns: &[Vec<f64>], members: usize, threshold: f64) -> Vec<ZScoreOutcome> {
    let mut out = vec![
        ZScoreOutcome {
            score: 0.0,
            flagged: false
        };
        members
    ];
    for column in columns {
        for (slot, z) in out.iter_mut().zip(modified_zscores(column)) {
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
        // median 3, deviations 2,1,0,1,97 -> MAD 1.
        let z = modified_zscores(&[1.0, 2.0, 3.0, 4.0, 100.0]);
        assert_eq!(z, vec![-1.349, -0.6745, 0.0, 0.6745, 0.6745 * 97.0]);
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
    fn constant_column_scores_zero() {
        assert_eq!(modified_zscores(&[7.0; 4]), vec![0.0; 4]);
        assert!(modified_zscores(&[]).is_empty());
    }

    #[test]
    fn columns_keep_the_largest_magnitude_and_flag_any() {
        let columns = vec![
            vec![1.0, 2.0, 3.0, 4.0, 100.0],
            vec![-50.0, 2.0, 3.0, 4.0, 5.0],
        ];
        let out = score_columns(&columns, 5, DEFAULT_THRESHOLD);
        assert!(out[0].flagged && out[0].score < -3.5);
        assert!(out[4].flagged && out[4].score > 3.5);
        assert!(!out[1].flagged && !out[2].flagged && !out[3].flagged);
        assert!(score_columns(&[], 2, 3.5).iter().all(|o| !o.flagged));
    }
}
