//! Fine-tuning and evaluation loops: AdamW on the trainable store, a linear warmup then linear
//! decay learning rate, gradient-norm clipping, and seeded shuffling and dropout.
//!
//! On CPU a seed fixes the result bit for bit: batches are shuffled by a `StdRng` seeded from
//! `(seed, epoch)` and libtorch's generator (dropout) is seeded once per call of [`train`].
//!
//! [`train_on`] and [`evaluate_on`] take the model's [`Inputs`]: tokens through the whole
//! encoder, or cached frozen-prefix states ([`crate::train::prefix`]) through the adapted
//! layers only, which is what makes many federated rounds affordable on a CPU.

use indicatif::{ProgressBar, ProgressStyle};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};
use tch::nn::{self, OptimizerConfig};
use tch::{Kind, Tensor};

use super::bert::BertClassifier;
use super::data::Dataset;
use super::metrics::Scores;
use super::prefix::Inputs;
use super::tokenize::TextEncoder;
use super::{Error, Result};

/// Optimisation settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// Passes over the data.
    pub epochs: usize,
    /// Examples per step.
    pub batch_size: usize,
    /// Peak learning rate.
    pub learning_rate: f64,
    /// AdamW decoupled weight decay.
    pub weight_decay: f64,
    /// Fraction of the steps spent warming up linearly from 0.
    pub warmup_fraction: f64,
    /// Largest global gradient L2 norm (0 disables clipping).
    pub max_grad_norm: f64,
    /// Seed of shuffling and dropout.
    pub seed: u64,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            epochs: 3,
            batch_size: 16,
            learning_rate: 1e-3,
            weight_decay: 0.01,
            warmup_fraction: 0.06,
            max_grad_norm: 1.0,
            seed: 42,
        }
    }
}

impl TrainConfig {
    /// Learning rate at `step` of `total`: linear warmup to the peak, then linear decay to 0.
    pub fn learning_rate_at(&self, step: usize, total: usize) -> f64 {
        let warmup = (self.warmup_fraction * total as f64).ceil() as usize;
        if step < warmup {
            self.learning_rate * (step + 1) as f64 / warmup as f64
        } else {
            let remaining = total.saturating_sub(step) as f64;
            self.learning_rate * remaining / (total - warmup).max(1) as f64
        }
    }
}

/// What one epoch did.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpochStats {
    /// Epoch number, from 1.
    pub epoch: usize,
    /// Mean training loss over the epoch's examples.
    pub loss: f64,
    /// Optimiser steps taken.
    pub steps: usize,
    /// Wall-clock seconds.
    pub seconds: f64,
}

/// Scores and mean loss of a model on a dataset.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    /// Mean cross-entropy.
    pub loss: f64,
    /// Accuracy, macro-F1, confusion matrix.
    #[serde(flatten)]
    pub scores: Scores,
}

fn labels_tensor(data: &Dataset, indices: &[usize], model: &BertClassifier) -> Tensor {
    let labels: Vec<i64> = indices
        .iter()
        .map(|&i| data.examples[i].label as i64)
        .collect();
    Tensor::from_slice(&labels).to_device(model.device())
}

/// Fine-tunes the trainable tensors of `model` on `data`, calling `on_epoch` after each epoch.
/// A progress bar is drawn on stderr when `progress` is set.
pub fn train(
    model: &BertClassifier,
    encoder: &TextEncoder,
    data: &Dataset,
    config: &TrainConfig,
    progress: bool,
    on_epoch: impl FnMut(&EpochStats) -> Result<()>,
) -> Result<Vec<EpochStats>> {
    train_on(
        model,
        Inputs::Tokens(encoder),
        data,
        config,
        progress,
        on_epoch,
    )
}

/// [`train`] with the model fed by `inputs` (tokens, or cached frozen-prefix states): the same
/// steps, draws and result either way.
pub fn train_on(
    model: &BertClassifier,
    inputs: Inputs<'_>,
    data: &Dataset,
    config: &TrainConfig,
    progress: bool,
    mut on_epoch: impl FnMut(&EpochStats) -> Result<()>,
) -> Result<Vec<EpochStats>> {
    if config.batch_size == 0 || data.is_empty() {
        return Err(Error::Config("empty data or batch size 0".into()));
    }
    if data.num_labels() as i64 != model.num_labels() {
        return Err(Error::Data(format!(
            "{} classes in the data, {} in the model",
            data.num_labels(),
            model.num_labels()
        )));
    }
    let _generator = super::seeded(config.seed);
    let mut optimizer = nn::AdamW {
        wd: config.weight_decay,
        ..Default::default()
    }
    .build(model.trainable(), config.learning_rate)?;
    let per_epoch = data.len().div_ceil(config.batch_size);
    let total = per_epoch * config.epochs;
    let bar = if progress {
        ProgressBar::new(total as u64)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} steps {msg}")
            .map_err(|e| Error::Config(e.to_string()))?,
    );
    let mut history = Vec::with_capacity(config.epochs);
    let mut step = 0;
    for epoch in 1..=config.epochs {
        let started = std::time::Instant::now();
        let mut order: Vec<usize> = (0..data.len()).collect();
        order.shuffle(&mut StdRng::seed_from_u64(
            config.seed ^ (epoch as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15),
        ));
        let mut loss_sum = 0.0;
        for chunk in order.chunks(config.batch_size) {
            let texts: Vec<&str> = chunk
                .iter()
                .map(|&i| data.examples[i].text.as_str())
                .collect();
            let labels = labels_tensor(data, chunk, model);
            let loss = inputs
                .logits(model, &texts, true)?
                .cross_entropy_for_logits(&labels);
            optimizer.set_lr(config.learning_rate_at(step, total));
            optimizer.zero_grad();
            loss.backward();
            if config.max_grad_norm > 0.0 {
                optimizer.clip_grad_norm(config.max_grad_norm);
            }
            optimizer.step();
            let value = f64::try_from(&loss)?;
            loss_sum += value * chunk.len() as f64;
            step += 1;
            bar.inc(1);
            bar.set_message(format!("epoch {epoch} loss {value:.4}"));
        }
        let stats = EpochStats {
            epoch,
            loss: loss_sum / data.len() as f64,
            steps: per_epoch,
            seconds: started.elapsed().as_secs_f64(),
        };
        bar.suspend(|| on_epoch(&stats))?;
        history.push(stats);
    }
    bar.finish_and_clear();
    Ok(history)
}

/// Predicted classes and summed loss of `data` in batches of `batch_size`.
pub fn evaluate(
    model: &BertClassifier,
    encoder: &TextEncoder,
    data: &Dataset,
    batch_size: usize,
) -> Result<Evaluation> {
    evaluate_on(model, Inputs::Tokens(encoder), data, batch_size)
}

/// [`evaluate`] with the model fed by `inputs`.
pub fn evaluate_on(
    model: &BertClassifier,
    inputs: Inputs<'_>,
    data: &Dataset,
    batch_size: usize,
) -> Result<Evaluation> {
    let indices: Vec<usize> = (0..data.len()).collect();
    let mut predicted = Vec::with_capacity(data.len());
    let mut loss_sum = 0.0;
    tch::no_grad(|| -> Result<()> {
        for chunk in indices.chunks(batch_size.max(1)) {
            let texts: Vec<&str> = chunk
                .iter()
                .map(|&i| data.examples[i].text.as_str())
                .collect();
            let labels = labels_tensor(data, chunk, model);
            let logits = inputs.logits(model, &texts, false)?;
            loss_sum +=
                f64::try_from(logits.cross_entropy_for_logits(&labels))? * chunk.len() as f64;
            let argmax: Vec<i64> = Vec::try_from(
                logits
                    .argmax(-1, false)
                    .to_kind(Kind::Int64)
                    .to_device(tch::Device::Cpu),
            )?;
            predicted.extend(argmax.into_iter().map(|p| p as usize));
        }
        Ok(())
    })?;
    let actual: Vec<usize> = data.examples.iter().map(|e| e.label).collect();
    Ok(Evaluation {
        loss: if data.is_empty() {
            0.0
        } else {
            loss_sum / data.len() as f64
        },
        scores: Scores::new(&actual, &predicted, model.num_labels() as usize),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_warms_up_then_decays_to_zero() {
        let config = TrainConfig {
            learning_rate: 1.0,
            warmup_fraction: 0.1,
            ..TrainConfig::default()
        };
        let lrs: Vec<f64> = (0..100).map(|s| config.learning_rate_at(s, 100)).collect();
        assert!((lrs[0] - 0.1).abs() < 1e-12);
        assert!((lrs[9] - 1.0).abs() < 1e-12);
        assert!((lrs[10] - 1.0).abs() < 1e-12);
        assert!(lrs[10..].windows(2).all(|w| w[1] < w[0]));
        assert!(lrs[99] > 0.0 && lrs[99] < 0.02);
    }
}
