//! Misbehaving members: what an attacker sends instead of its honest update.
//!
//! An update blob holds a member's trainable tensors after local training; the change it
//! proposes is its *delta* from the round's parent model, `local − parent`. An attacker trains
//! like everyone else and then replaces its delta before it writes the blob:
//!
//! | kind | `--attack` | the delta sent |
//! | --- | --- | --- |
//! | [`AttackKind::SignFlip`] | `sign-flip` | `−delta` (pushes the model back) |
//! | [`AttackKind::Scale`] | `scale` | `10 · delta` (dominates a mean) |
//! | [`AttackKind::Noise`] | `noise` | Gaussian noise with the honest delta's L2 norm |
//! | [`AttackKind::FreeRider`] | `free-rider` | zero (returns the parent: nothing trained) |
//!
//! These are the attacks of the processor's detection bench
//! (`bcfl_processor::anomaly::simulate`), applied to real updates. The attacker's commitment
//! carries the statistics of what it really sends, so the on-chain evidence is consistent with
//! its blob and the anomaly verdict, not a lie in the statistics, has to catch it.

use std::fmt;
use std::str::FromStr;

use rand::SeedableRng;
use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};

use crate::train::sketch::l2_norm;
use crate::train::update::Update;
use crate::train::{Error, Result};

/// The factor of [`AttackKind::Scale`].
pub const SCALE_FACTOR: f32 = 10.0;

/// How an attacker replaces its delta.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AttackKind {
    /// The negated honest delta.
    SignFlip,
    /// The honest delta times [`SCALE_FACTOR`].
    Scale,
    /// Gaussian noise with the honest delta's norm.
    Noise,
    /// No change from the parent model.
    FreeRider,
}

impl AttackKind {
    /// Every kind, in `--attack` order.
    pub const ALL: [AttackKind; 4] = [Self::SignFlip, Self::Scale, Self::Noise, Self::FreeRider];

    /// The `--attack` name.
    pub fn name(self) -> &'static str {
        match self {
            Self::SignFlip => "sign-flip",
            Self::Scale => "scale",
            Self::Noise => "noise",
            Self::FreeRider => "free-rider",
        }
    }

    /// The update an attacker sends instead of `local`, trained from `parent`; `seed` seeds
    /// the noise.
    pub fn apply(self, parent: &Update, local: &Update, seed: u64) -> Result<Update> {
        let honest = delta(local, parent)?;
        let sent = match self {
            Self::SignFlip => scaled(&honest, -1.0),
            Self::Scale => scaled(&honest, SCALE_FACTOR),
            Self::FreeRider => scaled(&honest, 0.0),
            Self::Noise => noise_like(&honest, seed),
        };
        add(parent, &sent)
    }
}

impl fmt::Display for AttackKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for AttackKind {
    type Err = String;

    fn from_str(text: &str) -> std::result::Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|k| k.name() == text)
            .ok_or_else(|| {
                let names: Vec<&str> = Self::ALL.iter().map(|k| k.name()).collect();
                format!("unknown attack {text:?} (one of {})", names.join(", "))
            })
    }
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
        Ok(Self {
            kind: kind.parse()?,
            count,
        })
    }
}

/// `local − parent`, tensor by tensor (same names and shapes required).
pub fn delta(local: &Update, parent: &Update) -> Result<Update> {
    zip(local, parent, |l, p| l - p)
}

/// `parent + delta`, tensor by tensor.
pub fn add(parent: &Update, delta: &Update) -> Result<Update> {
    zip(parent, delta, |p, d| p + d)
}

fn zip(a: &Update, b: &Update, op: impl Fn(f32, f32) -> f32) -> Result<Update> {
    if a.tensors.len() != b.tensors.len() {
        return Err(Error::Update(format!(
            "{} tensors against {}",
            a.tensors.len(),
            b.tensors.len()
        )));
    }
    let mut out = Update::default();
    for (name, (shape, values)) in &a.tensors {
        let Some((other_shape, other)) = b.tensors.get(name) else {
            return Err(Error::Update(format!("tensor {name} is missing")));
        };
        if shape != other_shape {
            return Err(Error::Update(format!(
                "{name}: shape {shape:?} against {other_shape:?}"
            )));
        }
        let combined = values.iter().zip(other).map(|(&x, &y)| op(x, y)).collect();
        out.tensors.insert(name.clone(), (shape.clone(), combined));
    }
    Ok(out)
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
    use crate::train::sketch::sketch_cosine;
    use crate::train::sketch::UpdateStats;

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
        for kind in AttackKind::ALL {
            assert_eq!(kind.name().parse::<AttackKind>().unwrap(), kind);
        }
        assert!("scale".parse::<AttackSpec>().is_err());
        assert!("scale:0".parse::<AttackSpec>().is_err());
        assert!("boost:1".parse::<AttackSpec>().is_err());
    }

    #[test]
    fn attacks_change_the_delta_as_documented() {
        let parent = update(&[1.0, 2.0, 3.0, 4.0]);
        let local = update(&[1.5, 1.0, 3.0, 6.0]);
        let honest = delta(&local, &parent).unwrap();
        assert_eq!(honest, update(&[0.5, -1.0, 0.0, 2.0]));
        let sent = |kind: AttackKind| delta(&kind.apply(&parent, &local, 7).unwrap(), &parent);
        assert_eq!(
            sent(AttackKind::SignFlip).unwrap(),
            update(&[-0.5, 1.0, 0.0, -2.0])
        );
        assert_eq!(
            sent(AttackKind::Scale).unwrap(),
            update(&[5.0, -10.0, 0.0, 20.0])
        );
        assert_eq!(
            AttackKind::FreeRider.apply(&parent, &local, 7).unwrap(),
            parent
        );
        let noise = sent(AttackKind::Noise).unwrap();
        assert!((l2_norm(&noise) - l2_norm(&honest)).abs() < 1e-5);
        assert_ne!(noise, honest);
        // The sign flip is the opposite direction: its sketch has cosine -1 with the honest one.
        let stats = |u: &Update| UpdateStats::new(u, 1, 0.0, 16, 1).sketch;
        let flipped = stats(&sent(AttackKind::SignFlip).unwrap());
        assert!((sketch_cosine(&flipped, &stats(&honest)) + 1.0).abs() < 1e-3);
    }

    #[test]
    fn mismatched_updates_are_refused() {
        let a = update(&[1.0, 2.0]);
        let b = update(&[1.0]);
        assert!(delta(&a, &b).is_err());
        let mut c = Update::default();
        c.tensors.insert("b".into(), (vec![2], vec![0.0, 0.0]));
        assert!(add(&a, &c).is_err());
    }
}
