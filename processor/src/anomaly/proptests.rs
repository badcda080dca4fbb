//! Property tests of the anomaly maths.

use proptest::prelude::*;

use super::dbscan::{dbscan, Label};
use super::pagerank::{pagerank, PageRankParams};
use super::zscore::modified_zscores;
use super::{evaluate, MemberData};
use bcfl_protos::bcfl as pb;

/// Reference DBSCAN: core points by brute force, clusters as connected components of core
/// points (Floyd-Warshall style closure), the rest noise unless next to a core point.
fn reference(points: &[Vec<f64>], eps: f64, min_points: usize) -> (Vec<bool>, Vec<Vec<bool>>) {
    let n = points.len();
    let near = |a: usize, b: usize| {
        let d: f64 = points[a]
            .iter()
            .zip(&points[b])
            .map(|(x, y)| (x - y) * (x - y))
            .sum();
        d <= eps * eps
    };
    let core: Vec<bool> = (0..n)
        .map(|p| (0..n).filter(|&q| near(p, q)).count() >= min_points)
        .collect();
    let mut same = vec![vec![false; n]; n];
    for a in 0..n {
        for b in 0..n {
            same[a][b] = core[a] && core[b] && (a == b || near(a, b));
        }
    }
    for k in 0..n {
        for a in 0..n {
            for b in 0..n {
                if same[a][k] && same[k][b] {
                    same[a][b] = true;
                }
            }
        }
    }
    let noise: Vec<bool> = (0..n)
        .map(|p| !core[p] && !(0..n).any(|q| core[q] && near(p, q)))
        .collect();
    (noise, same)
}

fn points_strategy() -> impl Strategy<Value = Vec<Vec<f64>>> {
    (1usize..3).prop_flat_map(|dim| {
        prop::collection::vec(prop::collection::vec(-20i32..20, dim), 0..14).prop_map(|ps| {
            ps.into_iter()
                .map(|p| p.into_iter().map(|v| f64::from(v) / 4.0).collect())
                .collect()
        })
    })
}

proptest! {
    #[test]
    fn zscore_is_invariant_to_positive_scale_and_never_beyond_the_unfloored_score(
        values in prop::collection::vec(-1_000i32..1_000, 1..30),
        scale in 1u32..1_000,
    ) {
        let x: Vec<f64> = values.iter().map(|v| f64::from(*v)).collect();
        let y: Vec<f64> = x.iter().map(|v| v * f64::from(scale) / 8.0).collect();
        for (a, b) in modified_zscores(&x).iter().zip(modified_zscores(&y)) {
            prop_assert!((a - b).abs() <= 1e-9 * (1.0 + a.abs()), "{a} vs {b}");
        }
        // The relative floor only ever shrinks a score: |M| <= |0.6745 (x - med) / MAD|.
        let med = super::stats::median(&x);
        let deviations: Vec<f64> = x.iter().map(|v| (v - med).abs()).collect();
        let mad = super::stats::median(&deviations);
        if mad > 0.0 {
            for (v, m) in x.iter().zip(modified_zscores(&x)) {
                let unfloored = 0.6745 * (v - med) / mad;
                prop_assert!(m.abs() <= unfloored.abs() * (1.0 + 1e-12) + 1e-12, "{m} vs {unfloored}");
            }
        }
    }

    #[test]
    fn pagerank_sums_to_one(
        n in 1usize..12,
        raw in prop::collection::vec((0usize..12, 0usize..12, 1u32..1_000_000), 0..60),
        damping in 1u32..999,
    ) {
        let edges: Vec<(usize, usize, f64)> =
            raw.iter().map(|&(i, j, w)| (i % n, j % n, f64::from(w))).collect();
        let params = PageRankParams { damping: f64::from(damping) / 1000.0, ..Default::default() };
        let r = pagerank(n, &edges, &params);
        let sum: f64 = r.ranks.iter().sum();
        prop_assert!((sum - 1.0).abs() < 1e-9, "sum {sum}");
        prop_assert!(r.ranks.iter().all(|x| *x > 0.0));
        let mut reversed = edges.clone();
        reversed.reverse();
        prop_assert_eq!(pagerank(n, &reversed, &params), r);
    }

    #[test]
    fn dbscan_matches_brute_force(
        points in points_strategy(),
        eps in 1u32..40,
        min_points in 1usize..5,
    ) {
        let eps = f64::from(eps) / 8.0;
        let labels = dbscan(&points, eps, min_points);
        let (noise, same) = reference(&points, eps, min_points);
        for (p, label) in labels.iter().enumerate() {
            prop_assert_eq!(*label == Label::Noise, noise[p], "point {}", p);
        }
        for a in 0..points.len() {
            for b in 0..points.len() {
                if same[a][a] && same[b][b] {
                    prop_assert_eq!(labels[a] == labels[b], same[a][b], "{} {}", a, b);
                }
            }
        }
    }

    #[test]
    fn verdict_does_not_depend_on_commitment_order(
        norms in prop::collection::vec(1u64..50_000_000, 2..12),
        seed in any::<u64>(),
    ) {
        let commitments: Vec<pb::Commitment> = norms
            .iter()
            .enumerate()
            .map(|(i, n)| pb::Commitment {
                member: format!("m{i:02}"),
                norm_micro: *n,
                loss_micro: (*n as i64) / 3,
                sketch: crate::testing::packed(&[(*n % 97) as i32, 5, -3]),
                ..Default::default()
            })
            .collect();
        let mut shuffled = commitments.clone();
        shuffled.rotate_left((seed % norms.len() as u64) as usize);
        let mut config = pb::AnomalyConfig::default();
        config.mut_zscore().threshold_ppm = 3_500_000;
        config.mut_zscore().features = vec![pb::Feature::UPDATE_NORM, pb::Feature::SKETCH_COSINE_DISTANCE];
        config.mut_dbscan().eps_ppm = 1_000_000;
        config.mut_dbscan().min_points = 2;
        config.mut_dbscan().features = vec![pb::Feature::UPDATE_NORM, pb::Feature::TRAINING_LOSS];
        let a = evaluate(&config, &MemberData::from_evidence(&commitments, &[], &Default::default(), 0)).unwrap();
        let b = evaluate(&config, &MemberData::from_evidence(&shuffled, &[], &Default::default(), 0)).unwrap();
        prop_assert_eq!(&a, &b);
        prop_assert_eq!(a.accepted.len() + a.excluded.len(), norms.len());
    }

    #[test]
    fn sketch_history_is_the_per_member_sum_in_any_commitment_order(
        rounds in prop::collection::vec(
            prop::collection::vec((0usize..6, prop::collection::vec(-128i32..128, 0..5)), 0..6),
            1..6,
        ),
        rotation in any::<usize>(),
    ) {
        let mut history = pb::SketchHistory::default();
        let mut expected: std::collections::BTreeMap<String, (Vec<i64>, u32, u64)> =
            Default::default();
        for (r, round) in rounds.iter().enumerate() {
            let round_number = r as u64 + 1;
            // One commitment per member and round, as the rules allow.
            let mut seen = std::collections::BTreeSet::new();
            let mut commitments: Vec<pb::Commitment> = round
                .iter()
                .filter(|(m, _)| seen.insert(*m))
                .map(|(m, sketch)| pb::Commitment {
                    member: format!("m{m}"),
                    sketch: crate::testing::packed(sketch),
                    ..Default::default()
                })
                .collect();
            for c in &commitments {
                let e = expected.entry(c.member.clone()).or_default();
                for (k, v) in c.sketch_values().into_iter().enumerate() {
                    if e.0.len() <= k {
                        e.0.resize(k + 1, 0);
                    }
                    e.0[k] += i64::from(v);
                }
                e.1 += 1;
                e.2 = round_number;
            }
            if !commitments.is_empty() {
                let n = commitments.len();
                commitments.rotate_left(rotation % n);
            }
            history = super::features::extend_history(&history, round_number, &commitments);
        }
        let got: Vec<(String, Vec<i64>, u32, u64)> = history
            .entries
            .iter()
            .map(|e| (e.member.clone(), e.sum.clone(), e.rounds, e.last_round))
            .collect();
        let want: Vec<(String, Vec<i64>, u32, u64)> = expected
            .into_iter()
            .map(|(m, (sum, rounds, last))| (m, sum, rounds, last))
            .collect();
        prop_assert_eq!(got, want);
    }

    /// The own-change cosine against a float reference, within [-1, 1], blind to either
    /// commitment's step size, and negated when the change is.
    #[test]
    fn own_change_cosine_matches_a_float_reference(
        pairs in prop::collection::vec((-127i32..=127, -127i32..=127), 1..40),
        step_now in 1u64..5_000,
        step_before in 1u64..5_000,
    ) {
        let commit = |round: u64, step: u64, steps: Vec<i32>| pb::Commitment {
            member: "m".into(),
            round,
            coordinate_step_nano: step,
            coordinate_steps: crate::testing::packed(&steps),
            ..Default::default()
        };
        let (now, before): (Vec<i32>, Vec<i32>) = pairs.iter().copied().unzip();
        let previous = [commit(1, step_before, before.clone())];
        let got = super::features::own_change_cosines(&[commit(2, step_now, now.clone())], &previous)[0];
        let dot: f64 = now.iter().zip(&before).map(|(a, b)| f64::from(*a) * f64::from(*b)).sum();
        let norm = |v: &[i32]| v.iter().map(|a| f64::from(*a).powi(2)).sum::<f64>().sqrt();
        let want = if norm(&now) == 0.0 || norm(&before) == 0.0 {
            1.0
        } else {
            dot / (norm(&now) * norm(&before))
        };
        prop_assert!((got - want).abs() < 1e-9, "{got} {want}");
        prop_assert!((-1.0..=1.0).contains(&got));
        let negated: Vec<i32> = now.iter().map(|v| -v).collect();
        let flipped = super::features::own_change_cosines(&[commit(2, 1, negated)], &previous)[0];
        if norm(&now) != 0.0 && norm(&before) != 0.0 {
            prop_assert!((flipped + got).abs() < 1e-9, "{flipped} {got}");
        }
    }

    /// `dbscan_without_excluded` changes only DBSCAN's flags: without a method that excludes on
    /// its own it changes nothing; with one, the members it flags are excluded either way and
    /// DBSCAN flags none of them, the z-score's verdict and DBSCAN's scores stay, and the
    /// methods keep their order.
    #[test]
    fn dbscan_without_excluded_changes_only_dbscans_flags(
        norms in prop::collection::vec(1u64..50_000_000, 2..12),
        copied in 0usize..12,
        copies in 0usize..4,
        robust in any::<bool>(),
    ) {
        let commitment = |member: String, norm: u64, sketch: i32| pb::Commitment {
            member,
            norm_micro: norm,
            sketch: crate::testing::packed(&[sketch, 5, -3]),
            ..Default::default()
        };
        let mut commitments: Vec<pb::Commitment> = norms
            .iter()
            .enumerate()
            .map(|(i, n)| commitment(format!("m{i:02}"), *n, i as i32))
            .collect();
        let original = copied % norms.len();
        commitments.extend(
            (0..copies).map(|k| commitment(format!("x{k:02}"), norms[original], original as i32)),
        );
        let data = MemberData::from_evidence(&commitments, &[], &Default::default(), 0);
        let mut config = pb::AnomalyConfig { ensemble_min_votes: 1, ..Default::default() };
        config.mut_zscore().threshold_ppm = 3_500_000;
        config.mut_zscore().features = vec![pb::Feature::UPDATE_NORM];
        config.set_dbscan(pb::DbscanConfig {
            eps_ppm: 1_000_000,
            min_points: 2,
            robust,
            features: vec![pb::Feature::UPDATE_NORM],
            ..Default::default()
        });
        let run = |config: &pb::AnomalyConfig, on: bool| {
            let mut c = config.clone();
            c.dbscan_without_excluded = on;
            evaluate(&c, &data).unwrap()
        };
        prop_assert_eq!(run(&config, true), run(&config, false));
        config.mut_duplicate().max_distance_ppm = 1_000;
        let (on, off) = (run(&config, true), run(&config, false));
        let duplicates = |e: &super::evaluate::Evaluation| {
            let m = e.methods.iter().find(|m| m.method == pb::AnomalyMethod::DUPLICATE).unwrap();
            m.flagged.iter().map(|&i| e.scored[i as usize].clone()).collect::<Vec<_>>()
        };
        prop_assert_eq!(duplicates(&on), duplicates(&off));
        prop_assert!(duplicates(&on).iter().all(|m| on.excluded.contains(m)));
        prop_assert_eq!(&on.scored, &off.scored);
        let order = |e: &super::evaluate::Evaluation| e.methods.iter().map(|m| m.method).collect::<Vec<_>>();
        prop_assert_eq!(order(&on), order(&off));
        prop_assert!(on.methods.iter().all(|m| m.scores_micro.len() == on.scored.len()));
        let method = |e: &super::evaluate::Evaluation, kind| {
            e.methods.iter().find(|m| m.method == kind).unwrap().clone()
        };
        prop_assert_eq!(
            method(&on, pb::AnomalyMethod::MODIFIED_ZSCORE),
            method(&off, pb::AnomalyMethod::MODIFIED_ZSCORE)
        );
        let (dbscan_on, dbscan_off) = (
            method(&on, pb::AnomalyMethod::DBSCAN),
            method(&off, pb::AnomalyMethod::DBSCAN),
        );
        prop_assert_eq!(&dbscan_on.scores_micro, &dbscan_off.scores_micro);
        let flagged_on: Vec<String> =
            dbscan_on.flagged.iter().map(|&i| on.scored[i as usize].clone()).collect();
        let caught = duplicates(&on);
        if caught.len() < on.scored.len() {
            prop_assert!(flagged_on.iter().all(|m| !caught.contains(m)));
        }
    }

    #[test]
    fn copies_counted_once_leave_everyone_elses_zscore_unchanged(
        norms in prop::collection::vec(1u64..50_000_000, 2..12),
        copied in 0usize..12,
        copies in 1usize..6,
    ) {
        let commitment = |member: String, norm: u64, sketch: i32| pb::Commitment {
            member,
            norm_micro: norm,
            sketch: crate::testing::packed(&[sketch, 5, -3]),
            ..Default::default()
        };
        let distinct: Vec<pb::Commitment> = norms
            .iter()
            .enumerate()
            .map(|(i, n)| commitment(format!("m{i:02}"), *n, i as i32))
            .collect();
        let original = copied % norms.len();
        let mut with_copies = distinct.clone();
        with_copies.extend(
            (0..copies).map(|k| commitment(format!("x{k:02}"), norms[original], original as i32)),
        );
        let mut config = pb::AnomalyConfig::default();
        config.mut_zscore().threshold_ppm = 3_500_000;
        config.mut_zscore().features = vec![pb::Feature::UPDATE_NORM];
        config.count_copies_once = true;
        let scores = |commitments: &[pb::Commitment]| {
            let e = evaluate(&config, &MemberData::from_evidence(commitments, &[], &Default::default(), 0)).unwrap();
            e.methods[0].scores_micro.to_vec()
        };
        let alone = scores(&distinct);
        let together = scores(&with_copies);
        // The copies sort after the originals and score as their original does.
        prop_assert_eq!(&together[..norms.len()], &alone[..]);
        prop_assert!(together[norms.len()..].iter().all(|s| *s == alone[original]));
    }
}

/// A member descending a convex quadratic loss `f(w) = ½ (w - w*)ᵀ H (w - w*)` by gradient steps
/// (`η` at most `1 / λ_max`), from a model and then from the model moved by `m`: its change's
/// change responds against the move (move response below 0), and the same changes negated (a
/// sign flipper's) with it (above 0), whatever `H`, `w*`, the start and the move, wherever the
/// commitments' rounding to 127 steps cannot reverse the sign.
fn descent_change(
    h: &[Vec<f64>],
    optimum: &[f64],
    start: &[f64],
    eta: f64,
    steps: usize,
) -> Vec<f64> {
    let mut w = start.to_vec();
    for _ in 0..steps {
        let gradient: Vec<f64> = h
            .iter()
            .map(|row| {
                row.iter()
                    .zip(&w)
                    .zip(optimum)
                    .map(|((a, x), o)| a * (x - o))
                    .sum()
            })
            .collect();
        for (x, g) in w.iter_mut().zip(&gradient) {
            *x -= eta * g;
        }
    }
    w.iter().zip(start).map(|(a, b)| a - b).collect()
}

proptest! {
    #[test]
    fn descent_steps_respond_against_the_move_and_flipped_ones_with_it(
        k in 2usize..10,
        seed in prop::collection::vec(-1.0f64..1.0, 300),
        steps in 1usize..6,
    ) {
        use crate::statistics::Coordinates;
        let mut values = seed.into_iter().cycle();
        let mut next = || values.next().expect("cycled");
        // H = AᵀA + I/2: positive definite; η = 1 / trace(H) <= 1 / λ_max.
        let a: Vec<Vec<f64>> = (0..k).map(|_| (0..k).map(|_| next()).collect()).collect();
        let h: Vec<Vec<f64>> = (0..k)
            .map(|i| {
                (0..k)
                    .map(|j| {
                        (0..k).map(|r| a[r][i] * a[r][j]).sum::<f64>()
                            + if i == j { 0.5 } else { 0.0 }
                    })
                    .collect()
            })
            .collect();
        let eta = 1.0 / (0..k).map(|i| h[i][i]).sum::<f64>();
        // Values in thousandths (micro-units of a unit of 1,000), as nano-units.
        let optimum: Vec<f64> = (0..k).map(|_| next()).collect();
        let start: Vec<f64> = (0..k).map(|_| next()).collect();
        let moved_by: Vec<f64> = (0..k).map(|_| 0.3 * next()).collect();
        let moved: Vec<f64> = start.iter().zip(&moved_by).map(|(s, m)| s + m).collect();
        let (before, after) = (
            descent_change(&h, &optimum, &start, eta, steps),
            descent_change(&h, &optimum, &moved, eta, steps),
        );
        let nano = |v: &[f64], sign: f64| -> Vec<i64> {
            v.iter().map(|x| (sign * x * 1e9).round() as i64).collect()
        };
        let commit = |member: &str, round: u64, change: &[f64], sign: f64| {
            let c = Coordinates::quantize(&nano(change, sign));
            pb::Commitment {
                member: member.into(),
                round,
                coordinate_step_nano: c.step_nano(),
                coordinate_steps: c.packed_steps(),
                ..Default::default()
            }
        };
        let history = pb::SketchHistory {
            previous: vec![commit("flipped", 1, &before, -1.0), commit("honest", 1, &before, 1.0)]
                .into(),
            consensus: Some(pb::ConsensusSketch {
                previous_change: nano(&moved_by, 1.0),
                previous_change_round: 1,
                ..Default::default()
            })
            .into(),
            ..Default::default()
        };
        let now = [commit("flipped", 2, &after, -1.0), commit("honest", 2, &after, 1.0)];
        let responses = super::features::move_responses(&now, &history);
        // The exact response, and how far rounding each value to half a step can move it.
        let response: f64 = after.iter().zip(&before).zip(&moved_by).map(|((a, b), m)| (a - b) * m).sum();
        let step = |c: &pb::Commitment| c.coordinate_step_nano as f64 / 1e9;
        let rounding = 0.5 * (step(&now[1]) + step(&history.previous[1]))
            * moved_by.iter().map(|m| m.abs()).sum::<f64>();
        prop_assume!(response.abs() > 2.0 * rounding);
        prop_assert!(response < 0.0);
        prop_assert!(responses[1] < 0.0, "honest {}", responses[1]);
        prop_assert!(responses[0] > 0.0, "flipped {}", responses[0]);
        prop_assert!((responses[0] + responses[1]).abs() < 1e-9);
    }
}

proptest! {
    /// The others' move ([`super::features::others_move`]) of a member of the accepted set is
    /// the weighted mean of the others' coordinates, within the roundings: the kept mean's half
    /// unit scaled by `S / (S - n)`, and one unit for the two results' own roundings.
    #[test]
    fn the_others_move_is_the_weighted_mean_of_the_others(
        rows in proptest::collection::vec(
            (1u64..500, proptest::collection::vec(-127i32..=127, 6)),
            2..7,
        ),
        step in 1u64..100_000,
        left in 0usize..7,
    ) {
        use crate::testing::packed;
        let left = left % rows.len();
        let commitments: Vec<pb::Commitment> = rows
            .iter()
            .enumerate()
            .map(|(i, (samples, steps))| pb::Commitment {
                member: format!("m{i}"),
                round: 1,
                num_samples: *samples,
                coordinate_step_nano: step,
                coordinate_steps: packed(steps),
                ..Default::default()
            })
            .collect();
        let all: Vec<&pb::Commitment> = commitments.iter().collect();
        let others: Vec<&pb::Commitment> =
            all.iter().enumerate().filter(|(i, _)| *i != left).map(|(_, c)| *c).collect();
        let moved: Vec<i128> = super::features::weighted_mean_coordinates(&all)
            .unwrap()
            .into_iter()
            .map(i128::from)
            .collect();
        let expected = super::features::weighted_mean_coordinates(&others).unwrap();
        let total: u64 = rows.iter().map(|(n, _)| n).sum();
        let own = rows[left].0;
        let coordinates = crate::statistics::Coordinates::of_commitment(&commitments[left]).nano();
        let got = super::features::others_move(&moved, total, own, &coordinates).unwrap();
        let bound = 0.5 * total as f64 / (total - own) as f64 + 1.0;
        for (g, e) in got.iter().zip(&expected) {
            prop_assert!((*g as f64 - *e as f64).abs() <= bound, "{got:?} against {expected:?}");
        }
        // Nobody is left to move without the whole move.
        prop_assert_eq!(super::features::others_move(&moved, own, own, &coordinates), None);
    }
}
