//! Fine-tuning the decoder's adapters ([`crate::llm::lora`]) on PubMedQA: the cross-entropy of
//! the gold answer token (`yes`, `no` or `maybe`, over the whole vocabulary) at the last prompt
//! position, minimised by AdamW for a fixed number of steps, and the scores of the answer the
//! adapted model finds likeliest.
//!
//! Questions are encoded once ([`QaSet::encode`]) with the evaluation's prompt
//! ([`PromptEncoder`]), cut to `max_prompt_tokens` (e.g. 256 for training, the prompt losing the
//! tail of its context as the evaluation's 511-token cut does). When the adapters sit only on the
//! top `K` layers ([`LoraConfig::from_layer`](crate::train::lora::LoraConfig::from_layer)
//! `= L − K`), [`QaSet::cache_prefix`] computes the hidden states entering layer `L − K` once
//! per question, as [`crate::train::prefix`] does for BERT: a step then runs only the top `K`
//! layers and the head at the last position. The cache is exact: the prefix has no adapter and
//! no dropout, so its states are the same at every step ([`Llama::hidden_states`]).
//!
//! [`cosine_learning_rate`] is the FlowerTune schedule across rounds (5e-5 to 1e-6); within a
//! round's local steps the rate is constant.
//!
//! ```no_run
//! use bcfl_client::llm::finetune::{evaluate, train, FinetuneConfig, QaSet};
//! use bcfl_client::llm::lora::LlamaLora;
//! use bcfl_client::llm::pubmedqa::{PromptEncoder, PubMedQa};
//! use bcfl_client::llm::LanguageModel;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let data = PubMedQa::load("data/pubmedqa".as_ref())?;
//! let (mut model, tokenizer) = LanguageModel::open("model.gguf", tch::Device::Cpu)?.into_parts();
//! let lora = LlamaLora::for_top_layers(LlamaLora::flowertune(), model.config(), 2);
//! model.attach_lora(lora)?;
//! let encoder = PromptEncoder::new(&tokenizer)?.with_max_tokens(256);
//! let mut questions = QaSet::encode(&encoder, &data.train())?;
//! questions.cache_prefix(&model)?; // the 28 frozen layers, once per question
//! let stats = train(&model, &questions, encoder.answers(), &FinetuneConfig::default(), 1e-4, 42)?;
//! let scores = evaluate(&model, &questions, encoder.answers())?;
//! println!("loss {:.3}, accuracy {:.3}", stats.loss, scores.scores.accuracy);
//! # Ok(())
//! # }
//! ```

use std::path::Path;
use std::time::Instant;

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tch::nn::{self, OptimizerConfig};
use tch::Tensor;

use super::model::Llama;
use super::pubmedqa::{scores, AnswerLogProbs, AnswerTokens, Prediction, PromptEncoder, Question};
use super::pubmedqa::{Answer, Error, Result};
use crate::train::trainer::Evaluation;

/// Local training settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FinetuneConfig {
    /// Optimiser steps per round.
    pub steps: usize,
    /// Questions per step (their losses averaged).
    pub batch_size: usize,
    /// AdamW's decoupled weight decay.
    pub weight_decay: f64,
    /// Largest global gradient L2 norm (0 disables clipping).
    pub max_grad_norm: f64,
    /// Longest training prompt in tokens (the context's tail is cut).
    pub max_prompt_tokens: usize,
    /// Weigh each question's loss by [`balanced_weights`] of the member's answers, so that a
    /// rare answer counts as much as a common one.
    #[serde(default)]
    pub balance_answers: bool,
}

impl Default for FinetuneConfig {
    fn default() -> Self {
        Self {
            steps: 10,
            batch_size: 4,
            weight_decay: 0.01,
            max_grad_norm: 1.0,
            max_prompt_tokens: 256,
            balance_answers: false,
        }
    }
}

/// The FlowerTune learning rate of `round` (from 1) of `rounds`: cosine from `max` at round 1
/// down to `min` at the last round.
pub fn cosine_learning_rate(round: u64, rounds: u64, max: f64, min: f64) -> f64 {
    if rounds <= 1 {
        return max;
    }
    let progress = (round.clamp(1, rounds) - 1) as f64 / (rounds - 1) as f64;
    min + 0.5 * (max - min) * (1.0 + (std::f64::consts::PI * progress).cos())
}

/// Loss weights of the answers `[yes, no, maybe]` that make each answer present in `answers`
/// weigh the same in total: `n / (k · count)`, with `k` the answers present (an absent
/// answer's weight is 1). The weighted mean over `answers` is 1.
pub fn balanced_weights(answers: &[Answer]) -> [f64; 3] {
    let mut counts = [0usize; 3];
    for a in answers {
        counts[a.index()] += 1;
    }
    let present = counts.iter().filter(|&&c| c > 0).count().max(1) as f64;
    counts.map(|c| match c {
        0 => 1.0,
        c => answers.len() as f64 / (present * c as f64),
    })
}

/// Encoded questions: prompt ids, gold answers and, once cached, the frozen prefix's states.
#[derive(Debug)]
pub struct QaSet {
    pmids: Vec<String>,
    answers: Vec<Answer>,
    ids: Vec<Tensor>,
    tokens: usize,
    prefix: Option<(i64, Vec<Tensor>)>,
}

impl QaSet {
    /// The prompts of `questions` by `encoder` (whose limit is the longest prompt).
    pub fn encode(encoder: &PromptEncoder, questions: &[&Question]) -> Result<Self> {
        let mut set = Self {
            pmids: Vec::with_capacity(questions.len()),
            answers: Vec::with_capacity(questions.len()),
            ids: Vec::with_capacity(questions.len()),
            tokens: 0,
            prefix: None,
        };
        for q in questions {
            let prompt = encoder.prompt(q)?;
            let ids: Vec<i64> = prompt.ids.iter().map(|&i| i64::from(i)).collect();
            set.tokens += ids.len();
            set.ids.push(Tensor::from_slice(&ids).unsqueeze(0));
            set.pmids.push(q.pmid.clone());
            set.answers.push(q.answer);
        }
        Ok(set)
    }

    /// Questions.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Prompt tokens over all questions.
    pub fn tokens(&self) -> usize {
        self.tokens
    }

    /// Bytes of the cached prefix states (0 when none).
    pub fn prefix_bytes(&self) -> usize {
        self.prefix.as_ref().map_or(0, |(_, states)| {
            states.iter().map(|s| s.numel() * 4).sum::<usize>()
        })
    }

    /// Computes the hidden states entering `model`'s first adapted layer for every question,
    /// unless that layer is 0 (nothing to save). Returns the seconds spent.
    pub fn cache_prefix(&mut self, model: &Llama) -> Result<f64> {
        let layer = model.frozen_layers();
        if layer == 0 {
            self.prefix = None;
            return Ok(0.0);
        }
        let started = Instant::now();
        let states = self
            .ids
            .iter()
            .map(|ids| model.hidden_states(ids, layer))
            .collect::<super::Result<Vec<_>>>()?;
        self.prefix = Some((layer, states));
        Ok(started.elapsed().as_secs_f64())
    }

    /// [`Self::cache_prefix`], kept in the folder `dir` as safetensors under a name derived
    /// from everything the states depend on: `model_sha256` (the base file's), the frozen
    /// layers and every prompt's ids. A saved cache is read back (each state's shape checked
    /// against its prompt); an unreadable one is recomputed and replaced. Returns the seconds
    /// spent.
    pub fn cache_prefix_in(
        &mut self,
        model: &Llama,
        model_sha256: &str,
        dir: &Path,
    ) -> Result<f64> {
        let layer = model.frozen_layers();
        if layer == 0 {
            self.prefix = None;
            return Ok(0.0);
        }
        let started = Instant::now();
        let mut key = Sha256::new();
        key.update(format!(
            "bcfl llm prefix v1 {model_sha256} {layer} {}",
            self.len()
        ));
        for ids in &self.ids {
            key.update((ids.size()[1] as u64).to_le_bytes());
            for id in Vec::<i64>::try_from(ids.view([-1]))? {
                key.update(id.to_le_bytes());
            }
        }
        let path = dir.join(format!(
            "llm-prefix-{}.safetensors",
            &hex::encode(key.finalize())[..32]
        ));
        if path.is_file() {
            match self.read_prefix(&path, layer, model) {
                Ok(states) => {
                    self.prefix = Some((layer, states));
                    return Ok(started.elapsed().as_secs_f64());
                }
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "unreadable prefix cache: recomputing it")
                }
            }
        }
        self.cache_prefix(model)?;
        let states = &self.prefix.as_ref().expect("just cached").1;
        std::fs::create_dir_all(dir).map_err(|e| Error::Io {
            path: dir.to_owned(),
            source: e,
        })?;
        let named: Vec<(String, Tensor)> = states
            .iter()
            .enumerate()
            .map(|(i, t)| (format!("{i:06}"), t.to_device(tch::Device::Cpu)))
            .collect();
        // Write then rename, so that an interrupted write never leaves a truncated cache.
        let partial = path.with_extension("partial");
        Tensor::write_safetensors(&named, &partial)?;
        std::fs::rename(&partial, &path).map_err(|source| Error::Io { path, source })?;
        Ok(started.elapsed().as_secs_f64())
    }

    fn read_prefix(&self, path: &Path, layer: i64, model: &Llama) -> Result<Vec<Tensor>> {
        let mut named = Tensor::read_safetensors(path)?;
        named.sort_by(|a, b| a.0.cmp(&b.0));
        if named.len() != self.len() {
            return Err(Error::Malformed {
                path: path.to_owned(),
                problem: format!("{} states for {} prompts", named.len(), self.len()),
            });
        }
        let dim = model.config().embedding_length;
        named
            .into_iter()
            .zip(&self.ids)
            .map(|((name, state), ids)| {
                let expected = [1, ids.size()[1], dim];
                if state.size() != expected {
                    return Err(Error::Malformed {
                        path: path.to_owned(),
                        problem: format!(
                            "state {name} of layer {layer} has shape {:?}, expected {expected:?}",
                            state.size()
                        ),
                    });
                }
                Ok(state.to_device(model.device()))
            })
            .collect()
    }

    /// Drops the cached states (each step then runs the whole model).
    pub fn clear_prefix(&mut self) {
        self.prefix = None;
    }

    /// Logits `[1, vocab]` after question `i`'s prompt, from the cache when it holds `model`'s
    /// frozen prefix, else from the tokens.
    fn last_logits_t(&self, model: &Llama, i: usize, train: bool) -> Result<Tensor> {
        let layer = model.frozen_layers();
        let hidden = match &self.prefix {
            Some((cached, states)) if *cached == layer => states[i].shallow_clone(),
            _ => model.hidden_states(&self.ids[i], layer)?,
        };
        Ok(model.last_logits_from_t(&hidden, layer, train)?)
    }
}

/// What a round of local training did.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainStats {
    /// Optimiser steps.
    pub steps: usize,
    /// Mean loss over the steps.
    pub loss: f64,
    /// Prompt tokens processed (each question's whole prompt, once per use).
    pub tokens: usize,
    /// Wall-clock seconds.
    pub seconds: f64,
}

impl TrainStats {
    /// Prompt tokens per second.
    pub fn tokens_per_second(&self) -> f64 {
        self.tokens as f64 / self.seconds
    }
}

/// `config.steps` AdamW steps at `learning_rate` on the adapters of `model` over `set`, in a
/// shuffled order drawn from `seed` (cycling when the steps need more questions than there
/// are). Dropout draws come from libtorch's generator, seeded with `seed` for the call.
pub fn train(
    model: &Llama,
    set: &QaSet,
    answers: &AnswerTokens,
    config: &FinetuneConfig,
    learning_rate: f64,
    seed: u64,
) -> Result<TrainStats> {
    let adapters = model
        .adapters()
        .ok_or_else(|| Error::Model(super::Error::Config("no adapters to train".into())))?;
    if set.is_empty() || config.batch_size == 0 {
        return Err(Error::Split("no questions or batch size 0".into()));
    }
    let _generator = crate::train::seeded(seed);
    let mut optimizer = nn::AdamW {
        wd: config.weight_decay,
        ..Default::default()
    }
    .build(adapters.store(), learning_rate)?;
    let weights = match config.balance_answers {
        true => balanced_weights(&set.answers),
        false => [1.0; 3],
    };
    let mut rng = StdRng::seed_from_u64(seed);
    let mut order: Vec<usize> = Vec::new();
    let started = Instant::now();
    let (mut loss_sum, mut tokens) = (0.0, 0);
    for _ in 0..config.steps {
        optimizer.zero_grad();
        let mut step_loss = 0.0;
        for _ in 0..config.batch_size {
            if order.is_empty() {
                order = (0..set.len()).collect();
                order.shuffle(&mut rng);
            }
            let i = order.pop().expect("refilled");
            let logits = set.last_logits_t(model, i, true)?;
            let target = Tensor::from_slice(&[i64::from(answers.id(set.answers[i]))])
                .to_device(model.device());
            let weight = weights[set.answers[i].index()] / config.batch_size as f64;
            let loss = logits.cross_entropy_for_logits(&target) * weight;
            loss.backward();
            step_loss += f64::try_from(&loss)?;
            tokens += set.ids[i].size()[1] as usize;
        }
        if config.max_grad_norm > 0.0 {
            optimizer.clip_grad_norm(config.max_grad_norm);
        }
        optimizer.step();
        loss_sum += step_loss;
    }
    Ok(TrainStats {
        steps: config.steps,
        loss: loss_sum / config.steps.max(1) as f64,
        tokens,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Scores `model` (with its adapters) on `set`: accuracy, macro-F1 and the confusion matrix
/// of the likeliest answer (yes, no, maybe), and the mean `−log p(gold answer token)`.
pub fn evaluate(model: &Llama, set: &QaSet, answers: &AnswerTokens) -> Result<Evaluation> {
    let mut predictions = Vec::with_capacity(set.len());
    tch::no_grad(|| -> Result<()> {
        for i in 0..set.len() {
            let logits = set.last_logits_t(model, i, false)?;
            let lp = AnswerLogProbs::from_logits(&logits.select(0, 0), answers)?;
            predictions.push(Prediction {
                pmid: set.pmids[i].clone(),
                gold: set.answers[i],
                pred: lp.predicted(),
                lp,
                tokens: None,
            });
        }
        Ok(())
    })?;
    let loss = predictions.iter().map(|p| -p.lp.of(p.gold)).sum::<f64>() / set.len().max(1) as f64;
    Ok(Evaluation {
        loss,
        scores: scores(&predictions),
    })
}

/// Tokens per second of training steps on `set`, with and without the cached prefix (the
/// cache is computed if absent, and kept).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StepSpeed {
    /// Layers in the frozen prefix.
    pub frozen_layers: i64,
    /// Training steps timed each way.
    pub steps: usize,
    /// Prompt tokens per second running the whole model each step.
    pub full_tokens_per_second: f64,
    /// Prompt tokens per second from the cached prefix.
    pub cached_tokens_per_second: f64,
    /// Seconds spent computing the cache once.
    pub cache_seconds: f64,
    /// `cached / full`.
    pub speedup: f64,
}

/// Measures [`StepSpeed`] with `config`'s steps (the adapters are trained twice from where
/// they are; copy them out first to keep them).
pub fn step_speed(
    model: &Llama,
    set: &mut QaSet,
    answers: &AnswerTokens,
    config: &FinetuneConfig,
    seed: u64,
) -> Result<StepSpeed> {
    set.clear_prefix();
    let full = train(model, set, answers, config, 1e-5, seed)?;
    let cache_seconds = set.cache_prefix(model)?;
    let cached = train(model, set, answers, config, 1e-5, seed)?;
    Ok(StepSpeed {
        frozen_layers: model.frozen_layers(),
        steps: config.steps,
        full_tokens_per_second: full.tokens_per_second(),
        cached_tokens_per_second: cached.tokens_per_second(),
        cache_seconds,
        speedup: cached.tokens_per_second() / full.tokens_per_second(),
    })
}

#[cfg(test)]
mod tests;
