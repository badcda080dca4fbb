//! Federated fine-tuning engine: a BERT encoder with LoRA adapters on libtorch (`tch`), data
//! loading and partitioning, training and evaluation.
//!
//! Bird's-eye view, in the order data flows:
//!
//! - [`checkpoint`] reads a BERT model directory (`config.json`, `model.safetensors`, tokenizer
//!   files), checks the weights' SHA-256 and loads the frozen base weights.
//! - [`bert`] is the encoder and classifier ([`bert::BertClassifier`]); [`lora`] the low-rank
//!   adapters on the attention projections; [`prefix`] caches the output of the layers below
//!   the first adapted one.
//! - [`tokenize`] turns texts into padded id and attention-mask tensors.
//! - [`data`] loads labelled text (the Medical Abstracts corpus in its own format, any CSV or
//!   JSON-lines file, class names from a labels file) and [`split`] makes the held-out test set
//!   and client shards (IID, Dirichlet, specialty), with a leakage check; [`shards`] writes a
//!   consortium's shards as files (`bcfl data split`).
//! - [`trainer`] runs AdamW with warmup/decay and clipping; [`metrics`] scores predictions.
//! - [`tensors`] turns the trainable tensors into an update blob ([`bcfl_fed::update`]) and
//!   back; the format, its aggregation and the commitment statistics are libtorch-free, in
//!   `bcfl-fed`.
//! - [`source`] is where a command's labelled data comes from; [`saved`] a trained model saved
//!   as a directory (`bcfl train --out`, `bcfl eval`).
//! - [`attack`] trains the head over frozen embeddings with attackers, and measures detection,
//!   exclusion and robust aggregation (`bcfl anomaly bench`, `bcfl anomaly paper-table`).
//!
//! ```no_run
//! use bcfl_client::train::{checkpoint::ModelDir, lora::LoraConfig};
//!
//! # fn main() -> Result<(), bcfl_client::train::Error> {
//! let dir = ModelDir::open("model/", None)?;
//! let model = dir.classifier(5, &LoraConfig::default(), tch::Device::Cpu)?;
//! println!("{} trainable parameters", model.trainable_parameters());
//! # Ok(())
//! # }
//! ```

pub mod attack;
pub mod bert;
pub mod checkpoint;
pub mod data;
mod error;
pub mod lora;
pub mod metrics;
pub mod prefix;
pub mod saved;
pub mod shards;
pub mod source;
pub mod split;
pub mod tensors;
pub mod tokenize;
pub mod trainer;

pub use error::{Error, Result};

use std::sync::{Mutex, MutexGuard};

/// The lock on libtorch's process-global generator.
static GENERATOR: Mutex<()> = Mutex::new(());

/// Seeds libtorch's process-global generator and holds a lock on it, so that two seeded
/// computations in one process (tests, a simulation) do not interleave their random draws.
pub fn seeded(seed: u64) -> MutexGuard<'static, ()> {
    let guard = generator();
    tch::manual_seed(seed as i64);
    guard
}

/// Holds the lock on libtorch's process-global generator without reseeding it: for draws whose
/// values do not matter (a model built only to have its weights loaded or read), so that they
/// cannot shift a [`seeded`] computation running alongside. Not reentrant: never while holding
/// [`seeded`]'s guard.
pub fn generator() -> MutexGuard<'static, ()> {
    GENERATOR
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
