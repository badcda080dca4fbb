//! `bcfl demo`: a complete federated fine-tuning run of N member processes through a ledger
//! ([`bcfl_client::demo`]), its tables printed as the rounds close.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use bcfl_cli::anomaly_preset::{self, AnomalyPreset, CoordinateScope};
use bcfl_client::demo::attack::{AttackKind, AttackSpec, CollusionNoise};
use bcfl_client::demo::{run, AnomalyMethod, BaseModel, DecoderBase, DemoConfig, Progress};
use bcfl_client::llm::GGUF_ENV;
use bcfl_client::round::coordinator::{Synchrony, Topology};
use bcfl_client::train::attack::head::ReferenceDirections;
use bcfl_fed::rule::Rule;
use clap::Args;

use crate::data::PartitionArg;
use crate::llm::finetune::{ModelChoice, RecipeArgs, RecipeInputs};
use crate::train::{DataArgs, LoraArgs};

/// `bcfl demo` options.
#[derive(Debug, Clone, Args)]
pub(crate) struct DemoArgs {
    /// Consortium members (one process each).
    #[arg(long, default_value_t = 4)]
    pub(crate) members: usize,
    /// Rounds.
    #[arg(long, default_value_t = 3)]
    pub(crate) rounds: u64,
    /// Local epochs per round.
    #[arg(long, default_value_t = 2)]
    pub(crate) local_epochs: usize,
    /// Training examples used in all, drawn at random from the training split (0: all).
    #[arg(long, default_value_t = 400)]
    pub(crate) max_train_examples: usize,
    /// Test examples used, drawn at random from the held-out split (0: all).
    #[arg(long, default_value_t = 200)]
    pub(crate) max_test_examples: usize,
    /// How training examples spread over members.
    #[arg(long, value_enum, default_value = "iid")]
    pub(crate) partition: PartitionArg,
    /// Dirichlet concentration (--partition dirichlet).
    #[arg(long, default_value_t = 0.5)]
    pub(crate) alpha: f64,
    /// Aggregation rule: fedavg, median, trimmed-mean or trimmed-mean:TRIM, krum or krum:F,
    /// multi-krum, multi-krum:F or multi-krum:F:K (K defaults to members - 1).
    #[arg(long, default_value = "fedavg")]
    pub(crate) rule: Rule,
    /// Misbehaving members: KIND:COUNT, KIND one of sign-flip, scale, noise, free-rider,
    /// stale-rider, disguised-scale, the colluding alie, ipm, min-max, min-sum (crafted
    /// together from the honest members' updates), or the adaptive hidden-reversal (honest
    /// statistics, the unseen rest reversed), or label-flip (training on labels shifted by one
    /// class); the last COUNT members attack.
    #[arg(long, value_name = "KIND:COUNT")]
    pub(crate) attack: Option<AttackSpec>,
    /// Colluding attackers (`--attack alie|ipm|min-max|min-sum:COUNT`) each move their copy of
    /// the crafted update by Gaussian noise of this norm relative to the crafted change, so
    /// that the copies differ (0: all send the same update).
    #[arg(long, value_name = "R", default_value = "0")]
    pub(crate) collusion_noise: CollusionNoise,
    /// Adaptive attackers (`--attack hidden-reversal:COUNT`) hide from another projection than
    /// the round's: an emulation of --sketch-after-commit without its extra phase.
    #[arg(long)]
    pub(crate) blind_projection: bool,
    /// Register the members without a sample cap: their commitments may then claim any
    /// sample count, which FedAvg weighs them by (by default each member's cap is its shard's
    /// size, and the processor refuses a claim above it).
    #[arg(long)]
    pub(crate) no_sample_caps: bool,
    /// Anomaly methods the processor runs at EvaluateRound.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "zscore,dbscan"
    )]
    pub(crate) anomaly: Vec<AnomalyMethod>,
    /// Members flagged by at least this many methods are excluded.
    #[arg(long, default_value_t = 1)]
    pub(crate) min_votes: u32,
    /// Modified z-score threshold. With a handful of members the median absolute deviation
    /// of honest norms can be tiny, so the default only flags gross magnitude changes.
    #[arg(long, default_value = "10")]
    pub(crate) zscore_threshold: String,
    /// DBSCAN radius over the standardized feature.
    #[arg(long, default_value = "1.5")]
    pub(crate) dbscan_eps: String,
    /// The named anomaly configuration of `consortium init --anomaly-preset` instead of
    /// --anomaly, --min-votes, --zscore-threshold and --dbscan-eps, with its sampled
    /// coordinates (256; `every-attack-lora` 4096) unless --coordinate-samples is given.
    #[arg(
        long,
        value_enum,
        conflicts_with_all = ["anomaly", "min_votes", "zscore_threshold", "dbscan_eps"]
    )]
    pub(crate) anomaly_preset: Option<AnomalyPreset>,
    /// Adds the mislabelled-change method to the preset or to --anomaly's methods (`consortium
    /// init --reference`): the demo builds the reference from its held-out examples (`bcfl
    /// model reference`; BERT only), and a member whose head changes, over its rounds, have a
    /// mean cosine with it below --mislabelled-margin is excluded on that alone. Only the
    /// sampled coordinates that fall in the head count: with LoRA adapters below it, about one
    /// in 40, so raise --coordinate-samples (docs/anomaly-detection.md, "Labels that lie").
    #[arg(long)]
    pub(crate) mislabelled: bool,
    /// The mislabelled-change method's limit, from -0.5 to 0.5 [default: -0.03].
    #[arg(
        long,
        value_name = "M",
        allow_hyphen_values = true,
        requires = "mislabelled"
    )]
    pub(crate) mislabelled_margin: Option<String>,
    /// What the reference's rows are taken from (`bcfl model reference --directions`): the
    /// held-out examples' class means, or a linear classifier trained on them.
    #[arg(
        long,
        value_enum,
        value_name = "KIND",
        default_value_t = ReferenceDirections::ClassMeans,
        requires = "mislabelled"
    )]
    pub(crate) mislabelled_reference: ReferenceDirections,
    /// The preset's DBSCAN and z-score read only the update norm and the sign balance
    /// (`consortium init --skewed-shards`): for members whose data differ widely, as with
    /// `--partition dirichlet --alpha 0.1`.
    // `requires` alone lets a flag the preset conflicts with through.
    #[arg(long, requires = "anomaly_preset", conflicts_with_all = ["anomaly"])]
    pub(crate) skewed_shards: bool,
    #[command(flatten)]
    pub(crate) additions: anomaly_preset::AdditionArgs,
    /// Topology: serverless (the centre of the measured graph aggregates) or server (the
    /// first member aggregates every round, star topology).
    #[arg(long, value_enum, default_value = "serverless")]
    pub(crate) topology: Topology,
    /// Synchronous (wait for every member) or buffered-async (aggregate the first --buffer).
    #[arg(long, value_enum, default_value = "synchronous")]
    pub(crate) synchrony: Synchrony,
    /// Buffered asynchronous: updates per aggregation.
    #[arg(long, default_value_t = 2)]
    pub(crate) buffer: u32,
    /// Buffered asynchronous: oldest update accepted, in rounds.
    #[arg(long, default_value_t = 2)]
    pub(crate) max_staleness: u32,
    /// Seconds the aggregator waits for every member before evaluating with the quorum.
    #[arg(long, default_value_t = 120.0)]
    pub(crate) commit_timeout: f64,
    /// Members drawn each round to recompute the aggregate and attest it on chain before the
    /// round closes (0: none).
    #[arg(long, default_value_t = 2)]
    pub(crate) committee: u32,
    /// The fraction of the members the ledger draws to train each round, at least the quorum
    /// (a majority) [default: every member; --preset flowertune: 0.1].
    #[arg(long, value_name = "F", value_parser = bcfl_cli::sampling::parse_sample_fraction)]
    pub(crate) sample_fraction: Option<u32>,
    /// Every commitment carries its update at N positions (the same every round), and the
    /// z-score also reads their sign balance against the median (`coordinate_sign_balance`: it
    /// exposes updates crafted as mean - gamma * std, such as `--attack min-max:2`) [default:
    /// none].
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub(crate) coordinate_samples: u32,
    /// Where the sampled coordinates are drawn: among every value of the update, or the
    /// classification head's alone (`consortium init --coordinate-scope`).
    #[arg(long, value_enum, value_name = "SCOPE", default_value_t = CoordinateScope::Every)]
    pub(crate) coordinate_scope: CoordinateScope,
    /// Sketches come after the commitments: a round's commitments carry none, its aggregator
    /// seals it once they are in (the seed drawn from them), and each member then reveals its
    /// sketch made with that seed, so that nobody fixing its update knows the projection that
    /// will see it (`sketch_after_commit`).
    #[arg(long)]
    pub(crate) sketch_after_commit: bool,
    /// Members serve blobs over HTTPS, with a throwaway CA and certificates under WORK/tls
    /// (requests are signed with or without it).
    #[arg(long)]
    pub(crate) tls: bool,
    /// Only write the throwaway CA and certificates (ledger and members) under WORK/tls, print
    /// their folder and exit (scripts/demo.sh --tls does this before starting the ledger).
    #[arg(long, requires = "work_dir")]
    pub(crate) tls_prepare: bool,
    /// Members slower than the others: NAME:FACTOR (e.g. member-4:3 trains, then waits 3x
    /// its training time). Repeatable.
    #[arg(long, value_name = "NAME:FACTOR")]
    pub(crate) slow: Vec<String>,
    /// REST APIs of the ledger's nodes for the member processes: member I starts with the
    /// I-th (round robin) and falls back on the others in turn (default: --url). Repeatable;
    /// every URL must serve the same ledger (validators of one network).
    #[arg(long = "ledger", value_name = "URL")]
    pub(crate) ledgers: Vec<String>,
    /// Set up only (keys, shards, model package, consortium, registrations, node
    /// configurations in WORK/nodes/), start no process, and print the commands that run the
    /// nodes, for nodes run elsewhere (e.g. one container each).
    #[arg(long, requires = "work_dir")]
    pub(crate) prepare_only: bool,
    /// Members' blob server host in their registered endpoints, {i} replaced by the member's
    /// number (e.g. member-{i}, a container's name); they then listen on 0.0.0.0:7100
    /// (default: 127.0.0.1 on free ports).
    #[arg(long, value_name = "TEMPLATE")]
    pub(crate) member_host: Option<String>,
    /// Start each member's process under this command prefix, {i} replaced by the member's
    /// number, split at whitespace (e.g. a script that runs it on member I's host or network
    /// namespace, or `taskset -c {i}`); the coordinator starts directly.
    #[arg(long, value_name = "TEMPLATE")]
    pub(crate) launcher: Option<String>,
    /// Work directory: keys, shards, model package, node configs, stores, logs, report
    /// (default: a new temporary directory, kept).
    #[arg(long, env = "BCFL_WORK_DIR")]
    pub(crate) work_dir: Option<PathBuf>,
    /// Use a tiny random BERT instead of the pretrained model (fast; for tests).
    #[arg(long)]
    pub(crate) tiny: bool,
    /// The model: BERT classifying medical abstracts, or the SmolLM2 decoder answering
    /// PubMedQA questions (pubmedqa/ in --data-dir; its recipe: --preset or the --lora-*
    /// flags, --lora-top-layers, --local-steps, --lr, --lr-min, --batch-size).
    #[arg(long, value_enum, default_value_t = ModelChoice::Bert)]
    pub(crate) model: ModelChoice,
    /// The decoder (--model smollm2): a GGUF file or a Hugging Face checkpoint directory
    /// (SmolLM2-135M-Instruct's GGUF file by default, through scripts/env.sh).
    #[arg(long, env = GGUF_ENV, value_name = "PATH")]
    pub(crate) gguf: Option<PathBuf>,
    #[command(flatten)]
    pub(crate) recipe: RecipeArgs,
    #[command(flatten)]
    pub(crate) lora: LoraArgs,
    /// Pretrained model directory.
    #[arg(long, env = "BCFL_MODEL_DIR")]
    pub(crate) model_dir: Option<PathBuf>,
    #[command(flatten)]
    pub(crate) data: DataArgs,
    /// Longest token sequence.
    #[arg(long, default_value_t = 64)]
    pub(crate) max_len: usize,
    /// Batch size.
    #[arg(long, default_value_t = 16)]
    pub(crate) batch_size: usize,
    /// Peak learning rate (higher than `bcfl train`'s: a round is only a few local steps).
    #[arg(long, default_value_t = 5e-3)]
    pub(crate) lr: f64,
    /// Seed of the split, shards, initial adapters, shuffling and noise.
    #[arg(long, default_value_t = 42)]
    pub(crate) seed: u64,
    /// Fraction of the data held out for testing.
    #[arg(long, default_value_t = 0.2)]
    pub(crate) test_fraction: f64,
    /// Bytes per bandwidth probe.
    #[arg(long, default_value_t = 1 << 20)]
    pub(crate) probe_bytes: u64,
    /// Seconds each transaction may take to commit.
    #[arg(long, default_value_t = 120)]
    pub(crate) wait_timeout: u64,
}

impl DemoArgs {
    /// The run these arguments describe, checked.
    fn config(&self) -> anyhow::Result<DemoConfig> {
        anyhow::ensure!(self.members >= 2, "--members must be at least 2");
        anyhow::ensure!(self.rounds >= 1, "--rounds must be at least 1");
        if let Some(template) = &self.member_host {
            anyhow::ensure!(
                template.contains("{i}"),
                "--member-host {template:?} must contain {{i}} (members listen on the same port, \
                 so each needs its own host, e.g. member-{{i}})"
            );
            anyhow::ensure!(
                !self.tls,
                "--tls issues certificates for 127.0.0.1 only: it cannot be combined with \
                 --member-host"
            );
        }
        if let Some(spec) = self.attack {
            anyhow::ensure!(
                spec.count < self.members,
                "--attack {}:{} leaves no honest member of {}",
                spec.kind,
                spec.count,
                self.members
            );
        }
        anyhow::ensure!(
            self.collusion_noise == CollusionNoise::NONE
                || self.attack.is_some_and(|a| a.kind.colludes()),
            "--collusion-noise moves colluders' copies: it needs a colluding --attack (alie, ipm, \
             min-max or min-sum)"
        );
        anyhow::ensure!(
            !self.blind_projection
                || self
                    .attack
                    .is_some_and(|a| AttackKind::ADAPTIVE.contains(&a.kind)),
            "--blind-projection changes what an adaptive attacker hides from: it needs --attack \
             hidden-reversal"
        );
        anyhow::ensure!(
            !matches!(self.rule, Rule::Krum { .. } | Rule::MultiKrum { .. }) || self.members >= 3,
            "Krum needs at least 3 members"
        );
        let preset = match self.model {
            ModelChoice::Smollm2 => self.recipe.sample_ppm(),
            _ => None,
        };
        let sample_ppm = self.sample_fraction.or(preset).unwrap_or(0);
        let trainers = match sample_ppm {
            0 => self.members,
            ppm => bcfl_processor::rules::rounds::sample_size(
                self.members,
                ppm,
                DemoConfig::quorum(self.members) as usize,
            ),
        };
        anyhow::ensure!(
            !self.anomaly.contains(&AnomalyMethod::Dbscan) || trainers >= 3,
            "DBSCAN needs at least 3 members training a round: two standardized members always \
             lie 2 apart, beyond the radius, so both would be excluded every round (pass \
             --anomaly zscore)"
        );
        anyhow::ensure!(
            self.synchrony == Synchrony::Synchronous
                || (1..=self.members as u32).contains(&self.buffer),
            "--buffer must be between 1 and --members"
        );
        let slow = self
            .slow
            .iter()
            .map(|s| parse_slow(s))
            .collect::<anyhow::Result<_>>()?;
        anyhow::ensure!(
            self.test_fraction > 0.0 && self.test_fraction < 1.0,
            "--test-fraction must be in (0, 1)"
        );
        let ppm = |flag: &str, text: &str| {
            bcfl_client::fixed::parse_ppm(text).with_context(|| format!("--{flag} {text:?}"))
        };
        let base = if self.model == ModelChoice::Smollm2 {
            anyhow::ensure!(
                !self.tiny,
                "--tiny is a BERT; it cannot be combined with --model smollm2"
            );
            anyhow::ensure!(
                !self.mislabelled,
                "--mislabelled compares changes of a classification head; the decoder answers \
                 in tokens and has none"
            );
            let gguf = crate::llm::gguf_path(self.gguf.as_deref())?.to_path_buf();
            let config = bcfl_client::llm::model_config(&gguf)
                .with_context(|| format!("reading {}", gguf.display()))?;
            let inputs = RecipeInputs {
                lora: &self.lora,
                rounds: self.rounds,
                lr: self.lr,
                batch_size: self.batch_size,
                weight_decay: 0.01,
                max_grad_norm: 1.0,
            };
            let data_dir = self
                .data
                .data_dir
                .as_deref()
                .context("no data directory: pass --data-dir or set BCFL_DATA_DIR")?;
            BaseModel::Decoder(DecoderBase {
                recipe: self.recipe.recipe(&inputs, &config),
                gguf,
                pubmedqa: data_dir.join(bcfl_client::llm::pubmedqa::DIR),
            })
        } else if self.tiny {
            BaseModel::Tiny
        } else {
            let dir = self.model_dir.clone().context(
                "no model directory: pass --model-dir or set BCFL_MODEL_DIR (or use --tiny)",
            )?;
            BaseModel::Pretrained(dir)
        };
        let additions = self.additions.additions(self.skewed_shards)?;
        let mut config = DemoConfig {
            members: self.members,
            rounds: self.rounds,
            local_epochs: self.local_epochs,
            max_train_examples: self.max_train_examples,
            max_test_examples: self.max_test_examples,
            partition: self.partition.partition(self.alpha, 0.8)?,
            rule: self.rule,
            attack: self.attack,
            collusion_noise: self.collusion_noise,
            blind_projection: self.blind_projection,
            sample_caps: !self.no_sample_caps,
            anomaly: self.anomaly.clone(),
            min_votes: self.min_votes,
            zscore_threshold_ppm: ppm("zscore-threshold", &self.zscore_threshold)?,
            dbscan_eps_ppm: ppm("dbscan-eps", &self.dbscan_eps)?,
            anomaly_config: self
                .anomaly_preset
                .map(|preset| additions.apply(preset.config()))
                .transpose()?,
            mislabelled_margin_ppm: self
                .mislabelled
                .then(|| anomaly_preset::mislabelled_margin_ppm(self.mislabelled_margin.as_deref()))
                .transpose()?,
            mislabelled_reference: self.mislabelled_reference,
            topology: self.topology,
            synchrony: self.synchrony,
            buffer: self.buffer,
            max_staleness: self.max_staleness,
            commit_timeout: self.commit_timeout,
            committee: self.committee,
            sample_ppm,
            coordinate_samples: anomaly_preset::coordinate_samples(
                self.anomaly_preset,
                self.coordinate_samples,
            ),
            coordinate_scope: self.coordinate_scope.param(),
            sketch_after_commit: self.sketch_after_commit,
            tls: self.tls,
            slow,
            work_dir: self.work_dir.clone(),
            ledgers: self.ledgers.clone(),
            prepare_only: self.prepare_only,
            member_host: self.member_host.clone(),
            launcher: self.launcher.clone(),
            base,
            data: self.data.source()?,
            max_len: self.max_len,
            batch_size: self.batch_size,
            lr: self.lr,
            seed: self.seed,
            test_fraction: self.test_fraction,
            probe_bytes: self.probe_bytes,
            wait_timeout: Duration::from_secs(self.wait_timeout),
        };
        // Without a preset, the opt-in methods join the listed ones.
        if config.anomaly_config.is_none() && additions != anomaly_preset::Additions::default() {
            config.anomaly_config = Some(additions.apply(config.anomaly_config())?);
        }
        Ok(config)
    }
}

/// `NAME:FACTOR` of `--slow`.
fn parse_slow(text: &str) -> anyhow::Result<(String, f64)> {
    let (name, factor) = text
        .split_once(':')
        .with_context(|| format!("--slow {text:?}: expected NAME:FACTOR"))?;
    let factor: f64 = factor
        .parse()
        .ok()
        .filter(|f: &f64| f.is_finite() && *f >= 0.0)
        .with_context(|| format!("--slow {text:?}: FACTOR must be a number >= 0"))?;
    Ok((name.to_owned(), factor))
}

/// `bcfl demo`: runs the demo against the ledger at `url` and prints the tables as it goes,
/// or with `json` one JSON document at the end.
pub(crate) async fn command(args: &DemoArgs, url: &str, json: bool) -> anyhow::Result<()> {
    if args.tls_prepare {
        let work = args
            .work_dir
            .as_deref()
            .context("--tls-prepare needs --work-dir")?;
        let tls = bcfl_client::demo::tls::DemoTls::prepare(&work.join("tls"), args.members)?;
        let out = serde_json::json!({ "ca": tls.ca, "ledger_cert": tls.ledger.cert, "ledger_key": tls.ledger.key });
        println!("{out}");
        return Ok(());
    }
    let config = args.config()?;
    let report = run(&config, url, |p| {
        if json {
            return;
        }
        match p {
            Progress::SetUp(r) => println!("{}", r.render_heading()),
            Progress::Round(r) => println!("{}", r.render()),
        }
    })
    .await?;
    if config.prepare_only {
        let nodes = Path::new(&report.work_dir).join("nodes");
        let mut configs: Vec<_> = report
            .members
            .iter()
            .map(|m| nodes.join(format!("{}.toml", m.name)))
            .collect();
        configs.push(nodes.join("coordinator.toml"));
        if json {
            println!(
                "{}",
                serde_json::json!({ "setup": report, "node_configs": configs })
            );
        } else {
            println!("prepared; run each node (members first) with:");
            for config in &configs {
                println!("  bcfl node run --config {}", config.display());
            }
        }
        return Ok(());
    }
    if json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!("{}", report.render_summary());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        demo: DemoArgs,
    }

    fn config(args: &[&str]) -> anyhow::Result<DemoConfig> {
        use clap::Parser as _;
        Cli::try_parse_from(["x", "--tiny"].iter().chain(args))?
            .demo
            .config()
    }

    #[test]
    fn two_members_cannot_run_dbscan() {
        let err = config(&["--members", "2"]).unwrap_err().to_string();
        assert!(err.contains("DBSCAN needs at least 3 members"), "{err}");
        assert!(config(&["--members", "2", "--anomaly", "zscore"]).is_ok());
        assert!(config(&["--members", "3"]).is_ok());
        // Sampled rounds train at least the quorum: 2 of 3, too few for DBSCAN; 3 of 5 will do.
        let err = config(&["--members", "3", "--sample-fraction", "0.1"]).unwrap_err();
        assert!(err.to_string().contains("DBSCAN needs at least 3 members"));
        let five = config(&["--members", "5", "--sample-fraction", "0.1"]).unwrap();
        assert_eq!(five.sample_ppm, 100_000);
        assert!(config(&["--members", "5", "--sample-fraction", "1.5"]).is_err());
        assert_eq!(config(&["--members", "3"]).unwrap().sample_ppm, 0);
    }

    /// `--skewed-shards` narrows the preset's voting features, and needs the preset.
    #[test]
    fn skewed_shards_narrow_the_presets_votes() {
        let skewed = config(&["--anomaly-preset", "every-attack", "--skewed-shards"]).unwrap();
        let anomaly = skewed.anomaly_config.expect("the preset's configuration");
        let features = bcfl_processor::anomaly::SKEWED_SHARDS_FEATURES.to_vec();
        assert_eq!(anomaly.get_zscore().features, features);
        assert_eq!(anomaly.get_dbscan().features, features);
        assert!(anomaly.has_duplicate() && anomaly.has_opposed());
        assert!(config(&["--skewed-shards"]).is_err());
        assert!(config(&["--anomaly", "zscore", "--skewed-shards"]).is_err());
    }

    #[test]
    fn collusion_noise_needs_colluders() {
        let noisy = config(&["--attack", "min-max:2", "--collusion-noise", "0.3"]).unwrap();
        assert_eq!(noisy.collusion_noise.value(), 0.3);
        let err = config(&["--attack", "sign-flip:1", "--collusion-noise", "0.3"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("needs a colluding --attack"), "{err}");
        let err = config(&["--attack", "min-max:2", "--collusion-noise=-1"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("at least 0"), "{err}");
    }

    #[test]
    fn blind_projection_needs_the_adaptive_attack() {
        let blind = config(&["--attack", "hidden-reversal:1", "--blind-projection"]).unwrap();
        assert!(blind.blind_projection);
        assert!(
            !config(&["--attack", "hidden-reversal:1"])
                .unwrap()
                .blind_projection
        );
        let err = config(&["--attack", "sign-flip:1", "--blind-projection"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("needs --attack hidden-reversal"), "{err}");
    }

    /// `--mislabelled` adds the method at -0.03 with the class means' reference unless told
    /// otherwise; its options need it.
    #[test]
    fn the_mislabelled_method_and_its_reference() {
        let preset = ["--anomaly-preset", "every-attack"];
        let on = config(&[&preset[..], &["--mislabelled"]].concat()).unwrap();
        assert_eq!(on.mislabelled_margin_ppm, Some(-30_000));
        assert_eq!(on.mislabelled_reference, ReferenceDirections::ClassMeans);
        let trained = config(
            &[
                &preset[..],
                &["--mislabelled", "--mislabelled-reference", "classifier"],
            ]
            .concat(),
        )
        .unwrap();
        assert_eq!(
            trained.mislabelled_reference,
            ReferenceDirections::Classifier
        );
        assert_eq!(config(&preset).unwrap().mislabelled_margin_ppm, None);
        for alone in [
            &["--mislabelled-reference", "class-means"][..],
            &["--mislabelled-margin", "0"][..],
        ] {
            let err = config(&[&preset[..], alone].concat())
                .unwrap_err()
                .to_string();
            assert!(err.contains("--mislabelled"), "{err}");
        }
    }

    #[test]
    fn slow_members_parse() {
        assert_eq!(parse_slow("member-4:3").unwrap(), ("member-4".into(), 3.0));
        assert!(parse_slow("member-4").is_err());
        assert!(parse_slow("member-4:-1").is_err());
        assert!(parse_slow("member-4:x").is_err());
    }
}
