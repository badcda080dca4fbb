//! `bcfl model init`: writes the consortium's model package
//! ([`bcfl_client::round::model::ModelPackage`]).

use std::path::PathBuf;

use anyhow::Context as _;
use bcfl_client::round::model::ModelPackage;
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

/// `bcfl model ...`.
#[derive(Debug, Clone, Subcommand)]
pub(crate) enum ModelCommand {
    /// Write the consortium's model package: the base model, the initial trainable tensors
    /// round 1 starts from, the class names.
    Init(ModelInitArgs),
}

impl ModelCommand {
    /// Runs the command; prints the package (JSON with `json`).
    pub(crate) fn run(&self, json: bool) -> anyhow::Result<()> {
        match self {
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
