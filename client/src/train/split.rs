//! Held-out test sets, validation sets carved from training, and client shards, with a leakage
//! check.
//!
//! Texts are compared after [`normalize`] (lower case, runs of whitespace collapsed). The test
//! split is stratified by class and never separates copies of one text: identical texts go to the
//! same side, so a corpus with duplicates (Medical Abstracts has 75) cannot leak through them.
//! [`leakage`] checks any pair of sets and reports how much of the test set appears in training.
//!
//! Shards ([`Partition`]) are index lists into the training set; all draws come from a seeded
//! `StdRng`, so a seed gives the same split every time.
//!
//! [`split`] puts it together for a consortium ([`SplitConfig`]): the held-out test set, an
//! optional random subset of each side ([`sample`]), one training shard per member, and a
//! [`DataPlan`] of what was used. `bcfl demo` and `bcfl data split` both call it, so the same
//! settings and seed give the same shards.

use std::collections::{BTreeMap, HashSet};

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Gamma};
use serde::{Deserialize, Serialize};

use super::data::Dataset;
use super::{Error, Result};

/// How training examples are spread over clients.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "scheme")]
pub enum Partition {
    /// Stratified: each client gets about the same class mix.
    Iid,
    /// For each class, client shares are drawn from Dirichlet(alpha): small alpha, skewed shards.
    Dirichlet {
        /// Concentration.
        alpha: f64,
    },
    /// Client `i` specialises in classes `i mod K` and `(i + 1) mod K`: a fraction `share` of
    /// each class goes to its specialists, the rest uniformly to all clients.
    Specialty {
        /// Fraction of each class kept by its specialists.
        share: f64,
    },
}

/// The partition as on the command line: `iid`, `dirichlet (alpha 0.5)`, `specialty (share 0.8)`.
impl std::fmt::Display for Partition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Partition::Iid => write!(f, "iid"),
            Partition::Dirichlet { alpha } => write!(f, "dirichlet (alpha {alpha})"),
            Partition::Specialty { share } => write!(f, "specialty (share {share})"),
        }
    }
}

/// Lower case with whitespace runs collapsed: the form texts are compared in.
pub fn normalize(text: &str) -> String {
    text.split_whitespace()
        .map(str::to_lowercase)
        .collect::<Vec<_>>()
        .join(" ")
}

/// How much of a test set also appears in a training set.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Leakage {
    /// Test examples.
    pub test_examples: usize,
    /// Test examples whose normalized text is in the training set.
    pub leaked: usize,
    /// `leaked / test_examples`.
    pub fraction: f64,
}

/// Counts the test examples whose text also appears in training.
pub fn leakage(train: &Dataset, test: &Dataset) -> Leakage {
    let seen: HashSet<String> = train.examples.iter().map(|e| normalize(&e.text)).collect();
    let leaked = test
        .examples
        .iter()
        .filter(|e| seen.contains(&normalize(&e.text)))
        .count();
    Leakage {
        test_examples: test.len(),
        leaked,
        fraction: if test.is_empty() {
            0.0
        } else {
            leaked as f64 / test.len() as f64
        },
    }
}

/// Splits `data` into (train, test) with about `test_fraction` of each class in test, keeping
/// identical texts together (a group goes by the class of its first copy).
pub fn train_test_split(
    data: &Dataset,
    test_fraction: f64,
    seed: u64,
) -> Result<(Dataset, Dataset)> {
    if !(0.0..1.0).contains(&test_fraction) || test_fraction == 0.0 {
        return Err(Error::Config(format!(
            "test fraction {test_fraction} not in (0, 1)"
        )));
    }
    let mut groups: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (i, e) in data.examples.iter().enumerate() {
        groups.entry(normalize(&e.text)).or_default().push(i);
    }
    let mut by_class: Vec<Vec<Vec<usize>>> = vec![Vec::new(); data.num_labels()];
    for members in groups.into_values() {
        by_class[data.examples[members[0]].label].push(members);
    }
    let mut rng = StdRng::seed_from_u64(seed);
    let (mut train, mut test) = (Vec::new(), Vec::new());
    for mut class_groups in by_class {
        class_groups.shuffle(&mut rng);
        let total: usize = class_groups.iter().map(Vec::len).sum();
        let want = (total as f64 * test_fraction).round() as usize;
        let mut taken = 0;
        for members in class_groups {
            if taken < want {
                taken += members.len();
                test.extend(members);
            } else {
                train.extend(members);
            }
        }
    }
    train.sort_unstable();
    test.sort_unstable();
    Ok((data.subset(&train), data.subset(&test)))
}

/// Mixed into the seed of [`validation_split`], so that its draw is not the test split's.
const VALIDATION_SEED: u64 = 0x5641_4c49_4441_5445;

/// Carves a validation set out of a training split: (fit, validation), stratified and keeping
/// duplicates together as [`train_test_split`] does, drawn with another seed than the test split.
/// Settings are chosen on it, never on the test set.
pub fn validation_split(train: &Dataset, fraction: f64, seed: u64) -> Result<(Dataset, Dataset)> {
    train_test_split(train, fraction, seed ^ VALIDATION_SEED)
}

/// Spreads the examples of `data` over `clients` shards by `scheme`; every shard gets at least
/// `min_size` examples (Dirichlet draws are repeated until they do, up to 1,000 times).
pub fn partition(
    data: &Dataset,
    clients: usize,
    scheme: Partition,
    min_size: usize,
    seed: u64,
) -> Result<Vec<Vec<usize>>> {
    if clients == 0 {
        return Err(Error::Config("0 clients".into()));
    }
    if clients * min_size > data.len() {
        return Err(Error::Config(format!(
            "{clients} shards of at least {min_size} need more than {} examples",
            data.len()
        )));
    }
    let mut rng = StdRng::seed_from_u64(seed);
    let mut by_class: Vec<Vec<usize>> = vec![Vec::new(); data.num_labels()];
    for (i, e) in data.examples.iter().enumerate() {
        by_class[e.label].push(i);
    }
    for attempt in 0..1_000 {
        let mut shards = vec![Vec::new(); clients];
        match scheme {
            Partition::Iid => {
                // Deal each shuffled class round-robin, continuing where the last class stopped.
                let mut next = 0;
                for class in &by_class {
                    let mut class = class.clone();
                    class.shuffle(&mut rng);
                    for i in class {
                        shards[next % clients].push(i);
                        next += 1;
                    }
                }
            }
            Partition::Dirichlet { alpha } => {
                let gamma = Gamma::new(alpha, 1.0)
                    .map_err(|e| Error::Config(format!("Dirichlet alpha {alpha}: {e}")))?;
                for class in &by_class {
                    let mut class = class.clone();
                    class.shuffle(&mut rng);
                    let draws: Vec<f64> = (0..clients).map(|_| gamma.sample(&mut rng)).collect();
                    let total: f64 = draws.iter().sum();
                    let mut cumulative = 0.0;
                    let mut start = 0;
                    for (c, draw) in draws.iter().enumerate() {
                        cumulative += draw / total;
                        let end = if c + 1 == clients {
                            class.len()
                        } else {
                            ((cumulative * class.len() as f64).round() as usize)
                                .clamp(start, class.len())
                        };
                        shards[c].extend_from_slice(&class[start..end]);
                        start = end;
                    }
                }
            }
            Partition::Specialty { share } => {
                if !(0.0..=1.0).contains(&share) {
                    return Err(Error::Config(format!(
                        "specialty share {share} not in [0, 1]"
                    )));
                }
                let k = data.num_labels();
                for (label, class) in by_class.iter().enumerate() {
                    let specialists: Vec<usize> = (0..clients)
                        .filter(|i| i % k == label || (i + 1) % k == label)
                        .collect();
                    for &i in class {
                        let to = if !specialists.is_empty() && rng.gen_bool(share) {
                            specialists[rng.gen_range(0..specialists.len())]
                        } else {
                            rng.gen_range(0..clients)
                        };
                        shards[to].push(i);
                    }
                }
            }
        }
        if shards.iter().all(|s| s.len() >= min_size) {
            for shard in &mut shards {
                shard.sort_unstable();
            }
            tracing::debug!(attempt, ?scheme, "partition drawn");
            return Ok(shards);
        }
    }
    Err(Error::Data(format!(
        "no {scheme:?} partition into {clients} shards of at least {min_size} in 1,000 draws"
    )))
}

/// The examples a run uses.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DataPlan {
    /// Class names.
    pub labels: Vec<String>,
    /// Examples in the data file.
    pub examples: usize,
    /// Training examples the split left.
    pub train_available: usize,
    /// Training examples used (over all shards).
    pub train_used: usize,
    /// Held-out examples the split left.
    pub test_available: usize,
    /// Held-out examples used.
    pub test_used: usize,
    /// Whether the run uses a subset of the data.
    pub subset: bool,
    /// Test texts also found in training (0: no leakage).
    pub leaked: usize,
}

/// The shards and the test set.
#[derive(Clone, Debug)]
pub struct Split {
    /// One training shard per member.
    pub shards: Vec<Dataset>,
    /// The held-out test set.
    pub test: Dataset,
    /// What was used.
    pub plan: DataPlan,
}

/// How to split the data.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct SplitConfig {
    /// Members (shards).
    pub members: usize,
    /// Fraction held out for testing.
    pub test_fraction: f64,
    /// At most this many training examples, drawn at random.
    pub max_train: Option<usize>,
    /// At most this many test examples, drawn at random.
    pub max_test: Option<usize>,
    /// How training examples spread over members.
    pub partition: Partition,
    /// Smallest shard.
    pub min_shard: usize,
    /// Seed of the split, the subsets and the partition.
    pub seed: u64,
}

/// At most `max` examples of `data`, drawn with `seed` and kept in file order.
pub fn sample(data: &Dataset, max: Option<usize>, seed: u64) -> Dataset {
    match max {
        Some(max) if max < data.len() => {
            let mut indices: Vec<usize> = (0..data.len()).collect();
            indices.shuffle(&mut StdRng::seed_from_u64(seed));
            indices.truncate(max);
            indices.sort_unstable();
            data.subset(&indices)
        }
        _ => data.clone(),
    }
}

/// Splits `data` into a held-out test set (no text shared with training) and member shards:
/// [`train_test_split`], then [`sample`] of each side (training and test draws with their own
/// seeds derived from `config.seed`), then [`partition`] of the training examples.
pub fn split(data: &Dataset, config: &SplitConfig) -> Result<Split> {
    let (train_all, test_all) = train_test_split(data, config.test_fraction, config.seed)?;
    let leak = leakage(&train_all, &test_all);
    if leak.leaked > 0 {
        return Err(Error::Data(format!(
            "{} test texts also appear in training",
            leak.leaked
        )));
    }
    let train = sample(&train_all, config.max_train, config.seed ^ 0x0074_7261_696e);
    let test = sample(&test_all, config.max_test, config.seed ^ 0x0000_7465_7374);
    let shards = partition(
        &train,
        config.members,
        config.partition,
        config.min_shard,
        config.seed,
    )?
    .iter()
    .map(|indices| train.subset(indices))
    .collect();
    Ok(Split {
        shards,
        plan: DataPlan {
            labels: data.label_names.clone(),
            examples: data.len(),
            train_available: train_all.len(),
            train_used: train.len(),
            test_available: test_all.len(),
            test_used: test.len(),
            subset: train.len() < train_all.len() || test.len() < test_all.len(),
            leaked: leak.leaked,
        },
        test,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::data::Example;

    fn corpus(per_class: &[usize]) -> Dataset {
        let mut examples = Vec::new();
        for (label, &n) in per_class.iter().enumerate() {
            for i in 0..n {
                examples.push(Example {
                    text: format!("text {label} {i}"),
                    label,
                });
            }
        }
        Dataset {
            examples,
            label_names: (0..per_class.len()).map(|l| l.to_string()).collect(),
        }
    }

    #[test]
    fn test_split_is_stratified_disjoint_and_keeps_duplicates_together() {
        let mut data = corpus(&[100, 50, 30]);
        // Ten copies of one text (with different case and spacing) must land on one side.
        for i in 0..10 {
            data.examples.push(Example {
                text: if i % 2 == 0 {
                    "Same  TEXT".into()
                } else {
                    "same text".into()
                },
                label: 0,
            });
        }
        let (train, test) = train_test_split(&data, 0.2, 7).unwrap();
        assert_eq!(train.len() + test.len(), data.len());
        assert_eq!(leakage(&train, &test).leaked, 0);
        let counts = test.label_counts();
        assert!((20..=32).contains(&counts[0]), "{counts:?}");
        assert_eq!(&counts[1..], [10, 6]);
        // Same seed, same split.
        assert_eq!(train_test_split(&data, 0.2, 7).unwrap().1, test);
        // A leaky split is reported as such.
        let leaky = leakage(&data, &test);
        assert_eq!((leaky.leaked, leaky.fraction), (test.len(), 1.0));
    }

    #[test]
    fn every_scheme_covers_each_example_once_with_the_minimum_size() {
        let data = corpus(&[60, 40, 25, 10, 5]);
        for scheme in [
            Partition::Iid,
            Partition::Dirichlet { alpha: 0.5 },
            Partition::Specialty { share: 0.8 },
        ] {
            let shards = partition(&data, 6, scheme, 8, 3).unwrap();
            let mut all: Vec<usize> = shards.iter().flatten().copied().collect();
            all.sort_unstable();
            assert_eq!(all, (0..data.len()).collect::<Vec<_>>(), "{scheme:?}");
            assert!(shards.iter().all(|s| s.len() >= 8), "{scheme:?}");
        }
    }

    #[test]
    fn iid_shards_mirror_the_class_mix_and_dirichlet_skews_it() {
        let data = corpus(&[200, 200, 200, 200]);
        let spread = |shards: &[Vec<usize>]| -> f64 {
            // Mean over shards of the largest class share.
            shards
                .iter()
                .map(|s| {
                    let mut counts = [0usize; 4];
                    for &i in s {
                        counts[data.examples[i].label] += 1;
                    }
                    *counts.iter().max().unwrap() as f64 / s.len() as f64
                })
                .sum::<f64>()
                / shards.len() as f64
        };
        let iid = partition(&data, 8, Partition::Iid, 1, 1).unwrap();
        assert!(iid.iter().all(|s| s.len() == 100));
        assert!(spread(&iid) <= 0.26, "{}", spread(&iid));
        let skewed = partition(&data, 8, Partition::Dirichlet { alpha: 0.1 }, 1, 1).unwrap();
        assert!(spread(&skewed) > 0.6, "{}", spread(&skewed));
        let special = partition(&data, 8, Partition::Specialty { share: 0.9 }, 1, 1).unwrap();
        assert!(spread(&special) > 0.4, "{}", spread(&special));
    }

    #[test]
    fn validation_is_carved_from_training_only() {
        let data = corpus(&[100, 60, 40]);
        let (train, test) = train_test_split(&data, 0.2, 7).unwrap();
        let (fit, validation) = validation_split(&train, 0.15, 7).unwrap();
        assert_eq!(fit.len() + validation.len(), train.len());
        assert_eq!(leakage(&fit, &validation).leaked, 0);
        assert_eq!(leakage(&validation, &test).leaked, 0);
        assert_eq!(validation.label_counts(), [12, 7, 5]);
        // Another draw than the test split's: not the same share of the same order.
        assert_ne!(validation, train_test_split(&train, 0.15, 7).unwrap().1);
    }

    #[test]
    fn impossible_minimums_are_refused() {
        let data = corpus(&[10, 10]);
        assert!(partition(&data, 5, Partition::Iid, 5, 0).is_err());
    }

    #[test]
    fn split_samples_each_side_and_shards_the_training_part() {
        let data = corpus(&[100, 60, 40]);
        let config = SplitConfig {
            members: 3,
            test_fraction: 0.2,
            max_train: Some(90),
            max_test: Some(25),
            partition: Partition::Iid,
            min_shard: 1,
            seed: 5,
        };
        let result = split(&data, &config).unwrap();
        let plan = &result.plan;
        assert_eq!(
            (plan.examples, plan.train_available, plan.test_available),
            (200, 160, 40)
        );
        assert_eq!((plan.train_used, plan.test_used, plan.leaked), (90, 25, 0));
        assert!(plan.subset);
        assert_eq!(result.shards.iter().map(Dataset::len).sum::<usize>(), 90);
        assert_eq!(result.test.len(), 25);
        for shard in &result.shards {
            assert_eq!(leakage(shard, &result.test).leaked, 0);
        }
        let again = split(&data, &config).unwrap();
        assert_eq!((again.shards, again.test), (result.shards, result.test));
        // Without limits everything is used.
        let all = split(
            &data,
            &SplitConfig {
                max_train: None,
                max_test: None,
                ..config
            },
        )
        .unwrap();
        assert_eq!((all.plan.train_used, all.plan.test_used), (160, 40));
        assert!(!all.plan.subset);
        assert_eq!(sample(&data, Some(500), 1), data);
    }
}
