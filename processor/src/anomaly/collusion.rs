//! Colluding attacks: the update the attackers all send, crafted from the honest updates.
//!
//! The attacks that break distance-based defences do not act alone: the attackers share what
//! they know of the honest members' updates and all send one crafted update that sits just
//! inside what the defence tolerates. bcfl's threat model gives them *full knowledge*: a
//! member's blob server serves committed updates to every registered member, so an attacker
//! that waits until the honest members have committed can fetch and check their updates before
//! committing its own (the member role does exactly that, [`crate`]'s clients'
//! `round::member`). This is the strongest of the settings of Shejwalkar and Houmansadr
//! (NDSS 2021).
//!
//! With `benign` the honest deltas, `mu` their coordinate-wise mean and `sigma` their
//! coordinate-wise (population) standard deviation, `n` the members of the round and `f` the
//! attackers:
//!
//! | kind | the delta every attacker sends |
//! | --- | --- |
//! | [`AttackKind::Alie`] | `mu - z * sigma`, `z` = [`alie_z`]`(n, f)`: the largest shift that stays within the spread of the honest majority (Baruch et al., "A little is enough", 2019) |
//! | [`AttackKind::InnerProduct`] | `-`[`IPM_EPSILON`]` * mu`: a small step against the honest direction, so the aggregate's inner product with it turns negative (Xie et al., 2019) |
//! | [`AttackKind::MinMax`] | `mu + gamma * p`, `p = -sigma` (the unit vector `-mu / |mu|` when `sigma` is zero), `gamma` the largest with `max_i |m - b_i| <= max_ij |b_i - b_j|`: no farther from any honest update than two honest updates are from each other |
//! | [`AttackKind::MinSum`] | as min-max, with `sum_i |m - b_i|^2 <= max_i sum_j |b_i - b_j|^2`: no farther from all honest updates together than the most remote honest update is |
//!
//! `gamma` is found by doubling from 1 while the condition holds, then bisecting (60 steps).
//! With one honest update, sigma is zero, no two honest updates differ, and min-max and
//! min-sum send that update back; with `f` too small for a shift, ALIE sends the mean.
//!
//! This module is off-chain tooling (it uses `ln`, like [`super::simulate`]).
//!
//! ```
//! use bcfl_processor::anomaly::attack::AttackKind;
//! use bcfl_processor::anomaly::collusion::craft;
//!
//! let benign = vec![vec![1.0, 0.0], vec![3.0, 2.0]];
//! let sent = craft(AttackKind::InnerProduct, &benign, 3, 1).unwrap();
//! assert_eq!(sent, vec![-0.2, -0.1]);
//! ```

use super::attack::AttackKind;

/// The `epsilon` of [`AttackKind::InnerProduct`]: small, to pass robust aggregation rules.
pub const IPM_EPSILON: f64 = 0.1;

/// Why no colluding update could be crafted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CollusionError {
    /// The kind acts alone.
    #[error("attack {0} is not a colluding attack")]
    NotColluding(AttackKind),
    /// No honest update was given.
    #[error("a colluding attack needs at least one honest update")]
    NoKnowledge,
    /// The honest updates differ in length.
    #[error("honest updates of {0} and {1} values")]
    Ragged(usize, usize),
}

/// ALIE's `z_max` for `f` attackers among `members`: with `s = floor(n / 2 + 1) - f` honest
/// members the attackers need on their side, the quantile `Phi^-1((n - s) / n)` of the standard
/// normal distribution (0 when that is below the median; the quantile at most 0.999).
///
/// ```
/// use bcfl_processor::anomaly::collusion::alie_z;
///
/// assert_eq!(alie_z(10, 1), 0.0); // s = 5: the median itself
/// assert!((alie_z(10, 3) - 0.5244).abs() < 1e-4); // s = 3: Phi^-1(0.7)
/// ```
pub fn alie_z(members: usize, attackers: usize) -> f64 {
    if members == 0 {
        return 0.0;
    }
    let n = members as f64;
    let s = (members / 2 + 1) as f64 - attackers as f64;
    let p = ((n - s) / n).clamp(0.5, 0.999);
    normal_quantile(p).max(0.0)
}

/// The standard normal quantile `Phi^-1(p)` for `p` in (0, 1) (Acklam's rational
/// approximation, relative error below 1.2e-9).
pub fn normal_quantile(p: f64) -> f64 {
    const A: [f64; 6] = [
        -3.969_683_028_665_376e1,
        2.209_460_984_245_205e2,
        -2.759_285_104_469_687e2,
        1.383_577_518_672_69e2,
        -3.066_479_806_614_716e1,
        2.506_628_277_459_239,
    ];
    const B: [f64; 5] = [
        -5.447_609_879_822_406e1,
        1.615_858_368_580_409e2,
        -1.556_989_798_598_866e2,
        6.680_131_188_771_972e1,
        -1.328_068_155_288_572e1,
    ];
    const C: [f64; 6] = [
        -7.784_894_002_430_293e-3,
        -3.223_964_580_411_365e-1,
        -2.400_758_277_161_838,
        -2.549_732_539_343_734,
        4.374_664_141_464_968,
        2.938_163_982_698_783,
    ];
    const D: [f64; 4] = [
        7.784_695_709_041_462e-3,
        3.224_671_290_700_398e-1,
        2.445_134_137_142_996,
        3.754_408_661_907_416,
    ];
    const LOW: f64 = 0.02425;
    if p <= 0.0 {
        return f64::NEG_INFINITY;
    }
    if p >= 1.0 {
        return f64::INFINITY;
    }
    let tail = |q: f64| {
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    };
    if p < LOW {
        tail((-2.0 * p.ln()).sqrt())
    } else if p > 1.0 - LOW {
        -tail((-2.0 * (1.0 - p).ln()).sqrt())
    } else {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    }
}

/// The delta the `attackers` of a round of `members` all send under `kind`, crafted from the
/// honest deltas `benign` (see the module docs).
pub fn craft(
    kind: AttackKind,
    benign: &[Vec<f64>],
    members: usize,
    attackers: usize,
) -> Result<Vec<f64>, CollusionError> {
    if !kind.colludes() {
        return Err(CollusionError::NotColluding(kind));
    }
    let first = benign.first().ok_or(CollusionError::NoKnowledge)?;
    let dim = first.len();
    if let Some(b) = benign.iter().find(|b| b.len() != dim) {
        return Err(CollusionError::Ragged(dim, b.len()));
    }
    let n = benign.len() as f64;
    let mut mean = vec![0.0; dim];
    for b in benign {
        for (m, x) in mean.iter_mut().zip(b) {
            *m += x;
        }
    }
    mean.iter_mut().for_each(|m| *m /= n);
    let mut std = vec![0.0; dim];
    for b in benign {
        for ((s, x), m) in std.iter_mut().zip(b).zip(&mean) {
            *s += (x - m) * (x - m);
        }
    }
    std.iter_mut().for_each(|s| *s = (*s / n).sqrt());
    Ok(match kind {
        AttackKind::Alie => {
            let z = alie_z(members, attackers);
            mean.iter().zip(&std).map(|(m, s)| m - z * s).collect()
        }
        AttackKind::InnerProduct => mean.iter().map(|m| -IPM_EPSILON * m).collect(),
        _ => {
            let direction = if norm(&std) > 0.0 {
                std.iter().map(|s| -s).collect::<Vec<_>>()
            } else {
                let length = norm(&mean);
                if length > 0.0 {
                    mean.iter().map(|m| -m / length).collect()
                } else {
                    vec![0.0; dim]
                }
            };
            let shifted = |gamma: f64| -> Vec<f64> {
                mean.iter()
                    .zip(&direction)
                    .map(|(m, p)| m + gamma * p)
                    .collect()
            };
            // How far a point lies from the honest updates: the largest squared distance
            // (min-max) or their sum (min-sum). The bound is the farthest honest update's.
            let min_max = kind == AttackKind::MinMax;
            let spread = |m: &[f64]| {
                let distances = benign.iter().map(|b| distance2(m, b));
                if min_max {
                    distances.fold(0.0, f64::max)
                } else {
                    distances.sum()
                }
            };
            let bound = benign.iter().map(|b| spread(b)).fold(0.0, f64::max);
            let fits = |m: &[f64]| spread(m) <= bound;
            shifted(largest(|gamma| fits(&shifted(gamma))))
        }
    })
}

/// The largest `gamma >= 0` for which `fits` holds, assuming it holds at 0 and, past some
/// value, no longer: doubling from 1 to find a bound (at most 2^60), then 60 bisection steps.
fn largest(fits: impl Fn(f64) -> bool) -> f64 {
    // A bracket: `fits(lo)` holds, `fits(hi)` does not.
    let (mut lo, mut hi) = (0.0, 1.0);
    while fits(hi) {
        lo = hi;
        hi *= 2.0;
        if hi > 2f64.powi(60) {
            return lo;
        }
    }
    for _ in 0..60 {
        let mid = 0.5 * (lo + hi);
        if fits(mid) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    lo
}

fn distance2(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
}

fn norm(v: &[f64]) -> f64 {
    v.iter().map(|x| x * x).sum::<f64>().sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn normal_quantiles_match_known_values() {
        for (p, z) in [
            (0.5, 0.0),
            (0.6, 0.253_347_103_1),
            (0.7, 0.524_400_512_7),
            (0.975, 1.959_963_984_5),
            (0.999, 3.090_232_306_2),
            (0.01, -2.326_347_874_0),
        ] {
            assert!(
                (normal_quantile(p) - z).abs() < 1e-8,
                "{p}: {}",
                normal_quantile(p)
            );
        }
    }

    #[test]
    fn alie_z_follows_the_paper() {
        // n = 20, f = 4: s = 7, Phi^-1(13 / 20).
        assert!((alie_z(20, 4) - normal_quantile(0.65)).abs() < 1e-12);
        // n = 10, f = 2: s = 4, Phi^-1(0.6).
        assert!((alie_z(10, 2) - 0.253_347_103).abs() < 1e-8);
        assert_eq!(alie_z(10, 0), 0.0);
        assert!((alie_z(10, 9) - normal_quantile(0.999)).abs() < 1e-12);
        assert_eq!(alie_z(0, 0), 0.0);
    }

    #[test]
    fn known_answers() {
        let benign = vec![vec![1.0, 0.0], vec![3.0, 2.0]];
        // mean (2, 1), std (1, 1).
        let alie = craft(AttackKind::Alie, &benign, 10, 3).unwrap();
        let z = alie_z(10, 3);
        assert_eq!(alie, vec![2.0 - z, 1.0 - z]);
        // Min-max: |m - b_i|^2 <= 8, m = (2 - g, 1 - g): worst b is (3, 2): 2 (1 + g)^2 <= 8,
        // g = 1.
        let min_max = craft(AttackKind::MinMax, &benign, 3, 1).unwrap();
        assert!((min_max[0] - 1.0).abs() < 1e-9 && min_max[1].abs() < 1e-9);
        // Min-sum: (1 - g)^2 + (1 - g)^2 ... sum_i |m - b_i|^2 = 2(1 - g)^2 + 2(1 + g)^2
        // = 4 + 4 g^2 <= 8: g = 1.
        let min_sum = craft(AttackKind::MinSum, &benign, 3, 1).unwrap();
        assert!((min_sum[0] - 1.0).abs() < 1e-9 && min_sum[1].abs() < 1e-9);
    }

    #[test]
    fn one_honest_update_leaves_nothing_to_hide_in() {
        let benign = vec![vec![0.5, -1.0, 2.0]];
        for kind in [AttackKind::Alie, AttackKind::MinMax, AttackKind::MinSum] {
            let sent = craft(kind, &benign, 5, 2).unwrap();
            for (s, b) in sent.iter().zip(&benign[0]) {
                assert!((s - b).abs() < 1e-9, "{kind}: {sent:?}");
            }
        }
    }

    #[test]
    fn bad_knowledge_is_refused() {
        assert_eq!(
            craft(AttackKind::Alie, &[], 5, 1),
            Err(CollusionError::NoKnowledge)
        );
        assert_eq!(
            craft(AttackKind::MinMax, &[vec![1.0], vec![1.0, 2.0]], 5, 1),
            Err(CollusionError::Ragged(1, 2))
        );
        assert_eq!(
            craft(AttackKind::SignFlip, &[vec![1.0]], 5, 1),
            Err(CollusionError::NotColluding(AttackKind::SignFlip))
        );
    }

    fn updates() -> impl Strategy<Value = Vec<Vec<f64>>> {
        (2usize..8, 1usize..12).prop_flat_map(|(n, d)| {
            prop::collection::vec(prop::collection::vec(-5.0f64..5.0, d), n)
        })
    }

    proptest! {
        /// Min-max and min-sum stay inside their bounds, and the bounds are tight: a slightly
        /// larger gamma would break them (unless the perturbation is zero).
        #[test]
        fn min_max_and_min_sum_sit_on_their_bounds(benign in updates()) {
            let n = benign.len();
            let d2 = |a: &[f64], b: &[f64]| distance2(a, b);
            let max_pair = benign.iter()
                .flat_map(|a| benign.iter().map(|b| d2(a, b)))
                .fold(0.0, f64::max);
            let m = craft(AttackKind::MinMax, &benign, n + 2, 2).unwrap();
            let worst = benign.iter().map(|b| d2(&m, b)).fold(0.0, f64::max);
            prop_assert!(worst <= max_pair * (1.0 + 1e-9) + 1e-12);
            prop_assert!(worst >= max_pair * (1.0 - 1e-6) - 1e-9);
            let max_sum = benign.iter()
                .map(|a| benign.iter().map(|b| d2(a, b)).sum::<f64>())
                .fold(0.0, f64::max);
            let s = craft(AttackKind::MinSum, &benign, n + 2, 2).unwrap();
            let total: f64 = benign.iter().map(|b| d2(&s, b)).sum();
            prop_assert!(total <= max_sum * (1.0 + 1e-9) + 1e-12);
            prop_assert!(total >= max_sum * (1.0 - 1e-6) - 1e-9);
        }

        /// The inner product of IPM's update with the honest mean is never positive, and ALIE
        /// moves each coordinate by at most z standard deviations.
        #[test]
        fn ipm_opposes_and_alie_stays_near(benign in updates()) {
            let n = benign.len();
            let dim = benign[0].len();
            let mean: Vec<f64> = (0..dim)
                .map(|j| benign.iter().map(|b| b[j]).sum::<f64>() / n as f64)
                .collect();
            let ipm = craft(AttackKind::InnerProduct, &benign, n + 1, 1).unwrap();
            let dot: f64 = ipm.iter().zip(&mean).map(|(a, b)| a * b).sum();
            prop_assert!(dot <= 0.0);
            let alie = craft(AttackKind::Alie, &benign, 2 * n, n / 2 + 1).unwrap();
            let z = alie_z(2 * n, n / 2 + 1);
            for j in 0..dim {
                let var = benign.iter().map(|b| (b[j] - mean[j]).powi(2)).sum::<f64>() / n as f64;
                prop_assert!((alie[j] - mean[j]).abs() <= z * var.sqrt() + 1e-9);
            }
        }
    }
}
