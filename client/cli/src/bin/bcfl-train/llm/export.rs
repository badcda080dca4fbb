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

#[cfg(test)]
mod tests {
    use std::path::Path;

    use bcfl_client::llm::LanguageModel;
    use bcfl_client::tch::Device;

    use super::*;

    #[test]
    fn a_directory_holding_anything_is_refused_before_the_model_loads() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("notes.txt"), "mine").unwrap();
        let args = ExportArgs {
            gguf: Some("/no/such/model.gguf".into()),
            out: dir.path().to_owned(),
        };
        let err = run(&args, true).unwrap_err().to_string();
        assert!(err.contains("is not empty"), "{err}");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn the_written_directory_loads_as_the_same_model() {
        let gguf = match std::env::var_os(GGUF_ENV) {
            Some(p) if Path::new(&p).is_file() => PathBuf::from(p),
            _ => {
                eprintln!("skipped: {GGUF_ENV} names no file (source scripts/env.sh)");
                return;
            }
        };
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("smollm2-hf");
        let args = ExportArgs {
            gguf: Some(gguf.clone()),
            out: out.clone(),
        };
        run(&args, true).unwrap();
        let mut files: Vec<_> = std::fs::read_dir(&out)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        files.sort();
        assert_eq!(
            files,
            [
                "config.json",
                "model.safetensors",
                "tokenizer.json",
                "tokenizer_config.json"
            ]
        );
        let read = LanguageModel::open(&out, Device::Cpu).unwrap();
        let config = bcfl_client::llm::gguf::GgufFile::open(&gguf).unwrap();
        let config = bcfl_client::llm::config::LlamaConfig::from_gguf(&config).unwrap();
        assert_eq!(read.model().config(), &config);
        assert_eq!(read.tokenizer().eos_token_id(), 2);
    }
}
