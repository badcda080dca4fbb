//! The demo's model and data: the base model every member fine-tunes (all-MiniLM-L6-v2 from
//! `$BCFL_MODEL_DIR`, or with `--tiny` a small randomly initialised BERT built in code), the
//! held-out test set and the members' training shards.
//!
//! One [`Engine`] serves every member in turn: members train one after another (the CPU is the
//! shared resource), each starting from the global model it verified itself.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::Serialize;
use tch::Device;

use crate::train::bert::{BertClassifier, BertConfig};
use crate::train::checkpoint::{file_sha256, ModelDir, WEIGHTS};
use crate::train::data::Dataset;
use crate::train::lora::LoraConfig;
use crate::train::split::{leakage, partition, train_test_split, Partition};
use crate::train::tokenize::TextEncoder;

/// Vocabulary size of the `--tiny` model's word-level tokenizer.
pub const TINY_VOCAB: usize = 2000;

/// The model members fine-tune and the tokenizer in front of it.
pub struct Engine {
    /// The classifier: frozen base, trainable adapters and head.
    pub model: BertClassifier,
    /// Its tokenizer.
    pub encoder: TextEncoder,
    /// SHA-256 of the base weights file (the consortium's `base_model_sha256`).
    pub base_sha256: String,
    /// The base weights file.
    pub base_path: PathBuf,
    /// What the model is, for the report.
    pub description: String,
}

impl Engine {
    /// all-MiniLM-L6-v2 (or any BERT directory) with fresh adapters and head drawn from `seed`.
    pub fn pretrained(
        model_dir: &Path,
        labels: usize,
        max_len: usize,
        seed: u64,
    ) -> anyhow::Result<Self> {
        let dir = ModelDir::open(model_dir, None)
            .with_context(|| format!("opening the model directory {}", model_dir.display()))?;
        let model = {
            let _generator = crate::train::seeded(seed);
            dir.classifier(labels as i64, &LoraConfig::default(), Device::Cpu)?
        };
        let encoder = dir.encoder(max_len)?;
        Ok(Self {
            description: format!(
                "{} (LoRA rank {}, {} trainable parameters)",
                dir.path().display(),
                model.lora().rank,
                model.trainable_parameters()
            ),
            base_sha256: dir.sha256().to_owned(),
            base_path: dir.path().join(WEIGHTS),
            model,
            encoder,
        })
    }

    /// The tiny two-layer BERT of the tests (hidden size 32, no dropout) with random base
    /// weights from `seed` and a word-level vocabulary of the training texts; the model
    /// directory (`config.json`, `model.safetensors`, `tokenizer.json`) is written to `dir`
    /// so that the base the consortium names is a real file.
    pub fn tiny(
        train_texts: &[&str],
        labels: usize,
        max_len: usize,
        seed: u64,
        dir: &Path,
    ) -> anyhow::Result<Self> {
        let encoder = TextEncoder::from_corpus(train_texts.iter().copied(), TINY_VOCAB, max_len)?;
        let config = BertConfig {
            hidden_dropout_prob: 0.0,
            attention_probs_dropout_prob: 0.0,
            max_position_embeddings: (max_len as i64).max(64),
            ..BertConfig::tiny(encoder.vocab_size() as i64)
        };
        let model = {
            let _generator = crate::train::seeded(seed);
            let mut model = BertClassifier::new(
                config.clone(),
                LoraConfig::default(),
                labels as i64,
                Device::Cpu,
            )?;
            model.randomize_base();
            model
        };
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        std::fs::write(dir.join("config.json"), serde_json::to_string(&config)?)?;
        let base_path = dir.join(WEIGHTS);
        model.base().save(&base_path)?;
        encoder.save(&dir.join("tokenizer.json"))?;
        Ok(Self {
            description: format!(
                "tiny random BERT (2 layers, hidden 32, {} trainable parameters)",
                model.trainable_parameters()
            ),
            base_sha256: file_sha256(&base_path)?,
            base_path,
            model,
            encoder,
        })
    }
}

/// The examples a run uses.
#[derive(Clone, Debug, Serialize)]
pub struct DataPlan {
    /// Class names.
    pub labels: Vec<String>,
    /// Examples in the data file.
    pub examples: usize,
    /// Training examples the split left.
    pub train_available: usize,
    /// Training examples used (over all shards).
    pub train_used: usize,
    /// Held-out examples the split left.
    pub test_available: usize,
    /// Held-out examples used.
    pub test_used: usize,
    /// Whether the run uses a subset of the data.
    pub subset: bool,
    /// Test texts also found in training (0: no leakage).
    pub leaked: usize,
}

/// The shards and the test set.
#[derive(Clone, Debug)]
pub struct Split {
    /// One training shard per member.
    pub shards: Vec<Dataset>,
    /// The held-out test set.
    pub test: Dataset,
    /// What was used.
    pub plan: DataPlan,
}

/// How to split the data.
#[derive(Clone, Copy, Debug)]
pub struct SplitConfig {
    /// Members (shards).
    pub members: usize,
    /// Fraction held out for testing.
    pub test_fraction: f64,
    /// At most this many training examples, drawn at random.
    pub max_train: Option<usize>,
    /// At most this many test examples, drawn at random.
    pub max_test: Option<usize>,
    /// How training examples spread over members.
    pub partition: Partition,
    /// Smallest shard.
    pub min_shard: usize,
    /// Seed of the split, the subsets and the partition.
    pub seed: u64,
}

/// At most `max` examples of `data`, drawn with `seed` and kept in file order.
fn sample(data: &Dataset, max: Option<usize>, seed: u64) -> Dataset {
    match max {
        Some(max) if max < data.len() => {
            let mut indices: Vec<usize> = (0..data.len()).collect();
            indices.shuffle(&mut rand::rngs::StdRng::seed_from_u64(seed));
            indices.truncate(max);
            indices.sort_unstable();
            data.subset(&indices)
        }
        _ => data.clone(),
    }
}

/// Splits `data` into a held-out test set (no text shared with training) and member shards.
pub fn split(data: &Dataset, config: &SplitConfig) -> anyhow::Result<Split> {
    let (train_all, test_all) = train_test_split(data, config.test_fraction, config.seed)?;
    let leak = leakage(&train_all, &test_all);
    anyhow::ensure!(
        leak.leaked == 0,
        "{} test texts also appear in training",
        leak.leaked
    );
    let train = sample(&train_all, config.max_train, config.seed ^ 0x0074_7261_696e);
    let test = sample(&test_all, config.max_test, config.seed ^ 0x0000_7465_7374);
    let shards = partition(
        &train,
        config.members,
        config.partition,
        config.min_shard,
        config.seed,
    )?
    .iter()
    .map(|indices| train.subset(indices))
    .collect();
    Ok(Split {
        shards,
        plan: DataPlan {
            labels: data.label_names.clone(),
            examples: data.len(),
            train_available: train_all.len(),
            train_used: train.len(),
            test_available: test_all.len(),
            test_used: test.len(),
            subset: train.len() < train_all.len() || test.len() < test_all.len(),
            leaked: leak.leaked,
        },
        test,
    })
}
