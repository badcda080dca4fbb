//! `--sample-fraction F`, the share of the members drawn to train each round, read once for
//! every command that takes it (`consortium init`, `fl simulate`, `demo`, `experiment scale`).

use bcfl_processor::fixed::parse_ppm;
use bcfl_processor::limits::PPM;

/// Parses `F` in (0, 1] into the consortium's `sample_ppm` (a clap value parser).
pub fn parse_sample_fraction(text: &str) -> Result<u32, String> {
    match parse_ppm(text) {
        Ok(ppm) if (1..=PPM).contains(&ppm) => Ok(ppm),
        _ => Err(format!("--sample-fraction must be in (0, 1], got {text}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fractions_in_the_unit_interval_become_ppm() {
        assert_eq!(parse_sample_fraction("0.1"), Ok(100_000));
        assert_eq!(parse_sample_fraction("1"), Ok(PPM));
        for bad in ["0", "1.5", "-0.1", "a tenth"] {
            assert!(parse_sample_fraction(bad).is_err(), "{bad}");
        }
    }
}
