//! Llama-architecture checkpoints in the Hugging Face layout: a directory holding
//! `config.json` ([`HfConfig`]), the weights as `model.safetensors` or as shards
//! (`model-00001-of-00002.safetensors`, ...) listed by `model.safetensors.index.json`, and
//! `tokenizer.json` (with, optionally, `tokenizer_config.json` for the end-of-sequence token and
//! the chat template).
//!
//! [`Checkpoint`] reads such a directory as a source of weights ([`LlamaWeights`]), naming the
//! tensors by their GGUF names, the model's internal ones ([`hf_name`], [`gguf_name`]):
//!
//! | GGUF | Hugging Face |
//! | --- | --- |
//! | `token_embd.weight` | `model.embed_tokens.weight` |
//! | `blk.{i}.attn_norm.weight` | `model.layers.{i}.input_layernorm.weight` |
//! | `blk.{i}.attn_q` / `attn_k` / `attn_v` / `attn_output` `.weight` | `model.layers.{i}.self_attn.q_proj` / `k_proj` / `v_proj` / `o_proj` `.weight` |
//! | `blk.{i}.ffn_norm.weight` | `model.layers.{i}.post_attention_layernorm.weight` |
//! | `blk.{i}.ffn_gate` / `ffn_up` / `ffn_down` `.weight` | `model.layers.{i}.mlp.gate_proj` / `up_proj` / `down_proj` `.weight` |
//! | `output_norm.weight` | `model.norm.weight` |
//! | `output.weight` | `lm_head.weight` (absent when `tie_word_embeddings`) |
//!
//! The query and key rows are in Hugging Face's order, which the decoder computes with: the
//! checkpoint says so ([`RotaryRows::HuggingFace`]) and the loader keeps them as they are, where
//! it undoes llama.cpp's permutation for a GGUF file. Tensors in `F32`, `F16` or `BF16` are read
//! as `f32`.
//!
//! [`write_checkpoint`] writes a loaded model back out in this layout (the weights as `f32`,
//! `model.safetensors`), which is how `bcfl llm export-hf` turns a GGUF file into a checkpoint
//! directory; [`crate::llm::LanguageModel::open`] takes either.
//!
//! ```no_run
//! use bcfl_client::llm::hf::Checkpoint;
//! use bcfl_client::llm::model::{Llama, WeightStorage};
//!
//! # fn main() -> Result<(), bcfl_client::llm::Error> {
//! let checkpoint = Checkpoint::open("SmolLM2-135M-Instruct".as_ref())?;
//! let config = checkpoint.config().clone();
//! let model = Llama::load(config, &checkpoint, tch::Device::Cpu, WeightStorage::F32)?;
//! let tokenizer = checkpoint.tokenizer()?;
//! # Ok(())
//! # }
//! ```

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;
use tch::{Device, Tensor};
use tokenizers::Tokenizer;

use super::config::LlamaConfig;
use super::model::{Llama, LlamaWeights, RotaryRows};
use super::tokenizer::ChatTokenizer;
use super::{Error, Result};
use bcfl_fed::digest::{file_sha256, sha256_hex};

mod config;
mod safetensors;

pub use config::{HfConfig, MODEL_TYPE};
use safetensors::SafetensorsFile;

/// The architecture's description.
pub const CONFIG_FILE: &str = "config.json";
/// The weights, unsharded.
pub const WEIGHTS_FILE: &str = "model.safetensors";
/// The list of the shards holding each tensor, for sharded weights.
pub const INDEX_FILE: &str = "model.safetensors.index.json";
/// The tokenizer (the `tokenizers` library's format).
pub const TOKENIZER_FILE: &str = "tokenizer.json";
/// The tokenizer's settings: `eos_token` and `chat_template` are read.
pub const TOKENIZER_CONFIG_FILE: &str = "tokenizer_config.json";

/// A block's GGUF tensor names and their Hugging Face names (both without the block prefix and
/// the `.weight` suffix).
const BLOCK_NAMES: [(&str, &str); 9] = [
    ("attn_norm", "input_layernorm"),
    ("attn_q", "self_attn.q_proj"),
    ("attn_k", "self_attn.k_proj"),
    ("attn_v", "self_attn.v_proj"),
    ("attn_output", "self_attn.o_proj"),
    ("ffn_norm", "post_attention_layernorm"),
    ("ffn_gate", "mlp.gate_proj"),
    ("ffn_up", "mlp.up_proj"),
    ("ffn_down", "mlp.down_proj"),
];

/// The tensors outside the blocks: GGUF and Hugging Face names.
const MODEL_NAMES: [(&str, &str); 3] = [
    ("token_embd.weight", "model.embed_tokens.weight"),
    ("output_norm.weight", "model.norm.weight"),
    ("output.weight", "lm_head.weight"),
];

/// The Hugging Face name of the GGUF tensor `gguf`, if it is one of the decoder's.
pub fn hf_name(gguf: &str) -> Option<String> {
    if let Some((_, hf)) = MODEL_NAMES.iter().find(|(g, _)| *g == gguf) {
        return Some((*hf).to_owned());
    }
    let (layer, part) = gguf.strip_prefix("blk.")?.split_once('.')?;
    let part = part.strip_suffix(".weight")?;
    let layer: u32 = layer.parse().ok()?;
    let (_, hf) = BLOCK_NAMES.iter().find(|(g, _)| *g == part)?;
    Some(format!("model.layers.{layer}.{hf}.weight"))
}

/// The GGUF name of the Hugging Face tensor `hf`, if it is one of the decoder's.
pub fn gguf_name(hf: &str) -> Option<String> {
    if let Some((gguf, _)) = MODEL_NAMES.iter().find(|(_, h)| *h == hf) {
        return Some((*gguf).to_owned());
    }
    let (layer, part) = hf.strip_prefix("model.layers.")?.split_once('.')?;
    let part = part.strip_suffix(".weight")?;
    let layer: u32 = layer.parse().ok()?;
    let (gguf, _) = BLOCK_NAMES.iter().find(|(_, h)| *h == part)?;
    Some(format!("blk.{layer}.{gguf}.weight"))
}

/// An opened checkpoint directory: its configuration and its weight files, checked.
#[derive(Debug)]
pub struct Checkpoint {
    dir: PathBuf,
    hf_config: HfConfig,
    config: LlamaConfig,
    files: Vec<SafetensorsFile>,
    /// Hugging Face tensor name → index in `files`.
    located: HashMap<String, usize>,
}

/// `model.safetensors.index.json`: the shard of each tensor.
#[derive(Deserialize)]
struct Index {
    weight_map: BTreeMap<String, String>,
}

impl Checkpoint {
    /// Reads `dir`'s `config.json` and maps its weight files (every shard the index names must
    /// be there and hold the tensors the index puts in it).
    pub fn open(dir: &Path) -> Result<Self> {
        let config_path = dir.join(CONFIG_FILE);
        let text = std::fs::read_to_string(&config_path).map_err(|e| Error::io(&config_path, e))?;
        let hf_config: HfConfig = serde_json::from_str(&text)
            .map_err(|e| Error::checkpoint(&config_path, e.to_string()))?;
        let config = hf_config
            .to_llama()
            .map_err(|problem| Error::checkpoint(&config_path, problem))?;

        let (paths, index) = weight_paths(dir)?;
        let files = paths
            .iter()
            .map(|p| SafetensorsFile::open(p))
            .collect::<Result<Vec<_>>>()?;
        let mut located = HashMap::new();
        for (i, file) in files.iter().enumerate() {
            for name in file.names() {
                if let Some(j) = located.insert(name.to_owned(), i) {
                    return Err(Error::checkpoint(
                        dir,
                        format!(
                            "tensor {name} is in both {} and {}",
                            files[j].path().display(),
                            file.path().display()
                        ),
                    ));
                }
            }
        }
        for (tensor, shard) in &index {
            if !files
                .iter()
                .any(|f| f.path().ends_with(shard) && f.contains(tensor))
            {
                return Err(Error::checkpoint(
                    &dir.join(INDEX_FILE),
                    format!("puts {tensor} in {shard}, which does not hold it"),
                ));
            }
        }
        Ok(Self {
            dir: dir.to_owned(),
            hf_config,
            config,
            files,
            located,
        })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The decoder's configuration.
    pub fn config(&self) -> &LlamaConfig {
        &self.config
    }

    /// `config.json` as read.
    pub fn hf_config(&self) -> &HfConfig {
        &self.hf_config
    }

    /// The weight files, in name order.
    pub fn weight_files(&self) -> Vec<&Path> {
        self.files.iter().map(SafetensorsFile::path).collect()
    }

    /// The tokenizer of `tokenizer.json`, ending sequences with `tokenizer_config.json`'s
    /// `eos_token` (else `config.json`'s `eos_token_id`), with its `chat_template`.
    pub fn tokenizer(&self) -> Result<ChatTokenizer> {
        let path = self.dir.join(TOKENIZER_FILE);
        let tokenizer =
            Tokenizer::from_file(&path).map_err(|e| Error::checkpoint(&path, e.to_string()))?;
        let settings_path = self.dir.join(TOKENIZER_CONFIG_FILE);
        let settings: Value = match std::fs::read_to_string(&settings_path) {
            Ok(text) => serde_json::from_str(&text)
                .map_err(|e| Error::checkpoint(&settings_path, e.to_string()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Value::Null,
            Err(e) => return Err(Error::io(&settings_path, e)),
        };
        let eos_token = settings.get("eos_token").and_then(|t| match t {
            Value::Object(added) => added.get("content").and_then(Value::as_str),
            token => token.as_str(),
        });
        let eos_token_id = match eos_token {
            Some(token) => tokenizer.token_to_id(token).ok_or_else(|| {
                Error::checkpoint(
                    &settings_path,
                    format!("eos_token {token:?} is not in {TOKENIZER_FILE}'s vocabulary"),
                )
            })?,
            None => self.hf_config.eos_token_id().ok_or_else(|| {
                Error::checkpoint(
                    &self.dir,
                    format!(
                        "no end-of-sequence token: neither {TOKENIZER_CONFIG_FILE}'s eos_token \
                         nor {CONFIG_FILE}'s eos_token_id"
                    ),
                )
            })?,
        };
        let chat_template = match settings.get("chat_template") {
            Some(Value::String(template)) => Some(template.clone()),
            // A list of named templates: the default one.
            Some(Value::Array(templates)) => templates
                .iter()
                .find(|t| t.get("name").and_then(Value::as_str) == Some("default"))
                .and_then(|t| t.get("template")?.as_str().map(str::to_owned)),
            _ => None,
        };
        ChatTokenizer::new(tokenizer, eos_token_id, chat_template)
    }

    /// The SHA-256 naming this checkpoint's model: the digest of the `sha256sum` listing of
    /// `config.json` and the weight files (`<hex>  <file name>\n` each, in that order).
    pub fn sha256(&self) -> Result<String> {
        let config = self.dir.join(CONFIG_FILE);
        let mut listing = String::new();
        for path in std::iter::once(config.as_path()).chain(self.weight_files()) {
            let digest = file_sha256(path).map_err(|e| Error::io(path, e))?;
            let name = path.file_name().unwrap_or_default().to_string_lossy();
            listing.push_str(&format!("{}  {name}\n", digest.sha256));
        }
        Ok(sha256_hex(listing.as_bytes()))
    }
}

/// The weight files of `dir` (the index's shards, or `model.safetensors`) and the index's
/// tensor → shard map (empty without an index).
fn weight_paths(dir: &Path) -> Result<(Vec<PathBuf>, BTreeMap<String, String>)> {
    let index_path = dir.join(INDEX_FILE);
    if !index_path.is_file() {
        let path = dir.join(WEIGHTS_FILE);
        if !path.is_file() {
            return Err(Error::checkpoint(
                dir,
                format!(
                    "neither {WEIGHTS_FILE} nor {INDEX_FILE} (only safetensors checkpoints are \
                     read)"
                ),
            ));
        }
        return Ok((vec![path], BTreeMap::new()));
    }
    let text = std::fs::read_to_string(&index_path).map_err(|e| Error::io(&index_path, e))?;
    let index: Index =
        serde_json::from_str(&text).map_err(|e| Error::checkpoint(&index_path, e.to_string()))?;
    let shards: BTreeSet<&String> = index.weight_map.values().collect();
    if shards.is_empty() {
        return Err(Error::checkpoint(&index_path, "weight_map names no file"));
    }
    let mut paths = Vec::with_capacity(shards.len());
    for shard in shards {
        // A plain file name: the index may not reach outside the directory.
        if Path::new(shard).file_name() != Some(shard.as_ref()) {
            return Err(Error::checkpoint(
                &index_path,
                format!("{shard:?} is not a file name in the directory"),
            ));
        }
        let path = dir.join(shard);
        if !path.is_file() {
            return Err(Error::checkpoint(
                &index_path,
                format!("names {shard}, which is not in {}", dir.display()),
            ));
        }
        paths.push(path);
    }
    Ok((paths, index.weight_map))
}

impl LlamaWeights for Checkpoint {
    fn tensor(&self, name: &str) -> Result<Option<Tensor>> {
        let Some(hf) = hf_name(name) else {
            return Ok(None);
        };
        match self.located.get(&hf) {
            Some(&i) => self.files[i].tensor_f32(&hf),
            None => Ok(None),
        }
    }

    fn rotary_rows(&self) -> RotaryRows {
        RotaryRows::HuggingFace
    }

    fn source_name(&self, name: &str) -> String {
        match hf_name(name) {
            Some(hf) => format!("{hf} ({name}) of {}", self.dir.display()),
            None => format!("{name} of {}", self.dir.display()),
        }
    }
}

/// Writes `model` into `dir` (created if absent) as `config.json` (with `eos_token_id` when
/// given) and `model.safetensors` (`f32`, Hugging Face names and row order); returns the files
/// written.
pub fn write_model(model: &Llama, eos_token_id: Option<u32>, dir: &Path) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let config_path = dir.join(CONFIG_FILE);
    let config = HfConfig::from_llama(model.config(), eos_token_id);
    write_json(
        &config_path,
        &serde_json::to_value(&config).expect("plain fields"),
    )?;
    let named = model
        .named_weights()
        .into_iter()
        .map(|(name, t)| {
            let hf = hf_name(&name).expect("every weight of the decoder has a Hugging Face name");
            (hf, t.to_device(Device::Cpu).contiguous())
        })
        .collect::<Vec<_>>();
    let weights_path = dir.join(WEIGHTS_FILE);
    Tensor::write_safetensors(&named, &weights_path)?;
    Ok(vec![config_path, weights_path])
}

/// [`write_model`], then the tokenizer: `tokenizer.json` and `tokenizer_config.json`
/// (`eos_token`, `chat_template`). Returns the files written.
pub fn write_checkpoint(
    model: &Llama,
    tokenizer: &ChatTokenizer,
    dir: &Path,
) -> Result<Vec<PathBuf>> {
    let eos = tokenizer.eos_token_id();
    let mut files = write_model(model, Some(eos), dir)?;
    let path = dir.join(TOKENIZER_FILE);
    tokenizer
        .inner()
        .save(&path, false)
        .map_err(|e| Error::checkpoint(&path, e.to_string()))?;
    files.push(path);
    let mut settings = serde_json::Map::new();
    let eos_token = tokenizer
        .inner()
        .id_to_token(eos)
        .expect("checked in ChatTokenizer::new");
    settings.insert("eos_token".into(), eos_token.into());
    if let Some(template) = tokenizer.chat_template() {
        settings.insert("chat_template".into(), template.into());
    }
    let path = dir.join(TOKENIZER_CONFIG_FILE);
    write_json(&path, &Value::Object(settings))?;
    files.push(path);
    Ok(files)
}

fn write_json(path: &Path, value: &Value) -> Result<()> {
    let text = serde_json::to_string_pretty(value).expect("a JSON value");
    std::fs::write(path, text + "\n").map_err(|e| Error::io(path, e))
}

#[cfg(test)]
mod tests;
