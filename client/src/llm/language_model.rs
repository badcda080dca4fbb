//! A decoder and its tokenizer together, from one GGUF file or one Hugging Face checkpoint
//! directory ([`crate::llm::hf`]): text in, text out.

use std::path::Path;

use super::config::LlamaConfig;

use tch::Device;

use super::gguf::GgufFile;
use super::hf::Checkpoint;
use super::model::{Generation, Llama, WeightStorage};
use super::tokenizer::ChatTokenizer;
use super::{Error, Result};
use bcfl_fed::digest::file_sha256;

/// A Llama decoder with the tokenizer of the same file.
#[derive(Debug)]
pub struct LanguageModel {
    model: Llama,
    tokenizer: ChatTokenizer,
}

/// A generated answer.
#[derive(Clone, Debug, PartialEq)]
pub struct Answer {
    /// The answer's text, without special tokens.
    pub text: String,
    /// Its ids and timings.
    pub generation: Generation,
}

impl LanguageModel {
    /// Loads the model and tokenizer at `path`: a GGUF file, or a Hugging Face checkpoint
    /// directory (told apart by [`Path::is_dir`]); every weight in `f32`.
    pub fn open(path: impl AsRef<Path>, device: Device) -> Result<Self> {
        Self::open_with(path, device, WeightStorage::F32)
    }

    /// [`Self::open`], the weights held as `storage` says (a checkpoint directory's are all
    /// floating-point: `f32` either way).
    pub fn open_with(
        path: impl AsRef<Path>,
        device: Device,
        storage: WeightStorage,
    ) -> Result<Self> {
        let path = path.as_ref();
        let began = std::time::Instant::now();
        let lm = match path.is_dir() {
            true => Self::from_checkpoint(&Checkpoint::open(path)?, device, storage)?,
            false => Self::from_gguf(&GgufFile::open(path)?, device, storage)?,
        };
        tracing::info!(
            path = %path.display(),
            parameters = lm.model.parameter_count(),
            weight_bytes = lm.model.weight_bytes(),
            seconds = began.elapsed().as_secs_f64(),
            "loaded language model"
        );
        Ok(lm)
    }

    /// Loads the model and tokenizer of a parsed GGUF file.
    pub fn from_gguf(file: &GgufFile, device: Device, storage: WeightStorage) -> Result<Self> {
        Ok(Self {
            tokenizer: ChatTokenizer::from_gguf(file)?,
            model: Llama::from_gguf(file, device, storage)?,
        })
    }

    /// Loads the model and tokenizer of an opened checkpoint directory.
    pub fn from_checkpoint(
        checkpoint: &Checkpoint,
        device: Device,
        storage: WeightStorage,
    ) -> Result<Self> {
        Ok(Self {
            tokenizer: checkpoint.tokenizer()?,
            model: Llama::load(checkpoint.config().clone(), checkpoint, device, storage)?,
        })
    }

    /// The decoder.
    pub fn model(&self) -> &Llama {
        &self.model
    }

    /// The decoder, to attach adapters ([`Llama::attach_lora`]).
    pub fn model_mut(&mut self) -> &mut Llama {
        &mut self.model
    }

    /// The decoder and the tokenizer, apart.
    pub fn into_parts(self) -> (Llama, ChatTokenizer) {
        (self.model, self.tokenizer)
    }

    /// The tokenizer.
    pub fn tokenizer(&self) -> &ChatTokenizer {
        &self.tokenizer
    }

    /// A one-turn chat prompt asking `user` (see [`ChatTokenizer::chat_prompt`]).
    pub fn chat_prompt(&self, user: &str) -> String {
        self.tokenizer.chat_prompt(user)
    }

    /// Greedy continuation of `prompt` (raw text: special tokens in it are recognized), up to
    /// `max_tokens` tokens or the end of the turn.
    pub fn generate(&self, prompt: &str, max_tokens: usize) -> Result<Answer> {
        let ids = self.tokenizer.encode(prompt)?;
        let generation =
            self.model
                .generate_greedy(&ids, max_tokens, &self.tokenizer.stop_ids())?;
        Ok(Answer {
            text: self.tokenizer.decode(&generation.ids, true)?,
            generation,
        })
    }
}

/// The SHA-256 naming the model at `path`, which adapters record as their base: the GGUF
/// file's, or a checkpoint directory's [`Checkpoint::sha256`].
pub fn model_sha256(path: &Path) -> Result<String> {
    match path.is_dir() {
        true => Checkpoint::open(path)?.sha256(),
        false => Ok(file_sha256(path).map_err(|e| Error::io(path, e))?.sha256),
    }
}

/// The architecture of the model at `path` (a GGUF file's metadata, or a checkpoint
/// directory's `config.json`), without loading its weights.
pub fn model_config(path: &Path) -> Result<LlamaConfig> {
    match path.is_dir() {
        true => Ok(Checkpoint::open(path)?.config().clone()),
        false => LlamaConfig::from_gguf(&crate::llm::gguf::GgufFile::open(path)?),
    }
}
