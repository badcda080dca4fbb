//! `bcfl demo`: a complete federated fine-tuning run of N members coordinated through a real
//! ledger (the embedded devnet of `scripts/demo.sh`, or any Sawtooth REST API), in one process.
//!
//! Each member has its own signing key (written to `WORK_DIR/keys`, so `bcfl --key-dir
//! WORK_DIR/keys --key member-1 ...` can act as it afterwards), its own blob store directory
//! and its own blob server on a free loopback port. The admin (`WORK_DIR/keys/admin`) creates
//! the consortium over the base model with the anomaly configuration and registers the
//! members with their endpoints. Then each round:
//!
//! 1. the admin opens the round with an aggregator (round 1: the first member; later: the
//!    centre of the measured bandwidth graph among the members not excluded last round);
//! 2. every member fine-tunes the global model it verified on its own shard, writes its update
//!    blob to its store and commits the blob's SHA-256, size, sample count, loss, and the norm
//!    and sketch of its change from the parent model ([`attack`]ers replace that change first);
//! 3. every member probes the others' blob servers and reports the links on chain;
//! 4. the aggregator submits `EvaluateRound`: the processor computes the anomaly verdict;
//! 5. the aggregator fetches each accepted update along the shortest path over the on-chain
//!    bandwidth graph with the excluded members removed, every blob verified against its
//!    on-chain SHA-256 (a failed or corrupt fetch is reported and the round abandoned, never
//!    aggregated), aggregates them with the consortium's rule in key order, and commits the
//!    aggregate (the processor checks that exactly the verdict's accepted members contribute);
//! 6. the global model is distributed along the shortest-path tree from the aggregator (the
//!    excluded members last, as leaves), every member checks its copy against the on-chain
//!    aggregate before loading it, and the aggregator closes the round;
//! 7. the global model is scored on the held-out test set.
//!
//! [`report`] prints a table per round (member, samples, loss, norm, verdict, fetch path and
//! time, the distribution, the test accuracy) or, with `--json`, one JSON document.
//!
//! ```no_run
//! # async fn run() -> anyhow::Result<()> {
//! use bcfl_client::demo::{run, DemoArgs};
//! use clap::Parser;
//!
//! #[derive(Parser)]
//! struct Cli {
//!     #[command(flatten)]
//!     demo: DemoArgs,
//! }
//! let args = Cli::parse_from(["demo", "--tiny", "--members", "3"]).demo;
//! let report = run(&args, "http://127.0.0.1:8008", |_| {}).await?;
//! println!("{}", report.render_summary());
//! # Ok(()) }
//! ```

pub mod attack;
pub mod chain;
mod distribution;
pub mod engine;
pub mod member;
pub mod report;
mod round;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use bcfl_protos::bcfl as pb;
use clap::{Args, ValueEnum};

use self::attack::AttackSpec;
use self::chain::{engine_rule, Chain};
use self::engine::{split, Engine, SplitConfig};
use self::member::Member;
use self::report::{DemoReport, RoundReport};
use crate::ledger::keys::{write_key_pair, PrivateKey, Signer};
use crate::ledger::rest::RestClient;
use crate::net::manifest::BlobId;
use crate::train::command::DataArgs;
use crate::train::split::Partition;
use crate::train::trainer::{evaluate, TrainConfig};
use crate::train::update::{sha256_hex, Encoding, Update};

/// Aggregation rules of `--rule`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RuleArg {
    /// Mean weighted by sample count.
    Fedavg,
    /// Coordinate-wise median.
    Median,
    /// Coordinate-wise mean after trimming 10 % at each end.
    TrimmedMean,
    /// The single update with the smallest Krum score (f = 0).
    Krum,
    /// Mean of the members - 1 updates with the smallest Krum scores (f = 0).
    MultiKrum,
}

/// Anomaly methods of `--anomaly` (not PageRank: on loopback every link is alike, so the
/// bandwidth graph holds no evidence).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum MethodArg {
    /// Modified z-score of the update norm (catches magnitude attacks: scaling, free riding).
    Zscore,
    /// DBSCAN over the sketch's cosine distance to the median sketch (catches direction
    /// attacks: sign flips, noise, free riding).
    Dbscan,
}

/// `bcfl demo` options.
#[derive(Debug, Clone, Args)]
pub struct DemoArgs {
    /// Consortium members.
    #[arg(long, default_value_t = 4)]
    pub members: usize,
    /// Rounds.
    #[arg(long, default_value_t = 2)]
    pub rounds: u64,
    /// Local epochs per round.
    #[arg(long, default_value_t = 2)]
    pub local_epochs: usize,
    /// Training examples used in all, drawn at random from the training split (0: all).
    #[arg(long, default_value_t = 400)]
    pub max_train_examples: usize,
    /// Test examples used, drawn at random from the held-out split (0: all).
    #[arg(long, default_value_t = 200)]
    pub max_test_examples: usize,
    /// How training examples spread over members: iid, dirichlet, specialty.
    #[arg(long, default_value = "iid")]
    pub partition: String,
    /// Dirichlet concentration (--partition dirichlet).
    #[arg(long, default_value_t = 0.5)]
    pub alpha: f64,
    /// Aggregation rule (recorded in the consortium's parameters).
    #[arg(long, value_enum, default_value_t = RuleArg::Fedavg)]
    pub rule: RuleArg,
    /// Misbehaving members: KIND:COUNT, KIND one of sign-flip, scale, noise, free-rider; the
    /// last COUNT members attack.
    #[arg(long, value_name = "KIND:COUNT")]
    pub attack: Option<AttackSpec>,
    /// Anomaly methods the processor runs at EvaluateRound.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "zscore,dbscan"
    )]
    pub anomaly: Vec<MethodArg>,
    /// Members flagged by at least this many methods are excluded.
    #[arg(long, default_value_t = 1)]
    pub min_votes: u32,
    /// Modified z-score threshold. With a handful of members the median absolute deviation
    /// of honest norms can be tiny, so the default only flags gross magnitude changes.
    #[arg(long, default_value = "10")]
    pub zscore_threshold: String,
    /// DBSCAN radius over the standardized feature.
    #[arg(long, default_value = "1.5")]
    pub dbscan_eps: String,
    /// Work directory: keys, blob stores (default: a new temporary directory, kept).
    #[arg(long, env = "BCFL_WORK_DIR")]
    pub work_dir: Option<PathBuf>,
    /// Use the tiny random BERT of the tests instead of the pretrained model (fast; for tests).
    #[arg(long)]
    pub tiny: bool,
    /// Pretrained model directory.
    #[arg(long, env = "BCFL_MODEL_DIR")]
    pub model_dir: Option<PathBuf>,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub data: DataArgs,
    /// Longest token sequence.
    #[arg(long, default_value_t = 64)]
    pub max_len: usize,
    /// Batch size.
    #[arg(long, default_value_t = 16)]
    pub batch_size: usize,
    /// Peak learning rate (higher than `bcfl train`'s: a round is only a few local steps).
    #[arg(long, default_value_t = 5e-3)]
    pub lr: f64,
    /// Seed of the split, shards, initial adapters, shuffling and noise.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Fraction of the data held out for testing.
    #[arg(long, default_value_t = 0.2)]
    pub test_fraction: f64,
    /// Bytes per bandwidth probe.
    #[arg(long, default_value_t = 1 << 20)]
    pub probe_bytes: u64,
    /// Seconds each transaction may take to commit.
    #[arg(long, default_value_t = 120)]
    pub wait_timeout: u64,
}

impl DemoArgs {
    fn partition(&self) -> anyhow::Result<Partition> {
        Ok(match self.partition.as_str() {
            "iid" => Partition::Iid,
            "dirichlet" => Partition::Dirichlet { alpha: self.alpha },
            "specialty" => Partition::Specialty { share: 0.8 },
            other => bail!("unknown partition {other:?} (iid, dirichlet, specialty)"),
        })
    }

    fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(self.members >= 2, "--members must be at least 2");
        anyhow::ensure!(self.rounds >= 1, "--rounds must be at least 1");
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
            !(self.rule == RuleArg::Krum || self.rule == RuleArg::MultiKrum) || self.members >= 3,
            "Krum needs at least 3 members"
        );
        Ok(())
    }

    /// The consortium's parameters: every member must commit (quorum = members).
    fn params(&self, base_sha256: &str) -> anyhow::Result<pb::ConsortiumParams> {
        let n = self.members as u32;
        let mut params = pb::ConsortiumParams {
            min_participants: n,
            commit_quorum: n,
            model_id: if self.tiny {
                "bcfl/tiny-random-bert".into()
            } else {
                "sentence-transformers/all-MiniLM-L6-v2".into()
            },
            base_model_sha256: base_sha256.to_owned(),
            sketch_length: crate::train::sketch::DEFAULT_LENGTH as u32,
            ..Default::default()
        };
        params.aggregation_rule = match self.rule {
            RuleArg::Fedavg => pb::AggregationRule::FEDAVG,
            RuleArg::Median => pb::AggregationRule::MEDIAN,
            RuleArg::TrimmedMean => {
                params.trim_ppm = 100_000;
                pb::AggregationRule::TRIMMED_MEAN
            }
            RuleArg::Krum => pb::AggregationRule::KRUM,
            RuleArg::MultiKrum => {
                params.krum_select = n - 1;
                pb::AggregationRule::MULTI_KRUM
            }
        };
        if !self.anomaly.is_empty() {
            params.set_anomaly(self.anomaly_config()?);
        }
        Ok(params)
    }

    fn anomaly_config(&self) -> anyhow::Result<pb::AnomalyConfig> {
        let ppm = |flag: &str, text: &str| {
            crate::fixed::parse_ppm(text).with_context(|| format!("--{flag} {text:?}"))
        };
        let mut config = pb::AnomalyConfig {
            ensemble_min_votes: self.min_votes,
            ..Default::default()
        };
        if self.anomaly.contains(&MethodArg::Zscore) {
            config.set_zscore(pb::ZScoreConfig {
                threshold_ppm: ppm("zscore-threshold", &self.zscore_threshold)?,
                features: vec![pb::Feature::UPDATE_NORM],
                ..Default::default()
            });
        }
        if self.anomaly.contains(&MethodArg::Dbscan) {
            config.set_dbscan(pb::DbscanConfig {
                eps_ppm: ppm("dbscan-eps", &self.dbscan_eps)?,
                min_points: 2,
                features: vec![pb::Feature::SKETCH_COSINE_DISTANCE],
                ..Default::default()
            });
        }
        Ok(config)
    }

    fn local_config(&self) -> TrainConfig {
        TrainConfig {
            epochs: self.local_epochs,
            batch_size: self.batch_size,
            learning_rate: self.lr,
            seed: self.seed,
            ..TrainConfig::default()
        }
    }
}

fn limit(n: usize) -> Option<usize> {
    (n > 0).then_some(n)
}

/// A demo in progress: the ledger, the admin, the members, the model.
pub(crate) struct Demo {
    args: DemoArgs,
    chain: Chain,
    admin: Signer,
    members: Vec<Member>,
    engine: Arc<Mutex<Engine>>,
    test: Arc<crate::train::data::Dataset>,
    params: pb::ConsortiumParams,
    http: reqwest::Client,
}

/// What [`run`] shows while it runs.
#[derive(Debug, Clone, Copy)]
pub enum Progress<'a> {
    /// The consortium and members are set up (the report has no rounds yet).
    SetUp(&'a DemoReport),
    /// A round completed.
    Round(&'a RoundReport),
}

/// Runs the demo against the ledger at `url`; `progress` sees the set-up and each round as
/// they complete (to print them), and the whole report is returned.
pub async fn run(
    args: &DemoArgs,
    url: &str,
    mut progress: impl FnMut(Progress<'_>),
) -> anyhow::Result<DemoReport> {
    let started = Instant::now();
    args.validate()?;
    let work_dir = match &args.work_dir {
        Some(dir) => dir.clone(),
        None => tempfile::Builder::new()
            .prefix("bcfl-demo-")
            .tempdir()?
            .keep(),
    };
    std::fs::create_dir_all(&work_dir)
        .with_context(|| format!("creating {}", work_dir.display()))?;
    let chain = Chain::new(
        RestClient::new(url)?,
        Duration::from_secs(args.wait_timeout),
    );
    let (mut demo, mut report) = Demo::set_up(args, chain, &work_dir).await?;
    progress(Progress::SetUp(&report));
    for round in 1..=args.rounds {
        let result = demo
            .round(round)
            .await
            .with_context(|| format!("round {round}"))?;
        progress(Progress::Round(&result));
        report.rounds.push(result);
    }
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

/// `bcfl demo`: runs the demo against the ledger at `url` and prints the tables as it goes,
/// or with `json` one JSON document at the end.
pub async fn command(args: &DemoArgs, url: &str, json: bool) -> anyhow::Result<()> {
    let report = run(args, url, |p| {
        if json {
            return;
        }
        match p {
            Progress::SetUp(r) => println!("{}", r.render_heading()),
            Progress::Round(r) => println!("{}", r.render()),
        }
    })
    .await?;
    if json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!("{}", report.render_summary());
    }
    Ok(())
}

impl Demo {
    async fn set_up(
        args: &DemoArgs,
        chain: Chain,
        work_dir: &std::path::Path,
    ) -> anyhow::Result<(Self, DemoReport)> {
        let data = args.data.load(None)?;
        let split = split(
            &data,
            &SplitConfig {
                members: args.members,
                test_fraction: args.test_fraction,
                max_train: limit(args.max_train_examples),
                max_test: limit(args.max_test_examples),
                partition: args.partition()?,
                min_shard: 1,
                seed: args.seed,
            },
        )?;
        let labels = data.num_labels();
        let engine = if args.tiny {
            let texts: Vec<&str> = split
                .shards
                .iter()
                .flat_map(|s| s.examples.iter().map(|e| e.text.as_str()))
                .collect();
            Engine::tiny(
                &texts,
                labels,
                args.max_len,
                args.seed,
                &work_dir.join("base"),
            )?
        } else {
            let dir = args.model_dir.as_ref().context(
                "no model directory: pass --model-dir or set BCFL_MODEL_DIR (or use --tiny)",
            )?;
            Engine::pretrained(dir, labels, args.max_len, args.seed)?
        };
        let initial = Update::from_store(engine.model.trainable())?;
        let initial_bytes = initial.to_bytes(Encoding::F32);
        let initial_id = BlobId::parse(&sha256_hex(&initial_bytes))?;
        let initial_test = evaluate(&engine.model, &engine.encoder, &split.test, 64)?;

        let key_dir = work_dir.join("keys");
        let admin_key = PrivateKey::random();
        write_key_pair(&key_dir, "admin", &admin_key, false).with_context(|| {
            format!(
                "writing the admin key in {} (use a fresh --work-dir)",
                key_dir.display()
            )
        })?;
        let admin = Signer::new(admin_key);
        let attackers = args.attack.map_or(0, |a| a.count);
        let mut members = Vec::with_capacity(args.members);
        for (i, shard) in split.shards.into_iter().enumerate() {
            let name = format!("member-{}", i + 1);
            let attack = (i >= args.members - attackers)
                .then(|| args.attack.map(|a| a.kind))
                .flatten();
            let mut member = Member::start(
                &name,
                &key_dir,
                &work_dir.join("members").join(&name),
                shard,
                attack,
            )
            .await?;
            member.store().insert_bytes(&initial_bytes).await?;
            member.set_initial_global(initial_id.clone(), initial.clone());
            members.push(member);
        }

        let params = args.params(&engine.base_sha256)?;
        chain.init_consortium(&admin, params.clone()).await?;
        for m in &members {
            chain
                .register(&admin, m.key(), m.name(), &m.info().endpoint)
                .await?;
        }
        let report = DemoReport {
            ledger: chain.client().base_url().to_owned(),
            work_dir: work_dir.display().to_string(),
            model: engine.description.clone(),
            base_model_sha256: engine.base_sha256.clone(),
            initial_sha256: initial_id.to_string(),
            rule: format!("{:?}", engine_rule(&params)?),
            anomaly: args
                .anomaly
                .iter()
                .filter_map(|m| m.to_possible_value().map(|v| v.get_name().to_owned()))
                .collect(),
            data: split.plan,
            members: members.iter().map(|m| m.info().clone()).collect(),
            initial_test,
            rounds: Vec::new(),
            seconds: 0.0,
        };
        let demo = Self {
            args: args.clone(),
            chain,
            admin,
            members,
            engine: Arc::new(Mutex::new(engine)),
            test: Arc::new(split.test),
            params,
            http: crate::net::transfer::http_client(Duration::from_secs(3)),
        };
        Ok((demo, report))
    }
}
