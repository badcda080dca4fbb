//! `bcfl demo`: a federated fine-tuning run of N member processes coordinated through a
//! ledger (the embedded devnet of `scripts/demo.sh`, or any Sawtooth REST API).
//!
//! The demo plays the consortium's operator, then gets out of the way:
//!
//! 1. it writes an admin key and one key per member (`WORK/keys`), cuts the corpus into one
//!    private shard per member and a held-out test file (`WORK/shards`, `bcfl data split`),
//!    and writes the consortium's model package (`WORK/model`, `bcfl model init`);
//! 2. the admin initializes the consortium over the package's base and initial model (rule,
//!    anomaly methods, quorum) and registers each member with its blob server's endpoint;
//! 3. it starts one `bcfl node run` process per member (its own key, port, store, shard and
//!    report file; `WORK/nodes/member-K.toml`) and one coordinator process
//!    (`WORK/nodes/coordinator.toml`), and from then on only watches: every round is run by
//!    those processes through the ledger ([`crate::round`]);
//! 4. as each round closes it prints the round's table (from the ledger and the nodes' report
//!    files); when the last member holds the last global model it stops the processes and
//!    writes `WORK/report.json`, `WORK/report.md` and the figures (`accuracy.svg`,
//!    `phases.svg`, `bytes.svg`, `graph.svg`).
//!
//! Ctrl-C (or SIGTERM) stops every process it started. The first member also scores every
//! global model on the held-out file (the accuracy column).

pub mod attack;
pub mod processes;
pub mod tls;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use bcfl_protos::bcfl as pb;
use clap::{Args, ValueEnum};

use self::attack::AttackSpec;
use self::processes::{free_port, NodeProcess};
use crate::round::coordinator::{CoordinatorConfig, Synchrony, Topology};
use crate::round::ledger::Ledger;
use crate::round::model::ModelPackage;
use crate::round::node::{
    CoordinatorSection, MemberSection, NodeConfig, ProbeSection, TrainSection,
};
use crate::round::report::{NodeEvent, Report};
use crate::round::rest::RestLedger;
use crate::round::summary::{round_done, round_report, DemoReport, MemberInfo, RoundReport};
use crate::train::command::DataArgs;
use crate::train::data_command::{member_file, run_split, PartitionArg, SplitArgs};
use bcfl_fed::rule::Rule;
use bcfl_ledger::keys::{write_key_pair, PrivateKey, Signer};

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
    /// Consortium members (one process each).
    #[arg(long, default_value_t = 4)]
    pub members: usize,
    /// Rounds.
    #[arg(long, default_value_t = 3)]
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
    /// How training examples spread over members.
    #[arg(long, value_enum, default_value = "iid")]
    pub partition: PartitionArg,
    /// Dirichlet concentration (--partition dirichlet).
    #[arg(long, default_value_t = 0.5)]
    pub alpha: f64,
    /// Aggregation rule: fedavg, median, trimmed-mean or trimmed-mean:TRIM, krum or krum:F,
    /// multi-krum, multi-krum:F or multi-krum:F:K (K defaults to members - 1).
    #[arg(long, default_value = "fedavg")]
    pub rule: Rule,
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
    /// Topology: serverless (the centre of the measured graph aggregates) or server (the
    /// first member aggregates every round, star topology).
    #[arg(long, value_enum, default_value = "serverless")]
    pub topology: Topology,
    /// Synchronous (wait for every member) or buffered-async (aggregate the first --buffer).
    #[arg(long, value_enum, default_value = "synchronous")]
    pub synchrony: Synchrony,
    /// Buffered asynchronous: updates per aggregation.
    #[arg(long, default_value_t = 2)]
    pub buffer: u32,
    /// Buffered asynchronous: oldest update accepted, in rounds.
    #[arg(long, default_value_t = 2)]
    pub max_staleness: u32,
    /// Seconds the aggregator waits for every member before evaluating with the quorum.
    #[arg(long, default_value_t = 120.0)]
    pub commit_timeout: f64,
    /// Members slower than the others: NAME:FACTOR (e.g. member-4:3 trains, then waits 3x
    /// its training time). Repeatable.
    #[arg(long, value_name = "NAME:FACTOR")]
    pub slow: Vec<String>,
    /// Work directory: keys, shards, model package, node configs, stores, logs, report
    /// (default: a new temporary directory, kept).
    #[arg(long, env = "BCFL_WORK_DIR")]
    pub work_dir: Option<PathBuf>,
    /// Use a tiny random BERT instead of the pretrained model (fast; for tests).
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
    /// Members serve blobs over HTTPS, with a throwaway CA and certificates under WORK/tls
    /// (requests are signed with or without it).
    #[arg(long)]
    pub tls: bool,
    /// Only write the throwaway CA and certificates (ledger and members) under WORK/tls, print
    /// their folder and exit (scripts/demo.sh --tls does this before starting the ledger).
    #[arg(long, requires = "work_dir")]
    pub tls_prepare: bool,
}

impl DemoArgs {
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
            !matches!(self.rule, Rule::Krum { .. } | Rule::MultiKrum { .. }) || self.members >= 3,
            "Krum needs at least 3 members"
        );
        anyhow::ensure!(
            self.synchrony == Synchrony::Synchronous
                || (1..=self.members as u32).contains(&self.buffer),
            "--buffer must be between 1 and --members"
        );
        for slow in &self.slow {
            parse_slow(slow)?;
        }
        Ok(())
    }

    /// The consortium's parameters: a majority must commit (so one silent member does not
    /// stall a round), every member is waited for until the deadline.
    fn params(&self, package: &ModelPackage) -> anyhow::Result<pb::ConsortiumParams> {
        let n = self.members as u32;
        let mut params = pb::ConsortiumParams {
            min_participants: n / 2 + 1,
            commit_quorum: n / 2 + 1,
            model_id: package.description.clone(),
            base_model_sha256: package.base_sha256.clone(),
            sketch_length: bcfl_fed::sketch::DEFAULT_LENGTH as u32,
            ..Default::default()
        };
        params.initial_model_sha256 = package.initial_sha256.clone();
        let rule = match self.rule {
            Rule::MultiKrum { f, k: 0 } => Rule::MultiKrum {
                f,
                k: self.members - 1,
            },
            other => other,
        };
        rule.write_params(&mut params)?;
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

/// How long members may take to hold the last global model after the coordinator finished.
const MEMBER_GRACE: Duration = Duration::from_secs(60);

/// What [`run`] shows while it runs.
#[derive(Debug, Clone, Copy)]
pub enum Progress<'a> {
    /// The consortium and members are set up (the report has no rounds yet).
    SetUp(&'a DemoReport),
    /// A round completed.
    Round(&'a RoundReport),
}

/// A member being set up.
struct Planned {
    info: MemberInfo,
    config: PathBuf,
    report: PathBuf,
}

/// Runs the demo against the ledger at `url`; `progress` sees the set-up and each round as
/// they complete, and the whole report is returned (and written into the work folder).
pub async fn run(
    args: &DemoArgs,
    url: &str,
    mut progress: impl FnMut(Progress<'_>),
) -> anyhow::Result<DemoReport> {
    let started = Instant::now();
    args.validate()?;
    let work = match &args.work_dir {
        Some(dir) => dir.clone(),
        None => tempfile::Builder::new()
            .prefix("bcfl-demo-")
            .tempdir()?
            .keep(),
    };
    std::fs::create_dir_all(&work).with_context(|| format!("creating {}", work.display()))?;
    let work = std::fs::canonicalize(&work)?;
    let demo_tls = if args.tls {
        let tls = tls::DemoTls::prepare(&work.join("tls"), args.members)?;
        bcfl_tls::trust_ca_file(&tls.ca)?;
        Some(tls)
    } else {
        None
    };
    let ledger = Arc::new(RestLedger::new(
        &[url.to_owned()],
        Duration::from_secs(args.wait_timeout),
    )?);
    if ledger.state().await?.consortium.is_some() {
        bail!("the ledger at {url} already holds a consortium: the demo needs a fresh ledger (scripts/demo.sh starts one)");
    }

    // Keys, shards, the model package.
    let keys = work.join("keys");
    let admin_key = PrivateKey::random();
    write_key_pair(&keys, "admin", &admin_key, false).with_context(|| {
        format!(
            "writing the admin key in {} (use a fresh --work-dir)",
            keys.display()
        )
    })?;
    let admin = Signer::new(admin_key);
    let shards = work.join("shards");
    let manifest = run_split(&SplitArgs {
        data: args.data.clone(),
        members: args.members,
        partition: args.partition,
        alpha: args.alpha,
        share: 0.8,
        max_train: args.max_train_examples,
        max_test: args.max_test_examples,
        test_fraction: args.test_fraction,
        min_shard: 1,
        seed: args.seed,
        out: shards.clone(),
        force: false,
    })?;
    let package_dir = work.join("model");
    let package = {
        let (args, shards, package_dir, labels) = (
            args.clone(),
            shards.clone(),
            package_dir.clone(),
            manifest.plan.labels.clone(),
        );
        tokio::task::spawn_blocking(move || -> anyhow::Result<ModelPackage> {
            if args.tiny {
                let mut texts = Vec::new();
                for i in 1..=args.members {
                    let text = std::fs::read_to_string(shards.join(member_file(i)))?;
                    texts.push(text);
                }
                let words: Vec<&str> = texts.iter().map(String::as_str).collect();
                ModelPackage::create_tiny(&package_dir, &words, labels, args.max_len, args.seed)
            } else {
                let base = args.model_dir.as_deref().context(
                    "no model directory: pass --model-dir or set BCFL_MODEL_DIR (or use --tiny)",
                )?;
                ModelPackage::create(&package_dir, base, labels, args.max_len, args.seed)
            }
        })
        .await??
    };

    // The consortium and its members on chain, and each member's configuration.
    let params = args.params(&package)?;
    let mut init = pb::BcflPayload::new();
    init.set_init_consortium(pb::InitConsortium {
        admin_keys: vec![admin.public_key().as_hex().to_owned()].into(),
        params: Some(params.clone()).into(),
        ..Default::default()
    });
    ledger.submit(&admin, init, "InitConsortium").await?;
    let slow: Vec<(String, f64)> = args
        .slow
        .iter()
        .map(|s| parse_slow(s))
        .collect::<anyhow::Result<_>>()?;
    let attackers = args.attack.map_or(0, |a| a.count);
    let nodes = work.join("nodes");
    std::fs::create_dir_all(&nodes)?;
    let mut planned = Vec::with_capacity(args.members);
    for i in 1..=args.members {
        let name = format!("member-{i}");
        let key = PrivateKey::random();
        let key_path = write_key_pair(&keys, &name, &key, false)?.private;
        let signer = Signer::new(key);
        let port = free_port()?;
        let scheme = if demo_tls.is_some() { "https" } else { "http" };
        let endpoint = format!("{scheme}://127.0.0.1:{port}");
        let member_tls = demo_tls.as_ref().map(|t| t.member(i));
        let mut register = pb::BcflPayload::new();
        register.set_register_member(pb::RegisterMember {
            public_key: signer.public_key().as_hex().to_owned(),
            name: name.clone(),
            endpoint: endpoint.clone(),
            ..Default::default()
        });
        ledger
            .submit(&admin, register, &format!("RegisterMember {name}"))
            .await?;
        let attack = (i > args.members - attackers)
            .then(|| args.attack.map(|a| a.kind.to_string()))
            .flatten();
        let report = nodes.join(format!("{name}.jsonl"));
        let section = MemberSection {
            name: name.clone(),
            key: key_path,
            package: package_dir.clone(),
            data: shards.join(member_file(i)),
            test_data: (i == 1).then(|| shards.join(crate::train::command::TEST_FILE)),
            store: work.join("stores").join(&name),
            listen: format!("127.0.0.1:{port}").parse()?,
            tls_cert: member_tls.as_ref().map(|f| f.cert.clone()),
            tls_key: member_tls.as_ref().map(|f| f.key.clone()),
            report: Some(report.clone()),
            commit_timeout_seconds: args.commit_timeout,
            train: TrainSection {
                epochs: args.local_epochs,
                batch_size: args.batch_size,
                learning_rate: args.lr,
                seed: args.seed,
            },
            probe: ProbeSection {
                bytes: args.probe_bytes,
                ..ProbeSection::default()
            },
            attack: attack.clone(),
            slowdown: slow
                .iter()
                .find(|(n, _)| *n == name)
                .map_or(0.0, |(_, f)| *f),
        };
        let config = NodeConfig {
            ledger: vec![url.to_owned()],
            poll_seconds: 1.0,
            wait_seconds: args.wait_timeout as f64,
            member: Some(section),
            coordinator: None,
        };
        let path = nodes.join(format!("{name}.toml"));
        std::fs::write(&path, toml::to_string(&config)?)?;
        planned.push(Planned {
            info: MemberInfo {
                name,
                key: signer.public_key().as_hex().to_owned(),
                endpoint,
                shard: manifest.shard_sizes[i - 1],
                attack,
                peak_rss_bytes: 0,
            },
            config: path,
            report,
        });
    }
    let mut schedule = CoordinatorConfig::new(args.rounds);
    schedule.topology = args.topology;
    schedule.server = (args.topology == Topology::Server).then(|| planned[0].info.key.clone());
    schedule.synchrony = args.synchrony;
    schedule.buffer = args.buffer;
    schedule.max_staleness = args.max_staleness;
    schedule.commit_timeout = Duration::try_from_secs_f64(args.commit_timeout)?;
    schedule.aggregate_timeout = Duration::try_from_secs_f64(args.commit_timeout * 2.0)?;
    let coordinator_config = NodeConfig {
        ledger: vec![url.to_owned()],
        poll_seconds: 1.0,
        wait_seconds: args.wait_timeout as f64,
        member: None,
        coordinator: Some(CoordinatorSection {
            key: keys.join("admin.priv"),
            schedule,
        }),
    };
    let coordinator_path = nodes.join("coordinator.toml");
    std::fs::write(&coordinator_path, toml::to_string(&coordinator_config)?)?;

    let mut report = DemoReport {
        ledger: url.to_owned(),
        work_dir: work.display().to_string(),
        model: package.description.clone(),
        base_model_sha256: package.base_sha256.clone(),
        initial_sha256: package.initial_sha256.clone(),
        rule: Rule::from_params(&params)?.to_string(),
        anomaly: args
            .anomaly
            .iter()
            .filter_map(|m| m.to_possible_value().map(|v| v.get_name().to_owned()))
            .collect(),
        mode: format!(
            "{}, {}",
            args.topology
                .to_possible_value()
                .map_or_else(String::new, |v| v.get_name().to_owned()),
            args.synchrony
                .to_possible_value()
                .map_or_else(String::new, |v| v.get_name().to_owned())
        ),
        data: manifest.plan.clone(),
        members: planned.iter().map(|p| p.info.clone()).collect(),
        initial_accuracy: None,
        rounds: Vec::new(),
        rounds_total_s: 0.0,
        train_total_s: 0.0,
        overhead_fraction: 0.0,
        seconds: 0.0,
        rounds_seconds: 0.0,
        files: Vec::new(),
    };
    progress(Progress::SetUp(&report));

    // The processes.
    // This executable (`bcfl-train`) runs `node run`.
    let exe = std::env::current_exe().context("locating this executable")?;
    let logs = work.join("logs");
    std::fs::create_dir_all(&logs)?;
    // Members share the cores: one libtorch thread each unless there are cores to spare.
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = (cores / args.members).max(1).to_string();
    let mut processes = Vec::with_capacity(args.members + 1);
    // Every node trusts the demo's CA (its members' blob servers, and an https:// ledger).
    let ca_env: Vec<(&str, String)> = demo_tls
        .iter()
        .map(|t| (bcfl_tls::CA_CERT_ENV, t.ca.display().to_string()))
        .collect();
    for p in &planned {
        processes.push(NodeProcess::spawn(
            &p.info.name,
            &exe,
            &[
                "-v".into(),
                "node".into(),
                "run".into(),
                "--config".into(),
                p.config.display().to_string(),
                "--until-round".into(),
                args.rounds.to_string(),
            ],
            &ca_env
                .iter()
                .cloned()
                .chain([("OMP_NUM_THREADS", threads.clone())])
                .collect::<Vec<_>>(),
            &logs.join(format!("{}.log", p.info.name)),
        )?);
    }
    processes.push(NodeProcess::spawn(
        "coordinator",
        &exe,
        &[
            "-v".into(),
            "node".into(),
            "run".into(),
            "--config".into(),
            coordinator_path.display().to_string(),
        ],
        &ca_env,
        &logs.join("coordinator.log"),
    )?);

    // Watch the rounds close.
    let rounds_started = Instant::now();
    let mut next = 1;
    // Once the coordinator is done, members get this long to hold the last global model.
    let mut grace: Option<Instant> = None;
    let state = loop {
        let state = ledger.state().await?;
        let events = read_events(&planned);
        if report.initial_accuracy.is_none() {
            report.initial_accuracy = events
                .iter()
                .find(|e| e.round == 0 && e.phase == "score")
                .and_then(|e| e.accuracy);
        }
        let late = grace.is_some_and(|g| g.elapsed() > MEMBER_GRACE);
        while next <= args.rounds
            && (round_done(&state, next, &events, Some(&report.members[0].key)) || late)
        {
            if let Some(r) = round_report(&state, next, &report.members, &events) {
                progress(Progress::Round(&r));
                report.rounds.push(r);
            }
            next += 1;
        }
        let mut all_exited = true;
        for p in processes.iter_mut() {
            match p.exited()? {
                Some(status) if !status.success() => bail!(
                    "{} stopped ({status}); the end of its log ({}):\n{}",
                    p.name,
                    p.log.display(),
                    p.log_tail(20)
                ),
                Some(_) if p.name == "coordinator" && grace.is_none() => {
                    grace = Some(Instant::now())
                }
                Some(_) => {}
                None => all_exited = false,
            }
        }
        if next > args.rounds && (all_exited || late) {
            if !all_exited {
                tracing::warn!(
                    "some members did not hold the last global model in time; stopping them"
                );
            }
            break state;
        }
        tokio::select! {
            () = ledger.changed(&state.head, Duration::from_secs(1)) => {}
            () = crate::round::node::shutdown() => bail!("interrupted: stopping the node processes"),
        }
    };
    report.rounds_seconds = rounds_started.elapsed().as_secs_f64();
    drop(processes);
    let events = read_events(&planned);
    for member in &mut report.members {
        member.peak_rss_bytes = events
            .iter()
            .filter(|e| e.key == member.key)
            .map(|e| e.peak_rss_bytes)
            .max()
            .unwrap_or(0);
    }
    report.seconds = started.elapsed().as_secs_f64();
    report.write(&work, &state)?;
    Ok(report)
}

/// Every member's events so far.
fn read_events(planned: &[Planned]) -> Vec<NodeEvent> {
    planned
        .iter()
        .filter(|p| p.report.is_file())
        .flat_map(|p| Report::read(&p.report).unwrap_or_default())
        .collect()
}

/// `bcfl demo`: runs the demo against the ledger at `url` and prints the tables as it goes,
/// or with `json` one JSON document at the end.
pub async fn command(args: &DemoArgs, url: &str, json: bool) -> anyhow::Result<()> {
    if args.tls_prepare {
        let work = args
            .work_dir
            .as_deref()
            .context("--tls-prepare needs --work-dir")?;
        let tls = tls::DemoTls::prepare(&work.join("tls"), args.members)?;
        let out = serde_json::json!({ "ca": tls.ca, "ledger_cert": tls.ledger.cert, "ledger_key": tls.ledger.key });
        println!("{out}");
        return Ok(());
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slow_members_parse() {
        assert_eq!(parse_slow("member-4:3").unwrap(), ("member-4".into(), 3.0));
        assert!(parse_slow("member-4").is_err());
        assert!(parse_slow("member-4:-1").is_err());
        assert!(parse_slow("member-4:x").is_err());
    }
}
