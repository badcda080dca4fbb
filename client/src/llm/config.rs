//! The architecture of a Llama-family decoder, read from a GGUF file's metadata
//! (`{arch}.block_count`, `{arch}.embedding_length`, ...; llama.cpp `docs/gguf.md`, "LLaMA").

use serde::{Deserialize, Serialize};

use super::gguf::GgufFile;
use super::{Error, Result};

/// Architectures read with the Llama layout (`general.architecture`).
pub const ARCHITECTURES: [&str; 1] = ["llama"];

/// The shape and constants of a Llama decoder.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LlamaConfig {
    /// Transformer blocks (`llama.block_count`).
    pub block_count: i64,
    /// Width of the hidden states (`llama.embedding_length`).
    pub embedding_length: i64,
    /// Width of the SwiGLU layer (`llama.feed_forward_length`).
    pub feed_forward_length: i64,
    /// Query heads (`llama.attention.head_count`).
    pub head_count: i64,
    /// Key/value heads (`llama.attention.head_count_kv`; grouped-query attention when fewer
    /// than `head_count`).
    pub head_count_kv: i64,
    /// Base of the rotary frequencies (`llama.rope.freq_base`, default 10000).
    pub rope_freq_base: f64,
    /// RMSNorm epsilon (`llama.attention.layer_norm_rms_epsilon`).
    pub rms_norm_eps: f64,
    /// Longest context trained (`llama.context_length`).
    pub context_length: i64,
    /// Vocabulary size (`llama.vocab_size`, else the tokenizer's token count).
    pub vocab_size: i64,
    /// Whether the output head reuses the token embedding (no `output.weight` tensor).
    pub tied_embeddings: bool,
}

impl LlamaConfig {
    /// Reads the configuration of `file`.
    pub fn from_gguf(file: &GgufFile) -> Result<Self> {
        let arch = file.require_str("general.architecture")?;
        if !ARCHITECTURES.contains(&arch) {
            return Err(Error::Config(format!(
                "architecture {arch:?} is not supported (expected one of {ARCHITECTURES:?})"
            )));
        }
        let int = |key: &str| -> Result<i64> {
            let key = format!("{arch}.{key}");
            i64::try_from(file.require_u64(&key)?)
                .map_err(|_| Error::metadata(&key, "does not fit in i64"))
        };
        let vocab_size = match file.metadata(&format!("{arch}.vocab_size")) {
            Some(_) => int("vocab_size")?,
            None => file.require_array("tokenizer.ggml.tokens")?.len() as i64,
        };
        let rope_freq_base = match file.metadata(&format!("{arch}.rope.freq_base")) {
            Some(_) => file.require_f64(&format!("{arch}.rope.freq_base"))?,
            None => 10_000.0,
        };
        let config = Self {
            block_count: int("block_count")?,
            embedding_length: int("embedding_length")?,
            feed_forward_length: int("feed_forward_length")?,
            head_count: int("attention.head_count")?,
            head_count_kv: match file.metadata(&format!("{arch}.attention.head_count_kv")) {
                Some(_) => int("attention.head_count_kv")?,
                None => int("attention.head_count")?,
            },
            rope_freq_base,
            rms_norm_eps: file.require_f64(&format!("{arch}.attention.layer_norm_rms_epsilon"))?,
            context_length: int("context_length")?,
            vocab_size,
            tied_embeddings: file.tensor("output.weight").is_none(),
        };
        config.validate()?;
        Ok(config)
    }

    /// Checks that the shapes are consistent.
    pub fn validate(&self) -> Result<()> {
        let positive = [
            ("block_count", self.block_count),
            ("embedding_length", self.embedding_length),
            ("feed_forward_length", self.feed_forward_length),
            ("head_count", self.head_count),
            ("head_count_kv", self.head_count_kv),
            ("context_length", self.context_length),
            ("vocab_size", self.vocab_size),
        ];
        if let Some((name, value)) = positive.iter().find(|(_, v)| *v < 1) {
            return Err(Error::Config(format!("{name} {value} < 1")));
        }
        if self.embedding_length % self.head_count != 0 {
            return Err(Error::Config(format!(
                "embedding_length {} is not a multiple of head_count {}",
                self.embedding_length, self.head_count
            )));
        }
        if self.head_count % self.head_count_kv != 0 {
            return Err(Error::Config(format!(
                "head_count {} is not a multiple of head_count_kv {}",
                self.head_count, self.head_count_kv
            )));
        }
        if self.head_dim() % 2 != 0 {
            return Err(Error::Config(format!(
                "head dimension {} is odd (rotary embeddings rotate pairs)",
                self.head_dim()
            )));
        }
        if !(self.rope_freq_base > 0.0 && self.rms_norm_eps > 0.0) {
            return Err(Error::Config(format!(
                "rope.freq_base {} and layer_norm_rms_epsilon {} must be positive",
                self.rope_freq_base, self.rms_norm_eps
            )));
        }
        Ok(())
    }

    /// Width of one attention head.
    pub fn head_dim(&self) -> i64 {
        self.embedding_length / self.head_count
    }

    /// A tiny configuration for fast tests.
    pub fn tiny(vocab_size: i64) -> Self {
        Self {
            block_count: 2,
            embedding_length: 32,
            feed_forward_length: 48,
            head_count: 4,
            head_count_kv: 2,
            rope_freq_base: 10_000.0,
            rms_norm_eps: 1e-5,
            context_length: 64,
            vocab_size,
            tied_embeddings: true,
        }
    }
}
