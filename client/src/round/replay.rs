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
//! 4. the rule ([`Rule::from_params`]) combines them bit-exactly ([`aggregate`]);
//! 5. where the verdict withdrew commitments to the round before (`Verdict.withdrawn`,
//!    [`bcfl_processor::anomaly::withdraw`]: FedAvg only), their contributions are taken back
//!    out: with `P` the round's parent (the round before's aggregate), `W` the weight of the
//!    round before's accepted updates and `w_l`, `U_l` each withdrawn update's weight and model,
//!    the aggregate gains `sum w_l (P - U_l) / (W - sum w_l)` (in `f64`, one rounding to `f32`
//!    per value), or `P' - P`, `P'` the round before's parent, when they were all of it;
//! 6. the result is written as canonical f32 safetensors, whose SHA-256 is the model hash on
//!    chain.
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
    /// The commitments to the round before that the verdict withdrew, in key order (empty
    /// unless the consortium withdraws).
    pub withdrawn: Vec<PlannedUpdate>,
    /// The weight of the round before's accepted updates (0 without a withdrawal).
    pub withdrawn_from_weight: u64,
    /// The round before's parent model (empty without a withdrawal).
    pub previous_parent_model_sha256: String,
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
        let mut plan = Self {
            round,
            parent_model_sha256: r.parent_model_sha256.clone(),
            rule,
            updates,
            withdrawn: Vec::new(),
            withdrawn_from_weight: 0,
            previous_parent_model_sha256: String::new(),
        };
        if !verdict.withdrawn.is_empty() {
            plan.plan_withdrawal(state, &verdict.withdrawn_members())?;
        }
        Ok(plan)
    }

    /// Reads what withdrawing `members`' commitments to the round before needs: those
    /// commitments, the weight of that round's accepted updates, and its parent.
    fn plan_withdrawal(&mut self, state: &FamilyState, members: &[String]) -> Result<()> {
        let before = self.round - 1;
        let planned = |member: &String| -> Result<PlannedUpdate> {
            let c = state
                .commitments
                .get(&(before, member.clone()))
                .ok_or_else(|| {
                    Error::State(format!("no commitment of {member} to round {before}"))
                })?;
            Ok(PlannedUpdate {
                member: member.clone(),
                sha256: c.update_sha256.clone(),
                size_bytes: c.size_bytes,
                samples: c.num_samples,
                staleness: c.staleness,
                base_model_sha256: state.base_model_of(c).unwrap_or_default().to_owned(),
            })
        };
        self.withdrawn = members.iter().map(planned).collect::<Result<_>>()?;
        let accepted = &state
            .verdicts
            .get(&before)
            .ok_or_else(|| Error::State(format!("round {before} has no verdict")))?
            .accepted;
        self.withdrawn_from_weight = accepted
            .iter()
            .map(|m| planned(m).map(|u| u.weight()))
            .sum::<Result<u64>>()?;
        self.previous_parent_model_sha256 = state
            .rounds
            .get(&before)
            .ok_or_else(|| Error::State(format!("round {before} does not exist")))?
            .parent_model_sha256
            .clone();
        Ok(())
    }

    /// Whether the withdrawn updates were all of the round before's weight: the withdrawal
    /// then undoes that round.
    fn withdraws_the_whole_round(&self) -> bool {
        let taken: u64 = self.withdrawn.iter().map(PlannedUpdate::weight).sum();
        taken >= self.withdrawn_from_weight
    }

    /// Every model blob the computation reads besides the updates: the parent and the bases of
    /// stale updates, and with a withdrawal the parent (and the round before's parent when it
    /// undoes that round); empty when no update is stale and nothing is withdrawn.
    pub fn models_needed(&self) -> Vec<String> {
        let mut needed: Vec<&String> = Vec::new();
        for u in self.updates.iter().filter(|u| u.staleness > 0) {
            needed.extend([&self.parent_model_sha256, &u.base_model_sha256]);
        }
        if !self.withdrawn.is_empty() {
            needed.push(&self.parent_model_sha256);
            if self.withdraws_the_whole_round() {
                needed.push(&self.previous_parent_model_sha256);
            }
        }
        let mut models: Vec<String> = Vec::new();
        for sha in needed {
            if !models.contains(sha) {
                models.push(sha.clone());
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
            let bytes = committed_bytes(planned, &path)?;
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
        let mut model = combined?.update;
        if !self.withdrawn.is_empty() {
            let mut withdrawn = Vec::with_capacity(self.withdrawn.len());
            for planned in &self.withdrawn {
                let bytes = committed_bytes(planned, &update_path(planned)?)?;
                withdrawn.push((planned.weight(), Update::from_bytes(&bytes)?));
            }
            model = self.withdraw(&model, &models, &withdrawn)?;
        }
        let bytes = model.to_bytes(Encoding::F32);
        Ok(Computed {
            sha256: sha256_hex(&bytes),
            bytes,
        })
    }

    /// `aggregate` with the `withdrawn` contributions (weight, model) taken back out (step 5
    /// of the module docs); `models` holds [`Self::models_needed`].
    fn withdraw(
        &self,
        aggregate: &Update,
        models: &BTreeMap<String, Update>,
        withdrawn: &[(u64, Update)],
    ) -> Result<Update> {
        let parent = models[&self.parent_model_sha256].flattened();
        let values = aggregate.flattened();
        let check = |len: usize, what: &str| {
            if len == values.len() {
                Ok(())
            } else {
                Err(Error::Integrity(format!(
                    "round {}: {what} has {len} values, the aggregate {}",
                    self.round,
                    values.len()
                )))
            }
        };
        check(parent.len(), "the parent")?;
        let mut out = values.clone();
        if self.withdraws_the_whole_round() {
            let before = models[&self.previous_parent_model_sha256].flattened();
            check(before.len(), "the round before's parent")?;
            for ((o, p), b) in out.iter_mut().zip(&parent).zip(&before) {
                *o += b - p;
            }
        } else {
            let taken: u64 = withdrawn.iter().map(|(w, _)| w).sum();
            let remaining = (self.withdrawn_from_weight - taken) as f64;
            for (weight, model) in withdrawn {
                let u = model.flattened();
                check(u.len(), "a withdrawn update")?;
                let share = *weight as f64 / remaining;
                for ((o, p), x) in out.iter_mut().zip(&parent).zip(&u) {
                    *o += share * (p - x);
                }
            }
        }
        Ok(aggregate.with_flattened(&out))
    }
}

/// The bytes of `planned`'s update at `path`, which must hash to its commitment and have its
/// size.
fn committed_bytes(planned: &PlannedUpdate, path: &Path) -> Result<Vec<u8>> {
    let bytes = std::fs::read(path).map_err(|e| Error::file("reading", path, e))?;
    if sha256_hex(&bytes) != planned.sha256 || bytes.len() as u64 != planned.size_bytes {
        return Err(Error::Integrity(format!(
            "the update of {} does not match its commitment",
            planned.member
        )));
    }
    Ok(bytes)
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

    /// Each blob written to `dir` under its hash, by hash.
    fn write_blobs(dir: &Path, blobs: &[&Vec<u8>]) -> BTreeMap<String, std::path::PathBuf> {
        blobs
            .iter()
            .map(|bytes| {
                let path = dir.join(sha256_hex(bytes));
                std::fs::write(&path, bytes).unwrap();
                (sha256_hex(bytes), path)
            })
            .collect()
    }

    /// Each blob by its hash.
    fn by_hash(blobs: &[&Vec<u8>]) -> BTreeMap<String, Vec<u8>> {
        blobs
            .iter()
            .map(|bytes| (sha256_hex(bytes), bytes.to_vec()))
            .collect()
    }

    fn plan(updates: Vec<PlannedUpdate>) -> AggregatePlan {
        AggregatePlan {
            round: 2,
            parent_model_sha256: sha256_hex(&update(&[1.0, 1.0]).to_bytes(Encoding::F32)),
            rule: Rule::FedAvg,
            updates,
            withdrawn: Vec::new(),
            withdrawn_from_weight: 0,
            previous_parent_model_sha256: String::new(),
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
        let files = write_blobs(dir.path(), &[&fresh, &stale]);
        let p = plan(vec![
            planned("a", &fresh, 10, 0, ""),
            planned("b", &stale, 10, 3, &sha256_hex(&old_base)),
        ]);
        assert_eq!(p.models_needed().len(), 2);
        let models = by_hash(&[&parent, &old_base]);
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

    /// Round 1 accepted a ([2, 0]) and b ([0, 2]), 10 samples each, from [0, 0]: the parent
    /// of round 2 is [1, 1]. Round 2 accepts c ([3, 3]) and withdraws a: FedAvg of round 1
    /// without a would have been b's [0, 2], a move of [-1, 1] from the parent, which the
    /// aggregate gains: [2, 4]. Withdrawing both undoes round 1: [3, 3] + [0, 0] - [1, 1].
    #[test]
    fn a_withdrawn_contribution_is_taken_back_out() {
        let dir = tempfile::tempdir().unwrap();
        let before = update(&[0.0, 0.0]).to_bytes(Encoding::F32);
        let parent = update(&[1.0, 1.0]).to_bytes(Encoding::F32);
        let a = update(&[2.0, 0.0]).to_bytes(Encoding::F32);
        let b = update(&[0.0, 2.0]).to_bytes(Encoding::F32);
        let c = update(&[3.0, 3.0]).to_bytes(Encoding::F32);
        let files = write_blobs(dir.path(), &[&a, &b, &c]);
        let models = by_hash(&[&parent, &before]);
        let run = |withdrawn: Vec<PlannedUpdate>| {
            let mut p = plan(vec![planned("c", &c, 5, 0, "")]);
            p.withdrawn = withdrawn;
            p.withdrawn_from_weight = 20_000_000;
            p.previous_parent_model_sha256 = sha256_hex(&before);
            let needed = p.models_needed();
            let computed = p
                .compute(
                    |u| Ok(files[&u.sha256].clone()),
                    |sha| Ok(models[sha].clone()),
                    &dir.path().join("scratch"),
                )
                .unwrap();
            (needed.len(), Update::from_bytes(&computed.bytes).unwrap())
        };
        let (needed, one) = run(vec![planned("a", &a, 10, 0, "")]);
        assert_eq!((needed, &one.tensors["w"].1[..]), (1, &[2.0, 4.0][..]));
        let (needed, all) = run(vec![
            planned("a", &a, 10, 0, ""),
            planned("b", &b, 10, 0, ""),
        ]);
        assert_eq!((needed, &all.tensors["w"].1[..]), (2, &[2.0, 2.0][..]));
        // A withdrawn blob that is not what was committed is refused.
        let mut p = plan(vec![planned("c", &c, 5, 0, "")]);
        p.withdrawn = vec![planned("a", &b, 10, 0, "")];
        p.withdrawn_from_weight = 20_000_000;
        let err = p
            .compute(
                |u| {
                    let served = if u.member == "a" { &a } else { &c };
                    Ok(files[&sha256_hex(served)].clone())
                },
                |sha| Ok(models[sha].clone()),
                &dir.path().join("scratch"),
            )
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("the update of a does not match its commitment"),
            "{err}"
        );
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
