//! `bcfl model init`: writes the consortium's model package
//! ([`bcfl_client::round::model::ModelPackage`]).

use std::path::PathBuf;

use anyhow::Context as _;
use bcfl_client::round::model::ModelPackage;
use clap::{Args, Subcommand};

use crate::train::DataArgs;

/// `bcfl model init`: writes the consortium's model package.
#[derive(Debug, Clone, Args)]
pub(crate) struct ModelInitArgs {
    /// The package folder to write.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
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
                let data = args.data.load(None)?;
                let labels = data.label_names.clone();
                let package = if args.tiny {
                    let texts: Vec<&str> = data.examples.iter().map(|e| e.text.as_str()).collect();
                    ModelPackage::create_tiny(&args.out, &texts, labels, args.max_len, args.seed)?
                } else {
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
