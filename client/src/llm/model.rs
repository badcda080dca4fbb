//! The Llama decoder (Touvron et al. 2023, "LLaMA: Open and Efficient Foundation Language
//! Models", arXiv:2302.13971; the Hugging Face `LlamaForCausalLM` layout), as used by SmolLM2:
//!
//! ```text
//! x = embed(ids)
//! per block: x += o(attention(rope(q(n)), rope(k(n)), v(n)))  where n = rms_norm(x)
//!            x += down(silu(gate(n)) * up(n))                  where n = rms_norm(x)
//! logits = rms_norm(x) · Wᵀ   (W = the token embedding when the head is tied)
//! ```
//!
//! Attention is causal and grouped-query: `head_count_kv` key/value heads, each shared by
//! `head_count / head_count_kv` query heads. It runs as libtorch's fused
//! `scaled_dot_product_attention`, which does not keep the `[T, T]` scores for the forward pass
//! (scoring 4-9 % and prefill 6-10 % faster than the written-out softmax on one thread, the
//! answers' log-probabilities within 2.4e-5: bench/README.md). A [`KvCache`] keeps each block's
//! keys and values so that generation feeds one token at a time.
//!
//! **Rotary layout.** llama.cpp's converter permutes the rows of the query and key weights so
//! that each head's rotated pairs are adjacent (`(x₀, x₁), (x₂, x₃), ...`, ggml's "normal" rope).
//! This module undoes that permutation when loading a GGUF file (the inverse of the converter's
//! `permute`: rows reshaped `(heads, head_dim/2, 2, dim)` → `(heads, 2, head_dim/2, dim)`) and
//! applies Hugging Face's `rotate_half` layout (pairs `(xᵢ, xᵢ₊head_dim/2)`). The weights then
//! equal the Hugging Face checkpoint's `q_proj`/`k_proj`, so adapters trained here line up with
//! that checkpoint's names and layouts; a Hugging Face checkpoint ([`crate::llm::hf`]) is loaded
//! as it is ([`RotaryRows`]).
//!
//! Weights are dequantized to `f32` at load, or kept in their quantized blocks and dequantized
//! when used ([`WeightStorage`]), and never take gradients; the tensors are named in
//! [`LlamaWeights`] by their GGUF names. [`Llama::attach_lora`] adds trainable adapters
//! ([`crate::llm::lora`]) to the projections; [`Llama::hidden_states`] (the frozen prefix, no
//! gradients) and [`Llama::last_logits_from_t`] (the adapted layers and the head at the last
//! position, with gradients) split the forward pass for fine-tuning.

use std::time::Instant;

use tch::{Device, Kind, Tensor};

use super::config::LlamaConfig;
use super::gguf::GgufFile;
use super::lora::{DecoderAdapters, Projection};
use super::{Error, Result};
use crate::train::lora::LoraConfig;

mod quantized;
mod weights;

use quantized::Weight;
pub use quantized::{QuantizedMatrix, CHUNK_VALUES};
pub use weights::{
    permute_rotary_rows, unpermute_rotary_rows, LlamaWeights, RotaryRows, WeightStorage,
};

/// A Llama decoder with frozen weights (`f32`, or kept quantized: [`WeightStorage`]) and,
/// optionally, trainable LoRA adapters.
#[derive(Debug)]
pub struct Llama {
    config: LlamaConfig,
    adapters: Option<DecoderAdapters>,
    embedding: Weight,
    blocks: Vec<Block>,
    norm: Tensor,
    output: Option<Weight>,
    rope: Rope,
    device: Device,
}

#[derive(Debug)]
struct Block {
    attn_norm: Tensor,
    q: Weight,
    k: Weight,
    v: Weight,
    o: Weight,
    ffn_norm: Tensor,
    gate: Weight,
    up: Weight,
    down: Weight,
}

/// The keys and values of the positions seen so far, per block (`[batch, head_count_kv,
/// positions, head_dim]`).
#[derive(Debug)]
pub struct KvCache {
    blocks: Vec<Option<(Tensor, Tensor)>>,
    len: i64,
}

impl KvCache {
    /// Positions cached.
    pub fn len(&self) -> i64 {
        self.len
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// Cosines and sines of the rotary angles, `[positions, head_dim]` (each frequency twice, as in
/// Hugging Face's `cat((freqs, freqs), -1)`).
#[derive(Debug)]
struct Rope {
    cos: Tensor,
    sin: Tensor,
}

impl Rope {
    fn new(config: &LlamaConfig, device: Device) -> Self {
        let hd = config.head_dim();
        let exponents = Tensor::arange_start_step(0, hd, 2, (Kind::Float, device)) / hd as f64;
        let inv_freq = Tensor::from(config.rope_freq_base)
            .to_device(device)
            .pow(&exponents)
            .reciprocal()
            .to_kind(Kind::Float);
        let positions = Tensor::arange(config.context_length, (Kind::Float, device));
        let freqs = positions.outer(&inv_freq);
        let angles = Tensor::cat(&[&freqs, &freqs], -1);
        Self {
            cos: angles.cos(),
            sin: angles.sin(),
        }
    }

    /// `x` (`[batch, heads, T, head_dim]`) rotated for positions `start..start + T`.
    fn apply(&self, x: &Tensor, start: i64) -> Tensor {
        let t = x.size()[2];
        let cos = self.cos.narrow(0, start, t);
        let sin = self.sin.narrow(0, start, t);
        let half = x.size()[3] / 2;
        let rotated = Tensor::cat(&[-x.narrow(3, half, half), x.narrow(3, 0, half)], 3);
        x * cos + rotated * sin
    }
}

impl Llama {
    /// Loads the decoder of a GGUF file, its weights held as `storage` says.
    pub fn from_gguf(file: &GgufFile, device: Device, storage: WeightStorage) -> Result<Self> {
        let config = LlamaConfig::from_gguf(file)?;
        Self::load(config, file, device, storage)
    }

    /// Builds the decoder of `config` from `weights` (GGUF names; the query and key rows in
    /// the order [`LlamaWeights::rotary_rows`] names, brought to Hugging Face's here), holding
    /// them as `storage` says.
    pub fn load(
        config: LlamaConfig,
        weights: &dyn LlamaWeights,
        device: Device,
        storage: WeightStorage,
    ) -> Result<Self> {
        config.validate()?;
        let (dim, ff, hd) = (
            config.embedding_length,
            config.feed_forward_length,
            config.head_dim(),
        );
        let kv = config.head_count_kv * hd;
        let get = |name: &str, shape: &[i64]| -> Result<Tensor> {
            let source = || weights.source_name(name);
            let t = weights
                .tensor(name)?
                .ok_or_else(|| Error::tensor(&source(), "absent"))?;
            if t.size() != shape {
                return Err(Error::tensor(
                    &source(),
                    format!("shape {:?}, expected {shape:?}", t.size()),
                ));
            }
            Ok(t.to_kind(Kind::Float).to_device(device))
        };
        // A matrix, kept quantized when asked and held so; the query and key rows (`heads`
        // given) brought to Hugging Face's order.
        let matrix = |name: &str, shape: [i64; 2], heads: Option<i64>| -> Result<Weight> {
            let kept = match storage {
                WeightStorage::Quantized => weights.quantized(name)?,
                WeightStorage::F32 => None,
            };
            let w = match kept {
                Some(q) if q.shape() != shape => {
                    return Err(Error::tensor(
                        &weights.source_name(name),
                        format!("shape {:?}, expected {shape:?}", q.shape()),
                    ))
                }
                Some(q) => Weight::Quantized(q.to_device(device)),
                None => Weight::F32(get(name, &shape)?),
            };
            Ok(match (heads, weights.rotary_rows()) {
                (Some(h), RotaryRows::Gguf) => w.map_rows(|t| unpermute_rotary_rows(t, h)),
                _ => w,
            })
        };
        let mut blocks = Vec::with_capacity(config.block_count as usize);
        for i in 0..config.block_count {
            let name = |part: &str| format!("blk.{i}.{part}.weight");
            blocks.push(Block {
                attn_norm: get(&name("attn_norm"), &[dim])?,
                q: matrix(&name("attn_q"), [dim, dim], Some(config.head_count))?,
                k: matrix(&name("attn_k"), [kv, dim], Some(config.head_count_kv))?,
                v: matrix(&name("attn_v"), [kv, dim], None)?,
                o: matrix(&name("attn_output"), [dim, dim], None)?,
                ffn_norm: get(&name("ffn_norm"), &[dim])?,
                gate: matrix(&name("ffn_gate"), [ff, dim], None)?,
                up: matrix(&name("ffn_up"), [ff, dim], None)?,
                down: matrix(&name("ffn_down"), [dim, ff], None)?,
            });
        }
        let vocab = config.vocab_size;
        let output = match config.tied_embeddings {
            true => None,
            false => Some(matrix("output.weight", [vocab, dim], None)?),
        };
        Ok(Self {
            embedding: matrix("token_embd.weight", [vocab, dim], None)?,
            norm: get("output_norm.weight", &[dim])?,
            output,
            blocks,
            rope: Rope::new(&config, device),
            config,
            adapters: None,
            device,
        })
    }

    /// Puts fresh adapters of `lora` on the decoder (replacing any), `A` drawn from libtorch's
    /// generator and `B = 0`: the output is unchanged until they are trained.
    pub fn attach_lora(&mut self, lora: LoraConfig) -> Result<()> {
        self.adapters = Some(DecoderAdapters::new(&self.config, lora, self.device)?);
        Ok(())
    }

    /// The adapters, when attached.
    pub fn adapters(&self) -> Option<&DecoderAdapters> {
        self.adapters.as_ref()
    }

    /// Layers below the first adapted one (the frozen prefix; all of them without adapters).
    pub fn frozen_layers(&self) -> i64 {
        self.adapters
            .as_ref()
            .map_or(self.config.block_count, |a| a.config().from_layer)
    }

    /// The configuration.
    pub fn config(&self) -> &LlamaConfig {
        &self.config
    }

    /// The device the weights live on.
    pub fn device(&self) -> Device {
        self.device
    }

    /// Number of parameters (the tied head counted once).
    pub fn parameter_count(&self) -> i64 {
        let norms: i64 = self.norms().map(|t| t.numel() as i64).sum();
        norms + self.matrices().map(Weight::numel).sum::<i64>()
    }

    /// Bytes held by the frozen weights: 4 a parameter in `f32`, the blocks' bytes for the
    /// matrices kept quantized (not counting the adapters).
    pub fn weight_bytes(&self) -> i64 {
        let norms: i64 = self.norms().map(|t| t.numel() as i64 * 4).sum();
        norms + self.matrices().map(Weight::bytes).sum::<i64>()
    }

    /// Whether any weight is kept quantized ([`WeightStorage::Quantized`] over a source holding
    /// quantized matrices).
    pub fn is_quantized(&self) -> bool {
        self.matrices().any(|w| matches!(w, Weight::Quantized(_)))
    }

    /// The weights by their GGUF names, as `f32` on the model's device (dequantized when kept
    /// quantized), the query and key rows in Hugging Face's order ([`RotaryRows::HuggingFace`]);
    /// the tied head is not listed apart from the embedding.
    pub fn named_weights(&self) -> Vec<(String, Tensor)> {
        let mut named = vec![
            ("token_embd.weight".to_owned(), self.embedding.to_f32()),
            ("output_norm.weight".to_owned(), self.norm.shallow_clone()),
        ];
        named.extend(
            self.output
                .iter()
                .map(|w| ("output.weight".to_owned(), w.to_f32())),
        );
        for (i, b) in self.blocks.iter().enumerate() {
            let name = |part: &str| format!("blk.{i}.{part}.weight");
            named.push((name("attn_norm"), b.attn_norm.shallow_clone()));
            named.push((name("ffn_norm"), b.ffn_norm.shallow_clone()));
            let matrices = [
                ("attn_q", &b.q),
                ("attn_k", &b.k),
                ("attn_v", &b.v),
                ("attn_output", &b.o),
                ("ffn_gate", &b.gate),
                ("ffn_up", &b.up),
                ("ffn_down", &b.down),
            ];
            named.extend(matrices.map(|(part, w)| (name(part), w.to_f32())));
        }
        named
    }

    fn norms(&self) -> impl Iterator<Item = &Tensor> {
        let per_block = self.blocks.iter().flat_map(|b| [&b.attn_norm, &b.ffn_norm]);
        std::iter::once(&self.norm).chain(per_block)
    }

    fn matrices(&self) -> impl Iterator<Item = &Weight> {
        let per_block = self
            .blocks
            .iter()
            .flat_map(|b| [&b.q, &b.k, &b.v, &b.o, &b.gate, &b.up, &b.down]);
        std::iter::once(&self.embedding)
            .chain(self.output.iter())
            .chain(per_block)
    }

    /// An empty cache for this model.
    pub fn new_cache(&self) -> KvCache {
        KvCache {
            blocks: (0..self.blocks.len()).map(|_| None).collect(),
            len: 0,
        }
    }

    /// Logits (`[batch, T, vocab]`) of the ids `[batch, T]` (`i64`), which follow the cached
    /// positions when `cache` is given (and are appended to it).
    pub fn forward(&self, ids: &Tensor, cache: Option<&mut KvCache>) -> Result<Tensor> {
        self.forward_to(ids, cache, false)
    }

    /// Logits (`[batch, vocab]`) after the last of the ids `[batch, T]`, as [`Self::forward`]
    /// gives them, with the head run at the last position only (and, without a cache, the last
    /// block too: [`Self::last_logits_from_t`]): what scoring and generation read.
    pub fn forward_last(&self, ids: &Tensor, cache: Option<&mut KvCache>) -> Result<Tensor> {
        match cache {
            Some(cache) => Ok(self.forward_to(ids, Some(cache), true)?.select(1, 0)),
            None => {
                tch::no_grad(|| self.last_logits_from_t(&self.hidden_states(ids, 0)?, 0, false))
            }
        }
    }

    fn forward_to(&self, ids: &Tensor, cache: Option<&mut KvCache>, last: bool) -> Result<Tensor> {
        let (_, t) = ids.size2()?;
        let start = cache.as_ref().map_or(0, |c| c.len);
        if start + t > self.config.context_length {
            return Err(Error::Config(format!(
                "{} positions exceed the context length {}",
                start + t,
                self.config.context_length
            )));
        }
        tch::no_grad(|| {
            let mut x = self.embedding.rows(&ids.to_device(self.device));
            let mask = (t > 1).then(|| causal_mask(t, start, self.device));
            let mut cache = cache;
            for (i, block) in self.blocks.iter().enumerate() {
                let slot = cache.as_deref_mut().map(|c| &mut c.blocks[i]);
                x = self.block(i, block, &x, start, mask.as_ref(), slot, false);
            }
            if let Some(c) = cache {
                c.len += t;
            }
            let x = if last { x.narrow(1, -1, 1) } else { x };
            let x = rms_norm(&x, &self.norm, self.config.rms_norm_eps);
            Ok(self.head().linear(&x))
        })
    }

    /// Hidden states `[batch, T, dim]` entering layer `layer` for the ids `[batch, T]`
    /// (positions from 0), without gradients: the frozen prefix's output when `layer` is
    /// [`Self::frozen_layers`].
    pub fn hidden_states(&self, ids: &Tensor, layer: i64) -> Result<Tensor> {
        let (_, t) = ids.size2()?;
        self.check_positions(t)?;
        tch::no_grad(|| {
            let mut x = self.embedding.rows(&ids.to_device(self.device));
            let mask = (t > 1).then(|| causal_mask(t, 0, self.device));
            for (i, block) in self.blocks.iter().enumerate().take(layer.max(0) as usize) {
                x = self.block(i, block, &x, 0, mask.as_ref(), None, false);
            }
            Ok(x)
        })
    }

    /// Logits `[batch, vocab]` at the last position, from the hidden states `[batch, T, dim]`
    /// entering layer `layer` (see [`Self::hidden_states`]), with gradients reaching the
    /// adapters; their dropout is active when `train` is set.
    pub fn last_logits_from_t(&self, hidden: &Tensor, layer: i64, train: bool) -> Result<Tensor> {
        let (_, t, _) = hidden.size3()?;
        self.check_positions(t)?;
        let mask = (t > 1).then(|| causal_mask(t, 0, self.device));
        let mut x = hidden.to_device(self.device);
        let last_block = self.blocks.len().saturating_sub(1);
        for (i, block) in self.blocks.iter().enumerate().skip(layer.max(0) as usize) {
            x = match i == last_block {
                // Only the last position's output is read: the last block computes keys and
                // values at every position, everything else at the last one.
                true => self.last_block(i, block, &x, train),
                false => self.block(i, block, &x, 0, mask.as_ref(), None, train),
            };
        }
        let last = rms_norm(&x.select(1, -1), &self.norm, self.config.rms_norm_eps);
        Ok(self.head().linear(&last))
    }

    /// The output head: its own weight, or the token embedding when tied.
    fn head(&self) -> &Weight {
        self.output.as_ref().unwrap_or(&self.embedding)
    }

    fn check_positions(&self, positions: i64) -> Result<()> {
        if positions > self.config.context_length {
            return Err(Error::Config(format!(
                "{positions} positions exceed the context length {}",
                self.config.context_length
            )));
        }
        Ok(())
    }

    /// `x Wᵀ`, plus the adapter's term when `projection` of `layer` carries one.
    fn project(
        &self,
        layer: usize,
        projection: Projection,
        x: &Tensor,
        w: &Weight,
        train: bool,
    ) -> Tensor {
        let base = w.linear(x);
        match self
            .adapters
            .as_ref()
            .and_then(|a| a.delta_t(layer, projection, x, train))
        {
            Some(delta) => base + delta,
            None => base,
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn block(
        &self,
        layer: usize,
        b: &Block,
        x: &Tensor,
        start: i64,
        mask: Option<&Tensor>,
        cache: Option<&mut Option<(Tensor, Tensor)>>,
        train: bool,
    ) -> Tensor {
        let eps = self.config.rms_norm_eps;
        let n = rms_norm(x, &b.attn_norm, eps);
        let x = x + self.attention(layer, b, &n, start, mask, cache, train);
        let n = rms_norm(&x, &b.ffn_norm, eps);
        let gate = self.project(layer, Projection::Gate, &n, &b.gate, train);
        let up = self.project(layer, Projection::Up, &n, &b.up, train);
        x + self.project(layer, Projection::Down, &(gate.silu() * up), &b.down, train)
    }

    /// A block's output `[batch, 1, dim]` at the last position of `x` (positions from 0):
    /// [`Self::block`]'s last row, without the other rows' queries, outputs and MLP.
    fn last_block(&self, layer: usize, b: &Block, x: &Tensor, train: bool) -> Tensor {
        let eps = self.config.rms_norm_eps;
        let n = rms_norm(x, &b.attn_norm, eps);
        let x = x.narrow(1, -1, 1) + self.attention_at(layer, b, &n, true, 0, None, None, train);
        let n = rms_norm(&x, &b.ffn_norm, eps);
        let gate = self.project(layer, Projection::Gate, &n, &b.gate, train);
        let up = self.project(layer, Projection::Up, &n, &b.up, train);
        x + self.project(layer, Projection::Down, &(gate.silu() * up), &b.down, train)
    }

    #[allow(clippy::too_many_arguments)]
    fn attention(
        &self,
        layer: usize,
        b: &Block,
        x: &Tensor,
        start: i64,
        mask: Option<&Tensor>,
        cache: Option<&mut Option<(Tensor, Tensor)>>,
        train: bool,
    ) -> Tensor {
        self.attention_at(layer, b, x, false, start, mask, cache, train)
    }

    /// Attention over `x` (positions from `start`): every position's output, or, with
    /// `last_only`, the last position's alone (its query attends every key; no mask).
    #[allow(clippy::too_many_arguments)]
    fn attention_at(
        &self,
        layer: usize,
        b: &Block,
        x: &Tensor,
        last_only: bool,
        start: i64,
        mask: Option<&Tensor>,
        cache: Option<&mut Option<(Tensor, Tensor)>>,
        train: bool,
    ) -> Tensor {
        let (batch, t, dim) = x.size3().expect("[batch, T, dim]");
        let (heads, kv_heads, hd) = (
            self.config.head_count,
            self.config.head_count_kv,
            self.config.head_dim(),
        );
        let split = |p: Projection, x: &Tensor, w: &Weight, h: i64| {
            let rows = x.size()[1];
            self.project(layer, p, x, w, train)
                .reshape([batch, rows, h, hd])
                .transpose(1, 2)
        };
        let (xq, q_start, rows) = match last_only {
            true => (x.narrow(1, -1, 1), start + t - 1, 1),
            false => (x.shallow_clone(), start, t),
        };
        let q = self
            .rope
            .apply(&split(Projection::Query, &xq, &b.q, heads), q_start);
        let mut k = self
            .rope
            .apply(&split(Projection::Key, x, &b.k, kv_heads), start);
        let mut v = split(Projection::Value, x, &b.v, kv_heads);
        if let Some(slot) = cache {
            if let Some((past_k, past_v)) = slot.as_ref() {
                k = Tensor::cat(&[past_k, &k], 2);
                v = Tensor::cat(&[past_v, &v], 2);
            }
            *slot = Some((k.shallow_clone(), v.shallow_clone()));
        }
        let s = k.size()[2];
        let group = heads / kv_heads;
        let repeat = |kv: &Tensor| {
            kv.unsqueeze(2)
                .expand([batch, kv_heads, group, s, hd], false)
                .reshape([batch, heads, s, hd])
        };
        // libtorch's fused attention (softmax(q k^T / sqrt(hd)) v in one kernel, no [T, T]
        // scores kept for the forward pass): causal by its own flag when the queries start at
        // position 0, with the mask (`true`: may attend) after a cached prefix.
        let (attn_mask, causal) = match mask.filter(|_| !last_only) {
            Some(_) if start == 0 => (None, true),
            Some(mask) => (Some(mask.logical_not()), false),
            None => (None, false),
        };
        let attended = Tensor::scaled_dot_product_attention(
            &q,
            &repeat(&k),
            &repeat(&v),
            attn_mask,
            0.0,
            causal,
            None,
            false,
        )
        .transpose(1, 2)
        .reshape([batch, rows, dim]);
        self.project(layer, Projection::Output, &attended, &b.o, train)
    }

    /// Log-probability of each token of `ids` given those before it (`ids.len() - 1` values:
    /// the first token has no context).
    pub fn token_log_probs(&self, ids: &[u32]) -> Result<Vec<f32>> {
        if ids.len() < 2 {
            return Ok(Vec::new());
        }
        let input = ids_tensor(ids);
        let logits = self.forward(&input, None)?;
        let t = ids.len() as i64;
        let log_probs = logits.narrow(1, 0, t - 1).log_softmax(-1, Kind::Float);
        let targets = input
            .narrow(1, 1, t - 1)
            .to_device(self.device)
            .unsqueeze(-1);
        let picked = log_probs.gather(-1, &targets, false).flatten(0, -1);
        Ok(Vec::<f32>::try_from(picked.to_device(Device::Cpu))?)
    }

    /// Greedy decoding: up to `max_tokens` new ids after `prompt`, stopping after any of
    /// `stop` (which is included in the ids returned).
    pub fn generate_greedy(
        &self,
        prompt: &[u32],
        max_tokens: usize,
        stop: &[u32],
    ) -> Result<Generation> {
        if prompt.is_empty() {
            return Err(Error::Config("an empty prompt".into()));
        }
        let mut cache = self.new_cache();
        let began = Instant::now();
        let logits = self.forward_last(&ids_tensor(prompt), Some(&mut cache))?;
        let mut next = last_argmax(&logits)?;
        let prefill_seconds = began.elapsed().as_secs_f64();

        let began = Instant::now();
        let mut ids = Vec::new();
        let mut stopped = false;
        while ids.len() < max_tokens {
            ids.push(next);
            if stop.contains(&next) {
                stopped = true;
                break;
            }
            if ids.len() == max_tokens {
                break;
            }
            let logits = self.forward_last(&ids_tensor(&[next]), Some(&mut cache))?;
            next = last_argmax(&logits)?;
        }
        Ok(Generation {
            prompt_tokens: prompt.len(),
            ids,
            stopped,
            prefill_seconds,
            decode_seconds: began.elapsed().as_secs_f64(),
        })
    }
}

/// The result of [`Llama::generate_greedy`].
#[derive(Clone, Debug, PartialEq)]
pub struct Generation {
    /// Tokens in the prompt.
    pub prompt_tokens: usize,
    /// The ids generated (ending with the stop id when `stopped`).
    pub ids: Vec<u32>,
    /// Whether a stop id ended the answer (else `max_tokens` did).
    pub stopped: bool,
    /// Seconds of the prompt's forward pass (which also yields the first new token).
    pub prefill_seconds: f64,
    /// Seconds of the one-token steps after it.
    pub decode_seconds: f64,
}

impl Generation {
    /// Prompt tokens per second of the prefill.
    pub fn prefill_tokens_per_second(&self) -> f64 {
        self.prompt_tokens as f64 / self.prefill_seconds
    }

    /// Generated tokens per second of the one-token steps (the first token comes from the
    /// prefill).
    pub fn decode_tokens_per_second(&self) -> f64 {
        self.ids.len().saturating_sub(1) as f64 / self.decode_seconds
    }
}

fn ids_tensor(ids: &[u32]) -> Tensor {
    let ids: Vec<i64> = ids.iter().map(|&i| i64::from(i)).collect();
    Tensor::from_slice(&ids).unsqueeze(0)
}

/// The likeliest id of logits `[1, vocab]`.
fn last_argmax(logits: &Tensor) -> Result<u32> {
    let id = logits.argmax(-1, false).int64_value(&[0]);
    u32::try_from(id).map_err(|_| Error::Config(format!("token id {id} out of range")))
}

/// `true` where query `i` (position `start + i`) must not see key `j`: `j > start + i`.
fn causal_mask(t: i64, start: i64, device: Device) -> Tensor {
    let queries = Tensor::arange(t, (Kind::Int64, device)).unsqueeze(1) + start;
    let keys = Tensor::arange(start + t, (Kind::Int64, device)).unsqueeze(0);
    keys.gt_tensor(&queries)
}

fn rms_norm(x: &Tensor, weight: &Tensor, eps: f64) -> Tensor {
    let variance = x.square().mean_dim(-1, true, Kind::Float);
    x * (variance + eps).rsqrt() * weight
}

#[cfg(test)]
pub(crate) mod tests;
