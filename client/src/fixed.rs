//! Fixed-point numbers as the ledger stores them.
//!
//! No floating point crosses the ledger: `*_micro` fields hold a value times 10^6 and `*_ppm`
//! fields a ratio times 10^6 (parts per million). This module converts both ways:
//!
//! - from `f64` (what training produces), rounding to the nearest micro unit, half away from zero;
//! - from decimal text (what a user types), exactly, without a detour through `f64`;
//! - back to `f64` and to the shortest exact decimal text.
//!
//! ```
//! use bcfl_client::fixed;
//!
//! assert_eq!(fixed::parse_micro("0.85").unwrap(), 850_000);
//! assert_eq!(fixed::f64_to_micro(-1.25).unwrap(), -1_250_000);
//! assert_eq!(fixed::format_micro(3_500_000), "3.5");
//! assert_eq!(fixed::micro_to_f64(1_500_000), 1.5);
//! ```

/// Units per whole: 10^6.
pub const SCALE: i64 = 1_000_000;

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

/// `value` x 10^6 rounded to the nearest integer (half away from zero).
pub fn f64_to_micro(value: f64) -> Result<i64, FixedError> {
    if !value.is_finite() {
        return Err(FixedError::NotFinite(value.to_string()));
    }
    let scaled = (value * SCALE as f64).round();
    // i64::MAX as f64 rounds up to 2^63, which is already out of range.
    if scaled >= i64::MAX as f64 || scaled < i64::MIN as f64 {
        return Err(FixedError::OutOfRange {
            value: value.to_string(),
            target: "i64 micro",
        });
    }
    Ok(scaled as i64)
}

/// Like [`f64_to_micro`] for fields that cannot be negative.
pub fn f64_to_micro_unsigned(value: f64) -> Result<u64, FixedError> {
    let micro = f64_to_micro(value)?;
    u64::try_from(micro).map_err(|_| FixedError::OutOfRange {
        value: value.to_string(),
        target: "u64 micro",
    })
}

/// A ratio as parts per million (`u32`, so at most 4294.967295).
pub fn f64_to_ppm(value: f64) -> Result<u32, FixedError> {
    let micro = f64_to_micro(value)?;
    u32::try_from(micro).map_err(|_| FixedError::OutOfRange {
        value: value.to_string(),
        target: "u32 ppm",
    })
}

/// The `f64` nearest to `micro` / 10^6 (exact round trip through [`f64_to_micro`] for
/// |micro| < 2^45, i.e. values up to about 3.5e7).
pub fn micro_to_f64(micro: i64) -> f64 {
    // Split so that large values keep full precision in the integer part.
    let whole = micro / SCALE;
    let frac = micro % SCALE;
    whole as f64 + frac as f64 / SCALE as f64
}

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
    let out_of_range = || FixedError::OutOfRange {
        value: text.to_owned(),
        target: "i64 micro",
    };
    let mut magnitude: i128 = 0;
    for b in whole.bytes() {
        magnitude = magnitude * 10 + i128::from(b - b'0');
        if magnitude > i128::from(i64::MAX) {
            return Err(out_of_range());
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
    i64::try_from(signed).map_err(|_| out_of_range())
}

/// Like [`parse_micro`] for fields that cannot be negative.
pub fn parse_micro_unsigned(text: &str) -> Result<u64, FixedError> {
    let micro = parse_micro(text)?;
    u64::try_from(micro).map_err(|_| FixedError::OutOfRange {
        value: text.to_owned(),
        target: "u64 micro",
    })
}

/// Parses a decimal ratio into parts per million.
pub fn parse_ppm(text: &str) -> Result<u32, FixedError> {
    let micro = parse_micro(text)?;
    u32::try_from(micro).map_err(|_| FixedError::OutOfRange {
        value: text.to_owned(),
        target: "u32 ppm",
    })
}

/// The shortest exact decimal text of `micro` / 10^6: `1.5`, `-0.000001`, `3`.
pub fn format_micro(micro: i64) -> String {
    let sign = if micro < 0 { "-" } else { "" };
    let magnitude = micro.unsigned_abs();
    let scale = SCALE.unsigned_abs();
    let (whole, frac) = (magnitude / scale, magnitude % scale);
    if frac == 0 {
        format!("{sign}{whole}")
    } else {
        let frac = format!("{frac:06}");
        format!("{sign}{whole}.{}", frac.trim_end_matches('0'))
    }
}

/// [`format_micro`] for unsigned fields.
pub fn format_micro_unsigned(micro: u64) -> String {
    match i64::try_from(micro) {
        Ok(m) => format_micro(m),
        Err(_) => {
            let scale = SCALE.unsigned_abs();
            let (whole, frac) = (micro / scale, micro % scale);
            let frac = format!("{frac:06}");
            let frac = frac.trim_end_matches('0');
            if frac.is_empty() {
                whole.to_string()
            } else {
                format!("{whole}.{frac}")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_values() {
        assert_eq!(parse_micro("3.5").unwrap(), 3_500_000);
        assert_eq!(parse_micro("-0.000001").unwrap(), -1);
        assert_eq!(parse_micro(".5").unwrap(), 500_000);
        assert_eq!(parse_micro("2.").unwrap(), 2_000_000);
        assert_eq!(parse_micro("0.0000005").unwrap(), 1);
        assert_eq!(parse_micro("-0.0000005").unwrap(), -1);
        assert_eq!(parse_micro("0.00000049").unwrap(), 0);
        assert_eq!(parse_ppm("0.85").unwrap(), 850_000);
        assert_eq!(f64_to_micro(0.1 + 0.2).unwrap(), 300_000);
        assert_eq!(format_micro(-1_250_000), "-1.25");
        assert_eq!(format_micro(0), "0");
        assert_eq!(format_micro_unsigned(u64::MAX), "18446744073709.551615");
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
        assert!(f64_to_micro(f64::NAN).is_err());
        assert!(f64_to_micro(f64::INFINITY).is_err());
        assert!(f64_to_micro(1e13).is_err());
        assert!(f64_to_micro_unsigned(-0.5).is_err());
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
        }

        #[test]
        fn float_conversion_is_within_half_a_unit(x in -1.0e6f64..1.0e6) {
            let micro = f64_to_micro(x).unwrap();
            prop_assert!((micro_to_f64(micro) - x).abs() <= 0.5e-6 + 1e-9);
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
