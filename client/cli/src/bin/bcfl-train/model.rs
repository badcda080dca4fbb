//! `bcfl model init`: writes the consortium's model package
//! ([`bcfl_client::round::model::ModelPackage`]); `bcfl model reference`: the
//! mislabelled-change method's reference for it (`consortium init --reference`).

use std::path::PathBuf;

use anyhow::Context as _;
use bcfl_cli::anomaly_preset::CoordinateScope;
use bcfl_client::round::model::ModelPackage;
use bcfl_client::train::attack::head::ReferenceDirections;
use clap::{Args, Subcommand};

use crate::llm::finetune::{ModelChoice, RecipeArgs, RecipeInputs};
use crate::train::{DataArgs, LoraArgs};
use bcfl_client::llm::GGUF_ENV;

/// `bcfl model init`: writes the consortium's model package.
#[derive(Debug, Clone, Args)]
pub(crate) struct ModelInitArgs {
    /// The package folder to write.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// The model: BERT with a classification head, or the SmolLM2 decoder answering PubMedQA
    /// questions (its recipe: --preset or the LoRA flags, --lora-top-layers, --local-steps,
    /// --lr, --lr-min, --rounds...).
    #[arg(long, value_enum, default_value_t = ModelChoice::Bert)]
    model: ModelChoice,
    /// The decoder (--model smollm2): a GGUF file or a Hugging Face checkpoint directory
    /// (SmolLM2-135M-Instruct's GGUF file by default, through scripts/env.sh).
    #[arg(long, env = GGUF_ENV, value_name = "PATH")]
    gguf: Option<PathBuf>,
    #[command(flatten)]
    recipe: RecipeArgs,
    #[command(flatten)]
    lora: LoraArgs,
    /// Rounds the decoder's learning-rate schedule spans (cosine from --lr to --lr-min).
    #[arg(long, default_value_t = 10)]
    rounds: u64,
    /// The decoder's round-1 learning rate.
    #[arg(long, default_value_t = 1e-3)]
    lr: f64,
    /// The decoder's questions per optimiser step.
    #[arg(long, default_value_t = 4)]
    batch_size: usize,
    /// The base BERT directory (all-MiniLM-L6-v2 by default).
    #[arg(long, env = "BCFL_MODEL_DIR", value_name = "DIR")]
    model_dir: Option<PathBuf>,
    /// A tiny random BERT instead, with a vocabulary of the data's texts (for tests).
    #[arg(long)]
    tiny: bool,
    /// The data whose class names (and, with --tiny, texts) the package takes.
    #[command(flatten)]
    data: DataArgs,
    /// Longest token sequence.
    #[arg(long, default_value_t = 64)]
    max_len: usize,
    /// Seed of the initial adapters and head (and of the tiny base).
    #[arg(long, default_value_t = 42)]
    seed: u64,
}

/// `bcfl model reference`: the mislabelled-change method's reference for a BERT package.
#[derive(Debug, Clone, Args)]
pub(crate) struct ModelReferenceArgs {
    /// The consortium's model package (bcfl model init).
    #[arg(long, value_name = "DIR")]
    package: PathBuf,
    /// The labelled root set the consortium agrees on, every class in it: CSV or JSON lines
    /// with `text` and `label` columns (as a member's shard), or the corpus's file.
    #[arg(long, value_name = "FILE")]
    root_set: PathBuf,
    /// The reference to write, an update file in the members' layout (`consortium init
    /// --reference FILE`).
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    /// The consortium's sampled coordinates (`consortium init --coordinate-samples`): reports
    /// how many of them fall in the head, where the method compares changes.
    #[arg(long, default_value_t = 256)]
    coordinate_samples: usize,
    /// Where they are drawn (`consortium init --coordinate-scope`).
    #[arg(long, value_enum, value_name = "SCOPE", default_value_t = CoordinateScope::Every)]
    coordinate_scope: CoordinateScope,
    /// What the reference's rows are taken from: the root set's class means (the
    /// nearest-centroid classifier), or a linear classifier trained on the root set.
    #[arg(long, value_enum, value_name = "KIND", default_value_t = ReferenceDirections::ClassMeans)]
    directions: ReferenceDirections,
}

/// `bcfl model ...`.
#[derive(Debug, Clone, Subcommand)]
pub(crate) enum ModelCommand {
    /// Write the consortium's model package: the base model, the initial trainable tensors
    /// round 1 starts from, the class names.
    Init(Box<ModelInitArgs>),
    /// Write the mislabelled-change method's reference for a BERT package: in the
    /// classification head's weight, each class's mean feature on a labelled root set (or the
    /// rows of a linear classifier trained on it), less their mean over the classes, the class
    /// means' common direction removed; zeros elsewhere (docs/anomaly-detection.md, "Labels
    /// that lie").
    Reference(ModelReferenceArgs),
}

/// What `bcfl model reference` prints.
#[derive(Debug, serde::Serialize)]
struct ReferenceReport {
    out: PathBuf,
    /// What the reference's rows were taken from.
    directions: ReferenceDirections,
    /// Root-set examples per class, in the package's order.
    root_examples: Vec<(String, usize)>,
    /// Trainable values in all, and in the head's weight (where the reference is non-zero).
    trainable_values: usize,
    head_values: usize,
    /// Of the sampled coordinates (drawn in `coordinate_scope`), those the method compares (in
    /// the head, non-zero there).
    coordinate_samples: usize,
    coordinate_scope: CoordinateScope,
    compared: usize,
}

fn reference(args: &ModelReferenceArgs, json: bool) -> anyhow::Result<()> {
    let limit = bcfl_processor::limits::MAX_COORDINATE_SAMPLES;
    anyhow::ensure!(
        (1..=limit).contains(&args.coordinate_samples),
        "--coordinate-samples must lie in 1..={limit}, as a consortium's do"
    );
    let package = ModelPackage::read(&args.package)?;
    let root = package.load_examples(&args.root_set)?;
    let reference = package.head_reference(&root, args.directions)?;
    let steps = bcfl_fed::reference::reference_steps(
        &reference,
        args.coordinate_samples,
        args.coordinate_scope.param(),
    )
    .with_context(|| {
        format!(
            "none of the {} sampled coordinates falls where the reference is non-zero: \
                 raise --coordinate-samples",
            args.coordinate_samples
        )
    })?;
    let bytes = reference.to_bytes(bcfl_fed::update::Encoding::F32);
    std::fs::write(&args.out, bytes).with_context(|| format!("writing {}", args.out.display()))?;
    let mut counts = vec![0usize; package.labels.len()];
    root.examples.iter().for_each(|e| counts[e.label] += 1);
    let report = ReferenceReport {
        out: args.out.clone(),
        directions: args.directions,
        root_examples: package.labels.iter().cloned().zip(counts).collect(),
        trainable_values: reference.parameters(),
        head_values: reference
            .tensors
            .values()
            .filter(|(_, v)| v.iter().any(|&x| x != 0.0))
            .map(|(_, v)| v.len())
            .sum(),
        coordinate_samples: args.coordinate_samples,
        coordinate_scope: args.coordinate_scope,
        compared: bcfl_fed::reference::covered(&steps),
    };
    if json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!("reference        {}", report.out.display());
        let directions = match report.directions {
            ReferenceDirections::Classifier => "a linear classifier trained on the root set",
            ReferenceDirections::ClassMeans => "the root set's class means",
        };
        println!("directions       {directions}");
        let per_class: Vec<String> = report
            .root_examples
            .iter()
            .map(|(name, n)| format!("{name} {n}"))
            .collect();
        println!("root set         {}", per_class.join(", "));
        println!(
            "head             {} of {} trainable values",
            report.head_values, report.trainable_values
        );
        println!(
            "compared         {} of {} sampled coordinates",
            report.compared, report.coordinate_samples
        );
    }
    Ok(())
}

impl ModelCommand {
    /// Runs the command; prints the package (JSON with `json`).
    pub(crate) fn run(&self, json: bool) -> anyhow::Result<()> {
        match self {
            Self::Reference(args) => reference(args, json),
            Self::Init(args) => {
                let package = if args.model == ModelChoice::Smollm2 {
                    decoder_package(args)?
                } else if args.tiny {
                    let data = args.data.load(None)?;
                    let labels = data.label_names.clone();
                    let texts: Vec<&str> = data.examples.iter().map(|e| e.text.as_str()).collect();
                    ModelPackage::create_tiny(&args.out, &texts, labels, args.max_len, args.seed)?
                } else {
                    let labels = args.data.load(None)?.label_names;
                    let base = args.model_dir.as_deref().context(
                        "no base model: pass --model-dir or set BCFL_MODEL_DIR (or --tiny)",
                    )?;
                    ModelPackage::create(&args.out, base, labels, args.max_len, args.seed)?
                };
                if json {
                    println!("{}", serde_json::to_string(&package)?);
                } else {
                    println!("package          {}", args.out.display());
                    println!("model            {}", package.description);
                    println!("base_sha256      {}", package.base_sha256);
                    println!("initial_sha256   {}", package.initial_sha256);
                    println!("labels           {}", package.labels.join(", "));
                }
                Ok(())
            }
        }
    }
}

/// The decoder's package: the GGUF file, the recipe the flags describe, fresh adapters.
fn decoder_package(args: &ModelInitArgs) -> anyhow::Result<ModelPackage> {
    let gguf = crate::llm::gguf_path(args.gguf.as_deref())?;
    let config = bcfl_client::llm::model_config(gguf)
        .with_context(|| format!("reading {}", gguf.display()))?;
    let recipe = args.recipe.recipe(
        &RecipeInputs {
            lora: &args.lora,
            rounds: args.rounds,
            lr: args.lr,
            batch_size: args.batch_size,
            weight_decay: 0.01,
            max_grad_norm: 1.0,
        },
        &config,
    );
    Ok(ModelPackage::create_decoder(
        &args.out, gguf, recipe, args.seed,
    )?)
}
