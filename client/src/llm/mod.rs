//! Decoder language models of the Llama architecture, read from llama.cpp's GGUF files or from
//! Hugging Face checkpoint directories and run with libtorch, and fine-tuned with LoRA adapters
//! on PubMedQA, alone or federated.
//!
//! Bird's-eye view, in the order a model is loaded:
//!
//! - [`gguf`] reads a GGUF file (header, metadata, tensor infos, memory-mapped data) and
//!   [`quant`] dequantizes its tensors (F32, F16, BF16, Q8_0, Q4_0, Q4_1) to `f32`.
//! - [`hf`] reads a Hugging Face checkpoint directory (`config.json`, safetensors weights,
//!   `tokenizer.json`) as the same model, and writes one from a loaded model.
//! - [`config`] reads the architecture from the metadata ([`config::LlamaConfig`]).
//! - [`tokenizer`] builds a byte-level BPE `tokenizers::Tokenizer` from the metadata's vocabulary
//!   and merges, with the chat format's control tokens as special tokens.
//! - [`model`] is the decoder ([`model::Llama`]): RMSNorm, grouped-query attention with rotary
//!   embeddings, SwiGLU, a KV cache ([`model::KvCache`]) and greedy generation; its weights are
//!   held in `f32` or, for the quantized matrices of a GGUF file, kept in their blocks and
//!   dequantized when used ([`model::WeightStorage`]).
//! - [`lora`] puts trainable low-rank adapters on the decoder's projections (the encoder's
//!   adapter math), named so that they travel as an update blob.
//! - [`adapter`] keeps trained adapters in a folder (PEFT's file names), checked against the
//!   base model they were trained on.
//! - [`LanguageModel`] puts a decoder and its tokenizer together, from a GGUF file or a
//!   checkpoint directory: text in, text out.
//! - [`pubmedqa`] is the PubMedQA PQA-L task: the questions, the official split, the prompt
//!   answered in one token (yes, no or maybe) and the answers' log-probabilities.
//! - [`finetune`] trains the adapters on it (cross-entropy of the gold answer token, AdamW,
//!   the frozen prefix's states cached once per question) and scores the adapted model.
//!
//! The model tested is SmolLM2-135M-Instruct in Q4_1 (`BCFL_LLM_GGUF`, set by
//! `scripts/env.sh`).
//!
//! ```no_run
//! use bcfl_client::llm::LanguageModel;
//!
//! # fn main() -> Result<(), bcfl_client::llm::Error> {
//! let lm = LanguageModel::open("SmolLM2-135M-Instruct.Q4_1.gguf", tch::Device::Cpu)?;
//! let prompt = lm.chat_prompt("What is the capital of France?");
//! let answer = lm.generate(&prompt, 32)?;
//! println!("{}", answer.text);
//! # Ok(())
//! # }
//! ```

pub mod adapter;
pub mod config;
mod error;
pub mod finetune;
pub mod gguf;
pub mod hf;
mod language_model;
pub mod lora;
pub mod model;
pub mod pubmedqa;
pub mod quant;
pub mod tokenizer;

pub use error::{Error, Result};
pub use language_model::{model_config, model_sha256, Answer, LanguageModel};

/// Environment variable naming the model the tests and `bcfl llm` use: a GGUF file (or, for
/// `bcfl llm`, a Hugging Face checkpoint directory).
pub const GGUF_ENV: &str = "BCFL_LLM_GGUF";
