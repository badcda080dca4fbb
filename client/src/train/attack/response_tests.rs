//! How members' changes respond to the model's moves, on the real embeddings, outside the
//! ledger (the measurement behind the `MOVE_RESPONSE` feature and the ascent method,
//! docs/anomaly-detection.md, "Steps that climb"). Ignored by default: it needs the model and
//! the corpus (`. scripts/env.sh` sets both):
//!
//! ```sh
//! cargo test --release -p bcfl-client --features train --lib move_response -- --ignored --nocapture
//! ```
//!
//! 10 and 20 members, IID and Dirichlet 0.1 shards, seeds 0-2 and 100-102, six rounds of FedAvg
//! over the honest updates. From round 2 on, each member's change minus its previous one is
//! compared with the global model's change in between, at 256 positions drawn once: one round's
//! cosine, and the feature's running ratio (dot products over products of lengths, summed over
//! the member's rounds). Honest updates, label-flipped ones (trained on labels shifted by one
//! class) and sign-flipped ones (the honest update negated) are measured from the same models.
//! A descent step's change responds against the move, so honest ratios lie below 0 (and
//! label-flipped ones, nearly all) and sign-flipped ones above; the test asserts that and prints
//! the ranges.

use bcfl_processor::anomaly::simulate::Rng;

use super::honest_rounds::honest_fedavg;
use crate::train::split::Partition;

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn minus(a: &[f64], b: &[f64]) -> Vec<f64> {
    a.iter().zip(b).map(|(x, y)| x - y).collect()
}

/// One kind of update's values over every member-round from round 2 on.
#[derive(Debug, Default)]
struct Values {
    /// One round's cosine.
    round: Vec<f64>,
    /// The running ratio up to that round.
    running: Vec<f64>,
}

impl Values {
    fn summary(&self, name: &str) -> String {
        let range = |v: &[f64]| {
            let low = v.iter().copied().fold(f64::INFINITY, f64::min);
            let high = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            format!("{low:.3} to {high:.3}")
        };
        let above = |v: &[f64], t: f64| v.iter().filter(|x| **x > t).count();
        format!(
            "{name}: {} member-rounds; one round {} ({} above 0, {} above 0.15); running {} ({} above 0)",
            self.round.len(),
            range(&self.round),
            above(&self.round, 0.0),
            above(&self.round, 0.15),
            range(&self.running),
            above(&self.running, 0.0),
        )
    }
}

/// Per member: the sums of the running ratio for the honest and the label-flipped updates (the
/// sign-flipped sums are the honest ones negated).
#[derive(Clone, Copy, Default)]
struct Sums {
    honest: (f64, f64),
    label: (f64, f64),
}

fn measure(partition: Partition, members: usize, first_seed: u64, out: &mut [Values; 3]) {
    // Positions drawn once per run, and each member's previous changes at them and its sums.
    let mut positions = Vec::new();
    let mut previous: Vec<(Vec<f64>, Vec<f64>)> = Vec::new();
    let mut sums = vec![Sums::default(); members];
    honest_fedavg(partition, members, first_seed..first_seed + 3, |round| {
        if round.number == 1 {
            positions = Rng::new(round.seed ^ 0xC0DE).choose(round.global.flat().len(), 256);
            sums = vec![Sums::default(); members];
        }
        let sample = |v: &[f64]| positions.iter().map(|&k| v[k]).collect::<Vec<f64>>();
        let now: Vec<(Vec<f64>, Vec<f64>)> = round
            .changes
            .iter()
            .map(|(honest, label)| (sample(honest), sample(label)))
            .collect();
        if let Some(m) = round.moved {
            let m = sample(m);
            let m_len = dot(&m, &m).sqrt();
            let add = |response: Vec<f64>, acc: &mut (f64, f64), values: &mut Values| {
                let (d, w) = (dot(&response, &m), dot(&response, &response).sqrt() * m_len);
                acc.0 += d;
                acc.1 += w;
                values.round.push(d / w);
                values.running.push(acc.0 / acc.1);
            };
            for (i, ((honest, label), (h0, l0))) in now.iter().zip(&previous).enumerate() {
                let [honest_values, label_values, flipped_values] = &mut *out;
                add(minus(honest, h0), &mut sums[i].honest, honest_values);
                add(minus(label, l0), &mut sums[i].label, label_values);
                let s = sums[i].honest;
                let last = *honest_values.round.last().expect("just pushed");
                flipped_values.round.push(-last);
                flipped_values.running.push(-s.0 / s.1);
            }
        }
        previous = now;
    });
}

#[test]
#[ignore = "needs the model and the corpus (scripts/env.sh); about 5 s in release"]
fn move_responses_separate_descent_steps_from_flipped_ones() {
    let mut out: [Values; 3] = Default::default();
    for members in [10, 20] {
        for first_seed in [0, 100] {
            for partition in [Partition::Dirichlet { alpha: 0.1 }, Partition::Iid] {
                measure(partition, members, first_seed, &mut out);
            }
        }
    }
    let [honest, label, flipped] = &out;
    println!("{}", honest.summary("honest"));
    println!("{}", label.summary("label-flipped"));
    println!("{}", flipped.summary("sign-flipped"));
    // One round's cosine is noisy: some honest member-round lies above 0.
    assert!(honest.round.iter().any(|c| *c > 0.0));
    // The running ratio separates them at 0.
    assert!(honest.running.iter().all(|r| *r < 0.0));
    // A label flipper takes descent steps too (on labels of its own making): it lies below 0
    // nearly everywhere, so the ascent method is not for it.
    let label_above = label.running.iter().filter(|r| **r > 0.0).count();
    assert!(label_above * 100 <= label.running.len(), "{label_above}");
    assert!(flipped.running.iter().all(|r| *r > 0.0));
}
