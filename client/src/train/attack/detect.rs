//! The detection configurations the experiment compares: each on-chain method alone and two
//! ensembles, all with the parameters `bcfl consortium init` sets by default.
//!
//! | detector | methods | excluded when |
//! | --- | --- | --- |
//! | `pagerank` | PageRank, damping 0.85, k = 1, latency weights `1/B_ij` | it flags |
//! | `dbscan` | DBSCAN, eps 1.5, min_points 2, over `update_norm`, `sketch_cosine_distance` | it flags |
//! | `zscore` | modified z-score, threshold 3.5, same features | it flags |
//! | `ensemble` | all three | at least 2 flag |
//! | `any` | all three | at least 1 flags (the `consortium init` default, `ensemble_min_votes` 0) |

use bcfl_processor::anomaly::default_config;
use bcfl_protos::bcfl as pb;

/// A detection configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Detector {
    /// PageRank over the link graph alone.
    PageRank,
    /// DBSCAN alone.
    Dbscan,
    /// The modified z-score alone.
    ZScore,
    /// Flagged by at least two of the three.
    Ensemble,
    /// Flagged by any of the three.
    Any,
}

impl Detector {
    /// Every detector, in a fixed order.
    pub const ALL: [Detector; 5] = [
        Detector::PageRank,
        Detector::Dbscan,
        Detector::ZScore,
        Detector::Ensemble,
        Detector::Any,
    ];

    /// A short name.
    pub fn name(self) -> &'static str {
        match self {
            Detector::PageRank => "pagerank",
            Detector::Dbscan => "dbscan",
            Detector::ZScore => "zscore",
            Detector::Ensemble => "ensemble",
            Detector::Any => "any",
        }
    }

    /// The detector named `name`.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|d| d.name().eq_ignore_ascii_case(name.trim()))
    }

    /// The on-chain configuration (see the module docs).
    pub fn config(self) -> pb::AnomalyConfig {
        let (pagerank, dbscan, zscore, votes) = match self {
            Detector::PageRank => (true, false, false, 1),
            Detector::Dbscan => (false, true, false, 1),
            Detector::ZScore => (false, false, true, 1),
            Detector::Ensemble => (true, true, true, 2),
            Detector::Any => (true, true, true, 1),
        };
        default_config(pagerank, dbscan, zscore, votes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_configs_match_the_methods() {
        for d in Detector::ALL {
            assert_eq!(Detector::parse(d.name()), Some(d));
            let c = d.config();
            let methods = [c.has_pagerank(), c.has_dbscan(), c.has_zscore()]
                .iter()
                .filter(|m| **m)
                .count();
            assert!(c.ensemble_min_votes as usize <= methods);
        }
        assert_eq!(Detector::Ensemble.config().ensemble_min_votes, 2);
        assert_eq!(Detector::parse("krum"), None);
    }
}
