//! `bcfl fl bench`: the engine's benchmarks, printed as JSON.
//!
//! - **Training steps per second** of the model directory's BERT with LoRA at a fixed batch and
//!   sequence length (random token ids, full attention mask, AdamW with clipping), after warmup
//!   steps. `bench/train_steps.py` times the same model and batch in PyTorch for comparison.
//! - **Aggregation throughput**: FedAvg over update files, in parameters per second on one core,
//!   against a memory-bandwidth reference measured in the same run (summing an `f32` buffer as
//!   large as all the inputs together).
//! - **Update size**: bytes of the LoRA update (f32 and int8) against the full model's weights.

use std::time::Instant;

use clap::Args;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tch::nn::{self, OptimizerConfig};
use tch::{Device, Kind, Tensor};

use super::aggregate::{aggregate, Contribution, Rule};
use super::checkpoint::{ModelDir, WEIGHTS};
use super::lora::LoraConfig;
use super::update::{Encoding, Update};

/// `bcfl fl bench` options.
#[derive(Clone, Debug, Args)]
pub struct BenchArgs {
    /// Directory of the pretrained BERT checkpoint.
    #[arg(long, env = "BCFL_MODEL_DIR")]
    model_dir: std::path::PathBuf,
    /// Batch size of the training steps.
    #[arg(long, default_value_t = 16)]
    batch_size: i64,
    /// Sequence length of the training steps.
    #[arg(long, default_value_t = 128)]
    seq_len: i64,
    /// Timed training steps (after 2 warmup steps).
    #[arg(long, default_value_t = 10)]
    steps: usize,
    /// Members in the aggregation benchmark.
    #[arg(long, default_value_t = 8)]
    members: usize,
    /// Parameters per update in the aggregation benchmark.
    #[arg(long, default_value_t = 1 << 20)]
    parameters: usize,
    /// Run on CUDA when available.
    #[arg(long)]
    cuda: bool,
}

fn training(args: &BenchArgs, dir: &ModelDir) -> anyhow::Result<serde_json::Value> {
    let device = if args.cuda {
        Device::cuda_if_available()
    } else {
        Device::Cpu
    };
    let model = {
        let _generator = super::seeded(0);
        dir.classifier(5, &LoraConfig::default(), device)?
    };
    let shape = [args.batch_size, args.seq_len];
    let ids = Tensor::randint(dir.config().vocab_size, shape, (Kind::Int64, device));
    let mask = Tensor::ones(shape, (Kind::Int64, device));
    let labels = Tensor::randint(5, [args.batch_size], (Kind::Int64, device));
    let mut optimizer = nn::AdamW::default().build(model.trainable(), 1e-3)?;
    let mut step = || {
        let loss = model
            .forward_t(&ids, &mask, true)
            .cross_entropy_for_logits(&labels);
        optimizer.zero_grad();
        loss.backward();
        optimizer.clip_grad_norm(1.0);
        optimizer.step();
        f64::try_from(&loss)
    };
    for _ in 0..2 {
        step()?;
    }
    let started = Instant::now();
    for _ in 0..args.steps {
        step()?;
    }
    let seconds = started.elapsed().as_secs_f64();
    Ok(serde_json::json!({
        "batch_size": args.batch_size, "seq_len": args.seq_len, "steps": args.steps,
        "seconds": seconds, "steps_per_second": args.steps as f64 / seconds,
        "device": format!("{device:?}"), "threads": tch::get_num_threads(),
        "trainable_parameters": model.trainable_parameters(),
    }))
}

fn aggregation(args: &BenchArgs) -> anyhow::Result<serde_json::Value> {
    let work = tempfile::tempdir()?;
    let mut rng = StdRng::seed_from_u64(1);
    let mut inputs = Vec::with_capacity(args.members);
    for m in 0..args.members {
        let values: Vec<f32> = (0..args.parameters)
            .map(|_| rng.gen_range(-1.0..1.0))
            .collect();
        let mut update = Update::default();
        update
            .tensors
            .insert("w".into(), (vec![args.parameters], values));
        let path = work.path().join(format!("m{m}.safetensors"));
        std::fs::write(&path, update.to_bytes(Encoding::F32))?;
        inputs.push(Contribution {
            member: format!("m{m:03}"),
            path,
            samples: 100 + m as u64,
        });
    }
    let started = Instant::now();
    let result = aggregate(inputs, Rule::FedAvg)?;
    let seconds = started.elapsed().as_secs_f64();
    let elements = args.members * args.parameters;
    // Reference: one pass summing a buffer as large as all the inputs.
    let buffer: Vec<f32> = (0..elements).map(|i| (i % 7) as f32).collect();
    let reference_started = Instant::now();
    let sum: f64 = buffer.iter().map(|&x| f64::from(x)).sum();
    let reference_seconds = reference_started.elapsed().as_secs_f64();
    std::hint::black_box((sum, result));
    let rate = elements as f64 / seconds;
    let reference = elements as f64 / reference_seconds;
    Ok(serde_json::json!({
        "rule": "fedavg", "members": args.members, "parameters": args.parameters,
        "seconds": seconds, "parameters_per_second_per_core": rate,
        "reference_parameters_per_second": reference, "ratio": rate / reference,
    }))
}

fn sizes(dir: &ModelDir) -> anyhow::Result<serde_json::Value> {
    let model = dir.classifier(5, &LoraConfig::default(), Device::Cpu)?;
    let update = Update::from_store(model.trainable())?;
    let full = std::fs::metadata(dir.path().join(WEIGHTS))?.len();
    let f32_bytes = update.to_bytes(Encoding::F32).len();
    let int8_bytes = update.to_bytes(Encoding::Int8).len();
    Ok(serde_json::json!({
        "lora_parameters": update.parameters(), "lora_f32_bytes": f32_bytes,
        "lora_int8_bytes": int8_bytes, "full_model_bytes": full,
        "full_over_lora_f32": full as f64 / f32_bytes as f64,
    }))
}

/// Runs the benchmarks and prints one JSON object.
pub fn run(args: &BenchArgs) -> anyhow::Result<()> {
    let dir = ModelDir::open(&args.model_dir, None)?;
    let report = serde_json::json!({
        "update_size": sizes(&dir)?,
        "aggregation": aggregation(args)?,
        "training": training(args, &dir)?,
    });
    println!("{report}");
    Ok(())
}
