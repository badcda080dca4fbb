//! The Llama decoder with LoRA as a member's model ([`Trainer`]): local fine-tuning on the
//! member's PubMedQA questions ([`crate::llm::finetune`]) and scoring of a global model on a
//! fixed set of test questions.
//!
//! The update a member sends is its adapters' tensors (`blk.{i}.attn_q.lora_a`, ...;
//! [`crate::llm::lora`]); the frozen base is the model every member loaded. The members of a
//! simulation share one [`SharedDecoder`] and train in turn, each from the round's parent
//! written into the shared adapters. The learning rate of a round follows
//! [`DecoderSchedule`] (FlowerTune: cosine from 5e-5 to 1e-6 across rounds), constant over the
//! round's local steps.
//!
//! ```no_run
//! use bcfl_client::llm::finetune::{FinetuneConfig, QaSet};
//! use bcfl_client::llm::lora::LlamaLora;
//! use bcfl_client::llm::pubmedqa::{PromptEncoder, PubMedQa};
//! use bcfl_client::llm::LanguageModel;
//! use bcfl_client::round::decoder::{DecoderMember, DecoderSchedule, SharedDecoder};
//! use bcfl_client::round::model::Trainer as _;
//! use bcfl_client::train::tensors::StoreTensors as _;
//! use bcfl_fed::update::Update;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let data = PubMedQa::load("data/pubmedqa".as_ref())?;
//! let (mut model, tokenizer) = LanguageModel::open("model.gguf", tch::Device::Cpu)?.into_parts();
//! model.attach_lora(LlamaLora::flowertune())?;
//! let initial = Update::from_store(model.adapters().unwrap().store())?;
//! let encoder = PromptEncoder::new(&tokenizer)?;
//! let shard = QaSet::encode(&encoder, &data.train()[..50])?;
//! let shared = SharedDecoder::new(model, *encoder.answers())?.shared();
//! let schedule = DecoderSchedule { rounds: 3, max_learning_rate: 5e-5, min_learning_rate: 1e-6 };
//! let member = DecoderMember::new(shared, shard, None, FinetuneConfig::default(), schedule)?;
//! let trained = member.train(&initial, 1, 42)?;
//! println!("round 1: loss {:.3}, {} tensors", trained.loss, trained.update.tensors.len());
//! # Ok(())
//! # }
//! ```

use std::sync::{Arc, Mutex, MutexGuard};

use serde::{Deserialize, Serialize};

use super::model::{Trained, Trainer};
use super::{Error, Result};
use crate::llm::finetune::{cosine_learning_rate, evaluate, train, FinetuneConfig, QaSet};
use crate::llm::model::Llama;
use crate::llm::pubmedqa::AnswerTokens;
use crate::train::tensors::StoreTensors as _;
use crate::train::trainer::Evaluation;
use bcfl_fed::update::Update;

/// The learning rate across rounds: cosine from `max` (round 1) to `min` (the last round).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DecoderSchedule {
    /// Rounds of the run.
    pub rounds: u64,
    /// Round 1's rate.
    pub max_learning_rate: f64,
    /// The last round's rate.
    pub min_learning_rate: f64,
}

impl DecoderSchedule {
    /// The rate of `round` (from 1).
    pub fn learning_rate(&self, round: u64) -> f64 {
        cosine_learning_rate(
            round,
            self.rounds,
            self.max_learning_rate,
            self.min_learning_rate,
        )
    }
}

/// A decoder with adapters and the ids of the answers: what the members of one process share.
pub struct SharedDecoder {
    model: Llama,
    answers: AnswerTokens,
}

impl SharedDecoder {
    /// `model`, which must carry adapters ([`Llama::attach_lora`]).
    pub fn new(model: Llama, answers: AnswerTokens) -> Result<Self> {
        if model.adapters().is_none() {
            return Err(Error::Config("the decoder carries no adapters".into()));
        }
        Ok(Self { model, answers })
    }

    /// The decoder.
    pub fn model(&self) -> &Llama {
        &self.model
    }

    /// The adapters' tensors now.
    pub fn adapters(&self) -> Result<Update> {
        Ok(Update::from_store(self.store())?)
    }

    fn store(&self) -> &tch::nn::VarStore {
        self.model.adapters().expect("checked in new").store()
    }

    /// A shareable handle.
    pub fn shared(self) -> Arc<Mutex<Self>> {
        Arc::new(Mutex::new(self))
    }
}

/// A member's questions (with their frozen-prefix states when cached) and optional test
/// questions on the shared decoder.
pub struct DecoderMember {
    shared: Arc<Mutex<SharedDecoder>>,
    shard: Mutex<QaSet>,
    test: Option<Mutex<QaSet>>,
    config: FinetuneConfig,
    schedule: DecoderSchedule,
}

impl DecoderMember {
    /// A member training `shared` on `shard`, scoring on `test` when given.
    pub fn new(
        shared: Arc<Mutex<SharedDecoder>>,
        shard: QaSet,
        test: Option<QaSet>,
        config: FinetuneConfig,
        schedule: DecoderSchedule,
    ) -> Result<Self> {
        if shard.is_empty() {
            return Err(Error::Config("the member has no questions".into()));
        }
        Ok(Self {
            shared,
            shard: Mutex::new(shard),
            test: test.map(Mutex::new),
            config,
            schedule,
        })
    }

    fn lock<T>(m: &Mutex<T>) -> Result<MutexGuard<'_, T>> {
        m.lock().map_err(|_| Error::Poisoned)
    }
}

impl Trainer for DecoderMember {
    fn train(&self, parent: &Update, round: u64, seed: u64) -> Result<Trained> {
        let shared = Self::lock(&self.shared)?;
        let shard = Self::lock(&self.shard)?;
        parent.apply_to(shared.store())?;
        let stats = train(
            &shared.model,
            &shard,
            &shared.answers,
            &self.config,
            self.schedule.learning_rate(round),
            seed,
        )?;
        tracing::info!(
            round,
            loss = stats.loss,
            tokens_per_second = stats.tokens_per_second(),
            "decoder trained"
        );
        Ok(Trained {
            update: shared.adapters()?,
            loss: stats.loss,
            samples: shard.len() as u64,
        })
    }

    fn evaluate(&self, model: &Update) -> Result<Option<Evaluation>> {
        let Some(test) = &self.test else {
            return Ok(None);
        };
        let shared = Self::lock(&self.shared)?;
        let test = Self::lock(test)?;
        model.apply_to(shared.store())?;
        Ok(Some(evaluate(&shared.model, &test, &shared.answers)?))
    }
}
