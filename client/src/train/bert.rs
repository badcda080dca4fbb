//! A BERT encoder (Devlin et al. 2019, "BERT: Pre-training of Deep Bidirectional Transformers",
//! arXiv:1810.04805) with LoRA adapters and a classification head, following the Hugging Face
//! `BertModel` layout so that checkpoints load by tensor name.
//!
//! Two variable stores keep what is frozen apart from what is trained:
//! - the **base** store holds the checkpoint's tensors under the checkpoint's names
//!   (`embeddings.word_embeddings.weight`, `encoder.layer.0.attention.self.query.weight`, ...);
//! - the **trainable** store holds the adapters (`encoder.layer.0.attention.self.query.lora_a`)
//!   and the head (`classifier.weight`, `classifier.bias`). Its tensors are the update a member
//!   shares.
//!
//! Sentences are mean-pooled over the attention mask (as sentence-transformers does for
//! all-MiniLM-L6-v2) before the head.
//!
//! With adapters only on layers `K..L` ([`LoraConfig::from_layer`] = `K > 0`), the embeddings
//! and layers `0..K` form a **frozen prefix**: its output depends on no trainable tensor. The
//! forward pass is split there ([`BertClassifier::prefix_t`], then
//! [`BertClassifier::forward_from_prefix_t`]) so that the prefix can be computed once per text
//! and cached ([`crate::train::prefix`]). A frozen prefix always runs in evaluation mode: no
//! dropout in the embeddings or layers `0..K`, even while training; dropout stays on in the
//! adapted layers and before the head. That makes a cached prefix exact, not an approximation.

use serde::{Deserialize, Serialize};
use tch::nn::{self, Init, Module};
use tch::{Device, Kind, Tensor};

use super::lora::{LoraConfig, LoraLinear};
use super::{Error, Result};

/// The architecture fields of a Hugging Face BERT `config.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BertConfig {
    /// Vocabulary size.
    pub vocab_size: i64,
    /// Width of the hidden states.
    pub hidden_size: i64,
    /// Number of transformer layers.
    pub num_hidden_layers: i64,
    /// Attention heads per layer.
    pub num_attention_heads: i64,
    /// Width of the feed-forward layer.
    pub intermediate_size: i64,
    /// Longest sequence the position embeddings cover.
    pub max_position_embeddings: i64,
    /// Number of token types (segments).
    #[serde(default = "two")]
    pub type_vocab_size: i64,
    /// Layer-norm epsilon.
    #[serde(default = "layer_norm_eps")]
    pub layer_norm_eps: f64,
    /// Dropout on hidden states.
    #[serde(default = "dropout")]
    pub hidden_dropout_prob: f64,
    /// Dropout on attention probabilities.
    #[serde(default = "dropout")]
    pub attention_probs_dropout_prob: f64,
    /// Activation of the feed-forward layer (`gelu` only).
    #[serde(default = "gelu")]
    pub hidden_act: String,
}

fn two() -> i64 {
    2
}
fn layer_norm_eps() -> f64 {
    1e-12
}
fn dropout() -> f64 {
    0.1
}
fn gelu() -> String {
    "gelu".into()
}

impl BertConfig {
    /// Checks that the shapes are consistent and the activation is supported.
    pub fn validate(&self) -> Result<()> {
        if self.hidden_size % self.num_attention_heads != 0 {
            return Err(Error::Config(format!(
                "hidden_size {} is not a multiple of num_attention_heads {}",
                self.hidden_size, self.num_attention_heads
            )));
        }
        if self.hidden_act != "gelu" {
            return Err(Error::Config(format!(
                "hidden_act {:?} is not supported (gelu only)",
                self.hidden_act
            )));
        }
        Ok(())
    }

    /// A tiny two-layer configuration for fast tests.
    pub fn tiny(vocab_size: i64) -> Self {
        Self {
            vocab_size,
            hidden_size: 32,
            num_hidden_layers: 2,
            num_attention_heads: 4,
            intermediate_size: 64,
            max_position_embeddings: 64,
            type_vocab_size: 2,
            layer_norm_eps: 1e-12,
            hidden_dropout_prob: 0.1,
            attention_probs_dropout_prob: 0.1,
            hidden_act: gelu(),
        }
    }
}

fn layer_norm(p: nn::Path<'_>, size: i64, eps: f64) -> nn::LayerNorm {
    nn::layer_norm(
        p,
        vec![size],
        nn::LayerNormConfig {
            eps,
            ..Default::default()
        },
    )
}

fn frozen_linear(p: nn::Path<'_>, in_f: i64, out_f: i64) -> nn::Linear {
    nn::linear(
        p,
        in_f,
        out_f,
        nn::LinearConfig {
            ws_init: Init::Const(0.0),
            bs_init: Some(Init::Const(0.0)),
            bias: true,
        },
    )
}

#[derive(Debug)]
struct Layer {
    query: LoraLinear,
    key: LoraLinear,
    value: LoraLinear,
    attention_output: LoraLinear,
    attention_norm: nn::LayerNorm,
    intermediate: nn::Linear,
    output: nn::Linear,
    output_norm: nn::LayerNorm,
}

impl Layer {
    fn new(
        base: nn::Path<'_>,
        trainable: nn::Path<'_>,
        cfg: &BertConfig,
        lora: Option<&LoraConfig>,
    ) -> Self {
        let h = cfg.hidden_size;
        let adapted = |name: &str, b: nn::Path<'_>, t: nn::Path<'_>| {
            LoraLinear::new(b, t, h, h, lora.filter(|l| l.targets(name)))
        };
        let (bs, ts) = (
            &base / "attention" / "self",
            &trainable / "attention" / "self",
        );
        let (bo, to) = (
            &base / "attention" / "output",
            &trainable / "attention" / "output",
        );
        Self {
            query: adapted("query", &bs / "query", &ts / "query"),
            key: adapted("key", &bs / "key", &ts / "key"),
            value: adapted("value", &bs / "value", &ts / "value"),
            attention_output: adapted("output", &bo / "dense", &to / "dense"),
            attention_norm: layer_norm(&bo / "LayerNorm", h, cfg.layer_norm_eps),
            intermediate: frozen_linear(&base / "intermediate" / "dense", h, cfg.intermediate_size),
            output: frozen_linear(&base / "output" / "dense", cfg.intermediate_size, h),
            output_norm: layer_norm(&base / "output" / "LayerNorm", h, cfg.layer_norm_eps),
        }
    }

    fn forward_t(&self, x: &Tensor, mask: &Tensor, cfg: &BertConfig, train: bool) -> Tensor {
        let (b, s, h) = x.size3().expect("hidden states are [batch, seq, hidden]");
        let heads = cfg.num_attention_heads;
        let split = |t: Tensor| t.view([b, s, heads, h / heads]).transpose(1, 2);
        let q = split(self.query.forward_t(x, train));
        let k = split(self.key.forward_t(x, train));
        let v = split(self.value.forward_t(x, train));
        let p = if train {
            cfg.attention_probs_dropout_prob
        } else {
            0.0
        };
        let context =
            Tensor::scaled_dot_product_attention(&q, &k, &v, Some(mask), p, false, None, false)
                .transpose(1, 2)
                .contiguous()
                .view([b, s, h]);
        let attended = self
            .attention_output
            .forward_t(&context, train)
            .dropout(cfg.hidden_dropout_prob, train);
        let attended = self.attention_norm.forward(&(attended + x));
        let inner = self.intermediate.forward(&attended).gelu("none");
        let out = self
            .output
            .forward(&inner)
            .dropout(cfg.hidden_dropout_prob, train);
        self.output_norm.forward(&(out + attended))
    }
}

/// A BERT encoder with adapters, mean pooling and a linear classification head.
#[derive(Debug)]
pub struct BertClassifier {
    config: BertConfig,
    lora: LoraConfig,
    num_labels: i64,
    base: nn::VarStore,
    trainable: nn::VarStore,
    word_embeddings: nn::Embedding,
    position_embeddings: nn::Embedding,
    token_type_embeddings: nn::Embedding,
    embedding_norm: nn::LayerNorm,
    layers: Vec<Layer>,
    head: nn::Linear,
}

impl BertClassifier {
    /// Builds the model with zero base weights (load a checkpoint with
    /// [`Self::base_mut`]`.load(...)` or randomise with [`Self::randomize_base`]) and freshly
    /// initialised adapters and head (drawn from libtorch's global generator).
    pub fn new(
        config: BertConfig,
        lora: LoraConfig,
        num_labels: i64,
        device: Device,
    ) -> Result<Self> {
        config.validate()?;
        lora.validate()?;
        if lora.from_layer > config.num_hidden_layers {
            return Err(Error::Config(format!(
                "LoRA from layer {} of a {}-layer model",
                lora.from_layer, config.num_hidden_layers
            )));
        }
        if num_labels < 2 {
            return Err(Error::Config(format!(
                "{num_labels} labels: need at least 2"
            )));
        }
        let mut base = nn::VarStore::new(device);
        let trainable = nn::VarStore::new(device);
        let (b, t) = (base.root(), trainable.root());
        let h = config.hidden_size;
        let emb = &b / "embeddings";
        let zero = nn::EmbeddingConfig {
            ws_init: Init::Const(0.0),
            ..Default::default()
        };
        let word_embeddings = nn::embedding(&emb / "word_embeddings", config.vocab_size, h, zero);
        let position_embeddings = nn::embedding(
            &emb / "position_embeddings",
            config.max_position_embeddings,
            h,
            zero,
        );
        let token_type_embeddings = nn::embedding(
            &emb / "token_type_embeddings",
            config.type_vocab_size,
            h,
            zero,
        );
        let embedding_norm = layer_norm(&emb / "LayerNorm", h, config.layer_norm_eps);
        let layers = (0..config.num_hidden_layers)
            .map(|i| {
                let name = i.to_string();
                Layer::new(
                    &b / "encoder" / "layer" / &name,
                    &t / "encoder" / "layer" / &name,
                    &config,
                    lora.adapts_layer(i).then_some(&lora),
                )
            })
            .collect();
        let head = nn::linear(&t / "classifier", h, num_labels, Default::default());
        base.freeze();
        Ok(Self {
            config,
            lora,
            num_labels,
            base,
            trainable,
            word_embeddings,
            position_embeddings,
            token_type_embeddings,
            embedding_norm,
            layers,
            head,
        })
    }

    /// Fills the base weights as BERT initialises them (normal(0, 0.02) matrices, zero biases,
    /// unit layer norms): the tiny random model of tests, drawn from libtorch's global generator.
    pub fn randomize_base(&mut self) {
        tch::no_grad(|| {
            let mut vars: Vec<(String, Tensor)> = self.base.variables().into_iter().collect();
            vars.sort_by(|a, b| a.0.cmp(&b.0));
            for (name, var) in vars {
                let value = if name.ends_with("LayerNorm.weight") {
                    Tensor::ones(var.size(), (Kind::Float, var.device()))
                } else if name.ends_with("bias") {
                    Tensor::zeros(var.size(), (Kind::Float, var.device()))
                } else {
                    Tensor::randn(var.size(), (Kind::Float, var.device())) * 0.02
                };
                let mut var = var;
                var.copy_(&value);
            }
        });
    }

    /// The architecture.
    pub fn config(&self) -> &BertConfig {
        &self.config
    }

    /// The adapter configuration.
    pub fn lora(&self) -> &LoraConfig {
        &self.lora
    }

    /// Number of classes of the head.
    pub fn num_labels(&self) -> i64 {
        self.num_labels
    }

    /// The device the model lives on.
    pub fn device(&self) -> Device {
        self.trainable.device()
    }

    /// The frozen base weights, named as in the checkpoint.
    pub fn base(&self) -> &nn::VarStore {
        &self.base
    }

    /// Mutable access to the base store, to load a checkpoint into it.
    pub fn base_mut(&mut self) -> &mut nn::VarStore {
        &mut self.base
    }

    /// The trainable tensors (adapters and head): what an update carries.
    pub fn trainable(&self) -> &nn::VarStore {
        &self.trainable
    }

    /// Mutable access to the trainable store.
    pub fn trainable_mut(&mut self) -> &mut nn::VarStore {
        &mut self.trainable
    }

    /// Number of scalar parameters in the trainable store.
    pub fn trainable_parameters(&self) -> i64 {
        self.trainable
            .variables()
            .values()
            .map(Tensor::numel)
            .sum::<usize>() as i64
    }

    /// Number of bottom layers without adapters ([`LoraConfig::from_layer`]): 0 when every
    /// layer is adapted. With `K > 0`, [`Self::prefix_t`] depends on no trainable tensor.
    pub fn frozen_layers(&self) -> usize {
        self.lora.from_layer as usize
    }

    /// Hidden states `[batch, seq, hidden]` entering the first adapted layer: the embeddings and
    /// the frozen layers below it. With a frozen prefix this ignores `train` (no dropout, see
    /// the module docs); without one it is the embeddings, with their dropout when training.
    pub fn prefix_t(&self, ids: &Tensor, mask: &Tensor, train: bool) -> Tensor {
        let train = train && self.frozen_layers() == 0;
        let (b, s) = ids.size2().expect("ids are [batch, seq]");
        let device = ids.device();
        let positions = Tensor::arange(s, (Kind::Int64, device)).unsqueeze(0);
        let types = Tensor::zeros([b, s], (Kind::Int64, device));
        let mut x = self.word_embeddings.forward(ids)
            + self.position_embeddings.forward(&positions)
            + self.token_type_embeddings.forward(&types);
        x = self
            .embedding_norm
            .forward(&x)
            .dropout(self.config.hidden_dropout_prob, train);
        let attend = attention_mask(mask);
        for layer in &self.layers[..self.frozen_layers()] {
            x = layer.forward_t(&x, &attend, &self.config, train);
        }
        x
    }

    /// Mean-pooled sentence embeddings `[batch, hidden]` from the output of [`Self::prefix_t`].
    fn embed_from_prefix_t(&self, hidden: &Tensor, mask: &Tensor, train: bool) -> Tensor {
        let attend = attention_mask(mask);
        let mut x = hidden.shallow_clone();
        for layer in &self.layers[self.frozen_layers()..] {
            x = layer.forward_t(&x, &attend, &self.config, train);
        }
        let weights = mask.to_kind(Kind::Float).unsqueeze(-1);
        let summed = (x * &weights).sum_dim_intlist(1, false, Kind::Float);
        summed
            / weights
                .sum_dim_intlist(1, false, Kind::Float)
                .clamp_min(1e-9)
    }

    /// Mean-pooled sentence embeddings `[batch, hidden]` of `ids` and `mask` (`[batch, seq]`,
    /// `Int64`; the mask is 1 on tokens and 0 on padding).
    pub fn embed_t(&self, ids: &Tensor, mask: &Tensor, train: bool) -> Tensor {
        self.embed_from_prefix_t(&self.prefix_t(ids, mask, train), mask, train)
    }

    /// Class logits `[batch, num_labels]`.
    pub fn forward_t(&self, ids: &Tensor, mask: &Tensor, train: bool) -> Tensor {
        self.forward_from_prefix_t(&self.prefix_t(ids, mask, train), mask, train)
    }

    /// Class logits `[batch, num_labels]` from the output of [`Self::prefix_t`] (computed now or
    /// read from a cache; padding positions may hold anything, the mask hides them).
    pub fn forward_from_prefix_t(&self, hidden: &Tensor, mask: &Tensor, train: bool) -> Tensor {
        let pooled = self
            .embed_from_prefix_t(hidden, mask, train)
            .dropout(self.config.hidden_dropout_prob, train);
        self.head.forward(&pooled)
    }
}

/// The `[batch, 1, 1, seq]` boolean attention mask of a `[batch, seq]` token mask.
fn attention_mask(mask: &Tensor) -> Tensor {
    let (b, s) = mask.size2().expect("mask is [batch, seq]");
    mask.to_kind(Kind::Bool).view([b, 1, 1, s])
}
