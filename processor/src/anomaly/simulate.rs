//! Simulated rounds with misbehaving members, for experiments and the detection benchmark.
//!
//! No model is trained here: an honest member's update is a shared "true" direction plus
//! member-specific noise (non-IID heterogeneity) with a norm that varies by about 10 %; its
//! commitment carries the L2 norm, a loss near 0.5, a sample count near 100, a sketch (a fixed
//! dense +/-1 random projection of the update, quantized to integers, as a member would commit)
//! and the update at [`COORDINATE_SAMPLES`] fixed positions in nano-units.
//! Attackers replace their update or their links as the table of [`attack`](super::attack) says,
//! for the kinds in [`SIMULATED`] (sign flip, scale, Gaussian noise, free rider, slow link) and the
//! colluding kinds ([`AttackKind::COLLUDING`]: ALIE, IPM, min-max, min-sum, crafted by
//! [`collusion::craft`] from the honest members' updates of the round); label flips and stale
//! riders need training and history, so they are refused here.
//!
//! Every member measures its links to every other member (log-normal bandwidths around
//! 100 MB/s). The randomness is a seeded SplitMix64 with Box-Muller normals, so a seed always
//! gives the same round. This module is off-chain tooling: it uses `ln` and `cos`, which the
//! on-chain methods avoid.
//!
//! ```
//! use bcfl_processor::anomaly::attack::AttackKind;
//! use bcfl_processor::anomaly::simulate::{simulate_round, Scenario};
//!
//! let scenario = Scenario { members: 10, attackers: 2, attack: AttackKind::Scale, seed: 7 };
//! let round = simulate_round(&scenario).unwrap();
//! assert_eq!(round.commitments.len(), 10);
//! assert_eq!(round.attackers.len(), 2);
//! ```

use bcfl_protos::bcfl as pb;

use super::attack::{AttackError, AttackKind, SCALE_FACTOR, SLOW_LINK_FACTOR};
use super::collusion;
use crate::fixed;
use crate::statistics::Coordinates;

/// Dimension of the simulated updates.
pub const UPDATE_DIM: usize = 512;

/// Length of the committed sketches.
pub const SKETCH_LEN: usize = 32;

/// How many coordinates the commitments sample.
pub const COORDINATE_SAMPLES: usize = 64;

/// The kinds a synthetic round can apply, in [`AttackKind::ALL`] order.
pub const SIMULATED: [AttackKind; 5] = [
    AttackKind::SignFlip,
    AttackKind::Scale,
    AttackKind::GaussianNoise,
    AttackKind::FreeRider,
    AttackKind::SlowLink,
];

/// One simulated round's set-up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Scenario {
    /// Members in the round.
    pub members: usize,
    /// How many of them attack (chosen at random).
    pub attackers: usize,
    /// The attack they all use (one of [`SIMULATED`] or [`AttackKind::COLLUDING`]).
    pub attack: AttackKind,
    /// The seed.
    pub seed: u64,
}

/// A simulated round: commitments and links as the chain would hold them, and the truth.
#[derive(Clone, Debug, PartialEq)]
pub struct SimulatedRound {
    /// One commitment per member, sorted by member key.
    pub commitments: Vec<pb::Commitment>,
    /// Every measured directed link, sorted by (from, to).
    pub links: Vec<pb::Link>,
    /// The attackers' keys, sorted.
    pub attackers: Vec<String>,
}

/// SplitMix64 with Box-Muller normals: the seeded generator of the simulations (off-chain only).
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator whose state starts at `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in (0, 1).
    pub fn uniform(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    /// A standard normal draw.
    pub fn normal(&mut self) -> f64 {
        let (u, v) = (self.uniform(), self.uniform());
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }

    /// `k` distinct indices of `0..n` drawn at random (a partial Fisher-Yates shuffle), sorted.
    pub fn choose(&mut self, n: usize, k: usize) -> Vec<usize> {
        let k = k.min(n);
        let mut order: Vec<usize> = (0..n).collect();
        for i in 0..k {
            let j = i + (self.next_u64() % (n - i) as u64) as usize;
            order.swap(i, j);
        }
        let mut chosen = order[..k].to_vec();
        chosen.sort_unstable();
        chosen
    }
}

/// What an attacker of kind `attack` commits instead of its `honest` update (the table of
/// [`attack`](super::attack)); `SlowLink` keeps the update (it acts on links, see
/// [`measured_links`]). Gaussian noise draws from `rng`. Label flips and stale riders are
/// refused: they need the training and the previous rounds, which a vector does not carry.
pub fn attack_update(
    attack: AttackKind,
    honest: &[f64],
    rng: &mut Rng,
) -> Result<Vec<f64>, AttackError> {
    Ok(match attack {
        AttackKind::SignFlip => honest.iter().map(|x| -x).collect(),
        AttackKind::Scale => honest.iter().map(|x| SCALE_FACTOR * x).collect(),
        AttackKind::GaussianNoise => {
            let noise: Vec<f64> = (0..honest.len()).map(|_| rng.normal()).collect();
            let noise_norm = norm(&noise);
            let k = if noise_norm > 0.0 {
                norm(honest) / noise_norm
            } else {
                0.0
            };
            noise.iter().map(|x| x * k).collect()
        }
        AttackKind::FreeRider => vec![0.0; honest.len()],
        AttackKind::SlowLink => honest.to_vec(),
        AttackKind::LabelFlip
        | AttackKind::StaleRider
        | AttackKind::DisguisedScale
        | AttackKind::Alie
        | AttackKind::InnerProduct
        | AttackKind::MinMax
        | AttackKind::MinSum
        | AttackKind::HiddenReversal
        | AttackKind::InflatedSamples => return Err(attack.unsupported("a synthetic update")),
    })
}

/// Every directed link among `keys` measured once (epoch 1, a 1 MiB probe), sorted by
/// (from, to): log-normal bandwidths around 100 MB/s (sigma 0.3), [`SLOW_LINK_FACTOR`] times
/// slower when either end is `slow`.
pub fn measured_links(keys: &[String], slow: &[bool], rng: &mut Rng) -> Vec<pb::Link> {
    let mut links = Vec::new();
    for (i, from) in keys.iter().enumerate() {
        for (j, to) in keys.iter().enumerate() {
            if i == j {
                continue;
            }
            let base = 1e8 * (0.3 * rng.normal()).exp();
            let is_slow =
                slow.get(i).copied().unwrap_or(false) || slow.get(j).copied().unwrap_or(false);
            let bandwidth = if is_slow {
                base / SLOW_LINK_FACTOR
            } else {
                base
            };
            links.push(pb::Link {
                from: from.clone(),
                to: to.clone(),
                samples: vec![pb::LinkSample {
                    epoch: 1,
                    bytes_per_sec: bandwidth.max(1.0) as u64,
                    rtt_us: 500,
                    probe_bytes: 1 << 20,
                    ..Default::default()
                }]
                .into(),
                ..Default::default()
            });
        }
    }
    links
}

/// A scaled sketch one byte a value, as a commitment stores it.
fn pack_sketch(sketch: &[i32]) -> Vec<u8> {
    bcfl_protos::signed_bytes::pack(sketch).expect("a scaled sketch lies within 127")
}

fn norm(v: &[f64]) -> f64 {
    v.iter().map(|x| x * x).sum::<f64>().sqrt()
}

/// The fixed +/-1 projection of an update to [`SKETCH_LEN`] integers, scaled as members scale
/// theirs ([`crate::statistics::scaled_sketch`]).
pub fn sketch(update: &[f64]) -> Vec<i32> {
    let mut signs = Rng(0x5EED_5EED);
    let mut out = vec![0.0f64; SKETCH_LEN];
    for x in update {
        for slot in out.iter_mut() {
            let sign = if signs.next_u64() & 1 == 0 { 1.0 } else { -1.0 };
            *slot += sign * x;
        }
    }
    crate::statistics::scaled_sketch(&out)
}

/// The update at [`COORDINATE_SAMPLES`] fixed positions (drawn with replacement), quantized
/// as commitments carry them.
pub fn coordinates(update: &[f64]) -> Coordinates {
    let mut positions = Rng(0xC00D_1A7E);
    let nano: Vec<i64> = (0..COORDINATE_SAMPLES)
        .map(|_| {
            let at = positions.next_u64() % update.len().max(1) as u64;
            fixed::saturating_nano(update.get(at as usize).copied().unwrap_or(0.0))
        })
        .collect();
    Coordinates::quantize(&nano)
}

/// Simulates one round (see the module docs); an attack outside [`SIMULATED`] and
/// [`AttackKind::COLLUDING`] is refused.
pub fn simulate_round(scenario: &Scenario) -> Result<SimulatedRound, AttackError> {
    let colluding = scenario.attack.colludes();
    if !SIMULATED.contains(&scenario.attack) && !colluding {
        return Err(scenario.attack.unsupported("a synthetic update"));
    }
    let mut rng = Rng(scenario.seed ^ 0xB0C1_F1A5_u64.rotate_left(17));
    let n = scenario.members;
    let truth: Vec<f64> = (0..UPDATE_DIM).map(|_| rng.normal()).collect();
    let truth_norm = norm(&truth);
    let direction: Vec<f64> = truth.iter().map(|x| x / truth_norm).collect();
    let keys: Vec<String> = (0..n).map(|i| format!("member{i:03}")).collect();
    let mut is_attacker = vec![false; n];
    for i in rng.choose(n, scenario.attackers) {
        is_attacker[i] = true;
    }
    let noise_scale = 0.6 / (UPDATE_DIM as f64).sqrt();
    let mut honest_updates = Vec::new();
    let mut commitments = keys
        .iter()
        .enumerate()
        .map(|(i, key)| -> Result<pb::Commitment, AttackError> {
            let size = 1.0 + 0.1 * rng.normal();
            let honest: Vec<f64> = direction
                .iter()
                .map(|d| size * (d + noise_scale * rng.normal()))
                .collect();
            // Colluders commit their crafted update below, once every honest one is known.
            let update = if is_attacker[i] && !colluding {
                attack_update(scenario.attack, &honest, &mut rng)?
            } else {
                honest
            };
            if !is_attacker[i] {
                honest_updates.push(update.clone());
            }
            let coordinates = coordinates(&update);
            Ok(pb::Commitment {
                round: 1,
                member: key.clone(),
                update_sha256: format!("{:064x}", i),
                size_bytes: (UPDATE_DIM * 4) as u64,
                num_samples: (100.0 + 20.0 * rng.normal()).max(1.0) as u64,
                loss_micro: fixed::saturating_micro(0.5 + 0.05 * rng.normal()),
                norm_micro: fixed::saturating_micro_unsigned(norm(&update)),
                sketch: pack_sketch(&sketch(&update)),
                coordinate_step_nano: coordinates.step_nano(),
                coordinate_steps: coordinates.packed_steps(),
                ..Default::default()
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    if colluding && scenario.attackers > 0 {
        let crafted = collusion::craft(scenario.attack, &honest_updates, n, scenario.attackers)?;
        for (c, _) in commitments
            .iter_mut()
            .zip(&is_attacker)
            .filter(|(_, a)| **a)
        {
            c.norm_micro = fixed::saturating_micro_unsigned(norm(&crafted));
            c.sketch = pack_sketch(&sketch(&crafted));
            let coordinates = coordinates(&crafted);
            c.coordinate_step_nano = coordinates.step_nano();
            c.coordinate_steps = coordinates.packed_steps();
        }
    }
    let slow: Vec<bool> = is_attacker
        .iter()
        .map(|a| *a && scenario.attack == AttackKind::SlowLink)
        .collect();
    let links = measured_links(&keys, &slow, &mut rng);
    let attackers = keys
        .iter()
        .zip(&is_attacker)
        .filter(|(_, a)| **a)
        .map(|(k, _)| k.clone())
        .collect();
    Ok(SimulatedRound {
        commitments,
        links,
        attackers,
    })
}

/// Detection counts: true positives, false positives, false negatives.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Attackers flagged.
    pub true_positives: usize,
    /// Honest members flagged.
    pub false_positives: usize,
    /// Attackers not flagged.
    pub false_negatives: usize,
}

impl Counts {
    /// Adds the outcome of one round: `flagged` and `attackers` both sorted.
    pub fn add(&mut self, flagged: &[String], attackers: &[String]) {
        let hits = flagged
            .iter()
            .filter(|f| attackers.binary_search(f).is_ok())
            .count();
        self.true_positives += hits;
        self.false_positives += flagged.len() - hits;
        self.false_negatives += attackers.len() - hits;
    }

    /// TP / (TP + FP); 1 when nothing was flagged.
    pub fn precision(&self) -> f64 {
        let flagged = self.true_positives + self.false_positives;
        if flagged == 0 {
            1.0
        } else {
            self.true_positives as f64 / flagged as f64
        }
    }

    /// TP / (TP + FN); 1 when there was no attacker.
    pub fn recall(&self) -> f64 {
        let positives = self.true_positives + self.false_negatives;
        if positives == 0 {
            1.0
        } else {
            self.true_positives as f64 / positives as f64
        }
    }

    /// The harmonic mean of precision and recall (0 when both are 0).
    pub fn f1(&self) -> f64 {
        let (p, r) = (self.precision(), self.recall());
        if p + r == 0.0 {
            0.0
        } else {
            2.0 * p * r / (p + r)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_are_reproducible_and_attackers_misbehave() {
        let s = Scenario {
            members: 10,
            attackers: 3,
            attack: AttackKind::SignFlip,
            seed: 11,
        };
        let a = simulate_round(&s).unwrap();
        assert_eq!(a, simulate_round(&s).unwrap());
        assert_ne!(a, simulate_round(&Scenario { seed: 12, ..s }).unwrap());
        assert_eq!(a.attackers.len(), 3);
        assert_eq!(a.links.len(), 90);
        let free = simulate_round(&Scenario {
            attack: AttackKind::FreeRider,
            ..s
        })
        .unwrap();
        for c in &free.commitments {
            let attacker = free.attackers.contains(&c.member);
            assert_eq!(c.norm_micro == 0, attacker, "{}", c.member);
            assert_eq!(c.sketch.iter().all(|v| *v == 0), attacker);
        }
    }

    #[test]
    fn attacks_change_the_update_as_documented() {
        let honest = [0.5, -1.0, 0.0, 2.0];
        let mut rng = Rng::new(3);
        let mut sent = |kind| attack_update(kind, &honest, &mut rng);
        assert_eq!(sent(AttackKind::SignFlip).unwrap(), [-0.5, 1.0, 0.0, -2.0]);
        assert_eq!(sent(AttackKind::Scale).unwrap(), [5.0, -10.0, 0.0, 20.0]);
        assert_eq!(sent(AttackKind::FreeRider).unwrap(), [0.0; 4]);
        assert_eq!(sent(AttackKind::SlowLink).unwrap(), honest);
        let noise = sent(AttackKind::GaussianNoise).unwrap();
        assert!((norm(&noise) - norm(&honest)).abs() < 1e-12);
        for kind in [AttackKind::LabelFlip, AttackKind::StaleRider] {
            assert_eq!(
                sent(kind),
                Err(AttackError::Unsupported {
                    kind,
                    place: "a synthetic update"
                })
            );
            let scenario = Scenario {
                members: 4,
                attackers: 1,
                attack: kind,
                seed: 1,
            };
            assert!(simulate_round(&scenario).is_err());
        }
        for kind in SIMULATED {
            assert!(AttackKind::ALL.contains(&kind));
        }
    }

    #[test]
    fn colluders_commit_one_crafted_update() {
        for attack in AttackKind::COLLUDING {
            let s = Scenario {
                members: 10,
                attackers: 3,
                attack,
                seed: 5,
            };
            let round = simulate_round(&s).unwrap();
            let sent: Vec<&pb::Commitment> = round
                .commitments
                .iter()
                .filter(|c| round.attackers.contains(&c.member))
                .collect();
            assert_eq!(sent.len(), 3);
            assert!(sent
                .iter()
                .all(|c| c.sketch == sent[0].sketch && c.norm_micro == sent[0].norm_micro));
            // Honest members commit what they would without attackers of this kind.
            let plain = simulate_round(&Scenario {
                attack: AttackKind::SignFlip,
                ..s
            })
            .unwrap();
            for (a, b) in round.commitments.iter().zip(&plain.commitments) {
                if !round.attackers.contains(&a.member) {
                    assert_eq!(a, b);
                }
            }
        }
        // With everyone attacking, there is nothing to craft from.
        let all = Scenario {
            members: 4,
            attackers: 4,
            attack: AttackKind::Alie,
            seed: 1,
        };
        assert!(matches!(
            simulate_round(&all),
            Err(AttackError::Collusion(_))
        ));
    }

    #[test]
    fn sketch_is_linear_in_sign() {
        let u: Vec<f64> = (0..UPDATE_DIM).map(|i| (i as f64).sin()).collect();
        let minus: Vec<f64> = u.iter().map(|x| -x).collect();
        let s = sketch(&u);
        assert_eq!(s.len(), SKETCH_LEN);
        assert_eq!(sketch(&minus), s.iter().map(|v| -v).collect::<Vec<_>>());
    }

    #[test]
    fn counts_known_answer() {
        let mut c = Counts::default();
        let keys = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        c.add(&keys(&["a", "b", "c"]), &keys(&["a", "b", "d"]));
        assert_eq!(
            (c.true_positives, c.false_positives, c.false_negatives),
            (2, 1, 1)
        );
        assert_eq!(c.precision(), 2.0 / 3.0);
        assert_eq!(c.recall(), 2.0 / 3.0);
        assert!((c.f1() - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(Counts::default().f1(), 1.0);
    }
}
