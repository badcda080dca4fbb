//! What `bcfl demo` runs ([`run`], from a [`DemoConfig`]): a federated fine-tuning run of N
//! member processes coordinated through a ledger (the embedded devnet of `scripts/demo.sh`, or
//! any Sawtooth REST API). The command line that builds the configuration and prints the
//! tables is `bcfl-train`'s.
//!
//! The demo plays the consortium's operator, then gets out of the way:
//!
//! 1. it writes an admin key and one key per member (`WORK/keys`), cuts the corpus into one
//!    private shard per member and a held-out test file (`WORK/shards`, `bcfl data split`),
//!    and writes the consortium's model package (`WORK/model`, `bcfl model init`);
//! 2. the admin initializes the consortium over the package's base and initial model (rule,
//!    anomaly methods, quorum) and registers each member with its blob server's endpoint;
//! 3. it starts one `bcfl node run` process per member (its own key, port, store, shard and
//!    report file; `WORK/nodes/member-K.toml`; under [`DemoConfig::launcher`]'s prefix
//!    when one is given, e.g. in the member's own network namespace) and one coordinator process
//!    (`WORK/nodes/coordinator.toml`), and from then on only watches: every round is run by
//!    those processes through the ledger ([`crate::round`]);
//! 4. as each round closes it prints the round's table (from the ledger and the nodes' report
//!    files); when the last member holds the last global model it stops the processes and
//!    writes `WORK/report.json`, `WORK/report.md` and the figures (`accuracy.svg`,
//!    `phases.svg`, `bytes.svg`, `graph.svg`); a decoder's demo (`--model smollm2`) also
//!    writes the last global adapters into `WORK/adapter` (`bcfl llm eval --adapter`).
//!
//! Ctrl-C (or SIGTERM) stops every process it started. The first member also scores every
//! global model on the held-out file (the accuracy column).

pub mod attack;
mod error;
pub mod processes;
pub mod tls;

pub use error::{Error, Result};

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bcfl_protos::bcfl as pb;

use self::attack::{AttackSpec, CollusionNoise};
use self::processes::{reserve_port, NodeProcess};
use crate::llm::pubmedqa::{self, Answer, PubMedQa};
use crate::round::coordinator::{CoordinatorConfig, Synchrony, Topology};
use crate::round::ledger::Ledger;
use crate::round::model::{DecoderRecipe, ModelPackage};
use crate::round::node::{
    CoordinatorSection, MemberSection, NodeConfig, ProbeSection, TrainSection,
};
use crate::round::report::{NodeEvent, Report};
use crate::round::rest::RestLedger;
use crate::round::summary::{round_done, round_report, DemoReport, MemberInfo, RoundReport};
use crate::train::attack::head::ReferenceDirections;
use crate::train::saved::TEST_FILE;
use crate::train::shards::{member_file, write_shards, ShardRequest};
use crate::train::source::DataSource;
use crate::train::split::{DataPlan, Partition, SplitConfig};
use bcfl_fed::rule::Rule;
use bcfl_ledger::keys::{write_key_pair, PrivateKey, Signer};

/// Anomaly methods the demo's consortium runs (not PageRank: on loopback every link is alike,
/// so the bandwidth graph holds no evidence).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum AnomalyMethod {
    /// Modified z-score of the update norm (catches magnitude attacks: scaling, free riding).
    Zscore,
    /// DBSCAN over the sketch's cosine distance to the median sketch (catches direction
    /// attacks: sign flips, noise, free riding).
    Dbscan,
}

/// Where the consortium's base model comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum BaseModel {
    /// A tiny random BERT whose vocabulary is the shards' words (fast; for tests).
    Tiny,
    /// A pretrained BERT directory.
    Pretrained(PathBuf),
    /// A Llama-architecture decoder answering PubMedQA questions.
    Decoder(DecoderBase),
}

/// The decoder a demo fine-tunes, and its task's data.
#[derive(Debug, Clone, PartialEq)]
pub struct DecoderBase {
    /// The GGUF file.
    pub gguf: PathBuf,
    /// The consortium's recipe (adapters, local training, schedule).
    pub recipe: DecoderRecipe,
    /// The PubMedQA folder (`ori_pqal.json`, `test_ground_truth.json`).
    pub pubmedqa: PathBuf,
}

/// Each member's training file with its size, the held-out file, and what was used.
struct DemoData {
    members: Vec<(PathBuf, usize)>,
    test: PathBuf,
    plan: DataPlan,
}

/// The decoder's shards (PubMedQA's training split over the members, `max_test_examples` of
/// its test split held out) and package.
fn decoder_setup(
    args: &DemoConfig,
    decoder: &DecoderBase,
    shards: &std::path::Path,
    package_dir: &std::path::Path,
) -> Result<(DemoData, ModelPackage)> {
    let data = PubMedQa::load(&decoder.pubmedqa)?;
    let max = |n: usize| (n > 0).then_some(n);
    let manifest = pubmedqa::write_shards(
        &data,
        shards,
        args.members,
        args.partition,
        max(args.max_train_examples),
        max(args.max_test_examples),
        args.seed,
    )?;
    let train_used = manifest.members.iter().map(|f| f.questions).sum();
    let plan = DataPlan {
        labels: Answer::ALL.iter().map(|a| a.to_string()).collect(),
        examples: data.questions().len(),
        train_available: data.train().len(),
        train_used,
        test_available: data.test().len(),
        test_used: manifest.test.questions,
        subset: train_used < data.train().len() || manifest.test.questions < data.test().len(),
        leaked: 0,
    };
    let package = ModelPackage::create_decoder(
        package_dir,
        &decoder.gguf,
        decoder.recipe.clone(),
        args.seed,
    )?;
    Ok((
        DemoData {
            members: manifest
                .members
                .iter()
                .map(|f| (f.path.clone(), f.questions))
                .collect(),
            test: manifest.test.path,
            plan,
        },
        package,
    ))
}

/// A demo run: the consortium, its members and their training.
#[derive(Debug, Clone)]
pub struct DemoConfig {
    /// Consortium members (one process each), at least 2.
    pub members: usize,
    /// Rounds, at least 1.
    pub rounds: u64,
    /// Local epochs per round.
    pub local_epochs: usize,
    /// Training examples used in all, drawn at random from the training split (0: all).
    pub max_train_examples: usize,
    /// Test examples used, drawn at random from the held-out split (0: all).
    pub max_test_examples: usize,
    /// How training examples spread over members.
    pub partition: Partition,
    /// Aggregation rule (Multi-Krum's K 0: members - 1).
    pub rule: Rule,
    /// Misbehaving members: the last `count` attack (fewer than `members`).
    pub attack: Option<AttackSpec>,
    /// Colluding attackers: how far each moves its copy of the crafted update.
    pub collusion_noise: CollusionNoise,
    /// Adaptive attackers hide from another projection than the round's.
    pub blind_projection: bool,
    /// Register each member with its shard's size as its sample cap
    /// (`RegisterMember.max_samples`), so that the processor refuses a commitment claiming more
    /// (`false`: no caps, any claim up to the payload bound).
    pub sample_caps: bool,
    /// Anomaly methods the processor runs at EvaluateRound.
    pub anomaly: Vec<AnomalyMethod>,
    /// Members flagged by at least this many methods are excluded.
    pub min_votes: u32,
    /// Modified z-score threshold, ppm.
    pub zscore_threshold_ppm: u32,
    /// DBSCAN radius over the standardized feature, ppm.
    pub dbscan_eps_ppm: u32,
    /// The consortium's anomaly configuration as given (a named preset such as
    /// [`bcfl_processor::anomaly::every_attack_config`]), instead of the one `anomaly`,
    /// `min_votes`, `zscore_threshold_ppm` and `dbscan_eps_ppm` describe.
    pub anomaly_config: Option<pb::AnomalyConfig>,
    /// The mislabelled-change method at this limit (ppm; `None`: not run), added to the
    /// anomaly configuration with a reference the demo builds from its held-out examples
    /// ([`ModelPackage::head_reference`]; BERT only, and it needs sampled coordinates).
    pub mislabelled_margin_ppm: Option<i32>,
    /// What that reference's rows are taken from.
    pub mislabelled_reference: ReferenceDirections,
    /// Serverless or server topology (the first member aggregates every round).
    pub topology: Topology,
    /// Synchronous or buffered asynchronous.
    pub synchrony: Synchrony,
    /// Buffered asynchronous: updates per aggregation (1 to `members`).
    pub buffer: u32,
    /// Buffered asynchronous: oldest update accepted, in rounds.
    pub max_staleness: u32,
    /// Seconds the aggregator waits for every member before evaluating with the quorum.
    pub commit_timeout: f64,
    /// The verifier committee's size (`committee_size`; 0: none).
    pub committee: u32,
    /// The share of the members drawn to train each round, ppm (`sample_ppm`; 0: every one).
    pub sample_ppm: u32,
    /// Coordinates every commitment samples (`coordinate_samples`; 0: none); with them the
    /// z-score also reads `COORDINATE_SIGN_BALANCE`.
    pub coordinate_samples: u32,
    /// Where they are drawn (`coordinate_scope`: every value, or the classification head's).
    pub coordinate_scope: pb::CoordinateScope,
    /// Sketches come after the commitments (`sketch_after_commit`).
    pub sketch_after_commit: bool,
    /// Members serve blobs (and trust the ledger) over HTTPS with a throwaway CA and
    /// certificates under `WORK/tls` ([`tls::DemoTls`]); requests are signed either way.
    pub tls: bool,
    /// Members slower than the others: (name, factor of its training time it waits after).
    pub slow: Vec<(String, f64)>,
    /// Work directory (default: a new temporary directory, kept).
    pub work_dir: Option<PathBuf>,
    /// REST APIs of the ledger's nodes for the member processes, member I starting with the
    /// I-th, round robin (empty: the URL [`run`] is given).
    pub ledgers: Vec<String>,
    /// Set up only: keys, shards, the model package, the consortium, the registrations and the
    /// node configurations (`WORK/nodes/*.toml`), then return without starting any process, for
    /// nodes run elsewhere (`bcfl node run --config ...`, one container each).
    pub prepare_only: bool,
    /// Member I's blob server host in its registered endpoint, `{i}` replaced by I (e.g.
    /// `member-{i}`, a container's name); it then listens on every address, port
    /// [`MEMBER_PORT`]. `None`: 127.0.0.1 on a free port, bound by the demo and passed to
    /// the member's process ([`bcfl_net::activation`]).
    pub member_host: Option<String>,
    /// A command prefix each member's process starts under, `{i}` replaced by the member's
    /// number and split at whitespace (e.g. `ip netns exec host{i}`, `taskset -c {i}`, a
    /// script that places the process on member I's host); `None`: started directly. The
    /// coordinator always starts directly.
    pub launcher: Option<String>,
    /// The base model.
    pub base: BaseModel,
    /// The corpus.
    pub data: DataSource,
    /// Longest token sequence.
    pub max_len: usize,
    /// Batch size.
    pub batch_size: usize,
    /// Peak learning rate.
    pub lr: f64,
    /// Seed of the split, shards, initial adapters, shuffling and noise.
    pub seed: u64,
    /// Fraction of the data held out for testing.
    pub test_fraction: f64,
    /// Bytes per bandwidth probe.
    pub probe_bytes: u64,
    /// How long each transaction may take to commit.
    pub wait_timeout: Duration,
}

impl DemoConfig {
    /// The consortium's parameters: a majority must commit (so one silent member does not
    /// stall a round), every member is waited for until the deadline.
    /// A majority of `members`: the demo's commit quorum and fewest active members.
    pub fn quorum(members: usize) -> u32 {
        members as u32 / 2 + 1
    }

    fn params(&self, package: &ModelPackage) -> Result<pb::ConsortiumParams> {
        let quorum = Self::quorum(self.members);
        let mut params = pb::ConsortiumParams {
            min_participants: quorum,
            commit_quorum: quorum,
            sample_ppm: self.sample_ppm,
            model_id: package.description.clone(),
            base_model_sha256: package.base_sha256.clone(),
            sketch_length: bcfl_fed::sketch::DEFAULT_LENGTH as u32,
            committee_size: self.committee,
            coordinate_samples: self.coordinate_samples,
            coordinate_scope: self.coordinate_scope,
            sketch_after_commit: self.sketch_after_commit,
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
        match &self.anomaly_config {
            Some(config) => params.set_anomaly(config.clone()),
            None if !self.anomaly.is_empty() => params.set_anomaly(self.anomaly_config()),
            None => {}
        }
        Ok(params)
    }

    /// The configuration `anomaly` lists (without a preset): the modified z-score over the
    /// update norm (and the coordinate sign balance with sampled coordinates), DBSCAN over the
    /// sketch cosine distance.
    pub fn anomaly_config(&self) -> pb::AnomalyConfig {
        let mut config = pb::AnomalyConfig {
            ensemble_min_votes: self.min_votes,
            ..Default::default()
        };
        if self.anomaly.contains(&AnomalyMethod::Zscore) {
            let mut features = vec![pb::Feature::UPDATE_NORM];
            if self.coordinate_samples > 0 {
                features.push(pb::Feature::COORDINATE_SIGN_BALANCE);
            }
            config.set_zscore(pb::ZScoreConfig {
                threshold_ppm: self.zscore_threshold_ppm,
                features,
                ..Default::default()
            });
        }
        if self.anomaly.contains(&AnomalyMethod::Dbscan) {
            config.set_dbscan(pb::DbscanConfig {
                eps_ppm: self.dbscan_eps_ppm,
                min_points: 2,
                features: vec![pb::Feature::SKETCH_COSINE_DISTANCE],
                ..Default::default()
            });
        }
        config
    }
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

/// The port members' blob servers listen on with [`DemoConfig::member_host`].
pub const MEMBER_PORT: u16 = 7100;

/// The mislabelled-change method's configuration at `min_margin_ppm`: the reference of
/// `package`'s head from the labelled examples in `root` (the demo's held-out file), its rows
/// taken as `kind` says, written to `out`, at the sampled coordinates of `shape`.
fn mislabelled_config(
    package: &ModelPackage,
    root: &Path,
    kind: ReferenceDirections,
    shape: bcfl_fed::sketch::StatsShape,
    min_margin_ppm: i32,
    out: &Path,
) -> Result<pb::MislabelledConfig> {
    let count = shape.coordinate_samples;
    if count == 0 {
        return Err(crate::round::Error::Config(
            "the mislabelled-change method needs sampled coordinates".into(),
        )
        .into());
    }
    let reference = package.head_reference(&package.load_examples(root)?, kind)?;
    std::fs::write(out, reference.to_bytes(bcfl_fed::update::Encoding::F32))
        .map_err(|e| Error::file("writing", out, e))?;
    let reference_steps =
        bcfl_fed::reference::reference_steps(&reference, count, shape.coordinate_scope)
            .map_err(crate::round::Error::from)?;
    tracing::info!(
        reference = %out.display(),
        compared = bcfl_fed::reference::covered(&reference_steps),
        coordinates = count,
        "the mislabelled-change method's reference, from the held-out examples"
    );
    Ok(pb::MislabelledConfig {
        reference_steps,
        min_margin_ppm,
        ..Default::default()
    })
}

/// `urls` rotated to start at the `first`-th (modulo their number): a node's REST APIs, its own
/// validator's first and the others as fallbacks.
fn ledgers_from(urls: &[String], first: usize) -> Vec<String> {
    let mut rotated = urls.to_vec();
    rotated.rotate_left(first % urls.len().max(1));
    rotated
}

/// The program and arguments that start `exe args` for member `i`: directly, or under
/// `launcher` (see [`DemoConfig::launcher`]).
fn launch(launcher: Option<&str>, i: usize, exe: &Path, args: &[String]) -> (PathBuf, Vec<String>) {
    let prefix: Vec<String> = launcher
        .map(|t| {
            t.replace("{i}", &i.to_string())
                .split_whitespace()
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    match prefix.split_first() {
        None => (exe.to_path_buf(), args.to_vec()),
        Some((program, rest)) => {
            let mut all = rest.to_vec();
            all.push(exe.display().to_string());
            all.extend_from_slice(args);
            (PathBuf::from(program), all)
        }
    }
}

/// Runs the demo against the ledger at `url`; `progress` sees the set-up and each round as
/// they complete, and the whole report is returned (and written into the work folder).
pub async fn run(
    args: &DemoConfig,
    url: &str,
    mut progress: impl FnMut(Progress<'_>),
) -> Result<DemoReport> {
    let started = Instant::now();
    let work = match &args.work_dir {
        Some(dir) => dir.clone(),
        None => tempfile::Builder::new()
            .prefix("bcfl-demo-")
            .tempdir()?
            .keep(),
    };
    std::fs::create_dir_all(&work).map_err(|e| Error::file("creating", &work, e))?;
    let work = std::fs::canonicalize(&work)?;
    let demo_tls = if args.tls {
        let tls = tls::DemoTls::prepare(&work.join("tls"), args.members)?;
        bcfl_tls::trust_ca_file(&tls.ca)?;
        Some(tls)
    } else {
        None
    };
    let ledger = Arc::new(RestLedger::new(&[url.to_owned()], args.wait_timeout)?);
    if ledger.state().await?.consortium.is_some() {
        return Err(Error::NotFresh(url.to_owned()));
    }

    // Keys, shards, the model package.
    let keys = work.join("keys");
    let admin_key = PrivateKey::random();
    write_key_pair(&keys, "admin", &admin_key, false).map_err(|source| Error::AdminKey {
        dir: keys.clone(),
        source,
    })?;
    let admin = Signer::new(admin_key);
    let shards = work.join("shards");
    let package_dir = work.join("model");
    let (data, package) = match &args.base {
        BaseModel::Decoder(decoder) => {
            let (args, decoder, shards, package_dir) = (
                args.clone(),
                decoder.clone(),
                shards.clone(),
                package_dir.clone(),
            );
            tokio::task::spawn_blocking(move || {
                decoder_setup(&args, &decoder, &shards, &package_dir)
            })
            .await??
        }
        _ => {
            let manifest = write_shards(&ShardRequest {
                data: args.data.clone(),
                config: SplitConfig {
                    members: args.members,
                    test_fraction: args.test_fraction,
                    max_train: (args.max_train_examples > 0).then_some(args.max_train_examples),
                    max_test: (args.max_test_examples > 0).then_some(args.max_test_examples),
                    partition: args.partition,
                    min_shard: 1,
                    seed: args.seed,
                },
                out: shards.clone(),
                force: false,
            })?;
            let data = DemoData {
                members: (1..=args.members)
                    .map(|i| (shards.join(member_file(i)), manifest.shard_sizes[i - 1]))
                    .collect(),
                test: shards.join(TEST_FILE),
                plan: manifest.plan.clone(),
            };
            let (args, shards, package_dir, labels) = (
                args.clone(),
                shards.clone(),
                package_dir.clone(),
                manifest.plan.labels.clone(),
            );
            let package = tokio::task::spawn_blocking(move || -> Result<ModelPackage> {
                if let BaseModel::Pretrained(base) = &args.base {
                    Ok(ModelPackage::create(
                        &package_dir,
                        base,
                        labels,
                        args.max_len,
                        args.seed,
                    )?)
                } else {
                    let mut texts = Vec::new();
                    for i in 1..=args.members {
                        let path = shards.join(member_file(i));
                        let text = std::fs::read_to_string(&path)
                            .map_err(|e| Error::file("reading", &path, e))?;
                        texts.push(text);
                    }
                    let words: Vec<&str> = texts.iter().map(String::as_str).collect();
                    Ok(ModelPackage::create_tiny(
                        &package_dir,
                        &words,
                        labels,
                        args.max_len,
                        args.seed,
                    )?)
                }
            })
            .await??;
            (data, package)
        }
    };

    // The consortium and its members on chain, and each member's configuration.
    let mut params = args.params(&package)?;
    if let Some(min_margin_ppm) = args.mislabelled_margin_ppm {
        if !params.has_anomaly() {
            return Err(crate::round::Error::Config(
                "the mislabelled-change method joins an anomaly configuration: give anomaly \
                 methods or a preset"
                    .into(),
            )
            .into());
        }
        let reference = work.join("reference.safetensors");
        let mislabelled = tokio::task::spawn_blocking({
            let (package, test) = (package.clone(), data.test.clone());
            let (kind, shape) = (
                args.mislabelled_reference,
                bcfl_fed::sketch::StatsShape::of(&params),
            );
            move || mislabelled_config(&package, &test, kind, shape, min_margin_ppm, &reference)
        })
        .await??;
        params.mut_anomaly().set_mislabelled(mislabelled);
    }
    let mut init = pb::BcflPayload::new();
    init.set_init_consortium(pb::InitConsortium {
        admin_keys: vec![admin.public_key().as_hex().to_owned()].into(),
        params: Some(params.clone()).into(),
        ..Default::default()
    });
    ledger.submit(&admin, init, "InitConsortium").await?;
    let slow = &args.slow;
    let attackers = args.attack.map_or(0, |a| a.count);
    let nodes = work.join("nodes");
    std::fs::create_dir_all(&nodes)?;
    let mut planned = Vec::with_capacity(args.members);
    let node_ledgers = if args.ledgers.is_empty() {
        vec![url.to_owned()]
    } else {
        args.ledgers.clone()
    };
    let member_keys: Vec<PrivateKey> = (0..args.members).map(|_| PrivateKey::random()).collect();
    // Colluding attackers know each other's keys.
    let colluders: Vec<String> = match args.attack {
        Some(a) if a.kind.colludes() => member_keys[args.members - attackers..]
            .iter()
            .map(|k| Signer::new(k.clone()).public_key().as_hex().to_owned())
            .collect(),
        _ => Vec::new(),
    };
    // Each member's reserved blob server socket (on loopback), passed to its process.
    let mut listeners = Vec::with_capacity(args.members);
    for (i, key) in (1..=args.members).zip(member_keys) {
        let name = format!("member-{i}");
        let key_path = write_key_pair(&keys, &name, &key, false)?.private;
        let signer = Signer::new(key);
        let scheme = if demo_tls.is_some() { "https" } else { "http" };
        let (endpoint, listen) = match &args.member_host {
            Some(template) => (
                format!(
                    "{scheme}://{}:{MEMBER_PORT}",
                    template.replace("{i}", &i.to_string())
                ),
                std::net::SocketAddr::from(([0, 0, 0, 0], MEMBER_PORT)),
            ),
            None => {
                let listener = reserve_port()?;
                let addr = listener.local_addr()?;
                listeners.push(Some(listener));
                (format!("{scheme}://{addr}"), addr)
            }
        };
        let member_tls = demo_tls.as_ref().map(|t| t.member(i));
        let mut register = pb::BcflPayload::new();
        register.set_register_member(pb::RegisterMember {
            public_key: signer.public_key().as_hex().to_owned(),
            name: name.clone(),
            endpoint: endpoint.clone(),
            max_samples: if args.sample_caps {
                data.members[i - 1].1 as u64
            } else {
                0
            },
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
            data: data.members[i - 1].0.clone(),
            test_data: (i == 1).then(|| data.test.clone()),
            store: work.join("stores").join(&name),
            listen,
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
            colluders: if attack.is_some() {
                colluders.clone()
            } else {
                Vec::new()
            },
            collusion_noise: if attack.is_some() {
                args.collusion_noise
            } else {
                CollusionNoise::NONE
            },
            blind_projection: attack.is_some() && args.blind_projection,
            slowdown: slow
                .iter()
                .find(|(n, _)| *n == name)
                .map_or(0.0, |(_, f)| *f),
        };
        let config = NodeConfig {
            ledger: ledgers_from(&node_ledgers, i - 1),
            poll_seconds: 1.0,
            wait_seconds: args.wait_timeout.as_secs_f64(),
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
                shard: data.members[i - 1].1,
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
        ledger: ledgers_from(&node_ledgers, 0),
        poll_seconds: 1.0,
        wait_seconds: args.wait_timeout.as_secs_f64(),
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
        anomaly: bcfl_processor::anomaly::configured_method_names(params.get_anomaly())
            .into_iter()
            .map(String::from)
            .collect(),
        mode: format!("{}, {}", args.topology.as_str(), args.synchrony.as_str()),
        data: data.plan.clone(),
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
    if args.prepare_only {
        return Ok(report);
    }

    // The processes.
    // This executable (`bcfl-train`) runs `node run`.
    let exe = std::env::current_exe().map_err(Error::Executable)?;
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
    for (i, p) in (1..).zip(&planned) {
        // Closed here once the member's process holds it.
        let listener = listeners.get_mut(i - 1).and_then(Option::take);
        let node_args = [
            "-v".into(),
            "node".into(),
            "run".into(),
            "--config".into(),
            p.config.display().to_string(),
            "--until-round".into(),
            args.rounds.to_string(),
        ];
        let (program, program_args) = launch(args.launcher.as_deref(), i, &exe, &node_args);
        processes.push(NodeProcess::spawn(
            &p.info.name,
            &program,
            &program_args,
            &ca_env
                .iter()
                .cloned()
                .chain([("OMP_NUM_THREADS", threads.clone())])
                .collect::<Vec<_>>(),
            listener.as_ref(),
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
        None,
        &logs.join("coordinator.log"),
    )?);

    // Watch the rounds close.
    let rounds_started = Instant::now();
    let mut next = 1;
    // Once the coordinator is done, members get this long to hold the last global model.
    let mut grace: Option<Instant> = None;
    // Every member process follows every round, drawn to train it or not.
    let followers: Vec<String> = report.members.iter().map(|m| m.key.clone()).collect();
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
            && (round_done(
                &state,
                next,
                &events,
                &followers,
                Some(&report.members[0].key),
            ) || late)
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
                Some(status) if !status.success() => {
                    return Err(Error::NodeStopped {
                        name: p.name.clone(),
                        status,
                        log: p.log.clone(),
                        tail: p.log_tail(20),
                    })
                }
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
            () = crate::round::node::shutdown() => return Err(Error::Interrupted),
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
    if let Some(recipe) = &package.decoder {
        let global = report
            .rounds
            .iter()
            .rev()
            .find_map(|r| r.aggregate_sha256.clone());
        if let Some(sha) = global {
            let dir = work.join(ADAPTER_DIR);
            write_adapter(
                &work.join("stores").join(&planned[0].info.name),
                &sha,
                recipe,
                &package,
                &dir,
            )?;
            report.files.push(dir);
        }
    }
    report.write(&work, &state)?;
    Ok(report)
}

/// The folder a decoder demo writes its last global adapters into (`bcfl llm eval --adapter`).
pub const ADAPTER_DIR: &str = "adapter";

/// Writes the global adapters `sha` (a blob in the member's `store`, checked against `sha`)
/// into `dir` as an adapter folder.
fn write_adapter(
    store: &std::path::Path,
    sha: &str,
    recipe: &DecoderRecipe,
    package: &ModelPackage,
    dir: &std::path::Path,
) -> Result<()> {
    let path = store.join(sha);
    let bytes = std::fs::read(&path).map_err(|e| Error::file("reading", &path, e))?;
    if bcfl_fed::digest::sha256_hex(&bytes) != sha {
        return Err(Error::file(
            "checking",
            &path,
            std::io::Error::other("the blob is not the global model it is named after"),
        ));
    }
    let update = bcfl_fed::update::Update::from_bytes(&bytes).map_err(crate::round::Error::from)?;
    crate::llm::adapter::Adapter::write(
        dir,
        &recipe.lora,
        &package.base_sha256,
        &format!(
            "the global adapters {sha} of a bcfl demo: {}",
            package.description
        ),
        &update,
    )
    .map_err(crate::round::Error::from)?;
    Ok(())
}

/// Every member's events so far.
fn read_events(planned: &[Planned]) -> Vec<NodeEvent> {
    planned
        .iter()
        .filter(|p| p.report.is_file())
        .flat_map(|p| Report::read(&p.report).unwrap_or_default())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_launcher_prefixes_the_member_command() {
        let exe = Path::new("/bin/bcfl-train");
        let args = ["node".to_owned(), "run".to_owned()];
        assert_eq!(
            launch(None, 3, exe, &args),
            (exe.to_path_buf(), args.to_vec())
        );
        let (program, all) = launch(Some("ip netns exec  host{i} "), 3, exe, &args);
        assert_eq!(program, Path::new("ip"));
        assert_eq!(
            all,
            ["netns", "exec", "host3", "/bin/bcfl-train", "node", "run"]
        );
        assert_eq!(launch(Some("  "), 1, exe, &args).0, exe);
    }
}
