//! How much honest members' updates agree, by how their data is split, on the real embeddings
//! outside the ledger (docs/anomaly-detection.md, "Skewed shards": what would tell a consortium
//! which regime it is in). Ignored by default: it needs the model and the corpus (`.
//! scripts/env.sh` sets both):
//!
//! ```sh
//! cargo test --release -p bcfl-client --features train --lib shard_agreement -- --ignored --nocapture
//! ```
//!
//! 10 and 20 members, IID, Dirichlet 0.5 and Dirichlet 0.1 shards, seeds 0-2, rounds 1-3 of
//! FedAvg over the honest updates from the all-zero head. For each round: each member's median
//! cosine with the others' updates, and the median of those (robust to a minority of
//! attackers). The test asserts that in round 1 every IID run agrees more than every Dirichlet
//! 0.5 run, and every Dirichlet 0.5 run more than every Dirichlet 0.1 run, and prints the values.

use super::honest_rounds::{cosine, honest_fedavg};
use crate::train::split::Partition;

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Round 1's median of the members' median cosines, for each seed and member count.
fn first_round_agreement(partition: Partition) -> Vec<f64> {
    let mut firsts = Vec::new();
    for members in [10, 20] {
        honest_fedavg(partition, members, 0..3, |round| {
            if round.number > 3 {
                return;
            }
            let changes = round.changes;
            let per_member: Vec<f64> = (0..changes.len())
                .map(|i| {
                    median(
                        (0..changes.len())
                            .filter(|&j| j != i)
                            .map(|j| cosine(&changes[i].0, &changes[j].0))
                            .collect(),
                    )
                })
                .collect();
            let agreement = median(per_member);
            println!(
                "{partition:?}, {members} members, seed {}, round {}: {agreement:.3}",
                round.seed, round.number
            );
            if round.number == 1 {
                firsts.push(agreement);
            }
        });
    }
    firsts
}

#[test]
#[ignore = "needs the model and the corpus (scripts/env.sh); about 60 s in release"]
fn shard_agreement_tells_iid_from_skewed_shards_in_round_one() {
    let iid = first_round_agreement(Partition::Iid);
    let half = first_round_agreement(Partition::Dirichlet { alpha: 0.5 });
    let skewed = first_round_agreement(Partition::Dirichlet { alpha: 0.1 });
    let low = |v: &[f64]| v.iter().copied().fold(f64::INFINITY, f64::min);
    let high = |v: &[f64]| v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    println!(
        "round 1: IID {:.3}..{:.3}, Dirichlet 0.5 {:.3}..{:.3}, Dirichlet 0.1 {:.3}..{:.3}",
        low(&iid),
        high(&iid),
        low(&half),
        high(&half),
        low(&skewed),
        high(&skewed)
    );
    assert!(low(&iid) > high(&half), "{iid:?} {half:?}");
    assert!(low(&half) > high(&skewed), "{half:?} {skewed:?}");
}

/// Each honest member's cosine with the mean of the other members' changes (the leave-one-out
/// mean), over rounds 1-6, 10 members, seeds 0-2: what a lone ALIE attacker, which sends the
/// honest members' mean itself (its `z` is 0 with one attacker of ten), would lie at 1 on. Prints
/// the range by partition; asserts only that the values are cosines. A measurement for
/// docs/anomaly-detection.md ("What the preset does not do").
#[test]
#[ignore = "needs the model and the corpus (scripts/env.sh); about 60 s in release"]
fn leave_one_out_mean_cosines() {
    for partition in [Partition::Iid, Partition::Dirichlet { alpha: 0.1 }] {
        let mut all = Vec::new();
        honest_fedavg(partition, 10, 0..3, |round| {
            let changes = round.changes;
            let n = changes.len();
            for i in 0..n {
                let dim = changes[i].0.len();
                let mut mean = vec![0.0; dim];
                let others = changes.iter().enumerate().filter(|(j, _)| *j != i);
                for (_, (change, _)) in others {
                    mean.iter_mut().zip(change).for_each(|(m, x)| *m += x);
                }
                mean.iter_mut().for_each(|m| *m /= (n - 1) as f64);
                all.push(cosine(&changes[i].0, &mean));
            }
        });
        all.sort_by(f64::total_cmp);
        let at = |q: f64| all[((all.len() - 1) as f64 * q) as usize];
        println!(
            "{partition:?}: {} member-rounds, cosine with the others' mean {:.3} (min) {:.3} (10 %) {:.3} (median) {:.3} (90 %) {:.3} (99 %) {:.3} (max)",
            all.len(),
            all[0],
            at(0.1),
            at(0.5),
            at(0.9),
            at(0.99),
            all[all.len() - 1]
        );
        assert!(all.iter().all(|c| (-1.0 - 1e-9..=1.0 + 1e-9).contains(c)));
    }
}
