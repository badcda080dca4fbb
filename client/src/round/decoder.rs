//! The Llama decoder with LoRA as a member's model ([`Trainer`]): local fine-tuning on the
//! member's PubMedQA questions ([`crate::llm::finetune`]) and scoring of a global model on a
//! fixed set of test questions.
//!
//! The update a member sends is its adapters' tensors (`blk.{i}.attn_q.lora_a`, ...;
//! [`crate::llm::lora`]); the frozen base is the model every member loaded. The members of a
//! simulation share one [`SharedDecoder`] and train in turn, each from the round's parent
//! written into the shared adapters; a node's member ([`DecoderMember::load`]) has its own,
//! built from the consortium's decoder package
//! ([`ModelPackage::create_decoder`](super::model::ModelPackage::create_decoder)) and its
//! questions (a file in `ori_pqal.json`'s format). The learning rate of a round follows
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

use super::model::{ModelPackage, Trained, Trainer};
use super::{Error, Result};
use crate::llm::finetune::{cosine_learning_rate, evaluate, train, FinetuneConfig, QaSet};
use crate::llm::model::Llama;
use crate::llm::pubmedqa::{AnswerTokens, PromptEncoder, Question, MAX_PROMPT_TOKENS};
use crate::llm::LanguageModel;
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

    /// A node's member: the decoder of `package` (a decoder package, whose GGUF file must have
    /// the SHA-256 `base_sha256`, the consortium's) with the recipe's adapters, training on
    /// `shard` and scoring on `test` when given. The prompts are encoded and the frozen
    /// prefix's states cached here, once.
    pub fn load(
        package: &ModelPackage,
        base_sha256: &str,
        shard: &[Question],
        test: Option<&[Question]>,
    ) -> Result<Self> {
        let recipe = package.decoder.as_ref().ok_or_else(|| {
            Error::Config(format!(
                "{} is not a decoder package (no \"decoder\" recipe)",
                package.dir.display()
            ))
        })?;
        let path = package.base_dir();
        let sha = crate::llm::model_sha256(&path)?;
        if sha != base_sha256 {
            return Err(Error::Config(format!(
                "the base model {} has SHA-256 {sha}, not the consortium's {base_sha256}",
                path.display()
            )));
        }
        let (mut model, tokenizer) = LanguageModel::open(&path, tch::Device::Cpu)?.into_parts();
        model.attach_lora(recipe.lora.clone())?;
        let encode = |questions: &[Question], max_tokens: usize| -> Result<QaSet> {
            let encoder = PromptEncoder::new(&tokenizer)?.with_max_tokens(max_tokens);
            let questions: Vec<&Question> = questions.iter().collect();
            let mut set = QaSet::encode(&encoder, &questions)?;
            set.cache_prefix(&model)?;
            Ok(set)
        };
        let shard = encode(shard, recipe.local.max_prompt_tokens)?;
        let test = test.map(|t| encode(t, MAX_PROMPT_TOKENS)).transpose()?;
        let answers = *PromptEncoder::new(&tokenizer)?.answers();
        Self::new(
            SharedDecoder::new(model, answers)?.shared(),
            shard,
            test,
            recipe.local.clone(),
            recipe.schedule.clone(),
        )
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

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::llm::lora::LlamaLora;
    use crate::llm::pubmedqa::{PromptEncoder, PubMedQa, DIR};
    use crate::llm::{LanguageModel, GGUF_ENV};
    use crate::round::coordinator::CoordinatorConfig;
    use crate::round::simulation::{simulate, SimulatedMember, SimulationConfig};
    use bcfl_fed::update::Encoding;
    use bcfl_protos::bcfl as pb;

    /// Two members fine-tune SmolLM2's top layer on PubMedQA through the round library (the
    /// in-memory ledger, blob servers on loopback): the round aggregates their adapters and
    /// the first member scores the global model. Skipped without `BCFL_LLM_GGUF`.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_members_fine_tune_the_decoder_through_a_round() {
        let path = match std::env::var_os(GGUF_ENV) {
            Some(p) if Path::new(&p).is_file() => p,
            _ => {
                eprintln!("skipped: {GGUF_ENV} names no file (source scripts/env.sh)");
                return;
            }
        };
        let data = PubMedQa::load(
            &Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../data")
                .join(DIR),
        )
        .unwrap();
        let train_questions = data.train();
        let test_questions = data.test();
        let (mut model, tokenizer) = LanguageModel::open(path, tch::Device::Cpu)
            .unwrap()
            .into_parts();
        let lora = LlamaLora::for_top_layers(LlamaLora::flowertune(), model.config(), 1);
        {
            let _generator = crate::train::seeded(3);
            model.attach_lora(lora).unwrap();
        }
        let initial = Update::from_store(model.adapters().unwrap().store()).unwrap();
        let encoder = PromptEncoder::new(&tokenizer).unwrap().with_max_tokens(128);
        let mut sets = Vec::new();
        for questions in [
            &train_questions[..3],
            &train_questions[3..6],
            &test_questions[..4],
        ] {
            let mut set = QaSet::encode(&encoder, questions).unwrap();
            set.cache_prefix(&model).unwrap();
            sets.push(set);
        }
        let test = sets.pop();
        let shared = SharedDecoder::new(model, *encoder.answers())
            .unwrap()
            .shared();
        let config = FinetuneConfig {
            steps: 1,
            batch_size: 2,
            max_prompt_tokens: 128,
            ..FinetuneConfig::default()
        };
        let schedule = DecoderSchedule {
            rounds: 1,
            max_learning_rate: 1e-3,
            min_learning_rate: 1e-3,
        };
        let mut test = test;
        let members = sets
            .into_iter()
            .enumerate()
            .map(|(i, shard)| SimulatedMember {
                name: format!("m{i}"),
                max_samples: shard.len() as u64,
                trainer: Box::new(
                    DecoderMember::new(
                        shared.clone(),
                        shard,
                        test.take(),
                        config.clone(),
                        schedule.clone(),
                    )
                    .unwrap(),
                ),
                attack: None,
                slowdown: 0.0,
            })
            .collect();
        let dir = tempfile::tempdir().unwrap();
        let mut params = pb::ConsortiumParams {
            min_participants: 2,
            commit_quorum: 2,
            model_id: "SmolLM2-135M-Instruct".into(),
            base_model_sha256: "0".repeat(64),
            sketch_length: 64,
            ..Default::default()
        };
        bcfl_fed::rule::Rule::FedAvg
            .write_params(&mut params)
            .unwrap();
        let simulation = SimulationConfig {
            params,
            schedule: CoordinatorConfig::new(1),
            initial: initial.clone(),
            encoding: Encoding::F32,
            seed: 5,
            work_dir: dir.path().to_path_buf(),
            first_scores: true,
            links: Vec::new(),
            collusion_noise: crate::demo::attack::CollusionNoise::NONE,
            blind_projection: false,
        };
        let outcome = simulate(simulation, members, |_| {}).await.unwrap();
        let round = &outcome.rounds[0];
        assert_eq!(round.members.iter().filter(|m| m.accepted).count(), 2);
        assert!(round.accuracy.is_some());
        let global = &outcome.global;
        assert_eq!(
            global.tensors.keys().collect::<Vec<_>>(),
            initial.tensors.keys().collect::<Vec<_>>()
        );
        assert_ne!(global, &initial, "the adapters moved");
        assert!(global.tensors.contains_key("blk.29.attn_v.lora_b"));
    }
}
