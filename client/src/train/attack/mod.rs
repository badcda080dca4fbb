//! Attacks on real federated training and what the on-chain anomaly detection does about them.
//!
//! The experiment behind `bcfl anomaly bench` and `bcfl anomaly paper-table`. Full LoRA
//! fine-tuning is far too slow on a CPU for a benchmark over many seeds, so the experiment trains
//! **the classification head over frozen MiniLM embeddings**: each Medical Abstracts example is
//! embedded once by the frozen encoder ([`embed`], cached under `$BCFL_HOME/cache`), and members
//! train the 384 x 5 linear head ([`head`], the head the LoRA model uses) on their shards. The
//! accuracy figures are therefore those of federated logistic regression on frozen sentence
//! embeddings, not of LoRA fine-tuning; the clean centralized run of the same set-up is reported
//! as the reference.
//!
//! The rounds run on the round library ([`crate::round::simulation`]), like every other
//! federated run: each member is a [`head::HeadTrainer`], attacks are the member role's (one
//! [`AttackKind`](bcfl_processor::anomaly::attack::AttackKind), applied in
//! [`crate::demo::attack`]), detection is the processor's `EvaluateRound` verdict and
//! aggregation the aggregator's, with the consortium's rule.
//!
//! - [`experiment`]: one run per defence, each a consortium of its own: its parameters (rule,
//!   anomaly configuration), the members, the verdicts read back from the ledger, the final
//!   model's accuracy.
//! - [`head`]: the linear head and its [`Trainer`](crate::round::model::Trainer).
//! - [`detect`]: the detection configurations compared (each method, two ensembles).
//! - [`bench`](mod@bench): the grid over members, attacker fractions, attacks and seeds; JSON and markdown.
//! - [`scorecard`]: a bench report's cells scored against the grid's goal (F1 and accuracy).
//! - [`paper`]: the seed paper's comparison table (method, anomalous nodes found, asynchronous
//!   distribution time, IID and non-IID accuracy).
//!
//! Beside them, four ignored tests measure on the same embeddings, over rounds of honest FedAvg
//! (`honest_rounds`): `root_set_tests` FLTrust's trusted-root-set check and `label_flip_tests`
//! two more statistics, to show why sign and label flips with Dirichlet 0.1 shards escape them,
//! `response_tests` how members' changes respond to the model's moves, the measurement behind
//! the ascent method, and `agreement_tests` how much honest updates agree under each split of
//! the data.

#[cfg(test)]
mod agreement_tests;
pub mod bench;
pub mod detect;
pub mod embed;
pub mod experiment;
pub mod head;
#[cfg(test)]
mod honest_rounds;
#[cfg(test)]
mod label_flip_tests;
pub mod paper;
#[cfg(test)]
mod response_tests;
#[cfg(test)]
mod root_set_tests;
pub mod scorecard;
#[cfg(test)]
mod tests;

use std::path::Path;

use super::checkpoint::ModelDir;
use super::data::{Dataset, MEDICAL_ABSTRACTS};
use super::lora::LoraConfig;
use super::{Error, Result};
use bcfl_fed::digest::file_sha256;
use embed::{CacheKey, Embeddings};

/// The Medical Abstracts corpus under `data_dir` and its embeddings by the frozen model in
/// `model`, from the cache in `cache_dir` when it holds them (the flag says whether it did).
pub fn medical_embeddings(
    model: &ModelDir,
    data_dir: &Path,
    cache_dir: &Path,
    max_len: usize,
) -> Result<(Dataset, Embeddings, bool)> {
    let dataset = Dataset::medical_abstracts(data_dir)?;
    let csv = data_dir
        .join(MEDICAL_ABSTRACTS)
        .join("medical_abstracts.csv");
    let key = CacheKey {
        model_sha256: model.sha256().to_owned(),
        data_sha256: file_sha256(&csv).map_err(|e| Error::io(&csv, e))?.sha256,
        max_len,
    };
    let (embeddings, cached) = Embeddings::cached(cache_dir, &key, &dataset, || {
        let started = std::time::Instant::now();
        // Only the frozen encoder is used; the fresh head's draws must not shift a seeded run.
        let classifier = {
            let _generator = crate::train::generator();
            model.classifier(
                dataset.num_labels() as i64,
                &LoraConfig::default(),
                tch::Device::Cpu,
            )?
        };
        let encoder = model.encoder(max_len)?;
        let e = Embeddings::compute(&classifier, &encoder, &dataset, 32)?;
        tracing::info!(
            rows = e.len(),
            seconds = started.elapsed().as_secs_f64(),
            "embedded"
        );
        Ok(e)
    })?;
    Ok((dataset, embeddings, cached))
}
