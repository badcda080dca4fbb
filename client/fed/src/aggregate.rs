//! Aggregation of member updates, bit-exact for any order of arrival, streaming tensor by
//! tensor.
//!
//! Inputs are sorted by member key (byte order) before anything is computed, and every sum runs
//! in that order in `f64`, over coordinates in row-major order; results are rounded once to
//! `f32`. The same set of inputs therefore gives the same output bytes whatever order they
//! arrived in. Per rule ([`Rule`]; its command-line and on-chain forms are in [`crate::rule`]),
//! for coordinate `j` of `m` members with values `x_ij`, sample counts `n_i` and `N = Σ n_i`:
//!
//! - **FedAvg**: `Σ_i (n_i · x_ij) / N`, the sum starting from `+0.0` and adding the members
//!   one after the other (`((0 + n_0·x_0j) + n_1·x_1j) + …`), each product and sum rounded to
//!   `f64`, no fused multiply-add; then one division by `N` and one rounding to `f32`.
//! - **Median**: the middle of the values sorted by `f32::total_cmp`; for even `m`, the `f64`
//!   mean of the two middle values.
//! - **Trimmed mean** (`trim` β): sort as for the median, drop `⌊β·m⌋` values at each end, take
//!   the plain mean of the rest (summed in sorted order).
//! - **Krum** (`f` assumed Byzantine): each member's score is the sum of its `m − f − 2` smallest
//!   squared L2 distances to the others (a distance sums its tensors in name order, each tensor's
//!   squares in coordinate order); the member with the lowest score (ties: the smaller key) is
//!   the result.
//! - **Multi-Krum** (`f`, `k`): FedAvg over the `k` members with the lowest Krum scores.
//!
//! How it runs: each member's file is memory-mapped ([`mapped`]) and every tensor is walked in
//! runs of [`CHUNK`] coordinates. FedAvg adds the members' runs into an `f64` accumulator that
//! stays in the L1 cache, reading the values straight from the mapped little-endian bytes
//! ([`kernels`]: eight or four members per pass, AVX2 where the CPU has it, the same bits either way),
//! so each input byte is read once from memory. The other rules decode a run of every member
//! into a small buffer and work coordinate by coordinate. Memory: the output (one model) plus
//! O(members × [`CHUNK`]) of buffers, never O(members × model); the mapped files are page cache,
//! not the process's memory. Krum reads the files twice (distances, then output).

pub mod kernels;
pub mod mapped;

use std::path::PathBuf;

use self::kernels::View;
use self::mapped::MappedUpdate;
use crate::error::{Error, Result};
use crate::update::Update;

/// The rules, their command-line syntax and on-chain parameters: [`crate::rule::Rule`].
pub use crate::rule::Rule;

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

/// Coordinates processed at a time: an `f64` accumulator of this length (32 KiB) stays in the
/// L1 cache, and each member's run (16 KiB of `f32`) is read sequentially.
pub const CHUNK: usize = 4096;

fn check_rule(rule: Rule, m: usize) -> Result<()> {
    match rule {
        Rule::TrimmedMean { trim } if !(0.0..0.5).contains(&trim) => {
            Err(Error::Config(format!("trim {trim} not in [0, 0.5)")))
        }
        Rule::Krum { f } | Rule::MultiKrum { f, .. } if m < f + 3 => Err(Error::Config(format!(
            "Krum with f = {f} needs at least {} members, got {m}",
            f + 3
        ))),
        Rule::MultiKrum { k, .. } if !(1..=m).contains(&k) => {
            Err(Error::Config(format!("Multi-Krum k = {k} not in 1..={m}")))
        }
        _ => Ok(()),
    }
}

/// Runs of `CHUNK` coordinates of a tensor of `n` values: `(start, len)`.
fn runs(n: usize) -> impl Iterator<Item = (usize, usize)> {
    (0..n)
        .step_by(CHUNK)
        .map(move |start| (start, CHUNK.min(n - start)))
}

fn fedavg(views: &[View<'_>], weights: &[u64], out: &mut [f32]) {
    let total: f64 = weights.iter().map(|&w| w as f64).sum();
    let mut sums = vec![0f64; CHUNK.min(out.len())];
    let mut members = Vec::with_capacity(views.len());
    for (start, len) in runs(out.len()) {
        let sums = &mut sums[..len];
        sums.fill(0.0);
        members.clear();
        members.extend(
            views
                .iter()
                .zip(weights)
                .map(|(v, &w)| (v.slice(start, len), w as f64)),
        );
        kernels::accumulate(sums, &members);
        kernels::divide(&mut out[start..start + len], sums, total);
    }
}

/// Decodes run `(start, len)` of every view into `rows`.
fn decode_run(views: &[View<'_>], start: usize, len: usize, rows: &mut [Vec<f32>]) {
    for (view, row) in views.iter().zip(rows.iter_mut()) {
        kernels::decode(view.slice(start, len), row);
    }
}

/// Sets each output coordinate to `reduce` of its members' values sorted by `f32::total_cmp`.
fn by_sorted_columns(views: &[View<'_>], out: &mut [f32], reduce: impl Fn(&[f32]) -> f32) {
    let mut rows = vec![Vec::with_capacity(CHUNK); views.len()];
    let mut column = Vec::with_capacity(views.len());
    for (start, len) in runs(out.len()) {
        decode_run(views, start, len, &mut rows);
        for (j, o) in out[start..start + len].iter_mut().enumerate() {
            column.clear();
            column.extend(rows.iter().map(|row| row[j]));
            column.sort_by(f32::total_cmp);
            *o = reduce(&column);
        }
    }
}

fn median(column: &[f32]) -> f32 {
    let m = column.len();
    if m % 2 == 1 {
        column[m / 2]
    } else {
        ((f64::from(column[m / 2 - 1]) + f64::from(column[m / 2])) / 2.0) as f32
    }
}

fn trimmed_mean(column: &[f32], trim: f64) -> f32 {
    let m = column.len();
    let cut = (trim * m as f64).floor() as usize;
    let kept = &column[cut..m - cut];
    let sum: f64 = kept.iter().map(|&v| f64::from(v)).sum();
    (sum / kept.len() as f64) as f32
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

/// Pairwise squared L2 distances between the members' updates (`m × m`).
fn distances(files: &[MappedUpdate], names: &[String]) -> Result<Vec<Vec<f64>>> {
    let m = files.len();
    let mut d = vec![vec![0f64; m]; m];
    let mut rows = vec![Vec::with_capacity(CHUNK); m];
    for name in names {
        let views = files
            .iter()
            .map(|f| f.view(name))
            .collect::<Result<Vec<_>>>()?;
        // One running sum per pair over the whole tensor, in coordinate order.
        let mut tensor = vec![vec![0f64; m]; m];
        for (start, len) in runs(views[0].len()) {
            decode_run(&views, start, len, &mut rows);
            for a in 0..m {
                for b in a + 1..m {
                    tensor[a][b] = rows[a]
                        .iter()
                        .zip(&rows[b])
                        .fold(tensor[a][b], |s, (&x, &y)| {
                            s + (f64::from(x) - f64::from(y)).powi(2)
                        });
                }
            }
        }
        for a in 0..m {
            for b in a + 1..m {
                d[a][b] += tensor[a][b];
                d[b][a] += tensor[a][b];
            }
        }
    }
    Ok(d)
}

fn open_sorted(mut inputs: Vec<Contribution>) -> Result<(Vec<Contribution>, Vec<MappedUpdate>)> {
    inputs.sort_by(|a, b| a.member.cmp(&b.member));
    if inputs.windows(2).any(|w| w[0].member == w[1].member) {
        return Err(Error::Update("a member contributes twice".into()));
    }
    if inputs.is_empty() {
        return Err(Error::Update("nothing to aggregate".into()));
    }
    let files = inputs
        .iter()
        .map(|c| MappedUpdate::open(&c.path))
        .collect::<Result<Vec<_>>>()?;
    let shapes = |file: &MappedUpdate| -> Vec<(String, Vec<usize>)> {
        file.header()
            .tensors
            .iter()
            .map(|(n, e)| (n.clone(), e.shape.clone()))
            .collect()
    };
    let reference = shapes(&files[0]);
    for (c, file) in inputs.iter().zip(&files) {
        if shapes(file) != reference {
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
    let (inputs, files) = open_sorted(inputs)?;
    let m = inputs.len();
    check_rule(rule, m)?;
    let names: Vec<String> = files[0].header().tensors.keys().cloned().collect();
    let mut chosen: Vec<usize> = (0..m).collect();
    if let Rule::Krum { f } | Rule::MultiKrum { f, .. } = rule {
        let scores = krum_scores(&distances(&files, &names)?, f);
        chosen.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]).then(a.cmp(&b)));
        chosen.truncate(match rule {
            Rule::MultiKrum { k, .. } => k,
            _ => 1,
        });
        chosen.sort_unstable();
    }
    let weights: Vec<u64> = chosen.iter().map(|&i| inputs[i].samples).collect();
    if matches!(rule, Rule::FedAvg | Rule::MultiKrum { .. }) && weights.iter().sum::<u64>() == 0 {
        return Err(Error::Update("FedAvg over zero samples".into()));
    }
    let mut update = Update::default();
    for name in names {
        let shape = files[0].header().tensors[&name].shape.clone();
        let views = chosen
            .iter()
            .map(|&i| files[i].view(&name))
            .collect::<Result<Vec<_>>>()?;
        let mut out = vec![0f32; views[0].len()];
        match rule {
            Rule::FedAvg | Rule::MultiKrum { .. } => fedavg(&views, &weights, &mut out),
            Rule::Median => by_sorted_columns(&views, &mut out, median),
            Rule::TrimmedMean { trim } => {
                by_sorted_columns(&views, &mut out, |c| trimmed_mean(c, trim))
            }
            Rule::Krum { .. } => {
                let mut values = Vec::new();
                kernels::decode(views[0], &mut values);
                out = values;
            }
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
    use crate::update::Encoding;
    use proptest::prelude::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};
    use std::collections::BTreeMap;

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

    /// The definitions of the module docs, written plainly over whole decoded tensors.
    #[allow(clippy::needless_range_loop)] // indexed as the definitions are written
    fn by_definition(members: &[(Update, u64)], rule: Rule) -> BTreeMap<String, Vec<f32>> {
        let m = members.len();
        let tensor = |i: usize, name: &str| &members[i].0.tensors[name].1;
        let names: Vec<&String> = members[0].0.tensors.keys().collect();
        let mut chosen: Vec<usize> = (0..m).collect();
        if let Rule::Krum { f } | Rule::MultiKrum { f, .. } = rule {
            let mut d = vec![vec![0f64; m]; m];
            for name in &names {
                for a in 0..m {
                    for b in a + 1..m {
                        let s: f64 = tensor(a, name)
                            .iter()
                            .zip(tensor(b, name))
                            .map(|(&x, &y)| (f64::from(x) - f64::from(y)).powi(2))
                            .sum();
                        d[a][b] += s;
                        d[b][a] += s;
                    }
                }
            }
            let scores = krum_scores(&d, f);
            chosen.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]).then(a.cmp(&b)));
            chosen.truncate(if let Rule::MultiKrum { k, .. } = rule {
                k
            } else {
                1
            });
            chosen.sort_unstable();
        }
        let total: f64 = chosen.iter().map(|&i| members[i].1 as f64).sum();
        let mut out = BTreeMap::new();
        for name in names {
            let n = tensor(0, name).len();
            let values = (0..n)
                .map(|j| {
                    let mut column: Vec<f32> = chosen.iter().map(|&i| tensor(i, name)[j]).collect();
                    column.sort_by(f32::total_cmp);
                    match rule {
                        Rule::FedAvg | Rule::MultiKrum { .. } => {
                            let mut sum = 0f64;
                            for &i in &chosen {
                                sum += members[i].1 as f64 * f64::from(tensor(i, name)[j]);
                            }
                            (sum / total) as f32
                        }
                        Rule::Median => median(&column),
                        Rule::TrimmedMean { trim } => trimmed_mean(&column, trim),
                        Rule::Krum { .. } => tensor(chosen[0], name)[j],
                    }
                })
                .collect();
            out.insert(name.clone(), values);
        }
        out
    }

    /// Streaming in runs of `CHUNK` (tensors longer than a run, files in f32 and int8 mixed)
    /// gives exactly the values of the plain definitions.
    #[test]
    fn streaming_equals_the_definitions_across_runs_and_encodings() {
        let dir = tempfile::tempdir().unwrap();
        let mut rng = StdRng::seed_from_u64(7);
        let mut members = Vec::new();
        let mut inputs = Vec::new();
        for i in 0..7u64 {
            let mut update = Update::default();
            for (name, n) in [("a", 2 * CHUNK + 13), ("b", 5), ("c", CHUNK)] {
                let values = (0..n).map(|_| rng.gen_range(-3.0f32..3.0)).collect();
                update.tensors.insert(name.into(), (vec![n], values));
            }
            let encoding = if i % 3 == 1 {
                Encoding::Int8
            } else {
                Encoding::F32
            };
            let bytes = update.to_bytes(encoding);
            let path = dir.path().join(format!("{i}.safetensors"));
            std::fs::write(&path, &bytes).unwrap();
            let samples = 10 + 7 * i;
            members.push((Update::from_bytes(&bytes).unwrap(), samples));
            inputs.push(Contribution {
                member: format!("k{i}"),
                path,
                samples,
            });
        }
        // An outlier, so that Krum has someone to reject.
        for values in members[4].0.tensors.values_mut() {
            values.1.iter_mut().for_each(|v| *v += 50.0);
        }
        std::fs::write(&inputs[4].path, members[4].0.to_bytes(Encoding::F32)).unwrap();
        for rule in rules() {
            let streamed = aggregate(inputs.clone(), rule).unwrap();
            let expected = by_definition(&members, rule);
            assert_eq!(streamed.update.tensors.len(), expected.len());
            for (name, values) in expected {
                let got = &streamed.update.tensors[&name].1;
                let same = got
                    .iter()
                    .zip(&values)
                    .all(|(a, b)| a.to_bits() == b.to_bits());
                assert!(same && got.len() == values.len(), "{rule:?} {name}");
            }
            if matches!(rule, Rule::Krum { .. } | Rule::MultiKrum { .. }) {
                assert!(!streamed.selected.contains(&"k4".to_string()), "{rule:?}");
            }
        }
    }

    #[test]
    fn truncated_and_inconsistent_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let a = write(dir.path(), "a", &[1.0, 2.0, 3.0], 1);
        let b = write(dir.path(), "b", &[1.0, 2.0, 3.0], 1);
        let bytes = std::fs::read(&b.path).unwrap();
        std::fs::write(&b.path, &bytes[..bytes.len() - 2]).unwrap();
        let err = aggregate(vec![a.clone(), b.clone()], Rule::FedAvg).unwrap_err();
        assert!(err.to_string().contains("past the end"), "{err}");
        std::fs::write(&b.path, &bytes[..5]).unwrap();
        assert!(aggregate(vec![a, b], Rule::Median).is_err());
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
