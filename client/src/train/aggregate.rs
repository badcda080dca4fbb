//! Aggregation of member updates, bit-exact for any order of arrival, streaming tensor by
//! tensor.
//!
//! Inputs are sorted by member key (byte order) before anything is computed, and every sum runs
//! in that order in `f64`, over coordinates in row-major order; results are rounded once to
//! `f32`. The same set of inputs therefore gives the same output bytes whatever order they
//! arrived in. Per rule, for coordinate `j` of `m` members with values `x_ij`, sample counts
//! `n_i` and `N = Σ n_i`:
//!
//! - **FedAvg**: `Σ_i (n_i · x_ij) / N`.
//! - **Median**: the middle of the values sorted by `f32::total_cmp`; for even `m`, the `f64`
//!   mean of the two middle values.
//! - **Trimmed mean** (`trim` β): sort as for the median, drop `⌊β·m⌋` values at each end, take
//!   the plain mean of the rest (summed in sorted order).
//! - **Krum** (`f` assumed Byzantine): each member's score is the sum of its `m − f − 2` smallest
//!   squared L2 distances to the others (distances summed tensor by tensor in name order); the
//!   member with the lowest score (ties: the smaller key) is the result.
//! - **Multi-Krum** (`f`, `k`): FedAvg over the `k` members with the lowest Krum scores.
//!
//! Memory: one tensor of every member at a time, plus the output: O(model + members × largest
//! tensor), never O(members × model). Krum reads the files twice (distances, then output).

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::update::{Update, UpdateFile};
use super::{Error, Result};

/// An aggregation rule.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "rule")]
pub enum Rule {
    /// Sample-weighted mean.
    FedAvg,
    /// Coordinate-wise median.
    Median,
    /// Coordinate-wise mean after dropping a fraction `trim` at each end.
    TrimmedMean {
        /// Fraction dropped at each end, in `[0, 0.5)`.
        trim: f64,
    },
    /// The single member closest to its neighbours.
    Krum {
        /// Byzantine members tolerated.
        f: usize,
    },
    /// FedAvg of the `k` members closest to their neighbours.
    MultiKrum {
        /// Byzantine members tolerated.
        f: usize,
        /// Members averaged.
        k: usize,
    },
}

/// One member's update file and sample count.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Contribution {
    /// The member's key: the sort key of the arithmetic.
    pub member: String,
    /// Its update file (canonical safetensors, f32 or int8).
    pub path: PathBuf,
    /// Its training sample count (FedAvg weight).
    pub samples: u64,
}

/// The aggregate and which members it drew on.
#[derive(Clone, Debug, PartialEq)]
pub struct Aggregate {
    /// The combined update.
    pub update: Update,
    /// Members whose values entered the result (all but those Krum rejects), in key order.
    pub selected: Vec<String>,
}

fn fedavg(values: &[Vec<f32>], weights: &[u64], out: &mut [f32]) {
    let total: f64 = weights.iter().map(|&w| w as f64).sum();
    // Member by member over contiguous rows (cache-friendly); each coordinate still sums its
    // members in key order, starting from +0.0.
    let mut sums = vec![0f64; out.len()];
    for (row, &weight) in values.iter().zip(weights) {
        let weight = weight as f64;
        for (sum, &x) in sums.iter_mut().zip(row) {
            *sum += weight * f64::from(x);
        }
    }
    for (o, sum) in out.iter_mut().zip(sums) {
        *o = (sum / total) as f32;
    }
}

fn sorted_column(values: &[Vec<f32>], j: usize, column: &mut Vec<f32>) {
    column.clear();
    column.extend(values.iter().map(|v| v[j]));
    column.sort_by(f32::total_cmp);
}

fn median(values: &[Vec<f32>], out: &mut [f32]) {
    let m = values.len();
    let mut column = Vec::with_capacity(m);
    for (j, o) in out.iter_mut().enumerate() {
        sorted_column(values, j, &mut column);
        *o = if m % 2 == 1 {
            column[m / 2]
        } else {
            ((f64::from(column[m / 2 - 1]) + f64::from(column[m / 2])) / 2.0) as f32
        };
    }
}

fn trimmed_mean(values: &[Vec<f32>], trim: f64, out: &mut [f32]) {
    let m = values.len();
    let cut = (trim * m as f64).floor() as usize;
    let kept = &(cut..m - cut);
    let mut column = Vec::with_capacity(m);
    for (j, o) in out.iter_mut().enumerate() {
        sorted_column(values, j, &mut column);
        let sum: f64 = column[kept.clone()].iter().map(|&v| f64::from(v)).sum();
        *o = (sum / kept.len() as f64) as f32;
    }
}

/// Krum scores of members whose pairwise squared distances are `d` (`m × m`).
pub fn krum_scores(d: &[Vec<f64>], f: usize) -> Vec<f64> {
    let m = d.len();
    let neighbours = m.saturating_sub(f + 2).max(1);
    (0..m)
        .map(|i| {
            let mut row: Vec<f64> = (0..m).filter(|&j| j != i).map(|j| d[i][j]).collect();
            row.sort_by(f64::total_cmp);
            row.iter().take(neighbours).sum()
        })
        .collect()
}

fn open_sorted(mut inputs: Vec<Contribution>) -> Result<(Vec<Contribution>, Vec<UpdateFile>)> {
    inputs.sort_by(|a, b| a.member.cmp(&b.member));
    if inputs.windows(2).any(|w| w[0].member == w[1].member) {
        return Err(Error::Update("a member contributes twice".into()));
    }
    if inputs.is_empty() {
        return Err(Error::Update("nothing to aggregate".into()));
    }
    let files = inputs
        .iter()
        .map(|c| UpdateFile::open(&c.path))
        .collect::<Result<Vec<_>>>()?;
    let reference: BTreeMap<&String, &Vec<usize>> = files[0]
        .header()
        .tensors
        .iter()
        .map(|(n, e)| (n, &e.shape))
        .collect();
    for (c, file) in inputs.iter().zip(&files) {
        let here: BTreeMap<&String, &Vec<usize>> = file
            .header()
            .tensors
            .iter()
            .map(|(n, e)| (n, &e.shape))
            .collect();
        if here != reference {
            return Err(Error::Update(format!(
                "{}: tensors or shapes differ from {}'s",
                c.member, inputs[0].member
            )));
        }
    }
    Ok((inputs, files))
}

/// Aggregates `inputs` with `rule` (see the module docs for the arithmetic).
pub fn aggregate(inputs: Vec<Contribution>, rule: Rule) -> Result<Aggregate> {
    let (inputs, mut files) = open_sorted(inputs)?;
    let m = inputs.len();
    let names: Vec<String> = files[0].header().tensors.keys().cloned().collect();
    let mut chosen: Vec<usize> = (0..m).collect();
    match rule {
        Rule::TrimmedMean { trim } if !(0.0..0.5).contains(&trim) => {
            return Err(Error::Config(format!("trim {trim} not in [0, 0.5)")));
        }
        Rule::Krum { f } | Rule::MultiKrum { f, .. } => {
            if m < f + 3 {
                return Err(Error::Config(format!(
                    "Krum with f = {f} needs at least {} members, got {m}",
                    f + 3
                )));
            }
            let mut d = vec![vec![0f64; m]; m];
            for name in &names {
                let values = files
                    .iter_mut()
                    .map(|f| f.read(name))
                    .collect::<Result<Vec<_>>>()?;
                for a in 0..m {
                    for b in a + 1..m {
                        let s: f64 = values[a]
                            .iter()
                            .zip(&values[b])
                            .map(|(&x, &y)| (f64::from(x) - f64::from(y)).powi(2))
                            .sum();
                        d[a][b] += s;
                        d[b][a] += s;
                    }
                }
            }
            let scores = krum_scores(&d, f);
            chosen.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]).then(a.cmp(&b)));
            let keep = match rule {
                Rule::MultiKrum { k, .. } if (1..=m).contains(&k) => k,
                Rule::MultiKrum { k, .. } => {
                    return Err(Error::Config(format!("Multi-Krum k = {k} not in 1..={m}")));
                }
                _ => 1,
            };
            chosen.truncate(keep);
            chosen.sort_unstable();
        }
        _ => {}
    }
    let weights: Vec<u64> = chosen.iter().map(|&i| inputs[i].samples).collect();
    if matches!(rule, Rule::FedAvg | Rule::MultiKrum { .. }) && weights.iter().sum::<u64>() == 0 {
        return Err(Error::Update("FedAvg over zero samples".into()));
    }
    let mut update = Update::default();
    for name in names {
        let shape = files[0].header().tensors[&name].shape.clone();
        let values = chosen
            .iter()
            .map(|&i| files[i].read(&name))
            .collect::<Result<Vec<_>>>()?;
        let mut out = vec![0f32; values[0].len()];
        match rule {
            Rule::FedAvg | Rule::MultiKrum { .. } => fedavg(&values, &weights, &mut out),
            Rule::Median => median(&values, &mut out),
            Rule::TrimmedMean { trim } => trimmed_mean(&values, trim, &mut out),
            Rule::Krum { .. } => out.copy_from_slice(&values[0]),
        }
        update.tensors.insert(name, (shape, out));
    }
    Ok(Aggregate {
        update,
        selected: chosen.iter().map(|&i| inputs[i].member.clone()).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::update::Encoding;
    use proptest::prelude::*;

    fn write(dir: &std::path::Path, member: &str, values: &[f32], samples: u64) -> Contribution {
        let mut update = Update::default();
        update
            .tensors
            .insert("a".into(), (vec![values.len()], values.to_vec()));
        update
            .tensors
            .insert("b".into(), (vec![1], vec![values.iter().sum()]));
        let path = dir.join(format!("{member}.safetensors"));
        std::fs::write(&path, update.to_bytes(Encoding::F32)).unwrap();
        Contribution {
            member: member.into(),
            path,
            samples,
        }
    }

    fn rules() -> [Rule; 5] {
        [
            Rule::FedAvg,
            Rule::Median,
            Rule::TrimmedMean { trim: 0.2 },
            Rule::Krum { f: 1 },
            Rule::MultiKrum { f: 1, k: 3 },
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(16))]
        /// Any arrival order gives the same bytes, for every rule.
        #[test]
        fn arrival_order_does_not_matter(
            values in proptest::collection::vec(proptest::collection::vec(-1e3f32..1e3, 7), 5..8),
            rotation in 0usize..8,
        ) {
            let dir = tempfile::tempdir().unwrap();
            let inputs: Vec<Contribution> = values
                .iter()
                .enumerate()
                .map(|(i, v)| write(dir.path(), &format!("m{i:02}"), v, 1 + i as u64 * 37))
                .collect();
            let mut shuffled = inputs.clone();
            shuffled.reverse();
            shuffled.rotate_left(rotation % inputs.len());
            for rule in rules() {
                let a = aggregate(inputs.clone(), rule).unwrap();
                let b = aggregate(shuffled.clone(), rule).unwrap();
                prop_assert_eq!(a.update.to_bytes(Encoding::F32), b.update.to_bytes(Encoding::F32));
                prop_assert_eq!(a.selected, b.selected);
            }
        }

        /// Aggregating copies of one update gives that update back, whatever the rule.
        #[test]
        fn identical_inputs_are_a_fixed_point(values in proptest::collection::vec(-1e3f32..1e3, 1..20)) {
            let dir = tempfile::tempdir().unwrap();
            let inputs: Vec<Contribution> =
                (0..5).map(|i| write(dir.path(), &format!("m{i}"), &values, 3 + i)).collect();
            for rule in rules() {
                let out = aggregate(inputs.clone(), rule).unwrap();
                prop_assert_eq!(&out.update.tensors["a"].1, &values);
            }
        }
    }

    #[test]
    fn known_answers_and_robustness_to_an_outlier() {
        let dir = tempfile::tempdir().unwrap();
        let inputs = vec![
            write(dir.path(), "a", &[1.0], 1),
            write(dir.path(), "b", &[2.0], 1),
            write(dir.path(), "c", &[3.0], 2),
            write(dir.path(), "d", &[4.0], 0),
            write(dir.path(), "z", &[1000.0], 1),
        ];
        let value = |rule| aggregate(inputs.clone(), rule).unwrap().update.tensors["a"].1[0];
        // (1 + 2 + 6 + 0 + 1000) / 5
        assert_eq!(value(Rule::FedAvg), 1009.0 / 5.0);
        assert_eq!(value(Rule::Median), 3.0);
        assert_eq!(value(Rule::TrimmedMean { trim: 0.2 }), 3.0);
        let krum = aggregate(inputs.clone(), Rule::Krum { f: 1 }).unwrap();
        assert_ne!(krum.selected, ["z"]);
        assert!(krum.update.tensors["a"].1[0] <= 4.0);
        let multi = aggregate(inputs.clone(), Rule::MultiKrum { f: 1, k: 4 }).unwrap();
        assert_eq!(multi.selected, ["a", "b", "c", "d"]);
        assert_eq!(multi.update.tensors["a"].1[0], 9.0 / 4.0);
    }

    #[test]
    fn mismatched_shapes_and_duplicate_members_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let a = write(dir.path(), "a", &[1.0, 2.0], 1);
        let b = write(dir.path(), "b", &[1.0], 1);
        assert!(aggregate(vec![a.clone(), b], Rule::FedAvg).is_err());
        assert!(aggregate(vec![a.clone(), a], Rule::FedAvg).is_err());
    }
}
