//! A trained model saved as a directory: `adapter.safetensors` (the trainable tensors, in the
//! canonical update format) and `bcfl-model.json` ([`SavedModel`]: the base model directory
//! and its SHA-256, the LoRA settings including the first adapted layer, the class names, the
//! sequence length). `bcfl train --out` writes one ([`save`]) with the held-out test split
//! ([`TEST_FILE`]); `bcfl eval` checks the base weights against the recorded digest before
//! scoring, and rebuilds the model with the same frozen prefix.

use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::bert::BertClassifier;
use super::checkpoint::ModelDir;
use super::lora::LoraConfig;
use super::tensors::StoreTensors as _;
use super::{Error, Result};
use bcfl_fed::update::{Encoding, Update};

/// File of the trainable tensors in a saved model.
pub const ADAPTER_FILE: &str = "adapter.safetensors";
/// The held-out test split `bcfl train --out` writes (columns `label`, `text`), so that
/// `bcfl eval --data DIR/test.csv` scores the same examples.
pub const TEST_FILE: &str = "test.csv";
/// File of the saved model's description.
pub const MODEL_FILE: &str = "bcfl-model.json";

/// The description saved next to a model's adapters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SavedModel {
    /// Base checkpoint directory at training time.
    pub base_dir: PathBuf,
    /// SHA-256 of its weights.
    pub base_sha256: String,
    /// Adapter settings.
    pub lora: LoraConfig,
    /// Class names, in head order.
    pub label_names: Vec<String>,
    /// Sequence length.
    pub max_len: usize,
    /// SHA-256 of `adapter.safetensors`.
    pub adapter_sha256: String,
}

impl SavedModel {
    /// Reads `DIR/bcfl-model.json`.
    pub fn read(dir: &Path) -> Result<Self> {
        let path = dir.join(MODEL_FILE);
        let text = fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
        serde_json::from_str(&text).map_err(|e| Error::json(path.display().to_string(), e))
    }
}

/// Saves `model`'s trainable tensors and description into `out`.
pub fn save(
    out: &Path,
    dir: &ModelDir,
    model: &BertClassifier,
    labels: &[String],
    max_len: usize,
) -> Result<()> {
    fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    let bytes = Update::from_store(model.trainable())?.to_bytes(Encoding::F32);
    let adapter = out.join(ADAPTER_FILE);
    fs::write(&adapter, &bytes).map_err(|e| Error::io(&adapter, e))?;
    let saved = SavedModel {
        base_dir: dir
            .path()
            .canonicalize()
            .unwrap_or_else(|_| dir.path().to_path_buf()),
        base_sha256: dir.sha256().to_string(),
        lora: model.lora().clone(),
        label_names: labels.to_vec(),
        max_len,
        adapter_sha256: bcfl_fed::digest::sha256_hex(&bytes),
    };
    let text =
        serde_json::to_string_pretty(&saved).map_err(|e| Error::json("bcfl-model.json", e))?;
    let description = out.join(MODEL_FILE);
    fs::write(&description, text).map_err(|e| Error::io(&description, e))?;
    Ok(())
}
