//! Fixed-point numbers as the ledger stores them, converted one way for everyone.
//!
//! No floating point crosses the ledger: `*_micro` fields hold a value times 10^6, `*_ppm`
//! fields a ratio times 10^6 (parts per million) and `*_ppb` fields a ratio times 10^9. The
//! processor turns them into `f64` for the anomaly methods, and that conversion is on-chain
//! arithmetic: every validator, and every client that recomputes a verdict, must get the same
//! bits. This module is the only place that converts, for the processor and the client alike
//! (`bcfl_client::fixed` is this module):
//!
//! | direction | functions | rule |
//! | --- | --- | --- |
//! | fixed point to `f64` (on chain) | [`micro_to_f64`], [`micro_unsigned_to_f64`], [`ppm_to_f64`], [`ppb_to_f64`] | `value as f64 / 1e6` (`/ 1e9` for ppb): one correctly rounded division, so the nearest `f64` to the exact quotient while `|value| <= 2^53` |
//! | `f64` to fixed point, refusing | [`f64_to_micro`], [`f64_to_micro_unsigned`], [`f64_to_ppm`], [`f64_to_ppb`] | `(value * 1e6).round()` (half away from zero); NaN, infinities and values outside the target integer are an error |
//! | `f64` to fixed point, saturating | [`saturating_micro`], [`saturating_micro_unsigned`], [`saturating_ppm`], [`saturating_ppb`] | the same rounding, then Rust's saturating `as` cast: NaN is 0, out-of-range values clamp to the integer's bounds (verdict scores on chain use [`saturating_micro`]) |
//! | decimal text to fixed point | [`parse_micro`], [`parse_micro_unsigned`], [`parse_ppm`] | exact, without a detour through `f64`; more than six fractional digits round half away from zero |
//! | fixed point to decimal text | [`format_micro`], [`format_micro_unsigned`] | the shortest exact text |
//!
//! ```
//! use bcfl_processor::fixed;
//!
//! assert_eq!(fixed::parse_micro("0.85").unwrap(), 850_000);
//! assert_eq!(fixed::f64_to_micro(-1.25).unwrap(), -1_250_000);
//! assert_eq!(fixed::format_micro(3_500_000), "3.5");
//! assert_eq!(fixed::micro_to_f64(1_500_000), 1.5);
//! assert_eq!(fixed::ppm_to_f64(100_000), 0.1);
//! assert_eq!(fixed::saturating_micro(f64::NAN), 0);
//! ```

/// Units per whole of `*_micro` and `*_ppm` fields: 10^6.
pub const SCALE: i64 = 1_000_000;

/// Units per whole of `*_ppb` fields: 10^9.
pub const PPB_SCALE: i64 = 1_000_000_000;

/// A value that has no fixed-point form in the requested type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FixedError {
    /// NaN or infinite.
    #[error("{0} is not a finite number")]
    NotFinite(String),
    /// Too large (or too small) for the target integer.
    #[error("{value} is out of range for {target}")]
    OutOfRange {
        /// The value as given.
        value: String,
        /// The target type, e.g. "u32 ppm".
        target: &'static str,
    },
    /// Not a decimal number.
    #[error("{0:?} is not a decimal number (e.g. 0.85, -3, 1e-3 is not accepted)")]
    Syntax(String),
}

// ---------------------------------------------------------------------------------------------
// Fixed point to f64: the on-chain conversions.

/// `micro / 10^6` as the processor computes it (e.g. `TRAINING_LOSS` from `loss_micro`): the
/// `f64` nearest to the exact quotient for `|micro| <= 2^53`.
pub fn micro_to_f64(micro: i64) -> f64 {
    micro as f64 / 1e6
}

/// `micro / 10^6` for unsigned fields (e.g. `UPDATE_NORM` from `norm_micro`).
pub fn micro_unsigned_to_f64(micro: u64) -> f64 {
    micro as f64 / 1e6
}

/// `ppm / 10^6` (e.g. DBSCAN's `eps_ppm`, the trimmed mean's `trim_ppm`).
pub fn ppm_to_f64(ppm: u32) -> f64 {
    f64::from(ppm) / 1e6
}

/// `ppb / 10^9` (e.g. PageRank's `tolerance_ppb`).
pub fn ppb_to_f64(ppb: u32) -> f64 {
    f64::from(ppb) / 1e9
}

// ---------------------------------------------------------------------------------------------
// f64 to fixed point.

/// `value * scale` rounded half away from zero; `None` when NaN or infinite.
fn scaled(value: f64, scale: f64) -> Option<f64> {
    value.is_finite().then(|| (value * scale).round())
}

fn out_of_range(value: impl ToString, target: &'static str) -> FixedError {
    FixedError::OutOfRange {
        value: value.to_string(),
        target,
    }
}

/// `value` x 10^6 rounded to the nearest integer (half away from zero); NaN, infinities and
/// values outside `i64` are an error.
pub fn f64_to_micro(value: f64) -> Result<i64, FixedError> {
    let scaled = scaled(value, 1e6).ok_or_else(|| FixedError::NotFinite(value.to_string()))?;
    // i64::MAX as f64 rounds up to 2^63, which is already out of range.
    if scaled >= i64::MAX as f64 || scaled < i64::MIN as f64 {
        return Err(out_of_range(value, "i64 micro"));
    }
    Ok(scaled as i64)
}

/// Like [`f64_to_micro`] for fields that cannot be negative.
pub fn f64_to_micro_unsigned(value: f64) -> Result<u64, FixedError> {
    let micro = f64_to_micro(value)?;
    u64::try_from(micro).map_err(|_| out_of_range(value, "u64 micro"))
}

/// A ratio as parts per million (`u32`, so at most 4294.967295).
pub fn f64_to_ppm(value: f64) -> Result<u32, FixedError> {
    let micro = f64_to_micro(value)?;
    u32::try_from(micro).map_err(|_| out_of_range(value, "u32 ppm"))
}

/// A ratio as parts per billion (`u32`, so at most 4.294967295).
pub fn f64_to_ppb(value: f64) -> Result<u32, FixedError> {
    let scaled = scaled(value, 1e9).ok_or_else(|| FixedError::NotFinite(value.to_string()))?;
    if !(0.0..=f64::from(u32::MAX)).contains(&scaled) {
        return Err(out_of_range(value, "u32 ppb"));
    }
    Ok(scaled as u32)
}

/// `value` x 10^6 rounded half away from zero, saturated to `i64` (NaN is 0): how verdict
/// scores (`score_micro`) are stored.
pub fn saturating_micro(value: f64) -> i64 {
    (value * 1e6).round() as i64
}

/// Like [`saturating_micro`] for unsigned fields (negative values are 0).
pub fn saturating_micro_unsigned(value: f64) -> u64 {
    (value * 1e6).round() as u64
}

/// `value` x 10^9 rounded half away from zero, saturated to `i64` (NaN is 0): how a
/// commitment's sampled coordinates (`coordinates`, nano-units) are stored.
pub fn saturating_nano(value: f64) -> i64 {
    (value * 1e9).round() as i64
}

/// A ratio as parts per million, saturated to `u32` (NaN and negative values are 0).
pub fn saturating_ppm(value: f64) -> u32 {
    (value * 1e6).round() as u32
}

/// A ratio as parts per billion, saturated to `u32` (NaN and negative values are 0).
pub fn saturating_ppb(value: f64) -> u32 {
    (value * 1e9).round() as u32
}

// ---------------------------------------------------------------------------------------------
// Decimal text.

/// Parses decimal text (`[-+]digits[.digits]`) exactly into micro units. More than six fractional
/// digits round half away from zero.
pub fn parse_micro(text: &str) -> Result<i64, FixedError> {
    let syntax = || FixedError::Syntax(text.to_owned());
    let trimmed = text.trim();
    let (negative, digits) = match trimmed.as_bytes().first() {
        Some(b'-') => (true, &trimmed[1..]),
        Some(b'+') => (false, &trimmed[1..]),
        _ => (false, trimmed),
    };
    let (whole, frac) = digits.split_once('.').unwrap_or((digits, ""));
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if (whole.is_empty() && frac.is_empty()) || !all_digits(whole) || !all_digits(frac) {
        return Err(syntax());
    }
    let mut magnitude: i128 = 0;
    for b in whole.bytes() {
        magnitude = magnitude * 10 + i128::from(b - b'0');
        if magnitude > i128::from(i64::MAX) {
            return Err(out_of_range(text, "i64 micro"));
        }
    }
    let mut units: i128 = 0;
    for i in 0..6 {
        let digit = frac.as_bytes().get(i).map_or(0, |b| b - b'0');
        units = units * 10 + i128::from(digit);
    }
    if frac.as_bytes().get(6).is_some_and(|b| *b >= b'5') {
        units += 1;
    }
    let total = magnitude * i128::from(SCALE) + units;
    let signed = if negative { -total } else { total };
    i64::try_from(signed).map_err(|_| out_of_range(text, "i64 micro"))
}

/// Like [`parse_micro`] for fields that cannot be negative.
pub fn parse_micro_unsigned(text: &str) -> Result<u64, FixedError> {
    let micro = parse_micro(text)?;
    u64::try_from(micro).map_err(|_| out_of_range(text, "u64 micro"))
}

/// Parses a decimal ratio into parts per million.
pub fn parse_ppm(text: &str) -> Result<u32, FixedError> {
    let micro = parse_micro(text)?;
    u32::try_from(micro).map_err(|_| out_of_range(text, "u32 ppm"))
}

/// The shortest exact decimal text of `micro` / 10^6: `1.5`, `-0.000001`, `3`.
pub fn format_micro(micro: i64) -> String {
    let sign = if micro < 0 { "-" } else { "" };
    format!("{sign}{}", format_micro_unsigned(micro.unsigned_abs()))
}

/// [`format_micro`] for unsigned fields.
pub fn format_micro_unsigned(micro: u64) -> String {
    let scale = SCALE.unsigned_abs();
    let (whole, frac) = (micro / scale, micro % scale);
    if frac == 0 {
        whole.to_string()
    } else {
        let frac = format!("{frac:06}");
        format!("{whole}.{}", frac.trim_end_matches('0'))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_answers() {
        assert_eq!(parse_micro("3.5").unwrap(), 3_500_000);
        assert_eq!(parse_micro("-0.000001").unwrap(), -1);
        assert_eq!(parse_micro(".5").unwrap(), 500_000);
        assert_eq!(parse_micro("2.").unwrap(), 2_000_000);
        assert_eq!(parse_micro("0.0000005").unwrap(), 1);
        assert_eq!(parse_micro("-0.0000005").unwrap(), -1);
        assert_eq!(parse_micro("0.00000049").unwrap(), 0);
        assert_eq!(parse_ppm("0.85").unwrap(), 850_000);
        assert_eq!(f64_to_micro(0.1 + 0.2).unwrap(), 300_000);
        assert_eq!(f64_to_micro(-0.0000015).unwrap(), -2);
        assert_eq!(f64_to_micro(0.0000025).unwrap(), 3);
        assert_eq!(f64_to_ppm(0.1).unwrap(), 100_000);
        assert_eq!(f64_to_ppb(1e-6).unwrap(), 1_000);
        assert_eq!(format_micro(-1_250_000), "-1.25");
        assert_eq!(format_micro(0), "0");
        assert_eq!(format_micro(i64::MIN), "-9223372036854.775808");
        assert_eq!(format_micro_unsigned(u64::MAX), "18446744073709.551615");
        assert_eq!(micro_to_f64(-2_500_000), -2.5);
        assert_eq!(micro_unsigned_to_f64(1), 1e-6);
        assert_eq!(ppm_to_f64(850_000), 0.85);
        assert_eq!(ppb_to_f64(1_000), 1e-6);
        assert_eq!(saturating_micro(1.5), 1_500_000);
        assert_eq!(saturating_micro(-0.0000015), -2);
        assert_eq!(saturating_micro(f64::INFINITY), i64::MAX);
        assert_eq!(saturating_micro(f64::NEG_INFINITY), i64::MIN);
        assert_eq!(saturating_micro(f64::NAN), 0);
        assert_eq!(saturating_micro_unsigned(-3.0), 0);
        assert_eq!(saturating_ppm(1e10), u32::MAX);
        assert_eq!(saturating_ppb(0.5), 500_000_000);
    }

    #[test]
    fn out_of_range_and_not_finite_are_refused() {
        for bad in ["", "-", ".", "1e3", "1.2.3", "abc", "--1", " 1 2"] {
            assert!(
                matches!(parse_micro(bad), Err(FixedError::Syntax(_))),
                "{bad}"
            );
        }
        assert!(parse_micro("9223372036854.775808").is_err());
        assert_eq!(parse_micro("-9223372036854.775808").unwrap(), i64::MIN);
        assert!(parse_ppm("-0.1").is_err());
        assert!(parse_ppm("4294.967296").is_err());
        assert!(parse_micro_unsigned("-1").is_err());
        assert!(matches!(
            f64_to_micro(f64::NAN),
            Err(FixedError::NotFinite(_))
        ));
        assert!(f64_to_micro(f64::INFINITY).is_err());
        assert!(matches!(
            f64_to_micro(1e13),
            Err(FixedError::OutOfRange { .. })
        ));
        assert!(f64_to_micro(-1e13).is_err());
        assert!(f64_to_micro_unsigned(-0.5).is_err());
        assert_eq!(f64_to_micro_unsigned(-0.0000004).unwrap(), 0);
        assert!(f64_to_ppm(-0.000001).is_err());
        assert!(f64_to_ppm(4294.967296).is_err());
        assert_eq!(f64_to_ppm(4294.967295).unwrap(), u32::MAX);
        assert!(f64_to_ppb(4.3).is_err());
        assert!(f64_to_ppb(-1e-9).is_err());
        assert!(f64_to_ppb(f64::NAN).is_err());
    }

    proptest! {
        #[test]
        fn text_round_trip(micro in any::<i64>()) {
            prop_assert_eq!(parse_micro(&format_micro(micro)).unwrap(), micro);
        }

        #[test]
        fn unsigned_text_round_trip(micro in 0..=i64::MAX as u64) {
            prop_assert_eq!(parse_micro_unsigned(&format_micro_unsigned(micro)).unwrap(), micro);
        }

        #[test]
        fn float_round_trip(micro in -(1i64 << 45)..(1i64 << 45)) {
            prop_assert_eq!(f64_to_micro(micro_to_f64(micro)).unwrap(), micro);
            prop_assert_eq!(saturating_micro(micro_to_f64(micro)), micro);
        }

        #[test]
        fn ppm_round_trip(ppm in any::<u32>()) {
            prop_assert_eq!(f64_to_ppm(ppm_to_f64(ppm)).unwrap(), ppm);
            prop_assert_eq!(f64_to_ppb(ppb_to_f64(ppm)).unwrap(), ppm);
        }

        /// Within half a micro unit, positive and negative alike.
        #[test]
        fn float_conversion_is_within_half_a_unit(x in -1.0e6f64..1.0e6) {
            let micro = f64_to_micro(x).unwrap();
            prop_assert!((micro_to_f64(micro) - x).abs() <= 0.5e-6 + 1e-9);
            prop_assert_eq!(f64_to_micro(-x).unwrap(), -micro);
            if x >= 0.0 {
                prop_assert_eq!(f64_to_micro_unsigned(x).unwrap() as i64, micro);
            }
        }

        /// The refusing and the saturating conversions agree wherever the first succeeds, and
        /// the second saturates where the first refuses.
        #[test]
        fn saturation_matches_refusal(x in prop_oneof![any::<f64>(), -1e14f64..1e14]) {
            match f64_to_micro(x) {
                Ok(micro) => prop_assert_eq!(saturating_micro(x), micro),
                Err(_) => prop_assert!(
                    [0, i64::MAX, i64::MIN].contains(&saturating_micro(x)),
                    "{x}"
                ),
            }
            match f64_to_ppm(x) {
                Ok(ppm) => prop_assert_eq!(saturating_ppm(x), ppm),
                Err(_) => prop_assert!([0, u32::MAX].contains(&saturating_ppm(x)), "{x}"),
            }
        }

        #[test]
        fn parsing_is_monotonic(a in -1.0e6f64..1.0e6, b in -1.0e6f64..1.0e6) {
            let (ta, tb) = (format!("{a:.9}"), format!("{b:.9}"));
            let (ma, mb) = (parse_micro(&ta).unwrap(), parse_micro(&tb).unwrap());
            if a <= b { prop_assert!(ma <= mb); } else { prop_assert!(ma >= mb); }
        }

        #[test]
        fn text_and_float_agree(micro in -(1i64 << 40)..(1i64 << 40)) {
            let text = format_micro(micro);
            prop_assert_eq!(f64_to_micro(text.parse::<f64>().unwrap()).unwrap(), micro);
        }
    }
}
