//! A checkpoint's `config.json` (Hugging Face's `LlamaConfig`) and its translation to and from
//! [`LlamaConfig`].
//!
//! The keys read are the architecture's shape (`hidden_size`, `intermediate_size`,
//! `num_hidden_layers`, `num_attention_heads`, `vocab_size`: required) and its constants, with
//! `transformers`' defaults when absent: `num_key_value_heads` (= `num_attention_heads`),
//! `rms_norm_eps` (1e-6), `rope_theta` (10000), `max_position_embeddings` (2048),
//! `tie_word_embeddings` (false). A configuration the decoder would silently run wrong is
//! refused: a `model_type` other than `llama`, `rope_scaling` (other than `null` or the
//! `default` type), a `hidden_act` other than `silu`, `attention_bias` or `mlp_bias`, a
//! `head_dim` other than `hidden_size / num_attention_heads`. Other keys are ignored.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::llm::config::LlamaConfig;

/// `model_type` of the architectures read.
pub const MODEL_TYPE: &str = "llama";

/// The keys of `config.json` this decoder reads or writes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HfConfig {
    /// `["LlamaForCausalLM"]` when written.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub architectures: Vec<String>,
    /// Must be `llama`.
    #[serde(default)]
    pub model_type: Option<String>,
    /// Width of the hidden states.
    pub hidden_size: i64,
    /// Width of the SwiGLU layer.
    pub intermediate_size: i64,
    /// Transformer blocks.
    pub num_hidden_layers: i64,
    /// Query heads.
    pub num_attention_heads: i64,
    /// Key/value heads (default: as many as query heads).
    #[serde(default)]
    pub num_key_value_heads: Option<i64>,
    /// Width of a head, when given (must be `hidden_size / num_attention_heads`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub head_dim: Option<i64>,
    /// RMSNorm epsilon.
    #[serde(default = "default_rms_norm_eps")]
    pub rms_norm_eps: f64,
    /// Base of the rotary frequencies.
    #[serde(default = "default_rope_theta")]
    pub rope_theta: f64,
    /// Rotary scaling: only `null` (or the `default` type) is run.
    #[serde(default)]
    pub rope_scaling: Option<Value>,
    /// Vocabulary size.
    pub vocab_size: i64,
    /// Longest context.
    #[serde(default = "default_max_position_embeddings")]
    pub max_position_embeddings: i64,
    /// Whether the head reuses the token embedding.
    #[serde(default)]
    pub tie_word_embeddings: bool,
    /// The MLP's activation: must be `silu` when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hidden_act: Option<String>,
    /// Biases on the attention projections: not supported.
    #[serde(default)]
    pub attention_bias: bool,
    /// Biases on the MLP projections: not supported.
    #[serde(default)]
    pub mlp_bias: bool,
    /// End-of-sequence id(s): an integer or a list (the first is used).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eos_token_id: Option<Value>,
    /// The weights' type as saved (`float32`, `bfloat16`, ...), for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub torch_dtype: Option<String>,
}

fn default_rms_norm_eps() -> f64 {
    1e-6
}

fn default_rope_theta() -> f64 {
    10_000.0
}

fn default_max_position_embeddings() -> i64 {
    2048
}

impl HfConfig {
    /// The decoder's configuration, or why this one cannot be run (a sentence naming the key).
    pub fn to_llama(&self) -> Result<LlamaConfig, String> {
        match self.model_type.as_deref() {
            Some(MODEL_TYPE) => {}
            Some(other) => {
                return Err(format!(
                    "model_type {other:?} is not supported ({MODEL_TYPE:?} is)"
                ))
            }
            None => return Err(format!("model_type is absent (expected {MODEL_TYPE:?})")),
        }
        if let Some(scaling) = self.rope_scaling.as_ref().filter(|s| !is_default_rope(s)) {
            return Err(format!(
                "rope_scaling {scaling} is not supported (only unscaled rotary embeddings are)"
            ));
        }
        if let Some(act) = self.hidden_act.as_deref().filter(|&a| a != "silu") {
            return Err(format!("hidden_act {act:?} is not supported (silu is)"));
        }
        if self.attention_bias || self.mlp_bias {
            return Err("attention_bias and mlp_bias are not supported".into());
        }
        let config = LlamaConfig {
            block_count: self.num_hidden_layers,
            embedding_length: self.hidden_size,
            feed_forward_length: self.intermediate_size,
            head_count: self.num_attention_heads,
            head_count_kv: self.num_key_value_heads.unwrap_or(self.num_attention_heads),
            rope_freq_base: self.rope_theta,
            rms_norm_eps: self.rms_norm_eps,
            context_length: self.max_position_embeddings,
            vocab_size: self.vocab_size,
            tied_embeddings: self.tie_word_embeddings,
        };
        config.validate().map_err(|e| e.to_string())?;
        if let Some(hd) = self.head_dim.filter(|&hd| hd != config.head_dim()) {
            return Err(format!(
                "head_dim {hd} is not hidden_size / num_attention_heads = {}",
                config.head_dim()
            ));
        }
        Ok(config)
    }

    /// The `config.json` of a decoder of `config` saved in `f32`, ending sequences with
    /// `eos_token_id`.
    pub fn from_llama(config: &LlamaConfig, eos_token_id: Option<u32>) -> Self {
        Self {
            architectures: vec!["LlamaForCausalLM".into()],
            model_type: Some(MODEL_TYPE.into()),
            hidden_size: config.embedding_length,
            intermediate_size: config.feed_forward_length,
            num_hidden_layers: config.block_count,
            num_attention_heads: config.head_count,
            num_key_value_heads: Some(config.head_count_kv),
            head_dim: Some(config.head_dim()),
            rms_norm_eps: config.rms_norm_eps,
            rope_theta: config.rope_freq_base,
            rope_scaling: None,
            vocab_size: config.vocab_size,
            max_position_embeddings: config.context_length,
            tie_word_embeddings: config.tied_embeddings,
            hidden_act: Some("silu".into()),
            attention_bias: false,
            mlp_bias: false,
            eos_token_id: eos_token_id.map(Value::from),
            torch_dtype: Some("float32".into()),
        }
    }

    /// The end-of-sequence id: `eos_token_id`, or the first of a list.
    pub fn eos_token_id(&self) -> Option<u32> {
        let id = match self.eos_token_id.as_ref()? {
            Value::Array(ids) => ids.first()?,
            id => id,
        };
        id.as_u64().and_then(|id| u32::try_from(id).ok())
    }
}

/// Whether `rope_scaling` asks for plain rotary embeddings (`{"rope_type": "default"}`).
fn is_default_rope(scaling: &Value) -> bool {
    match scaling {
        Value::Null => true,
        Value::Object(map) => {
            let kind = map.get("rope_type").or_else(|| map.get("type"));
            kind.and_then(Value::as_str) == Some("default")
        }
        _ => false,
    }
}
