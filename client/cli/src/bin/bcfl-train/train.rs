//! `bcfl train`, `bcfl eval` and `bcfl fl simulate`, and the data, model and optimisation
//! flags they share with `bcfl data split`, `bcfl model init` and `bcfl demo`.
//!
//! `bcfl fl simulate --model smollm2` trains the decoder on PubMedQA instead
//! ([`crate::llm::finetune`]); both run their members through [`run_simulation`].
//!
//! A trained model is saved as a directory ([`bcfl_client::train::saved`]). With
//! `--lora-from-layer K > 0` the states entering layer `K` are computed once per text
//! (training and scored sets) and cached ([`bcfl_client::train::prefix`]), in memory or, with
//! `--prefix-cache DIR`, in a file reused by later runs. `--validation F` scores on a part of
//! the training split instead of the test set, for choosing settings.
//!
//! Every command that reads labelled data takes [`DataArgs`]: `--data FILE` (a text,label CSV
//! / TSV / JSON-lines file, or a file in the Medical Abstracts format, read as it is), or the
//! corpus in `--data-dir`, with class names from `--labels-file`
//! ([`bcfl_client::train::source::DataSource`]).

use std::fs;
use std::path::PathBuf;

use bcfl_client::tch::Device;
use clap::{Args, Subcommand};
use serde::{Deserialize, Serialize};

use bcfl_client::train::bert::BertClassifier;
use bcfl_client::train::checkpoint::ModelDir;
use bcfl_client::train::data::{Columns, Dataset};
use bcfl_client::train::lora::LoraConfig;
use bcfl_client::train::prefix::{Inputs, PrefixCache};
use bcfl_client::train::saved::{save, SavedModel, ADAPTER_FILE, TEST_FILE};
use bcfl_client::train::source::{DataOrigin, DataSource};
use bcfl_client::train::split::{
    leakage, partition, train_test_split, validation_split, Partition,
};
use bcfl_client::train::tensors::StoreTensors as _;
use bcfl_client::train::tokenize::TextEncoder;
use bcfl_client::train::trainer::{evaluate, evaluate_on, train_on, TrainConfig};
use bcfl_fed::rule::{Rule, RuleDefaults};
use bcfl_fed::update::{Encoding, Update};

/// Where labelled data comes from.
#[derive(Clone, Debug, Args)]
pub(crate) struct DataArgs {
    /// Data directory holding `medical-abstracts/` (used when --data is absent; scripts/env.sh
    /// sets BCFL_DATA_DIR to the repository's data/).
    #[arg(long, env = "BCFL_DATA_DIR")]
    pub(crate) data_dir: Option<PathBuf>,
    /// A CSV (.csv, .tsv) or JSON-lines file of labelled texts. A file in the Medical Abstracts
    /// format (columns condition_label, medical_abstract) is read as it is, its numeric labels
    /// named from --labels-file or the medical_tc_labels.csv beside it.
    #[arg(long)]
    pub(crate) data: Option<PathBuf>,
    /// Column of the text in --data.
    #[arg(long, default_value = "text")]
    pub(crate) text_column: String,
    /// Column of the label in --data.
    #[arg(long, default_value = "label")]
    pub(crate) label_column: String,
    /// CSV mapping label codes to class names, as the corpus's medical_tc_labels.csv (header,
    /// then rows `code,name`; columns condition_label and condition_name when present,
    /// otherwise the first two). The classes are its names, in its order.
    #[arg(long)]
    pub(crate) labels_file: Option<PathBuf>,
    /// Use only the first N examples (quick runs).
    #[arg(long)]
    pub(crate) limit: Option<usize>,
}

impl DataArgs {
    /// Where these flags say the data is: `--data`, else the corpus in `--data-dir`.
    pub(crate) fn source(&self) -> anyhow::Result<DataSource> {
        let origin = match (&self.data, &self.data_dir) {
            (Some(file), _) => DataOrigin::File {
                path: file.clone(),
                columns: Columns {
                    text: self.text_column.clone(),
                    label: self.label_column.clone(),
                },
                labels_file: self.labels_file.clone(),
            },
            (None, Some(dir)) => DataOrigin::Corpus {
                dir: dir.clone(),
                labels_file: self.labels_file.clone(),
            },
            (None, None) => {
                anyhow::bail!("give --data FILE or --data-dir DIR (or set BCFL_DATA_DIR)")
            }
        };
        Ok(DataSource {
            origin,
            limit: self.limit,
        })
    }

    /// Loads the dataset (checking its classes against `labels` when given) and applies
    /// `--limit`.
    pub(crate) fn load(&self, labels: Option<&[String]>) -> anyhow::Result<Dataset> {
        Ok(self.source()?.load(labels)?)
    }
}

/// The base model and the adapters.
#[derive(Clone, Debug, Args)]
pub(crate) struct ModelArgs {
    /// Directory of the pretrained BERT checkpoint.
    #[arg(long, env = "BCFL_MODEL_DIR")]
    pub(crate) model_dir: PathBuf,
    /// Required SHA-256 of model.safetensors (default: the installing package's record).
    #[arg(long)]
    pub model_sha256: Option<String>,
    /// Longest token sequence.
    #[arg(long, default_value_t = 128)]
    pub(crate) max_len: usize,
    #[command(flatten)]
    pub(crate) lora: LoraArgs,
    /// First layer carrying adapters (0: all). Layers below it are a frozen prefix that runs
    /// without dropout and whose output is computed once per text and cached.
    #[arg(long, default_value_t = 0)]
    pub(crate) lora_from_layer: i64,
    /// Directory keeping frozen-prefix caches between runs (e.g. $BCFL_HOME/cache), named by
    /// the base weights, tokenizer, --lora-from-layer, --max-len and texts. Without it the
    /// cache lives in memory for the run.
    #[arg(long)]
    pub(crate) prefix_cache: Option<PathBuf>,
    /// Run on CUDA when available.
    #[arg(long)]
    pub(crate) cuda: bool,
}

/// The LoRA adapters' flags.
#[derive(Clone, Debug, Args)]
pub(crate) struct LoraArgs {
    /// LoRA rank.
    #[arg(long, default_value_t = 8)]
    pub(crate) lora_rank: i64,
    /// LoRA alpha (the update is scaled by alpha / rank).
    #[arg(long, default_value_t = 16.0)]
    pub(crate) lora_alpha: f64,
    /// LoRA dropout.
    #[arg(long, default_value_t = 0.1)]
    pub(crate) lora_dropout: f64,
    /// Adapted projections (query, key, value, output; a decoder also gate, up, down).
    #[arg(long, value_delimiter = ',', default_value = "query,value")]
    pub(crate) lora_targets: Vec<String>,
}

impl LoraArgs {
    /// The adapters, from layer `from_layer` up.
    pub(crate) fn config(&self, from_layer: i64) -> LoraConfig {
        LoraConfig {
            rank: self.lora_rank,
            alpha: self.lora_alpha,
            dropout: self.lora_dropout,
            targets: self.lora_targets.clone(),
            from_layer,
        }
    }
}

/// Optimisation options.
#[derive(Clone, Debug, Args)]
pub(crate) struct OptimArgs {
    /// Epochs (local epochs in a simulation).
    #[arg(long, default_value_t = 3)]
    pub(crate) epochs: usize,
    /// Batch size.
    #[arg(long, default_value_t = 16)]
    pub(crate) batch_size: usize,
    /// Peak learning rate.
    #[arg(long, default_value_t = 1e-3)]
    pub(crate) lr: f64,
    /// AdamW weight decay.
    #[arg(long, default_value_t = 0.01)]
    pub(crate) weight_decay: f64,
    /// Fraction of steps warming up.
    #[arg(long, default_value_t = 0.06)]
    pub(crate) warmup: f64,
    /// Gradient-norm clip (0: off).
    #[arg(long, default_value_t = 1.0)]
    pub(crate) max_grad_norm: f64,
    /// Seed of the split, initialisation, shuffling and dropout.
    #[arg(long, default_value_t = 42)]
    pub(crate) seed: u64,
    /// Fraction of the data held out for testing.
    #[arg(long, default_value_t = 0.2)]
    pub(crate) test_fraction: f64,
    /// Carve this fraction of the training split out as a validation set and score on it
    /// instead of the test set (to choose settings without looking at the test set).
    #[arg(long, default_value_t = 0.0)]
    pub(crate) validation: f64,
}

impl OptimArgs {
    fn config(&self) -> TrainConfig {
        TrainConfig {
            epochs: self.epochs,
            batch_size: self.batch_size,
            learning_rate: self.lr,
            weight_decay: self.weight_decay,
            warmup_fraction: self.warmup,
            max_grad_norm: self.max_grad_norm,
            seed: self.seed,
        }
    }
}

/// `bcfl train`: centralized fine-tuning.
#[derive(Clone, Debug, Args)]
pub(crate) struct TrainArgs {
    #[command(flatten)]
    data: DataArgs,
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    optim: OptimArgs,
    /// Directory to save the adapters, head and description in.
    #[arg(long)]
    out: Option<PathBuf>,
}

/// `bcfl eval`: score a saved model on a labelled file.
#[derive(Clone, Debug, Args)]
pub(crate) struct EvalArgs {
    /// Saved model directory (from `bcfl train --out`).
    #[arg(long)]
    model: PathBuf,
    #[command(flatten)]
    data: DataArgs,
    /// Batch size.
    #[arg(long, default_value_t = 64)]
    batch_size: usize,
    /// Base model directory, when it moved since training (its digest must still match).
    #[arg(long)]
    base_dir: Option<PathBuf>,
    /// Run on CUDA when available.
    #[arg(long)]
    cuda: bool,
    /// Round-trip the adapters through int8 quantization first (the accuracy cost of int8
    /// updates).
    #[arg(long)]
    int8: bool,
}

/// `bcfl fl ...`: federated learning without a ledger.
#[derive(Clone, Debug, Subcommand)]
pub(crate) enum FlCommand {
    /// Federated rounds in one process: N clients, R rounds, a partition and a rule.
    Simulate(Box<SimulateArgs>),
    /// Benchmarks (JSON): training steps/s, aggregation throughput, update sizes.
    Bench(crate::bench::BenchArgs),
    /// Several `--json fl simulate` runs' accuracy (or macro-F1) per round on one SVG chart.
    Plot(crate::plot::PlotArgs),
}

/// `bcfl fl simulate` options.
#[derive(Clone, Debug, Args)]
pub(crate) struct SimulateArgs {
    #[command(flatten)]
    pub(crate) data: DataArgs,
    #[command(flatten)]
    pub(crate) model: ModelArgs,
    #[command(flatten)]
    pub(crate) optim: OptimArgs,
    #[command(flatten)]
    pub(crate) decoder: crate::llm::finetune::DecoderArgs,
    /// Clients.
    #[arg(long, default_value_t = 10)]
    pub(crate) clients: usize,
    /// Rounds.
    #[arg(long, default_value_t = 5)]
    pub(crate) rounds: usize,
    /// Partition: iid, dirichlet, specialty.
    #[arg(long, default_value = "iid")]
    partition: String,
    /// Dirichlet concentration.
    #[arg(long, default_value_t = 0.5)]
    alpha: f64,
    /// Specialty share.
    #[arg(long, default_value_t = 0.8)]
    share: f64,
    /// Smallest shard.
    #[arg(long, default_value_t = 16)]
    min_shard: usize,
    /// Rule: fedavg, median, trimmed-mean or trimmed-mean:TRIM, krum or krum:F, multi-krum,
    /// multi-krum:F or multi-krum:F:K (--trim, --krum-f and --krum-k give what RULE leaves
    /// out).
    #[arg(long, value_name = "RULE", default_value = "fedavg")]
    rule: String,
    /// Trimmed-mean fraction per end.
    #[arg(long, default_value_t = 0.1)]
    trim: f64,
    /// Byzantine members Krum tolerates.
    #[arg(long, default_value_t = 1)]
    krum_f: usize,
    /// Members Multi-Krum averages (default: clients - krum_f).
    #[arg(long)]
    krum_k: Option<usize>,
    /// Exchange int8-quantized updates.
    #[arg(long)]
    quantize: bool,
    /// Sketch length of the commitment statistics.
    #[arg(long, default_value_t = bcfl_fed::sketch::DEFAULT_LENGTH)]
    sketch_length: usize,
    /// The fraction of the clients the ledger draws to train each round, in (0, 1] (at least
    /// one; --preset flowertune: 0.1) [default: every client].
    #[arg(long, value_name = "F", value_parser = bcfl_cli::sampling::parse_sample_fraction)]
    pub(crate) sample_fraction: Option<u32>,
}

fn device(cuda: bool) -> Device {
    if cuda {
        Device::cuda_if_available()
    } else {
        Device::Cpu
    }
}

fn build(
    args: &ModelArgs,
    labels: usize,
    seed: u64,
) -> anyhow::Result<(ModelDir, BertClassifier, TextEncoder)> {
    let dir = ModelDir::open(&args.model_dir, args.model_sha256.as_deref())?;
    let lora = args.lora.config(args.lora_from_layer);
    let model = {
        let _generator = bcfl_client::train::seeded(seed);
        dir.classifier(labels as i64, &lora, device(args.cuda))?
    };
    let encoder = dir.encoder(args.max_len)?;
    tracing::info!(sha256 = dir.sha256(), verified_by = ?dir.verified_by(), trainable = model.trainable_parameters(), "model loaded");
    Ok((dir, model, encoder))
}

/// The frozen-prefix cache of the whole loaded corpus (so that runs with and without
/// `--validation` share one file), when the model has a frozen prefix; `None` otherwise.
fn prefix_cache(
    args: &ModelArgs,
    dir: &ModelDir,
    model: &BertClassifier,
    encoder: &TextEncoder,
    data: &Dataset,
    json: bool,
) -> anyhow::Result<Option<PrefixCache>> {
    if model.frozen_layers() == 0 {
        return Ok(None);
    }
    let started = std::time::Instant::now();
    let texts = data.examples.iter().map(|e| e.text.as_str());
    let (cache, path) =
        PrefixCache::for_corpus(dir, model, encoder, texts, args.prefix_cache.as_deref())?;
    if !json {
        eprintln!(
            "frozen prefix: {} layers, states of {} texts ({:.0} MB, {}) in {:.0} s",
            cache.frozen_layers(),
            cache.len(),
            cache.bytes() as f64 / 1e6,
            path.map_or("memory".into(), |p| p.display().to_string()),
            started.elapsed().as_secs_f64()
        );
    }
    Ok(Some(cache))
}

fn inputs<'a>(cache: &'a Option<PrefixCache>, encoder: &'a TextEncoder) -> Inputs<'a> {
    match cache {
        Some(cache) => Inputs::Cached(cache),
        None => Inputs::Tokens(encoder),
    }
}

/// Splits `data` into (train, scored): the scored set is the held-out test set, or with
/// `--validation` a part of the training split (the test set is then not used at all).
fn split(data: &Dataset, optim: &OptimArgs, json: bool) -> anyhow::Result<(Dataset, Dataset)> {
    let (train_set, test_set) = train_test_split(data, optim.test_fraction, optim.seed)?;
    let leak = leakage(&train_set, &test_set);
    anyhow::ensure!(
        leak.leaked == 0,
        "{} test texts also appear in training",
        leak.leaked
    );
    if !json {
        eprintln!(
            "{} train / {} test examples; leakage check: {} of {} test texts in training ({:.1} %)",
            train_set.len(),
            test_set.len(),
            leak.leaked,
            leak.test_examples,
            100.0 * leak.fraction
        );
    }
    if optim.validation > 0.0 {
        let (fit, validation) = validation_split(&train_set, optim.validation, optim.seed)?;
        if !json {
            eprintln!(
                "validation: {} of the {} training examples held out (scores below are validation scores; the test set is not used)",
                validation.len(),
                train_set.len()
            );
        }
        return Ok((fit, validation));
    }
    Ok((train_set, test_set))
}

/// What the scored set is, for the output.
fn scored_on(optim: &OptimArgs) -> &'static str {
    if optim.validation > 0.0 {
        "validation"
    } else {
        "test"
    }
}

/// Runs `bcfl train`.
pub(crate) fn run_train(args: &TrainArgs, json: bool) -> anyhow::Result<()> {
    let data = args.data.load(None)?;
    let (train_set, test_set) = split(&data, &args.optim, json)?;
    if let Some(out) = &args.out {
        test_set.write_csv(&out.join(TEST_FILE))?;
    }
    let (dir, model, encoder) = build(&args.model, data.num_labels(), args.optim.seed)?;
    let cache = prefix_cache(&args.model, &dir, &model, &encoder, &data, json)?;
    let inputs = inputs(&cache, &encoder);
    let config = args.optim.config();
    let scored = scored_on(&args.optim);
    let mut epochs = Vec::new();
    train_on(&model, inputs, &train_set, &config, !json, |stats| {
        let test = evaluate_on(&model, inputs, &test_set, 64)?;
        if !json {
            println!(
                "epoch {} loss {:.4} {scored} accuracy {:.4} macro-F1 {:.4} ({:.0} s, {:.2} steps/s)",
                stats.epoch,
                stats.loss,
                test.scores.accuracy,
                test.scores.macro_f1,
                stats.seconds,
                stats.steps as f64 / stats.seconds
            );
        }
        epochs.push(serde_json::json!({"train": stats, "test": test, "scored_on": scored}));
        Ok(())
    })?;
    if let Some(out) = &args.out {
        save(out, &dir, &model, &data.label_names, args.model.max_len)?;
        if !json {
            println!("saved {}", out.display());
        }
    }
    if json {
        println!(
            "{}",
            serde_json::json!({
                "train_examples": train_set.len(), "test_examples": test_set.len(),
                "labels": data.label_names, "trainable_parameters": model.trainable_parameters(),
                "base_sha256": dir.sha256(), "config": config, "scored_on": scored,
                "frozen_layers": model.frozen_layers(), "epochs": epochs,
            })
        );
    }
    Ok(())
}

/// Runs `bcfl eval`.
pub(crate) fn run_eval(args: &EvalArgs, json: bool) -> anyhow::Result<()> {
    let saved = SavedModel::read(&args.model)?;
    let base = args.base_dir.as_ref().unwrap_or(&saved.base_dir);
    let dir = ModelDir::open(base, Some(&saved.base_sha256))?;
    let mut model = dir.classifier(
        saved.label_names.len() as i64,
        &saved.lora,
        device(args.cuda),
    )?;
    let adapter = fs::read(args.model.join(ADAPTER_FILE))?;
    let mut update = Update::from_bytes(&adapter)?;
    if args.int8 {
        update = Update::from_bytes(&update.to_bytes(Encoding::Int8))?;
    }
    update.apply_to(model.trainable_mut())?;
    let encoder = dir.encoder(saved.max_len)?;
    let data = args.data.load(Some(&saved.label_names))?;
    let result = evaluate(&model, &encoder, &data, args.batch_size)?;
    if json {
        println!(
            "{}",
            serde_json::json!({"examples": data.len(), "labels": saved.label_names, "int8": args.int8, "evaluation": result})
        );
    } else {
        println!(
            "{} examples: accuracy {:.4}, macro-F1 {:.4}, loss {:.4}",
            data.len(),
            result.scores.accuracy,
            result.scores.macro_f1,
            result.loss
        );
        println!(
            "confusion (rows: true, columns: predicted): {:?}",
            saved.label_names
        );
        for (name, row) in saved.label_names.iter().zip(&result.scores.confusion) {
            println!("  {row:?} {name}");
        }
    }
    Ok(())
}

/// The settings `bcfl fl simulate` runs with (echoed in its JSON output).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct SimulationSettings {
    /// Number of clients.
    pub(crate) clients: usize,
    /// Number of rounds.
    pub(crate) rounds: usize,
    /// How the training set is spread over clients.
    pub(crate) partition: Partition,
    /// Smallest shard.
    pub(crate) min_shard: usize,
    /// Aggregation rule.
    pub(crate) rule: Rule,
    /// Local training (its `epochs` are the local epochs; its seed seeds everything).
    pub(crate) local: TrainConfig,
    /// Int8 update blobs.
    pub(crate) quantize: bool,
    /// Sketch length of the commitments.
    pub(crate) sketch_length: usize,
    /// The fraction of the clients drawn to train each round (1: every one).
    pub(crate) sample_fraction: f64,
}

impl SimulationSettings {
    /// The consortium's `sample_ppm` (0: every client trains) and commit quorum: every drawn
    /// client, so that a round waits for all of its members.
    fn sampling(&self) -> anyhow::Result<(u32, u32)> {
        use anyhow::Context as _;
        let n = self.clients;
        if self.sample_fraction >= 1.0 {
            return Ok((0, n as u32));
        }
        let ppm =
            bcfl_processor::fixed::f64_to_ppm(self.sample_fraction).context("--sample-fraction")?;
        let drawn = bcfl_processor::rules::rounds::sample_size(n, ppm.max(1), 1);
        Ok((ppm.max(1), drawn as u32))
    }
}

impl SimulateArgs {
    pub(crate) fn simulation(&self) -> anyhow::Result<SimulationSettings> {
        let partition = match self.partition.as_str() {
            "iid" => Partition::Iid,
            "dirichlet" => Partition::Dirichlet { alpha: self.alpha },
            "specialty" => Partition::Specialty { share: self.share },
            other => anyhow::bail!("unknown partition {other:?} (iid, dirichlet, specialty)"),
        };
        let defaults = RuleDefaults {
            trim: self.trim,
            krum_f: self.krum_f,
            krum_k: self.krum_k.unwrap_or(0),
        };
        let rule = match Rule::parse_with(&self.rule, defaults)? {
            Rule::MultiKrum { f, k: 0 } => Rule::MultiKrum {
                f,
                k: self.clients.saturating_sub(f),
            },
            rule => rule,
        };
        Ok(SimulationSettings {
            clients: self.clients,
            rounds: self.rounds,
            partition,
            min_shard: self.min_shard,
            rule,
            local: self.optim.config(),
            quantize: self.quantize,
            sketch_length: self.sketch_length,
            sample_fraction: self
                .sample_fraction
                .map_or(1.0, bcfl_client::fixed::ppm_to_f64),
        })
    }
}

impl FlCommand {
    /// Runs the command.
    pub(crate) async fn run(&self, json: bool) -> anyhow::Result<()> {
        match self {
            Self::Bench(args) => crate::bench::run(args),
            Self::Plot(args) => crate::plot::run(args, json),
            Self::Simulate(args) => match args.decoder.model {
                crate::llm::finetune::ModelChoice::Bert => simulate_command(args, json).await,
                crate::llm::finetune::ModelChoice::Smollm2 => {
                    crate::llm::finetune::simulate(args, json).await
                }
            },
        }
    }
}

/// `bcfl fl simulate`: the round library's roles over the in-memory ledger
/// ([`bcfl_client::round::simulation`]), one member per shard, sharing one model.
async fn simulate_command(args: &SimulateArgs, json: bool) -> anyhow::Result<()> {
    use bcfl_client::round::model::{LocalModel, SharedModel};
    use bcfl_client::round::simulation::SimulatedMember;

    let config = args.simulation()?;
    let data = args.data.load(None)?;
    let (train_set, test_set) = split(&data, &args.optim, json)?;
    let (dir, model, encoder) = build(&args.model, data.num_labels(), args.optim.seed)?;
    let cache = prefix_cache(&args.model, &dir, &model, &encoder, &data, json)?;
    let scored = scored_on(&args.optim);
    let initial = Update::from_store(model.trainable())?;
    let shards = partition(
        &train_set,
        config.clients,
        config.partition,
        config.min_shard,
        config.local.seed,
    )?;
    args.decoder
        .check_task(crate::llm::finetune::Task::Abstracts)?;
    let shared = SharedModel::new(model, encoder, cache).shared();
    let members = shards
        .iter()
        .enumerate()
        .map(|(i, shard)| {
            Ok(SimulatedMember {
                name: format!("client-{i:03}"),
                max_samples: shard.len() as u64,
                trainer: Box::new(LocalModel::new(
                    shared.clone(),
                    train_set.subset(shard),
                    (i == 0).then(|| test_set.clone()),
                    config.local.clone(),
                )?),
                attack: None,
                slowdown: 0.0,
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let base = Base {
        model_id: dir.path().display().to_string(),
        sha256: dir.sha256().to_owned(),
    };
    run_simulation(
        &config,
        base,
        initial,
        members,
        scored,
        serde_json::json!({}),
        json,
    )
    .await?;
    Ok(())
}

/// The frozen base model the consortium trains on, as the chain records it.
pub(crate) struct Base {
    /// What it is (a path).
    pub(crate) model_id: String,
    /// SHA-256 of its weights.
    pub(crate) sha256: String,
}

/// Runs the simulation of `members` from `initial` under `config` and prints each round (and,
/// with `json`, one object with `extra`'s fields added).
pub(crate) async fn run_simulation(
    config: &SimulationSettings,
    base: Base,
    initial: Update,
    members: Vec<bcfl_client::round::simulation::SimulatedMember>,
    scored: &str,
    extra: serde_json::Value,
    json: bool,
) -> anyhow::Result<bcfl_client::round::simulation::SimulationOutcome> {
    use bcfl_client::round::coordinator::CoordinatorConfig;
    use bcfl_client::round::simulation::{simulate, SimulationConfig};

    let n = config.clients as u32;
    let (sample_ppm, quorum) = config.sampling()?;
    let mut params = bcfl_protos::bcfl::ConsortiumParams {
        min_participants: n,
        commit_quorum: quorum,
        sample_ppm,
        model_id: base.model_id,
        base_model_sha256: base.sha256,
        sketch_length: config.sketch_length as u32,
        ..Default::default()
    };
    config.rule.write_params(&mut params)?;
    let work = tempfile::tempdir()?;
    let simulation = SimulationConfig {
        params,
        schedule: CoordinatorConfig::new(config.rounds as u64),
        initial,
        encoding: if config.quantize {
            Encoding::Int8
        } else {
            Encoding::F32
        },
        seed: config.local.seed,
        work_dir: work.path().to_path_buf(),
        first_scores: true,
        links: Vec::new(),
        collusion_noise: bcfl_client::demo::attack::CollusionNoise::NONE,
        blind_projection: false,
    };
    let outcome = simulate(simulation, members, |r| {
        let line = format!(
            "round {} {scored} accuracy {:.4} macro-F1 {:.4} ({} updates, {} bytes moved, {:.0} s)",
            r.round,
            r.accuracy.unwrap_or(f64::NAN),
            r.macro_f1.unwrap_or(f64::NAN),
            r.members.iter().filter(|m| m.accepted).count(),
            r.bytes_moved,
            r.timings.round_s
        );
        // With --json, stdout carries only the final document: progress goes to stderr.
        match json {
            true => eprintln!("{line}"),
            false => println!("{line}"),
        }
    })
    .await?;
    if json {
        println!("{}", {
            let mut out = serde_json::json!({"config": config, "scored_on": scored, "rounds": outcome.rounds});
            if let (Some(out), serde_json::Value::Object(extra)) = (out.as_object_mut(), extra) {
                out.extend(extra);
            }
            out
        });
    }
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        data: DataArgs,
    }

    #[derive(Parser)]
    struct SimulateCli {
        #[command(flatten)]
        simulate: SimulateArgs,
    }

    fn sampling(args: &[&str]) -> anyhow::Result<(u32, u32)> {
        let fixed = ["x", "--model-dir", "unused"];
        SimulateCli::try_parse_from(fixed.into_iter().chain(args.iter().copied()))?
            .simulate
            .simulation()?
            .sampling()
    }

    #[test]
    fn a_sample_fraction_becomes_the_consortiums_share_and_quorum() {
        // (sample_ppm, commit quorum): the quorum is every drawn client.
        assert_eq!(sampling(&["--clients", "10"]).unwrap(), (0, 10));
        let tenth = ["--clients", "10", "--sample-fraction", "0.1"];
        assert_eq!(sampling(&tenth).unwrap(), (100_000, 1));
        let half = ["--clients", "3", "--sample-fraction", "0.5"];
        assert_eq!(sampling(&half).unwrap(), (500_000, 2));
        let all = ["--clients", "4", "--sample-fraction", "1"];
        assert_eq!(sampling(&all).unwrap(), (0, 4));
        for bad in ["0", "1.5", "-0.1"] {
            let flag = format!("--sample-fraction={bad}");
            let err = sampling(&[&flag]).unwrap_err().to_string();
            assert!(err.contains("--sample-fraction must be in (0, 1]"), "{err}");
        }
    }

    fn names() -> [&'static str; 5] {
        [
            "neoplasms",
            "digestive system diseases",
            "nervous system diseases",
            "cardiovascular diseases",
            "general pathological conditions",
        ]
    }

    #[test]
    fn the_shipped_corpus_loads_by_file_and_by_directory() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data");
        let file = dir.join("medical-abstracts/medical_abstracts.csv");
        let labels = dir.join("medical-abstracts/medical_tc_labels.csv");
        let by_file = Cli::parse_from(["x", "--data", file.to_str().unwrap()]).data;
        let by_dir = Cli::parse_from(["x", "--data-dir", dir.to_str().unwrap()]).data;
        let with_labels = Cli::parse_from([
            "x",
            "--data",
            file.to_str().unwrap(),
            "--labels-file",
            labels.to_str().unwrap(),
            "--limit",
            "10",
        ])
        .data;
        let data = by_file.load(None).unwrap();
        assert_eq!(data.len(), 2_287);
        assert_eq!(data.label_names, names());
        assert_eq!(by_dir.load(None).unwrap(), data);
        let first = with_labels.load(None).unwrap();
        assert_eq!(first.examples, data.examples[..10]);
        // A saved model's classes are checked against the file's.
        let model: Vec<String> = names().iter().rev().map(|n| n.to_string()).collect();
        let reordered = by_file.load(Some(&model)).unwrap();
        assert_eq!(reordered.label_counts(), [761, 483, 305, 237, 501]);
        assert!(by_dir.load(Some(&model)).is_err());
    }
}
