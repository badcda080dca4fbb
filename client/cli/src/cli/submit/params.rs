//! `bcfl consortium init` flags and their conversion to `ConsortiumParams`.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};
use bcfl_client::fixed;
use bcfl_fed::digest::reader_sha256;
use bcfl_fed::rule::{RuleDefaults, DEFAULT_TRIM};
use bcfl_protos::bcfl as pb;
use clap::{Args, ValueEnum};

use bcfl_cli::anomaly_preset::{self, AdditionArgs, AnomalyPreset, CoordinateScope};
use bcfl_cli::context::WaitArgs;
use bcfl_processor::anomaly::{
    ASCENT_MAX_RESPONSE_PPM, INCONSISTENT_MIN_COSINE_PPM, MEAN_COPY_MIN_COSINE_PPM,
};

pub(crate) use bcfl_fed::rule::Rule;

/// Anomaly methods.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Method {
    /// PageRank over the bandwidth graph.
    Pagerank,
    /// DBSCAN over standardized features.
    Dbscan,
    /// Modified z-score of each feature.
    Zscore,
    /// Near-duplicate sketches (`--duplicate-distance`); excludes on its own, casting no vote.
    Duplicate,
    /// Updates that change next to nothing (`--unchanged-ratio`): free riders; excludes on
    /// its own, casting no vote.
    Unchanged,
    /// Changes that resend the global model's previous change (`--resent-distance`): stale
    /// riders; excludes on its own, casting no vote. Needs `--coordinate-samples`.
    Resent,
    /// Changes unrelated to the member's own previous one (`--inconsistent-cosine`): noise
    /// senders; excludes on its own, casting no vote. Needs `--coordinate-samples`.
    Inconsistent,
    /// Changes that, summed over the rounds, point against the consensus
    /// (`--opposed-distance`): an update crafted as the honest mean reversed (IPM); excludes on
    /// its own, casting no vote.
    Opposed,
    /// Changes that respond to the model's moves as steps up the member's loss do
    /// (`--ascent-response`): sign flippers; excludes on its own, casting no vote. Needs
    /// `--coordinate-samples`.
    Ascent,
    /// Changes that move the classes' rows towards other classes' features, against the
    /// consortium's reference direction (`--reference`, `--mislabelled-margin`): label
    /// flippers; excludes on its own, casting no vote. Needs `--coordinate-samples`.
    Mislabelled,
    /// Update norms several times longer than the round's norms predict for the member's
    /// sample count (`--oversized-residual`): scaled updates; excludes on its own, casting no
    /// vote.
    Oversized,
    /// Sketches along the other committers' mean (`--mean-copy-cosine`): a member sending the
    /// others' mean instead of an update of its own (a lone ALIE attacker); excludes on its
    /// own, casting no vote.
    MeanCopy,
}

/// PageRank edge weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Weight {
    /// 1 / B_ij, as the seed paper.
    Latency,
    /// B_ij.
    Bandwidth,
}

/// Per-member features.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Feature {
    /// L2 norm of the update.
    UpdateNorm,
    /// Cosine distance of the sketch to the median sketch.
    SketchCosineDistance,
    /// Training loss.
    TrainingLoss,
    /// Sample count.
    SampleCount,
    /// Median bandwidth of links into the member.
    BandwidthIn,
    /// Median bandwidth of links out of the member.
    BandwidthOut,
    /// PageRank score.
    PagerankScore,
    /// Cosine distance of the member's sketch summed over the evaluated rounds to the median sum.
    CumulativeSketchCosineDistance,
    /// Cosine distance of the member's sketch to the closest other committer's (colluders send
    /// one update together: near 0).
    NearestSketchCosineDistance,
    /// Twice the share of the member's sampled coordinates above the coordinate-wise median
    /// (honest updates near 1, updates crafted as mean - gamma * std near 0). Needs
    /// `--coordinate-samples`.
    CoordinateSignBalance,
    /// Distance of the member's sampled coordinates to the previous round's accepted mean
    /// change (a stale rider resending the last global change: near 0). Needs
    /// `--coordinate-samples`.
    PreviousChangeDistance,
    /// Cosine of the member's sampled coordinates with those of its own previous commitment
    /// (a member training on its own shard keeps its direction; a noise sender's fresh random
    /// change: near 0). Needs `--coordinate-samples`.
    OwnChangeCosine,
    /// How the member's changes respond to the model's moves over its rounds, in [-1, 1]
    /// (steps down its loss: below 0; a sign flipper's: above). Needs `--coordinate-samples`.
    MoveResponse,
    /// Mean cosine of the member's sampled coordinates with the consortium's reference over
    /// its rounds, in [-1, 1] (true labels: above 0; wrong ones: below). Needs `--reference`.
    ReferenceMargin,
    /// ln of the member's update norm less what the round's norms predict for its sample count
    /// (a line fitted by the repeated median; an update scaled tenfold: 2.3 above).
    SampleNormResidual,
    /// Cosine of the member's sketch with the others' mean update, their sketches weighted by
    /// their norms (a member sending the others' mean: 1).
    OthersMeanCosine,
}

impl Feature {
    fn to_proto(self) -> pb::Feature {
        match self {
            Self::UpdateNorm => pb::Feature::UPDATE_NORM,
            Self::SketchCosineDistance => pb::Feature::SKETCH_COSINE_DISTANCE,
            Self::TrainingLoss => pb::Feature::TRAINING_LOSS,
            Self::SampleCount => pb::Feature::SAMPLE_COUNT,
            Self::BandwidthIn => pb::Feature::BANDWIDTH_IN,
            Self::BandwidthOut => pb::Feature::BANDWIDTH_OUT,
            Self::PagerankScore => pb::Feature::PAGERANK_SCORE,
            Self::CumulativeSketchCosineDistance => pb::Feature::CUMULATIVE_SKETCH_COSINE_DISTANCE,
            Self::NearestSketchCosineDistance => pb::Feature::NEAREST_SKETCH_COSINE_DISTANCE,
            Self::CoordinateSignBalance => pb::Feature::COORDINATE_SIGN_BALANCE,
            Self::PreviousChangeDistance => pb::Feature::PREVIOUS_CHANGE_DISTANCE,
            Self::OwnChangeCosine => pb::Feature::OWN_CHANGE_COSINE,
            Self::MoveResponse => pb::Feature::MOVE_RESPONSE,
            Self::ReferenceMargin => pb::Feature::REFERENCE_MARGIN,
            Self::SampleNormResidual => pb::Feature::SAMPLE_NORM_RESIDUAL,
            Self::OthersMeanCosine => pb::Feature::OTHERS_MEAN_COSINE,
        }
    }
}

/// Arguments of `bcfl consortium init`.
#[derive(Debug, Args)]
pub(crate) struct InitArgs {
    /// Admin public keys or key names (repeat or comma-separate) [default: the signer].
    #[arg(long = "admin", value_delimiter = ',')]
    pub(crate) admins: Vec<String>,
    /// Active members needed to open a round.
    #[arg(long, default_value_t = 1)]
    min_participants: u32,
    /// Commitments needed before a round can be evaluated (<= --min-participants).
    #[arg(long, default_value_t = 1)]
    quorum: u32,
    /// Aggregation rule: fedavg, median, trimmed-mean or trimmed-mean:TRIM, krum or krum:F,
    /// multi-krum, multi-krum:F or multi-krum:F:K (--trim, --krum-byzantine and --krum-select
    /// give what RULE leaves out).
    #[arg(long, value_name = "RULE", default_value = "fedavg")]
    rule: String,
    /// TRIMMED_MEAN: fraction trimmed at each end (e.g. 0.1) [default: 0.1].
    #[arg(long)]
    trim: Option<String>,
    /// KRUM / MULTI_KRUM: assumed number of Byzantine members f.
    #[arg(long, default_value_t = 0)]
    krum_byzantine: u32,
    /// MULTI_KRUM: number of updates averaged.
    #[arg(long, default_value_t = 0)]
    krum_select: u32,
    /// The base model's identifier.
    #[arg(long, default_value = "sentence-transformers/all-MiniLM-L6-v2")]
    model_id: String,
    /// SHA-256 of the base model.
    #[arg(
        long,
        value_name = "HEX",
        required_unless_present = "base_model",
        conflicts_with = "base_model"
    )]
    base_model_sha256: Option<String>,
    /// The base model file, hashed with SHA-256.
    #[arg(long, value_name = "FILE")]
    base_model: Option<PathBuf>,
    /// The initial trainable tensors (adapters and head) round 1 starts from, hashed with
    /// SHA-256 and recorded as `initial_model_sha256` [default: round 1 starts from the base
    /// model].
    #[arg(long, value_name = "FILE")]
    initial_model: Option<PathBuf>,
    /// Exact length of every commitment's sketch.
    #[arg(long, default_value_t = 256)]
    sketch_length: u32,
    /// How many coordinates of its update every commitment carries, at the same positions
    /// every round (what the `coordinate-sign-balance` and `previous-change-distance` features
    /// read; 0: none).
    #[arg(long, default_value_t = 0)]
    coordinate_samples: u32,
    /// Where the sampled coordinates are drawn: among every value of the update, or the
    /// classification head's alone (`classifier.*`; for members fine-tuning LoRA adapters
    /// beneath a head).
    #[arg(long, value_enum, value_name = "SCOPE", default_value_t = CoordinateScope::Every)]
    coordinate_scope: CoordinateScope,
    /// Sketches come after the commitments: a round's commitments carry none, its aggregator
    /// seals it once they are in (the seed drawn from them), and each member then reveals its
    /// sketch made with that seed, so that nobody fixing its update knows the projection that
    /// will see it (`sketch_after_commit`).
    #[arg(long)]
    sketch_after_commit: bool,
    /// Members that recompute each round's aggregate and attest its hash on chain before the
    /// round can close (0: none; the node runtime's members attest when chosen).
    #[arg(long, default_value_t = 0)]
    committee_size: u32,
    /// How far the two ends' reports of one link may differ for the anomaly evidence to use it
    /// (a factor, at least 1).
    #[arg(long, default_value = "4")]
    link_agreement: String,
    /// The fraction of the members drawn to train each round (e.g. 0.1, FlowerTune's); the
    /// ledger draws them at OpenRound and refuses others' commitments [default: every member].
    #[arg(long, value_name = "F", value_parser = bcfl_cli::sampling::parse_sample_fraction)]
    sample_fraction: Option<u32>,
    /// Anomaly methods run at evaluation (comma-separated).
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "pagerank,zscore,dbscan"
    )]
    anomaly: Vec<Method>,
    /// Disable anomaly evaluation altogether.
    #[arg(long, conflicts_with = "anomaly")]
    no_anomaly: bool,
    /// A named anomaly configuration instead of the method and feature flags.
    #[arg(
        long,
        value_enum,
        conflicts_with_all = [
            "anomaly", "no_anomaly", "ensemble_min_votes", "zscore_threshold", "zscore_features",
            "dbscan_eps", "dbscan_min_points", "dbscan_robust", "dbscan_features",
            "duplicate_distance", "unchanged_ratio", "resent_distance", "opposed_distance",
            "oversized_residual",
        ]
    )]
    anomaly_preset: Option<AnomalyPreset>,
    /// Members flagged by at least this many methods are excluded (0 means 1) [default: 2 when
    /// two or more methods run, else 1].
    #[arg(long)]
    ensemble_min_votes: Option<u32>,
    /// PageRank damping factor.
    #[arg(long, default_value = "0.85")]
    pagerank_damping: String,
    /// PageRank: flag scores outside mean +/- k standard deviations.
    #[arg(long, default_value = "1")]
    pagerank_k: String,
    /// PageRank edge weight.
    #[arg(long, value_enum, default_value_t = Weight::Latency)]
    pagerank_weight: Weight,
    /// PageRank iteration cap.
    #[arg(long, default_value_t = 100)]
    pagerank_max_iterations: u32,
    /// PageRank L1 convergence tolerance, parts per billion.
    #[arg(long, default_value_t = 1000)]
    pagerank_tolerance_ppb: u32,
    /// Modified z-score threshold.
    #[arg(long, default_value = "3.5")]
    zscore_threshold: String,
    /// Modified z-score features.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "update-norm,cumulative-sketch-cosine-distance"
    )]
    zscore_features: Vec<Feature>,
    /// DBSCAN neighbourhood radius over standardized features.
    #[arg(long, default_value = "1.5")]
    dbscan_eps: String,
    /// DBSCAN core point neighbourhood size.
    #[arg(long, default_value_t = 2)]
    dbscan_min_points: u32,
    /// DBSCAN standardizes each feature by its median and robust scale (the modified
    /// z-score's) instead of its mean and standard deviation, which a large group of outliers
    /// inflates until it bridges into the honest cluster.
    #[arg(long)]
    dbscan_robust: bool,
    /// DBSCAN features.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "update-norm,cumulative-sketch-cosine-distance"
    )]
    dbscan_features: Vec<Feature>,
    /// The duplicate method's cosine distance: a member whose sketch lies this close to another
    /// committer's did not train on data of its own (colluders sending one crafted update).
    #[arg(long, default_value = "0.001")]
    duplicate_distance: String,
    /// The unchanged-update method's ratio: a member whose update norm is at most this share
    /// of the round's median norm did not train (a free rider); 0 flags only a zero update.
    #[arg(long, default_value = "0.01")]
    unchanged_ratio: String,
    /// The resent-change method's distance: a member whose sampled change lies this close to
    /// the global model's previous change (relative to its length) resent it instead of
    /// training (a stale rider).
    #[arg(long, default_value = "0.05")]
    resent_distance: String,
    /// The opposed-change method's cumulative sketch distance, from 1 to 2: a member whose
    /// sketches summed over the rounds lie this far or farther from the consensus (1.7:
    /// cosine -0.7 or less) works against what the consortium accepted (IPM's reversed mean).
    #[arg(long, default_value = "1.7")]
    opposed_distance: String,
    /// The oversized-update method's residual, in natural-log units from ln 2 (0.693147) to
    /// 10: a member whose update norm lies this far above the line the round's norms fit
    /// against their sample counts (ln 4 = 1.386294: four times the norm the line predicts; an update
    /// scaled tenfold lies 2.3 above its own point) is excluded.
    #[arg(long, default_value = "1.386294")]
    oversized_residual: String,
    /// The consortium's reference direction for the mislabelled-change method: an update file
    /// of the consortium's trainable tensors (the layout members commit) holding, in the
    /// classification head's weight, each class's mean feature on a labelled root set minus
    /// the mean over the classes, with their common direction removed, and zeros elsewhere
    /// (`bcfl model reference` builds one for a BERT package). Its values at the sampled
    /// coordinates go on chain. With --anomaly-preset it adds the method to the preset; in
    /// --anomaly it is what `mislabelled` needs.
    #[arg(long, value_name = "FILE")]
    reference: Option<PathBuf>,
    /// The mislabelled-change method's smallest margin, from -0.5 to 0.5 [default: -0.03]: a member
    /// whose changes, over its rounds, have a mean cosine with the reference below this (at its
    /// sampled coordinates) is excluded. Needs --reference.
    #[arg(
        long,
        value_name = "M",
        allow_hyphen_values = true,
        requires = "reference"
    )]
    mislabelled_margin: Option<String>,
    /// The members' data differ widely (most hold one or two classes): the preset's DBSCAN and
    /// z-score read only the update norm and the coordinate sign balance, since honest members
    /// holding a class few others hold lie as far from the consensus as an attacker. Not for
    /// shards alike (IID), where the cumulative sketch distance is what finds label flippers.
    // `requires` alone lets a flag the preset conflicts with through.
    #[arg(long, requires = "anomaly_preset", conflicts_with_all = ["anomaly", "no_anomaly"])]
    skewed_shards: bool,
    #[command(flatten)]
    pub(crate) additions: AdditionArgs,
    #[command(flatten)]
    pub(crate) wait: WaitArgs,
}

/// Why the modified z-score can never flag a member on `coordinate-sign-balance` under
/// `params`, if it cannot: the balance lies in [0, 2] and its scale has the floor `2/√K` (`K` the
/// coordinates sampled), so no member lies more than about `√K / 2` scales from an honest median
/// near 1, and below the threshold that is no evidence at all.
fn unreadable_balance(params: &pb::ConsortiumParams) -> Option<String> {
    let zscore = params.get_anomaly().get_zscore();
    let k = params.coordinate_samples;
    if !params.has_anomaly()
        || !zscore
            .features
            .contains(&pb::Feature::COORDINATE_SIGN_BALANCE)
        || k == 0
    {
        return None;
    }
    let threshold = fixed::ppm_to_f64(zscore.threshold_ppm);
    let reach = f64::from(k).sqrt() / 2.0;
    (reach < threshold).then(|| {
        format!(
            "with {k} sampled coordinates the z-score cannot flag anyone on \
             coordinate-sign-balance: its scale floor 2/sqrt({k}) keeps every member within \
             about {reach:.1} of the median, below the threshold {threshold} (use at least {} \
             coordinates)",
            (2.0 * threshold).powi(2).ceil()
        )
    })
}

fn ppm(flag: &str, text: &str) -> anyhow::Result<u32> {
    fixed::parse_ppm(text).with_context(|| format!("--{flag}"))
}

impl InitArgs {
    /// The parameters; the processor's rules check them again when the transaction is built.
    pub(crate) fn to_params(&self) -> anyhow::Result<pb::ConsortiumParams> {
        let base_model_sha256 = match (&self.base_model_sha256, &self.base_model) {
            (Some(hash), _) => hash.clone(),
            (None, Some(path)) => file_sha256(path)?.0,
            (None, None) => bail!("pass --base-model-sha256 or --base-model"),
        };
        let initial_model_sha256 = match &self.initial_model {
            Some(path) => file_sha256(path)?.0,
            None => String::new(),
        };
        let rule = self.rule()?;
        let mut params = pb::ConsortiumParams {
            min_participants: self.min_participants,
            commit_quorum: self.quorum,
            model_id: self.model_id.clone(),
            base_model_sha256,
            sketch_length: self.sketch_length,
            coordinate_samples: anomaly_preset::coordinate_samples(
                self.anomaly_preset,
                self.coordinate_samples,
            ),
            coordinate_scope: self.coordinate_scope.param(),
            initial_model_sha256,
            committee_size: self.committee_size,
            link_agreement_ppm: ppm("link-agreement", &self.link_agreement)?,
            sample_ppm: self.sample_fraction.unwrap_or(0),
            sketch_after_commit: self.sketch_after_commit,
            ..Default::default()
        };
        rule.write_params(&mut params)
            .with_context(|| format!("--rule {rule}"))?;
        match self.anomaly_preset {
            Some(preset) => {
                params.set_anomaly(self.additions()?.apply(preset.config())?);
            }
            None if !self.no_anomaly && !self.anomaly.is_empty() => {
                params.set_anomaly(self.anomaly_config()?);
            }
            None => {}
        }
        self.add_mislabelled(&mut params)?;
        if let Some(warning) = unreadable_balance(&params) {
            tracing::warn!("{warning}");
        }
        Ok(params)
    }

    /// `--rule` with the parameters it leaves out taken from `--trim`, `--krum-byzantine` and
    /// `--krum-select`, which must not be given for a rule without them.
    fn rule(&self) -> anyhow::Result<Rule> {
        let trim = self.trim.as_deref().map(|t| ppm("trim", t)).transpose()?;
        let defaults = RuleDefaults {
            trim: trim.map_or(DEFAULT_TRIM, fixed::ppm_to_f64),
            krum_f: self.krum_byzantine as usize,
            krum_k: self.krum_select as usize,
        };
        let rule = Rule::parse_with(&self.rule, defaults).context("--rule")?;
        let (trimmed, krum, multi) = match rule {
            Rule::TrimmedMean { .. } => (true, false, false),
            Rule::Krum { .. } => (false, true, false),
            Rule::MultiKrum { .. } => (false, true, true),
            Rule::FedAvg | Rule::Median => (false, false, false),
        };
        if trim.is_some() && !trimmed {
            bail!("--trim applies to --rule trimmed-mean only");
        }
        if self.krum_byzantine != 0 && !krum {
            bail!("--krum-byzantine applies to --rule krum and multi-krum only");
        }
        if self.krum_select != 0 && !multi {
            bail!("--krum-select applies to --rule multi-krum only");
        }
        Ok(rule)
    }

    fn anomaly_config(&self) -> anyhow::Result<pb::AnomalyConfig> {
        let methods = [Method::Pagerank, Method::Zscore, Method::Dbscan]
            .iter()
            .filter(|m| self.anomaly.contains(m))
            .count() as u32;
        let mut config = pb::AnomalyConfig {
            ensemble_min_votes: self.ensemble_min_votes.unwrap_or(methods.min(2)),
            ..Default::default()
        };
        let features = |list: &[Feature]| list.iter().map(|f| f.to_proto()).collect::<Vec<_>>();
        if self.anomaly.contains(&Method::Pagerank) {
            config.set_pagerank(pb::PageRankConfig {
                damping_ppm: ppm("pagerank-damping", &self.pagerank_damping)?,
                k_ppm: ppm("pagerank-k", &self.pagerank_k)?,
                weight: match self.pagerank_weight {
                    Weight::Latency => pb::PageRankWeight::LATENCY,
                    Weight::Bandwidth => pb::PageRankWeight::BANDWIDTH,
                },
                max_iterations: self.pagerank_max_iterations,
                tolerance_ppb: self.pagerank_tolerance_ppb,
                ..Default::default()
            });
        }
        if self.anomaly.contains(&Method::Zscore) {
            config.set_zscore(pb::ZScoreConfig {
                threshold_ppm: ppm("zscore-threshold", &self.zscore_threshold)?,
                features: features(&self.zscore_features),
                ..Default::default()
            });
        }
        if self.anomaly.contains(&Method::Dbscan) {
            config.set_dbscan(pb::DbscanConfig {
                eps_ppm: ppm("dbscan-eps", &self.dbscan_eps)?,
                min_points: self.dbscan_min_points,
                features: features(&self.dbscan_features),
                robust: self.dbscan_robust,
                ..Default::default()
            });
        }
        if self.anomaly.contains(&Method::Duplicate) {
            config.set_duplicate(pb::DuplicateConfig {
                max_distance_ppm: ppm("duplicate-distance", &self.duplicate_distance)?,
                ..Default::default()
            });
        }
        if self.anomaly.contains(&Method::Unchanged) {
            config.set_unchanged(pb::UnchangedConfig {
                max_norm_ratio_ppm: ppm("unchanged-ratio", &self.unchanged_ratio)?,
                ..Default::default()
            });
        }
        if self.anomaly.contains(&Method::Resent) {
            config.set_resent(pb::ResentConfig {
                max_distance_ppm: ppm("resent-distance", &self.resent_distance)?,
                ..Default::default()
            });
        }
        if self.anomaly.contains(&Method::Opposed) {
            config.set_opposed(pb::OpposedConfig {
                min_distance_ppm: ppm("opposed-distance", &self.opposed_distance)?,
                ..Default::default()
            });
        }
        if self.anomaly.contains(&Method::Oversized) {
            config.set_oversized(pb::OversizedConfig {
                min_residual_ppm: ppm("oversized-residual", &self.oversized_residual)?,
                ..Default::default()
            });
        }
        // The listed opt-in methods, at their flags' values or their defaults, and the settings.
        let given = self.additions()?;
        let listed = anomaly_preset::Additions {
            mean_copy_cosine_ppm: self.anomaly.contains(&Method::MeanCopy).then(|| {
                given
                    .mean_copy_cosine_ppm
                    .unwrap_or(MEAN_COPY_MIN_COSINE_PPM)
            }),
            count_copies_once: given.count_copies_once,
            dbscan_without_excluded: given.dbscan_without_excluded,
            inconsistent_cosine_ppm: self.anomaly.contains(&Method::Inconsistent).then(|| {
                given
                    .inconsistent_cosine_ppm
                    .unwrap_or(INCONSISTENT_MIN_COSINE_PPM)
            }),
            ascent_response_ppm: self
                .anomaly
                .contains(&Method::Ascent)
                .then(|| given.ascent_response_ppm.unwrap_or(ASCENT_MAX_RESPONSE_PPM)),
            ascent_leave_one_out: given.ascent_leave_one_out,
            withdraw: given.withdraw,
            skewed_shards: given.skewed_shards,
        };
        listed.apply(config)
    }

    /// The mislabelled-change method from `--reference` and `--mislabelled-margin`, added to
    /// the preset's or the listed methods (`mislabelled` in `--anomaly` needs `--reference`).
    fn add_mislabelled(&self, params: &mut pb::ConsortiumParams) -> anyhow::Result<()> {
        let listed = self.anomaly_preset.is_none() && self.anomaly.contains(&Method::Mislabelled);
        let Some(path) = &self.reference else {
            if listed {
                bail!("the mislabelled method needs --reference FILE");
            }
            return Ok(());
        };
        if self.anomaly_preset.is_none() && !listed {
            bail!("--reference adds the mislabelled method: list it in --anomaly, or use --anomaly-preset");
        }
        let bytes =
            std::fs::read(path).with_context(|| format!("--reference {}", path.display()))?;
        let reference = bcfl_fed::update::Update::from_bytes(&bytes)
            .with_context(|| format!("--reference {}", path.display()))?;
        // The positions index the flattened tensors: the layout must be the members'.
        if let Some(initial) = &self.initial_model {
            let bytes = std::fs::read(initial)
                .with_context(|| format!("--initial-model {}", initial.display()))?;
            let model = bcfl_fed::update::Update::from_bytes(&bytes)
                .with_context(|| format!("--initial-model {}", initial.display()))?;
            if model.layout() != reference.layout() {
                bail!(
                    "--reference {} does not have the tensors of --initial-model {} (names and shapes)",
                    path.display(),
                    initial.display()
                );
            }
        }
        let count = params.coordinate_samples as usize;
        if count == 0 {
            bail!("the mislabelled method needs --coordinate-samples");
        }
        let reference_steps =
            bcfl_fed::reference::reference_steps(&reference, count, params.coordinate_scope)
                .with_context(|| format!("--reference {}", path.display()))?;
        let min_margin_ppm =
            anomaly_preset::mislabelled_margin_ppm(self.mislabelled_margin.as_deref())?;
        params.mut_anomaly().set_mislabelled(pb::MislabelledConfig {
            reference_steps,
            min_margin_ppm,
            ..Default::default()
        });
        Ok(())
    }

    /// The methods and settings the addition flags give ([`AdditionArgs`]), with
    /// `--skewed-shards`.
    fn additions(&self) -> anyhow::Result<anomaly_preset::Additions> {
        self.additions.additions(self.skewed_shards)
    }
}

/// The lowercase hex SHA-256 and the size of a file, streamed
/// ([`bcfl_fed::digest::reader_sha256`]), with the CLI's error messages.
pub(crate) fn file_sha256(path: &Path) -> anyhow::Result<(String, u64)> {
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let digest = reader_sha256(file).with_context(|| format!("cannot read {}", path.display()))?;
    Ok((digest.sha256, digest.size))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Wrapper {
        #[command(flatten)]
        init: InitArgs,
    }

    #[test]
    fn defaults_make_valid_params() {
        let hash = "ab".repeat(32);
        let w = Wrapper::parse_from(["x", "--base-model-sha256", &hash]);
        let params = w.init.to_params().unwrap();
        assert_eq!(params.sketch_length, 256);
        assert_eq!(params.aggregation_rule, pb::AggregationRule::FEDAVG);
        let anomaly = params.get_anomaly();
        assert_eq!(anomaly.get_pagerank().damping_ppm, 850_000);
        assert_eq!(anomaly.get_pagerank().k_ppm, 1_000_000);
        assert_eq!(anomaly.get_zscore().threshold_ppm, 3_500_000);
        assert!(anomaly.has_dbscan());
        // The processor's own validation accepts the defaults.
        let signer = "02a1633cafcc01ebfb6d78e39f687a1f0995c62fc95f51ead10a02ee0be551b5dc";
        let mut payload = pb::BcflPayload::new();
        payload.set_init_consortium(pb::InitConsortium {
            admin_keys: vec![signer.to_owned()].into(),
            params: Some(params).into(),
            ..Default::default()
        });
        bcfl_processor::access::declared_addresses(&payload, signer).unwrap();
    }

    /// `--anomaly-preset every-attack-lora` brings its 4096 coordinates unless given, the
    /// inconsistent-change method at 0.0625 and withdrawal; `--inconsistent-cosine` still sets
    /// another limit on it.
    #[test]
    fn the_lora_preset_brings_its_coordinates_and_method() {
        let hash = "ab".repeat(32);
        let init = |extra: &[&str]| {
            let mut argv = vec![
                "x",
                "--base-model-sha256",
                &hash,
                "--anomaly-preset",
                "every-attack-lora",
            ];
            argv.extend(extra);
            Wrapper::parse_from(argv).init.to_params().unwrap()
        };
        let params = init(&[]);
        assert_eq!(params.coordinate_samples, 4096);
        assert_eq!(
            params.get_anomaly().get_inconsistent().min_cosine_ppm,
            62_500
        );
        assert!(params.get_anomaly().withdraw && !params.get_anomaly().has_ascent());
        assert_eq!(
            params.get_anomaly(),
            &AnomalyPreset::EveryAttackLora.config()
        );
        assert_eq!(
            init(&["--coordinate-samples", "8192"]).coordinate_samples,
            8192
        );
        let tighter = init(&["--inconsistent-cosine", "0.1"]);
        assert_eq!(
            tighter.get_anomaly().get_inconsistent().min_cosine_ppm,
            100_000
        );
    }

    /// The configuration the attack benchmark measured against every attack: 256 sampled
    /// coordinates, the sign balance and the previous-change distance as features, DBSCAN
    /// standardizing robustly, the duplicate method: "One configuration for every attack" in
    /// docs/anomaly-detection.md, as docs/cli.md gives it.
    #[test]
    fn the_one_configuration_parses() {
        let hash = "ab".repeat(32);
        let features = "update-norm,cumulative-sketch-cosine-distance,coordinate-sign-balance,\
                        previous-change-distance";
        let w = Wrapper::parse_from([
            "x",
            "--base-model-sha256",
            &hash,
            "--coordinate-samples",
            "256",
            "--anomaly",
            "zscore,dbscan,duplicate,unchanged,resent,inconsistent,opposed,oversized",
            "--dbscan-robust",
            "--dbscan-eps",
            "3.5",
            "--zscore-features",
            features,
            "--dbscan-features",
            features,
        ]);
        let params = w.init.to_params().unwrap();
        assert_eq!(params.coordinate_samples, 256);
        let anomaly = params.get_anomaly();
        assert!(!anomaly.has_pagerank());
        assert_eq!(anomaly.ensemble_min_votes, 2);
        let dbscan = anomaly.get_dbscan();
        assert!(dbscan.robust);
        assert_eq!(dbscan.eps_ppm, 3_500_000);
        assert_eq!(dbscan.features.len(), 4);
        assert_eq!(
            dbscan.features.last(),
            Some(&pb::Feature::PREVIOUS_CHANGE_DISTANCE)
        );
        assert_eq!(anomaly.get_zscore().features, dbscan.features);
        // The duplicate method casts no vote: both voting methods must still agree.
        assert_eq!(anomaly.get_duplicate().max_distance_ppm, 1_000);
        assert_eq!(anomaly.get_unchanged().max_norm_ratio_ppm, 10_000);
        assert_eq!(anomaly.get_resent().max_distance_ppm, 50_000);
        assert_eq!(anomaly.get_inconsistent().min_cosine_ppm, 250_000);
        assert_eq!(anomaly.get_opposed().min_distance_ppm, 1_700_000);
        assert_eq!(anomaly.get_oversized().min_residual_ppm, 1_386_294);
        assert!(!anomaly.count_copies_once);
        // The preset leaves the inconsistent-change method out; the flag adds it.
        let mut without = anomaly.clone();
        without.clear_inconsistent();
        // The preset is the same configuration, and brings its coordinates.
        let preset = Wrapper::parse_from([
            "x",
            "--base-model-sha256",
            &hash,
            "--anomaly-preset",
            "every-attack",
        ])
        .init
        .to_params()
        .unwrap();
        assert_eq!(preset.get_anomaly(), &without);
        assert_eq!(preset.coordinate_samples, 256);
        let with = Wrapper::parse_from([
            "x",
            "--base-model-sha256",
            &hash,
            "--anomaly-preset",
            "every-attack",
            "--inconsistent-cosine",
            "0.25",
        ])
        .init
        .to_params()
        .unwrap();
        assert_eq!(with.get_anomaly(), anomaly);
        // The mean-copy method is opt-in: listed, at its flag's value or 0.95.
        let listed = |extra: &[&str]| {
            let base = [
                "x",
                "--base-model-sha256",
                &hash,
                "--anomaly",
                "zscore,mean-copy",
            ];
            Wrapper::parse_from(base.iter().chain(extra))
                .init
                .to_params()
                .unwrap()
                .get_anomaly()
                .get_mean_copy()
                .min_cosine_ppm
        };
        assert_eq!(listed(&[]), 950_000);
        assert_eq!(listed(&["--mean-copy-cosine", "0.97"]), 970_000);
        assert!(!preset.get_anomaly().has_mean_copy());
        // With a preset, --mean-copy-cosine adds the method to it.
        let added = Wrapper::parse_from([
            "x",
            "--base-model-sha256",
            &hash,
            "--anomaly-preset",
            "every-attack",
            "--mean-copy-cosine",
            "0.96",
        ])
        .init
        .to_params()
        .unwrap();
        let mut expected = without.clone();
        expected.set_mean_copy(pb::MeanCopyConfig {
            min_cosine_ppm: 960_000,
            ..Default::default()
        });
        assert_eq!(added.get_anomaly(), &expected);
        // --count-copies-once adds its setting to the preset, as to a spelled-out list.
        let once = Wrapper::parse_from([
            "x",
            "--base-model-sha256",
            &hash,
            "--anomaly-preset",
            "every-attack",
            "--count-copies-once",
        ])
        .init
        .to_params()
        .unwrap();
        let mut expected = without.clone();
        expected.count_copies_once = true;
        assert_eq!(once.get_anomaly(), &expected);
        assert!(!anomaly.dbscan_without_excluded);
        let judged = Wrapper::parse_from([
            "x",
            "--base-model-sha256",
            &hash,
            "--anomaly-preset",
            "every-attack",
            "--dbscan-without-excluded",
        ])
        .init;
        let mut expected = without.clone();
        expected.dbscan_without_excluded = true;
        assert_eq!(judged.to_params().unwrap().get_anomaly(), &expected);
        // --ascent-response adds the ascent method to the preset, and sets it in a list.
        let ascent = |extra: &[&str]| {
            let mut argv = vec![
                "x",
                "--base-model-sha256",
                &hash,
                "--coordinate-samples",
                "64",
            ];
            argv.extend(extra);
            Wrapper::parse_from(argv).init.to_params()
        };
        let added = ascent(&[
            "--anomaly-preset",
            "every-attack",
            "--ascent-response",
            "0.1",
        ])
        .unwrap();
        let mut expected = without.clone();
        expected.mut_ascent().max_response_ppm = 100_000;
        assert_eq!(added.get_anomaly(), &expected);
        let listed = ascent(&["--anomaly", "zscore,ascent"]).unwrap();
        assert_eq!(listed.get_anomaly().get_ascent().max_response_ppm, 50_000);
        assert!(!listed.get_anomaly().withdraw);
        // --withdraw sets the switch beside either, in a list or on the preset.
        let withdrawing = ascent(&["--anomaly", "zscore,ascent", "--withdraw"]).unwrap();
        assert!(withdrawing.get_anomaly().withdraw);
        let on_preset = ascent(&[
            "--anomaly-preset",
            "every-attack",
            "--ascent-response",
            "0.1",
            "--withdraw",
        ])
        .unwrap();
        expected.withdraw = true;
        assert_eq!(on_preset.get_anomaly(), &expected);
        // --ascent-leave-one-out sets the method's switch, in a list or on a preset holding
        // it, and needs the method.
        let listed = ascent(&["--anomaly", "zscore,ascent", "--ascent-leave-one-out"]).unwrap();
        assert!(listed.get_anomaly().get_ascent().leave_one_out);
        let convex = ascent(&[
            "--anomaly-preset",
            "every-attack-convex",
            "--ascent-leave-one-out",
        ])
        .unwrap();
        assert!(convex.get_anomaly().get_ascent().leave_one_out);
        for without_ascent in [
            &["--anomaly", "zscore", "--ascent-leave-one-out"][..],
            &["--anomaly-preset", "every-attack", "--ascent-leave-one-out"],
        ] {
            let err = ascent(without_ascent).unwrap_err().to_string();
            assert!(err.contains("needs the ascent method"), "{err}");
        }
        // --skewed-shards narrows the preset's voting features, and needs the preset.
        let skewed = ascent(&["--anomaly-preset", "every-attack", "--skewed-shards"]).unwrap();
        let features = bcfl_processor::anomaly::SKEWED_SHARDS_FEATURES.to_vec();
        assert_eq!(skewed.get_anomaly().get_zscore().features, features);
        assert_eq!(skewed.get_anomaly().get_dbscan().features, features);
        let mut narrowed = AnomalyPreset::EveryAttack.config();
        narrowed.mut_zscore().features = features.clone();
        narrowed.mut_dbscan().features = features;
        assert_eq!(skewed.get_anomaly(), &narrowed, "the methods stay");
        assert!(Wrapper::try_parse_from([
            "x",
            "--base-model-sha256",
            &hash,
            "--anomaly",
            "zscore",
            "--skewed-shards",
        ])
        .is_err());
        // It conflicts with the flags it sets.
        for flag in [
            &["--dbscan-eps", "2.0"][..],
            &["--duplicate-distance", "0.01"],
            &["--unchanged-ratio", "0"],
            &["--resent-distance", "0.1"],
            &["--opposed-distance", "1.8"],
            &["--oversized-residual", "2"],
        ] {
            let preset = [
                "x",
                "--base-model-sha256",
                &hash,
                "--anomaly-preset",
                "every-attack",
            ];
            assert!(Wrapper::try_parse_from(preset.iter().chain(flag)).is_err());
        }
        assert!(
            !Wrapper::parse_from(["x", "--base-model-sha256", &hash])
                .init
                .to_params()
                .unwrap()
                .get_anomaly()
                .get_dbscan()
                .robust
        );
    }

    #[test]
    fn too_few_coordinates_for_the_balance_are_reported() {
        let hash = "ab".repeat(32);
        let params = |samples: &str| {
            Wrapper::parse_from([
                "x",
                "--base-model-sha256",
                &hash,
                "--coordinate-samples",
                samples,
                "--zscore-features",
                "update-norm,coordinate-sign-balance",
            ])
            .init
            .to_params()
            .unwrap()
        };
        let warning = unreadable_balance(&params("4")).unwrap();
        assert!(warning.contains("within about 1.0") && warning.contains("at least 49"));
        assert_eq!(unreadable_balance(&params("64")), None);
        assert_eq!(
            unreadable_balance(
                &Wrapper::parse_from(["x", "--base-model-sha256", &hash])
                    .init
                    .to_params()
                    .unwrap()
            ),
            None
        );
    }

    #[test]
    fn trimmed_mean_and_no_anomaly() {
        let hash = "ab".repeat(32);
        let w = Wrapper::parse_from([
            "x",
            "--base-model-sha256",
            &hash,
            "--rule",
            "trimmed-mean",
            "--no-anomaly",
        ]);
        let params = w.init.to_params().unwrap();
        assert_eq!(params.trim_ppm, 100_000);
        assert!(!params.has_anomaly());
    }

    #[test]
    fn initial_model_is_hashed_and_recorded() {
        let hash = "ab".repeat(32);
        let w = Wrapper::parse_from(["x", "--base-model-sha256", &hash]);
        assert_eq!(w.init.to_params().unwrap().initial_model_sha256, "");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("initial.safetensors");
        std::fs::write(&path, b"abc").unwrap();
        let w = Wrapper::parse_from([
            "x",
            "--base-model-sha256",
            &hash,
            "--initial-model",
            path.to_str().unwrap(),
        ]);
        let params = w.init.to_params().unwrap();
        assert_eq!(params.initial_model_sha256, file_sha256(&path).unwrap().0);
        assert_eq!(params.base_model_sha256, hash);
        let mut payload = pb::BcflPayload::new();
        let signer = "02a1633cafcc01ebfb6d78e39f687a1f0995c62fc95f51ead10a02ee0be551b5dc";
        payload.set_init_consortium(pb::InitConsortium {
            admin_keys: vec![signer.to_owned()].into(),
            params: Some(params).into(),
            ..Default::default()
        });
        bcfl_processor::access::declared_addresses(&payload, signer).unwrap();
        let missing = dir.path().join("missing");
        let w = Wrapper::parse_from([
            "x",
            "--base-model-sha256",
            &hash,
            "--initial-model",
            missing.to_str().unwrap(),
        ]);
        let err = w.init.to_params().unwrap_err();
        assert!(err.to_string().starts_with("cannot open"), "{err}");
    }

    #[test]
    fn rules_with_parameters_in_the_text_or_the_flags() {
        let hash = "ab".repeat(32);
        let params = |extra: &[&str]| {
            let mut args = vec!["x", "--base-model-sha256", &hash, "--no-anomaly"];
            args.extend_from_slice(extra);
            Wrapper::parse_from(args).init.to_params()
        };
        let fields = |p: &pb::ConsortiumParams| {
            (
                p.aggregation_rule,
                p.trim_ppm,
                p.krum_byzantine,
                p.krum_select,
            )
        };
        use pb::AggregationRule::*;
        let known: [(&[&str], _); 7] = [
            (&["--rule", "median"], (MEDIAN, 0, 0, 0)),
            (
                &["--rule", "trimmed-mean:0.2"],
                (TRIMMED_MEAN, 200_000, 0, 0),
            ),
            (
                &["--rule", "trimmed-mean", "--trim", "0.25"],
                (TRIMMED_MEAN, 250_000, 0, 0),
            ),
            (&["--rule", "krum:1"], (KRUM, 0, 1, 0)),
            (
                &["--rule", "krum", "--krum-byzantine", "2"],
                (KRUM, 0, 2, 0),
            ),
            (&["--rule", "multi-krum:1:3"], (MULTI_KRUM, 0, 1, 3)),
            (
                &[
                    "--rule",
                    "multi-krum",
                    "--krum-byzantine",
                    "1",
                    "--krum-select",
                    "4",
                ],
                (MULTI_KRUM, 0, 1, 4),
            ),
        ];
        for (args, expected) in known {
            assert_eq!(fields(&params(args).unwrap()), expected, "{args:?}");
        }
        for bad in [
            &["--rule", "fedavg", "--trim", "0.1"][..],
            &["--rule", "median", "--krum-byzantine", "1"],
            &["--rule", "krum", "--krum-select", "2"],
            &["--rule", "trimmed-mean:0.7"],
            &["--rule", "mean"],
        ] {
            assert!(params(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn hashes_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("blob");
        std::fs::write(&path, b"abc").unwrap();
        let (hash, size) = file_sha256(&path).unwrap();
        assert_eq!(
            hash,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(size, 3);
    }

    /// `--reference FILE` puts the file's values at the sampled coordinates on chain and adds
    /// the mislabelled-change method (to the preset, or where `--anomaly` lists it), with
    /// `--mislabelled-margin`'s limit; bad files and limits are clear errors.
    #[test]
    fn the_reference_adds_the_mislabelled_method() {
        use bcfl_fed::update::{Encoding, Update};
        let dir = tempfile::tempdir().unwrap();
        let template = Update {
            tensors: std::collections::BTreeMap::from([
                ("head.bias".to_string(), (vec![3], vec![0.0; 3])),
                ("head.weight".to_string(), (vec![3, 2], vec![0.0; 6])),
            ]),
        };
        let means = [vec![1.0, 0.0], vec![3.0, 0.0], vec![2.0, 2.0]];
        let rows = bcfl_fed::reference::class_directions(&means).unwrap();
        let reference =
            bcfl_fed::reference::head_reference(&template, "head.weight", &rows).unwrap();
        let file = dir.path().join("reference.safetensors");
        std::fs::write(&file, reference.to_bytes(Encoding::F32)).unwrap();
        let path = file.to_str().unwrap();
        let hash = "ab".repeat(32);
        let init = |extra: &[&str]| {
            let mut argv = vec!["x", "--base-model-sha256", &hash];
            argv.extend_from_slice(extra);
            Wrapper::try_parse_from(argv)
                .map_err(anyhow::Error::from)
                .and_then(|w| w.init.to_params())
        };
        let on_preset = init(&["--anomaly-preset", "every-attack", "--reference", path]).unwrap();
        let m = on_preset.get_anomaly().get_mislabelled();
        assert_eq!(
            m.min_margin_ppm,
            bcfl_processor::anomaly::MISLABELLED_MIN_MARGIN_PPM
        );
        assert_eq!(
            m.reference_steps,
            bcfl_fed::reference::reference_steps(
                &reference,
                256,
                bcfl_fed::sketch::CoordinateScope::EVERY_TENSOR
            )
            .unwrap()
        );
        assert!(bcfl_processor::payload::validate_params(&on_preset).is_ok());
        let listed = init(&[
            "--anomaly",
            "zscore,mislabelled",
            "--coordinate-samples",
            "64",
            "--reference",
            path,
            "--mislabelled-margin",
            "-0.02",
        ])
        .unwrap();
        assert_eq!(
            listed.get_anomaly().get_mislabelled().min_margin_ppm,
            -20_000
        );
        assert_eq!(
            listed.get_anomaly().get_mislabelled().reference_steps.len(),
            64
        );
        let err = |extra: &[&str]| format!("{:#}", init(extra).unwrap_err());
        assert!(err(&["--anomaly", "zscore,mislabelled"]).contains("needs --reference FILE"));
        assert!(err(&["--anomaly", "zscore", "--reference", path]).contains("list it in --anomaly"));
        assert!(err(&["--anomaly", "mislabelled", "--reference", path])
            .contains("needs --coordinate-samples"));
        assert!(err(&[
            "--anomaly-preset",
            "every-attack",
            "--reference",
            path,
            "--mislabelled-margin",
            "0.6"
        ])
        .contains("within 0.5 of 0"));
        assert!(err(&[
            "--anomaly-preset",
            "every-attack",
            "--mislabelled-margin",
            "0.1"
        ])
        .contains("--reference"));
        // The reference must have the initial model's tensors, when one is given.
        let initial = dir.path().join("initial.safetensors");
        std::fs::write(&initial, template.to_bytes(Encoding::F32)).unwrap();
        let initial = initial.to_str().unwrap();
        let with_initial = [
            "--anomaly-preset",
            "every-attack",
            "--reference",
            path,
            "--initial-model",
            initial,
        ];
        assert!(init(&with_initial).is_ok());
        let mut other = template.clone();
        other
            .tensors
            .insert("lora.a".into(), (vec![2], vec![0.0; 2]));
        std::fs::write(initial, other.to_bytes(Encoding::F32)).unwrap();
        assert!(err(&with_initial).contains("does not have the tensors of --initial-model"));
        std::fs::write(&file, b"not a safetensors file").unwrap();
        assert!(
            err(&["--anomaly-preset", "every-attack", "--reference", path]).contains("--reference")
        );
    }
}
