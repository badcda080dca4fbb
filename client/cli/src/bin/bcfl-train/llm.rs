//! `bcfl llm ...`: Llama-architecture models read from a GGUF file or a Hugging Face
//! checkpoint directory ([`bcfl_client::llm`]): `generate` (greedy generation), `eval` (scores
//! on a benchmark, [`eval`]), `train-speed` ([`finetune`]) and `export-hf` (a GGUF model
//! written as a checkpoint directory, [`export`]).

mod eval;
mod export;
pub(crate) mod finetune;

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context as _;
use bcfl_client::llm::model::WeightStorage;
use bcfl_client::llm::pubmedqa::{self, PubMedQa};
use bcfl_client::llm::{LanguageModel, GGUF_ENV};
use clap::{Args, Subcommand};
use serde::Serialize;

/// `bcfl llm generate`: answers a prompt.
#[derive(Debug, Clone, Args)]
pub(crate) struct GenerateArgs {
    /// The user's message (put in the model's chat format unless --raw).
    #[arg(long, value_name = "TEXT")]
    prompt: String,
    /// The model: a GGUF file, or a Hugging Face checkpoint directory (config.json,
    /// model.safetensors or its shards, tokenizer.json); SmolLM2-135M-Instruct's GGUF file by
    /// default, through scripts/env.sh.
    #[arg(long, env = GGUF_ENV, value_name = "PATH")]
    gguf: Option<PathBuf>,
    /// Most tokens to generate.
    #[arg(long, default_value_t = 128, value_parser = clap::value_parser!(u32).range(1..))]
    max_tokens: u32,
    /// Continue the prompt as it is, without the chat format.
    #[arg(long)]
    raw: bool,
    /// Add the prompt's and the answer's token ids to the JSON ("prompt_ids", "ids"), for
    /// bench/llama_reference.py --generate.
    #[arg(long)]
    with_tokens: bool,
    #[command(flatten)]
    storage: StorageArgs,
}

/// How the model's weights are held (`generate`, `eval`).
#[derive(Debug, Clone, Args)]
pub(crate) struct StorageArgs {
    /// Keep the GGUF file's Q8_0, Q4_0 and Q4_1 matrices quantized in memory and dequantize
    /// them in each forward pass (less memory, slower steps; the same outputs) instead of
    /// dequantizing every weight to f32 at load.
    #[arg(long)]
    keep_quantized: bool,
}

impl StorageArgs {
    /// The storage asked for.
    pub(crate) fn storage(&self) -> WeightStorage {
        match self.keep_quantized {
            true => WeightStorage::Quantized,
            false => WeightStorage::F32,
        }
    }
}

/// `bcfl llm ...`.
#[derive(Debug, Clone, Subcommand)]
pub(crate) enum LlmCommand {
    /// Greedy answer to a prompt, with prefill and generation speeds.
    Generate(GenerateArgs),
    /// Score a model on a benchmark (PubMedQA): accuracy, macro-F1, one line per question.
    Eval(eval::EvalArgs),
    /// Tokens per second of a LoRA training step on PubMedQA: whole model against the cached
    /// frozen prefix (JSON with --json).
    TrainSpeed(finetune::SpeedArgs),
    /// Write the model as a Hugging Face checkpoint directory (f32 safetensors, config.json,
    /// tokenizer.json), which --gguf then also takes.
    ExportHf(export::ExportArgs),
}

/// What `bcfl --json llm generate` prints.
#[derive(Debug, Serialize)]
struct GenerateReport {
    text: String,
    stopped: bool,
    prompt_tokens: usize,
    generated_tokens: usize,
    load_seconds: f64,
    prefill_seconds: f64,
    prefill_tokens_per_second: f64,
    decode_seconds: f64,
    decode_tokens_per_second: f64,
    parameters: i64,
    /// Whether the quantized matrices were kept quantized (`--keep-quantized`).
    keep_quantized: bool,
    weight_bytes: i64,
    /// Resident memory of the process after generating (Linux only).
    resident_bytes: Option<u64>,
    /// The prompt's ids (with --with-tokens).
    #[serde(skip_serializing_if = "Option::is_none")]
    prompt_ids: Option<Vec<u32>>,
    /// The generated ids (with --with-tokens).
    #[serde(skip_serializing_if = "Option::is_none")]
    ids: Option<Vec<u32>>,
}

impl LlmCommand {
    /// Runs the command: `generate` prints the answer on stdout and the speeds on stderr,
    /// `eval` its scores on stdout (one JSON object on stdout with `json`).
    pub(crate) fn run(&self, json: bool) -> anyhow::Result<()> {
        match self {
            Self::Generate(args) => generate(args, json),
            Self::Eval(args) => eval::run(args, json),
            Self::TrainSpeed(args) => finetune::train_speed(args, json),
            Self::ExportHf(args) => export::run(args, json),
        }
    }
}

fn generate(args: &GenerateArgs, json: bool) -> anyhow::Result<()> {
    let (lm, load_seconds) = open_model(args.gguf.as_deref(), args.storage.storage())?;
    let prompt = match args.raw {
        true => args.prompt.clone(),
        false => lm.chat_prompt(&args.prompt),
    };
    let answer = lm.generate(&prompt, args.max_tokens as usize)?;
    let g = &answer.generation;
    let report = GenerateReport {
        text: answer.text.clone(),
        stopped: g.stopped,
        prompt_tokens: g.prompt_tokens,
        generated_tokens: g.ids.len(),
        load_seconds,
        prefill_seconds: g.prefill_seconds,
        prefill_tokens_per_second: g.prefill_tokens_per_second(),
        decode_seconds: g.decode_seconds,
        decode_tokens_per_second: g.decode_tokens_per_second(),
        parameters: lm.model().parameter_count(),
        keep_quantized: lm.model().is_quantized(),
        weight_bytes: lm.model().weight_bytes(),
        resident_bytes: resident_bytes(),
        prompt_ids: args
            .with_tokens
            .then(|| lm.tokenizer().encode(&prompt))
            .transpose()?,
        ids: args.with_tokens.then(|| g.ids.clone()),
    };
    if json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!("{}", report.text);
        eprintln!(
            "{} prompt tokens at {:.1} tokens/s, {} generated at {:.1} tokens/s (model loaded in \
             {:.1} s, {} parameters in {} bytes)",
            report.prompt_tokens,
            report.prefill_tokens_per_second,
            report.generated_tokens,
            report.decode_tokens_per_second,
            report.load_seconds,
            report.parameters,
            report.weight_bytes
        );
    }
    Ok(())
}

/// `VmRSS` of `/proc/self/status`, in bytes.
fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// The model `--gguf` names (a GGUF file or a checkpoint directory; default `$BCFL_LLM_GGUF`),
/// loaded on the CPU with its weights held as `storage` says, and the seconds the load took.
pub(crate) fn open_model(
    gguf: Option<&Path>,
    storage: WeightStorage,
) -> anyhow::Result<(LanguageModel, f64)> {
    let path = gguf_path(gguf)?;
    let began = Instant::now();
    let lm = LanguageModel::open_with(path, bcfl_client::tch::Device::Cpu, storage)
        .with_context(|| format!("loading {}", path.display()))?;
    Ok((lm, began.elapsed().as_secs_f64()))
}

/// The model `--gguf` names (default `$BCFL_LLM_GGUF`).
pub(crate) fn gguf_path(gguf: Option<&Path>) -> anyhow::Result<&Path> {
    gguf.with_context(|| format!("no model: pass --gguf or set {GGUF_ENV}"))
}

/// PubMedQA PQA-L from the data directory `--data-dir` names (default `$BCFL_DATA_DIR`).
pub(crate) fn load_pubmedqa(data_dir: Option<&Path>) -> anyhow::Result<PubMedQa> {
    let data_dir = data_dir.context("no data directory: pass --data-dir or set BCFL_DATA_DIR")?;
    Ok(PubMedQa::load(&data_dir.join(pubmedqa::DIR))?)
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        storage: StorageArgs,
    }

    #[test]
    fn keep_quantized_asks_for_quantized_storage() {
        let storage = |args: &[&str]| {
            Cli::parse_from(std::iter::once("x").chain(args.iter().copied()))
                .storage
                .storage()
        };
        assert_eq!(storage(&[]), WeightStorage::F32);
        assert_eq!(storage(&["--keep-quantized"]), WeightStorage::Quantized);
    }
}
