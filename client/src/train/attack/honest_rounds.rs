//! What the measurements outside the ledger share (`root_set_tests`, `response_tests`): the real
//! embeddings (the model and the corpus that `. scripts/env.sh` names), and rounds of FedAvg
//! over the honest updates in which every member's honest update and its label-flipped one
//! (trained on labels shifted by one class, from the same model and batch order) are trained
//! from each round's model, so that every round starts from an honest model.

use bcfl_processor::anomaly::simulate::Rng;

use super::experiment::{prepare, Prepared, Scenario};
use super::head::{LinearHead, LocalConfig};
use super::medical_embeddings;
use crate::train::checkpoint::ModelDir;
use crate::train::split::Partition;

/// The length of a flat change.
pub(super) fn norm(v: &[f64]) -> f64 {
    v.iter().map(|x| x * x).sum::<f64>().sqrt()
}

/// The cosine of two flat changes (0 where either is zero).
pub(super) fn cosine(a: &[f64], b: &[f64]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    dot / (norm(a) * norm(b)).max(f64::MIN_POSITIVE)
}

/// One round as [`honest_fedavg`] hands it over.
pub(super) struct Round<'a> {
    /// The prepared split and shards.
    pub prepared: &'a Prepared,
    /// The seed they were prepared with.
    pub seed: u64,
    /// The round, from 1.
    pub number: u64,
    /// The model the round starts from.
    pub global: &'a LinearHead,
    /// Each member's honest change and label-flipped change, in member order.
    pub changes: &'a [(Vec<f64>, Vec<f64>)],
    /// The global model's change in the round before (`None` in round 1).
    pub moved: Option<&'a [f64]>,
}

/// Six rounds of FedAvg over the honest updates of `members` members on `partition` shards, for
/// each seed of `seeds` (a test split of a fifth, the default local settings, one libtorch
/// thread), calling `visit` once per round.
pub(super) fn honest_fedavg(
    partition: Partition,
    members: usize,
    seeds: std::ops::Range<u64>,
    mut visit: impl FnMut(&Round<'_>),
) {
    let dir = |var: &str| std::path::PathBuf::from(std::env::var(var).expect(var));
    let model = ModelDir::open(dir("BCFL_MODEL_DIR"), None).unwrap();
    let cache = dir("BCFL_HOME").join("cache");
    let (dataset, embeddings, _) =
        medical_embeddings(&model, &dir("BCFL_DATA_DIR"), &cache, 128).unwrap();
    crate::tch::set_num_threads(1);
    let local = LocalConfig::default();
    for seed in seeds {
        let scenario = Scenario {
            members,
            attackers: 0,
            attacks: vec![],
            rounds: 6,
            partition,
            local,
            sketch_length: 256,
            coordinate_samples: 0,
            sketch_after_commit: false,
            tuning: Default::default(),
            test_fraction: 0.2,
            seed,
            collusion_noise: Default::default(),
            blind_projection: false,
        };
        let p = prepare(&embeddings, &dataset, &scenario).unwrap();
        let classes = p.train.classes();
        let mut global = LinearHead::zeros(classes, p.train.dim);
        let mut moved: Option<Vec<f64>> = None;
        for number in 1..=6u64 {
            let before = global.flat();
            let change = |trained: LinearHead| -> Vec<f64> {
                trained
                    .flat()
                    .iter()
                    .zip(&before)
                    .map(|(a, b)| a - b)
                    .collect()
            };
            let changes: Vec<(Vec<f64>, Vec<f64>)> = p
                .shards
                .iter()
                .enumerate()
                .map(|(i, shard)| {
                    let train_seed = number * 100 + i as u64;
                    let (x, y) = p.train.tensors(shard);
                    let honest = global.train(&x, &y, &local, &mut Rng::new(train_seed));
                    let shifted: Vec<i64> = shard
                        .iter()
                        .map(|&r| {
                            bcfl_processor::anomaly::attack::flipped_label(
                                p.train.labels[r],
                                classes,
                            ) as i64
                        })
                        .collect();
                    let shifted = tch::Tensor::from_slice(&shifted);
                    let label = global.train(&x, &shifted, &local, &mut Rng::new(train_seed));
                    (change(honest.unwrap().0), change(label.unwrap().0))
                })
                .collect();
            visit(&Round {
                prepared: &p,
                seed,
                number,
                global: &global,
                changes: &changes,
                moved: moved.as_deref(),
            });
            let (mut sum, mut total) = (vec![0.0; before.len()], 0.0);
            for ((honest, _), shard) in changes.iter().zip(&p.shards) {
                let weight = shard.len() as f64;
                for (s, v) in sum.iter_mut().zip(honest) {
                    *s += weight * v;
                }
                total += weight;
            }
            let mean: Vec<f64> = sum.iter().map(|s| s / total).collect();
            global = global.plus(&mean);
            moved = Some(mean);
        }
    }
}
