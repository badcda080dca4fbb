//! Detection quality of the on-chain anomaly methods on simulated attacks.
//!
//! For 10 and 20 members, 10 %, 20 % and 30 % attackers of each kind
//! [`bcfl_processor::anomaly::simulate`] can apply ([`SIMULATED`]: sign flip, scaling x10,
//! Gaussian noise, free rider, slow links; and the colluding ALIE, IPM, min-max and min-sum),
//! over `--seeds N` seeds (20 by default), it runs each method alone and the ensemble (flagged
//! by at least 2 of the 3), the ensemble with the nearest-sketch distance as a third feature,
//! and the ensemble with the coordinate sign balance as a third feature, through
//! [`bcfl_processor::anomaly::evaluate`] on the evidence the chain would hold, and prints
//! precision, recall and F1 over all seeds together.
//! No model is trained: updates are synthetic (see the `simulate` module), so these numbers say
//! how well the methods separate the attackers' commitments, not what accuracy a model keeps.
//!
//! Output: one JSON object per line; `--markdown` prints a table instead. A last line measures
//! the on-chain cost at the family's limits: 256 committers, 4096-value sketches and 4096
//! sampled coordinates, all 65,280 links measured, all three methods with every feature,
//! PageRank capped at 10,000 iterations with damping 0.99 and tolerance 1 ppb.
//!
//! ```text
//! cargo bench -p bcfl-processor --bench anomaly_detection --profile dev -- --seeds 20 --markdown
//! ```

use bcfl_processor::anomaly::attack::AttackKind;
use bcfl_processor::anomaly::simulate::{simulate_round, Counts, Scenario, SIMULATED};
use bcfl_processor::anomaly::{
    default_config, evaluate, with_features, MemberData, DEFAULT_FEATURES,
};
use bcfl_protos::bcfl as pb;

/// The consortium defaults of `bcfl consortium init`, one method or all three.
fn config(pagerank: bool, dbscan: bool, zscore: bool, min_votes: u32) -> pb::AnomalyConfig {
    default_config(pagerank, dbscan, zscore, min_votes)
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
    // The default features and the nearest-sketch distance (colluders send one update).
    let mut nearest = DEFAULT_FEATURES.to_vec();
    nearest.push(pb::Feature::NEAREST_SKETCH_COSINE_DISTANCE);
    // The default features and the coordinate sign balance (updates crafted below the centre).
    let mut coordinates = DEFAULT_FEATURES.to_vec();
    coordinates.push(pb::Feature::COORDINATE_SIGN_BALANCE);
    let methods = [
        ("pagerank", config(true, false, false, 1)),
        ("dbscan", config(false, true, false, 1)),
        ("zscore", config(false, false, true, 1)),
        ("ensemble_2_of_3", config(true, true, true, 2)),
        (
            "ensemble_2_of_3_nearest",
            with_features(config(true, true, true, 2), &nearest),
        ),
        (
            "ensemble_2_of_3_coordinates",
            with_features(config(true, true, true, 2), &coordinates),
        ),
    ];
    if markdown {
        println!("| members | attackers | attack | method | precision | recall | F1 |");
        println!("| ---: | ---: | --- | --- | ---: | ---: | ---: |");
    }
    let started = std::time::Instant::now();
    for members in [10usize, 20] {
        for percent in [10usize, 20, 30] {
            let attackers = members * percent / 100;
            for attack in SIMULATED.into_iter().chain(AttackKind::COLLUDING) {
                let mut counts = vec![Counts::default(); methods.len()];
                for seed in 0..seeds {
                    let round = simulate_round(&Scenario {
                        members,
                        attackers,
                        attack,
                        seed,
                    })
                    .expect("SIMULATED and colluding kinds are simulated");
                    let data = MemberData::from_evidence(
                        &round.commitments,
                        &round.links,
                        &Default::default(),
                        0,
                    );
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
    worst_case_cost();
}

/// Times one evaluation at the family's size limits (see the module docs).
fn worst_case_cost() {
    let n = 256;
    let mut x: u64 = 99;
    let mut next = move || {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        x >> 33
    };
    let keys: Vec<String> = (0..n).map(|i| format!("{i:04}")).collect();
    let commitments: Vec<pb::Commitment> = keys
        .iter()
        .map(|k| pb::Commitment {
            member: k.clone(),
            norm_micro: 1_000_000 + next() % 100_000,
            loss_micro: (next() % 1_000_000) as i64,
            num_samples: 1 + next() % 1000,
            sketch: (0..4096).map(|_| (next() % 256) as u8).collect(),
            coordinate_step_nano: 7_875,
            coordinate_steps: (0..4096).map(|_| (next() % 255) as u8 ^ 0x80).collect(),
            ..Default::default()
        })
        .collect();
    let mut links = Vec::new();
    for from in &keys {
        for to in &keys {
            if from != to {
                links.push(pb::Link {
                    from: from.clone(),
                    to: to.clone(),
                    samples: (0..16)
                        .map(|e| pb::LinkSample {
                            epoch: e,
                            bytes_per_sec: 1 + next() % 100_000_000,
                            ..Default::default()
                        })
                        .collect(),
                    ..Default::default()
                });
            }
        }
    }
    let all: Vec<pb::Feature> = vec![
        pb::Feature::UPDATE_NORM,
        pb::Feature::SKETCH_COSINE_DISTANCE,
        pb::Feature::TRAINING_LOSS,
        pb::Feature::SAMPLE_COUNT,
        pb::Feature::BANDWIDTH_IN,
        pb::Feature::BANDWIDTH_OUT,
        pb::Feature::PAGERANK_SCORE,
    ];
    let mut c = config(true, true, true, 1);
    c.mut_pagerank().damping_ppm = 990_000;
    c.mut_pagerank().max_iterations = 10_000;
    c.mut_pagerank().tolerance_ppb = 1;
    c.mut_dbscan().features = all.clone();
    c.mut_zscore().features = all;
    let started = std::time::Instant::now();
    let data = MemberData::from_evidence(&commitments, &links, &Default::default(), 0);
    let features = started.elapsed();
    let e = evaluate(&c, &data).expect("all features present");
    println!(
        "{{\"worst_case\":{{\"members\":{n},\"links\":{},\"sketch\":4096,\"features_ms\":{:.1},\"total_ms\":{:.1},\"excluded\":{}}}}}",
        links.len(),
        features.as_secs_f64() * 1e3,
        started.elapsed().as_secs_f64() * 1e3,
        e.excluded.len()
    );
}
