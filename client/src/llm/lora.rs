//! LoRA adapters on the Llama decoder (Hu et al. 2021, arXiv:2106.09685), with the encoder's
//! adapter math ([`LoraAdapter`]) and configuration ([`LoraConfig`]) reused as they are.
//!
//! Any of the seven projections of a block may carry an adapter: `query`, `key`, `value`,
//! `output` (attention) and `gate`, `up`, `down` (the SwiGLU); the default is query and value.
//! [`LoraConfig::from_layer`] `= L − K` puts adapters on the top `K` layers only
//! ([`LlamaLora::for_top_layers`]), so that the hidden states
//! entering layer `L − K` depend on no trainable tensor and can be cached
//! ([`crate::llm::finetune`]).
//!
//! The trainable tensors live in their own `VarStore` named after the GGUF tensors they adapt:
//! `blk.{i}.attn_q.lora_a`, `blk.{i}.attn_q.lora_b`, ..., so they travel as an [`Update`] (via
//! [`StoreTensors`](crate::train::tensors::StoreTensors)) like the encoder's. The frozen base
//! stays as loaded: a fresh adapter (`B = 0`) leaves the decoder's output unchanged.
//!
//! ```
//! use bcfl_client::llm::config::LlamaConfig;
//! use bcfl_client::llm::lora::{trainable_parameters, LlamaLora};
//!
//! // Llama-3-8B's shape with the FlowerTune adapters (r = 32 on q and v, every layer).
//! let llama3 = LlamaConfig {
//!     block_count: 32, embedding_length: 4096, head_count: 32, head_count_kv: 8,
//!     feed_forward_length: 14336, ..LlamaConfig::tiny(128_256)
//! };
//! assert_eq!(trainable_parameters(&llama3, &LlamaLora::flowertune()), 13_631_488);
//! ```

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use tch::{nn, Device, Tensor};

use super::config::LlamaConfig;
use super::{Error, Result};
use crate::train::lora::{LoraAdapter, LoraConfig};
use bcfl_fed::update::{Encoding, Update};

/// Projections of a decoder block that may carry adapters, as [`LoraConfig::targets`] names
/// them.
pub const TARGETS: [&str; 7] = ["query", "key", "value", "output", "gate", "up", "down"];

/// A projection of a decoder block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Projection {
    /// `attn_q`.
    Query,
    /// `attn_k`.
    Key,
    /// `attn_v`.
    Value,
    /// `attn_output`.
    Output,
    /// `ffn_gate`.
    Gate,
    /// `ffn_up`.
    Up,
    /// `ffn_down`.
    Down,
}

impl Projection {
    /// Every projection, in [`TARGETS`] order.
    pub const ALL: [Self; 7] = [
        Self::Query,
        Self::Key,
        Self::Value,
        Self::Output,
        Self::Gate,
        Self::Up,
        Self::Down,
    ];

    /// Its name among [`TARGETS`].
    pub fn target(self) -> &'static str {
        TARGETS[self as usize]
    }

    /// Its GGUF tensor name within a block (`attn_q`, ...).
    pub fn gguf(self) -> &'static str {
        [
            "attn_q",
            "attn_k",
            "attn_v",
            "attn_output",
            "ffn_gate",
            "ffn_up",
            "ffn_down",
        ][self as usize]
    }

    /// `(in_features, out_features)` in a decoder of `config`.
    pub fn shape(self, config: &LlamaConfig) -> (i64, i64) {
        let (dim, ff) = (config.embedding_length, config.feed_forward_length);
        let kv = config.head_count_kv * config.head_dim();
        match self {
            Self::Query | Self::Output => (dim, dim),
            Self::Key | Self::Value => (dim, kv),
            Self::Gate | Self::Up => (dim, ff),
            Self::Down => (ff, dim),
        }
    }
}

/// Presets and checks of a [`LoraConfig`] for the decoder.
pub struct LlamaLora;

impl LlamaLora {
    /// The FlowerTune LLM Leaderboard's adapters: rank 32, alpha 64, query and value, every
    /// layer (dropout 0.05 as in its baseline).
    pub fn flowertune() -> LoraConfig {
        LoraConfig {
            rank: 32,
            alpha: 64.0,
            dropout: 0.05,
            targets: vec!["query".into(), "value".into()],
            from_layer: 0,
        }
    }

    /// `lora` on the top `k` layers of `config` only (every layer when `k` is 0 or at least
    /// the depth).
    pub fn for_top_layers(lora: LoraConfig, config: &LlamaConfig, k: i64) -> LoraConfig {
        let from_layer = match k {
            k if k <= 0 || k >= config.block_count => 0,
            k => config.block_count - k,
        };
        LoraConfig { from_layer, ..lora }
    }

    /// Checks `lora` against the decoder's projections and depth.
    pub fn validate(lora: &LoraConfig, config: &LlamaConfig) -> Result<()> {
        lora.validate_for(&TARGETS)
            .map_err(|e| Error::Config(e.to_string()))?;
        if lora.from_layer >= config.block_count {
            return Err(Error::Config(format!(
                "LoRA from_layer {} leaves none of the {} layers adapted",
                lora.from_layer, config.block_count
            )));
        }
        Ok(())
    }
}

/// The adapted `(layer, projection)` pairs of `lora` on a decoder of `config`, layer by layer.
pub fn adapted<'a>(
    config: &'a LlamaConfig,
    lora: &'a LoraConfig,
) -> impl Iterator<Item = (i64, Projection)> + 'a {
    (lora.from_layer.max(0)..config.block_count).flat_map(move |layer| {
        Projection::ALL
            .into_iter()
            .filter(|p| lora.targets(p.target()))
            .map(move |p| (layer, p))
    })
}

/// Trainable parameters of `lora` on a decoder of `config`: `rank · (in + out)` per adapted
/// projection.
pub fn trainable_parameters(config: &LlamaConfig, lora: &LoraConfig) -> i64 {
    adapted(config, lora)
        .map(|(_, p)| {
            let (i, o) = p.shape(config);
            LoraAdapter::parameters(lora.rank, i, o)
        })
        .sum()
}

/// Variable-store path of the adapter on `projection` of `layer`: `blk.{layer}.{gguf}`.
fn adapter_path<'a>(root: &nn::Path<'a>, layer: i64, projection: Projection) -> nn::Path<'a> {
    root.sub("blk")
        .sub(layer.to_string())
        .sub(projection.gguf())
}

/// The trainable adapters of a decoder.
#[derive(Debug)]
pub struct DecoderAdapters {
    config: LoraConfig,
    store: nn::VarStore,
    /// `blocks[layer][projection as usize]`.
    blocks: Vec<[Option<LoraAdapter>; 7]>,
}

impl DecoderAdapters {
    /// Fresh adapters (`A` drawn from libtorch's generator, `B = 0`) for a decoder of `model`.
    pub fn new(model: &LlamaConfig, config: LoraConfig, device: Device) -> Result<Self> {
        LlamaLora::validate(&config, model)?;
        let store = nn::VarStore::new(device);
        let root = store.root();
        let mut blocks: Vec<[Option<LoraAdapter>; 7]> =
            (0..model.block_count).map(|_| Default::default()).collect();
        for (layer, p) in adapted(model, &config) {
            let (i, o) = p.shape(model);
            blocks[layer as usize][p as usize] = Some(LoraAdapter::new(
                adapter_path(&root, layer, p),
                i,
                o,
                &config,
            ));
        }
        Ok(Self {
            config,
            store,
            blocks,
        })
    }

    /// The adapter's term for `projection` of `layer` on `x`, if it carries one.
    pub fn delta_t(
        &self,
        layer: usize,
        projection: Projection,
        x: &Tensor,
        train: bool,
    ) -> Option<Tensor> {
        self.blocks[layer][projection as usize]
            .as_ref()
            .map(|a| a.delta_t(x, train))
    }

    /// The configuration.
    pub fn config(&self) -> &LoraConfig {
        &self.config
    }

    /// The trainable tensors (what an [`Update`] carries).
    pub fn store(&self) -> &nn::VarStore {
        &self.store
    }

    /// Trainable parameters.
    pub fn parameters(&self) -> i64 {
        self.store
            .trainable_variables()
            .iter()
            .map(|t| t.numel() as i64)
            .sum()
    }
}

/// An update of `lora` on a decoder of `config` with every value zero: the names and shapes
/// the adapters travel under, without a model.
pub fn update_template(config: &LlamaConfig, lora: &LoraConfig) -> Update {
    let mut tensors = BTreeMap::new();
    for (layer, p) in adapted(config, lora) {
        let (i, o) = p.shape(config);
        let name = format!("blk.{layer}.{}", p.gguf());
        let (r, i, o) = (lora.rank as usize, i as usize, o as usize);
        tensors.insert(format!("{name}.lora_a"), (vec![r, i], vec![0.0; r * i]));
        tensors.insert(format!("{name}.lora_b"), (vec![o, r], vec![0.0; o * r]));
    }
    Update { tensors }
}

/// What one update of a decoder's adapters weighs on the wire, against the whole model.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateSize {
    /// Trainable parameters.
    pub parameters: u64,
    /// Bytes of the `f32` update blob (exact).
    pub f32_bytes: u64,
    /// Bytes of the int8 update blob. Exact up to the per-tensor scales, written as decimals
    /// in the header: this counts the shortest (`1.0`, zero tensors), and a trained update's
    /// header is at most 16 bytes per tensor longer (rounded up to 8).
    pub int8_bytes: u64,
    /// Parameters of the whole model (the tied head counted once).
    pub model_parameters: u64,
    /// Bytes of the whole model in `f32`.
    pub model_f32_bytes: u64,
}

impl UpdateSize {
    /// The sizes of `lora`'s updates on a decoder of `config`.
    pub fn new(config: &LlamaConfig, lora: &LoraConfig) -> Self {
        let template = update_template(config, lora);
        let model_parameters = model_parameters(config) as u64;
        Self {
            parameters: template.parameters() as u64,
            f32_bytes: template.to_bytes(Encoding::F32).len() as u64,
            int8_bytes: template.to_bytes(Encoding::Int8).len() as u64,
            model_parameters,
            model_f32_bytes: model_parameters * 4,
        }
    }
}

/// Parameters of a decoder of `config` (embedding, blocks, final norm, untied head).
pub fn model_parameters(config: &LlamaConfig) -> i64 {
    let (dim, ff, vocab) = (
        config.embedding_length,
        config.feed_forward_length,
        config.vocab_size,
    );
    let kv = config.head_count_kv * config.head_dim();
    let block = 2 * dim + 2 * dim * dim + 2 * kv * dim + 3 * ff * dim;
    let head = if config.tied_embeddings {
        0
    } else {
        vocab * dim
    };
    vocab * dim + config.block_count * block + dim + head
}

#[cfg(test)]
mod tests;
