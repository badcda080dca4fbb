//! Misbehaving members: what an attacker sends instead of its honest update.
//!
//! An update blob holds a member's trainable tensors after local training; the change it
//! proposes is its *delta* from the round's parent model, `local − parent`. An attacker trains
//! like everyone else and then replaces its delta before it writes the blob, as the table of
//! [`bcfl_processor::anomaly::attack`] says (the one list of attack kinds, shared with the
//! processor's detection bench and `bcfl anomaly bench`). This is the one place that replaces
//! an update: the member role ([`crate::round::member`]) calls [`ApplyAttack::apply`] for the
//! kinds in [`KINDS`], in `bcfl demo`, `bcfl node run`, `bcfl fl simulate` and the attack
//! experiments alike:
//!
//! | `--attack` | the delta sent |
//! | --- | --- |
//! | `sign-flip` | `−delta` (pushes the model back) |
//! | `scale-x10` (or `scale`) | [`SCALE_FACTOR`] `· delta` (dominates a mean) |
//! | `gaussian-noise` (or `noise`) | Gaussian noise with the honest delta's L2 norm |
//! | `free-rider` | zero (returns the parent: its training is thrown away) |
//! | `stale-rider` | the previous round's change of the global model, `parent − previous parent` (zero in round 1) |
//! | `alie`, `ipm`, `min-max`, `min-sum` | colluding: one delta crafted from the honest members' deltas of the round ([`collude`], [`bcfl_processor::anomaly::collusion`]) |
//! | `hidden-reversal` | adaptive: the part of `delta` the round's statistics see ([`visible_part`]) plus, with the norm of the rest, the part they do not see of the global model's previous change reversed (of `−delta` in round 1): every statistic of the commitment, the norm included, is the honest delta's |
//!
//! A colluding attacker needs the honest updates: the member role waits until every member
//! expected to train except its fellow attackers has committed, fetches their updates from
//! their blob servers, checks them against their commitments like any blob, and sends
//! [`collude`]'s update (see [`crate::round::member`]). With a [`CollusionNoise`] above 0
//! each colluder moves its copy by its own Gaussian noise ([`perturbed`]), so that the copies
//! no longer coincide: what colluders do to escape the duplicate method
//! ([`bcfl_processor::anomaly::evaluate()`]), at the cost of some of the attack's precision.
//!
//! `_` for `-` is accepted too. Label flips and slow links do not replace an update: a label
//! flipper's *trainer* trains on shifted labels, a slow link's *links* are slow, so whoever
//! builds the member sets those up (the attack experiments of `bcfl anomaly bench` do, with
//! [`crate::train::attack::head::HeadTrainer`] and reported link measurements) and the member
//! sends what it trained; `--attack` refuses them. An attacker's commitment carries the
//! statistics of what it really sends (its loss is the one of the training it did, thrown away
//! or not), so the on-chain evidence is consistent with its blob and the anomaly verdict, not a
//! lie in the statistics, has to catch it.

use std::str::FromStr;

use rand::SeedableRng;
use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};

pub use bcfl_processor::anomaly::attack::{AttackKind, SCALE_FACTOR};
use bcfl_processor::anomaly::collusion;

use crate::train::{Error, Result};
use bcfl_fed::sketch::{l2_norm, scope_range, visible_part, StatsShape};
use bcfl_fed::update::Update;

/// The kinds that replace a trained update, in [`AttackKind::ALL`] order (the colluding ones
/// through [`collude`], the others through [`ApplyAttack::apply`]).
pub const KINDS: [AttackKind; 12] = [
    AttackKind::SignFlip,
    AttackKind::Scale,
    AttackKind::GaussianNoise,
    AttackKind::FreeRider,
    AttackKind::StaleRider,
    AttackKind::DisguisedScale,
    AttackKind::Alie,
    AttackKind::InnerProduct,
    AttackKind::MinMax,
    AttackKind::MinSum,
    AttackKind::HiddenReversal,
    AttackKind::InflatedSamples,
];

/// The kinds that change what a member trains on rather than what it sends: a node applies
/// them to its data when it loads it (`label-flip`: its shard's labels shifted, a decoder's
/// answers too).
pub const DATA_KINDS: [AttackKind; 1] = [AttackKind::LabelFlip];

/// What an attacker knows of its round besides its own training.
#[derive(Clone, Copy, Debug)]
pub struct Known<'a> {
    /// The previous round's parent model (`None` in round 1).
    pub previous: Option<&'a Update>,
    /// Seeds its noise.
    pub seed: u64,
    /// The shape of the round's commitments (sketch length, sampled coordinates).
    pub shape: StatsShape,
    /// The round, which seeds the sketch's projection.
    pub round: u64,
}

/// Applying an attack kind to a trained update.
pub trait ApplyAttack {
    /// Whether this kind replaces the trained update (it is in [`KINDS`]).
    fn replaces_update(self) -> bool;

    /// The update an attacker sends instead of `local`, trained from `parent`, knowing
    /// `known`. Kinds outside [`KINDS`] and the colluding kinds (see [`collude`]) are an error.
    fn apply(self, parent: &Update, local: &Update, known: &Known<'_>) -> Result<Update>;
}

impl ApplyAttack for AttackKind {
    fn replaces_update(self) -> bool {
        KINDS.contains(&self)
    }

    fn apply(self, parent: &Update, local: &Update, known: &Known<'_>) -> Result<Update> {
        let honest = local.minus(parent)?;
        let sent = match self {
            AttackKind::SignFlip => scaled(&honest, -1.0),
            AttackKind::Scale | AttackKind::DisguisedScale | AttackKind::InflatedSamples => {
                scaled(&honest, SCALE_FACTOR as f32)
            }
            AttackKind::FreeRider => scaled(&honest, 0.0),
            AttackKind::GaussianNoise => noise_like(&honest, known.seed),
            AttackKind::StaleRider => match known.previous {
                Some(previous) => parent.minus(previous)?,
                None => scaled(&honest, 0.0),
            },
            AttackKind::HiddenReversal => {
                let against = match known.previous {
                    Some(previous) => previous.minus(parent)?,
                    None => scaled(&honest, -1.0),
                };
                hidden(&honest, &against, known.shape, known.round)
            }
            AttackKind::LabelFlip
            | AttackKind::SlowLink
            | AttackKind::Alie
            | AttackKind::InnerProduct
            | AttackKind::MinMax
            | AttackKind::MinSum => {
                return Err(Error::Config(
                    self.unsupported("a trained update on its own").to_string(),
                ))
            }
        };
        Ok(parent.plus(&sent)?)
    }
}

/// The update the colluding attackers of kind `kind` all send in a round of `members` trainers
/// of which `attackers` collude: `parent` plus the delta [`collusion::craft`] makes from the
/// honest members' updates `honest` (their trained tensors, from `parent`).
pub fn collude(
    kind: AttackKind,
    parent: &Update,
    honest: &[Update],
    members: usize,
    attackers: usize,
) -> Result<Update> {
    let mut benign = Vec::with_capacity(honest.len());
    for update in honest {
        benign.push(update.minus(parent)?.flattened());
    }
    let crafted = collusion::craft(kind, &benign, members, attackers)
        .map_err(|e| Error::Config(format!("attack {kind}: {e}")))?;
    Ok(parent.plus(&parent.with_flattened(&crafted))?)
}

/// `honest` with the part of it that commitments in `shape` sketched with `seed` do not see
/// replaced by that part of `toward`, scaled to the same norm: what the statistics see, and
/// the norm, stay `honest`'s. Where `toward` has no unseen part, the unseen part is dropped.
fn hidden(honest: &Update, toward: &Update, shape: StatsShape, seed: u64) -> Update {
    let h = honest.flattened();
    // Both are updates of the same tensors: one scope's range for both.
    let sampled_in = scope_range(honest, shape.coordinate_scope).unwrap_or(0..0);
    let seen = visible_part(&h, shape, sampled_in.clone(), seed);
    let unseen_norm = h
        .iter()
        .zip(&seen)
        .map(|(x, v)| (x - v) * (x - v))
        .sum::<f64>()
        .sqrt();
    let t = toward.flattened();
    let t_seen = visible_part(&t, shape, sampled_in, seed);
    let t_unseen: Vec<f64> = t.iter().zip(&t_seen).map(|(x, v)| x - v).collect();
    let t_norm = t_unseen.iter().map(|x| x * x).sum::<f64>().sqrt();
    let k = if t_norm > 0.0 {
        unseen_norm / t_norm
    } else {
        0.0
    };
    let sent: Vec<f64> = seen.iter().zip(&t_unseen).map(|(v, u)| v + k * u).collect();
    honest.with_flattened(&sent)
}

/// How far each colluder moves its copy of the crafted update: Gaussian noise whose L2 norm is
/// this multiple of the crafted delta's, drawn by each colluder with its own seed
/// ([`perturbed`]). 0 (the default): every colluder sends the same update. Two copies moved by
/// noise `r` lie about `r^2 / (1 + r^2)` apart in cosine distance (0.0099 at 0.1, 0.038 at 0.2,
/// 0.2 at 0.5), while FedAvg of `f` copies keeps the crafted delta up to noise of norm
/// `r / sqrt(f)` of it. A finite number, at least 0 (`--collusion-noise`, the node
/// configuration's `collusion_noise`).
#[derive(Clone, Copy, Debug, Default, PartialEq, PartialOrd, Serialize, Deserialize)]
#[serde(try_from = "f64", into = "f64")]
pub struct CollusionNoise(f64);

impl CollusionNoise {
    /// Identical copies.
    pub const NONE: Self = Self(0.0);

    /// The relative norm of each copy's noise.
    pub fn value(self) -> f64 {
        self.0
    }
}

impl TryFrom<f64> for CollusionNoise {
    type Error = String;

    fn try_from(value: f64) -> std::result::Result<Self, String> {
        if value.is_finite() && value >= 0.0 {
            Ok(Self(value))
        } else {
            Err(format!(
                "collusion noise {value}: expected a finite number, at least 0"
            ))
        }
    }
}

impl From<CollusionNoise> for f64 {
    fn from(noise: CollusionNoise) -> f64 {
        noise.0
    }
}

impl FromStr for CollusionNoise {
    type Err = String;

    fn from_str(text: &str) -> std::result::Result<Self, String> {
        let value: f64 = text
            .parse()
            .map_err(|_| format!("{text:?}: expected a number, e.g. 0.2"))?;
        Self::try_from(value)
    }
}

impl std::fmt::Display for CollusionNoise {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// A colluder's own copy of the crafted update `sent` (from `parent`): its delta plus Gaussian
/// noise (drawn from `seed`) of `noise` times the delta's L2 norm; `sent` as it is at
/// [`CollusionNoise::NONE`].
pub fn perturbed(
    parent: &Update,
    sent: Update,
    noise: CollusionNoise,
    seed: u64,
) -> Result<Update> {
    if noise == CollusionNoise::NONE {
        return Ok(sent);
    }
    let delta = sent.minus(parent)?;
    let moved = delta.plus(&scaled(&noise_like(&delta, seed), noise.0 as f32))?;
    Ok(parent.plus(&moved)?)
}

/// `--attack KIND:COUNT`: the last COUNT members run attack KIND.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttackSpec {
    /// What they do.
    pub kind: AttackKind,
    /// How many members do it.
    pub count: usize,
}

impl FromStr for AttackSpec {
    type Err = String;

    fn from_str(text: &str) -> std::result::Result<Self, String> {
        let (kind, count) = text
            .split_once(':')
            .ok_or_else(|| format!("{text:?}: expected KIND:COUNT, e.g. sign-flip:1"))?;
        let count: usize = count
            .parse()
            .map_err(|_| format!("{text:?}: COUNT {count:?} is not a number"))?;
        if count == 0 {
            return Err(format!("{text:?}: COUNT must be at least 1"));
        }
        let kind: AttackKind = kind.parse().map_err(|e| format!("{e}"))?;
        if !KINDS.contains(&kind) && !DATA_KINDS.contains(&kind) {
            return Err(kind.unsupported("a member process").to_string());
        }
        Ok(Self { kind, count })
    }
}

fn scaled(update: &Update, factor: f32) -> Update {
    let mut out = update.clone();
    for (_, values) in out.tensors.values_mut() {
        for v in values.iter_mut() {
            *v *= factor;
        }
    }
    out
}

fn noise_like(update: &Update, seed: u64) -> Update {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut out = update.clone();
    for (_, values) in out.tensors.values_mut() {
        for v in values.iter_mut() {
            *v = StandardNormal.sample(&mut rng);
        }
    }
    let (target, drawn) = (l2_norm(update), l2_norm(&out));
    if drawn > 0.0 {
        out = scaled(&out, (target / drawn) as f32);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use bcfl_fed::sketch::{sketch, sketch_cosine};
    use rand::SeedableRng;

    fn update(values: &[f32]) -> Update {
        let mut u = Update::default();
        u.tensors
            .insert("a".into(), (vec![values.len()], values.to_vec()));
        u
    }

    #[test]
    fn parses_specs() {
        let spec: AttackSpec = "sign-flip:2".parse().unwrap();
        assert_eq!(spec.kind, AttackKind::SignFlip);
        assert_eq!(spec.count, 2);
        // Every spelling `--attack` accepted before the kinds were unified, and the names.
        for (text, kind) in [
            ("sign-flip", AttackKind::SignFlip),
            ("scale", AttackKind::Scale),
            ("noise", AttackKind::GaussianNoise),
            ("free-rider", AttackKind::FreeRider),
            ("scale-x10", AttackKind::Scale),
            ("gaussian_noise", AttackKind::GaussianNoise),
        ] {
            assert_eq!(
                format!("{text}:1").parse::<AttackSpec>().unwrap().kind,
                kind
            );
        }
        assert!("scale".parse::<AttackSpec>().is_err());
        assert!("scale:0".parse::<AttackSpec>().is_err());
        assert!("boost:1".parse::<AttackSpec>().is_err());
        // Label flippers train on shifted labels (the node does it to its data); slow links
        // are for shaped networks, not a member process's flag.
        assert_eq!(
            "label-flip:1".parse::<AttackSpec>().unwrap().kind,
            AttackKind::LabelFlip
        );
        let err = "slow-link:1".parse::<AttackSpec>().unwrap_err();
        assert!(
            err.contains("cannot be applied to a member process"),
            "{err}"
        );
    }

    #[test]
    fn attacks_change_the_delta_as_documented() {
        let parent = update(&[1.0, 2.0, 3.0, 4.0]);
        let local = update(&[1.5, 1.0, 3.0, 6.0]);
        let honest = local.minus(&parent).unwrap();
        assert_eq!(honest, update(&[0.5, -1.0, 0.0, 2.0]));
        let round1 = Known {
            previous: None,
            seed: 7,
            shape: StatsShape::default(),
            round: 1,
        };
        let sent = |kind: AttackKind| kind.apply(&parent, &local, &round1).unwrap().minus(&parent);
        for kind in AttackKind::ALL {
            assert_eq!(
                kind.apply(&parent, &local, &round1).is_ok(),
                KINDS.contains(&kind) && !kind.colludes(),
                "{kind}"
            );
            assert_eq!(kind.replaces_update(), KINDS.contains(&kind));
        }
        assert_eq!(
            sent(AttackKind::SignFlip).unwrap(),
            update(&[-0.5, 1.0, 0.0, -2.0])
        );
        assert_eq!(
            sent(AttackKind::Scale).unwrap(),
            update(&[5.0, -10.0, 0.0, 20.0])
        );
        assert_eq!(
            AttackKind::FreeRider
                .apply(&parent, &local, &round1)
                .unwrap(),
            parent
        );
        // A stale rider resends the last change of the global model: zero in round 1.
        assert_eq!(
            AttackKind::StaleRider
                .apply(&parent, &local, &round1)
                .unwrap(),
            parent
        );
        let previous = update(&[0.0, 2.0, 4.0, 4.0]);
        let round2 = Known {
            previous: Some(&previous),
            round: 2,
            ..round1
        };
        assert_eq!(
            AttackKind::StaleRider
                .apply(&parent, &local, &round2)
                .unwrap(),
            update(&[2.0, 2.0, 2.0, 4.0])
        );
        let noise = sent(AttackKind::GaussianNoise).unwrap();
        assert!((l2_norm(&noise) - l2_norm(&honest)).abs() < 1e-5);
        assert_ne!(noise, honest);
        // The sign flip is the opposite direction: its sketch has cosine -1 with the honest one.
        let stats = |u: &Update| sketch(u, 16, 1);
        let flipped = stats(&sent(AttackKind::SignFlip).unwrap());
        assert!((sketch_cosine(&flipped, &stats(&honest)) + 1.0).abs() < 1e-3);
    }

    /// A hidden reversal commits its honest delta's statistics, sketch, sampled coordinates
    /// and norm, while most of what it sends points against the global model's previous
    /// change (against its own delta in round 1); a projection it did not know sees that.
    #[test]
    fn a_hidden_reversal_commits_the_honest_statistics() {
        use bcfl_fed::sketch::UpdateStats;
        use rand::Rng;
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let mut random =
            |n: usize| -> Vec<f32> { (0..n).map(|_| rng.gen_range(-1.0..1.0)).collect() };
        let parent = update(&random(2_000));
        let local = parent.plus(&update(&random(2_000))).unwrap();
        let previous = parent.minus(&update(&random(2_000))).unwrap();
        let honest = local.minus(&parent).unwrap();
        let global = parent.minus(&previous).unwrap();
        let shape = StatsShape {
            sketch_length: 256,
            coordinate_samples: 256,
            ..StatsShape::default()
        };
        let cosine = |a: &Update, b: &Update| {
            let (x, y) = (a.flattened(), b.flattened());
            let dot: f64 = x.iter().zip(&y).map(|(p, q)| p * q).sum();
            dot / (l2_norm(a) * l2_norm(b))
        };
        for previous in [Some(&previous), None] {
            let known = Known {
                previous,
                seed: 1,
                shape,
                round: 3,
            };
            let sent = AttackKind::HiddenReversal
                .apply(&parent, &local, &known)
                .unwrap()
                .minus(&parent)
                .unwrap();
            let stats = |u: &Update, round| UpdateStats::new(u, 1, 0.0, shape, round);
            let (seen, truth) = (stats(&sent, 3), stats(&honest, 3));
            assert_eq!(seen.sketch, truth.sketch);
            assert_eq!(seen.coordinates, truth.coordinates);
            assert!((seen.l2_norm / truth.l2_norm - 1.0).abs() < 1e-5);
            // About a quarter of the energy is seen (512 vectors of 2,000), the rest reversed.
            let against = match previous {
                Some(_) => cosine(&sent, &global),
                None => cosine(&sent, &honest),
            };
            assert!(against < -0.4, "{against}");
            let other = sketch_cosine(&stats(&sent, 4).sketch, &stats(&honest, 4).sketch);
            assert!(other < 0.9, "round 4's projection: {other}");
        }
    }

    /// Colluders send the parent plus the crafted delta of the honest updates, tensor by
    /// tensor in name order.
    #[test]
    fn colluders_craft_from_the_honest_updates() {
        let two = |a: [f32; 2], b: f32| {
            let mut u = update(&a);
            u.tensors.insert("b".into(), (vec![1], vec![b]));
            u
        };
        let parent = two([1.0, 1.0], 1.0);
        let honest = [two([2.0, 1.0], 1.0), two([4.0, 3.0], 3.0)];
        // Deltas (1, 0, 0) and (3, 2, 2): mean (2, 1, 1), IPM sends -0.1 of it.
        let sent = collude(AttackKind::InnerProduct, &parent, &honest, 3, 1).unwrap();
        let delta = sent.minus(&parent).unwrap();
        let values: Vec<f32> = delta
            .tensors
            .values()
            .flat_map(|(_, v)| v.clone())
            .collect();
        for (got, want) in values.iter().zip([-0.2, -0.1, -0.1]) {
            assert!((got - want).abs() < 1e-6, "{values:?}");
        }
        assert_eq!(sent.tensors["b"].0, vec![1]);
        for kind in AttackKind::COLLUDING {
            assert!(KINDS.contains(&kind) && kind.replaces_update());
            assert!(collude(kind, &parent, &honest, 5, 2).is_ok());
            let err = collude(kind, &parent, &[], 5, 2).unwrap_err().to_string();
            assert!(err.contains("at least one honest update"), "{err}");
        }
        assert!(collude(AttackKind::SignFlip, &parent, &honest, 5, 2).is_err());
    }

    /// Each colluder's copy moves by noise of the asked relative norm, its own for each seed;
    /// no noise leaves the crafted update as it is.
    #[test]
    fn perturbed_copies_move_by_the_asked_share() {
        let parent = update(&[1.0; 4096]);
        let values: Vec<f32> = (0..4096)
            .map(|i| 1.0 + ((i % 7) as f32 - 3.0) * 0.01)
            .collect();
        let sent = update(&values);
        let delta = |u: &Update| u.minus(&parent).unwrap();
        let none = perturbed(&parent, sent.clone(), CollusionNoise::NONE, 1).unwrap();
        assert_eq!(none, sent);
        let noise: CollusionNoise = "0.2".parse().unwrap();
        let a = perturbed(&parent, sent.clone(), noise, 1).unwrap();
        let b = perturbed(&parent, sent.clone(), noise, 2).unwrap();
        assert_eq!(a, perturbed(&parent, sent.clone(), noise, 1).unwrap());
        let moved = delta(&a).minus(&delta(&sent)).unwrap();
        let share = l2_norm(&moved) / l2_norm(&delta(&sent));
        assert!((share - 0.2).abs() < 1e-3, "{share}");
        // Two copies lie about r^2 / (1 + r^2) = 0.038 apart.
        let (x, y) = (delta(&a).flattened(), delta(&b).flattened());
        let dot: f64 = x.iter().zip(&y).map(|(p, q)| p * q).sum();
        let norm = |v: &[f64]| v.iter().map(|p| p * p).sum::<f64>().sqrt();
        let distance = 1.0 - dot / (norm(&x) * norm(&y));
        assert!((distance - 0.0385).abs() < 0.005, "{distance}");
    }

    #[test]
    fn collusion_noise_parses_finite_non_negative_numbers() {
        assert_eq!("0".parse::<CollusionNoise>(), Ok(CollusionNoise::NONE));
        assert_eq!("0.5".parse::<CollusionNoise>().map(f64::from), Ok(0.5));
        for bad in ["-0.1", "NaN", "inf", "x"] {
            assert!(bad.parse::<CollusionNoise>().is_err(), "{bad}");
        }
        let read: CollusionNoise = serde_json::from_str("0.3").unwrap();
        assert_eq!(read.value(), 0.3);
        assert!(serde_json::from_str::<CollusionNoise>("-1").is_err());
    }
}
