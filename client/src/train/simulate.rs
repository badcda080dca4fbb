//! Federated rounds in one process: the reference that networked runs are compared with.
//!
//! Each round every client starts from the global trainable tensors, fine-tunes on its shard
//! for the local epochs, and writes its update as a canonical safetensors file (int8 when
//! quantizing); the files are aggregated by the chosen [`Rule`] in member-key order and the
//! result becomes the next global model, scored on the held-out test set. No ledger is involved.

use std::path::Path;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::aggregate::{aggregate, Contribution, Rule};
use super::bert::BertClassifier;
use super::data::Dataset;
use super::prefix::{Inputs, PrefixCache};
use super::sketch::UpdateStats;
use super::split::{partition, Partition};
use super::tokenize::TextEncoder;
use super::trainer::{evaluate_on, train_on, Evaluation, TrainConfig};
use super::update::{Encoding, Update};
use super::{Error, Result};

/// A simulation's settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SimulationConfig {
    /// Number of clients.
    pub clients: usize,
    /// Number of rounds.
    pub rounds: usize,
    /// How the training set is spread over clients.
    pub partition: Partition,
    /// Smallest shard.
    pub min_shard: usize,
    /// Aggregation rule.
    pub rule: Rule,
    /// Local training (its `epochs` are the local epochs; its seed seeds everything).
    pub local: TrainConfig,
    /// Encoding of the update files.
    pub quantize: bool,
    /// Sketch length of the update statistics.
    pub sketch_length: usize,
}

/// One client's contribution to a round.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClientReport {
    /// Member key.
    pub member: String,
    /// Update file size in bytes.
    pub bytes: usize,
    /// SHA-256 of the update file.
    pub sha256: String,
    /// Commitment statistics (samples, loss, norm, sketch).
    pub stats: UpdateStats,
}

/// What a round produced.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RoundReport {
    /// Round number, from 1.
    pub round: usize,
    /// The global model on the test set after aggregation.
    pub test: Evaluation,
    /// Members whose updates entered the aggregate.
    pub selected: Vec<String>,
    /// Per-client contributions, in member-key order.
    pub clients: Vec<ClientReport>,
    /// Wall-clock seconds of the round.
    pub seconds: f64,
}

/// Member key of client `i`.
pub fn member_key(i: usize) -> String {
    format!("client-{i:03}")
}

/// Runs `config.rounds` rounds over shards of `train_set`, scoring on `test_set`; `on_round` sees
/// each round's report as it completes. Update files go to `work_dir`. When the model has a
/// frozen prefix, its states are computed once for both sets and cached in memory for the run.
pub fn simulate(
    model: &BertClassifier,
    encoder: &TextEncoder,
    train_set: &Dataset,
    test_set: &Dataset,
    config: &SimulationConfig,
    work_dir: &Path,
    on_round: impl FnMut(&RoundReport) -> Result<()>,
) -> Result<Vec<RoundReport>> {
    let cache;
    let inputs = if model.frozen_layers() > 0 {
        let texts = train_set.examples.iter().chain(&test_set.examples);
        cache = PrefixCache::build(model, encoder, texts.map(|e| e.text.as_str()), 64)?;
        Inputs::Cached(&cache)
    } else {
        Inputs::Tokens(encoder)
    };
    simulate_on(
        model, inputs, train_set, test_set, config, work_dir, on_round,
    )
}

/// [`simulate`] with the model fed by `inputs` (for instance a prefix cache read from disk).
pub fn simulate_on(
    model: &BertClassifier,
    inputs: Inputs<'_>,
    train_set: &Dataset,
    test_set: &Dataset,
    config: &SimulationConfig,
    work_dir: &Path,
    mut on_round: impl FnMut(&RoundReport) -> Result<()>,
) -> Result<Vec<RoundReport>> {
    let shards = partition(
        train_set,
        config.clients,
        config.partition,
        config.min_shard,
        config.local.seed,
    )?;
    let shard_sets: Vec<Dataset> = shards.iter().map(|s| train_set.subset(s)).collect();
    let encoding = if config.quantize {
        Encoding::Int8
    } else {
        Encoding::F32
    };
    let mut reports = Vec::with_capacity(config.rounds);
    for round in 1..=config.rounds {
        let started = Instant::now();
        let global = Update::from_store(model.trainable())?;
        let mut contributions = Vec::with_capacity(config.clients);
        let mut clients = Vec::with_capacity(config.clients);
        for (i, shard) in shard_sets.iter().enumerate() {
            global.apply_to(model.trainable())?;
            let local = TrainConfig {
                seed: config.local.seed ^ ((round as u64) << 32 | i as u64),
                ..config.local.clone()
            };
            let history = train_on(model, inputs, shard, &local, false, |_| Ok(()))?;
            let update = Update::from_store(model.trainable())?;
            let bytes = update.to_bytes(encoding);
            let member = member_key(i);
            let path = work_dir.join(format!("round{round}-{member}.safetensors"));
            std::fs::write(&path, &bytes).map_err(|e| Error::io(&path, e))?;
            let loss = history.last().map_or(0.0, |h| h.loss);
            clients.push(ClientReport {
                member: member.clone(),
                bytes: bytes.len(),
                sha256: crate::digest::sha256_hex(&bytes),
                stats: UpdateStats::new(
                    &update,
                    shard.len() as u64,
                    loss,
                    config.sketch_length,
                    round as u64,
                ),
            });
            contributions.push(Contribution {
                member,
                path,
                samples: shard.len() as u64,
            });
        }
        let combined = aggregate(contributions, config.rule)?;
        combined.update.apply_to(model.trainable())?;
        let test = evaluate_on(model, inputs, test_set, 64)?;
        let report = RoundReport {
            round,
            test,
            selected: combined.selected,
            clients,
            seconds: started.elapsed().as_secs_f64(),
        };
        on_round(&report)?;
        reports.push(report);
    }
    Ok(reports)
}
