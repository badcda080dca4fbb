//! Deterministic order statistics and moments over `f64` slices.
//!
//! Every function here fixes its order of operations (sums run left to right over the input as
//! given, sorting uses [`f64::total_cmp`]) and uses only IEEE-754 correctly rounded operations
//! (`+ - * /`, `sqrt`, `round`), so the same input gives bit-identical output on every platform;
//! the logarithm ([`ln`]) is computed from those too.
//! Rust never contracts `a * b + c` into a fused multiply-add on its own, so no FMA creeps in.

use std::borrow::Cow;

/// The median of `values`: the middle value, or the mean of the two middle values for an even
/// count; `0.0` for an empty slice.
pub fn median(values: &[f64]) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let mid = sorted.len() / 2;
    if sorted.len() % 2 == 1 {
        sorted[mid]
    } else {
        sorted[mid - 1] / 2.0 + sorted[mid] / 2.0
    }
}

/// The arithmetic mean, summed left to right; `0.0` for an empty slice.
pub fn mean(values: &[f64]) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.iter().fold(0.0, |acc, v| acc + v) / values.len() as f64
}

/// The population standard deviation (divisor `n`), from the mean; `0.0` for an empty slice.
pub fn population_std(values: &[f64]) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let m = mean(values);
    let ss = values.iter().fold(0.0, |acc, v| {
        let d = v - m;
        acc + d * d
    });
    (ss / values.len() as f64).sqrt()
}

/// The natural logarithm of `x`, from IEEE-754 operations alone, so that every platform
/// computes the same bits (`f64::ln` calls the platform's maths library, which need not round
/// alike everywhere). `x = m 2^e` with `m` in `[sqrt(1/2), sqrt(2))` read from the bits, then
/// `ln m = 2 atanh(t)`, `t = (m - 1) / (m + 1)`, `|t| < 0.172`, summed to the 25th power (the
/// next term is below `10^-20`), and `e ln 2` added. Within a few units in the last place of the
/// exact value. `-inf` for 0, NaN for negative values and NaN, `inf` for `inf`.
pub fn ln(x: f64) -> f64 {
    if x.is_nan() || x < 0.0 {
        return f64::NAN;
    }
    if x == 0.0 {
        return f64::NEG_INFINITY;
    }
    if x.is_infinite() {
        return f64::INFINITY;
    }
    // Subnormals: scale into the normal range first (exact).
    let (x, shift) = if x < f64::MIN_POSITIVE {
        (x * 2f64.powi(54), -54)
    } else {
        (x, 0)
    };
    let bits = x.to_bits();
    let mut exponent = ((bits >> 52) & 0x7ff) as i32 - 1023 + shift;
    let mut m = f64::from_bits((bits & ((1u64 << 52) - 1)) | (1023u64 << 52));
    if m > std::f64::consts::SQRT_2 {
        m /= 2.0;
        exponent += 1;
    }
    let t = (m - 1.0) / (m + 1.0);
    let t2 = t * t;
    // 1 + t²/3 + t⁴/5 + ... + t²⁴/25, by Horner's rule from the innermost term.
    let mut series = 0.0;
    for k in (1..=12).rev() {
        series = (series + 1.0 / f64::from(2 * k + 1)) * t2;
    }
    f64::from(exponent) * std::f64::consts::LN_2 + 2.0 * t * (1.0 + series)
}

/// Siegel's repeated median line through `points` (`(x, y)` pairs): the slope `b` is the median
/// over the points `i` of the median over the points `j` with `x_j != x_i` of the slope
/// `(y_i - y_j) / (x_i - x_j)` (points without such a `j` left out), the intercept `a` the
/// median of `y_i - b x_i`; `(a, b)`. Half the points less one can lie anywhere without carrying
/// the line off (Theil and Sen's single median of pairs holds against 29 %), and points with a
/// large `x` cannot pull it as they pull least squares. `b` is 0 when every `x` is the same, and
/// `(0, 0)` for no points. Quadratic in the points.
pub fn repeated_median_line(points: &[(f64, f64)]) -> (f64, f64) {
    let mut medians = Vec::with_capacity(points.len());
    let mut slopes = Vec::with_capacity(points.len());
    for &(xi, yi) in points {
        slopes.clear();
        slopes.extend(
            points
                .iter()
                .filter(|(xj, _)| *xj != xi)
                .map(|(xj, yj)| (yi - yj) / (xi - xj)),
        );
        if !slopes.is_empty() {
            medians.push(median(&slopes));
        }
    }
    let slope = median(&medians);
    let offsets: Vec<f64> = points.iter().map(|(x, y)| y - slope * x).collect();
    (median(&offsets), slope)
}

/// One feature column as the methods see it: a value per member, the smallest spread its
/// scale may take ([`crate::anomaly::features::scale_floor`]; 0 for most features), below which
/// a difference between members is the feature's own sampling noise, and the members whose
/// values do not count towards its centre and scale (copies of another member's update, with
/// `AnomalyConfig.count_copies_once`). Every member is standardized, those too.
#[derive(Clone, Debug, PartialEq)]
pub struct Column {
    /// One value per member, in member order.
    pub values: Vec<f64>,
    /// The absolute floor under the column's scale.
    pub floor: f64,
    /// `left_out[i]`: member `i`'s value does not count towards the centre and scale (missing
    /// entries count). When every member is left out, all count.
    pub left_out: Vec<bool>,
}

impl Column {
    /// A column without an absolute floor, every value counting.
    pub fn new(values: Vec<f64>) -> Self {
        Self {
            values,
            floor: 0.0,
            left_out: Vec::new(),
        }
    }

    /// The values that set the centre and scale (borrowed when every one counts).
    fn counted(&self) -> Cow<'_, [f64]> {
        if !self.left_out.contains(&true) {
            return Cow::Borrowed(&self.values);
        }
        let counted: Vec<f64> = self
            .values
            .iter()
            .enumerate()
            .filter(|(i, _)| !self.left_out.get(*i).copied().unwrap_or(false))
            .map(|(_, v)| *v)
            .collect();
        if counted.is_empty() {
            Cow::Borrowed(&self.values)
        } else {
            Cow::Owned(counted)
        }
    }

    /// Every value standardized with the mean and floored scale of the counted values
    /// ([`standardize`]).
    pub fn standardized(&self) -> Vec<f64> {
        rescaled(&self.values, mean_scale(&self.counted(), self.floor))
    }

    /// Every value standardized with the median and robust scale of the counted values
    /// ([`robust_standardize`]).
    pub fn robust_standardized(&self) -> Vec<f64> {
        rescaled(&self.values, robust_scale(&self.counted(), self.floor))
    }
}

/// `(x - centre) / scale` for every value; all zeros when the scale is 0 (or not finite).
fn rescaled(values: &[f64], (centre, scale): (f64, f64)) -> Vec<f64> {
    if scale > 0.0 && scale.is_finite() {
        values.iter().map(|v| (v - centre) / scale).collect()
    } else {
        vec![0.0; values.len()]
    }
}

/// The mean of `values` and `max(std, 0.05 |mean|, floor)` ([`standardize`]).
fn mean_scale(values: &[f64], floor: f64) -> (f64, f64) {
    let m = mean(values);
    let s = population_std(values)
        .max(RELATIVE_SCALE_FLOOR * m.abs())
        .max(floor);
    (m, s)
}

/// Standardizes one column: `(x - mean) / s` with `s = max(std, 0.05 |mean|, floor)`, the
/// population standard deviation floored like [`robust_scale`] so that a feature whose values
/// lie within a few per cent of each other (honest update norms on IID shards) is not blown up
/// to unit spread, where its noise alone would isolate members. A column with `s = 0` (all
/// values 0) becomes all zeros.
pub fn standardize(values: &[f64], floor: f64) -> Vec<f64> {
    rescaled(values, mean_scale(values, floor))
}

/// The consistency constant of the MAD: the 0.75 quantile of the standard normal.
pub const MAD_CONSTANT: f64 = 0.6745;

/// The consistency constant of the mean absolute deviation: `sqrt(pi / 2)`.
pub const MEAN_AD_CONSTANT: f64 = 1.253314;

/// The smallest robust scale, as a fraction of the median's magnitude (see [`robust_scale`]).
pub const RELATIVE_SCALE_FLOOR: f64 = 0.05;

/// Robust location and scale of one column: the median, and an estimate of the standard
/// deviation of normal data that outliers do not inflate:
///
/// ```text
/// s = max(MAD / 0.6745, 0.05 |median|, floor)                 when MAD > 0
/// s = max(1.253314 * MeanAD, 0.05 |median|, floor)            when MAD = 0
/// ```
///
/// `MAD` is the median of `|x - median|`, `MeanAD` their mean (Iglewicz and Hoaglin's fallback
/// when more than half the values are equal). The floor of 5 % of the median's magnitude keeps
/// members whose values are nearly identical (equal shards of IID data give update norms
/// within a few per cent of each other) from making a harmless deviation look extreme: with the
/// floor, a value within `t * 5 %` of the median is never `t` scales away from it. `floor` is
/// the feature's own (see [`Column`]): a MAD taken over ten members often falls well below the
/// spread the feature has by construction. `s` is 0 only when every value equals a median of 0
/// and `floor` is 0.
pub fn robust_scale(values: &[f64], floor: f64) -> (f64, f64) {
    let med = median(values);
    let deviations: Vec<f64> = values.iter().map(|v| (v - med).abs()).collect();
    let mad = median(&deviations);
    let spread = if mad > 0.0 {
        mad / MAD_CONSTANT
    } else {
        MEAN_AD_CONSTANT * mean(&deviations)
    };
    (med, spread.max(RELATIVE_SCALE_FLOOR * med.abs()).max(floor))
}

/// Robustly standardizes one column: `(x - median) / s` with `s` from [`robust_scale`]; a
/// column with `s = 0` (all values 0) becomes all zeros.
pub fn robust_standardize(values: &[f64], floor: f64) -> Vec<f64> {
    rescaled(values, robust_scale(values, floor))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The logarithm agrees with the platform's to a few units in the last place over the
    /// whole range, and is exact where the answer is (`ln 1`, `ln 2^k`).
    #[test]
    fn ln_agrees_with_the_platform() {
        assert_eq!(ln(1.0), 0.0);
        assert_eq!(ln(2.0), std::f64::consts::LN_2);
        assert_eq!(ln(1024.0), 10.0 * std::f64::consts::LN_2);
        assert_eq!(ln(0.0), f64::NEG_INFINITY);
        assert_eq!(ln(f64::INFINITY), f64::INFINITY);
        assert!(ln(-1.0).is_nan() && ln(f64::NAN).is_nan());
        let mut x = 5e-324_f64;
        while x < 1e300 {
            for v in [x, x * 1.3, x * 1.41, x * 1.42, x * 1.9] {
                let (ours, theirs) = (ln(v), v.ln());
                let tolerance = 4.0 * f64::EPSILON * theirs.abs().max(1.0);
                assert!(
                    (ours - theirs).abs() <= tolerance,
                    "ln({v}): {ours} vs {theirs}"
                );
            }
            x *= 7.77;
        }
        for n in 1..2000u32 {
            let v = f64::from(n);
            assert!((ln(v) - v.ln()).abs() <= 4.0 * f64::EPSILON * v.ln().max(1.0));
        }
    }

    /// Known answers: points on a line give it back; with three of ten points far off it (a
    /// third of them, two at the largest x), the line is still the others'; one x for all gives
    /// slope 0 and the median y.
    #[test]
    fn the_repeated_median_line_holds_against_outliers() {
        let on_line: Vec<(f64, f64)> = (0..10)
            .map(|i| (f64::from(i), 1.0 + 0.5 * f64::from(i)))
            .collect();
        assert_eq!(repeated_median_line(&on_line), (1.0, 0.5));
        let mut off = on_line.clone();
        off[9].1 = 100.0;
        off[8].1 = -100.0;
        off[0].1 = 50.0;
        assert_eq!(repeated_median_line(&off), (1.0, 0.5));
        let upright = [(2.0, 5.0), (2.0, 1.0), (2.0, 3.0)];
        assert_eq!(repeated_median_line(&upright), (3.0, 0.0));
        assert_eq!(repeated_median_line(&[]), (0.0, 0.0));
        assert_eq!(repeated_median_line(&[(1.0, 4.0)]), (4.0, 0.0));
    }

    #[test]
    fn median_of_odd_even_and_empty() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
        assert_eq!(median(&[]), 0.0);
        assert_eq!(median(&[f64::MAX, f64::MAX]), f64::MAX);
    }

    #[test]
    fn moments_known_answers() {
        let v = [2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0];
        assert_eq!(mean(&v), 5.0);
        assert_eq!(population_std(&v), 2.0);
        assert_eq!(standardize(&v, 0.0)[0], -1.5);
        assert_eq!(standardize(&[3.0, 3.0], 0.0), vec![0.0, 0.0]);
        // std 0.816 is under the floor 5 % of 100 = 5: the spread stays small.
        assert_eq!(
            standardize(&[99.0, 100.0, 101.0], 0.0),
            vec![-0.2, 0.0, 0.2]
        );
    }

    #[test]
    fn robust_scale_known_answers() {
        // median 3, deviations 2,1,0,1,97 -> MAD 1, s = 1 / 0.6745 (above the floor 0.15).
        assert_eq!(
            robust_scale(&[1.0, 2.0, 3.0, 4.0, 100.0], 0.0),
            (3.0, 1.0 / 0.6745)
        );
        // median 5, MAD 0, MeanAD 1 -> 1.253314 (above the floor 0.25).
        assert_eq!(
            robust_scale(&[5.0, 5.0, 5.0, 5.0, 10.0], 0.0),
            (5.0, 1.253314)
        );
        // Nearly equal values: the floor 5 % of 100 = 5 wins over MAD / 0.6745 ~ 1.48.
        let (med, s) = robust_scale(&[99.0, 100.0, 101.0, 100.0, 108.0], 0.0);
        assert_eq!((med, s), (100.0, 5.0));
        assert_eq!(
            robust_standardize(&[99.0, 100.0, 101.0, 100.0, 108.0], 0.0)[4],
            1.6
        );
        assert_eq!(robust_scale(&[0.0; 3], 0.0), (0.0, 0.0));
        assert_eq!(robust_standardize(&[0.0; 3], 0.0), vec![0.0; 3]);
        assert_eq!(robust_standardize(&[], 0.0), Vec::<f64>::new());
    }

    #[test]
    fn a_column_scales_by_the_values_it_counts() {
        // Honest 0, 2, 4, 6, 8 and three copies at 4 (the first counted): counting all eight,
        // median 4 and MAD 1; counting six, MAD 2.
        let values = vec![0.0, 2.0, 4.0, 6.0, 8.0, 4.0, 4.0, 4.0];
        let all = Column::new(values.clone());
        assert_eq!(all.robust_standardized(), robust_standardize(&values, 0.0));
        let close = |a: f64, b: f64| assert!((a - b).abs() < 1e-12, "{a} != {b}");
        close(all.robust_standardized()[4], 4.0 * MAD_CONSTANT);
        let once = Column {
            left_out: vec![false, false, false, false, false, false, true, true],
            ..all.clone()
        };
        let z = once.robust_standardized();
        close(z[4], 2.0 * MAD_CONSTANT);
        assert_eq!(z[7], 0.0);
        // Mean 4 over both; population std sqrt(40 / 6) over the six counted, sqrt(5) over all.
        assert_eq!(all.standardized(), standardize(&values, 0.0));
        close(all.standardized()[4], 4.0 / 5.0_f64.sqrt());
        close(once.standardized()[4], 4.0 / (40.0_f64 / 6.0).sqrt());
        // The floor still holds; leaving out every member counts every member.
        let floored = Column {
            floor: 10.0,
            ..once.clone()
        };
        close(floored.robust_standardized()[4], 0.4);
        let none_left = Column {
            left_out: vec![true; 8],
            ..all.clone()
        };
        assert_eq!(none_left.robust_standardized(), all.robust_standardized());
    }
}
