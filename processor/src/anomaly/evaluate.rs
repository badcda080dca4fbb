//! Running the configured methods over member data and combining their flags.

use std::collections::BTreeMap;

use bcfl_protos::bcfl as pb;
use pb::Feature;

use super::dbscan::{core_distances, dbscan, flagged, standardized_points};
use super::features::{
    bandwidth_edges, commitment_feature, nearest_sketch_cosine_distances, others_mean_cosines,
    sample_norm_residuals, scale_floor,
};
use super::pagerank::{flag_outliers, pagerank, PageRankParams};
use super::stats::{self, Column};
use super::zscore::score_columns;
use super::AnomalyError;
use crate::fixed;

/// The PageRank settings used for the `PAGERANK_SCORE` feature when the consortium configures no
/// PageRank method: damping 0.85, k = 1, latency weights, at most 100 iterations, tolerance 1e-9.
pub fn default_pagerank() -> pb::PageRankConfig {
    pb::PageRankConfig {
        damping_ppm: 850_000,
        k_ppm: 1_000_000,
        weight: pb::PageRankWeight::LATENCY,
        max_iterations: 100,
        tolerance_ppb: 1,
        ..Default::default()
    }
}

/// The features DBSCAN and the modified z-score use by default.
pub const DEFAULT_FEATURES: [Feature; 2] = [
    Feature::UPDATE_NORM,
    Feature::CUMULATIVE_SKETCH_COSINE_DISTANCE,
];

/// The configuration `bcfl consortium init` writes by default, with only the chosen methods:
/// PageRank (damping 0.85, k = 1, latency weights, at most 100 iterations, tolerance 1000 ppb),
/// DBSCAN (eps 1.5, min_points 2) and the modified z-score (threshold 3.5), both over
/// [`DEFAULT_FEATURES`]; excluded when `min_votes` methods flag.
pub fn default_config(
    pagerank: bool,
    dbscan: bool,
    zscore: bool,
    min_votes: u32,
) -> pb::AnomalyConfig {
    let features = DEFAULT_FEATURES.to_vec();
    let mut c = pb::AnomalyConfig {
        ensemble_min_votes: min_votes,
        ..Default::default()
    };
    if pagerank {
        c.set_pagerank(pb::PageRankConfig {
            tolerance_ppb: 1000,
            ..default_pagerank()
        });
    }
    if dbscan {
        c.set_dbscan(pb::DbscanConfig {
            eps_ppm: 1_500_000,
            min_points: 2,
            features: features.clone(),
            ..Default::default()
        });
    }
    if zscore {
        c.set_zscore(pb::ZScoreConfig {
            threshold_ppm: 3_500_000,
            features,
            ..Default::default()
        });
    }
    c
}

/// `config` with DBSCAN and the modified z-score (where configured) over `features`.
pub fn with_features(mut config: pb::AnomalyConfig, features: &[Feature]) -> pb::AnomalyConfig {
    if config.has_dbscan() {
        config.mut_dbscan().features = features.to_vec();
    }
    if config.has_zscore() {
        config.mut_zscore().features = features.to_vec();
    }
    config
}

/// The features of [`every_attack_config`]: the default two, the coordinate sign balance
/// (crafted `mean - gamma * std` updates lie below the centre everywhere) and the
/// previous-change distance (a resent change lands on the previous round's).
pub const EVERY_ATTACK_FEATURES: [Feature; 4] = [
    Feature::UPDATE_NORM,
    Feature::CUMULATIVE_SKETCH_COSINE_DISTANCE,
    Feature::COORDINATE_SIGN_BALANCE,
    Feature::PREVIOUS_CHANGE_DISTANCE,
];

/// The voting features for skewed shards (`--skewed-shards` beside a preset): the update norm
/// and the coordinate sign balance. With shards as skewed as Dirichlet 0.1 (most members hold
/// one or two classes), honest members holding a class few others hold lie as far from the
/// consensus as an attacker: on the attack benchmark (10 members, seeds 100-102, rounds 2-6)
/// their cumulative sketch distance reached 3.28 times the round's median, where with IID
/// shards no honest member passed 1.54 times it and label flippers lay at 2.41 times it and
/// beyond. DBSCAN and the z-score then excluded 52 honest member-rounds over
/// [`EVERY_ATTACK_FEATURES`] and 4 over these two, which still find scaled updates (the norm)
/// and crafted `mean - gamma std` ones (the balance); the opposed-change method reads the
/// cumulative distance on its own. With IID shards the cumulative distance is what finds label
/// flippers and a lone ALIE attacker, so these are for skewed shards only
/// (docs/anomaly-detection.md, "Skewed shards").
pub const SKEWED_SHARDS_FEATURES: [Feature; 2] =
    [Feature::UPDATE_NORM, Feature::COORDINATE_SIGN_BALANCE];

/// The coordinates per commitment [`every_attack_config`] was measured with
/// (`coordinate_samples`; its features need some).
pub const EVERY_ATTACK_COORDINATE_SAMPLES: u32 = 256;

/// DBSCAN's radius in [`every_attack_config`], ppm.
pub const EVERY_ATTACK_DBSCAN_EPS_PPM: u32 = 3_500_000;

/// The duplicate method's distance in [`every_attack_config`], ppm: sketches at cosine
/// similarity 0.999 or more. Colluders sending one crafted update sit at 0; the closest honest
/// pair on the attack benchmark, 0.031 (Dirichlet 0.1 shards, where two members can hold nearly
/// one class each), and 0.13 with IID shards.
pub const EVERY_ATTACK_DUPLICATE_DISTANCE_PPM: u32 = 1_000;

/// The unchanged-update method's norm ratio in [`every_attack_config`], ppm: a hundredth of
/// the round's median norm or less. A free rider's update is 0; the smallest honest norm on
/// the attack benchmark lay at 0.22 of its round's median (Dirichlet 0.1 shards, where a
/// member may hold few samples) and 0.94 with IID shards (10 members, seeds 0-2).
pub const EVERY_ATTACK_UNCHANGED_RATIO_PPM: u32 = 10_000;

/// The resent-change method's distance in [`every_attack_config`], ppm: within 5 % of the
/// previous change's length. Stale riders on the attack benchmark lay within 0.018 of it (the
/// kept change is a mean of committed coordinate steps, rounded to 127 levels); the closest
/// honest member 0.35 with Dirichlet 0.1 shards and 0.62 with IID shards (10 members, seeds
/// 0-2, rounds 2-6).
pub const EVERY_ATTACK_RESENT_DISTANCE_PPM: u32 = 50_000;

/// The inconsistent-change method's cosine as measured on the attack benchmark, ppm (`bcfl
/// consortium init --inconsistent-cosine`'s default): a change whose cosine with the member's
/// own previous one is below 0.25, four times the `1/√K` spread of a fresh random change's at
/// 256 coordinates (0.0625). On the attack benchmark's classic attacks
/// with Dirichlet 0.1 shards (seeds 0-2, rounds 2-6) the noise senders lay at -0.18 to 0.20 and
/// the closest of 6,037 honest member-rounds at 0.44 (20 members; 0.57 at 10), where a sign
/// flipper, a scaler or a label flipper keeps its direction (0.45 and up). Not in
/// [`every_attack_config`]: members fine-tuning LoRA adapters with AdamW change direction from
/// round to round at most positions (the optimizer's steps on adapter weights with little
/// gradient have random signs), and honest members of the quick start's model measured 0.09 to
/// 0.29 there at 256 coordinates, where this limit excludes most of them; with 4096 coordinates
/// see [`LORA_INCONSISTENT_MIN_COSINE_PPM`].
pub const INCONSISTENT_MIN_COSINE_PPM: u32 = 250_000;

/// The coordinates per commitment of the `every-attack-lora` preset: enough that the
/// inconsistent-change method's cosine tells a noise sender from a member fine-tuning LoRA
/// adapters with AdamW, whose honest changes keep only a weak direction from round to round
/// ([`LORA_INCONSISTENT_MIN_COSINE_PPM`]). Each costs a byte a commitment.
pub const LORA_COORDINATE_SAMPLES: u32 = 4096;

/// The inconsistent-change method's cosine for members fine-tuning LoRA adapters with AdamW at
/// [`LORA_COORDINATE_SAMPLES`], ppm: 0.0625, four times the `1/√K` spread of a fresh random
/// change's at 4096 coordinates, the rule [`INCONSISTENT_MIN_COSINE_PPM`] follows at 256.
/// Through member processes of the quick start's model (10 members, two Gaussian noise senders,
/// Dirichlet 0.1 shards on seeds 42, 1 and 2 and IID ones on 42, and two clean runs; rounds
/// 2-5; docs/anomaly-detection.md, "Noise senders among LoRA members") the honest members'
/// cosines lay at 0.128 and up (208 member-rounds), the noise senders' at -0.025 to 0.028. At 256 coordinates the honest ones spread over 0.09-0.29 and a
/// random change's over about ±0.19, so no limit separated them there.
pub const LORA_INCONSISTENT_MIN_COSINE_PPM: u32 = 62_500;

/// The ascent method's limit, ppm (`bcfl consortium init --ascent-response`'s default): 0.05.
/// Steps down a convex loss respond against the model's moves, below 0 (see
/// [`super::features`], "Why a move-response feature"), but a member whose change barely
/// responds lies near 0 either way: on the attack benchmark at 20 members (Dirichlet 0.1, seeds
/// 0-2) one honest member lay at -0.019 in the sign-flip cells and just above 0 in five cells
/// with other attackers, where a limit of 0 flagged it; sign flippers lay at 0.065 and up (0.10
/// at 10 members). Not in [`every_attack_config`], whose
/// measured grids predate it, and members fine-tuning LoRA adapters with AdamW do not take steps
/// down a convex loss: through member processes a sign flipper's response lay below 0 there
/// (docs/anomaly-detection.md, "Steps that climb").
pub const ASCENT_MAX_RESPONSE_PPM: u32 = 50_000;

/// The mislabelled-change method's limit, ppm (`bcfl consortium init --mislabelled-margin`'s
/// default): -0.03. Over the honest FedAvg of 10 members with Dirichlet 0.1 shards on the real
/// embeddings (seeds 0-2, six rounds, 256 sampled coordinates, the class means of 500 held-out
/// rows), the mean margin over a member's rounds lay below 0 for 4 of 180 honest member-rounds,
/// down to -0.023, and for 175 of 180 label-flipped ones; on the attack benchmark's classic
/// Dirichlet grid (10 members, seeds 0-2) a limit of 0 flagged five honest member-rounds a
/// cell, this one one, but on seeds 100-102 and at 20 members this one flagged two to seven,
/// honest members whose margins drift down as the model learns their classes
/// (docs/anomaly-detection.md, "Labels that lie"). Not in [`every_attack_config`]: the method
/// needs a reference the consortium agrees on, and costs grids the honest members it flags.
pub const MISLABELLED_MIN_MARGIN_PPM: i32 = -30_000;

/// The opposed-change method's distance in [`every_attack_config`], ppm: sketches summed over
/// the rounds at cosine -0.7 or less with the consensus (`CUMULATIVE_SKETCH_COSINE_DISTANCE`
/// 1.7 or more). With Dirichlet 0.1 shards a lone IPM attacker (the honest mean times -0.1)
/// lay at 1.61-1.94 from its first round on, and the farthest of 3,510 honest member-rounds at
/// 1.62 (10 and 20 members, seeds 0-2 and 100-102, six rounds; two honest member-rounds at 1.5
/// or more, both where undetected sign flippers were inside the consensus).
pub const EVERY_ATTACK_OPPOSED_DISTANCE_PPM: u32 = 1_700_000;

/// The oversized-update method's limit in [`every_attack_config`], ppm of natural-log units:
/// an update norm four times what the round's norms predict for the member's sample count
/// (`SAMPLE_NORM_RESIDUAL` ln 4 = 1.386294 or more). On the attack benchmark's Dirichlet 0.1
/// grids (10 members, four grids, six rounds) honest members lay at 1.20 and below, 310 of 324
/// scaler member-rounds (ten times their own update) above it
/// ([`super::features::sample_norm_residuals`]).
pub const EVERY_ATTACK_OVERSIZED_RESIDUAL_PPM: u32 = 1_386_294;

/// The mean-copy method's limit (`bcfl consortium init --mean-copy-cosine`'s default), ppm: a
/// sketch at cosine 0.95 or more with the others' mean update as their sketches tell it
/// (`OTHERS_MEAN_COSINE`). In full dimension honest members lay at 0.84 and below on the
/// attack benchmark's head (IID and Dirichlet 0.1 shards), a member sending the others' mean at
/// 1; on the attack benchmark's sketches a lone ALIE attacker lay at 0.99 and above, honest
/// members at 0.93 and below (0.93 beside a scaler whose tenfold update dominated the others'
/// mean). Not in [`every_attack_config`] (docs/anomaly-detection.md, "Copies of the others'
/// mean").
pub const MEAN_COPY_MIN_COSINE_PPM: u32 = 950_000;

/// One configuration for every attack of the attack benchmark (docs/anomaly-detection.md, "One
/// configuration for every attack"; `bcfl consortium init --anomaly-preset every-attack`): DBSCAN (robust
/// standardization, radius 3.5, min_points 2) and the modified z-score (threshold 3.5), both
/// over [`EVERY_ATTACK_FEATURES`], a member excluded when both flag it, or when its sketch
/// duplicates another committer's ([`EVERY_ATTACK_DUPLICATE_DISTANCE_PPM`]) or its update
/// changes next to nothing ([`EVERY_ATTACK_UNCHANGED_RATIO_PPM`]), resends the global
/// model's previous change ([`EVERY_ATTACK_RESENT_DISTANCE_PPM`]) or works against the
/// consensus ([`EVERY_ATTACK_OPPOSED_DISTANCE_PPM`]) or is several times longer than its sample
/// count predicts ([`EVERY_ATTACK_OVERSIZED_RESIDUAL_PPM`]); no PageRank,
/// whose mean ± 1 std rule flags a third of the members on any link graph. The consortium must
/// sample coordinates ([`EVERY_ATTACK_COORDINATE_SAMPLES`] as measured). Copies are counted
/// each towards the voting methods' scales: counting them once (`count_copies_once`) flagged
/// fewer honest members on the seeds where it was found and more on others (docs/anomaly-detection.md,
/// "Copies counted once").
pub fn every_attack_config() -> pb::AnomalyConfig {
    let mut config = with_features(default_config(false, true, true, 2), &EVERY_ATTACK_FEATURES);
    config.mut_dbscan().robust = true;
    config.mut_dbscan().eps_ppm = EVERY_ATTACK_DBSCAN_EPS_PPM;
    config.mut_duplicate().max_distance_ppm = EVERY_ATTACK_DUPLICATE_DISTANCE_PPM;
    config.mut_unchanged().max_norm_ratio_ppm = EVERY_ATTACK_UNCHANGED_RATIO_PPM;
    config.mut_resent().max_distance_ppm = EVERY_ATTACK_RESENT_DISTANCE_PPM;
    config.mut_opposed().min_distance_ppm = EVERY_ATTACK_OPPOSED_DISTANCE_PPM;
    config.mut_oversized().min_residual_ppm = EVERY_ATTACK_OVERSIZED_RESIDUAL_PPM;
    config
}

const FEATURE_NAMES: [(Feature, &str); 16] = [
    (Feature::UPDATE_NORM, "update_norm"),
    (Feature::SKETCH_COSINE_DISTANCE, "sketch_cosine_distance"),
    (Feature::TRAINING_LOSS, "training_loss"),
    (Feature::SAMPLE_COUNT, "sample_count"),
    (Feature::BANDWIDTH_IN, "bandwidth_in"),
    (Feature::BANDWIDTH_OUT, "bandwidth_out"),
    (Feature::PAGERANK_SCORE, "pagerank_score"),
    (
        Feature::CUMULATIVE_SKETCH_COSINE_DISTANCE,
        "cumulative_sketch_cosine_distance",
    ),
    (
        Feature::NEAREST_SKETCH_COSINE_DISTANCE,
        "nearest_sketch_cosine_distance",
    ),
    (Feature::COORDINATE_SIGN_BALANCE, "coordinate_sign_balance"),
    (
        Feature::PREVIOUS_CHANGE_DISTANCE,
        "previous_change_distance",
    ),
    (Feature::OWN_CHANGE_COSINE, "own_change_cosine"),
    (Feature::MOVE_RESPONSE, "move_response"),
    (Feature::REFERENCE_MARGIN, "reference_margin"),
    (Feature::SAMPLE_NORM_RESIDUAL, "sample_norm_residual"),
    (Feature::OTHERS_MEAN_COSINE, "others_mean_cosine"),
];

/// The features [`MemberData::from_evidence`] leaves to be computed when a method asks for
/// them: PageRank, the nearest-sketch distance and the sample-norm residual (the last two
/// quadratic in the committers), and the cosine with the others' mean (read only by the opt-in
/// mean-copy method, from the sketches and norms the data already holds).
const ON_DEMAND: [Feature; 4] = [
    Feature::PAGERANK_SCORE,
    Feature::NEAREST_SKETCH_COSINE_DISTANCE,
    Feature::SAMPLE_NORM_RESIDUAL,
    Feature::OTHERS_MEAN_COSINE,
];

/// The lower-case name of a method (`pagerank`, `dbscan`, `zscore`, `duplicate`, `unchanged`,
/// `resent`, `inconsistent`, `opposed`, `ascent`, `mislabelled`, `oversized`, `mean_copy`;
/// `unset`), as
/// the CLI and the round summaries print it.
pub fn method_name(method: pb::AnomalyMethod) -> &'static str {
    match method {
        pb::AnomalyMethod::PAGERANK => "pagerank",
        pb::AnomalyMethod::DBSCAN => "dbscan",
        pb::AnomalyMethod::MODIFIED_ZSCORE => "zscore",
        pb::AnomalyMethod::DUPLICATE => "duplicate",
        pb::AnomalyMethod::UNCHANGED => "unchanged",
        pb::AnomalyMethod::RESENT => "resent",
        pb::AnomalyMethod::INCONSISTENT => "inconsistent",
        pb::AnomalyMethod::OPPOSED => "opposed",
        pb::AnomalyMethod::ASCENT => "ascent",
        pb::AnomalyMethod::MISLABELLED => "mislabelled",
        pb::AnomalyMethod::OVERSIZED => "oversized",
        pb::AnomalyMethod::MEAN_COPY => "mean_copy",
        pb::AnomalyMethod::ANOMALY_METHOD_UNSET => "unset",
    }
}

/// The methods `config` runs, in the order [`evaluate()`] runs them (PageRank, DBSCAN, the
/// modified z-score, the duplicate, unchanged-update, resent-change, inconsistent-change,
/// opposed-change, ascent, mislabelled-change, oversized-update and mean-copy methods).
fn configured_methods(config: &pb::AnomalyConfig) -> Vec<pb::AnomalyMethod> {
    [
        (config.has_pagerank(), pb::AnomalyMethod::PAGERANK),
        (config.has_dbscan(), pb::AnomalyMethod::DBSCAN),
        (config.has_zscore(), pb::AnomalyMethod::MODIFIED_ZSCORE),
        (config.has_duplicate(), pb::AnomalyMethod::DUPLICATE),
        (config.has_unchanged(), pb::AnomalyMethod::UNCHANGED),
        (config.has_resent(), pb::AnomalyMethod::RESENT),
        (config.has_inconsistent(), pb::AnomalyMethod::INCONSISTENT),
        (config.has_opposed(), pb::AnomalyMethod::OPPOSED),
        (config.has_ascent(), pb::AnomalyMethod::ASCENT),
        (config.has_mislabelled(), pb::AnomalyMethod::MISLABELLED),
        (config.has_oversized(), pb::AnomalyMethod::OVERSIZED),
        (config.has_mean_copy(), pb::AnomalyMethod::MEAN_COPY),
    ]
    .into_iter()
    .filter_map(|(on, method)| on.then_some(method))
    .collect()
}

/// The names ([`method_name`]) of the methods `config` runs, in the order [`evaluate()`] runs
/// them: what the demo's heading and the auditor's page list.
pub fn configured_method_names(config: &pb::AnomalyConfig) -> Vec<&'static str> {
    configured_methods(config)
        .into_iter()
        .map(method_name)
        .collect()
}

/// The snake-case name of a feature (`update_norm`, ..., `pagerank_score`; `unset`).
pub fn feature_name(feature: Feature) -> &'static str {
    FEATURE_NAMES
        .iter()
        .find(|(f, _)| *f == feature)
        .map_or("unset", |(_, name)| name)
}

/// The feature named `name` (as [`feature_name`] writes it, case-insensitive, `-` for `_`
/// accepted as the CLI writes it).
pub fn parse_feature(name: &str) -> Option<Feature> {
    let name = name.trim().replace('-', "_");
    FEATURE_NAMES
        .iter()
        .find(|(_, n)| n.eq_ignore_ascii_case(&name))
        .map(|(f, _)| *f)
}

/// What the methods run on: members in key order, feature columns, and measured bandwidths.
#[derive(Clone, Debug, PartialEq)]
pub struct MemberData {
    members: Vec<String>,
    columns: BTreeMap<i32, Vec<f64>>,
    /// Each column's scale floor ([`scale_floor`]); a feature without an entry has none.
    floors: BTreeMap<i32, f64>,
    edges: Vec<(usize, usize, f64)>,
    /// The committers' sketches (from evidence; empty for explicit columns), for the features
    /// computed on demand.
    sketches: Vec<Vec<i32>>,
}

impl MemberData {
    /// Member data from explicit columns and `(from, to, bytes_per_sec)` edges over member
    /// indices. Members must be sorted and unique; every column needs one finite value per member.
    pub fn new(
        members: Vec<String>,
        columns: Vec<(Feature, Vec<f64>)>,
        edges: Vec<(usize, usize, f64)>,
    ) -> Result<Self, AnomalyError> {
        if let Some(pair) = members.windows(2).find(|w| w[0] >= w[1]) {
            return Err(AnomalyError::MemberOrder(pair[1].clone()));
        }
        let n = members.len();
        let mut map = BTreeMap::new();
        for (feature, values) in columns {
            if values.len() != n {
                return Err(AnomalyError::ColumnLength {
                    feature,
                    expected: n,
                    found: values.len(),
                });
            }
            if let Some(m) = values.iter().position(|v| !v.is_finite()) {
                return Err(AnomalyError::NotFinite {
                    feature,
                    member: members[m].clone(),
                });
            }
            map.insert(feature as i32, values);
        }
        if let Some(&(i, j, _)) = edges.iter().find(|(i, j, _)| *i >= n || *j >= n) {
            return Err(AnomalyError::EdgeOutOfRange {
                index: i.max(j),
                members: n,
            });
        }
        let mut edges = edges;
        edges.sort_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)).then(a.2.total_cmp(&b.2)));
        Ok(Self {
            members,
            columns: map,
            floors: BTreeMap::new(),
            edges,
            sketches: Vec::new(),
        })
    }

    /// Member data of a round: `commitments` (one per committer, any order), the measured
    /// links among the committers (used where both ends agree within `link_agreement_ppm`,
    /// [`bandwidth_edges`]) and the sketch history of the earlier evaluated rounds (the
    /// default, empty history before the first). Every feature but four
    /// (`PAGERANK_SCORE`, `NEAREST_SKETCH_COSINE_DISTANCE`, `SAMPLE_NORM_RESIDUAL`,
    /// `OTHERS_MEAN_COSINE`) is computed here; those when a method asks.
    pub fn from_evidence(
        commitments: &[pb::Commitment],
        links: &[pb::Link],
        history: &pb::SketchHistory,
        link_agreement_ppm: u32,
    ) -> Self {
        let mut sorted: Vec<&pb::Commitment> = commitments.iter().collect();
        sorted.sort_by(|a, b| a.member.cmp(&b.member));
        let sorted: Vec<pb::Commitment> = sorted.into_iter().cloned().collect();
        let members: Vec<String> = sorted.iter().map(|c| c.member.clone()).collect();
        let edges = bandwidth_edges(&members, links, link_agreement_ppm);
        let columns: BTreeMap<i32, Vec<f64>> = FEATURE_NAMES
            .iter()
            .filter(|(f, _)| !ON_DEMAND.contains(f))
            .map(|(f, _)| {
                (
                    *f as i32,
                    commitment_feature(*f, &sorted, history, &edges, &[]),
                )
            })
            .collect();
        let floors = FEATURE_NAMES
            .iter()
            .filter_map(|(f, _)| {
                let values = columns.get(&(*f as i32))?;
                Some((*f as i32, scale_floor(*f, &sorted, values)))
            })
            .filter(|(_, floor)| *floor > 0.0)
            .collect();
        Self {
            members,
            columns,
            floors,
            edges,
            sketches: sorted.iter().map(pb::Commitment::sketch_values).collect(),
        }
    }

    /// For every member, whether its sketch is a copy: non-empty and equal to the sketch of a
    /// member before it in key order (the first of a group of identical sketches is not).
    pub fn copies(&self) -> Vec<bool> {
        let mut seen = std::collections::BTreeSet::new();
        self.sketches
            .iter()
            .map(|sketch| !sketch.is_empty() && !seen.insert(sketch.as_slice()))
            .collect()
    }

    /// The members, in key order.
    pub fn members(&self) -> &[String] {
        &self.members
    }

    /// The measured bandwidth edges `(from, to, bytes_per_sec)`, in (from, to) order.
    pub fn edges(&self) -> &[(usize, usize, f64)] {
        &self.edges
    }

    /// A feature column, if present.
    pub fn column(&self, feature: Feature) -> Option<&[f64]> {
        self.columns.get(&(feature as i32)).map(Vec::as_slice)
    }

    /// A feature's scale floor ([`scale_floor`]; 0 for columns given explicitly).
    pub fn floor(&self, feature: Feature) -> f64 {
        self.floors.get(&(feature as i32)).copied().unwrap_or(0.0)
    }

    /// PageRank over the bandwidth graph with `config`'s damping, weight and stopping rule.
    pub fn pagerank(&self, config: &pb::PageRankConfig) -> Vec<f64> {
        let latency = config.weight != pb::PageRankWeight::BANDWIDTH;
        let edges: Vec<(usize, usize, f64)> = self
            .edges
            .iter()
            .map(|&(i, j, b)| (i, j, if latency { 1.0 / b } else { b }))
            .collect();
        let params = PageRankParams {
            damping: fixed::ppm_to_f64(config.damping_ppm),
            max_iterations: config.max_iterations,
            tolerance: fixed::ppb_to_f64(config.tolerance_ppb),
        };
        pagerank(self.members.len(), &edges, &params).ranks
    }

    /// The columns of `features` (sorted, without repeats), each counting the members not
    /// `left_out` towards its centre and scale.
    fn columns_for(
        &self,
        features: &[Feature],
        left_out: &[bool],
        pagerank: &mut Option<Vec<f64>>,
        pagerank_config: &pb::PageRankConfig,
    ) -> Result<Vec<Column>, AnomalyError> {
        let mut sorted = features.to_vec();
        sorted.sort_by_key(|f| *f as i32);
        sorted.dedup();
        sorted
            .into_iter()
            .map(|f| {
                self.values_of(f, pagerank, pagerank_config)
                    .map(|values| Column {
                        values,
                        floor: self.floor(f),
                        left_out: left_out.to_vec(),
                    })
            })
            .collect()
    }

    fn values_of(
        &self,
        f: Feature,
        pagerank: &mut Option<Vec<f64>>,
        pagerank_config: &pb::PageRankConfig,
    ) -> Result<Vec<f64>, AnomalyError> {
        match (self.column(f), f) {
            (Some(c), _) => Ok(c.to_vec()),
            (None, Feature::PAGERANK_SCORE) => Ok(pagerank
                .get_or_insert_with(|| self.pagerank(pagerank_config))
                .clone()),
            (None, Feature::NEAREST_SKETCH_COSINE_DISTANCE)
                if self.sketches.len() == self.members.len() =>
            {
                let sketches: Vec<&[i32]> = self.sketches.iter().map(Vec::as_slice).collect();
                Ok(nearest_sketch_cosine_distances(&sketches))
            }
            (None, Feature::OTHERS_MEAN_COSINE) if self.sketches.len() == self.members.len() => {
                let norms = self
                    .column(Feature::UPDATE_NORM)
                    .ok_or(AnomalyError::MissingFeature(Feature::UPDATE_NORM))?;
                let sketches: Vec<&[i32]> = self.sketches.iter().map(Vec::as_slice).collect();
                Ok(others_mean_cosines(&sketches, norms))
            }
            (None, Feature::SAMPLE_NORM_RESIDUAL) => {
                match (
                    self.column(Feature::UPDATE_NORM),
                    self.column(Feature::SAMPLE_COUNT),
                ) {
                    (Some(norms), Some(samples)) => Ok(sample_norm_residuals(norms, samples)),
                    _ => Err(AnomalyError::MissingFeature(f)),
                }
            }
            (None, _) => Err(AnomalyError::MissingFeature(f)),
        }
    }
}

/// The outcome of the configured methods.
#[derive(Clone, Debug, PartialEq)]
pub struct Evaluation {
    /// The members scored, in the evidence's order (sorted by key on chain): every method's
    /// scores are aligned with them.
    pub scored: Vec<String>,
    /// One entry per configured method, in the order PageRank, DBSCAN, modified z-score,
    /// duplicate, unchanged, resent, inconsistent, opposed, ascent, mislabelled, oversized,
    /// mean-copy; read them with
    /// [`member_scores`].
    pub methods: Vec<pb::MethodVerdict>,
    /// Members flagged by at least `max(1, ensemble_min_votes)` of PageRank, DBSCAN and the
    /// modified z-score, or by the duplicate, unchanged-update, resent-change,
    /// inconsistent-change, opposed-change, ascent, mislabelled-change, oversized-update or
    /// mean-copy method, sorted.
    pub excluded: Vec<String>,
    /// The other members, sorted.
    pub accepted: Vec<String>,
}

/// One member's score by one method, read from a [`pb::MethodVerdict`] and the members it is
/// aligned with ([`Evaluation::scored`], a stored verdict's `scored()`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemberScore<'a> {
    /// The member's public key.
    pub member: &'a str,
    /// Its score (micro-units; what it means depends on the method).
    pub score_micro: i64,
    /// Whether the method flagged it.
    pub flagged: bool,
}

/// The scores of `method`, one per member of `scored`, in its order. A score the method does not
/// hold reads as 0 (a verdict the processor wrote holds one for each).
pub fn member_scores<'a>(
    scored: &'a [String],
    method: &'a pb::MethodVerdict,
) -> impl Iterator<Item = MemberScore<'a>> + 'a {
    scored
        .iter()
        .enumerate()
        .map(move |(i, member)| MemberScore {
            member,
            score_micro: method.scores_micro.get(i).copied().unwrap_or(0),
            flagged: u32::try_from(i).is_ok_and(|i| method.flagged.binary_search(&i).is_ok()),
        })
}

fn method_verdict(method: pb::AnomalyMethod, scores: &[f64], flags: &[bool]) -> pb::MethodVerdict {
    pb::MethodVerdict {
        method,
        scores_micro: scores.iter().map(|s| fixed::saturating_micro(*s)).collect(),
        flagged: flags
            .iter()
            .enumerate()
            .filter(|(_, f)| **f)
            .map(|(i, _)| u32::try_from(i).expect("fewer than 2^32 members"))
            .collect(),
        ..Default::default()
    }
}

/// Runs every method `config` configures over `data` and combines the flags.
pub fn evaluate(config: &pb::AnomalyConfig, data: &MemberData) -> Result<Evaluation, AnomalyError> {
    let members = &data.members;
    let n = members.len();
    let pagerank_config = if config.has_pagerank() {
        config.get_pagerank().clone()
    } else {
        default_pagerank()
    };
    let mut ranks: Option<Vec<f64>> = data.column(Feature::PAGERANK_SCORE).map(<[f64]>::to_vec);
    let mut methods = Vec::new();
    if config.has_pagerank() {
        let r = ranks
            .get_or_insert_with(|| data.pagerank(&pagerank_config))
            .clone();
        let flags = flag_outliers(&r, pagerank_config.k_ppm);
        methods.push(method_verdict(pb::AnomalyMethod::PAGERANK, &r, &flags));
    }
    // The methods whose flag excludes on its own instead of casting a vote, first: the
    // duplicate, unchanged-update, resent-change, inconsistent-change, opposed-change, ascent,
    // mislabelled-change, oversized-update and mean-copy methods, whose flags are evidence that
    // the member did not train on data of its own with its true labels (it sent a copy, the
    // model it was given, the model's last change back, a change unrelated to its own previous
    // one, changes that undo the consortium's, changes that climb its own loss, changes that
    // move the classes towards other classes' features, a change several times longer than its
    // data makes, or the others' mean), wherever its update lies. With
    // `dbscan_without_excluded` DBSCAN below clusters the others without the members they flag.
    let mut alone = Vec::new();
    if config.has_duplicate() {
        let nearest = data.values_of(
            Feature::NEAREST_SKETCH_COSINE_DISTANCE,
            &mut ranks,
            &pagerank_config,
        )?;
        let limit = config.get_duplicate().max_distance_ppm;
        alone.push(at_most(pb::AnomalyMethod::DUPLICATE, &nearest, limit));
    }
    if config.has_unchanged() {
        let ratio = fixed::ppm_to_f64(config.get_unchanged().max_norm_ratio_ppm);
        let norms = data.values_of(Feature::UPDATE_NORM, &mut ranks, &pagerank_config)?;
        let (scores, flags) = unchanged(&norms, ratio);
        alone.push(method_verdict(
            pb::AnomalyMethod::UNCHANGED,
            &scores,
            &flags,
        ));
    }
    if config.has_resent() {
        let distances = data.values_of(
            Feature::PREVIOUS_CHANGE_DISTANCE,
            &mut ranks,
            &pagerank_config,
        )?;
        let limit = config.get_resent().max_distance_ppm;
        alone.push(at_most(pb::AnomalyMethod::RESENT, &distances, limit));
    }
    if config.has_inconsistent() {
        let cosines = data.values_of(Feature::OWN_CHANGE_COSINE, &mut ranks, &pagerank_config)?;
        let limit = fixed::ppm_to_f64(config.get_inconsistent().min_cosine_ppm);
        alone.push(by_value(pb::AnomalyMethod::INCONSISTENT, &cosines, |c| {
            c < limit
        }));
    }
    if config.has_opposed() {
        let distances = data.values_of(
            Feature::CUMULATIVE_SKETCH_COSINE_DISTANCE,
            &mut ranks,
            &pagerank_config,
        )?;
        let limit = fixed::ppm_to_f64(config.get_opposed().min_distance_ppm);
        alone.push(by_value(pb::AnomalyMethod::OPPOSED, &distances, |d| {
            d >= limit
        }));
    }
    if config.has_ascent() {
        let responses = data.values_of(Feature::MOVE_RESPONSE, &mut ranks, &pagerank_config)?;
        let limit = fixed::ppm_to_f64(config.get_ascent().max_response_ppm);
        alone.push(by_value(pb::AnomalyMethod::ASCENT, &responses, |r| {
            r > limit
        }));
    }
    if config.has_mislabelled() {
        let margins = data.values_of(Feature::REFERENCE_MARGIN, &mut ranks, &pagerank_config)?;
        let limit = fixed::micro_to_f64(i64::from(config.get_mislabelled().min_margin_ppm));
        alone.push(by_value(pb::AnomalyMethod::MISLABELLED, &margins, |m| {
            m < limit
        }));
    }
    if config.has_oversized() {
        let residuals =
            data.values_of(Feature::SAMPLE_NORM_RESIDUAL, &mut ranks, &pagerank_config)?;
        let limit = fixed::ppm_to_f64(config.get_oversized().min_residual_ppm);
        alone.push(by_value(pb::AnomalyMethod::OVERSIZED, &residuals, |r| {
            r >= limit
        }));
    }
    if config.has_mean_copy() {
        let cosines = data.values_of(Feature::OTHERS_MEAN_COSINE, &mut ranks, &pagerank_config)?;
        let limit = fixed::ppm_to_f64(config.get_mean_copy().min_cosine_ppm);
        alone.push(by_value(pb::AnomalyMethod::MEAN_COPY, &cosines, |c| {
            c >= limit
        }));
    }
    let left_out = if config.count_copies_once {
        data.copies()
    } else {
        Vec::new()
    };
    let mut evidence = vec![false; n];
    for &i in alone.iter().flat_map(|m| &m.flagged) {
        evidence[i as usize] = true;
    }
    // Were every member caught, there would be no one else: all are clustered.
    let clustered: Vec<usize> = if config.dbscan_without_excluded && evidence.contains(&false) {
        (0..n).filter(|&i| !evidence[i]).collect()
    } else {
        (0..n).collect()
    };
    if config.has_dbscan() {
        let d = config.get_dbscan();
        let columns = data.columns_for(&d.features, &left_out, &mut ranks, &pagerank_config)?;
        let points = standardized_points(&columns, n, d.robust);
        let min_points = d.min_points as usize;
        let scores = core_distances(&points, min_points);
        let kept: Vec<Vec<f64>> = clustered.iter().map(|&i| points[i].clone()).collect();
        let labels = dbscan(&kept, fixed::ppm_to_f64(d.eps_ppm), min_points);
        let mut flags = vec![false; n];
        for (&i, flag) in clustered.iter().zip(flagged(&labels)) {
            flags[i] = flag;
        }
        methods.push(method_verdict(pb::AnomalyMethod::DBSCAN, &scores, &flags));
    }
    if config.has_zscore() {
        let z = config.get_zscore();
        let columns = data.columns_for(&z.features, &left_out, &mut ranks, &pagerank_config)?;
        let outcomes = score_columns(&columns, n, fixed::ppm_to_f64(z.threshold_ppm));
        let scores: Vec<f64> = outcomes.iter().map(|o| o.score).collect();
        let flags: Vec<bool> = outcomes.iter().map(|o| o.flagged).collect();
        methods.push(method_verdict(
            pb::AnomalyMethod::MODIFIED_ZSCORE,
            &scores,
            &flags,
        ));
    }
    // Only the voting methods are in `methods` so far.
    let mut votes = vec![0usize; n];
    for &i in methods.iter().flat_map(|m| &m.flagged) {
        votes[i as usize] += 1;
    }
    methods.extend(alone);
    let needed = config.ensemble_min_votes.max(1) as usize;
    let (mut excluded, mut accepted) = (Vec::new(), Vec::new());
    for ((member, votes), evidence) in members.iter().zip(votes).zip(evidence) {
        if votes >= needed || evidence {
            excluded.push(member.clone());
        } else {
            accepted.push(member.clone());
        }
    }
    Ok(Evaluation {
        scored: members.clone(),
        methods,
        excluded,
        accepted,
    })
}

/// Whether `config` reads each committer's own previous commitment ([`Feature::OWN_CHANGE_COSINE`]
/// and [`Feature::MOVE_RESPONSE`]: the inconsistent-change and ascent methods, or a voting
/// method's feature): only then does `EvaluateRound` read those commitments from state
/// ([`pb::SketchHistory::previous`]) and extend the members' response sums.
pub fn reads_own_previous(config: &pb::AnomalyConfig) -> bool {
    config.has_inconsistent()
        || config.has_ascent()
        || voting_features(config)
            .any(|f| matches!(*f, Feature::OWN_CHANGE_COSINE | Feature::MOVE_RESPONSE))
}

/// The features DBSCAN and the modified z-score read (with repeats; none for a method not
/// configured).
pub fn voting_features(config: &pb::AnomalyConfig) -> impl Iterator<Item = &Feature> {
    config
        .get_dbscan()
        .features
        .iter()
        .chain(&config.get_zscore().features)
}

/// A method that flags each member whose value is at most `limit_ppm / 10^6`, its score the
/// value (the duplicate and resent-change methods).
fn at_most(method: pb::AnomalyMethod, values: &[f64], limit_ppm: u32) -> pb::MethodVerdict {
    let limit = fixed::ppm_to_f64(limit_ppm);
    by_value(method, values, |v| v <= limit)
}

/// A method whose score is each member's value and which flags the values `flagged` says
/// (the duplicate, resent-change, inconsistent-change, opposed-change, ascent,
/// mislabelled-change, oversized-update and mean-copy methods).
fn by_value(
    method: pb::AnomalyMethod,
    values: &[f64],
    flagged: impl Fn(f64) -> bool,
) -> pb::MethodVerdict {
    let flags: Vec<bool> = values.iter().map(|&v| flagged(v)).collect();
    method_verdict(method, values, &flags)
}

/// The unchanged-update method over the committers' update norms: each member's norm over the
/// median norm (its score; 0 for a zero norm, saturating when only the median is 0), flagged
/// when the norm is at most `ratio` times the median (with `ratio` 0, only a zero norm).
fn unchanged(norms: &[f64], ratio: f64) -> (Vec<f64>, Vec<bool>) {
    let median = stats::median(norms);
    let scores = norms
        .iter()
        .map(|&norm| {
            if norm == 0.0 {
                0.0
            } else if median == 0.0 {
                f64::INFINITY
            } else {
                norm / median
            }
        })
        .collect();
    let flags = norms.iter().map(|&norm| norm <= ratio * median).collect();
    (scores, flags)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A commitment of `member` with update norm `norm` and sketch `sketch`, nothing else.
    fn commitment(member: &str, norm: f64, sketch: &[i32]) -> pb::Commitment {
        pb::Commitment {
            member: member.into(),
            norm_micro: (norm * 1e6) as u64,
            sketch: crate::testing::packed(sketch),
            ..Default::default()
        }
    }

    #[test]
    fn configured_methods_in_evaluation_order() {
        assert_eq!(
            configured_method_names(&every_attack_config()),
            [
                "dbscan",
                "zscore",
                "duplicate",
                "unchanged",
                "resent",
                "opposed",
                "oversized"
            ]
        );
        assert!(configured_methods(&pb::AnomalyConfig::default()).is_empty());
        let all = default_config(true, true, true, 1);
        assert_eq!(
            configured_method_names(&all),
            ["pagerank", "dbscan", "zscore"]
        );
    }

    #[test]
    fn feature_names_round_trip() {
        for (feature, name) in FEATURE_NAMES {
            assert_eq!(parse_feature(name), Some(feature));
            assert_eq!(feature_name(feature), name);
        }
        assert_eq!(parse_feature(" Update-Norm "), Some(Feature::UPDATE_NORM));
        assert_eq!(parse_feature("speed"), None);
        assert_eq!(feature_name(Feature::FEATURE_UNSET), "unset");
    }

    #[test]
    fn zscore_floor_spares_nearly_equal_norms_but_not_a_scaled_one() {
        // Equal IID shards: honest norms within a few per cent. 1.00 is 9 % below the median
        // 1.10 with a MAD of 0.01 (0.6745 * 0.1 / 0.01 = 6.7 without the floor); the floor
        // 0.05 * 1.10 makes it 1.8, unflagged. The x10 member stays far out.
        let members: Vec<String> = (0..7).map(|i| format!("m{i}")).collect();
        let norms = vec![1.10, 1.09, 1.11, 1.10, 1.12, 1.00, 11.0];
        let data = MemberData::new(members, vec![(Feature::UPDATE_NORM, norms)], vec![]).unwrap();
        let mut config = pb::AnomalyConfig::default();
        config.mut_zscore().threshold_ppm = 3_500_000;
        config.mut_zscore().features = vec![Feature::UPDATE_NORM];
        let e = evaluate(&config, &data).unwrap();
        assert_eq!(e.excluded, vec!["m6".to_owned()]);
        assert_eq!(e.methods[0].scores_micro[5], -1_818_182);
        // One score per member, aligned; the flag by index, read back per member.
        assert_eq!((e.scored.len(), e.methods[0].scores_micro.len()), (7, 7));
        assert_eq!(e.methods[0].flagged, vec![6]);
        let read: Vec<MemberScore<'_>> = member_scores(&e.scored, &e.methods[0]).collect();
        assert_eq!(read.len(), 7);
        assert_eq!(
            read[6],
            MemberScore {
                member: "m6",
                score_micro: e.methods[0].scores_micro[6],
                flagged: true
            }
        );
        assert!(read[..6].iter().all(|s| !s.flagged));
        // A method verdict shorter than its members (not one the processor writes) reads as 0.
        let short = pb::MethodVerdict::default();
        assert!(member_scores(&e.scored, &short).all(|s| s.score_micro == 0 && !s.flagged));
    }

    /// Colluders committing one crafted update share a sketch: the nearest-sketch distance,
    /// computed from the evidence only when asked for, singles them out where the norm cannot.
    #[test]
    fn the_nearest_sketch_distance_catches_members_that_send_one_update() {
        use super::super::attack::AttackKind;
        use super::super::simulate::{simulate_round, Scenario};
        let round = simulate_round(&Scenario {
            members: 10,
            attackers: 3,
            attack: AttackKind::MinMax,
            seed: 4,
        })
        .unwrap();
        let data =
            MemberData::from_evidence(&round.commitments, &round.links, &Default::default(), 0);
        assert!(data
            .column(Feature::NEAREST_SKETCH_COSINE_DISTANCE)
            .is_none());
        let zscore = |features: Vec<Feature>| {
            let mut config = pb::AnomalyConfig::default();
            config.mut_zscore().threshold_ppm = 3_500_000;
            config.mut_zscore().features = features;
            evaluate(&config, &data).unwrap().excluded
        };
        assert_ne!(zscore(vec![Feature::UPDATE_NORM]), round.attackers);
        assert_eq!(
            zscore(vec![Feature::NEAREST_SKETCH_COSINE_DISTANCE]),
            round.attackers
        );
        // Explicit columns without the sketches cannot compute it.
        let bare = MemberData::new(data.members().to_vec(), vec![], vec![]).unwrap();
        let mut config = pb::AnomalyConfig::default();
        config.mut_zscore().threshold_ppm = 3_500_000;
        config.mut_zscore().features = vec![Feature::NEAREST_SKETCH_COSINE_DISTANCE];
        assert_eq!(
            evaluate(&config, &bare).unwrap_err(),
            AnomalyError::MissingFeature(Feature::NEAREST_SKETCH_COSINE_DISTANCE)
        );
    }

    /// Members that commit one update between them share a sketch: the duplicate method flags
    /// them and excludes them whatever the voting methods say, while members whose sketches are
    /// merely close (as two honest members holding nearly one class each) and zero sketches
    /// (free riders: a cosine with a zero vector is undefined, distance 1) stay.
    #[test]
    fn the_duplicate_method_excludes_members_sharing_a_sketch_on_its_own() {
        let commitment = |member: &str, sketch: &[i32]| pb::Commitment {
            member: member.into(),
            sketch: crate::testing::packed(sketch),
            ..Default::default()
        };
        let commitments = vec![
            commitment("a", &[100, -20, 30, 5]),
            commitment("b", &[-8, 90, 4, 40]),
            // Close to "b" (cosine distance 0.0016) but not a copy.
            commitment("c", &[-8, 90, 4, 34]),
            commitment("d", &[50, 50, -50, 12]),
            commitment("e", &[0, 0, 0, 0]),
            commitment("f", &[0, 0, 0, 0]),
            // "g" and "h" send one crafted update; "h" scaled it, which a cosine ignores.
            commitment("g", &[-30, -30, -30, -30]),
            commitment("h", &[-60, -60, -60, -60]),
        ];
        let data = MemberData::from_evidence(&commitments, &[], &Default::default(), 0);
        let mut config = pb::AnomalyConfig {
            ensemble_min_votes: 2,
            ..Default::default()
        };
        // A z-score threshold no member reaches: the voting methods flag nobody.
        config.mut_zscore().threshold_ppm = 100_000_000;
        config.mut_zscore().features = vec![Feature::UPDATE_NORM];
        config.mut_duplicate().max_distance_ppm = 1_000;
        let e = evaluate(&config, &data).unwrap();
        assert_eq!(e.methods.len(), 2);
        assert!(e.methods[0].flagged.is_empty());
        let duplicate = &e.methods[1];
        assert_eq!(duplicate.method, pb::AnomalyMethod::DUPLICATE);
        assert_eq!(duplicate.flagged, vec![6, 7]);
        assert_eq!(e.excluded, vec!["g".to_owned(), "h".to_owned()]);
        // Its scores are the nearest-sketch distances, in micro-units: 0 for the copies, 1 for
        // the zero sketches, 1,614 (0.0016) for the close pair.
        let scores: Vec<i64> = member_scores(&e.scored, duplicate)
            .map(|s| s.score_micro)
            .collect();
        assert_eq!(&scores[4..], &[1_000_000, 1_000_000, 0, 0]);
        assert_eq!((scores[1], scores[2]), (1_614, 1_614));
        // A wider distance takes in the close pair; the method alone is a configuration.
        let mut wide = pb::AnomalyConfig::default();
        wide.mut_duplicate().max_distance_ppm = 2_000;
        let e = evaluate(&wide, &data).unwrap();
        assert_eq!(e.excluded, ["b", "c", "g", "h"].map(String::from).to_vec());
        assert_eq!(method_name(e.methods[0].method), "duplicate");
    }

    /// `dbscan_without_excluded` (the attack benchmark's case: ALIE with two of ten, Dirichlet
    /// 0.1 shards, seed 0, round 6): two colluders' copies sit among the honest members with
    /// small updates, so DBSCAN's cluster of the small ones is the larger and the four honest
    /// members with large updates are flagged. Clustered without the copies, which the duplicate
    /// method excludes on its own, the two clusters are as large and neither is flagged; the
    /// copies stay excluded, the scores stay, and the methods keep their order.
    #[test]
    fn dbscan_clusters_without_the_members_already_excluded() {
        let copy = [6, -6, 6, -6];
        let commitments = vec![
            commitment("a", 1.30, &[1, 2, 3, 4]),
            commitment("b", 1.35, &[4, 3, 2, 1]),
            commitment("c", 1.40, &[-1, 2, -3, 4]),
            commitment("d", 1.45, &[2, -1, 4, 1]),
            commitment("e", 1.38, &copy),
            commitment("f", 1.38, &copy),
            commitment("g", 2.60, &[5, 5, -5, 5]),
            commitment("h", 2.70, &[9, -9, 9, 9]),
            commitment("i", 2.80, &[-7, -7, 7, 7]),
            commitment("j", 2.90, &[3, -1, 4, -1]),
        ];
        let data = MemberData::from_evidence(&commitments, &[], &Default::default(), 0);
        let mut config = pb::AnomalyConfig {
            ensemble_min_votes: 1,
            ..Default::default()
        };
        config.set_dbscan(pb::DbscanConfig {
            eps_ppm: 500_000,
            min_points: 2,
            features: vec![Feature::UPDATE_NORM],
            ..Default::default()
        });
        config.mut_duplicate().max_distance_ppm = 1_000;
        let flagged_by = |e: &Evaluation, method: pb::AnomalyMethod| -> Vec<String> {
            let verdict = e.methods.iter().find(|m| m.method == method).unwrap();
            verdict
                .flagged
                .iter()
                .map(|&i| e.scored[i as usize].clone())
                .collect()
        };
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let every = evaluate(&config, &data).unwrap();
        assert_eq!(
            flagged_by(&every, pb::AnomalyMethod::DBSCAN),
            names(&["g", "h", "i", "j"])
        );
        assert_eq!(every.excluded, names(&["e", "f", "g", "h", "i", "j"]));
        config.dbscan_without_excluded = true;
        let without = evaluate(&config, &data).unwrap();
        assert!(flagged_by(&without, pb::AnomalyMethod::DBSCAN).is_empty());
        assert_eq!(without.excluded, names(&["e", "f"]));
        assert_eq!(without.scored, every.scored);
        let order = |e: &Evaluation| e.methods.iter().map(|m| m.method).collect::<Vec<_>>();
        assert_eq!(order(&without), order(&every));
        assert_eq!(
            order(&every),
            [pb::AnomalyMethod::DBSCAN, pb::AnomalyMethod::DUPLICATE]
        );
        // DBSCAN's scores (core distances among all) are as before.
        let dbscan = |e: &Evaluation| e.methods[0].scores_micro.clone();
        assert_eq!(dbscan(&without), dbscan(&every));
        assert_eq!(dbscan(&without).len(), 10);
        // Were every member a copy, no one else would be left: all are clustered, as without it.
        let copies: Vec<pb::Commitment> = ["x", "y", "z"]
            .iter()
            .map(|m| commitment(m, 1.0, &copy))
            .collect();
        let data = MemberData::from_evidence(&copies, &[], &Default::default(), 0);
        let caught = evaluate(&config, &data).unwrap();
        config.dbscan_without_excluded = false;
        assert_eq!(caught, evaluate(&config, &data).unwrap());
    }

    /// Three stale riders resend one change: identical sketches and norms, at the honest norms'
    /// median. Counted three times they shrink the norm's MAD to a fifth of the honest
    /// members' and the z-score flags four of the seven honest members (the attack benchmark's
    /// round that found it: Dirichlet 0.1 shards, seed 2, round 5). Counted once they leave the
    /// scale to the honest spread; every member is still scored.
    #[test]
    fn copies_count_once_towards_the_scale() {
        let rider = [7, -3, 5, 1];
        let commitments = vec![
            commitment("a", 0.70, &[1, 2, 3, 4]),
            commitment("b", 0.86, &[4, 3, 2, 1]),
            commitment("c", 1.02, &[-1, 2, -3, 4]),
            commitment("d", 0.97, &rider),
            commitment("e", 0.97, &rider),
            commitment("f", 0.97, &rider),
            commitment("g", 2.30, &[5, 5, -5, 5]),
            commitment("h", 2.55, &[9, -9, 9, 9]),
            commitment("i", 2.74, &[-7, -7, 7, 7]),
            commitment("j", 3.49, &[3, -1, 4, -1]),
        ];
        let data = MemberData::from_evidence(&commitments, &[], &Default::default(), 0);
        let mut flags = vec![false; 10];
        flags[4..6].fill(true);
        assert_eq!(data.copies(), flags, "the first of the group counts");
        let mut config = pb::AnomalyConfig::default();
        config.mut_zscore().threshold_ppm = 3_500_000;
        config.mut_zscore().features = vec![Feature::UPDATE_NORM];
        let scores = |e: &Evaluation| -> Vec<i64> {
            member_scores(&e.scored, &e.methods[0])
                .map(|s| s.score_micro)
                .collect()
        };
        // Median 0.995, MAD 0.215: 2.30 lies 4.09 scales above.
        let every = evaluate(&config, &data).unwrap();
        assert_eq!(every.excluded, ["g", "h", "i", "j"].map(String::from));
        assert_eq!(scores(&every)[6], 4_094_058);
        // Median 1.66, MAD 0.845: 3.49 lies 1.46 scales above, a rider 0.55 below.
        config.count_copies_once = true;
        let once = evaluate(&config, &data).unwrap();
        assert!(once.excluded.is_empty(), "{:?}", once.excluded);
        let once_scores = scores(&once);
        assert_eq!(once_scores.len(), 10);
        assert_eq!((once_scores[9], once_scores[3]), (1_460_751, -550_775));
        assert_eq!(once_scores[3..6], [once_scores[3]; 3]);
        // Without copies the setting changes nothing.
        let distinct: Vec<pb::Commitment> = commitments
            .iter()
            .filter(|c| !["e", "f"].contains(&c.member.as_str()))
            .cloned()
            .collect();
        let data = MemberData::from_evidence(&distinct, &[], &Default::default(), 0);
        let once = evaluate(&config, &data).unwrap();
        config.count_copies_once = false;
        assert_eq!(once, evaluate(&config, &data).unwrap());
    }

    /// A free rider commits the model it was given: norm 0, whatever the honest norms' spread.
    /// The unchanged-update method excludes it on its own, where the modified z-score of the
    /// norm cannot (a spread as wide as Dirichlet 0.1 shards give puts 0 inside 3.5), and
    /// leaves honest members with small norms alone.
    #[test]
    fn the_unchanged_method_excludes_zero_updates_on_its_own() {
        let members: Vec<String> = ["a", "b", "c", "d", "e", "f", "g"]
            .map(String::from)
            .to_vec();
        // Honest norms 1.1-4.6 as measured with Dirichlet 0.1 shards; "d" rode free; "g"
        // added a little noise to the model it was given (0.005 of the median 2.0).
        let norms = vec![1.1, 4.6, 2.0, 0.0, 3.1, 2.4, 0.01];
        let data =
            MemberData::new(members.clone(), vec![(Feature::UPDATE_NORM, norms)], vec![]).unwrap();
        let mut config = pb::AnomalyConfig::default();
        config.mut_zscore().threshold_ppm = 3_500_000;
        config.mut_zscore().features = vec![Feature::UPDATE_NORM];
        assert!(evaluate(&config, &data).unwrap().excluded.is_empty());
        config.mut_unchanged().max_norm_ratio_ppm = EVERY_ATTACK_UNCHANGED_RATIO_PPM;
        config.ensemble_min_votes = 1;
        let e = evaluate(&config, &data).unwrap();
        assert_eq!(e.excluded, ["d", "g"].map(String::from).to_vec());
        let unchanged = &e.methods[1];
        assert_eq!(method_name(unchanged.method), "unchanged");
        assert_eq!(unchanged.flagged, vec![3, 6]);
        // Scores: each norm over the median (2.0), in micro-units.
        let scores: Vec<i64> = member_scores(&e.scored, unchanged)
            .map(|s| s.score_micro)
            .collect();
        assert_eq!(
            scores,
            [550_000, 2_300_000, 1_000_000, 0, 1_550_000, 1_200_000, 5_000]
        );
        // Ratio 0 flags a zero norm only; the method alone is a configuration.
        let mut zero = pb::AnomalyConfig::default();
        zero.mut_unchanged().max_norm_ratio_ppm = 0;
        assert_eq!(evaluate(&zero, &data).unwrap().excluded, ["d".to_owned()]);
        // A ratio just under g's (0.005) spares it.
        zero.mut_unchanged().max_norm_ratio_ppm = 4_999;
        assert_eq!(evaluate(&zero, &data).unwrap().excluded, ["d".to_owned()]);
    }

    /// A stale rider resends the global model's previous change: its distance to the change
    /// the ledger kept lies at the kept change's rounding (0.01-0.02 measured), an honest
    /// member's at 0.35 or more. The resent-change method excludes it on its own; without the
    /// previous round's record the feature is 1 for everyone and it flags nobody.
    #[test]
    fn the_resent_method_excludes_a_resent_change_on_its_own() {
        let members: Vec<String> = ["a", "b", "c", "d", "e"].map(String::from).to_vec();
        let distances = vec![0.9, 0.012, 1.4, 0.35, 2.0];
        let data = MemberData::new(
            members.clone(),
            vec![(Feature::PREVIOUS_CHANGE_DISTANCE, distances)],
            vec![],
        )
        .unwrap();
        let mut config = pb::AnomalyConfig::default();
        config.mut_resent().max_distance_ppm = EVERY_ATTACK_RESENT_DISTANCE_PPM;
        let e = evaluate(&config, &data).unwrap();
        assert_eq!(e.excluded, ["b".to_owned()]);
        let resent = &e.methods[0];
        assert_eq!(method_name(resent.method), "resent");
        let scores: Vec<i64> = member_scores(&e.scored, resent)
            .map(|s| s.score_micro)
            .collect();
        assert_eq!(scores, [900_000, 12_000, 1_400_000, 350_000, 2_000_000]);
        let first_round = MemberData::new(
            members,
            vec![(Feature::PREVIOUS_CHANGE_DISTANCE, vec![1.0; 5])],
            vec![],
        )
        .unwrap();
        assert!(evaluate(&config, &first_round).unwrap().excluded.is_empty());
    }

    /// A noise sender sends a fresh random change every round: its cosine with its own previous
    /// change lies near 0 (`± 1/√K`), an honest member's at 0.44 or more. The inconsistent-change
    /// method excludes it on its own; in a member's first round (cosine 1) it flags nobody.
    #[test]
    fn the_inconsistent_method_excludes_a_change_unrelated_to_its_own_previous_one() {
        let members: Vec<String> = ["a", "b", "c", "d", "e"].map(String::from).to_vec();
        let cosines = vec![0.9, 0.05, 0.72, -0.8, 0.25];
        let data = MemberData::new(
            members.clone(),
            vec![(Feature::OWN_CHANGE_COSINE, cosines)],
            vec![],
        )
        .unwrap();
        let mut config = pb::AnomalyConfig::default();
        config.mut_inconsistent().min_cosine_ppm = INCONSISTENT_MIN_COSINE_PPM;
        assert!(reads_own_previous(&config));
        let e = evaluate(&config, &data).unwrap();
        // Below the limit, not at it.
        assert_eq!(e.excluded, ["b".to_owned(), "d".to_owned()]);
        let method = &e.methods[0];
        assert_eq!(method_name(method.method), "inconsistent");
        let scores: Vec<i64> = member_scores(&e.scored, method)
            .map(|s| s.score_micro)
            .collect();
        assert_eq!(scores, [900_000, 50_000, 720_000, -800_000, 250_000]);
        let first_round = MemberData::new(
            members,
            vec![(Feature::OWN_CHANGE_COSINE, vec![1.0; 5])],
            vec![],
        )
        .unwrap();
        assert!(evaluate(&config, &first_round).unwrap().excluded.is_empty());
        // Only configurations that read the feature make EvaluateRound read the commitments.
        assert!(!reads_own_previous(&pb::AnomalyConfig::default()));
        let mut voting = pb::AnomalyConfig::default();
        voting.mut_zscore().features = vec![Feature::OWN_CHANGE_COSINE];
        assert!(reads_own_previous(&voting));
        assert!(!reads_own_previous(&every_attack_config()));
    }

    /// A member whose changes respond to the model's moves as a step up its loss does (a sign
    /// flipper) has a move response above 0, honest members below it. The ascent method
    /// excludes above the limit (0.05), not at it, on its own.
    #[test]
    fn the_ascent_method_excludes_changes_that_climb() {
        let members: Vec<String> = ["a", "b", "c", "d", "e"].map(String::from).to_vec();
        let data = MemberData::new(
            members.clone(),
            vec![(Feature::MOVE_RESPONSE, vec![-0.6, 0.4, -0.02, 0.05, 0.3])],
            vec![],
        )
        .unwrap();
        let mut config = pb::AnomalyConfig::default();
        config.mut_ascent().max_response_ppm = ASCENT_MAX_RESPONSE_PPM;
        let e = evaluate(&config, &data).unwrap();
        assert_eq!(e.excluded, ["b".to_owned(), "e".to_owned()]);
        let method = &e.methods[0];
        assert_eq!(method_name(method.method), "ascent");
        let scores: Vec<i64> = member_scores(&e.scored, method)
            .map(|s| s.score_micro)
            .collect();
        assert_eq!(scores, [-600_000, 400_000, -20_000, 50_000, 300_000]);
        config.mut_ascent().max_response_ppm = 300_000;
        assert_eq!(evaluate(&config, &data).unwrap().excluded, ["b".to_owned()]);
        // It reads the members' own previous commitments, as the inconsistent method does.
        assert!(reads_own_previous(&config));
        let mut voting = pb::AnomalyConfig::default();
        voting.mut_dbscan().features = vec![Feature::MOVE_RESPONSE];
        assert!(reads_own_previous(&voting));
        assert_eq!(parse_feature("move-response"), Some(Feature::MOVE_RESPONSE));
    }

    /// A label flipper's change moves the class rows towards other classes' features: its
    /// reference margin lies below 0, honest members' above. The mislabelled-change method
    /// excludes below the limit (0 by default), not at it, on its own.
    #[test]
    fn the_mislabelled_method_excludes_margins_below_its_limit() {
        let members: Vec<String> = ["a", "b", "c", "d"].map(String::from).to_vec();
        let data = MemberData::new(
            members.clone(),
            vec![(Feature::REFERENCE_MARGIN, vec![0.2, -0.15, 0.0, 0.01])],
            vec![],
        )
        .unwrap();
        let mut config = pb::AnomalyConfig::default();
        config.mut_mislabelled().reference_steps = vec![1];
        let e = evaluate(&config, &data).unwrap();
        assert_eq!(e.excluded, ["b".to_owned()]);
        let method = &e.methods[0];
        assert_eq!(method_name(method.method), "mislabelled");
        let scores: Vec<i64> = member_scores(&e.scored, method)
            .map(|s| s.score_micro)
            .collect();
        assert_eq!(scores, [200_000, -150_000, 0, 10_000]);
        config.mut_mislabelled().min_margin_ppm = 10_001;
        let e = evaluate(&config, &data).unwrap();
        assert_eq!(e.excluded, ["b", "c", "d"].map(String::from));
        config.mut_mislabelled().min_margin_ppm = -150_000;
        assert!(evaluate(&config, &data).unwrap().excluded.is_empty());
        // It compares with no previous commitment.
        assert!(!reads_own_previous(&config));
        assert_eq!(
            parse_feature("reference-margin"),
            Some(Feature::REFERENCE_MARGIN)
        );
        assert_eq!(configured_method_names(&config), ["mislabelled"]);
    }

    /// Ten members whose norms grow with their shards (norm = 0.2 samples^0.3 up to a few per
    /// cent), one scaler whose own update was short: ten times it lies among the honest norms
    /// (1.95 against 0.26-2.4), but 1.88 above the line for its 200 samples. A free rider's
    /// zero norm has no residual (0) and does not pull the line. The oversized-update method
    /// excludes at the limit, not below it, on its own.
    #[test]
    fn the_oversized_method_excludes_a_scaled_short_update() {
        let samples = [2u64, 5, 9, 20, 45, 90, 200, 400, 800, 1600];
        let wobble = [1.02, 0.97, 1.0, 1.03, 0.98, 1.01, 1.0, 0.99, 1.02, 0.97];
        let mut commitments: Vec<pb::Commitment> = samples
            .iter()
            .zip(wobble)
            .enumerate()
            .map(|(i, (&n, w))| pb::Commitment {
                member: format!("m{i}"),
                num_samples: n,
                norm_micro: (200_000.0 * (n as f64).powf(0.3) * w) as u64,
                ..Default::default()
            })
            .collect();
        // m6's own update (200 samples) was 0.3 of the line's; scaled tenfold it sent 3x.
        commitments[6].norm_micro = (200_000.0 * 200f64.powf(0.3) * 3.0) as u64;
        commitments[2].norm_micro = 0;
        let norms: Vec<f64> = commitments
            .iter()
            .map(|c| fixed::micro_unsigned_to_f64(c.norm_micro))
            .collect();
        let samples: Vec<f64> = commitments.iter().map(|c| c.num_samples as f64).collect();
        let residuals = sample_norm_residuals(&norms, &samples);
        assert!((residuals[6] - 3f64.ln()).abs() < 0.05, "{residuals:?}");
        assert_eq!(residuals[2], 0.0);
        for (i, r) in residuals.iter().enumerate().filter(|(i, _)| *i != 6) {
            assert!(r.abs() < 0.05, "member {i}: {r}");
        }
        // Computed on demand from the norms and sample counts, as `EvaluateRound` does.
        let data = MemberData::from_evidence(&commitments, &[], &Default::default(), 0);
        assert!(data.column(Feature::SAMPLE_NORM_RESIDUAL).is_none());
        let mut config = pb::AnomalyConfig::default();
        config.mut_oversized().min_residual_ppm = 1_000_000;
        let e = evaluate(&config, &data).unwrap();
        assert_eq!(e.excluded, ["m6".to_owned()]);
        assert_eq!(method_name(e.methods[0].method), "oversized");
        let at = (residuals[6] * 1e6).floor() as u32;
        config.mut_oversized().min_residual_ppm = at;
        assert_eq!(
            evaluate(&config, &data).unwrap().excluded,
            ["m6".to_owned()]
        );
        config.mut_oversized().min_residual_ppm = at + 1;
        assert!(evaluate(&config, &data).unwrap().excluded.is_empty());
        assert!(!reads_own_previous(&config));
        assert_eq!(
            parse_feature("sample-norm-residual"),
            Some(Feature::SAMPLE_NORM_RESIDUAL)
        );
        assert_eq!(configured_method_names(&config), ["oversized"]);
    }

    /// Nine members training their own way and one sending their mean: the mean-copy method
    /// excludes it on its own, at its limit and not above its cosine.
    #[test]
    fn the_mean_copy_method_excludes_the_others_mean() {
        let honest: Vec<Vec<i32>> = (0..9)
            .map(|i| {
                (0..32)
                    .map(|k| (k * 7 + i * 13) % 23 - 11 + if k == i { 40 } else { 0 })
                    .collect()
            })
            .collect();
        let mean: Vec<i32> = (0..32)
            .map(|k| honest.iter().map(|s| s[k]).sum::<i32>() / 9)
            .collect();
        let commitments: Vec<pb::Commitment> = honest
            .iter()
            .chain(std::iter::once(&mean))
            .enumerate()
            .map(|(i, sketch)| pb::Commitment {
                member: format!("m{i}"),
                num_samples: 100,
                // The update's norm as long as its sketch: each counts as sent.
                norm_micro: (sketch
                    .iter()
                    .map(|v| f64::from(*v).powi(2))
                    .sum::<f64>()
                    .sqrt()
                    * 1e6) as u64,
                sketch: bcfl_protos::signed_bytes::pack(sketch).unwrap(),
                ..Default::default()
            })
            .collect();
        let data = MemberData::from_evidence(&commitments, &[], &Default::default(), 0);
        // Computed on demand, as the method asks for it.
        assert!(data.column(Feature::OTHERS_MEAN_COSINE).is_none());
        let values: Vec<Vec<i32>> = commitments
            .iter()
            .map(pb::Commitment::sketch_values)
            .collect();
        let sketches: Vec<&[i32]> = values.iter().map(Vec::as_slice).collect();
        let norms = data.column(Feature::UPDATE_NORM).unwrap();
        let cosines = others_mean_cosines(&sketches, norms);
        assert!(cosines[9] > 0.98, "{cosines:?}");
        assert!(cosines[..9].iter().all(|c| *c < 0.9), "{cosines:?}");
        let mut config = pb::AnomalyConfig::default();
        config.mut_mean_copy().min_cosine_ppm = MEAN_COPY_MIN_COSINE_PPM;
        let e = evaluate(&config, &data).unwrap();
        assert_eq!(e.excluded, ["m9".to_owned()]);
        assert_eq!(method_name(e.methods[0].method), "mean_copy");
        config.mut_mean_copy().min_cosine_ppm = (cosines[9] * 1e6).floor() as u32 + 1;
        assert!(evaluate(&config, &data).unwrap().excluded.is_empty());
        assert_eq!(
            parse_feature("others-mean-cosine"),
            Some(Feature::OTHERS_MEAN_COSINE)
        );
        assert_eq!(configured_method_names(&config), ["mean_copy"]);
    }

    /// An update crafted as the honest members' mean reversed (inner-product manipulation)
    /// points against the consensus: cumulative sketch distance near 2, where honest members
    /// lie near 0 and one holding other classes to one side (0.88 here). The opposed-change
    /// method excludes it on its own, at the preset's limit (1.7) and at its own distance.
    #[test]
    fn the_opposed_method_excludes_the_reversed_mean() {
        let commitment = |member: &str, sketch: &[i32]| pb::Commitment {
            member: member.into(),
            norm_micro: 1_000_000,
            sketch: crate::testing::packed(sketch),
            ..Default::default()
        };
        let commitments = vec![
            commitment("a", &[10, 8, 2, -1]),
            commitment("b", &[8, 10, -2, 1]),
            commitment("c", &[9, 7, 1, 3]),
            commitment("d", &[12, 9, 0, -3]),
            commitment("e", &[7, 11, 3, 0]),
            commitment("f", &[-2, 3, 10, 8]),
            commitment("x", &[-9, -9, -1, 0]),
        ];
        // First round: the centre is the doubled median sketch, (16, 16, 2, 0).
        let data = MemberData::from_evidence(&commitments, &[], &Default::default(), 0);
        let mut config = pb::AnomalyConfig::default();
        config.mut_opposed().min_distance_ppm = EVERY_ATTACK_OPPOSED_DISTANCE_PPM;
        let e = evaluate(&config, &data).unwrap();
        assert_eq!(e.excluded, ["x".to_owned()]);
        let method = &e.methods[0];
        assert_eq!(method_name(method.method), "opposed");
        let scores: Vec<i64> = member_scores(&e.scored, method)
            .map(|s| s.score_micro)
            .collect();
        assert_eq!(
            scores,
            [11_186, 38_277, 40_089, 33_044, 32_623, 880_878, 1_999_952]
        );
        // A distance at the limit is flagged; the sideways member only below its own distance.
        config.mut_opposed().min_distance_ppm = 1_999_952;
        assert_eq!(evaluate(&config, &data).unwrap().excluded, ["x".to_owned()]);
        config.mut_opposed().min_distance_ppm = 880_000;
        assert_eq!(
            evaluate(&config, &data).unwrap().excluded,
            ["f".to_owned(), "x".to_owned()]
        );
    }

    /// When most committers rode free the median is 0: the zero norms are flagged (score 0) and
    /// a member that trained is not (its score saturates). When nobody trained, everybody is
    /// flagged (every norm is at most the ratio times 0).
    #[test]
    fn the_unchanged_method_with_a_zero_median() {
        let (norms, ratio) = (vec![0.0, 0.0, 0.0, 2.5], 0.01);
        let (scores, flags) = unchanged(&norms, ratio);
        assert_eq!(flags, [true, true, true, false]);
        assert_eq!(scores[..3], [0.0; 3]);
        assert_eq!(fixed::saturating_micro(scores[3]), i64::MAX);
        let (_, flags) = unchanged(&[0.0, 0.0], ratio);
        assert_eq!(flags, [true, true]);
        assert_eq!(unchanged(&[], ratio), (vec![], vec![]));
    }

    /// ALIE, min-max and min-sum commit `mean - gamma * std`: below the centre at every
    /// coordinate. The coordinate sign balance singles out even a lone such attacker, which no
    /// sketch distance can (it has no twin, and sits at an honest distance from everyone).
    #[test]
    fn the_coordinate_sign_balance_catches_updates_crafted_below_the_centre() {
        use super::super::attack::AttackKind;
        use super::super::simulate::{simulate_round, Scenario};
        let zscore = |features: Vec<Feature>, data: &MemberData| {
            let mut config = pb::AnomalyConfig::default();
            config.mut_zscore().threshold_ppm = 3_500_000;
            config.mut_zscore().features = features;
            evaluate(&config, data).unwrap().excluded
        };
        let mut missed_by_distances = 0;
        for attack in [AttackKind::MinMax, AttackKind::MinSum] {
            for seed in 0..5 {
                let round = simulate_round(&Scenario {
                    members: 10,
                    attackers: 1,
                    attack,
                    seed,
                })
                .unwrap();
                let data = MemberData::from_evidence(
                    &round.commitments,
                    &round.links,
                    &Default::default(),
                    0,
                );
                let bias = data.column(Feature::COORDINATE_SIGN_BALANCE).unwrap();
                // The balance's floor follows its sample count; the other features have none.
                let k = round.commitments[0].coordinate_steps.len() as f64;
                assert_eq!(data.floor(Feature::COORDINATE_SIGN_BALANCE), 2.0 / k.sqrt());
                assert_eq!(data.floor(Feature::UPDATE_NORM), 0.0);
                let attacker = data
                    .members()
                    .iter()
                    .position(|m| *m == round.attackers[0])
                    .unwrap();
                assert!(bias[attacker] < 0.1, "{attack:?} seed {seed}: {bias:?}");
                for (i, b) in bias.iter().enumerate() {
                    if i != attacker {
                        assert!((b - 1.0).abs() < 0.5, "{attack:?} seed {seed}: {bias:?}");
                    }
                }
                assert_eq!(
                    zscore(vec![Feature::COORDINATE_SIGN_BALANCE], &data),
                    round.attackers,
                    "{attack:?} seed {seed}"
                );
                let distances = vec![
                    Feature::UPDATE_NORM,
                    Feature::SKETCH_COSINE_DISTANCE,
                    Feature::NEAREST_SKETCH_COSINE_DISTANCE,
                ];
                if zscore(distances, &data) != round.attackers {
                    missed_by_distances += 1;
                }
            }
        }
        assert!(missed_by_distances >= 8, "{missed_by_distances} of 10");
    }

    #[test]
    fn member_data_checks_its_input() {
        let two = || vec!["a".to_owned(), "b".to_owned()];
        let err = MemberData::new(vec!["b".into(), "a".into()], vec![], vec![]).unwrap_err();
        assert_eq!(err, AnomalyError::MemberOrder("a".into()));
        let err = MemberData::new(two(), vec![(Feature::UPDATE_NORM, vec![1.0])], vec![]);
        assert!(matches!(
            err,
            Err(AnomalyError::ColumnLength { found: 1, .. })
        ));
        let err = MemberData::new(
            two(),
            vec![(Feature::UPDATE_NORM, vec![1.0, f64::NAN])],
            vec![],
        );
        assert!(matches!(err, Err(AnomalyError::NotFinite { .. })));
        let err = MemberData::new(two(), vec![], vec![(0, 2, 1.0)]).unwrap_err();
        assert_eq!(
            err,
            AnomalyError::EdgeOutOfRange {
                index: 2,
                members: 2
            }
        );
        let data = MemberData::new(two(), vec![], vec![]).unwrap();
        let mut config = pb::AnomalyConfig::default();
        config.mut_zscore().threshold_ppm = 1;
        config.mut_zscore().features = vec![Feature::TRAINING_LOSS];
        let err = evaluate(&config, &data).unwrap_err();
        assert_eq!(
            err.to_string(),
            "feature training_loss is needed but not available"
        );
    }
}
