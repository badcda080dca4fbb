//! Detection quality of the on-chain anomaly methods on simulated attacks.
//!
//! For 10 and 20 members, 10 %, 20 % and 30 % attackers of each kind in
//! [`bcfl_processor::anomaly::simulate`] (sign flip, scaling x10, Gaussian noise, free rider,
//! slow links), over `--seeds N` seeds (20 by default), it runs each method alone and the
//! ensemble (flagged by at least 2 of the 3) through [`bcfl_processor::anomaly::evaluate`] on the
//! evidence the chain would hold, and prints precision, recall and F1 over all seeds together.
//! No model is trained: updates are synthetic (see the `simulate` module), so these numbers say
//! how well the methods separate the attackers' commitments, not what accuracy a model keeps.
//!
//! Output: one JSON object per line; `--markdown` prints a table instead.
//!
//! ```text
//! cargo bench -p bcfl-processor --bench anomaly_detection --profile dev -- --seeds 20 --markdown
//! ```

use bcfl_processor::anomaly::simulate::{simulate_round, Attack, Counts, Scenario};
use bcfl_processor::anomaly::{evaluate, MemberData};
use bcfl_protos::bcfl as pb;

fn features() -> Vec<pb::Feature> {
    vec![
        pb::Feature::UPDATE_NORM,
        pb::Feature::SKETCH_COSINE_DISTANCE,
    ]
}

/// The consortium defaults of `bcfl consortium init`, one method or all three.
fn config(pagerank: bool, dbscan: bool, zscore: bool, min_votes: u32) -> pb::AnomalyConfig {
    let mut c = pb::AnomalyConfig {
        ensemble_min_votes: min_votes,
        ..Default::default()
    };
    if pagerank {
        *c.mut_pagerank() = pb::PageRankConfig {
            damping_ppm: 850_000,
            k_ppm: 1_000_000,
            weight: pb::PageRankWeight::LATENCY,
            max_iterations: 100,
            tolerance_ppb: 1000,
            ..Default::default()
        };
    }
    if dbscan {
        *c.mut_dbscan() = pb::DbscanConfig {
            eps_ppm: 1_500_000,
            min_points: 2,
            features: features(),
            ..Default::default()
        };
    }
    if zscore {
        *c.mut_zscore() = pb::ZScoreConfig {
            threshold_ppm: 3_500_000,
            features: features(),
            ..Default::default()
        };
    }
    c
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let markdown = args.iter().any(|a| a == "--markdown");
    let seeds: u64 = args
        .iter()
        .position(|a| a == "--seeds")
        .and_then(|i| args.get(i + 1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let methods = [
        ("pagerank", config(true, false, false, 1)),
        ("dbscan", config(false, true, false, 1)),
        ("zscore", config(false, false, true, 1)),
        ("ensemble_2_of_3", config(true, true, true, 2)),
    ];
    if markdown {
        println!("| members | attackers | attack | method | precision | recall | F1 |");
        println!("| ---: | ---: | --- | --- | ---: | ---: | ---: |");
    }
    let started = std::time::Instant::now();
    for members in [10usize, 20] {
        for percent in [10usize, 20, 30] {
            let attackers = members * percent / 100;
            for attack in Attack::ALL {
                let mut counts = vec![Counts::default(); methods.len()];
                for seed in 0..seeds {
                    let round = simulate_round(&Scenario {
                        members,
                        attackers,
                        attack,
                        seed,
                    });
                    let data = MemberData::from_evidence(&round.commitments, &round.links);
                    for (i, (_, config)) in methods.iter().enumerate() {
                        let e = evaluate(config, &data).expect("simulated data has every feature");
                        counts[i].add(&e.excluded, &round.attackers);
                    }
                }
                for ((name, _), c) in methods.iter().zip(&counts) {
                    if markdown {
                        println!(
                            "| {members} | {percent} % | {} | {name} | {:.3} | {:.3} | {:.3} |",
                            attack.name(),
                            c.precision(),
                            c.recall(),
                            c.f1()
                        );
                    } else {
                        println!(
                            "{{\"members\":{members},\"attackers\":{attackers},\"attack\":\"{}\",\"method\":\"{name}\",\"seeds\":{seeds},\"tp\":{},\"fp\":{},\"fn\":{},\"precision\":{:.4},\"recall\":{:.4},\"f1\":{:.4}}}",
                            attack.name(),
                            c.true_positives,
                            c.false_positives,
                            c.false_negatives,
                            c.precision(),
                            c.recall(),
                            c.f1()
                        );
                    }
                }
            }
        }
    }
    eprintln!("evaluated in {:.2?}", started.elapsed());
}
