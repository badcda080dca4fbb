//! One federated run with attackers, on the round library: every defence is a consortium of
//! its own, run by [`simulate`] (the real member, aggregator and coordinator roles over the
//! in-memory ledger that applies the processor's rules).
//!
//! How the experiment maps onto the round library:
//!
//! | experiment | round library |
//! | --- | --- |
//! | a member training the head on its shard | a [`SimulatedMember`] whose [`Trainer`](crate::round::model::Trainer) is a [`HeadTrainer`] (the update is the head's two tensors) |
//! | label flip | the member's trainer trains on shifted labels ([`HeadTrainer::label_flipped`]) |
//! | sign flip, scale, noise, free rider, stale rider | the member's `attack`, applied by [`crate::demo::attack::ApplyAttack`] to what it trained |
//! | ALIE, IPM, min-max, min-sum (colluding) | the member's `attack`: the simulation tells the colluders each other's keys; each waits for the honest members' commitments, fetches their updates from their blob servers and sends [`crate::demo::attack::collude`]'s update |
//! | slow link | the member's links are [`SLOW_LINK_FACTOR`](bcfl_processor::anomaly::attack::SLOW_LINK_FACTOR) times slower in the reported measurements |
//! | the evidence | the members' own commitments (norm, sketch of length `sketch_length`, last epoch's loss, sample count, as [`crate::round::member`] computes them) and the measured links, which each member reports through `ReportBandwidth` before round 1 ([`crate::round::simulation`]: on loopback, probes would measure one machine) |
//! | detection | the `EvaluateRound` verdict, computed by the processor from that evidence with the consortium's anomaly configuration ([`Defence::params`]) |
//! | exclusion and aggregation | the aggregator fetches the accepted updates, checks them against their commitments and aggregates with the consortium's rule ([`bcfl_fed::rule::Rule`]) |
//!
//! The links are simulated rather than probed because every member of a simulation listens
//! on loopback: the processor's [`measured_links`] draws log-normal bandwidths around 100 MB/s
//! (slow-link attackers' 100 times slower), and the members report them as they would report
//! probes. The final global model on chain is scored on the held-out rows.
//!
//! Each defence runs its own consortium, so members train again for every defence (the old
//! experiment shared the training of defences whose global models had not diverged; on the
//! round library each consortium is independent, as it would be in reality). [`run_all`]
//! runs the defences' consortia concurrently.

use std::path::Path;

use bcfl_processor::anomaly::attack::AttackKind;
use bcfl_processor::anomaly::simulate::{measured_links, Counts, Rng};
use bcfl_protos::bcfl as pb;

use super::super::data::Dataset;
use super::super::split::{partition, train_test_split, Partition};
use super::super::{Error, Result};
use super::detect::{Detector, Tuning};
use super::embed::Embeddings;
use super::head::{HeadTrainer, LinearHead, LocalConfig};
use crate::demo::attack::CollusionNoise;
use crate::round::coordinator::CoordinatorConfig;
use crate::round::simulation::{simulate, SimulatedMember, SimulationConfig};
use bcfl_fed::rule::Rule;
use bcfl_fed::update::Encoding;

/// Member key of member `i` (sorts like `i`).
pub fn member_key(i: usize) -> String {
    format!("client-{i:03}")
}

/// How the round's updates are combined (the bench compares all of them, [`super::bench::defences`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Defence {
    /// FedAvg of every update: a consortium without anomaly detection.
    None,
    /// FedAvg of the updates the detector's on-chain verdict accepts.
    Exclusion(Detector),
    /// The trimmed mean of the updates the detector's on-chain verdict accepts, trimming the
    /// rule's default 10 % at each end (a consortium does not know how many attack, and the
    /// verdict has excluded those it found): a consortium with both an anomaly configuration
    /// and a robust rule.
    ExclusionTrimmed(Detector),
    /// Krum with `f` = the number of attackers.
    Krum,
    /// Multi-Krum with `f` = the number of attackers, averaging the `members - f` best.
    MultiKrum,
    /// Coordinate-wise trimmed mean trimming the attackers' fraction (at least 10 %) at each end.
    TrimmedMean,
    /// Coordinate-wise median.
    Median,
}

impl Defence {
    /// The rule that combines the updates it keeps, with `attackers` of `members` attacking:
    /// Krum and Multi-Krum with `f` = the attackers (at most `(members - 3) / 2`, the most the
    /// processor accepts for a quorum of `members`; Multi-Krum averaging `members - f`), the
    /// trimmed mean trimming the attackers' fraction (within 10 % to 45 %; after an exclusion,
    /// 10 %), the median, FedAvg otherwise.
    pub fn rule(self, attackers: usize, members: usize) -> Rule {
        let f = attackers.min(members.saturating_sub(3) / 2);
        match self {
            Defence::Krum => Rule::Krum { f },
            Defence::MultiKrum => Rule::MultiKrum {
                f,
                k: members.saturating_sub(f).max(1),
            },
            Defence::Median => Rule::Median,
            Defence::TrimmedMean => Rule::TrimmedMean {
                trim: (attackers as f64 / members as f64).clamp(0.1, 0.45),
            },
            Defence::ExclusionTrimmed(_) => Rule::TrimmedMean {
                trim: bcfl_fed::rule::DEFAULT_TRIM,
            },
            Defence::None | Defence::Exclusion(_) => Rule::FedAvg,
        }
    }

    /// The name of this defence's detection row: its detector's (`both`), with
    /// `_trimmed_mean` after an exclusion the trimmed mean aggregates (whose later verdicts see
    /// other global models); `None` for a defence without a verdict.
    pub fn detection_name(self) -> Option<String> {
        match self {
            Defence::Exclusion(d) => Some(d.name().to_owned()),
            Defence::ExclusionTrimmed(d) => Some(format!("{}_trimmed_mean", d.name())),
            _ => None,
        }
    }

    /// The detector whose on-chain verdict excludes updates, if any.
    pub fn detector(self) -> Option<Detector> {
        match self {
            Defence::Exclusion(d) | Defence::ExclusionTrimmed(d) => Some(d),
            _ => None,
        }
    }

    /// A short name: `no_defence`, `exclude_<detector>`, `exclude_<detector>_trimmed_mean`,
    /// `krum`, `multi_krum`, `trimmed_mean`, `median`.
    pub fn name(self) -> String {
        match self {
            Defence::None => "no_defence".into(),
            Defence::Exclusion(d) => format!("exclude_{}", d.name()),
            Defence::ExclusionTrimmed(d) => format!("exclude_{}_trimmed_mean", d.name()),
            Defence::Krum => "krum".into(),
            Defence::MultiKrum => "multi_krum".into(),
            Defence::TrimmedMean => "trimmed_mean".into(),
            Defence::Median => "median".into(),
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
    /// Coordinates each commitment samples (0: none).
    pub coordinate_samples: usize,
    /// Sketches come after the commitments (`sketch_after_commit`).
    pub sketch_after_commit: bool,
    /// The detectors' features, DBSCAN radius and neighbourhood size, z-score threshold.
    pub tuning: Tuning,
    /// Fraction of the data held out for testing.
    pub test_fraction: f64,
    /// Seeds the split, the shards, the attackers, the links, the members' keys and training.
    pub seed: u64,
    /// How far each colluding attacker moves its copy of the crafted update.
    pub collusion_noise: CollusionNoise,
    /// Adaptive attackers hide from another projection than the round's
    /// ([`crate::round::member::MemberConfig::blind_projection`]).
    pub blind_projection: bool,
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

    /// The honest members alone: the attackers, their shards and their links left out. This is
    /// the best any exclusion can do, since no defence recovers what the attackers' data would
    /// have taught (the attackers-absent reference of [`super::bench`]).
    pub fn honest_only(&self) -> Self {
        let keep: Vec<usize> = (0..self.keys.len())
            .filter(|&i| self.roles[i].is_none())
            .collect();
        let keys: Vec<String> = keep.iter().map(|&i| self.keys[i].clone()).collect();
        let kept = |key: &str| keys.binary_search_by(|k| k.as_str().cmp(key)).is_ok();
        let links = self
            .links
            .iter()
            .filter(|l| kept(&l.from) && kept(&l.to))
            .cloned()
            .collect();
        Self {
            train: self.train.clone(),
            test: self.test.clone(),
            shards: keep.iter().map(|&i| self.shards[i].clone()).collect(),
            roles: vec![None; keys.len()],
            keys,
            links,
        }
    }

    /// The same members, all honest (the clean run).
    pub fn clean(&self) -> Self {
        Self {
            train: self.train.clone(),
            test: self.test.clone(),
            shards: self.shards.clone(),
            keys: self.keys.clone(),
            roles: vec![None; self.roles.len()],
            links: self.links.clone(),
        }
    }
}

/// Rows of the held-out split the mislabelled-change method's reference is taken from
/// ([`Prepared::reference_steps`]).
pub const ROOT_SET_ROWS: usize = 500;

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
    Ok(Prepared {
        train: rows(&train_set),
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
    /// Detection counts over the rounds, from the on-chain verdicts (zero without detection).
    pub counts: Counts,
    /// Members flagged in each round, by name (empty without detection): excluded by the
    /// round's verdict, or accepted by it and withdrawn by the next one's.
    pub excluded: Vec<Vec<String>>,
    /// Of those, the member-rounds withdrawn by the next round's verdict.
    pub withdrawn: usize,
    /// Size of one update blob in bytes.
    pub update_bytes: usize,
}

impl Prepared {
    /// The consortium's reference for the mislabelled-change method
    /// ([`bcfl_fed::reference`]) at `count` sampled coordinates, its rows taken as `kind` says
    /// ([`super::head::reference_directions`]) from the [`Self::root_set`] of
    /// [`ROOT_SET_ROWS`] held-out rows drawn with `seed` (the scenario's). They are rows of
    /// the test split, which the accuracy is measured on too; no member trains on them, and the
    /// reference holds only the directions taken from them.
    pub fn reference_steps(
        &self,
        seed: u64,
        count: usize,
        kind: super::head::ReferenceDirections,
    ) -> Result<Vec<u8>> {
        let (classes, dim) = (self.train.classes(), self.train.dim);
        let rows = super::head::reference_directions(
            &self.test,
            &self.root_set(seed, ROOT_SET_ROWS),
            kind,
        )?;
        let template = LinearHead::zeros(classes, dim).to_update();
        let reference = bcfl_fed::reference::head_reference(&template, super::head::WEIGHT, &rows)?;
        // The head is the whole update here: every scope samples the same positions.
        Ok(bcfl_fed::reference::reference_steps(
            &reference,
            count,
            bcfl_fed::sketch::CoordinateScope::EVERY_TENSOR,
        )?)
    }

    /// A stratified root set of about `size` held-out rows (indices into the test split): as
    /// many of each class as it holds up to an equal share, drawn with `seed`.
    pub fn root_set(&self, seed: u64, size: usize) -> Vec<usize> {
        let classes = self.train.classes();
        let mut rng = Rng::new(seed ^ 0x5EED);
        let mut root = Vec::new();
        for class in 0..classes {
            let rows: Vec<usize> = (0..self.test.len())
                .filter(|&i| self.test.labels[i] == class)
                .collect();
            let picked = rng.choose(rows.len(), (size / classes).min(rows.len()));
            root.extend(picked.into_iter().map(|j| rows[j]));
        }
        root
    }

    /// What the consortium records as its frozen base: the members share no encoder, only
    /// the embeddings it produced, so the SHA-256 of the training rows' values stands for it.
    pub fn base_sha256(&self) -> String {
        let bytes: Vec<u8> = self
            .train
            .values
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        bcfl_fed::digest::sha256_hex(&bytes)
    }

    /// The simulated members: each trains the head on its shard ([`HeadTrainer`], on shifted
    /// labels for a label flipper) and attacks as its role says.
    pub fn members(&self, scenario: &Scenario) -> Result<Vec<SimulatedMember>> {
        self.keys
            .iter()
            .zip(&self.shards)
            .zip(&self.roles)
            .map(|((name, shard), role)| {
                let trainer = HeadTrainer::new(self.train.subset(shard), None, scenario.local)?;
                let trainer = match role {
                    Some(AttackKind::LabelFlip) => trainer.label_flipped(),
                    _ => trainer,
                };
                Ok(SimulatedMember {
                    name: name.clone(),
                    trainer: Box::new(trainer),
                    attack: *role,
                    slowdown: 0.0,
                    // No caps: the benchmark measures what the anomaly methods catch of a
                    // claim FedAvg trusts (`inflated-samples`).
                    max_samples: 0,
                })
            })
            .collect()
    }
}

impl Defence {
    /// The consortium's parameters for this defence with `attackers` of `members` attacking:
    /// every member must commit, [`Self::rule`] aggregates, and only an exclusion defence has
    /// an anomaly configuration (its detector's, with `tuning`).
    /// `base_sha256` stands for the frozen base model ([`Prepared::base_sha256`]).
    pub fn params(
        self,
        attackers: usize,
        members: usize,
        scenario: &Scenario,
        base_sha256: &str,
    ) -> Result<pb::ConsortiumParams> {
        let n = u32::try_from(members)
            .map_err(|_| Error::Config(format!("{members} members do not fit on chain")))?;
        let mut params = pb::ConsortiumParams {
            min_participants: n,
            commit_quorum: n,
            model_id: "linear head over frozen embeddings".into(),
            base_model_sha256: base_sha256.to_owned(),
            sketch_length: scenario.sketch_length as u32,
            coordinate_samples: u32::try_from(scenario.coordinate_samples).map_err(|_| {
                Error::Config(format!(
                    "{} sampled coordinates do not fit on chain",
                    scenario.coordinate_samples
                ))
            })?,
            sketch_after_commit: scenario.sketch_after_commit,
            ..Default::default()
        };
        self.rule(attackers, members)
            .write_params(&mut params)
            .map_err(|e| Error::Config(e.to_string()))?;
        if let Some(detector) = self.detector() {
            params.set_anomaly(detector.config(&scenario.tuning));
        }
        Ok(params)
    }
}

/// Runs `scenario.rounds` rounds of `prepared` with `defence` on the round library (see the
/// module docs); blob stores go under `work_dir`.
pub async fn run(
    prepared: &Prepared,
    scenario: &Scenario,
    defence: Defence,
    work_dir: &Path,
) -> Result<Outcome> {
    let n = prepared.keys.len();
    let attackers = prepared.attackers();
    let classes = prepared.train.classes();
    let dim = prepared.train.dim;
    let mut params = defence.params(attackers.len(), n, scenario, &prepared.base_sha256())?;
    if params.get_anomaly().has_mislabelled() {
        params.mut_anomaly().mut_mislabelled().reference_steps = prepared.reference_steps(
            scenario.seed,
            scenario.coordinate_samples,
            scenario.tuning.mislabelled_reference,
        )?;
    }
    let config = SimulationConfig {
        params,
        schedule: CoordinatorConfig::new(scenario.rounds as u64),
        initial: LinearHead::zeros(classes, dim).to_update(),
        encoding: Encoding::F32,
        seed: scenario.seed,
        work_dir: work_dir.to_path_buf(),
        first_scores: false,
        links: prepared.links.clone(),
        collusion_noise: scenario.collusion_noise,
        blind_projection: scenario.blind_projection,
    };
    let outcome = simulate(config, prepared.members(scenario)?, |_| {})
        .await
        .map_err(|e| Error::Round(format!("{e:#}")))?;
    let name_of = |key: &str| outcome.name_of(key);
    let mut counts = Counts::default();
    let mut excluded = Vec::new();
    let mut withdrawn = 0;
    if defence.detector().is_some() {
        for round in 1..=scenario.rounds as u64 {
            let verdict = outcome.state.verdicts.get(&round).ok_or_else(|| {
                Error::Round(format!(
                    "{} left round {round} without a verdict",
                    defence.name()
                ))
            })?;
            // A commitment the next verdict withdrew was flagged, one round late.
            let late = outcome
                .state
                .verdicts
                .get(&(round + 1))
                .map(|next| next.withdrawn_members())
                .unwrap_or_default();
            withdrawn += late.len();
            let mut names: Vec<String> = verdict
                .excluded
                .iter()
                .chain(&late)
                .map(|k| name_of(k))
                .collect();
            names.sort();
            counts.add(&names, &attackers);
            excluded.push(names);
        }
    }
    if defence.detector().is_some() && tracing::enabled!(tracing::Level::DEBUG) {
        trace_verdicts(&outcome, &name_of, defence, scenario, &attackers);
    }
    let update_bytes = outcome
        .state
        .commitments
        .values()
        .next()
        .map_or(0, |c| c.size_bytes as usize);
    let global = LinearHead::from_update(&outcome.global, classes, dim)?;
    Ok(Outcome {
        accuracy: global.accuracy(&prepared.test),
        counts,
        excluded,
        withdrawn,
        update_bytes,
    })
}

/// Logs (at debug level) each round's evidence and verdict, to see where a detector errs:
/// every scored member's update norm, cumulative sketch distance and coordinate sign balance
/// (recomputed from the final state, replaying the sketch history as an auditor does), the
/// methods that flagged it, its nearest sketch distance, its distance to the previous change
/// the cosine of its change with its own previous one, its move response, its reference
/// margin, the samples it claimed, its norm's residual from the line the round's norms fit
/// against their sample counts and its sketch's cosine with the others' summed sketches; a `!`
/// marks the attackers. Flags: `p` PageRank, `d` DBSCAN, `z`
/// the z-score, `c` the duplicate method (a copy), `u` the unchanged-update, `r` the
/// resent-change, `i` the inconsistent-change, `o` the opposed-change, `a` the ascent, `l` the
/// mislabelled-change, `x` the oversized-update and `m` the mean-copy method; `w` marks a
/// member whose previous update this verdict withdrew.
fn trace_verdicts(
    outcome: &crate::round::simulation::SimulationOutcome,
    name_of: &dyn Fn(&str) -> String,
    defence: Defence,
    scenario: &Scenario,
    attackers: &[String],
) {
    use bcfl_processor::anomaly::features::{configure, extend_after_verdict};
    use bcfl_processor::anomaly::{member_scores, MemberData};
    let state = &outcome.state;
    let links: Vec<pb::Link> = state.links.values().cloned().collect();
    let mut history = pb::SketchHistory::default();
    configure(&mut history, state.anomaly_config());
    for (&round, verdict) in &state.verdicts {
        let scored = verdict.scored();
        let commitments: Vec<pb::Commitment> = state
            .commitments
            .range((round, String::new())..(round + 1, String::new()))
            .map(|(_, c)| c.clone())
            .filter(|c| scored.binary_search(&c.member).is_ok())
            .collect();
        // The state holds every commitment the history names.
        history.previous = state
            .previous_commitments(&history)
            .unwrap_or_default()
            .into();
        let data = MemberData::from_evidence(&commitments, &links, &history, 0);
        let column = |f: pb::Feature| data.column(f).map(<[f64]>::to_vec).unwrap_or_default();
        let norms = column(pb::Feature::UPDATE_NORM);
        let cumulative = column(pb::Feature::CUMULATIVE_SKETCH_COSINE_DISTANCE);
        let balances = column(pb::Feature::COORDINATE_SIGN_BALANCE);
        let previous = column(pb::Feature::PREVIOUS_CHANGE_DISTANCE);
        let own = column(pb::Feature::OWN_CHANGE_COSINE);
        let response = column(pb::Feature::MOVE_RESPONSE);
        let margin = column(pb::Feature::REFERENCE_MARGIN);
        let samples = column(pb::Feature::SAMPLE_COUNT);
        let residuals = bcfl_processor::anomaly::features::sample_norm_residuals(&norms, &samples);
        let values: Vec<Vec<i32>> = commitments
            .iter()
            .map(pb::Commitment::sketch_values)
            .collect();
        let sketches: Vec<&[i32]> = values.iter().map(|v| &v[..]).collect();
        let others_mean = bcfl_processor::anomaly::features::others_mean_cosines(&sketches, &norms);
        let nearest = bcfl_processor::anomaly::features::nearest_sketch_cosine_distances(&sketches);
        let mut flags = vec![String::new(); scored.len()];
        for method in &verdict.methods {
            let letter = match method.method {
                pb::AnomalyMethod::PAGERANK => 'p',
                pb::AnomalyMethod::DBSCAN => 'd',
                pb::AnomalyMethod::DUPLICATE => 'c',
                pb::AnomalyMethod::UNCHANGED => 'u',
                pb::AnomalyMethod::RESENT => 'r',
                pb::AnomalyMethod::INCONSISTENT => 'i',
                pb::AnomalyMethod::OPPOSED => 'o',
                pb::AnomalyMethod::ASCENT => 'a',
                pb::AnomalyMethod::MISLABELLED => 'l',
                pb::AnomalyMethod::OVERSIZED => 'x',
                pb::AnomalyMethod::MEAN_COPY => 'm',
                _ => 'z',
            };
            for (i, m) in member_scores(&scored, method).enumerate() {
                if m.flagged {
                    flags[i].push(letter);
                }
            }
        }
        for &i in &verdict.withdrawn {
            if let Some(f) = flags.get_mut(i as usize) {
                f.push('w');
            }
        }
        let members: Vec<String> = data
            .members()
            .iter()
            .enumerate()
            .map(|(i, key)| {
                let name = name_of(key);
                format!(
                    "{}{}={:.6}/{:.6}/{:.4}/{}/{:.6}/{:.6}/{:.4}/{:.4}/{:.4}/{}/{:.4}/{:.4}",
                    name.trim_start_matches("client-"),
                    if attackers.contains(&name) { "!" } else { "" },
                    norms.get(i).copied().unwrap_or(0.0),
                    cumulative.get(i).copied().unwrap_or(0.0),
                    balances.get(i).copied().unwrap_or(0.0),
                    flags.get(i).map_or("", String::as_str),
                    nearest.get(i).copied().unwrap_or(0.0),
                    previous.get(i).copied().unwrap_or(0.0),
                    own.get(i).copied().unwrap_or(0.0),
                    response.get(i).copied().unwrap_or(0.0),
                    margin.get(i).copied().unwrap_or(0.0),
                    samples.get(i).copied().unwrap_or(0.0),
                    residuals.get(i).copied().unwrap_or(0.0),
                    others_mean.get(i).copied().unwrap_or(0.0),
                )
            })
            .collect();
        tracing::debug!(
            defence = %defence.name(),
            seed = scenario.seed,
            round,
            members = %members.join(" "),
            "verdict"
        );
        history = extend_after_verdict(
            &history,
            round,
            &commitments,
            &verdict.accepted,
            &verdict.withdrawn_members(),
        );
    }
}

/// Runs every defence's consortium over the same members, concurrently (each in its own
/// folder under `work_dir`); the outcomes in `defences` order.
pub async fn run_all(
    prepared: &Prepared,
    scenario: &Scenario,
    defences: &[Defence],
    work_dir: &Path,
) -> Result<Vec<Outcome>> {
    let runs = defences.iter().enumerate().map(|(i, &defence)| {
        let dir = work_dir.join(format!("{}-{i}-{}", scenario.seed, defence.name()));
        async move { run(prepared, scenario, defence, &dir).await }
    });
    let outcomes = futures_util::future::try_join_all(runs).await;
    for (i, defence) in defences.iter().enumerate() {
        let dir = work_dir.join(format!("{}-{i}-{}", scenario.seed, defence.name()));
        let _ = std::fs::remove_dir_all(dir);
    }
    outcomes
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
