//! Federated fine-tuning of the decoder: `bcfl fl simulate --model smollm2 --task pubmedqa`
//! (the options of [`DecoderArgs`], flattened into `fl simulate`'s) and `bcfl llm train-speed`
//! (tokens per second of a training step, whole model against the cached frozen prefix).
//!
//! The decoder's members go through the same simulation as BERT's
//! ([`crate::train::run_simulation`]): one [`DecoderMember`] per partition of the 500 PubMedQA
//! training questions (`--partition iid|dirichlet`), FedAvg (or any `--rule`) of their adapters,
//! the global model scored each round by the first member on a fixed random subset of the test
//! questions (`--eval-questions`, drawn with `--seed`). The LoRA flags are `fl simulate`'s
//! (`--lora-rank`, `--lora-alpha`, `--lora-dropout`, `--lora-targets`, which also take `gate`,
//! `up`, `down`), with `--lora-top-layers K` in place of `--lora-from-layer`; `--preset
//! flowertune` sets rank 32, alpha 64, query and value, and a learning rate falling by a cosine
//! from 5e-5 to 1e-6 across rounds. `--balance-answers` weighs each question's loss so that
//! yes, no and maybe count the same in a shard. `--validation F` scores each round on that
//! fraction of the training questions, held out from training, instead of the test split, to choose settings;
//! `--save-adapter DIR` keeps the last global adapters for `bcfl llm eval --adapter DIR`.
//! The simulation trains every member every round: sampling a
//! fraction of the members per round is not supported by the round library.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Args, ValueEnum};
use serde::Serialize;

use bcfl_client::llm::adapter::Adapter;
use bcfl_client::llm::config::LlamaConfig;
use bcfl_client::llm::finetune::{step_speed, FinetuneConfig, QaSet};
use bcfl_client::llm::lora::{LlamaLora, UpdateSize};
use bcfl_client::llm::model::WeightStorage;
use bcfl_client::llm::pubmedqa::{self, PromptEncoder, MAX_PROMPT_TOKENS};
use bcfl_client::llm::GGUF_ENV;
use bcfl_client::round::decoder::{DecoderMember, DecoderSchedule, SharedDecoder};
use bcfl_client::round::model::DecoderRecipe;
use bcfl_client::round::simulation::SimulatedMember;
use bcfl_client::train::lora::LoraConfig;
use bcfl_client::train::split::Partition;
use bcfl_client::train::tensors::StoreTensors as _;
use bcfl_fed::update::Update;

use crate::train::{run_simulation, Base, LoraArgs, SimulateArgs};

/// The model `fl simulate` trains.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum ModelChoice {
    /// all-MiniLM-L6-v2 with LoRA and a classification head (--model-dir).
    Bert,
    /// SmolLM2-135M-Instruct with LoRA, answering in one token (--gguf).
    Smollm2,
}

/// The task `fl simulate` trains on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum Task {
    /// Labelled texts (--data or the Medical Abstracts corpus): BERT's task.
    Abstracts,
    /// PubMedQA PQA-L (pubmedqa/ in --data-dir): the decoder's task.
    Pubmedqa,
}

/// A preset of the decoder's adapters and schedule.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum Preset {
    /// FlowerTune LLM Leaderboard: rank 32, alpha 64, query and value, cosine LR 5e-5 → 1e-6,
    /// a tenth of the members drawn each round (at least one).
    Flowertune,
}

/// The decoder's options of `bcfl fl simulate`.
#[derive(Clone, Debug, Args)]
pub(crate) struct DecoderArgs {
    /// The model.
    #[arg(long, value_enum, default_value_t = ModelChoice::Bert)]
    pub(crate) model: ModelChoice,
    /// The task (default: abstracts for bert, pubmedqa for smollm2).
    #[arg(long, value_enum)]
    task: Option<Task>,
    /// The decoder of --model smollm2: a GGUF file or a Hugging Face checkpoint directory
    /// (SmolLM2-135M-Instruct's GGUF file by default, through scripts/env.sh).
    #[arg(long, env = GGUF_ENV, value_name = "PATH")]
    gguf: Option<PathBuf>,
    #[command(flatten)]
    pub(crate) recipe: RecipeArgs,
    /// Test questions the global model is scored on each round (a fixed random subset).
    #[arg(long, default_value_t = 100)]
    eval_questions: usize,
    /// Write the last global adapters into DIR (adapter_config.json and
    /// adapter_model.safetensors), for `bcfl llm eval --adapter DIR`.
    #[arg(long, value_name = "DIR")]
    save_adapter: Option<PathBuf>,
    /// Use only N of the 500 training questions (a random subset, for short runs).
    #[arg(long)]
    train_questions: Option<usize>,
}

/// How members fine-tune the decoder (`fl simulate --model smollm2` and `model init --model
/// smollm2`): a [`DecoderRecipe`] with the LoRA flags, the learning rate and the rounds.
#[derive(Clone, Debug, Args)]
pub(crate) struct RecipeArgs {
    /// Adapters and schedule of a known setup (overrides --lora-rank, --lora-alpha,
    /// --lora-targets, --lr and --lr-min).
    #[arg(long, value_enum)]
    preset: Option<Preset>,
    /// Adapters on the top K layers only (0: all); the states below are cached per question.
    #[arg(long, default_value_t = 0)]
    lora_top_layers: i64,
    /// Optimiser steps per member per round (of --batch-size questions).
    #[arg(long, default_value_t = 10)]
    local_steps: usize,
    /// Longest training prompt in tokens (the context's tail is cut; scoring uses 511).
    #[arg(long, default_value_t = 256)]
    max_prompt_tokens: usize,
    /// Weigh each training question's loss so that every answer (yes, no, maybe) counts the
    /// same in a member's shard.
    #[arg(long)]
    balance_answers: bool,
    /// The last round's learning rate (--lr is round 1's; cosine in between).
    #[arg(long, default_value_t = 1e-6)]
    lr_min: f64,
}

/// What a recipe needs besides [`RecipeArgs`].
pub(crate) struct RecipeInputs<'a> {
    pub(crate) lora: &'a LoraArgs,
    pub(crate) rounds: u64,
    pub(crate) lr: f64,
    pub(crate) batch_size: usize,
    pub(crate) weight_decay: f64,
    pub(crate) max_grad_norm: f64,
}

impl RecipeArgs {
    /// The adapters: the preset's or the flags', on the top --lora-top-layers layers.
    fn lora(&self, flags: &LoraConfig, depth: &LlamaConfig) -> LoraConfig {
        let lora = match self.preset {
            Some(Preset::Flowertune) => LlamaLora::flowertune(),
            None => flags.clone(),
        };
        LlamaLora::for_top_layers(lora, depth, self.lora_top_layers)
    }

    /// The share of the members drawn to train each round, ppm, when the preset sets one
    /// (FlowerTune samples a tenth of its clients); `None`: every member.
    pub(crate) fn sample_ppm(&self) -> Option<u32> {
        self.preset.map(|Preset::Flowertune| 100_000)
    }

    /// Round 1's and the last round's learning rates.
    fn learning_rates(&self, lr: f64) -> (f64, f64) {
        match self.preset {
            Some(Preset::Flowertune) => (5e-5, 1e-6),
            None => (lr, self.lr_min),
        }
    }

    /// The recipe for a decoder of `depth`.
    pub(crate) fn recipe(&self, inputs: &RecipeInputs<'_>, depth: &LlamaConfig) -> DecoderRecipe {
        let (max_learning_rate, min_learning_rate) = self.learning_rates(inputs.lr);
        DecoderRecipe {
            lora: self.lora(&inputs.lora.config(0), depth),
            local: FinetuneConfig {
                steps: self.local_steps,
                batch_size: inputs.batch_size,
                weight_decay: inputs.weight_decay,
                max_grad_norm: inputs.max_grad_norm,
                max_prompt_tokens: self.max_prompt_tokens,
                balance_answers: self.balance_answers,
            },
            schedule: DecoderSchedule {
                rounds: inputs.rounds,
                max_learning_rate,
                min_learning_rate,
            },
        }
    }
}

impl DecoderArgs {
    /// Refuses a task the model does not train on.
    pub(crate) fn check_task(&self, default: Task) -> anyhow::Result<()> {
        let task = self.task.unwrap_or(default);
        let expected = match self.model {
            ModelChoice::Bert => Task::Abstracts,
            ModelChoice::Smollm2 => Task::Pubmedqa,
        };
        anyhow::ensure!(
            task == expected,
            "--model {:?} trains on --task {expected:?}, not {task:?}",
            self.model
        );
        Ok(())
    }
}

/// What `--json fl simulate --model smollm2` adds to the simulation's output.
#[derive(Debug, Serialize)]
struct DecoderRun {
    lora: LoraConfig,
    local: FinetuneConfig,
    schedule: DecoderSchedule,
    trainable_parameters: i64,
    update_size: UpdateSize,
    train_questions: usize,
    eval_questions: usize,
    prefix_cache_bytes: usize,
    prefix_cache_seconds: f64,
}

/// `bcfl fl simulate --model smollm2 --task pubmedqa`.
pub(crate) async fn simulate(args: &SimulateArgs, json: bool) -> anyhow::Result<()> {
    let decoder = &args.decoder;
    decoder.check_task(Task::Pubmedqa)?;
    let mut config = args.simulation()?;
    if let (None, Some(ppm)) = (args.sample_fraction, decoder.recipe.sample_ppm()) {
        config.sample_fraction = bcfl_client::fixed::ppm_to_f64(ppm);
    }
    if let Partition::Specialty { .. } = config.partition {
        anyhow::bail!("PubMedQA is partitioned iid or dirichlet (by answer)");
    }
    let data = super::load_pubmedqa(args.data.data_dir.as_deref())?;
    let seed = args.optim.seed;
    let (train_all, test, scored) = match args.optim.validation {
        f if f > 0.0 => {
            let all = data.train();
            let n = (f * all.len() as f64).round() as usize;
            let (rest, held) = pubmedqa::hold_out(&all, n, seed)?;
            (rest, held, "validation")
        }
        _ => (
            data.train(),
            pubmedqa::random_subset(&data.test(), decoder.eval_questions, seed)?,
            "test",
        ),
    };
    let train = match decoder.train_questions {
        Some(n) => pubmedqa::random_subset(&train_all, n, seed)?,
        None => train_all,
    };
    let shards = pubmedqa::partition(&train, config.clients, config.partition, seed)?;

    let path = super::gguf_path(decoder.gguf.as_deref())?;
    let base_sha256 = bcfl_client::llm::model_sha256(path)
        .with_context(|| format!("hashing {}", path.display()))?;
    let (mut model, tokenizer) = super::open_model(Some(path), WeightStorage::F32)?
        .0
        .into_parts();
    let DecoderRecipe {
        lora,
        local,
        schedule,
    } = decoder.recipe.recipe(
        &RecipeInputs {
            lora: &args.model.lora,
            rounds: config.rounds as u64,
            lr: args.optim.lr,
            batch_size: args.optim.batch_size,
            weight_decay: args.optim.weight_decay,
            max_grad_norm: args.optim.max_grad_norm,
        },
        model.config(),
    );
    {
        let _generator = bcfl_client::train::seeded(seed);
        model.attach_lora(lora.clone())?;
    }
    let update_size = UpdateSize::new(model.config(), &lora);
    let adapters = model.adapters().expect("attached");
    let trainable_parameters = adapters.parameters();
    let initial = Update::from_store(adapters.store())?;

    let train_encoder = PromptEncoder::new(&tokenizer)?.with_max_tokens(local.max_prompt_tokens);
    let test_encoder = PromptEncoder::new(&tokenizer)?.with_max_tokens(MAX_PROMPT_TOKENS);
    let (mut cache_bytes, mut cache_seconds) = (0, 0.0);
    let mut encode = |encoder: &PromptEncoder, questions: &[&pubmedqa::Question]| {
        let mut set = QaSet::encode(encoder, questions)?;
        cache_seconds += match &args.model.prefix_cache {
            Some(dir) => set.cache_prefix_in(&model, &base_sha256, dir)?,
            None => set.cache_prefix(&model)?,
        };
        cache_bytes += set.prefix_bytes();
        anyhow::Ok(set)
    };
    let test_set = encode(&test_encoder, &test)?;
    let shard_sets = shards
        .iter()
        .map(|shard| encode(&train_encoder, shard))
        .collect::<anyhow::Result<Vec<_>>>()?;
    eprintln!(
        "SmolLM2 + LoRA r={} alpha={} on {:?}, layers {}..{}: {trainable_parameters} trainable parameters, updates of {} bytes (f32) / {} (int8) against {} for the model; {} training questions over {} members, {} test questions; prefix cache {:.0} MB in {:.0} s",
        lora.rank,
        lora.alpha,
        lora.targets,
        lora.from_layer,
        model.config().block_count,
        update_size.f32_bytes,
        update_size.int8_bytes,
        update_size.model_f32_bytes,
        train.len(),
        config.clients,
        test.len(),
        cache_bytes as f64 / 1e6,
        cache_seconds
    );
    config.local.learning_rate = schedule.max_learning_rate;
    let answers = *test_encoder.answers();
    let shared = SharedDecoder::new(model, answers)?.shared();
    let mut test_set = Some(test_set);
    let members = shard_sets
        .into_iter()
        .enumerate()
        .map(|(i, shard)| {
            Ok(SimulatedMember {
                name: format!("client-{i:03}"),
                max_samples: shard.len() as u64,
                trainer: Box::new(DecoderMember::new(
                    shared.clone(),
                    shard,
                    test_set.take(),
                    local.clone(),
                    schedule.clone(),
                )?),
                attack: None,
                slowdown: 0.0,
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let base = Base {
        model_id: path.display().to_string(),
        sha256: base_sha256.clone(),
    };
    let description = format!(
        "bcfl fl simulate --model smollm2: {} rounds, {} members ({:?}), {} training questions",
        config.rounds,
        config.clients,
        config.partition,
        train.len()
    );
    let extra = serde_json::to_value(DecoderRun {
        lora: lora.clone(),
        local,
        schedule,
        trainable_parameters,
        update_size,
        train_questions: train.len(),
        eval_questions: test.len(),
        prefix_cache_bytes: cache_bytes,
        prefix_cache_seconds: cache_seconds,
    })?;
    let outcome = run_simulation(&config, base, initial, members, scored, extra, json).await?;
    if let Some(dir) = &decoder.save_adapter {
        Adapter::write(dir, &lora, &base_sha256, &description, &outcome.global)?;
        eprintln!("adapters written to {}", dir.display());
    }
    Ok(())
}

/// `bcfl llm train-speed`: tokens per second of a training step on PubMedQA questions, running
/// the whole model each step against reading the frozen prefix's cached states.
#[derive(Debug, Clone, Args)]
pub(crate) struct SpeedArgs {
    /// The model: a GGUF file or a Hugging Face checkpoint directory (SmolLM2-135M-Instruct's
    /// GGUF file by default, through scripts/env.sh).
    #[arg(long, env = GGUF_ENV, value_name = "PATH")]
    gguf: Option<PathBuf>,
    /// Data directory holding pubmedqa/.
    #[arg(long, env = "BCFL_DATA_DIR", value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Adapters on the top K layers (FlowerTune's rank, alpha and targets).
    #[arg(long, default_value_t = 2)]
    lora_top_layers: i64,
    /// Training questions used (drawn at random with --seed).
    #[arg(long, default_value_t = 8)]
    questions: usize,
    /// Steps timed each way.
    #[arg(long, default_value_t = 4)]
    steps: usize,
    /// Questions per step.
    #[arg(long, default_value_t = 2)]
    batch_size: usize,
    /// Longest training prompt in tokens.
    #[arg(long, default_value_t = 256)]
    max_prompt_tokens: usize,
    /// Seed.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Add the prompts' token ids and answer ids to the JSON ("prompts"), for
    /// bench/llama_reference.py --train-steps.
    #[arg(long)]
    with_tokens: bool,
}

/// Runs `bcfl llm train-speed`.
pub(crate) fn train_speed(args: &SpeedArgs, json: bool) -> anyhow::Result<()> {
    let data = super::load_pubmedqa(args.data_dir.as_deref())?;
    let questions = pubmedqa::random_subset(&data.train(), args.questions, args.seed)?;
    let (mut model, tokenizer) = super::open_model(args.gguf.as_deref(), WeightStorage::F32)?
        .0
        .into_parts();
    let lora = LlamaLora::for_top_layers(
        LlamaLora::flowertune(),
        model.config(),
        args.lora_top_layers,
    );
    {
        let _generator = bcfl_client::train::seeded(args.seed);
        model.attach_lora(lora)?;
    }
    let encoder = PromptEncoder::new(&tokenizer)?.with_max_tokens(args.max_prompt_tokens);
    let mut set = QaSet::encode(&encoder, &questions)?;
    let config = FinetuneConfig {
        steps: args.steps,
        batch_size: args.batch_size,
        max_prompt_tokens: args.max_prompt_tokens,
        ..FinetuneConfig::default()
    };
    let speed = step_speed(&model, &mut set, encoder.answers(), &config, args.seed)?;
    if json {
        let mut out = serde_json::json!({"questions": set.len(), "prompt_tokens": set.tokens(),
            "batch_size": args.batch_size, "max_prompt_tokens": args.max_prompt_tokens,
            "steps": args.steps, "lora_top_layers": args.lora_top_layers,
            "threads": bcfl_client::tch::get_num_threads(), "speed": speed});
        if args.with_tokens {
            let prompts = questions
                .iter()
                .map(|q| {
                    Ok(serde_json::json!({"ids": encoder.prompt(q)?.ids,
                        "answer": encoder.answer_id(q.answer)}))
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            out["prompts"] = serde_json::Value::Array(prompts);
        }
        println!("{out}");
    } else {
        println!(
            "{} questions ({} prompt tokens), top {} of {} layers adapted: whole model {:.0} tokens/s, cached prefix {:.0} tokens/s ({:.1}x; cache built in {:.1} s)",
            set.len(),
            set.tokens(),
            model.config().block_count - speed.frozen_layers,
            model.config().block_count,
            speed.full_tokens_per_second,
            speed.cached_tokens_per_second,
            speed.speedup,
            speed.cache_seconds
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        decoder: DecoderArgs,
    }

    fn parse(args: &[&str]) -> DecoderArgs {
        Cli::parse_from(std::iter::once("x").chain(args.iter().copied())).decoder
    }

    #[test]
    fn each_model_trains_on_its_task() {
        assert!(parse(&[]).check_task(Task::Abstracts).is_ok());
        assert!(parse(&["--model", "smollm2"])
            .check_task(Task::Pubmedqa)
            .is_ok());
        assert!(parse(&["--model", "smollm2", "--task", "abstracts"])
            .check_task(Task::Pubmedqa)
            .is_err());
        assert!(parse(&["--task", "pubmedqa"])
            .check_task(Task::Abstracts)
            .is_err());
    }

    #[derive(Parser)]
    struct RecipeCli {
        #[command(flatten)]
        recipe: RecipeArgs,
        #[command(flatten)]
        lora: LoraArgs,
    }

    fn recipe(args: &[&str]) -> DecoderRecipe {
        let cli = RecipeCli::parse_from(std::iter::once("x").chain(args.iter().copied()));
        let smollm2 = LlamaConfig {
            block_count: 30,
            ..LlamaConfig::tiny(10)
        };
        let inputs = RecipeInputs {
            lora: &cli.lora,
            rounds: 10,
            lr: 1e-3,
            batch_size: 4,
            weight_decay: 0.01,
            max_grad_norm: 1.0,
        };
        cli.recipe.recipe(&inputs, &smollm2)
    }

    #[test]
    fn the_flowertune_preset_sets_the_adapters_and_the_schedule() {
        let preset = recipe(&["--preset", "flowertune", "--lora-rank", "4"]);
        let lora = &preset.lora;
        assert_eq!((lora.rank, lora.alpha, lora.from_layer), (32, 64.0, 0));
        assert_eq!(lora.targets, ["query", "value"]);
        let s = &preset.schedule;
        assert_eq!(
            (s.rounds, s.max_learning_rate, s.min_learning_rate),
            (10, 5e-5, 1e-6)
        );
        let sampled = |args: &[&str]| {
            RecipeCli::parse_from(std::iter::once("x").chain(args.iter().copied()))
                .recipe
                .sample_ppm()
        };
        assert_eq!(sampled(&["--preset", "flowertune"]), Some(100_000));
        assert_eq!(sampled(&[]), None);

        let top = recipe(&[
            "--lora-top-layers",
            "2",
            "--lr-min",
            "1e-5",
            "--lora-rank",
            "16",
            "--lora-targets",
            "query,down",
            "--local-steps",
            "7",
            "--balance-answers",
        ]);
        assert_eq!((top.lora.from_layer, top.lora.rank), (28, 16));
        assert_eq!(top.lora.targets, ["query", "down"]);
        let s = &top.schedule;
        assert_eq!((s.max_learning_rate, s.min_learning_rate), (1e-3, 1e-5));
        assert_eq!((top.local.steps, top.local.batch_size), (7, 4));
        assert!(top.local.balance_answers);
    }
}
