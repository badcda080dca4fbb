//! LoRA: low-rank adapters on frozen linear layers (Hu et al. 2021, "LoRA: Low-Rank Adaptation of
//! Large Language Models", arXiv:2106.09685).
//!
//! An adapted layer computes `y = x Wᵀ + b + (alpha / rank) · dropout(x) Aᵀ Bᵀ`, where the base
//! weight `W` and bias `b` are frozen, `A` (`rank × in`) starts Kaiming-uniform as in PEFT and `B`
//! (`out × rank`) starts at zero, so a fresh adapter leaves the layer unchanged. The variable
//! names `lora_a` and `lora_b` are part of the update file format.

use serde::{Deserialize, Serialize};
use tch::nn::{self, Init};
use tch::Tensor;

use super::{Error, Result};

/// Variable name of the `A` matrix (`rank × in_features`).
pub const LORA_A: &str = "lora_a";
/// Variable name of the `B` matrix (`out_features × rank`).
pub const LORA_B: &str = "lora_b";

/// Which attention projections carry adapters, and their shape.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LoraConfig {
    /// Rank of the update `B·A`.
    pub rank: i64,
    /// Scale numerator: the update is multiplied by `alpha / rank`.
    pub alpha: f64,
    /// Dropout applied to the adapter's input while training.
    pub dropout: f64,
    /// Adapted projections among `query`, `key`, `value`, `output` (attention output dense);
    /// the decoder also takes `gate`, `up`, `down` ([`crate::llm::lora::TARGETS`]).
    pub targets: Vec<String>,
    /// First adapted layer: layers below it carry no adapter, so they form a frozen prefix whose
    /// output does not depend on any trainable tensor (see [`crate::train::prefix`]). 0 adapts
    /// every layer (the default, and what models saved without this field mean).
    #[serde(default)]
    pub from_layer: i64,
}

impl Default for LoraConfig {
    fn default() -> Self {
        Self {
            rank: 8,
            alpha: 16.0,
            dropout: 0.1,
            targets: vec!["query".into(), "value".into()],
            from_layer: 0,
        }
    }
}

/// Projections that may carry adapters.
pub const TARGETS: [&str; 4] = ["query", "key", "value", "output"];

impl LoraConfig {
    /// Checks ranges and target names (BERT's [`TARGETS`]).
    pub fn validate(&self) -> Result<()> {
        self.validate_for(&TARGETS)
    }

    /// Checks ranges, and that every target is one of `allowed` (the projections of the model
    /// the adapters go on).
    pub fn validate_for(&self, allowed: &[&str]) -> Result<()> {
        if self.rank < 1 {
            return Err(Error::Config(format!("LoRA rank {} < 1", self.rank)));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(Error::Config(format!(
                "LoRA dropout {} not in [0, 1)",
                self.dropout
            )));
        }
        if self.from_layer < 0 {
            return Err(Error::Config(format!(
                "LoRA from_layer {} < 0",
                self.from_layer
            )));
        }
        if let Some(bad) = self.targets.iter().find(|t| !allowed.contains(&t.as_str())) {
            return Err(Error::Config(format!(
                "unknown LoRA target {bad:?} (expected one of {allowed:?})"
            )));
        }
        Ok(())
    }

    /// Whether the projection `name` carries an adapter.
    pub fn targets(&self, name: &str) -> bool {
        self.targets.iter().any(|t| t == name)
    }

    /// Whether layer `layer` (from 0) carries adapters.
    pub fn adapts_layer(&self, layer: i64) -> bool {
        layer >= self.from_layer
    }
}

/// A linear layer with frozen weights and an optional trainable low-rank adapter.
#[derive(Debug)]
pub struct LoraLinear {
    weight: Tensor,
    bias: Tensor,
    adapter: Option<LoraAdapter>,
}

/// The trainable part of an adapted layer: `A`, `B` and the scale, whatever the frozen layer
/// is (BERT's [`LoraLinear`], the Llama decoder's projections in [`crate::llm::lora`]).
#[derive(Debug)]
pub struct LoraAdapter {
    a: Tensor,
    b: Tensor,
    scale: f64,
    dropout: f64,
}

impl LoraAdapter {
    /// A fresh adapter under `path` (`lora_a`, `lora_b`) for a layer of `in_features` inputs
    /// and `out_features` outputs: `A` Kaiming-uniform, `B` zero.
    pub fn new(path: nn::Path<'_>, in_features: i64, out_features: i64, cfg: &LoraConfig) -> Self {
        Self {
            // PEFT initialises A with kaiming_uniform_(a = sqrt(5)): bound = 1 / sqrt(in).
            a: path.var(
                LORA_A,
                &[cfg.rank, in_features],
                Init::Uniform {
                    lo: -1.0 / (in_features as f64).sqrt(),
                    up: 1.0 / (in_features as f64).sqrt(),
                },
            ),
            b: path.var(LORA_B, &[out_features, cfg.rank], Init::Const(0.0)),
            scale: cfg.alpha / cfg.rank as f64,
            dropout: cfg.dropout,
        }
    }

    /// The adapter's term `(alpha / rank) · dropout(x) Aᵀ Bᵀ`, added to the frozen layer's
    /// output; dropout is active only when `train` is set.
    pub fn delta_t(&self, x: &Tensor, train: bool) -> Tensor {
        x.dropout(self.dropout, train)
            .linear::<Tensor>(&self.a, None)
            .linear::<Tensor>(&self.b, None)
            * self.scale
    }

    /// Trainable parameters: `rank · (in + out)`.
    pub fn parameters(rank: i64, in_features: i64, out_features: i64) -> i64 {
        rank * (in_features + out_features)
    }
}

impl LoraLinear {
    /// A frozen linear layer under `base` (`weight`, `bias`, as in the checkpoint) and, when
    /// `lora` is given, an adapter under `adapter` (`lora_a`, `lora_b`).
    pub fn new(
        base: nn::Path<'_>,
        adapter: nn::Path<'_>,
        in_features: i64,
        out_features: i64,
        lora: Option<&LoraConfig>,
    ) -> Self {
        let weight = base.var("weight", &[out_features, in_features], Init::Const(0.0));
        let bias = base.var("bias", &[out_features], Init::Const(0.0));
        let adapter = lora.map(|cfg| LoraAdapter::new(adapter, in_features, out_features, cfg));
        Self {
            weight,
            bias,
            adapter,
        }
    }

    /// Applies the layer; the adapter's dropout is active only when `train` is set.
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let base = x.linear(&self.weight, Some(&self.bias));
        match &self.adapter {
            None => base,
            Some(adapter) => base + adapter.delta_t(x, train),
        }
    }

    /// The base layer alone, without the adapter.
    pub fn forward_base(&self, x: &Tensor) -> Tensor {
        x.linear(&self.weight, Some(&self.bias))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use tch::{Device, Kind};

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        /// With B = 0 (a fresh adapter) the adapted layer equals its base layer, whatever A,
        /// the rank, the scale and the input are.
        #[test]
        fn zero_b_equals_the_base_layer(
            seed in 0u64..1_000,
            rank in 1i64..6,
            alpha in 0.5f64..64.0,
            in_f in 1i64..24,
            out_f in 1i64..24,
            rows in 1i64..5,
        ) {
            let _generator = crate::train::seeded(seed);
            let adapters = nn::VarStore::new(Device::Cpu);
            let base = nn::VarStore::new(Device::Cpu);
            let cfg = LoraConfig { rank, alpha, dropout: 0.0, ..LoraConfig::default() };
            let layer = LoraLinear::new(base.root(), adapters.root(), in_f, out_f, Some(&cfg));
            tch::no_grad(|| {
                for (_, mut v) in base.variables() {
                    v.copy_(&Tensor::randn(v.size(), (Kind::Float, Device::Cpu)));
                }
            });
            let x = Tensor::randn([rows, in_f], (Kind::Float, Device::Cpu));
            prop_assert!(layer.forward_t(&x, false).equal(&layer.forward_base(&x)));
            // A non-zero B changes the output.
            tch::no_grad(|| {
                for (_, mut v) in adapters.variables() {
                    v.copy_(&Tensor::ones(v.size(), (Kind::Float, Device::Cpu)));
                }
            });
            prop_assert!(!layer.forward_t(&x, false).equal(&layer.forward_base(&x)));
        }
    }

    #[test]
    fn config_rejects_unknown_targets_and_bad_ranks() {
        assert!(LoraConfig::default().validate().is_ok());
        let bad_target = LoraConfig {
            targets: vec!["queries".into()],
            ..LoraConfig::default()
        };
        assert!(bad_target.validate().is_err());
        let bad_rank = LoraConfig {
            rank: 0,
            ..LoraConfig::default()
        };
        assert!(bad_rank.validate().is_err());
        let bad_layer = LoraConfig {
            from_layer: -1,
            ..LoraConfig::default()
        };
        assert!(bad_layer.validate().is_err());
    }

    #[test]
    fn configs_saved_before_from_layer_adapt_every_layer() {
        let old = r#"{"rank":8,"alpha":16.0,"dropout":0.1,"targets":["query","value"]}"#;
        let cfg: LoraConfig = serde_json::from_str(old).unwrap();
        assert_eq!(cfg, LoraConfig::default());
        assert!(cfg.adapts_layer(0));
        let top = LoraConfig {
            from_layer: 4,
            ..cfg
        };
        assert!(!top.adapts_layer(3) && top.adapts_layer(4) && top.adapts_layer(5));
    }
}
