//! `bcfl llm eval --task pubmedqa`: scores a model (GGUF file or checkpoint directory) on
//! PubMedQA PQA-L ([`bcfl_client::llm::pubmedqa`]): one forward pass per question, the answer
//! the likeliest of `yes`, `no` and `maybe` as the next token.

use std::collections::HashSet;
use std::fs::File;
use std::io::{BufWriter, Write as _};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context as _};
use bcfl_client::llm::adapter::Adapter;
use bcfl_client::llm::pubmedqa::{
    majority_baseline, random_subset, scores, Answer, AnswerLogProbs, Prediction, PromptEncoder,
    PubMedQa, Question, Split,
};
use bcfl_client::llm::GGUF_ENV;
use clap::{Args, ValueEnum};
use serde::Serialize;

/// A benchmark `bcfl llm eval` runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Task {
    /// PubMedQA PQA-L (data/pubmedqa): yes, no or maybe to a research question on an abstract.
    Pubmedqa,
}

/// `bcfl llm eval`: scores a model on a benchmark.
#[derive(Debug, Clone, Args)]
pub(crate) struct EvalArgs {
    /// The benchmark.
    #[arg(long, value_enum)]
    task: Task,
    /// The model: a GGUF file, or a Hugging Face checkpoint directory (config.json,
    /// model.safetensors or its shards, tokenizer.json); SmolLM2-135M-Instruct's GGUF file by
    /// default, through scripts/env.sh.
    #[arg(long, env = GGUF_ENV, value_name = "PATH")]
    gguf: Option<PathBuf>,
    /// Data directory holding pubmedqa/ (scripts/env.sh sets BCFL_DATA_DIR to the repository's
    /// data/).
    #[arg(long, env = "BCFL_DATA_DIR", value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Trained adapters to put on the model first: a folder written by `bcfl fl simulate
    /// --save-adapter` (refused unless they were trained on this --gguf).
    #[arg(long, value_name = "DIR")]
    adapter: Option<PathBuf>,
    /// Side of the official split: the 500 questions of test_ground_truth.json, or the others.
    #[arg(long, value_enum, default_value_t = Split::Test)]
    split: Split,
    /// Only these questions: a file of PubMed ids, one a line (each must be in --split).
    #[arg(long, value_name = "FILE")]
    ids: Option<PathBuf>,
    /// Only N questions, drawn at random with --seed (after --ids).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    limit: Option<u32>,
    /// Seed of the --limit draw.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Where to write one JSON line per question: {"pmid","gold","pred","lp":{"yes","no","maybe"}}.
    #[arg(long, value_name = "OUT.jsonl")]
    predictions: PathBuf,
    /// Add each prompt's token ids to its line ("tokens"), for bench/llama_reference.py.
    #[arg(long)]
    with_tokens: bool,
    #[command(flatten)]
    storage: super::StorageArgs,
}

/// The scores of always giving one answer.
#[derive(Debug, Serialize)]
struct Baseline {
    answer: Answer,
    accuracy: f64,
    macro_f1: f64,
}

/// What `bcfl --json llm eval` prints.
#[derive(Debug, Serialize)]
struct EvalReport {
    task: Task,
    /// The adapters applied, if any.
    adapter: Option<PathBuf>,
    split: Split,
    questions: usize,
    accuracy: f64,
    macro_f1: f64,
    /// The answers, in the order of the confusion matrix's rows and columns.
    labels: [Answer; 3],
    /// `confusion[gold][predicted]`.
    confusion: Vec<Vec<usize>>,
    majority: Baseline,
    prompt_tokens: usize,
    /// Prompts whose context was cut to fit the limit.
    prompts_cut: usize,
    max_prompt_tokens: usize,
    /// Whether the quantized matrices were kept quantized (`--keep-quantized`).
    keep_quantized: bool,
    /// Bytes held by the model's frozen weights.
    weight_bytes: i64,
    load_seconds: f64,
    seconds: f64,
    questions_per_second: f64,
    /// Seconds in the forward passes alone.
    forward_seconds: f64,
    forward_tokens_per_second: f64,
    threads: i32,
    predictions: PathBuf,
}

pub(crate) fn run(args: &EvalArgs, json: bool) -> anyhow::Result<()> {
    let Task::Pubmedqa = args.task;
    let data = super::load_pubmedqa(args.data_dir.as_deref())?;
    let questions = chosen_questions(&data, args)?;
    let (mut lm, load_seconds) = super::open_model(args.gguf.as_deref(), args.storage.storage())?;
    if let Some(dir) = &args.adapter {
        Adapter::read(dir)?
            .apply_to_file(lm.model_mut(), super::gguf_path(args.gguf.as_deref())?)?;
    }
    let encoder = PromptEncoder::new(lm.tokenizer())?;

    let file = File::create(&args.predictions)
        .with_context(|| format!("creating {}", args.predictions.display()))?;
    let mut out = BufWriter::new(file);
    let (mut predictions, mut prompt_tokens, mut prompts_cut) = (Vec::new(), 0, 0);
    let mut forward_seconds = 0.0;
    let began = Instant::now();
    for (i, question) in questions.iter().enumerate() {
        let prompt = encoder.prompt(question)?;
        let forward = Instant::now();
        let lp = AnswerLogProbs::of_prompt(lm.model(), &prompt.ids, encoder.answers())?;
        forward_seconds += forward.elapsed().as_secs_f64();
        prompt_tokens += prompt.ids.len();
        prompts_cut += usize::from(prompt.context_bytes_cut > 0);
        let mut prediction = Prediction::new(question, lp);
        if args.with_tokens {
            prediction.tokens = Some(prompt.ids);
        }
        serde_json::to_writer(&mut out, &prediction)?;
        writeln!(out)?;
        out.flush()
            .with_context(|| format!("writing {}", args.predictions.display()))?;
        predictions.push(prediction);
        if (i + 1) % 25 == 0 {
            tracing::info!(done = i + 1, of = questions.len(), "questions scored");
        }
    }
    let seconds = began.elapsed().as_secs_f64();

    let s = scores(&predictions);
    let gold: Vec<Answer> = questions.iter().map(|q| q.answer).collect();
    let (answer, majority) = majority_baseline(&gold);
    let report = EvalReport {
        task: args.task,
        adapter: args.adapter.clone(),
        split: args.split,
        questions: predictions.len(),
        accuracy: s.accuracy,
        macro_f1: s.macro_f1,
        labels: Answer::ALL,
        confusion: s.confusion,
        majority: Baseline {
            answer,
            accuracy: majority.accuracy,
            macro_f1: majority.macro_f1,
        },
        prompt_tokens,
        prompts_cut,
        max_prompt_tokens: encoder.max_tokens(),
        keep_quantized: lm.model().is_quantized(),
        weight_bytes: lm.model().weight_bytes(),
        load_seconds,
        seconds,
        questions_per_second: predictions.len() as f64 / seconds,
        forward_seconds,
        forward_tokens_per_second: prompt_tokens as f64 / forward_seconds,
        threads: bcfl_client::tch::get_num_threads(),
        predictions: args.predictions.clone(),
    };
    if json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print_report(&report);
    }
    Ok(())
}

/// The questions of `--split`, restricted by `--ids`, then drawn by `--limit`.
fn chosen_questions<'a>(data: &'a PubMedQa, args: &EvalArgs) -> anyhow::Result<Vec<&'a Question>> {
    let mut questions = data.split(args.split);
    if let Some(path) = &args.ids {
        let wanted = read_ids(path)?;
        let present: HashSet<&str> = questions.iter().map(|q| q.pmid.as_str()).collect();
        if let Some(missing) = wanted.iter().find(|id| !present.contains(id.as_str())) {
            bail!(
                "{}: PubMed id {missing} is not a question of the {} split",
                path.display(),
                split_name(args.split)
            );
        }
        questions.retain(|q| wanted.contains(&q.pmid));
    }
    if let Some(limit) = args.limit {
        let n = (limit as usize).min(questions.len());
        questions = random_subset(&questions, n, args.seed)?;
    }
    if questions.is_empty() {
        bail!("no questions to score");
    }
    Ok(questions)
}

/// The PubMed ids of a file, one a line (blank lines skipped).
fn read_ids(path: &Path) -> anyhow::Result<HashSet<String>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut ids = HashSet::new();
    for (n, line) in text.lines().enumerate() {
        let id = line.trim();
        if id.is_empty() {
            continue;
        }
        if !id.bytes().all(|b| b.is_ascii_digit()) {
            bail!("{}:{}: {id:?} is not a PubMed id", path.display(), n + 1);
        }
        ids.insert(id.to_owned());
    }
    Ok(ids)
}

fn split_name(split: Split) -> &'static str {
    match split {
        Split::Train => "train",
        Split::Test => "test",
    }
}

fn print_report(r: &EvalReport) {
    println!(
        "pubmedqa {}: {} questions, accuracy {:.3}, macro-F1 {:.3} (always \"{}\": {:.3} / {:.3})",
        split_name(r.split),
        r.questions,
        r.accuracy,
        r.macro_f1,
        r.majority.answer,
        r.majority.accuracy,
        r.majority.macro_f1
    );
    println!("confusion (rows gold, columns predicted):");
    println!("{:>8}{:>7}{:>7}{:>7}", "", "yes", "no", "maybe");
    for (answer, row) in r.labels.iter().zip(&r.confusion) {
        println!(
            "{:>8}{:>7}{:>7}{:>7}",
            answer.as_str(),
            row[0],
            row[1],
            row[2]
        );
    }
    println!(
        "{:.2} questions/s; forward passes {:.0} tokens/s ({} prompt tokens, {} cut to {}; {} \
         threads); model loaded in {:.1} s; predictions in {}",
        r.questions_per_second,
        r.forward_tokens_per_second,
        r.prompt_tokens,
        r.prompts_cut,
        r.max_prompt_tokens,
        r.threads,
        r.load_seconds,
        r.predictions.display()
    );
}
