//! Deterministic order statistics and moments over `f64` slices.
//!
//! Every function here fixes its order of operations (sums run left to right over the input as
//! given, sorting uses [`f64::total_cmp`]) and uses only IEEE-754 correctly rounded operations
//! (`+ - * /`, `sqrt`, `round`), so the same input gives bit-identical output on every platform.
//! Rust never contracts `a * b + c` into a fused multiply-add on its own, so no FMA creeps in.

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

/// Standardizes one column: `(x - mean) / std`. A constant column (std 0) becomes all zeros.
pub fn standardize(values: &[f64]) -> Vec<f64> {
    let m = mean(values);
    let s = population_std(values);
    if s > 0.0 && s.is_finite() {
        values.iter().map(|v| (v - m) / s).collect()
    } else {
        vec![0.0; values.len()]
    }
}

/// A real number as fixed point x 1e6 (`*_micro`), rounded half away from zero and saturated to
/// the `i64` range; NaN maps to 0.
pub fn to_micro(value: f64) -> i64 {
    let scaled = (value * 1e6).round();
    if scaled.is_nan() {
        0
    } else if scaled >= i64::MAX as f64 {
        i64::MAX
    } else if scaled <= i64::MIN as f64 {
        i64::MIN
    } else {
        scaled as i64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(standardize(&v)[0], -1.5);
        assert_eq!(standardize(&[3.0, 3.0]), vec![0.0, 0.0]);
    }

    #[test]
    fn micro_rounds_and_saturates() {
        assert_eq!(to_micro(1.5), 1_500_000);
        assert_eq!(to_micro(-0.0000015), -2);
        assert_eq!(to_micro(f64::INFINITY), i64::MAX);
        assert_eq!(to_micro(f64::NEG_INFINITY), i64::MIN);
        assert_eq!(to_micro(f64::NAN), 0);
    }
}
