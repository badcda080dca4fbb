//! One federated run with attackers: local training of the head, the attack, the commitment
//! features, the on-chain detection methods, exclusion and aggregation, round after round.
//!
//! Per round, each member starts from the global head and trains on its shard
//! ([`LinearHead::train`]); its update is the change of the head. Attackers then misbehave
//! ([`AttackKind`]: every kind of the table in [`bcfl_processor::anomaly::attack`]; label flips
//! change the labels trained on, stale riders resend the previous global change, the other
//! kinds replace the update as [`attack_update`] does); every member's update gives the features a commitment carries (L2 norm, a
//! [`sketch`](bcfl_fed::sketch) of length `sketch_length`, the last epoch's loss, the sample
//! count) and, with the measured links, the round's evidence. Detection is the processor's own
//! [`bcfl_processor::anomaly::evaluate`] on [`MemberData::from_evidence`], exactly as
//! `EvaluateRound` computes a verdict; the accepted members' updates are aggregated by the
//! client's [`aggregate`] (written as update files, as members would serve them) and added to
//! the global head. The final head is scored on the held-out test set.

use std::path::Path;

use bcfl_processor::anomaly::attack::AttackKind;
use bcfl_processor::anomaly::features::extend_after_verdict;
use bcfl_processor::anomaly::simulate::{attack_update, measured_links, Counts, Rng};
use bcfl_processor::anomaly::{evaluate, MemberData};
use bcfl_processor::fixed;
use bcfl_protos::bcfl as pb;

use super::super::data::Dataset;
use super::super::split::{partition, train_test_split, Partition};
use super::super::{Error, Result};
use super::detect::{Detector, Tuning};
use super::embed::Embeddings;
use super::head::{LinearHead, LocalConfig};
use bcfl_fed::aggregate::{aggregate, Contribution, Rule};
use bcfl_fed::sketch::UpdateStats;
use bcfl_fed::update::Encoding;

/// Member key of member `i` (sorts like `i`).
pub fn member_key(i: usize) -> String {
    format!("client-{i:03}")
}

/// Whether an attacker of `kind` trains locally (free and stale riders do not).
fn trains(kind: AttackKind) -> bool {
    !matches!(kind, AttackKind::FreeRider | AttackKind::StaleRider)
}

/// How the round's updates are combined.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Defence {
    /// FedAvg of every update.
    None,
    /// FedAvg of the updates the detector accepts.
    Exclusion(Detector),
    /// Krum with `f` = the number of attackers.
    Krum,
    /// Coordinate-wise trimmed mean trimming the attackers' fraction (at least 10 %) at each end.
    TrimmedMean,
}

impl Defence {
    /// The rule that combines the updates it keeps, with `attackers` of `members` attacking:
    /// Krum with `f` = the attackers (at most `members - 3`), the trimmed mean trimming the
    /// attackers' fraction (within 10 % to 45 %), FedAvg otherwise.
    pub fn rule(self, attackers: usize, members: usize) -> Rule {
        match self {
            Defence::Krum => Rule::Krum {
                f: attackers.min(members.saturating_sub(3)),
            },
            Defence::TrimmedMean => Rule::TrimmedMean {
                trim: (attackers as f64 / members as f64).clamp(0.1, 0.45),
            },
            Defence::None | Defence::Exclusion(_) => Rule::FedAvg,
        }
    }

    /// A short name: `no_defence`, `exclude_<detector>`, `krum`, `trimmed_mean`.
    pub fn name(self) -> String {
        match self {
            Defence::None => "no_defence".into(),
            Defence::Exclusion(d) => format!("exclude_{}", d.name()),
            Defence::Krum => "krum".into(),
            Defence::TrimmedMean => "trimmed_mean".into(),
        }
    }
}

/// One experiment's set-up.
#[derive(Clone, Debug, PartialEq)]
pub struct Scenario {
    /// Members per round.
    pub members: usize,
    /// How many attack.
    pub attackers: usize,
    /// Attacker `j` (in key order) uses `attacks[j mod len]`.
    pub attacks: Vec<AttackKind>,
    /// Federated rounds.
    pub rounds: usize,
    /// How the training set is spread over members.
    pub partition: Partition,
    /// Local training.
    pub local: LocalConfig,
    /// Length of the committed sketches.
    pub sketch_length: usize,
    /// The detectors' features, DBSCAN radius and neighbourhood size, z-score threshold.
    pub tuning: Tuning,
    /// Fraction of the data held out for testing.
    pub test_fraction: f64,
    /// Seeds the split, the shards, the attackers, the links and the training.
    pub seed: u64,
}

/// A scenario's data, shards, attackers and links: shared by every defence.
#[derive(Debug)]
pub struct Prepared {
    /// Training rows.
    pub train: Embeddings,
    /// Held-out rows.
    pub test: Embeddings,
    /// Each member's rows of `train`.
    pub shards: Vec<Vec<usize>>,
    /// Each member's rows and classes as tensors (see [`Embeddings::tensors`]).
    pub shard_tensors: Vec<(tch::Tensor, tch::Tensor)>,
    /// Member keys, sorted.
    pub keys: Vec<String>,
    /// Each member's attack, `None` for honest members.
    pub roles: Vec<Option<AttackKind>>,
    /// The measured links among members.
    pub links: Vec<pb::Link>,
}

impl Prepared {
    /// The attackers' keys, sorted.
    pub fn attackers(&self) -> Vec<String> {
        self.keys
            .iter()
            .zip(&self.roles)
            .filter(|(_, r)| r.is_some())
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// The same members, all honest (the clean run).
    pub fn clean(&self) -> Self {
        Self {
            train: self.train.clone(),
            test: self.test.clone(),
            shards: self.shards.clone(),
            shard_tensors: self
                .shard_tensors
                .iter()
                .map(|(x, y)| (x.shallow_clone(), y.shallow_clone()))
                .collect(),
            keys: self.keys.clone(),
            roles: vec![None; self.roles.len()],
            links: self.links.clone(),
        }
    }
}

/// Splits `embeddings` (one row per example of `dataset`, in order) for `scenario`.
pub fn prepare(
    embeddings: &Embeddings,
    dataset: &Dataset,
    scenario: &Scenario,
) -> Result<Prepared> {
    if dataset.len() != embeddings.len() {
        return Err(Error::Config(format!(
            "{} embeddings for {} examples",
            embeddings.len(),
            dataset.len()
        )));
    }
    if scenario.attackers > scenario.members
        || scenario.attacks.is_empty() && scenario.attackers > 0
    {
        return Err(Error::Config(format!(
            "{} attackers among {} members with {} attacks",
            scenario.attackers,
            scenario.members,
            scenario.attacks.len()
        )));
    }
    // The split works on texts; identical texts have identical embeddings.
    let row_of: std::collections::HashMap<&str, usize> = dataset
        .examples
        .iter()
        .enumerate()
        .rev()
        .map(|(i, e)| (e.text.as_str(), i))
        .collect();
    let (train_set, test_set) = train_test_split(dataset, scenario.test_fraction, scenario.seed)?;
    let rows = |set: &Dataset| {
        let indices: Vec<usize> = set
            .examples
            .iter()
            .map(|e| row_of[e.text.as_str()])
            .collect();
        let mut e = embeddings.subset(&indices);
        e.labels = set.examples.iter().map(|e| e.label).collect();
        e
    };
    let shards = partition(
        &train_set,
        scenario.members,
        scenario.partition,
        2,
        scenario.seed,
    )?;
    let keys: Vec<String> = (0..scenario.members).map(member_key).collect();
    let mut rng = Rng::new(scenario.seed ^ 0xA77A_C4ED);
    let mut roles = vec![None; scenario.members];
    for (j, i) in rng
        .choose(scenario.members, scenario.attackers)
        .into_iter()
        .enumerate()
    {
        roles[i] = Some(scenario.attacks[j % scenario.attacks.len()]);
    }
    let slow: Vec<bool> = roles
        .iter()
        .map(|r| *r == Some(AttackKind::SlowLink))
        .collect();
    let links = measured_links(&keys, &slow, &mut rng);
    let train = rows(&train_set);
    let shard_tensors = shards.iter().map(|s| train.tensors(s)).collect();
    Ok(Prepared {
        shard_tensors,
        train,
        test: rows(&test_set),
        shards,
        keys,
        roles,
        links,
    })
}

/// What a run gives.
#[derive(Clone, Debug, PartialEq)]
pub struct Outcome {
    /// Test accuracy of the final global head.
    pub accuracy: f64,
    /// Detection counts over the rounds (zero for defences without detection).
    pub counts: Counts,
    /// Members excluded in each round (empty for defences without detection).
    pub excluded: Vec<Vec<String>>,
    /// Size of one update file in bytes.
    pub update_bytes: usize,
}

fn l2(v: &[f64]) -> f64 {
    v.iter().map(|x| x * x).sum::<f64>().sqrt()
}

/// Runs `scenario.rounds` rounds of `prepared` with `defence`; update files go to `work_dir`.
pub fn run(
    prepared: &Prepared,
    scenario: &Scenario,
    defence: Defence,
    work_dir: &Path,
) -> Result<Outcome> {
    let mut outcomes = run_all(prepared, scenario, &[defence], work_dir)?;
    Ok(outcomes.remove(0))
}

/// Defences whose global heads are still identical, and that head.
struct Group {
    defences: Vec<usize>,
    global: LinearHead,
    previous_change: Vec<f64>,
    /// The sketch history of the evaluated rounds, as `EvaluateRound` keeps it on chain.
    history: pb::SketchHistory,
}

/// What every member submits in one round from one global head.
struct Submissions {
    updates: Vec<bcfl_fed::update::Update>,
    commitments: Vec<pb::Commitment>,
}

fn submissions(
    prepared: &Prepared,
    scenario: &Scenario,
    group: &Group,
    round: usize,
    with_commitments: bool,
) -> Result<Submissions> {
    let global = &group.global;
    let classes = global.classes;
    let global_flat = global.flat();
    let n = prepared.keys.len();
    let mut updates = Vec::with_capacity(n);
    let mut commitments = Vec::with_capacity(n);
    for (i, shard) in prepared.shards.iter().enumerate() {
        let role = prepared.roles[i];
        let mut rng = Rng::new(
            scenario.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ ((round as u64) << 32) ^ i as u64,
        );
        let (delta, loss) = if role.is_none_or(trains) {
            let (x, y) = &prepared.shard_tensors[i];
            let (local, loss) = if role == Some(AttackKind::LabelFlip) {
                let permuted = (y + 1).remainder(classes as i64);
                global.train(x, &permuted, &scenario.local, &mut rng)?
            } else {
                global.train(x, y, &scenario.local, &mut rng)?
            };
            let delta: Vec<f64> = local
                .flat()
                .iter()
                .zip(&global_flat)
                .map(|(a, b)| a - b)
                .collect();
            (delta, loss)
        } else {
            // A free rider trains nothing; the loss it can report is the global head's.
            let loss = global.loss(&prepared.train, shard, |l| l);
            (vec![0.0; global_flat.len()], loss)
        };
        let update = match role {
            // A label flipper's delta is already its attack.
            None | Some(AttackKind::LabelFlip) => delta,
            Some(AttackKind::StaleRider) => group.previous_change.clone(),
            Some(kind) => {
                attack_update(kind, &delta, &mut rng).map_err(|e| Error::Config(e.to_string()))?
            }
        };
        let head_update = global.from_flat(&update).to_update();
        if with_commitments {
            let stats = UpdateStats::new(
                &head_update,
                shard.len() as u64,
                loss,
                scenario.sketch_length,
                round as u64,
            );
            commitments.push(pb::Commitment {
                round: round as u64,
                member: prepared.keys[i].clone(),
                num_samples: stats.samples,
                loss_micro: fixed::saturating_micro(stats.loss),
                norm_micro: fixed::saturating_micro_unsigned(stats.l2_norm),
                sketch: stats.sketch,
                ..Default::default()
            });
        }
        updates.push(head_update);
    }
    Ok(Submissions {
        updates,
        commitments,
    })
}

/// Runs every defence over the same rounds. Defences whose global heads are identical (all of
/// them in round 1; those that exclude the same members with the same rule later) share the
/// members' local training and the commitments, which gives the same result as running each
/// alone, faster.
pub fn run_all(
    prepared: &Prepared,
    scenario: &Scenario,
    defences: &[Defence],
    work_dir: &Path,
) -> Result<Vec<Outcome>> {
    let classes = prepared.train.classes();
    let n = prepared.keys.len();
    let attackers = prepared.attackers();
    let start = LinearHead::zeros(classes, prepared.train.dim);
    let mut outcomes: Vec<Outcome> = defences
        .iter()
        .map(|_| Outcome {
            accuracy: 0.0,
            counts: Counts::default(),
            excluded: Vec::new(),
            update_bytes: 0,
        })
        .collect();
    let mut groups = vec![Group {
        defences: (0..defences.len()).collect(),
        previous_change: vec![0.0; start.flat().len()],
        global: start,
        history: pb::SketchHistory::default(),
    }];
    for round in 1..=scenario.rounds {
        let mut next: Vec<Group> = Vec::new();
        for group in &groups {
            let detects = group
                .defences
                .iter()
                .any(|&d| matches!(defences[d], Defence::Exclusion(_)));
            let round_data = submissions(prepared, scenario, group, round, detects)?;
            let evidence = detects.then(|| {
                MemberData::from_evidence(&round_data.commitments, &prepared.links, &group.history)
            });
            if let Some(data) = evidence
                .as_ref()
                .filter(|_| tracing::enabled!(tracing::Level::DEBUG))
            {
                let column = |f| data.column(f).map(<[f64]>::to_vec).unwrap_or_default();
                let norms = column(pb::Feature::UPDATE_NORM);
                let distances = column(pb::Feature::SKETCH_COSINE_DISTANCE);
                let cumulative = column(pb::Feature::CUMULATIVE_SKETCH_COSINE_DISTANCE);
                for (i, key) in prepared.keys.iter().enumerate() {
                    tracing::debug!(
                        round,
                        member = %key,
                        role = prepared.roles[i].map_or("honest", AttackKind::name),
                        norm = norms[i],
                        cosine_distance = distances[i],
                        cumulative_distance = cumulative[i],
                        "features"
                    );
                }
            }
            // (rule, accepted members) -> the defences that aggregate them.
            let mut plans: Vec<(Rule, Vec<usize>, Vec<usize>)> = Vec::new();
            for &d in &group.defences {
                let accepted: Vec<usize> = match (defences[d], &evidence) {
                    (Defence::Exclusion(detector), Some(data)) => {
                        let verdict = evaluate(&detector.config(&scenario.tuning), data)
                            .map_err(|e| Error::Config(format!("anomaly evaluation: {e}")))?;
                        outcomes[d].counts.add(&verdict.excluded, &attackers);
                        let kept = (0..n)
                            .filter(|&i| verdict.excluded.binary_search(&prepared.keys[i]).is_err())
                            .collect();
                        outcomes[d].excluded.push(verdict.excluded);
                        kept
                    }
                    _ => (0..n).collect(),
                };
                let r = defences[d].rule(attackers.len(), n);
                match plans.iter_mut().find(|p| p.0 == r && p.1 == accepted) {
                    Some(plan) => plan.2.push(d),
                    None => plans.push((r, accepted, vec![d])),
                }
            }
            for (r, accepted, members_of_plan) in plans {
                let mut global = group.global.clone();
                let mut previous_change = group.previous_change.clone();
                if !accepted.is_empty() {
                    let mut contributions = Vec::with_capacity(accepted.len());
                    for &i in &accepted {
                        let bytes = round_data.updates[i].to_bytes(Encoding::F32);
                        for &d in &members_of_plan {
                            outcomes[d].update_bytes = bytes.len();
                        }
                        let path = work_dir.join(format!("{}.safetensors", prepared.keys[i]));
                        std::fs::write(&path, &bytes).map_err(|e| Error::io(&path, e))?;
                        contributions.push(Contribution {
                            member: prepared.keys[i].clone(),
                            path,
                            samples: prepared.shards[i].len() as u64,
                        });
                    }
                    let combined = aggregate(contributions, r)?;
                    let change =
                        LinearHead::from_update(&combined.update, classes, prepared.train.dim)?
                            .flat();
                    if l2(&change).is_finite() {
                        global = global.plus(&change);
                        previous_change = change;
                    }
                }
                // The sums and the consensus as `EvaluateRound` would store them with this plan's
                // accepted members as the verdict.
                let history = if detects {
                    let keys: Vec<String> =
                        accepted.iter().map(|&i| prepared.keys[i].clone()).collect();
                    extend_after_verdict(
                        &group.history,
                        round as u64,
                        &round_data.commitments,
                        &keys,
                    )
                } else {
                    group.history.clone()
                };
                next.push(Group {
                    defences: members_of_plan,
                    global,
                    previous_change,
                    history,
                });
            }
        }
        groups = next;
    }
    for group in &groups {
        let accuracy = group.global.accuracy(&prepared.test);
        for &d in &group.defences {
            outcomes[d].accuracy = accuracy;
        }
    }
    Ok(outcomes)
}

/// The clean centralized reference: the head trained on the whole training split for
/// `rounds x epochs` epochs with the same local settings.
pub fn centralized(prepared: &Prepared, scenario: &Scenario) -> Result<f64> {
    let all: Vec<usize> = (0..prepared.train.len()).collect();
    let config = LocalConfig {
        epochs: scenario.local.epochs * scenario.rounds,
        ..scenario.local
    };
    let start = LinearHead::zeros(prepared.train.classes(), prepared.train.dim);
    let (x, y) = prepared.train.tensors(&all);
    let (head, _) = start.train(&x, &y, &config, &mut Rng::new(scenario.seed))?;
    Ok(head.accuracy(&prepared.test))
}
