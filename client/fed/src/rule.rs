//! Aggregation rules: the one type the command lines, the consortium's on-chain parameters and
//! the aggregation arithmetic share.
//!
//! A [`Rule`] is written three ways:
//!
//! | rule | command line ([`FromStr`], [`Display`](fmt::Display)) | on chain ([`Rule::from_params`], [`Rule::write_params`]) | JSON (serde) |
//! | --- | --- | --- | --- |
//! | [`Rule::FedAvg`] | `fedavg` | `FEDAVG` | `{"rule":"fed-avg"}` |
//! | [`Rule::Median`] | `median` | `MEDIAN` | `{"rule":"median"}` |
//! | [`Rule::TrimmedMean`] | `trimmed-mean[:TRIM]`, TRIM in `[0, 0.5)` (default [`DEFAULT_TRIM`]) | `TRIMMED_MEAN`, `trim_ppm` = TRIM x 1e6 | `{"rule":"trimmed-mean","trim":0.1}` |
//! | [`Rule::Krum`] | `krum[:F]` (default F = 0) | `KRUM`, `krum_byzantine` = F | `{"rule":"krum","f":1}` |
//! | [`Rule::MultiKrum`] | `multi-krum[:F[:K]]` (defaults F = 0, K = 0: "not chosen") | `MULTI_KRUM`, `krum_byzantine` = F, `krum_select` = K | `{"rule":"multi-krum","f":1,"k":3}` |
//!
//! Commands that also take the parameters as separate flags (`bcfl consortium init --trim
//! --krum-byzantine --krum-select`, `bcfl fl simulate --trim --krum-f --krum-k`) pass them as
//! [`RuleDefaults`] to [`Rule::parse_with`]: the values written after the name win. Multi-Krum's
//! K = 0 means "not chosen": the command fills it in (`bcfl demo` with members - 1, `bcfl fl
//! simulate` with clients - F); on chain and in the arithmetic K must be at least 1.
//!
//! The arithmetic of each rule is in [`crate::aggregate`].
//!
//! ```
//! use bcfl_fed::rule::Rule;
//! use bcfl_protos::bcfl as pb;
//!
//! let rule: Rule = "multi-krum:1:3".parse().unwrap();
//! assert_eq!(rule, Rule::MultiKrum { f: 1, k: 3 });
//! let mut params = pb::ConsortiumParams::default();
//! rule.write_params(&mut params).unwrap();
//! assert_eq!((params.krum_byzantine, params.krum_select), (1, 3));
//! assert_eq!(Rule::from_params(&params).unwrap(), rule);
//! assert_eq!(rule.to_string(), "multi-krum:1:3");
//! assert_eq!("trimmed-mean".parse::<Rule>().unwrap(), Rule::TrimmedMean { trim: 0.1 });
//! ```

use std::fmt;
use std::str::FromStr;

use bcfl_protos::bcfl as pb;
use serde::{Deserialize, Serialize};

use bcfl_processor::fixed::{self, FixedError};

/// The trimmed mean's fraction when none is given: 10 % at each end.
pub const DEFAULT_TRIM: f64 = 0.1;

/// An aggregation rule (see the module docs for its spellings).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "rule")]
pub enum Rule {
    /// Sample-weighted mean.
    FedAvg,
    /// Coordinate-wise median.
    Median,
    /// Coordinate-wise mean after dropping a fraction `trim` at each end.
    TrimmedMean {
        /// Fraction dropped at each end, in `[0, 0.5)`.
        trim: f64,
    },
    /// The single member closest to its neighbours.
    Krum {
        /// Byzantine members tolerated.
        f: usize,
    },
    /// FedAvg of the `k` members closest to their neighbours.
    MultiKrum {
        /// Byzantine members tolerated.
        f: usize,
        /// Members averaged (0: not chosen yet, see the module docs).
        k: usize,
    },
}

/// The parameters a rule's text may leave out (see [`Rule::parse_with`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RuleDefaults {
    /// The trimmed mean's fraction.
    pub trim: f64,
    /// Krum's and Multi-Krum's F.
    pub krum_f: usize,
    /// Multi-Krum's K (0: not chosen).
    pub krum_k: usize,
}

impl Default for RuleDefaults {
    /// Trim [`DEFAULT_TRIM`], F = 0, K = 0.
    fn default() -> Self {
        Self {
            trim: DEFAULT_TRIM,
            krum_f: 0,
            krum_k: 0,
        }
    }
}

/// A rule that cannot be read or written.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RuleError {
    /// The consortium's parameters name no rule.
    #[error("the consortium has no aggregation rule")]
    Unset,
    /// Not a rule's text.
    #[error(
        "invalid rule {text:?}: {reason} (fedavg, median, trimmed-mean[:TRIM], krum[:F], \
         multi-krum[:F[:K]])"
    )]
    Syntax {
        /// The text given.
        text: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A parameter has no on-chain form.
    #[error("{field}: {source}")]
    Fixed {
        /// The on-chain field.
        field: &'static str,
        /// Why.
        source: FixedError,
    },
    /// A count does not fit its on-chain field.
    #[error("{field}: {value} does not fit in 32 bits")]
    TooLarge {
        /// The on-chain field.
        field: &'static str,
        /// The value.
        value: usize,
    },
}

impl Rule {
    /// The names of the command line, in a fixed order.
    pub const NAMES: [&'static str; 5] = ["fedavg", "median", "trimmed-mean", "krum", "multi-krum"];

    /// The rule's name on the command line.
    pub fn name(self) -> &'static str {
        Self::NAMES[match self {
            Rule::FedAvg => 0,
            Rule::Median => 1,
            Rule::TrimmedMean { .. } => 2,
            Rule::Krum { .. } => 3,
            Rule::MultiKrum { .. } => 4,
        }]
    }

    /// The rule's kind as the chain records it (`ConsortiumParams.aggregation_rule`,
    /// `CommitAggregate.rule`).
    pub fn aggregation_rule(self) -> pb::AggregationRule {
        match self {
            Rule::FedAvg => pb::AggregationRule::FEDAVG,
            Rule::Median => pb::AggregationRule::MEDIAN,
            Rule::TrimmedMean { .. } => pb::AggregationRule::TRIMMED_MEAN,
            Rule::Krum { .. } => pb::AggregationRule::KRUM,
            Rule::MultiKrum { .. } => pb::AggregationRule::MULTI_KRUM,
        }
    }

    /// The rule the consortium's parameters describe (`trim_ppm` through
    /// [`fixed::ppm_to_f64`]). Ranges are the processor's to check; only an unset rule is
    /// refused.
    pub fn from_params(params: &pb::ConsortiumParams) -> Result<Rule, RuleError> {
        Ok(match params.aggregation_rule {
            pb::AggregationRule::FEDAVG => Rule::FedAvg,
            pb::AggregationRule::MEDIAN => Rule::Median,
            pb::AggregationRule::TRIMMED_MEAN => Rule::TrimmedMean {
                trim: fixed::ppm_to_f64(params.trim_ppm),
            },
            pb::AggregationRule::KRUM => Rule::Krum {
                f: params.krum_byzantine as usize,
            },
            pb::AggregationRule::MULTI_KRUM => Rule::MultiKrum {
                f: params.krum_byzantine as usize,
                k: params.krum_select as usize,
            },
            pb::AggregationRule::AGGREGATION_RULE_UNSET => return Err(RuleError::Unset),
        })
    }

    /// Writes the rule into the consortium's parameters: `aggregation_rule`, `trim_ppm` (the
    /// trim rounded to parts per million with [`fixed::f64_to_ppm`]), `krum_byzantine` and
    /// `krum_select`, each 0 where the rule has no such parameter. A parameter with no on-chain
    /// form (a NaN trim, a count over `u32`) is refused and `params` left unchanged.
    pub fn write_params(self, params: &mut pb::ConsortiumParams) -> Result<(), RuleError> {
        let count = |field, value: usize| {
            u32::try_from(value).map_err(|_| RuleError::TooLarge { field, value })
        };
        let (trim_ppm, krum_byzantine, krum_select) = match self {
            Rule::FedAvg | Rule::Median => (0, 0, 0),
            Rule::TrimmedMean { trim } => {
                let ppm = fixed::f64_to_ppm(trim).map_err(|source| RuleError::Fixed {
                    field: "trim_ppm",
                    source,
                })?;
                (ppm, 0, 0)
            }
            Rule::Krum { f } => (0, count("krum_byzantine", f)?, 0),
            Rule::MultiKrum { f, k } => (0, count("krum_byzantine", f)?, count("krum_select", k)?),
        };
        params.aggregation_rule = self.aggregation_rule();
        params.trim_ppm = trim_ppm;
        params.krum_byzantine = krum_byzantine;
        params.krum_select = krum_select;
        Ok(())
    }

    /// Parses `text` (`NAME[:PARAM...]`, see the module docs), taking the parameters it leaves
    /// out from `defaults`.
    pub fn parse_with(text: &str, defaults: RuleDefaults) -> Result<Rule, RuleError> {
        let syntax = |reason: String| RuleError::Syntax {
            text: text.to_owned(),
            reason,
        };
        let mut parts = text.split(':');
        let name = parts.next().unwrap_or_default();
        let params: Vec<&str> = parts.collect();
        let count = |what: &str, value: &str| {
            value
                .parse::<usize>()
                .map_err(|_| syntax(format!("{what} {value:?} is not a count")))
        };
        let most = |n: usize| {
            if params.len() > n {
                Err(syntax(format!("{name} takes at most {n} parameter(s)")))
            } else {
                Ok(())
            }
        };
        let rule = match name {
            "fedavg" => {
                most(0)?;
                Rule::FedAvg
            }
            "median" => {
                most(0)?;
                Rule::Median
            }
            "trimmed-mean" => {
                most(1)?;
                let trim = match params.first() {
                    Some(t) => t
                        .parse::<f64>()
                        .map_err(|_| syntax(format!("TRIM {t:?} is not a number")))?,
                    None => defaults.trim,
                };
                if !(0.0..0.5).contains(&trim) {
                    return Err(syntax(format!("TRIM {trim} is not in [0, 0.5)")));
                }
                Rule::TrimmedMean { trim }
            }
            "krum" => {
                most(1)?;
                Rule::Krum {
                    f: params
                        .first()
                        .map_or(Ok(defaults.krum_f), |f| count("F", f))?,
                }
            }
            "multi-krum" => {
                most(2)?;
                Rule::MultiKrum {
                    f: params
                        .first()
                        .map_or(Ok(defaults.krum_f), |f| count("F", f))?,
                    k: params
                        .get(1)
                        .map_or(Ok(defaults.krum_k), |k| count("K", k))?,
                }
            }
            other => return Err(syntax(format!("unknown rule {other:?}"))),
        };
        Ok(rule)
    }
}

impl fmt::Display for Rule {
    /// The full text, every parameter written: `trimmed-mean:0.1`, `multi-krum:1:3`.
    fn fmt(&self, out: &mut fmt::Formatter<'_>) -> fmt::Result {
        out.write_str(self.name())?;
        match self {
            Rule::FedAvg | Rule::Median => Ok(()),
            Rule::TrimmedMean { trim } => write!(out, ":{trim}"),
            Rule::Krum { f } => write!(out, ":{f}"),
            Rule::MultiKrum { f, k } => write!(out, ":{f}:{k}"),
        }
    }
}

impl FromStr for Rule {
    type Err = RuleError;

    /// [`Rule::parse_with`] with [`RuleDefaults::default`].
    fn from_str(text: &str) -> Result<Rule, RuleError> {
        Rule::parse_with(text, RuleDefaults::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn params_of(rule: Rule) -> pb::ConsortiumParams {
        let mut params = pb::ConsortiumParams::default();
        rule.write_params(&mut params).unwrap();
        params
    }

    fn every_rule() -> [Rule; 7] {
        [
            Rule::FedAvg,
            Rule::Median,
            Rule::TrimmedMean { trim: 0.1 },
            Rule::TrimmedMean { trim: 0.25 },
            Rule::Krum { f: 2 },
            Rule::MultiKrum { f: 1, k: 3 },
            Rule::MultiKrum { f: 0, k: 0 },
        ]
    }

    #[test]
    fn every_rule_round_trips_through_params_text_and_json() {
        for rule in every_rule() {
            assert_eq!(Rule::from_params(&params_of(rule)).unwrap(), rule);
            assert_eq!(rule.to_string().parse::<Rule>().unwrap(), rule);
            let json = serde_json::to_string(&rule).unwrap();
            assert_eq!(serde_json::from_str::<Rule>(&json).unwrap(), rule);
        }
    }

    #[test]
    fn known_params() {
        let p = params_of(Rule::TrimmedMean { trim: 0.1 });
        assert_eq!(p.aggregation_rule, pb::AggregationRule::TRIMMED_MEAN);
        assert_eq!(
            (p.trim_ppm, p.krum_byzantine, p.krum_select),
            (100_000, 0, 0)
        );
        let p = params_of(Rule::MultiKrum { f: 1, k: 3 });
        assert_eq!(p.aggregation_rule, pb::AggregationRule::MULTI_KRUM);
        assert_eq!((p.trim_ppm, p.krum_byzantine, p.krum_select), (0, 1, 3));
        let p = params_of(Rule::Krum { f: 2 });
        assert_eq!(p.aggregation_rule, pb::AggregationRule::KRUM);
        assert_eq!((p.trim_ppm, p.krum_byzantine, p.krum_select), (0, 2, 0));
        // Writing clears what an earlier rule left behind.
        let mut p = params_of(Rule::MultiKrum { f: 1, k: 3 });
        Rule::FedAvg.write_params(&mut p).unwrap();
        assert_eq!(p.aggregation_rule, pb::AggregationRule::FEDAVG);
        assert_eq!((p.trim_ppm, p.krum_byzantine, p.krum_select), (0, 0, 0));
        // The ppm of on-chain params becomes the trim the aggregation uses.
        let mut p = pb::ConsortiumParams {
            aggregation_rule: pb::AggregationRule::TRIMMED_MEAN,
            trim_ppm: 200_000,
            ..Default::default()
        };
        assert_eq!(
            Rule::from_params(&p).unwrap(),
            Rule::TrimmedMean { trim: 0.2 }
        );
        p.aggregation_rule = pb::AggregationRule::AGGREGATION_RULE_UNSET;
        assert_eq!(Rule::from_params(&p), Err(RuleError::Unset));
    }

    #[test]
    fn unrepresentable_parameters_are_refused() {
        let mut p = params_of(Rule::Median);
        let before = p.clone();
        let err = Rule::TrimmedMean { trim: f64::NAN }
            .write_params(&mut p)
            .unwrap_err();
        assert!(
            matches!(
                err,
                RuleError::Fixed {
                    field: "trim_ppm",
                    ..
                }
            ),
            "{err}"
        );
        assert!(Rule::TrimmedMean { trim: -0.1 }
            .write_params(&mut p)
            .is_err());
        if usize::BITS > 32 {
            let huge = u32::MAX as usize + 1;
            assert!(Rule::Krum { f: huge }.write_params(&mut p).is_err());
            assert!(Rule::MultiKrum { f: 0, k: huge }
                .write_params(&mut p)
                .is_err());
        }
        assert_eq!(p, before);
    }

    #[test]
    fn known_texts() {
        let parsed = |t: &str| t.parse::<Rule>().unwrap();
        assert_eq!(parsed("fedavg"), Rule::FedAvg);
        assert_eq!(parsed("median"), Rule::Median);
        assert_eq!(parsed("trimmed-mean"), Rule::TrimmedMean { trim: 0.1 });
        assert_eq!(parsed("trimmed-mean:0.2"), Rule::TrimmedMean { trim: 0.2 });
        assert_eq!(parsed("krum"), Rule::Krum { f: 0 });
        assert_eq!(parsed("krum:2"), Rule::Krum { f: 2 });
        assert_eq!(parsed("multi-krum"), Rule::MultiKrum { f: 0, k: 0 });
        assert_eq!(parsed("multi-krum:1"), Rule::MultiKrum { f: 1, k: 0 });
        assert_eq!(parsed("multi-krum:1:4"), Rule::MultiKrum { f: 1, k: 4 });
        assert_eq!(
            Rule::TrimmedMean { trim: 0.1 }.to_string(),
            "trimmed-mean:0.1"
        );
        assert_eq!(Rule::Krum { f: 0 }.to_string(), "krum:0");
        assert_eq!(Rule::FedAvg.to_string(), "fedavg");
        for bad in [
            "",
            "FedAvg",
            "fed-avg",
            "fedavg:1",
            "trimmed-mean:",
            "trimmed-mean:0.5",
            "trimmed-mean:-0.1",
            "trimmed-mean:NaN",
            "krum:x",
            "krum:-1",
            "krum:1:2",
            "multi-krum:1:2:3",
            "mean",
        ] {
            assert!(bad.parse::<Rule>().is_err(), "{bad}");
        }
        let err = "krum:x".parse::<Rule>().unwrap_err().to_string();
        assert!(err.contains("F \"x\" is not a count"), "{err}");
    }

    #[test]
    fn defaults_fill_in_what_the_text_leaves_out() {
        let defaults = RuleDefaults {
            trim: 0.3,
            krum_f: 2,
            krum_k: 5,
        };
        let parsed = |t: &str| Rule::parse_with(t, defaults).unwrap();
        assert_eq!(parsed("trimmed-mean"), Rule::TrimmedMean { trim: 0.3 });
        assert_eq!(parsed("trimmed-mean:0.2"), Rule::TrimmedMean { trim: 0.2 });
        assert_eq!(parsed("krum"), Rule::Krum { f: 2 });
        assert_eq!(parsed("multi-krum"), Rule::MultiKrum { f: 2, k: 5 });
        assert_eq!(parsed("multi-krum:1"), Rule::MultiKrum { f: 1, k: 5 });
        assert_eq!(parsed("fedavg"), Rule::FedAvg);
        let bad = RuleDefaults {
            trim: 0.7,
            ..defaults
        };
        assert!(Rule::parse_with("trimmed-mean", bad).is_err());
    }

    /// The JSON form is the one the simulation and bench reports have always written.
    #[test]
    fn json_spelling_is_stable() {
        assert_eq!(
            serde_json::to_string(&Rule::TrimmedMean { trim: 0.1 }).unwrap(),
            r#"{"rule":"trimmed-mean","trim":0.1}"#
        );
        assert_eq!(
            serde_json::to_string(&Rule::FedAvg).unwrap(),
            r#"{"rule":"fed-avg"}"#
        );
        assert_eq!(
            serde_json::to_string(&Rule::MultiKrum { f: 1, k: 3 }).unwrap(),
            r#"{"rule":"multi-krum","f":1,"k":3}"#
        );
    }

    proptest! {
        /// Every trim the chain can hold survives params -> rule -> params -> rule.
        #[test]
        fn trims_round_trip_through_ppm(ppm in 0u32..500_000) {
            let rule = Rule::TrimmedMean { trim: fixed::ppm_to_f64(ppm) };
            let params = params_of(rule);
            prop_assert_eq!(params.trim_ppm, ppm);
            prop_assert_eq!(Rule::from_params(&params).unwrap(), rule);
        }

        /// Text round trip for any representable rule.
        #[test]
        fn text_round_trips(trim in 0.0f64..0.5, f in 0usize..1000, k in 0usize..1000) {
            for rule in [
                Rule::TrimmedMean { trim },
                Rule::Krum { f },
                Rule::MultiKrum { f, k },
            ] {
                prop_assert_eq!(rule.to_string().parse::<Rule>().unwrap(), rule);
            }
        }

        /// Counts survive Rule -> params -> Rule.
        #[test]
        fn counts_round_trip_through_params(f in 0u32..1000, k in 0u32..1000) {
            let rule = Rule::MultiKrum { f: f as usize, k: k as usize };
            prop_assert_eq!(Rule::from_params(&params_of(rule)).unwrap(), rule);
        }
    }
}
