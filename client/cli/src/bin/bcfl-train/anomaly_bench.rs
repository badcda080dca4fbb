//! `bcfl anomaly bench` and `bcfl anomaly paper-table`: attacks on real federated training of the
//! classification head over frozen MiniLM embeddings (see [`bcfl_client::train::attack`]); and
//! `bcfl anomaly plot`, which draws a bench report's figures again from its JSON; and `bcfl
//! anomaly scorecard`, which scores reports against the grid's goal.
//!
//! Both embed Medical Abstracts once with the frozen model (cached under
//! `$BCFL_HOME/cache`), then run every defence as a consortium of its own on the round library
//! (members, aggregator and coordinator over the in-memory ledger with the processor's rules).
//! Without `--json` they print markdown tables; with it, the report as one JSON object.

use std::path::PathBuf;

use anyhow::{bail, Context as _};
use bcfl_cli::anomaly_preset::{self, AnomalyPreset};
use bcfl_cli::context::Context;
use bcfl_client::demo::attack::CollusionNoise;
use bcfl_client::train::attack::bench::{run_bench, BenchConfig, BenchReport};
use bcfl_client::train::attack::detect::{Detector, Tuning};
use bcfl_client::train::attack::embed::Embeddings;
use bcfl_client::train::attack::head::{LocalConfig, ReferenceDirections};
use bcfl_client::train::attack::medical_embeddings;
use bcfl_client::train::attack::paper::{paper_table, PaperConfig};
use bcfl_client::train::attack::scorecard::{self, Goal};
use bcfl_client::train::checkpoint::ModelDir;
use bcfl_client::train::data::Dataset;
use bcfl_client::train::split::Partition;
use bcfl_processor::anomaly::attack::AttackKind;
use bcfl_processor::anomaly::parse_feature;
use bcfl_processor::{fixed, limits};
use bcfl_protos::bcfl as pb;
use clap::{Args, Subcommand};

/// The subcommands of `bcfl anomaly` that train (without one, `bcfl` scores members from files).
#[derive(Debug, Subcommand)]
pub(crate) enum AnomalyCommand {
    /// Detection quality and final accuracy per defence under attack, over seeds.
    Bench(BenchArgs),
    /// The seed paper's table: method, anomalous nodes, asynchronous time, IID/non-IID accuracy.
    PaperTable(PaperArgs),
    /// Draws a bench report's figures again from its JSON (`anomaly bench --out`).
    Plot(PlotArgs),
    /// Scores bench reports against the grid's goal: F1 >= 0.95 up to 20 % attackers, >= 0.90
    /// above, exclusion's accuracy within 1 point of the clean run.
    Scorecard(ScorecardArgs),
}

/// Where the model, data and cache are, and how training runs.
#[derive(Debug, Args)]
pub(crate) struct CommonArgs {
    /// Directory of the frozen BERT checkpoint.
    #[arg(long, env = "BCFL_MODEL_DIR")]
    model_dir: PathBuf,
    /// Required SHA-256 of model.safetensors (default: the installing package's record).
    #[arg(long)]
    model_sha256: Option<String>,
    /// Data directory holding `medical-abstracts/`.
    #[arg(long, env = "BCFL_DATA_DIR")]
    data_dir: PathBuf,
    /// Embedding cache directory [default: $BCFL_HOME/cache].
    #[arg(long)]
    cache_dir: Option<PathBuf>,
    /// Longest token sequence of the embeddings.
    #[arg(long, default_value_t = 128)]
    max_len: usize,
    /// Number of seeds.
    #[arg(long, default_value_t = 5)]
    seeds: u64,
    /// The first seed (seeds are first-seed .. first-seed + seeds).
    #[arg(long, default_value_t = 0)]
    first_seed: u64,
    /// Federated rounds.
    #[arg(long, default_value_t = 10)]
    rounds: usize,
    /// Local epochs per round.
    #[arg(long, default_value_t = 2)]
    epochs: usize,
    /// Local SGD batch size.
    #[arg(long, default_value_t = 16)]
    batch_size: usize,
    /// Local SGD learning rate.
    #[arg(long, default_value_t = 0.5)]
    lr: f64,
    /// Length of the committed sketches.
    #[arg(long, default_value_t = 256)]
    sketch_length: usize,
    /// Coordinates each commitment samples, what the `coordinate_sign_balance` feature reads
    /// (0: none).
    #[arg(long, default_value_t = 0)]
    coordinate_samples: usize,
    /// Sketches come after the commitments: a round's commitments carry none, its aggregator
    /// seals it once they are in (the seed drawn from them), and each member then reveals its
    /// sketch made with that seed, so that nobody fixing its update knows the projection that
    /// will see it (`sketch_after_commit`).
    #[arg(long)]
    sketch_after_commit: bool,
    /// Fraction of the data held out for testing.
    #[arg(long, default_value_t = 0.2)]
    test_fraction: f64,
    /// Features DBSCAN and the modified z-score use (comma-separated feature names).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "update_norm,cumulative_sketch_cosine_distance"
    )]
    features: Vec<String>,
    /// DBSCAN neighbourhood radius over standardized features.
    #[arg(long, default_value_t = 1.5)]
    dbscan_eps: f64,
    /// DBSCAN core-point neighbourhood size (the point itself included).
    #[arg(long, default_value_t = 2)]
    dbscan_min_points: u32,
    /// DBSCAN standardizes each feature by its median and robust scale instead of its mean and
    /// standard deviation (`consortium init --dbscan-robust`).
    #[arg(long)]
    dbscan_robust: bool,
    /// Modified z-score threshold.
    #[arg(long, default_value_t = 3.5)]
    zscore_threshold: f64,
    /// Adds the duplicate method to every detector (`consortium init --anomaly ...,duplicate
    /// --duplicate-distance D`): a member whose sketch lies within this cosine distance of
    /// another committer's is excluded whatever the other methods vote.
    #[arg(long, value_name = "D")]
    duplicate_distance: Option<f64>,
    /// Adds the unchanged-update method to every detector (`consortium init --anomaly
    /// ...,unchanged --unchanged-ratio R`): a member whose update norm is at most this share
    /// of the round's median norm is excluded whatever the other methods vote.
    #[arg(long, value_name = "R")]
    unchanged_ratio: Option<f64>,
    /// Adds the resent-change method to every detector (`consortium init --anomaly
    /// ...,resent --resent-distance D`): a member whose sampled change lies within this
    /// relative distance of the global model's previous change is excluded whatever the other
    /// methods vote. Needs --coordinate-samples.
    #[arg(long, value_name = "D")]
    resent_distance: Option<f64>,
    /// Adds the inconsistent-change method to every detector (`consortium init --anomaly
    /// ...,inconsistent --inconsistent-cosine C`), the preset's too: a member whose sampled
    /// change has a cosine below this with its own previous change is excluded whatever the
    /// other methods vote. Needs --coordinate-samples (or the preset).
    #[arg(long, value_name = "C")]
    inconsistent_cosine: Option<f64>,
    /// Adds the opposed-change method to every detector (`consortium init --anomaly
    /// ...,opposed --opposed-distance D`), or sets the preset's: a member whose sketches
    /// summed over the rounds lie at least this cosine distance from the consensus (the
    /// preset's 1.7: cosine -0.7) is excluded whatever the other methods vote.
    #[arg(long, value_name = "D")]
    opposed_distance: Option<f64>,
    /// Adds the oversized-update method to every detector (`consortium init --anomaly
    /// ...,oversized --oversized-residual R`), or sets the preset's: a member whose update norm
    /// lies at least this far (natural-log units; the preset's ln 4 = 1.386294: four times the norm the line predicts) above the line the
    /// round's norms fit against their sample counts is excluded whatever the other methods
    /// vote.
    #[arg(long, value_name = "R")]
    oversized_residual: Option<f64>,
    /// Adds the mean-copy method to every detector, the preset's too (`consortium init
    /// --anomaly ...,mean-copy --mean-copy-cosine C`): a member whose sketch has at least this
    /// cosine (from 0.5 to 1; `consortium init`'s default 0.95) with the others' mean update
    /// (their sketches weighted by their norms) is excluded whatever the other methods vote.
    #[arg(long, value_name = "C")]
    mean_copy_cosine: Option<f64>,
    /// Adds the ascent method to every detector (`consortium init --anomaly ...,ascent
    /// --ascent-response R`), the preset's too: a member whose changes, over its rounds,
    /// respond to the model's moves above this (`consortium init`'s default: 0.05) as steps up
    /// its loss do is excluded whatever the other methods vote. Needs --coordinate-samples (or
    /// the preset).
    #[arg(long, value_name = "R")]
    ascent_response: Option<f64>,
    /// The ascent method compares each member with the others' move, the model's move without
    /// the member's own previous change (`consortium init --ascent-leave-one-out`). Needs the
    /// ascent method (--ascent-response or the `every-attack-convex` preset).
    #[arg(long)]
    ascent_leave_one_out: bool,
    /// Adds the mislabelled-change method to every detector (`consortium init --anomaly
    /// ...,mislabelled --reference FILE --mislabelled-margin M`), the preset's too: a member
    /// whose changes, over its rounds, lie below this mean cosine with the reference direction
    /// (taken from 500 held-out rows, --mislabelled-reference; `consortium init`'s default:
    /// -0.03) is excluded whatever the other methods vote. Needs --coordinate-samples (or the
    /// preset).
    #[arg(long, value_name = "M", allow_hyphen_values = true)]
    mislabelled_margin: Option<f64>,
    /// What the mislabelled-change method's reference rows are taken from (`bcfl model
    /// reference --directions`): the held-out rows' class means, or a linear classifier
    /// trained on them.
    #[arg(
        long,
        value_enum,
        value_name = "KIND",
        default_value_t = ReferenceDirections::ClassMeans,
        requires = "mislabelled_margin"
    )]
    mislabelled_reference: ReferenceDirections,
    /// Copies of one update count once towards DBSCAN's and the z-score's medians and scales
    /// (`consortium init --count-copies-once`), the preset's too.
    #[arg(long)]
    count_copies_once: bool,
    /// DBSCAN clusters only the members no method that excludes on its own flagged
    /// (`consortium init --dbscan-without-excluded`), the preset's too.
    #[arg(long)]
    dbscan_without_excluded: bool,
    /// The inconsistent-change and ascent methods' flags also withdraw the member's commitment
    /// to the round before from the model (`consortium init --withdraw`); detection then
    /// counts a withdrawn member-round as flagged, one round late. Needs
    /// --inconsistent-cosine or --ascent-response.
    #[arg(long)]
    withdraw: bool,
    /// The preset's DBSCAN and z-score read only the update norm and the sign balance
    /// (`consortium init --skewed-shards`): for shards as skewed as `--dirichlet 0.1`.
    // `requires` alone lets a flag the preset conflicts with through.
    #[arg(long, requires = "anomaly_preset", conflicts_with_all = ["features"])]
    skewed_shards: bool,
    /// `every-attack`: the features, radius and standardization of `consortium init
    /// --anomaly-preset every-attack` (and 256 coordinates unless --coordinate-samples is
    /// given); its detector is `both` (the preset's configuration exactly).
    /// `every-attack-convex`: the same with the inconsistent-change and ascent methods and
    /// withdrawal, for members descending a convex loss (the benchmark's heads).
    /// `every-attack-lora`: `every-attack` with 4096 coordinates unless given, the
    /// inconsistent-change method at 0.0625 and withdrawal, for members fine-tuning LoRA
    /// adapters with AdamW (the demo's).
    #[arg(
        long,
        value_enum,
        conflicts_with_all = [
            "features", "dbscan_eps", "dbscan_min_points", "dbscan_robust", "zscore_threshold",
            "duplicate_distance", "unchanged_ratio", "resent_distance",
        ]
    )]
    anomaly_preset: Option<AnomalyPreset>,
}

impl CommonArgs {
    fn load(&self) -> anyhow::Result<(Dataset, Embeddings)> {
        let model = ModelDir::open(&self.model_dir, self.model_sha256.as_deref())?;
        let cache = match &self.cache_dir {
            Some(dir) => dir.clone(),
            None => std::env::var_os("BCFL_HOME")
                .map(PathBuf::from)
                .or_else(|| {
                    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share/bcfl"))
                })
                .context("set BCFL_HOME or give --cache-dir")?
                .join("cache"),
        };
        let (dataset, embeddings, cached) =
            medical_embeddings(&model, &self.data_dir, &cache, self.max_len)?;
        tracing::info!(rows = embeddings.len(), cached, cache = %cache.display(), "embeddings ready");
        // The head's tensors are tiny: one thread avoids OpenMP's spinning between operations.
        bcfl_client::tch::set_num_threads(1);
        Ok((dataset, embeddings))
    }

    fn local(&self) -> anyhow::Result<LocalConfig> {
        if self.epochs == 0 || self.batch_size == 0 || !(self.lr > 0.0 && self.lr.is_finite()) {
            bail!("--epochs, --batch-size and --lr must be positive");
        }
        Ok(LocalConfig {
            epochs: self.epochs,
            batch_size: self.batch_size,
            learning_rate: self.lr,
        })
    }

    /// Coordinates per commitment: `--coordinate-samples`, or the preset's when that is 0.
    fn coordinate_samples(&self) -> usize {
        let given = u32::try_from(self.coordinate_samples).unwrap_or(u32::MAX);
        anomaly_preset::coordinate_samples(self.anomaly_preset, given) as usize
    }

    fn tuning(&self) -> anyhow::Result<Tuning> {
        let max_cosine = fixed::ppm_to_f64(limits::MAX_INCONSISTENT_COSINE_PPM);
        if let Some(c) = self.inconsistent_cosine {
            if !(c > 0.0 && c <= max_cosine) {
                bail!("--inconsistent-cosine must lie in (0, {max_cosine}]");
            }
            if self.coordinate_samples() == 0 {
                bail!("--inconsistent-cosine needs --coordinate-samples");
            }
        }
        let (min_opposed, max_opposed) = (
            fixed::ppm_to_f64(limits::MIN_OPPOSED_DISTANCE_PPM),
            fixed::ppm_to_f64(limits::MAX_OPPOSED_DISTANCE_PPM),
        );
        if let Some(d) = self.opposed_distance {
            if !(min_opposed..=max_opposed).contains(&d) {
                bail!("--opposed-distance must lie in [{min_opposed}, {max_opposed}]");
            }
        }
        let (min_oversized, max_oversized) = (
            fixed::ppm_to_f64(limits::MIN_OVERSIZED_RESIDUAL_PPM),
            fixed::ppm_to_f64(limits::MAX_OVERSIZED_RESIDUAL_PPM),
        );
        if let Some(r) = self.oversized_residual {
            if !(min_oversized..=max_oversized).contains(&r) {
                bail!("--oversized-residual must lie in [{min_oversized}, {max_oversized}]");
            }
        }
        let min_mean_copy = fixed::ppm_to_f64(limits::MIN_MEAN_COPY_COSINE_PPM);
        if let Some(c) = self.mean_copy_cosine {
            if !(min_mean_copy..=1.0).contains(&c) {
                bail!("--mean-copy-cosine must lie in [{min_mean_copy}, 1]");
            }
        }
        let max_response = fixed::ppm_to_f64(limits::MAX_ASCENT_RESPONSE_PPM);
        if let Some(r) = self.ascent_response {
            if !(0.0..=max_response).contains(&r) {
                bail!("--ascent-response must lie in [0, {max_response}]");
            }
            if self.coordinate_samples() == 0 {
                bail!("--ascent-response needs --coordinate-samples");
            }
        }
        let max_margin = f64::from(limits::MAX_MISLABELLED_MARGIN_PPM) / 1e6;
        if let Some(m) = self.mislabelled_margin {
            if !(-max_margin..=max_margin).contains(&m) {
                bail!("--mislabelled-margin must lie in [-{max_margin}, {max_margin}]");
            }
            if self.coordinate_samples() == 0 {
                bail!("--mislabelled-margin needs --coordinate-samples");
            }
        }
        // What the preset adds to `every-attack` (`every-attack-convex`: the pair methods at
        // their limits and withdrawal), and `--skewed-shards`; the flags take precedence.
        let added = anomaly_preset::Additions {
            skewed_shards: self.skewed_shards,
            ..self
                .anomaly_preset
                .map(AnomalyPreset::additions)
                .unwrap_or_default()
        };
        let cosine = self
            .inconsistent_cosine
            .or(added.inconsistent_cosine_ppm.map(fixed::ppm_to_f64));
        let response = self
            .ascent_response
            .or(added.ascent_response_ppm.map(fixed::ppm_to_f64));
        if self.withdraw && cosine.is_none() && response.is_none() {
            bail!("--withdraw needs --inconsistent-cosine or --ascent-response");
        }
        if self.ascent_leave_one_out && response.is_none() {
            bail!("--ascent-leave-one-out needs --ascent-response (or --anomaly-preset every-attack-convex)");
        }
        if self.anomaly_preset.is_some() {
            let preset = Tuning::every_attack();
            return Ok(Tuning {
                features: added
                    .voting_features()
                    .map_or(preset.features, <[pb::Feature]>::to_vec),
                inconsistent_cosine: cosine,
                ascent_response: response,
                ascent_leave_one_out: self.ascent_leave_one_out,
                mislabelled_margin: self.mislabelled_margin,
                mislabelled_reference: self.mislabelled_reference,
                opposed_distance: self.opposed_distance.or(preset.opposed_distance),
                oversized_residual: self.oversized_residual.or(preset.oversized_residual),
                mean_copy_cosine: self.mean_copy_cosine,
                count_copies_once: self.count_copies_once,
                dbscan_without_excluded: self.dbscan_without_excluded,
                withdraw: self.withdraw || added.withdraw,
                ..preset
            });
        }
        let features = self
            .features
            .iter()
            .map(|n| parse_feature(n).with_context(|| format!("unknown feature {n:?}")))
            .collect::<anyhow::Result<Vec<pb::Feature>>>()?;
        let positive = |x: f64| x > 0.0 && x < 4000.0;
        if !positive(self.dbscan_eps) || !positive(self.zscore_threshold) {
            bail!("--dbscan-eps and --zscore-threshold must lie in (0, 4000)");
        }
        if !(1..=256).contains(&self.dbscan_min_points) {
            bail!("--dbscan-min-points must lie in 1..=256");
        }
        if let Some(d) = self.duplicate_distance {
            if !(d > 0.0 && d <= 1.0) {
                bail!("--duplicate-distance must lie in (0, 1]");
            }
        }
        // The processor's bounds (`InitConsortium` refuses others).
        let max_ratio = fixed::ppm_to_f64(limits::MAX_UNCHANGED_RATIO_PPM);
        let max_distance = fixed::ppm_to_f64(limits::MAX_RESENT_DISTANCE_PPM);
        if let Some(r) = self.unchanged_ratio {
            if !(0.0..=max_ratio).contains(&r) {
                bail!("--unchanged-ratio must lie in [0, {max_ratio}]");
            }
        }
        if let Some(d) = self.resent_distance {
            if !(d > 0.0 && d <= max_distance) {
                bail!("--resent-distance must lie in (0, {max_distance}]");
            }
            if self.coordinate_samples == 0 {
                bail!("--resent-distance needs --coordinate-samples");
            }
        }
        Ok(Tuning {
            features,
            dbscan_eps: self.dbscan_eps,
            dbscan_min_points: self.dbscan_min_points,
            dbscan_robust: self.dbscan_robust,
            zscore_threshold: self.zscore_threshold,
            duplicate_distance: self.duplicate_distance,
            unchanged_ratio: self.unchanged_ratio,
            resent_distance: self.resent_distance,
            inconsistent_cosine: self.inconsistent_cosine,
            opposed_distance: self.opposed_distance,
            oversized_residual: self.oversized_residual,
            mean_copy_cosine: self.mean_copy_cosine,
            ascent_response: self.ascent_response,
            ascent_leave_one_out: self.ascent_leave_one_out,
            mislabelled_margin: self.mislabelled_margin,
            mislabelled_reference: self.mislabelled_reference,
            count_copies_once: self.count_copies_once,
            dbscan_without_excluded: self.dbscan_without_excluded,
            withdraw: self.withdraw,
        })
    }

    fn seed_list(&self) -> Vec<u64> {
        (self.first_seed..self.first_seed + self.seeds).collect()
    }
}

fn attacks(names: &[String]) -> anyhow::Result<Vec<AttackKind>> {
    if names.iter().any(|n| n == "all") {
        return Ok(AttackKind::published());
    }
    if names.iter().any(|n| n == "colluding") {
        return Ok(AttackKind::COLLUDING.to_vec());
    }
    if names.iter().any(|n| n == "adaptive") {
        return Ok(AttackKind::ADAPTIVE.to_vec());
    }
    names
        .iter()
        .map(|n| Ok(n.trim().parse::<AttackKind>()?))
        .collect()
}

/// Arguments of `bcfl anomaly bench`.
#[derive(Debug, Args)]
pub(crate) struct BenchArgs {
    #[command(flatten)]
    common: CommonArgs,
    /// Member counts.
    #[arg(long, value_delimiter = ',', default_value = "10,20")]
    members: Vec<usize>,
    /// Attacker fractions.
    #[arg(long, value_delimiter = ',', default_value = "0.1,0.2,0.3")]
    fractions: Vec<f64>,
    /// Attacks (label-flip, sign-flip, scale-x10, gaussian-noise, free-rider, stale-rider,
    /// slow-link, disguised-scale, the colluding alie, ipm, min-max, min-sum, and the adaptive
    /// hidden-reversal; `_` for `-` accepted; `all` for every published one, `colluding` for the
    /// four colluding ones, `adaptive` for hidden-reversal).
    #[arg(long, value_delimiter = ',', default_value = "all")]
    attacks: Vec<String>,
    /// Detectors whose exclusion is compared (pagerank, dbscan, zscore, ensemble, any, and
    /// both: DBSCAN and the z-score together, without PageRank).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "pagerank,dbscan,zscore,ensemble,any"
    )]
    detectors: Vec<String>,
    /// Run only the detectors' consortia: no clean, attackers-absent or centralized reference,
    /// no undefended run and no robust rule (for tuning detection; their accuracy rows are left
    /// out of the report).
    #[arg(long)]
    detection_only: bool,
    /// Also run each detector's exclusion followed by the trimmed mean (the rule's default
    /// 10 % at each end) beside its exclusion followed by FedAvg: rows
    /// `exclude_<detector>_trimmed_mean`.
    #[arg(long, conflicts_with = "detection_only")]
    exclusion_trimmed: bool,
    /// Colluding attackers each move their copy of the crafted update by Gaussian noise of
    /// this norm relative to the crafted change, so that the copies differ (two copies then
    /// lie about R^2 / (1 + R^2) apart in cosine distance) [default: 0, one copy].
    #[arg(long, value_name = "R", default_value = "0")]
    collusion_noise: CollusionNoise,
    /// Adaptive attackers (`hidden-reversal`) hide from another projection than the round's:
    /// an emulation of --sketch-after-commit without its extra phase (the report's
    /// `blind_projection`).
    #[arg(long)]
    blind_projection: bool,
    /// Non-IID shards: Dirichlet concentration (default: IID shards).
    #[arg(long)]
    dirichlet: Option<f64>,
    /// Also write the report as JSON to this file.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Write the figures as `PREFIX-f1.svg` (detection F1 per attack against the attackers'
    /// share) and `PREFIX-accuracy.svg` (each defence's worst final accuracy).
    #[arg(long, value_name = "PREFIX")]
    figures: Option<PathBuf>,
}

/// Arguments of `bcfl anomaly paper-table`.
#[derive(Debug, Args)]
pub(crate) struct PaperArgs {
    #[command(flatten)]
    common: CommonArgs,
    /// Members.
    #[arg(long, default_value_t = 10)]
    members: usize,
    /// Attackers; attacker j uses the j-th attack (cycling).
    #[arg(long, default_value_t = 2)]
    attackers: usize,
    /// Attacks of the attackers.
    #[arg(long, value_delimiter = ',', default_value = "slow-link,scale-x10")]
    attacks: Vec<String>,
    /// Dirichlet concentration of the non-IID shards.
    #[arg(long, default_value_t = 0.5)]
    alpha: f64,
    /// Transfer size in bytes for the distribution time [default: the update file size].
    #[arg(long)]
    size: Option<f64>,
    /// Fixed delay D_G in seconds.
    #[arg(long, default_value_t = 0.0)]
    delay: f64,
}

/// Arguments of `bcfl anomaly plot`.
#[derive(Debug, Args)]
pub(crate) struct PlotArgs {
    /// The report, as `anomaly bench --out` wrote it.
    #[arg(long, value_name = "FILE")]
    report: PathBuf,
    /// Write `PREFIX-f1.svg` and `PREFIX-accuracy.svg`.
    #[arg(long, value_name = "PREFIX")]
    figures: PathBuf,
    /// The detector whose F1 the first figure draws [default: `both` when the report measured
    /// it, else `ensemble`, else its first detector].
    #[arg(long)]
    detector: Option<String>,
}

/// Arguments of `bcfl anomaly scorecard`.
#[derive(Debug, Args)]
pub(crate) struct ScorecardArgs {
    /// Reports, as `anomaly bench --out` wrote them; each is named by its file name.
    #[arg(required = true, value_name = "FILE")]
    reports: Vec<PathBuf>,
    /// The detector scored [default: `both` when a report measured it, else `ensemble`, else
    /// its first detector].
    #[arg(long)]
    detector: Option<String>,
}

/// A report's label in the scorecard: its file name.
fn report_name(path: &std::path::Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

/// Reads a report `anomaly bench --out` wrote.
fn read_report(path: &std::path::Path) -> anyhow::Result<BenchReport> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text)
        .with_context(|| format!("{} is not an anomaly bench report", path.display()))
}

/// Writes `report`'s figures as `PREFIX-f1.svg` and `PREFIX-accuracy.svg` (F1 of `detector`,
/// [`BenchReport::figures`]); the paths written.
fn write_figures(
    report: &BenchReport,
    prefix: &std::path::Path,
    detector: Option<&str>,
) -> anyhow::Result<Vec<PathBuf>> {
    bcfl_cli::figures::write_svgs(prefix, report.figures(detector)?)
}

/// Runs a `bcfl anomaly` subcommand.
pub(crate) async fn run(ctx: &Context, command: AnomalyCommand) -> anyhow::Result<()> {
    match command {
        AnomalyCommand::Bench(args) => {
            let detectors = args
                .detectors
                .iter()
                .map(|n| Detector::parse(n).with_context(|| format!("unknown detector {n:?}")))
                .collect::<anyhow::Result<Vec<_>>>()?;
            if args.fractions.iter().any(|f| !(0.0..1.0).contains(f)) {
                bail!("--fractions must lie in [0, 1)");
            }
            let config = BenchConfig {
                members: args.members.clone(),
                fractions: args.fractions.clone(),
                attacks: attacks(&args.attacks)?,
                seeds: args.common.seed_list(),
                rounds: args.common.rounds,
                local: args.common.local()?,
                partition: match args.dirichlet {
                    Some(alpha) => Partition::Dirichlet { alpha },
                    None => Partition::Iid,
                },
                sketch_length: args.common.sketch_length,
                coordinate_samples: args.common.coordinate_samples(),
                sketch_after_commit: args.common.sketch_after_commit,
                test_fraction: args.common.test_fraction,
                tuning: args.common.tuning()?,
                detectors,
                detection_only: args.detection_only,
                exclusion_trimmed: args.exclusion_trimmed,
                collusion_noise: args.collusion_noise,
                blind_projection: args.blind_projection,
            };
            let (dataset, embeddings) = args.common.load()?;
            let cells = config.members.len() * config.fractions.len() * config.attacks.len();
            let started = std::time::Instant::now();
            let mut done = 0;
            // A line per finished cell on stderr, whatever the output format: a grid runs for
            // minutes, and stdout carries only the report.
            let report = run_bench(&dataset, &embeddings, &config, |cell| {
                done += 1;
                let f1: Vec<String> = cell
                    .detection
                    .iter()
                    .map(|d| format!("{} {:.3}", d.detector, d.f1))
                    .collect();
                eprintln!(
                    "cell {done}/{cells}: {} members, {} attacking with {}: F1 {} ({:.0} s)",
                    cell.members,
                    cell.attackers,
                    cell.attack,
                    f1.join(", "),
                    started.elapsed().as_secs_f64()
                );
            })
            .await?;
            if let Some(path) = &args.out {
                std::fs::write(path, serde_json::to_string_pretty(&report)? + "\n")
                    .with_context(|| format!("writing {}", path.display()))?;
            }
            if let Some(prefix) = &args.figures {
                write_figures(&report, prefix, None)?;
            }
            if ctx.json() {
                ctx.print_json(&serde_json::to_value(&report)?);
            } else {
                print!("{}", report.markdown());
                let name = args
                    .out
                    .as_deref()
                    .map_or_else(|| "this run".to_owned(), report_name);
                let score = scorecard::score(&name, &report, None, &Goal::ISSUE)?;
                println!("\nAgainst the goal (`anomaly scorecard`):\n");
                print!("{}", scorecard::markdown(&[score]));
                println!("\n({:.1} s)", report.seconds);
            }
        }
        AnomalyCommand::Plot(args) => {
            let report = read_report(&args.report)?;
            let written = write_figures(&report, &args.figures, args.detector.as_deref())?;
            if ctx.json() {
                ctx.print_json(&serde_json::json!({ "figures": written }));
            } else {
                for path in &written {
                    println!("{}", path.display());
                }
            }
        }
        AnomalyCommand::Scorecard(args) => {
            let mut scores = Vec::new();
            for path in &args.reports {
                let report = read_report(path)?;
                let name = report_name(path);
                scores.push(
                    scorecard::score(&name, &report, args.detector.as_deref(), &Goal::ISSUE)
                        .with_context(|| format!("scoring {}", path.display()))?,
                );
            }
            if ctx.json() {
                ctx.print_json(&serde_json::json!({ "goal": Goal::ISSUE, "reports": scores }));
            } else {
                print!("{}", scorecard::markdown(&scores));
            }
        }
        AnomalyCommand::PaperTable(args) => {
            let config = PaperConfig {
                members: args.members,
                attackers: args.attackers,
                attacks: attacks(&args.attacks)?,
                seeds: args.common.seed_list(),
                rounds: args.common.rounds,
                local: args.common.local()?,
                alpha: args.alpha,
                sketch_length: args.common.sketch_length,
                coordinate_samples: args.common.coordinate_samples(),
                test_fraction: args.common.test_fraction,
                tuning: args.common.tuning()?,
                size_bytes: args.size,
                delay_s: args.delay,
            };
            let (dataset, embeddings) = args.common.load()?;
            let started = std::time::Instant::now();
            // As the bench: a line per finished run on stderr, stdout carries only the table.
            let table = paper_table(
                &dataset,
                &embeddings,
                &config,
                |seed, partition, done, total| {
                    eprintln!(
                    "run {done}/{total}: seed {seed}, {partition} shards, every method ({:.0} s)",
                    started.elapsed().as_secs_f64()
                );
                },
            )
            .await?;
            if ctx.json() {
                ctx.print_json(&serde_json::to_value(&table)?);
            } else {
                print!("{}", table.markdown());
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Wrapper {
        #[command(flatten)]
        common: CommonArgs,
    }

    fn tuning(extra: &[&str]) -> anyhow::Result<Tuning> {
        let args = ["x", "--model-dir", "m", "--data-dir", "d"];
        Wrapper::parse_from(args.iter().chain(extra))
            .common
            .tuning()
    }

    /// `--ascent-response` adds the ascent method, the preset's too, within the processor's
    /// bounds and with coordinates.
    #[test]
    fn the_ascent_response_adds_the_method() {
        let added = tuning(&["--anomaly-preset", "every-attack", "--ascent-response", "0"]);
        assert_eq!(
            added.unwrap(),
            Tuning {
                ascent_response: Some(0.0),
                ..Tuning::every_attack()
            }
        );
        assert_eq!(tuning(&[]).unwrap().ascent_response, None);
        let left_out = tuning(&[
            "--anomaly-preset",
            "every-attack-convex",
            "--ascent-leave-one-out",
        ])
        .unwrap();
        assert!(left_out.ascent_leave_one_out && left_out.ascent_response == Some(0.05));
        let err = tuning(&["--anomaly-preset", "every-attack", "--ascent-leave-one-out"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("needs --ascent-response"), "{err}");
        let err = tuning(&["--ascent-response", "0"]).unwrap_err().to_string();
        assert!(err.contains("needs --coordinate-samples"), "{err}");
        for bad in ["--ascent-response=-0.1", "--ascent-response=0.6"] {
            let err = tuning(&["--anomaly-preset", "every-attack", bad])
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("--ascent-response must lie in [0, 0.5]"),
                "{err}"
            );
        }
    }

    /// `every-attack-convex` is the processor's configuration of that preset.
    #[test]
    fn the_convex_preset_tuning_is_its_configuration() {
        let convex = tuning(&["--anomaly-preset", "every-attack-convex"]).unwrap();
        assert_eq!(
            Detector::Both.config(&convex),
            AnomalyPreset::EveryAttackConvex.config()
        );
        let spelled = tuning(&[
            "--anomaly-preset",
            "every-attack",
            "--inconsistent-cosine",
            "0.25",
            "--ascent-response",
            "0.05",
            "--withdraw",
        ]);
        assert_eq!(spelled.unwrap(), convex);
    }

    /// `--skewed-shards` is `consortium init --skewed-shards`: the preset voting over the norm
    /// and the balance; it needs a preset.
    #[test]
    fn the_skewed_shards_tuning_is_its_configuration() {
        let skewed =
            tuning(&["--anomaly-preset", "every-attack-convex", "--skewed-shards"]).unwrap();
        let expected = anomaly_preset::Additions {
            skewed_shards: true,
            ..AnomalyPreset::EveryAttackConvex.additions()
        }
        .apply(bcfl_processor::anomaly::every_attack_config())
        .unwrap();
        assert_eq!(Detector::Both.config(&skewed), expected);
        let alone = [
            "x",
            "--model-dir",
            "m",
            "--data-dir",
            "d",
            "--skewed-shards",
        ];
        assert!(Wrapper::try_parse_from(alone).is_err());
        let listed = ["--features", "update_norm", "--skewed-shards"];
        assert!(Wrapper::try_parse_from(alone[..5].iter().chain(&listed)).is_err());
    }

    /// The grids' best configuration with Dirichlet 0.1 shards is the one `consortium init`
    /// and `demo` set up with the same flags: the bench measures what a consortium deploys.
    #[test]
    fn the_best_tuning_is_what_consortium_init_sets_up() {
        let best = tuning(&[
            "--anomaly-preset",
            "every-attack-convex",
            "--skewed-shards",
            "--mean-copy-cosine",
            "0.95",
            "--dbscan-without-excluded",
        ])
        .unwrap();
        let expected = anomaly_preset::Additions {
            mean_copy_cosine_ppm: Some(950_000),
            skewed_shards: true,
            dbscan_without_excluded: true,
            ..AnomalyPreset::EveryAttackConvex.additions()
        }
        .apply(bcfl_processor::anomaly::every_attack_config())
        .unwrap();
        assert_eq!(Detector::Both.config(&best), expected);
    }

    /// `--withdraw` sets the switch, and only beside a method that compares with the previous
    /// commitment.
    #[test]
    fn the_withdraw_flag_needs_a_pair_method() {
        let both = [
            "--anomaly-preset",
            "every-attack",
            "--ascent-response",
            "0.05",
            "--withdraw",
        ];
        assert_eq!(
            tuning(&both).unwrap(),
            Tuning {
                ascent_response: Some(0.05),
                withdraw: true,
                ..Tuning::every_attack()
            }
        );
        let err = tuning(&["--anomaly-preset", "every-attack", "--withdraw"])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("--withdraw needs --inconsistent-cosine or --ascent-response"),
            "{err}"
        );
    }

    /// The preset's tuning is the processor's configuration, the opposed-change method
    /// included; `--opposed-distance` sets its limit there, adds the method elsewhere, and
    /// must lie within the processor's bounds.
    #[test]
    fn the_opposed_distance_sets_or_adds_the_method() {
        let preset = tuning(&["--anomaly-preset", "every-attack"]).unwrap();
        assert_eq!(preset, Tuning::every_attack());
        assert_eq!(preset.opposed_distance, Some(1.7));
        let moved = tuning(&[
            "--anomaly-preset",
            "every-attack",
            "--opposed-distance",
            "1.9",
        ]);
        assert_eq!(
            moved.unwrap(),
            Tuning {
                opposed_distance: Some(1.9),
                ..Tuning::every_attack()
            }
        );
        let added = tuning(&["--opposed-distance", "1.8"]).unwrap();
        assert_eq!(
            added,
            Tuning {
                opposed_distance: Some(1.8),
                ..Tuning::default()
            }
        );
        assert_eq!(tuning(&[]).unwrap().opposed_distance, None);
        for bad in ["0.9", "2.5"] {
            let err = tuning(&["--opposed-distance", bad])
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("--opposed-distance must lie in [1, 2]"),
                "{err}"
            );
        }
    }

    /// `--oversized-residual` sets the preset's limit (ln 4), adds the method elsewhere, and
    /// must lie within the processor's bounds.
    #[test]
    fn the_oversized_residual_sets_or_adds_the_method() {
        assert_eq!(Tuning::every_attack().oversized_residual, Some(1.386294));
        let moved = tuning(&[
            "--anomaly-preset",
            "every-attack",
            "--oversized-residual",
            "2",
        ]);
        assert_eq!(
            moved.unwrap(),
            Tuning {
                oversized_residual: Some(2.0),
                ..Tuning::every_attack()
            }
        );
        let added = tuning(&["--oversized-residual", "1.5"]).unwrap();
        assert_eq!(
            added,
            Tuning {
                oversized_residual: Some(1.5),
                ..Tuning::default()
            }
        );
        assert_eq!(tuning(&[]).unwrap().oversized_residual, None);
        // The mean-copy method is added to the preset or alone, within its bounds.
        let copy = tuning(&[
            "--anomaly-preset",
            "every-attack",
            "--mean-copy-cosine",
            "0.95",
        ]);
        assert_eq!(
            copy.unwrap(),
            Tuning {
                mean_copy_cosine: Some(0.95),
                ..Tuning::every_attack()
            }
        );
        assert_eq!(Tuning::every_attack().mean_copy_cosine, None);
        let err = tuning(&["--mean-copy-cosine", "0.4"])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("--mean-copy-cosine must lie in [0.5, 1]"),
            "{err}"
        );
        for bad in ["0.5", "11"] {
            let err = tuning(&["--oversized-residual", bad])
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("--oversized-residual must lie in [0.693147, 10]"),
                "{err}"
            );
        }
    }

    /// `all` runs the published attacks, `adaptive` the one aimed at bcfl's statistics, and
    /// names run what they name (the sample-count liar only by its name).
    #[test]
    fn attack_groups_keep_the_adaptive_attack_apart() {
        let of = |names: &[&str]| attacks(&names.iter().map(|n| n.to_string()).collect::<Vec<_>>());
        let all = of(&["all"]).unwrap();
        assert_eq!(all.len(), AttackKind::ALL.len() - 2);
        assert!(!all.contains(&AttackKind::HiddenReversal));
        assert!(!all.contains(&AttackKind::InflatedSamples));
        assert_eq!(
            of(&["inflated-samples"]).unwrap(),
            vec![AttackKind::InflatedSamples]
        );
        assert_eq!(of(&["adaptive"]).unwrap(), vec![AttackKind::HiddenReversal]);
        assert_eq!(of(&["colluding"]).unwrap(), AttackKind::COLLUDING.to_vec());
        assert_eq!(
            of(&["hidden_reversal", "ipm"]).unwrap(),
            vec![AttackKind::HiddenReversal, AttackKind::InnerProduct]
        );
        assert!(of(&["boost"]).is_err());
    }
}
