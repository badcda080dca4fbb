//! The detection configurations the experiment compares: each on-chain method alone and three
//! ensembles, all with the parameters `bcfl consortium init` sets by default, or with a
//! [`Tuning`]'s features, radius and threshold. Under [`Tuning::every_attack`], `both` is the
//! processor's `every_attack_config` (`consortium init --anomaly-preset every-attack`).
//!
//! | detector | methods | excluded when |
//! | --- | --- | --- |
//! | `pagerank` | PageRank, damping 0.85, k = 1, latency weights `1/B_ij` | it flags |
//! | `dbscan` | DBSCAN, eps 1.5, min_points 2, over [`DEFAULT_FEATURES`] | it flags |
//! | `zscore` | modified z-score, threshold 3.5, same features | it flags |
//! | `ensemble` | all three | at least 2 flag |
//! | `any` | all three | at least 1 flags (`ensemble_min_votes` 1) |
//! | `both` | DBSCAN and the z-score | both flag (`--anomaly zscore,dbscan --ensemble-min-votes 2`): the ensemble without PageRank, whose mean ± 1 std rule flags a third of the members on any link graph and so leaves them one vote from exclusion |
//!
//! A tuning with a duplicate distance adds the duplicate method to every detector: a member
//! whose sketch lies that close to another committer's is excluded whatever the others vote.

use bcfl_processor::anomaly::{
    default_config, with_features, DEFAULT_FEATURES, EVERY_ATTACK_DBSCAN_EPS_PPM,
    EVERY_ATTACK_DUPLICATE_DISTANCE_PPM, EVERY_ATTACK_FEATURES, EVERY_ATTACK_OPPOSED_DISTANCE_PPM,
    EVERY_ATTACK_OVERSIZED_RESIDUAL_PPM, EVERY_ATTACK_RESENT_DISTANCE_PPM,
    EVERY_ATTACK_UNCHANGED_RATIO_PPM,
};
use bcfl_processor::fixed;
use bcfl_protos::bcfl as pb;

/// The parameters a benchmark may vary: the features DBSCAN and the z-score use, DBSCAN's
/// radius and neighbourhood size, the z-score threshold and the duplicate method's distance.
/// The default is what `bcfl consortium init` writes.
#[derive(Clone, Debug, PartialEq)]
pub struct Tuning {
    /// Features of DBSCAN and the modified z-score.
    pub features: Vec<pb::Feature>,
    /// DBSCAN's neighbourhood radius over standardized features.
    pub dbscan_eps: f64,
    /// DBSCAN's core-point neighbourhood size.
    pub dbscan_min_points: u32,
    /// DBSCAN standardizes robustly (median and robust scale).
    pub dbscan_robust: bool,
    /// The modified z-score threshold.
    pub zscore_threshold: f64,
    /// The duplicate method's cosine distance; `None`: no duplicate method.
    pub duplicate_distance: Option<f64>,
    /// The unchanged-update method's norm ratio; `None`: no unchanged-update method.
    pub unchanged_ratio: Option<f64>,
    /// The resent-change method's distance; `None`: no resent-change method.
    pub resent_distance: Option<f64>,
    /// The inconsistent-change method's cosine; `None`: no inconsistent-change method.
    pub inconsistent_cosine: Option<f64>,
    /// The opposed-change method's cumulative sketch distance; `None`: no opposed-change
    /// method.
    pub opposed_distance: Option<f64>,
    /// The ascent method's largest move response; `None`: no ascent method.
    pub ascent_response: Option<f64>,
    /// The ascent method compares each member with the others' move
    /// (`AscentConfig.leave_one_out`); only beside `ascent_response`.
    pub ascent_leave_one_out: bool,
    /// The oversized-update method's smallest residual (natural-log units); `None`: no such
    /// method.
    pub oversized_residual: Option<f64>,
    /// The mean-copy method's smallest cosine with the others' summed sketches; `None`: no
    /// such method.
    pub mean_copy_cosine: Option<f64>,
    /// The mislabelled-change method's smallest reference margin; `None`: no such method. The
    /// reference itself comes from the scenario's held-out rows
    /// ([`super::experiment::Prepared::reference_steps`]).
    pub mislabelled_margin: Option<f64>,
    /// What the mislabelled-change method's reference rows are taken from; only beside
    /// `mislabelled_margin`.
    pub mislabelled_reference: super::head::ReferenceDirections,
    /// Copies count once towards DBSCAN's and the z-score's centres and scales
    /// (`AnomalyConfig.count_copies_once`).
    pub count_copies_once: bool,
    /// DBSCAN clusters only the members no excluding method flagged
    /// (`AnomalyConfig.dbscan_without_excluded`).
    pub dbscan_without_excluded: bool,
    /// The inconsistent-change and ascent methods' flags withdraw the member's commitment to
    /// the round before (`AnomalyConfig.withdraw`).
    pub withdraw: bool,
}

impl Default for Tuning {
    fn default() -> Self {
        Self {
            features: DEFAULT_FEATURES.to_vec(),
            dbscan_eps: 1.5,
            dbscan_min_points: 2,
            dbscan_robust: false,
            zscore_threshold: 3.5,
            duplicate_distance: None,
            unchanged_ratio: None,
            resent_distance: None,
            inconsistent_cosine: None,
            opposed_distance: None,
            ascent_response: None,
            ascent_leave_one_out: false,
            oversized_residual: None,
            mean_copy_cosine: None,
            mislabelled_margin: None,
            mislabelled_reference: Default::default(),
            count_copies_once: false,
            dbscan_without_excluded: false,
            withdraw: false,
        }
    }
}

impl Tuning {
    /// The tuning under which [`Detector::Both`] is the processor's
    /// [`every_attack_config`](bcfl_processor::anomaly::every_attack_config).
    pub fn every_attack() -> Self {
        Self {
            features: EVERY_ATTACK_FEATURES.to_vec(),
            dbscan_eps: fixed::ppm_to_f64(EVERY_ATTACK_DBSCAN_EPS_PPM),
            dbscan_robust: true,
            duplicate_distance: Some(fixed::ppm_to_f64(EVERY_ATTACK_DUPLICATE_DISTANCE_PPM)),
            unchanged_ratio: Some(fixed::ppm_to_f64(EVERY_ATTACK_UNCHANGED_RATIO_PPM)),
            resent_distance: Some(fixed::ppm_to_f64(EVERY_ATTACK_RESENT_DISTANCE_PPM)),
            opposed_distance: Some(fixed::ppm_to_f64(EVERY_ATTACK_OPPOSED_DISTANCE_PPM)),
            oversized_residual: Some(fixed::ppm_to_f64(EVERY_ATTACK_OVERSIZED_RESIDUAL_PPM)),
            ..Self::default()
        }
    }
}

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
    /// Flagged by both DBSCAN and the z-score (no PageRank).
    Both,
}

impl Detector {
    /// Every detector, in a fixed order.
    pub const ALL: [Detector; 6] = [
        Detector::PageRank,
        Detector::Dbscan,
        Detector::ZScore,
        Detector::Ensemble,
        Detector::Any,
        Detector::Both,
    ];

    /// A short name.
    pub fn name(self) -> &'static str {
        match self {
            Detector::PageRank => "pagerank",
            Detector::Dbscan => "dbscan",
            Detector::ZScore => "zscore",
            Detector::Ensemble => "ensemble",
            Detector::Any => "any",
            Detector::Both => "both",
        }
    }

    /// The detector named `name`.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|d| d.name().eq_ignore_ascii_case(name.trim()))
    }

    /// The on-chain configuration (see the module docs) with `tuning`'s features, radius and
    /// threshold.
    pub fn config(self, tuning: &Tuning) -> pb::AnomalyConfig {
        let (pagerank, dbscan, zscore, votes) = match self {
            Detector::PageRank => (true, false, false, 1),
            Detector::Dbscan => (false, true, false, 1),
            Detector::ZScore => (false, false, true, 1),
            Detector::Ensemble => (true, true, true, 2),
            Detector::Any => (true, true, true, 1),
            Detector::Both => (false, true, true, 2),
        };
        let mut config = with_features(
            default_config(pagerank, dbscan, zscore, votes),
            &tuning.features,
        );
        if config.has_dbscan() {
            config.mut_dbscan().eps_ppm = fixed::saturating_ppm(tuning.dbscan_eps);
            config.mut_dbscan().min_points = tuning.dbscan_min_points;
            config.mut_dbscan().robust = tuning.dbscan_robust;
        }
        if config.has_zscore() {
            config.mut_zscore().threshold_ppm = fixed::saturating_ppm(tuning.zscore_threshold);
        }
        if let Some(distance) = tuning.duplicate_distance {
            config.mut_duplicate().max_distance_ppm = fixed::saturating_ppm(distance);
        }
        if let Some(ratio) = tuning.unchanged_ratio {
            config.mut_unchanged().max_norm_ratio_ppm = fixed::saturating_ppm(ratio);
        }
        if let Some(distance) = tuning.resent_distance {
            config.mut_resent().max_distance_ppm = fixed::saturating_ppm(distance);
        }
        if let Some(cosine) = tuning.inconsistent_cosine {
            config.mut_inconsistent().min_cosine_ppm = fixed::saturating_ppm(cosine);
        }
        if let Some(distance) = tuning.opposed_distance {
            config.mut_opposed().min_distance_ppm = fixed::saturating_ppm(distance);
        }
        if let Some(response) = tuning.ascent_response {
            config.mut_ascent().max_response_ppm = fixed::saturating_ppm(response);
            config.mut_ascent().leave_one_out = tuning.ascent_leave_one_out;
        }
        if let Some(residual) = tuning.oversized_residual {
            config.mut_oversized().min_residual_ppm = fixed::saturating_ppm(residual);
        }
        if let Some(cosine) = tuning.mean_copy_cosine {
            config.mut_mean_copy().min_cosine_ppm = fixed::saturating_ppm(cosine);
        }
        if let Some(margin) = tuning.mislabelled_margin {
            // Within the processor's half either way; the reference is the scenario's.
            config.mut_mislabelled().min_margin_ppm = fixed::saturating_micro(margin) as i32;
        }
        config.count_copies_once = tuning.count_copies_once;
        config.dbscan_without_excluded = tuning.dbscan_without_excluded;
        config.withdraw = tuning.withdraw;
        config
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_configs_match_the_methods() {
        for d in Detector::ALL {
            assert_eq!(Detector::parse(d.name()), Some(d));
            let c = d.config(&Tuning::default());
            let methods = [c.has_pagerank(), c.has_dbscan(), c.has_zscore()]
                .iter()
                .filter(|m| **m)
                .count();
            assert!(c.ensemble_min_votes as usize <= methods);
        }
        let tuning = Tuning {
            features: vec![pb::Feature::UPDATE_NORM],
            dbscan_eps: 0.75,
            dbscan_min_points: 3,
            dbscan_robust: true,
            zscore_threshold: 3.0,
            duplicate_distance: None,
            unchanged_ratio: None,
            resent_distance: None,
            inconsistent_cosine: None,
            opposed_distance: None,
            ascent_response: Some(0.05),
            ascent_leave_one_out: true,
            oversized_residual: Some(1.5),
            mean_copy_cosine: Some(0.9),
            mislabelled_margin: Some(-0.02),
            mislabelled_reference: super::super::head::ReferenceDirections::ClassMeans,
            count_copies_once: true,
            dbscan_without_excluded: true,
            withdraw: true,
        };
        let ensemble = Detector::Ensemble.config(&tuning);
        assert!(ensemble.withdraw && ensemble.get_ascent().leave_one_out);
        assert_eq!(ensemble.get_oversized().min_residual_ppm, 1_500_000);
        assert_eq!(ensemble.get_mean_copy().min_cosine_ppm, 900_000);
        // The limit; the reference is the scenario's, filled in when it runs.
        assert_eq!(ensemble.get_mislabelled().min_margin_ppm, -20_000);
        assert_eq!(ensemble.ensemble_min_votes, 2);
        assert_eq!(ensemble.get_zscore().features, tuning.features);
        assert_eq!(ensemble.get_dbscan().features, tuning.features);
        assert_eq!(ensemble.get_dbscan().eps_ppm, 750_000);
        assert_eq!(ensemble.get_dbscan().min_points, 3);
        assert!(ensemble.get_dbscan().robust && ensemble.count_copies_once);
        assert!(ensemble.dbscan_without_excluded);
        assert_eq!(ensemble.get_zscore().threshold_ppm, 3_000_000);
        assert_eq!(Detector::parse("krum"), None);
        let both = Detector::Both.config(&tuning);
        assert!(!both.has_pagerank() && both.has_dbscan() && both.has_zscore());
        assert_eq!(both.ensemble_min_votes, 2);
        assert_eq!(
            Detector::Both.config(&Tuning::every_attack()),
            bcfl_processor::anomaly::every_attack_config()
        );
    }
}
