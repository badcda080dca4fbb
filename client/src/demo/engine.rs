//! The demo's model and data: the base model every member fine-tunes (all-MiniLM-L6-v2 from
//! `$BCFL_MODEL_DIR`, or with `--tiny` a small randomly initialised BERT built in code), and the
//! held-out test set and the members' training shards ([`split`], re-exported from
//! [`crate::train::split`], where `bcfl data split` finds it too).
//!
//! One [`Engine`] serves every member in turn: members train one after another (the CPU is the
//! shared resource), each starting from the global model it verified itself.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use tch::Device;

use crate::train::bert::{BertClassifier, BertConfig};
use crate::train::checkpoint::{file_sha256, ModelDir, WEIGHTS};
use crate::train::lora::LoraConfig;
use crate::train::tokenize::TextEncoder;

pub use crate::train::split::{split, DataPlan, Split, SplitConfig};

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
