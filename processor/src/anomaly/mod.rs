//! Anomaly detection: the deterministic methods behind binding on-chain verdicts.
//!
//! `EvaluateRound` runs the consortium's configured methods ([`pb::AnomalyConfig`]) over the
//! round's evidence and stores the result as a `Verdict`; the client runs the very same code to
//! recompute a verdict (`bcfl audit verdict`) or to score members off the ledger (`bcfl anomaly`).
//!
//! | method | input | flagged when | score (`score_micro` / 1e6) |
//! | --- | --- | --- | --- |
//! | [`pagerank`] | member graph, edge weight latency `1/B_ij` or bandwidth `B_ij` | rank outside mean +/- k std | the rank |
//! | [`dbscan`] | standardized features | noise, or in a cluster smaller than the largest | core distance |
//! | [`zscore`] | each feature on its own | modified z-score `|M| > threshold` on any feature | `M` of largest magnitude |
//! | duplicate ([`evaluate()`]) | the round's sketches | cosine distance to another committer's sketch at most `max_distance` | that distance (`NEAREST_SKETCH_COSINE_DISTANCE`) |
//! | unchanged ([`evaluate()`]) | the round's update norms | norm at most `max_norm_ratio` times the median norm | norm / median norm |
//! | resent ([`evaluate()`]) | sampled coordinates, the kept previous change | distance to that change at most `max_distance` of its length | that distance (`PREVIOUS_CHANGE_DISTANCE`) |
//! | inconsistent ([`evaluate()`]) | sampled coordinates, the member's own previous commitment | cosine between its change and its previous one below `min_cosine` | that cosine (`OWN_CHANGE_COSINE`) |
//! | opposed ([`evaluate()`]) | the member's sketches summed over its rounds, the consensus | cosine distance between them at least `min_distance` | that distance (`CUMULATIVE_SKETCH_COSINE_DISTANCE`) |
//! | ascent ([`evaluate()`]) | sampled coordinates, the member's own previous commitment, the kept previous change, its response sums | how its change responds to the model's moves, over its rounds, above `max_response` | that response (`MOVE_RESPONSE`) |
//! | mislabelled ([`evaluate()`]) | sampled coordinates, the consortium's reference direction at them, its margin sums | the mean over its rounds of its change's cosine with the reference below `min_margin` | that mean (`REFERENCE_MARGIN`) |
//! | mean_copy ([`evaluate()`]) | the round's sketches | cosine with the other committers' summed sketches at least `min_cosine` | that cosine (`OTHERS_MEAN_COSINE`) |
//! | oversized ([`evaluate()`]) | the round's update norms and sample counts | ln of the norm at least `min_residual` above the repeated median line of ln norm on ln samples | that residual (`SAMPLE_NORM_RESIDUAL`) |
//!
//! A member is excluded when at least `max(1, ensemble_min_votes)` of PageRank, DBSCAN and the
//! z-score flag it, or when the duplicate, unchanged-update, resent-change, inconsistent-change,
//! opposed-change, ascent, mislabelled-change, oversized-update or mean-copy method does: that is evidence, not a vote, since members training on data of their own never
//! commit the same update, while colluders that send one crafted update (ALIE, IPM, min-max,
//! min-sum as published) always do, wherever the update lies; a member that trained moved the
//! model, while a free rider committing the model it was given did not; its change is its own,
//! not the global model's last one resent by a stale rider; and it points the way its previous
//! one did, as a fresh random update does not, however heterogeneous the honest updates are; and
//! its changes, summed over the rounds, do not undo what the accepted members did, as the honest
//! mean reversed (IPM) does; and they respond to the model's moves as steps down its own loss
//! do, where a sign flipper's climb it; and they move each class's row of a classification head
//! towards that class's own features, as training on true labels does, where a label
//! flipper's move it towards another class's; and its update is about as long as the others'
//! with as much data, not several times longer, as a scaled one is; and it points partly its
//! own way, not along the others' mean, as a lone ALIE attacker's does. The accepted members
//! are the others. Features are defined in
//! [`features`]. With `AnomalyConfig.withdraw`, a flag of the inconsistent-change or ascent
//! method also withdraws the member's previous commitment, which the round's aggregate takes
//! back out ([`withdraw`]).
//!
//! Off-chain tooling beside the methods: [`attack`] lists the ways a member misbehaves (one
//! enum for the processor's bench and the client), [`collusion`] crafts the colluding attacks'
//! update from the honest ones, and [`simulate`] makes synthetic rounds with attackers for the
//! detection bench.
//!
//! # Determinism
//!
//! Every validator must reach the same verdict bit for bit. Inputs are integers from state; the
//! arithmetic is `f64` with a fixed order of operations (members in key order, edges in (from, to)
//! order, sums left to right), using only correctly rounded IEEE operations (`+ - * /`, `sqrt`,
//! `round`) and no transcendental functions; Rust does not fuse multiply-adds on its own. The
//! PageRank flags use exact integer arithmetic over ranks in parts per billion. Scores are stored
//! as fixed point (x 1e6, rounded half away from zero, [`crate::fixed::saturating_micro`]).
//!
//! # Example
//!
//! ```
//! use bcfl_processor::anomaly::{evaluate, MemberData};
//! use bcfl_protos::bcfl as pb;
//!
//! let members: Vec<String> = (0..6).map(|i| format!("m{i}")).collect();
//! let norms = vec![1.0, 1.1, 0.9, 1.05, 0.95, 10.0]; // m5 scaled its update x10
//! let data = MemberData::new(members, vec![(pb::Feature::UPDATE_NORM, norms)], vec![]).unwrap();
//! let mut config = pb::AnomalyConfig::default();
//! config.mut_zscore().threshold_ppm = 3_500_000;
//! config.mut_zscore().features = vec![pb::Feature::UPDATE_NORM];
//! let evaluation = evaluate(&config, &data).unwrap();
//! assert_eq!(evaluation.excluded, vec!["m5".to_owned()]);
//! ```

pub mod attack;
pub mod collusion;
pub mod dbscan;
mod evaluate;
pub mod features;
#[cfg(test)]
mod graph_evidence_tests;
#[cfg(test)]
mod onchain_tests;
pub mod pagerank;
#[cfg(test)]
mod proptests;
pub mod simulate;
pub mod stats;
pub mod stored;
pub mod withdraw;
pub mod zscore;

use bcfl_protos::bcfl as pb;
use thiserror::Error;

pub use evaluate::{
    configured_method_names, default_config, default_pagerank, evaluate, every_attack_config,
    feature_name, member_scores, method_name, parse_feature, reads_own_previous, voting_features,
    with_features, Evaluation, MemberData, MemberScore, ASCENT_MAX_RESPONSE_PPM, DEFAULT_FEATURES,
    EVERY_ATTACK_COORDINATE_SAMPLES, EVERY_ATTACK_DBSCAN_EPS_PPM,
    EVERY_ATTACK_DUPLICATE_DISTANCE_PPM, EVERY_ATTACK_FEATURES, EVERY_ATTACK_OPPOSED_DISTANCE_PPM,
    EVERY_ATTACK_OVERSIZED_RESIDUAL_PPM, EVERY_ATTACK_RESENT_DISTANCE_PPM,
    EVERY_ATTACK_UNCHANGED_RATIO_PPM, INCONSISTENT_MIN_COSINE_PPM, LORA_COORDINATE_SAMPLES,
    LORA_INCONSISTENT_MIN_COSINE_PPM, MEAN_COPY_MIN_COSINE_PPM, MISLABELLED_MIN_MARGIN_PPM,
    SKEWED_SHARDS_FEATURES,
};

/// Why the methods could not run on the given data.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AnomalyError {
    /// A method needs a feature the data does not have.
    #[error("feature {} is needed but not available", feature_name(*.0))]
    MissingFeature(pb::Feature),
    /// A feature column does not have one value per member.
    #[error("feature {} has {found} values for {expected} members", feature_name(*.feature))]
    ColumnLength {
        /// The feature.
        feature: pb::Feature,
        /// The number of members.
        expected: usize,
        /// The number of values.
        found: usize,
    },
    /// Member keys must be sorted and unique.
    #[error("member keys must be sorted and unique ({0:?} is out of order or repeated)")]
    MemberOrder(String),
    /// An edge names a member index that does not exist.
    #[error("an edge names member {index}, there are {members}")]
    EdgeOutOfRange {
        /// The index.
        index: usize,
        /// The number of members.
        members: usize,
    },
    /// A feature value is NaN or infinite.
    #[error("feature {} of member {member} is not a finite number", feature_name(*.feature))]
    NotFinite {
        /// The feature.
        feature: pb::Feature,
        /// The member.
        member: String,
    },
}
