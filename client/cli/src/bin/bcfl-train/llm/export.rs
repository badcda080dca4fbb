//! `bcfl llm export-hf --out DIR`: writes the model `--gguf` names as a Hugging Face checkpoint
//! directory ([`bcfl_client::llm::hf::write_checkpoint`]): `config.json`, `model.safetensors`
//! (every weight dequantized to `f32`, Hugging Face names and query/key row order),
//! `tokenizer.json` and `tokenizer_config.json`. `--gguf DIR` then loads it like the GGUF file.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context as _};
use bcfl_client::llm::hf::write_checkpoint;
use bcfl_client::llm::model::WeightStorage;
use bcfl_client::llm::GGUF_ENV;
use clap::Args;
use serde::Serialize;

/// `bcfl llm export-hf`.
#[derive(Debug, Clone, Args)]
pub(crate) struct ExportArgs {
    /// The model to export: a GGUF file (or a checkpoint directory); SmolLM2-135M-Instruct's
    /// GGUF file by default, through scripts/env.sh.
    #[arg(long, env = GGUF_ENV, value_name = "PATH")]
    gguf: Option<PathBuf>,
    /// The directory to write (created; refused if it holds anything).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
}

/// What `bcfl --json llm export-hf` prints.
#[derive(Debug, Serialize)]
struct ExportReport {
    out: PathBuf,
    files: Vec<PathBuf>,
    /// Bytes of the files written.
    bytes: u64,
    parameters: i64,
    load_seconds: f64,
    write_seconds: f64,
}

pub(crate) fn run(args: &ExportArgs, json: bool) -> anyhow::Result<()> {
    if let Ok(mut entries) = std::fs::read_dir(&args.out) {
        if entries.next().is_some() {
            bail!(
                "{} is not empty: export-hf writes a new directory",
                args.out.display()
            );
        }
    }
    let (lm, load_seconds) = super::open_model(args.gguf.as_deref(), WeightStorage::F32)?;
    let began = Instant::now();
    let files = write_checkpoint(lm.model(), lm.tokenizer(), &args.out)
        .with_context(|| format!("writing {}", args.out.display()))?;
    let write_seconds = began.elapsed().as_secs_f64();
    let mut bytes = 0;
    for file in &files {
        bytes += std::fs::metadata(file)
            .with_context(|| format!("reading {}", file.display()))?
            .len();
    }
    let report = ExportReport {
        out: args.out.clone(),
        files,
        bytes,
        parameters: lm.model().parameter_count(),
        load_seconds,
        write_seconds,
    };
    if json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!(
            "wrote {} ({} files, {} bytes, {} parameters) in {:.1} s",
            report.out.display(),
            report.files.len(),
            report.bytes,
            report.parameters,
            report.write_seconds
        );
    }
    Ok(())
}
