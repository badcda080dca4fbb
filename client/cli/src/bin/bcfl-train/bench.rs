//! `bcfl fl bench`: the engine's benchmarks, printed as JSON.
//!
//! - **Training steps per second** of the model directory's BERT with LoRA at a fixed batch and
//!   sequence length (random token ids, full attention mask, AdamW with clipping), after warmup
//!   steps. `bench/train_steps.py` times the same model and batch in PyTorch for comparison
//!   (`bench/compare-training.sh` runs both alternately).
//! - **Aggregation throughput**: FedAvg over update files, in parameters per second on one core
//!   (aggregation is single-threaded), against memory-bandwidth references measured in the same
//!   run, over the same number of bytes: a vectorised sum of an in-memory buffer as large as all
//!   the inputs (`reference_parameters_per_second`, the goal's reference), and the same sum over
//!   the mapped update files themselves (`mapped_read_parameters_per_second`). Each is timed
//!   `--repeats` times, interleaved, and the medians are compared. The default inputs (8 members
//!   × 4 Mi parameters, 128 MiB) are larger than the caches of the machines we measured on.
//!   The figures mean something only from a release build (`"build"` in the output).
//! - **Update size**: bytes of the LoRA update (f32 and int8) against the full model's weights.

use std::time::{Duration, Instant};

use nix::time::{clock_gettime, ClockId};

use bcfl_client::tch::nn::{self, OptimizerConfig};
use bcfl_client::tch::{self, Device, Kind, Tensor};
use clap::Args;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use bcfl_client::train::checkpoint::{ModelDir, WEIGHTS};
use bcfl_client::train::lora::LoraConfig;
use bcfl_client::train::tensors::StoreTensors as _;
use bcfl_fed::aggregate::kernels::{self, View};
use bcfl_fed::aggregate::mapped::MappedUpdate;
use bcfl_fed::aggregate::{aggregate, Contribution, Rule};
use bcfl_fed::update::{Encoding, Update};

/// `bcfl fl bench` options.
#[derive(Clone, Debug, Args)]
pub(crate) struct BenchArgs {
    /// Directory of the pretrained BERT checkpoint (not needed with `--only aggregation`).
    #[arg(long, env = "BCFL_MODEL_DIR")]
    model_dir: Option<std::path::PathBuf>,
    /// Batch size of the training steps.
    #[arg(long, default_value_t = 16)]
    batch_size: i64,
    /// Sequence length of the training steps.
    #[arg(long, default_value_t = 128)]
    seq_len: i64,
    /// Timed training steps (after 2 warmup steps).
    #[arg(long, default_value_t = 10)]
    steps: usize,
    /// libtorch intra-op threads for training (default: libtorch's, from `OMP_NUM_THREADS`).
    #[arg(long)]
    threads: Option<i32>,
    /// Members in the aggregation benchmark.
    #[arg(long, default_value_t = 8)]
    members: usize,
    /// Parameters per update in the aggregation benchmark.
    #[arg(long, default_value_t = 1 << 22)]
    parameters: usize,
    /// Timed repetitions of the aggregation and of its references (medians are reported).
    #[arg(long, default_value_t = 5)]
    repeats: usize,
    /// Run one benchmark only (default: all three).
    #[arg(long, value_enum)]
    only: Option<Part>,
    /// Run on CUDA when available.
    #[arg(long)]
    cuda: bool,
}

/// One of the benchmarks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Part {
    /// Training steps per second.
    Training,
    /// FedAvg throughput against memory bandwidth.
    Aggregation,
    /// Update sizes.
    Sizes,
}

fn training(args: &BenchArgs, dir: &ModelDir) -> anyhow::Result<serde_json::Value> {
    if let Some(threads) = args.threads {
        tch::set_num_threads(threads);
    }
    let device = if args.cuda {
        Device::cuda_if_available()
    } else {
        Device::Cpu
    };
    let model = {
        let _generator = bcfl_client::train::seeded(0);
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

/// Wrapping sum of the little-endian `u32` words of `bytes`: a loop the compiler vectorises,
/// bound by how fast memory delivers the bytes.
fn sum_words(bytes: &[u8]) -> u32 {
    bytes.chunks_exact(4).fold(0u32, |s, w| {
        s.wrapping_add(u32::from_le_bytes([w[0], w[1], w[2], w[3]]))
    })
}

/// Median of timings (seconds).
fn median(seconds: impl Iterator<Item = f64>) -> f64 {
    let mut seconds: Vec<f64> = seconds.collect();
    seconds.sort_by(f64::total_cmp);
    let n = seconds.len();
    if n % 2 == 1 {
        seconds[n / 2]
    } else {
        (seconds[n / 2 - 1] + seconds[n / 2]) / 2.0
    }
}

/// Wall-clock and CPU seconds of one timed run. The CPU time is the thread's (user and system,
/// page faults included): unlike wall-clock time, it does not count the time the scheduler
/// gave the core to other processes, so it stays meaningful on a shared machine.
#[derive(Clone, Copy, Debug, serde::Serialize)]
struct Timing {
    wall: f64,
    cpu: f64,
}

fn thread_cpu() -> anyhow::Result<Duration> {
    Ok(clock_gettime(ClockId::CLOCK_THREAD_CPUTIME_ID)?.into())
}

/// Times `work`; its result is returned, to be dropped outside the timing.
fn timed<T>(work: impl FnOnce() -> anyhow::Result<T>) -> anyhow::Result<(Timing, T)> {
    let (wall, cpu) = (Instant::now(), thread_cpu()?);
    let value = std::hint::black_box(work()?);
    let cpu = (thread_cpu()? - cpu).as_secs_f64();
    let wall = wall.elapsed().as_secs_f64();
    Ok((Timing { wall, cpu }, value))
}

/// The 1-minute load average (Linux), to print beside figures taken on a shared machine.
pub(crate) fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Rates (parameters per second) and ratios from the medians of one clock's timings.
fn rates(elements: usize, [fedavg, memory, mapped]: [f64; 3]) -> serde_json::Value {
    let per_second = |seconds: f64| elements as f64 / seconds;
    serde_json::json!({
        "seconds": fedavg, "parameters_per_second_per_core": per_second(fedavg),
        "reference_parameters_per_second": per_second(memory), "ratio": memory / fedavg,
        "mapped_read_parameters_per_second": per_second(mapped),
        "ratio_to_mapped_read": mapped / fedavg,
    })
}

fn aggregation(args: &BenchArgs) -> anyhow::Result<serde_json::Value> {
    anyhow::ensure!(
        args.members > 0 && args.parameters > 0 && args.repeats > 0,
        "--members, --parameters and --repeats must be positive"
    );
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
    let elements = args.members * args.parameters;
    // The in-memory reference: as many bytes as the inputs' values, written before timing so
    // that no page is faulted in while timed.
    let buffer: Vec<u8> = (0..4 * elements).map(|i| i as u8).collect();
    let load = load_average();
    let mut timings: [Vec<Timing>; 3] = Default::default();
    for _ in 0..args.repeats {
        let (t, result) = timed(|| Ok(aggregate(inputs.clone(), Rule::FedAvg)?))?;
        timings[0].push(t);
        drop(result);
        timings[1].push(timed(|| Ok(sum_words(&buffer)))?.0);
        timings[2].push(
            timed(|| {
                let mut sum = 0u32;
                for input in &inputs {
                    let file = MappedUpdate::open(&input.path)?;
                    if let View::F32(bytes) = file.view("w")? {
                        sum = sum.wrapping_add(sum_words(bytes));
                    }
                }
                Ok(sum)
            })?
            .0,
        );
    }
    let medians =
        |clock: fn(&Timing) -> f64| timings.each_ref().map(|t| median(t.iter().map(clock)));
    let mut report = rates(elements, medians(|t| t.wall));
    let fields = report.as_object_mut().expect("rates are an object");
    for (key, value) in serde_json::json!({
        "rule": "fedavg", "members": args.members, "parameters": args.parameters,
        "input_bytes": 4 * elements, "repeats": args.repeats,
        "build": if cfg!(debug_assertions) { "debug" } else { "release" },
        "kernel": kernels::simd_level(), "load_average": load,
        "reference": "vectorised u32 sum of an in-memory buffer of the inputs' size",
        "cpu_time": rates(elements, medians(|t| t.cpu)),
        "timings": {"fedavg": timings[0], "memory_reference": timings[1],
                    "mapped_read": timings[2]},
    })
    .as_object()
    .expect("an object")
    {
        fields.insert(key.clone(), value.clone());
    }
    Ok(report)
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

/// Runs the benchmarks (all, or `--only` one) and prints one JSON object.
pub(crate) fn run(args: &BenchArgs) -> anyhow::Result<()> {
    let wanted = |part| args.only.is_none_or(|only| only == part);
    let dir = match args.only {
        Some(Part::Aggregation) => None,
        _ => {
            let path = args.model_dir.as_ref().ok_or_else(|| {
                anyhow::anyhow!(
                    "--model-dir (or BCFL_MODEL_DIR) is needed but for --only aggregation"
                )
            })?;
            Some(ModelDir::open(path, None)?)
        }
    };
    let mut report = serde_json::Map::new();
    if let Some(dir) = dir.as_ref().filter(|_| wanted(Part::Sizes)) {
        report.insert("update_size".into(), sizes(dir)?);
    }
    if wanted(Part::Aggregation) {
        report.insert("aggregation".into(), aggregation(args)?);
    }
    if let Some(dir) = dir.as_ref().filter(|_| wanted(Part::Training)) {
        report.insert("training".into(), training(args, dir)?);
    }
    println!("{}", serde_json::Value::Object(report));
    Ok(())
}
