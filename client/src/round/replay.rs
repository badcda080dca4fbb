//! A round's aggregate as a pure function of the chain and the blobs it names: what the
//! aggregator computes, and what an auditor recomputes (`bcfl audit replay N`).
//!
//! [`AggregatePlan::of`] reads from the family state what a round's aggregate depends on: the
//! accepted commitments (update hash and size, samples, staleness, the model each was trained
//! from), the round's parent model, and the consortium's rule. [`AggregatePlan::compute`] then
//! combines the blobs:
//!
//! 1. every update must hash to its commitment and have its size;
//! 2. an update trained from an older global model (`staleness > 0`, buffered asynchronous
//!    rounds) is rebased: the round's parent plus the member's change from its own base,
//!    `parent + (update − base)` ([`Update::plus`], [`Update::minus`]);
//! 3. each contribution weighs `samples × staleness_weight_ppm(staleness)`
//!    ([`schedule::staleness_weight_ppm`]);
//! 4. the rule ([`Rule::from_params`]) combines them bit-exactly ([`aggregate`]), and the
//!    result is written as canonical f32 safetensors, whose SHA-256 is the model hash on chain.
//!
//! The aggregator member ([`super::member`]) and the auditor call the same two functions, so a
//! replay that differs from the chain means the aggregator committed something else than the
//! rule's result. Nothing here loads libtorch.

use std::collections::BTreeMap;
use std::path::Path;

use bcfl_fed::aggregate::{aggregate, Contribution};
use bcfl_fed::digest::sha256_hex;
use bcfl_fed::rule::Rule;
use bcfl_fed::sketch::StatsShape;
use bcfl_fed::update::{Encoding, Update};
use bcfl_ledger::state::FamilyState;

use super::schedule;
use super::{Error, Result};

/// The shape of the consortium's commitment statistics (the default before it exists): what the
/// aggregator, a verifier and an auditor recompute from each committed blob.
pub fn stats_shape(state: &FamilyState) -> StatsShape {
    state
        .consortium
        .as_ref()
        .map_or_else(StatsShape::default, |c| StatsShape::of(c.get_params()))
}

/// The shape of what a commitment itself carries ([`StatsShape::committed`]: no sketch when the
/// consortium's sketches come after the commitments).
pub fn committed_shape(state: &FamilyState) -> StatsShape {
    state
        .consortium
        .as_ref()
        .map_or_else(StatsShape::default, |c| {
            StatsShape::committed(c.get_params())
        })
}

/// One accepted update of a round, as its commitment describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedUpdate {
    /// The member's key.
    pub member: String,
    /// The update blob's SHA-256.
    pub sha256: String,
    /// Its size in bytes.
    pub size_bytes: u64,
    /// Samples it was trained on.
    pub samples: u64,
    /// Rounds between the model it was trained from and the round's parent.
    pub staleness: u32,
    /// The global model it was trained from (the round's parent when `staleness` is 0).
    pub base_model_sha256: String,
}

impl PlannedUpdate {
    /// Its weight: samples × the staleness weight in ppm.
    pub fn weight(&self) -> u64 {
        self.samples * schedule::staleness_weight_ppm(self.staleness)
    }
}

/// What a round's aggregate depends on.
#[derive(Debug, Clone, PartialEq)]
pub struct AggregatePlan {
    /// The round.
    pub round: u64,
    /// The round's parent model.
    pub parent_model_sha256: String,
    /// The consortium's rule.
    pub rule: Rule,
    /// The updates the verdict accepted, in key order.
    pub updates: Vec<PlannedUpdate>,
}

/// A computed aggregate.
#[derive(Debug, Clone, PartialEq)]
pub struct Computed {
    /// The canonical f32 safetensors bytes.
    pub bytes: Vec<u8>,
    /// Their SHA-256: the model hash the chain must hold.
    pub sha256: String,
}

impl AggregatePlan {
    /// The plan of `round`, which must have a verdict that accepted someone.
    pub fn of(state: &FamilyState, round: u64) -> Result<Self> {
        let r = state
            .rounds
            .get(&round)
            .ok_or_else(|| Error::State(format!("round {round} does not exist")))?;
        let verdict = state
            .verdicts
            .get(&round)
            .ok_or_else(|| Error::State(format!("round {round} has no verdict yet")))?;
        let params = state
            .consortium
            .as_ref()
            .map(|c| c.get_params().clone())
            .ok_or_else(|| Error::State("the consortium is not initialized".into()))?;
        let rule = Rule::from_params(&params)?;
        let mut updates = Vec::with_capacity(verdict.accepted.len());
        for member in &verdict.accepted {
            let c = state
                .commitments
                .get(&(round, member.clone()))
                .ok_or_else(|| {
                    Error::State(format!("no commitment of {member} to round {round}"))
                })?;
            let base = state
                .base_model_of(c)
                .ok_or_else(|| {
                    Error::State(format!(
                        "{member}'s base round {} is not on the ledger",
                        c.base_round
                    ))
                })?
                .to_owned();
            updates.push(PlannedUpdate {
                member: member.clone(),
                sha256: c.update_sha256.clone(),
                size_bytes: c.size_bytes,
                samples: c.num_samples,
                staleness: c.staleness,
                base_model_sha256: base,
            });
        }
        if updates.is_empty() {
            return Err(Error::State(format!(
                "round {round}'s verdict accepted nobody: nothing to aggregate"
            )));
        }
        Ok(Self {
            round,
            parent_model_sha256: r.parent_model_sha256.clone(),
            rule,
            updates,
        })
    }

    /// Every model blob the computation reads besides the updates: the parent, and the bases
    /// of stale updates (empty when no update is stale).
    pub fn models_needed(&self) -> Vec<String> {
        let mut models: Vec<String> = Vec::new();
        for u in self.updates.iter().filter(|u| u.staleness > 0) {
            for sha in [&self.parent_model_sha256, &u.base_model_sha256] {
                if !models.contains(sha) {
                    models.push(sha.clone());
                }
            }
        }
        models
    }

    /// Combines the updates. `update_path` gives the file of each planned update and `model`
    /// the bytes of a model blob by hash (only [`Self::models_needed`] are asked for);
    /// `scratch` holds rebased updates while the rule runs, and is removed afterwards.
    pub fn compute(
        &self,
        mut update_path: impl FnMut(&PlannedUpdate) -> Result<std::path::PathBuf>,
        mut model: impl FnMut(&str) -> Result<Vec<u8>>,
        scratch: &Path,
    ) -> Result<Computed> {
        let mut models: BTreeMap<String, Update> = BTreeMap::new();
        for sha in self.models_needed() {
            let bytes = model(&sha)?;
            if sha256_hex(&bytes) != sha {
                return Err(Error::Integrity(format!(
                    "model blob {sha} does not hash to its name"
                )));
            }
            models.insert(sha, Update::from_bytes(&bytes)?);
        }
        let mut contributions = Vec::with_capacity(self.updates.len());
        for planned in &self.updates {
            let path = update_path(planned)?;
            let bytes = std::fs::read(&path).map_err(|e| Error::file("reading", &path, e))?;
            if sha256_hex(&bytes) != planned.sha256 || bytes.len() as u64 != planned.size_bytes {
                return Err(Error::Integrity(format!(
                    "the update of {} does not match its commitment",
                    planned.member
                )));
            }
            let path = if planned.staleness == 0 {
                path
            } else {
                let base = &models[&planned.base_model_sha256];
                let parent = &models[&self.parent_model_sha256];
                let rebased = parent.plus(&Update::from_bytes(&bytes)?.minus(base)?)?;
                std::fs::create_dir_all(scratch)
                    .map_err(|e| Error::file("creating", scratch, e))?;
                let file = scratch.join(format!("{}-{}.safetensors", self.round, planned.member));
                std::fs::write(&file, rebased.to_bytes(Encoding::F32))?;
                file
            };
            contributions.push(Contribution {
                member: planned.member.clone(),
                path,
                samples: planned.weight(),
            });
        }
        let combined = aggregate(contributions, self.rule);
        let _ = std::fs::remove_dir_all(scratch);
        let bytes = combined?.update.to_bytes(Encoding::F32);
        Ok(Computed {
            sha256: sha256_hex(&bytes),
            bytes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn update(values: &[f32]) -> Update {
        let mut u = Update::default();
        u.tensors
            .insert("w".into(), (vec![values.len()], values.to_vec()));
        u
    }

    fn plan(updates: Vec<PlannedUpdate>) -> AggregatePlan {
        AggregatePlan {
            round: 2,
            parent_model_sha256: sha256_hex(&update(&[1.0, 1.0]).to_bytes(Encoding::F32)),
            rule: Rule::FedAvg,
            updates,
        }
    }

    fn planned(
        member: &str,
        bytes: &[u8],
        samples: u64,
        staleness: u32,
        base: &str,
    ) -> PlannedUpdate {
        PlannedUpdate {
            member: member.into(),
            sha256: sha256_hex(bytes),
            size_bytes: bytes.len() as u64,
            samples,
            staleness,
            base_model_sha256: base.into(),
        }
    }

    #[test]
    fn fresh_and_stale_updates_combine_as_documented() {
        let dir = tempfile::tempdir().unwrap();
        let parent = update(&[1.0, 1.0]).to_bytes(Encoding::F32);
        let old_base = update(&[0.0, 0.0]).to_bytes(Encoding::F32);
        let fresh = update(&[3.0, 1.0]).to_bytes(Encoding::F32);
        // Trained from the older model: its change (+2, -2) is rebased onto the parent.
        let stale = update(&[2.0, -2.0]).to_bytes(Encoding::F32);
        let mut files = BTreeMap::new();
        for (name, bytes) in [("a", &fresh), ("b", &stale)] {
            let path = dir.path().join(name);
            std::fs::write(&path, bytes).unwrap();
            files.insert(sha256_hex(bytes), path);
        }
        let p = plan(vec![
            planned("a", &fresh, 10, 0, ""),
            planned("b", &stale, 10, 3, &sha256_hex(&old_base)),
        ]);
        assert_eq!(p.models_needed().len(), 2);
        let models: BTreeMap<String, Vec<u8>> = [
            (sha256_hex(&parent), parent.clone()),
            (sha256_hex(&old_base), old_base.clone()),
        ]
        .into();
        let computed = p
            .compute(
                |u| Ok(files[&u.sha256].clone()),
                |sha| Ok(models[sha].clone()),
                &dir.path().join("scratch"),
            )
            .unwrap();
        // Weights 10e6 and 10 × round(1e6 / 2) = 5e6: (2 × [3, 1] + 1 × [3, -1]) / 3.
        let result = Update::from_bytes(&computed.bytes).unwrap();
        assert_eq!(result.tensors["w"].1, [3.0, 1.0 / 3.0]);
        assert_eq!(computed.sha256, sha256_hex(&computed.bytes));
        assert!(!dir.path().join("scratch").exists());
    }

    #[test]
    fn a_blob_that_differs_from_its_commitment_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let committed = update(&[3.0, 1.0]).to_bytes(Encoding::F32);
        let served = update(&[3.0, 1.5]).to_bytes(Encoding::F32);
        let path = dir.path().join("a");
        std::fs::write(&path, &served).unwrap();
        let p = plan(vec![planned("a", &committed, 1, 0, "")]);
        let err = p
            .compute(|_| Ok(path.clone()), |_| unreachable!(), dir.path())
            .unwrap_err();
        assert!(
            err.to_string().contains("does not match its commitment"),
            "{err}"
        );
    }
}
