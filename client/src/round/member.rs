//! The member and aggregator roles of a node, driven by the ledger state.
//!
//! [`Member::tick`] looks at the family state and does what the current round's phase asks of
//! this member, each step idempotent (a restarted node redoes only what the ledger does not
//! show as done):
//!
//! - **global model**: every aggregate on chain since the node started (from the newest one
//!   then, so a node that starts late does not fetch the history) is fetched in round order
//!   (from the aggregator or anyone holding it, along routes over the measured links), checked
//!   against its on-chain SHA-256, loaded and, with a held-out file, scored. A node busy for
//!   longer than a round (scoring, training) so still holds, and scores, every round's model;
//!   following only the newest skipped the ones that went by meanwhile;
//! - **OPEN**: probe the other members once per round and report the links; train (unless it
//!   is the central aggregator of a server-mode round, which only aggregates) from the
//!   round's parent model (checked against the chain), write the update blob, commit its hash,
//!   size, sample count, loss, norm and sketch (no sketch when the consortium's sketches come
//!   after the commitments). In a buffered-asynchronous round an update that
//!   finishes after its round was aggregated is committed to the round open then, with its
//!   `base_round` (the processor refuses it past the round's staleness bound); in a synchronous
//!   round a late update is dropped;
//! - **SEALED** (sketches after the commitments): reveal the sketch of its committed change,
//!   recomputed from its own blob with the seed the round drew (`RevealSketch`);
//! - as **aggregator**: when the round is due for evaluation (every active member committed, or
//!   K in a buffered round, or the commit deadline with the quorum), seal it first when the
//!   consortium's sketches come after the commitments (`SealRound`) and wait until every
//!   committer revealed or the commit timeout passed again; then fetch every committed
//!   update, recompute its size, norm and sketch ([`bcfl_fed::verify`]) and dispute each
//!   commitment they contradict (`DisputeCommitment`: the verdict then excludes that member
//!   unscored); evaluate; fetch every accepted update along Bellman-Ford routes without the
//!   excluded members, check each against its commitment, aggregate with the consortium's rule
//!   (stale updates rebased onto the round's parent and down-weighted), commit the aggregate,
//!   distribute it along the shortest-path tree, and close the round once its verifier
//!   committee has made it FINAL or CONTESTED (the coordinator closes it unverified at its
//!   deadline);
//! - on the **verifier committee** of a round's aggregate: fetch the accepted updates, recompute
//!   the aggregate with the same [`AggregatePlan`], recheck every disputed commitment, and
//!   attest the hash (`AttestAggregate`), naming any dispute that does not hold. A CONTESTED
//!   global model is never loaded.
//!
//! Every step appends a [`NodeEvent`] to the node's report (time, bytes, peak memory).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bcfl_processor::graph::{BandwidthGraph, Routing, TransferModel};
use bcfl_protos::bcfl as pb;

use super::error::chain;
use super::ledger::Ledger;
use super::model::Trainer;
pub use super::payload::commit_payload;
use super::replay::{committed_shape, stats_shape, AggregatePlan};
use super::report::{NodeEvent, Report};
use super::schedule;
use super::{Error, Result};
use crate::demo::attack::{ApplyAttack, AttackKind, Known};
use bcfl_fed::sketch::UpdateStats;
use bcfl_fed::update::{sha256_hex, Encoding, Update};
use bcfl_fed::verify;
use bcfl_ledger::keys::Signer;
use bcfl_ledger::state::FamilyState;
use bcfl_net::auth::PeerClient;
use bcfl_net::manifest::BlobId;
use bcfl_net::probe::{ledger_peers, report_payload, sweep, ProbeConfig};
use bcfl_net::route::{distribute, fetch_routed, pull, Peers, RoutePolicy};
use bcfl_net::transfer::Transfers;

/// What a blind adaptive attacker ([`MemberConfig::blind_projection`]) takes for the round's
/// sketch seed: the round plus this, a projection that shares nothing with the round's.
pub const BLIND_PROJECTION_OFFSET: u64 = 1 << 32;

/// When this node first saw `round` in the phase `slot` tracks: the instant kept there, or now
/// (kept) when the slot holds another round.
fn first_seen(slot: &mut Option<(u64, Instant)>, round: u64) -> Instant {
    match *slot {
        Some((n, at)) if n == round => at,
        _ => {
            let now = Instant::now();
            *slot = Some((round, now));
            now
        }
    }
}

/// Chunk size of the members' stores: the unit relays verify and forward.
pub const CHUNK_SIZE: u64 = 64 << 10;

/// Re-routes a failed fetch this many times before giving up.
const FETCH_ATTEMPTS: usize = 3;

/// How a member behaves, besides its model and data.
#[derive(Debug, Clone)]
pub struct MemberConfig {
    /// Display name in logs and reports.
    pub name: String,
    /// Bandwidth probes.
    pub probe: ProbeConfig,
    /// Probe every this many rounds (0: never).
    pub probe_every: u64,
    /// As aggregator: how long to wait for every member before evaluating with the quorum.
    pub commit_timeout: Duration,
    /// Seed of local training (mixed with the round and the member's key).
    pub seed: u64,
    /// Testing misbehaviour: the kinds that replace an update
    /// ([`ApplyAttack::replaces_update`]) replace what this member trained before it is
    /// committed. A label flip or a slow link leaves the update as trained: whoever builds the
    /// member gives it a trainer on shifted labels or slow links (the attack experiments do).
    pub attack: Option<crate::demo::attack::AttackKind>,
    /// A colluding attacker's fellow attackers (public keys; its own may be among them): it
    /// waits for every other member expected to train, and crafts its update from theirs.
    pub colluders: BTreeSet<String>,
    /// How far a colluding attacker moves its copy of the crafted update, with noise of its
    /// own seed (0: the copy every colluder sends).
    pub collusion_noise: crate::demo::attack::CollusionNoise,
    /// Experiments: an adaptive attacker (`hidden-reversal`) hides from another projection than
    /// the round's, as it has to when sketches come after the commitments (an emulation of
    /// `sketch_after_commit` without its extra phase); see [`BLIND_PROJECTION_OFFSET`].
    pub blind_projection: bool,
    /// Extra time after training, as a multiple of the training time (0: none): a slower
    /// member, for experiments with heterogeneous speeds.
    pub slowdown: f64,
    /// Stop once the global model of this round is held (or the round closed without one).
    pub until_round: Option<u64>,
    /// How update blobs are encoded.
    pub encoding: Encoding,
}

/// What a tick did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberStatus {
    /// Keep following the ledger.
    Working,
    /// `until_round` is reached.
    Finished,
}

/// A member node's roles.
pub struct Member<L> {
    ledger: Arc<L>,
    signer: Signer,
    key: String,
    config: MemberConfig,
    transfers: Arc<Transfers>,
    http: PeerClient,
    model: Arc<dyn Trainer>,
    initial: Option<PathBuf>,
    report: Report,
    /// Rounds whose global model this member holds, loaded and scored.
    loaded: BTreeSet<u64>,
    /// The first round whose aggregate this member follows: the newest on chain when it first
    /// saw the consortium (1 when there was none yet).
    follow_from: Option<u64>,
    /// Rounds this member probed for.
    probed: BTreeSet<u64>,
    /// When this node first saw each round OPEN (the aggregator's deadline).
    open_since: Option<(u64, Instant)>,
    /// When this node first saw each round SEALED (the aggregator's reveal deadline).
    sealed_since: Option<(u64, Instant)>,
    /// The last round this member revealed its sketch to (or had its reveal refused in); an
    /// error on the way (its own blob unreadable, the ledger unreachable) is retried.
    revealed: Option<u64>,
    /// A round whose training failed (not retried until the next round).
    failed: Option<u64>,
    /// Global models held but not scored yet: (round, SHA-256, tensors).
    unscored: Vec<(u64, String, Update)>,
    /// Scoring running in the background.
    scoring: Vec<tokio::task::JoinHandle<()>>,
    /// Rounds whose commitments this member checked as aggregator.
    checked: BTreeSet<u64>,
    /// Rounds whose aggregate this member distributed.
    distributed: BTreeSet<u64>,
    /// Rounds this member attested (or whose attestation the ledger refused).
    attested: BTreeSet<u64>,
}

/// Runs `job` on the blocking pool (training, aggregation and scoring keep the async runtime,
/// and so the node's blob server, free).
async fn blocking<T: Send + 'static>(
    job: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(job).await?
}

fn routing_graph(
    state: &FamilyState,
    round: &pb::Round,
    removed: &BTreeSet<String>,
) -> Result<BandwidthGraph> {
    Ok(super::schedule::routing_graph(
        state.links.values(),
        round,
        removed,
    )?)
}

/// Routes for a blob of `size` bytes (on chain; unknown: costed as one chunk, and bounded by
/// the node's largest blob only).
fn policy(size: Option<u64>) -> Result<RoutePolicy> {
    let cost = size.unwrap_or(CHUNK_SIZE);
    Ok(RoutePolicy {
        routing: Routing::Shortest,
        model: TransferModel::new(cost.max(1) as f64, CHUNK_SIZE as f64)?,
        max_attempts: FETCH_ATTEMPTS,
        expected_size: size,
    })
}

impl<L: Ledger> Member<L> {
    /// A member signing with `signer`, serving and fetching through `transfers`; `initial` is
    /// the package's initial model file (round 1's parent), inserted into the store when the
    /// chain names it.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        ledger: Arc<L>,
        signer: Signer,
        config: MemberConfig,
        transfers: Arc<Transfers>,
        http: PeerClient,
        model: Box<dyn Trainer>,
        initial: Option<PathBuf>,
        report: Report,
    ) -> Self {
        // Chains that name this member are loops: its server refuses them.
        transfers.registry().set_me(signer.public_key().as_hex());
        Self {
            key: signer.public_key().as_hex().to_owned(),
            ledger,
            signer,
            config,
            transfers,
            http,
            model: Arc::from(model),
            scoring: Vec::new(),
            initial,
            report,
            loaded: BTreeSet::new(),
            follow_from: None,
            probed: BTreeSet::new(),
            open_since: None,
            sealed_since: None,
            revealed: None,
            failed: None,
            unscored: Vec::new(),
            checked: BTreeSet::new(),
            distributed: BTreeSet::new(),
            attested: BTreeSet::new(),
        }
    }

    /// This member's public key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Its report.
    pub fn report(&self) -> &Report {
        &self.report
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.config.name
    }

    fn event(&self, round: u64, phase: &str, started: Instant, bytes: u64) -> NodeEvent {
        NodeEvent::new(&self.config.name, &self.key, round, phase, started, bytes)
    }

    /// One look at the ledger; see the module docs.
    pub async fn tick(&mut self, state: &FamilyState) -> Result<MemberStatus> {
        // The server relays and pulls only from the members registered now.
        self.transfers.registry().update_from_state(state);
        let Some(consortium) = &state.consortium else {
            return Ok(MemberStatus::Working);
        };
        let active = state
            .members
            .get(&self.key)
            .is_some_and(|m| m.status == pb::MemberStatus::ACTIVE);
        if !active {
            return Ok(MemberStatus::Working);
        }
        self.score_initial(state).await;
        self.follow_global(state).await?;
        self.attest_due(state).await;
        if let Some(until) = self.config.until_round {
            let done = state.rounds.get(&until).is_some_and(|r| {
                r.phase == pb::RoundPhase::CLOSED
                    && (!state.aggregates.contains_key(&until) || self.loaded.contains(&until))
            });
            if done {
                self.score_pending();
                self.scores_done().await;
                return Ok(MemberStatus::Finished);
            }
        }
        let current = consortium.current_round;
        let Some(round) = state.rounds.get(&current) else {
            return Ok(MemberStatus::Working);
        };
        let aggregator = round.aggregator == self.key;
        match round.phase {
            pb::RoundPhase::OPEN => {
                self.probe(state, current).await;
                let committed = state.commitments.contains_key(&(current, self.key.clone()));
                // In server mode the central aggregator only aggregates (the papers' baseline).
                let server = aggregator && round.mode == pb::RoundMode::SERVER;
                // A sampling consortium trains only the members the ledger drew.
                let drawn = schedule::drawn(round, &self.key);
                if !committed
                    && !server
                    && drawn
                    && self.failed != Some(current)
                    && self.colluders_may_commit(state, round, current)
                {
                    if let Err(e) = self.train_and_commit(state, current).await {
                        tracing::error!(member = %self.config.name, round = current, error = %chain(&e), "no update this round");
                        self.failed = Some(current);
                    }
                }
                if aggregator {
                    // Training took time: decide on the state as it is now.
                    let fresh = self.ledger.state().await?;
                    self.evaluate_when_due(&fresh, current).await?;
                }
            }
            pb::RoundPhase::SEALED => {
                if let Err(e) = self.reveal_sketch(state, current).await {
                    tracing::error!(member = %self.config.name, round = current, error = %chain(&e), "sketch not revealed");
                }
                if aggregator {
                    let fresh = self.ledger.state().await?;
                    self.evaluate_sealed_when_due(&fresh, current).await?;
                }
            }
            pb::RoundPhase::EVALUATED if aggregator => self.aggregate(state, current).await?,
            pb::RoundPhase::AGGREGATED if aggregator => self.distribute(state, current).await?,
            _ => {}
        }
        // Scoring is the report's measurement: it waits until this member's part of the
        // current round is done, so it never delays the round.
        let idle = round.phase == pb::RoundPhase::OPEN
            && (state.commitments.contains_key(&(current, self.key.clone()))
                || self.failed == Some(current)
                || !schedule::drawn(round, &self.key)
                || (aggregator && round.mode == pb::RoundMode::SERVER));
        if idle || round.phase == pb::RoundPhase::CLOSED {
            self.score_pending();
        }
        Ok(MemberStatus::Working)
    }

    /// Starts scoring the global models held but not scored yet, in the background (the
    /// trainer scores on its own copy of the model, so training goes on meanwhile).
    fn score_pending(&mut self) {
        self.scoring.retain(|task| !task.is_finished());
        for (round, sha256, model) in std::mem::take(&mut self.unscored) {
            let (trainer, report) = (self.model.clone(), self.report.clone());
            let (name, key) = (self.config.name.clone(), self.key.clone());
            self.scoring.push(tokio::task::spawn_blocking(move || {
                let started = Instant::now();
                match trainer.evaluate(&model) {
                    Ok(Some(evaluation)) => {
                        let mut event = NodeEvent::new(&name, &key, round, "score", started, 0);
                        event.sha256 = Some(sha256);
                        event.accuracy = Some(evaluation.scores.accuracy);
                        event.macro_f1 = Some(evaluation.scores.macro_f1);
                        tracing::info!(member = %name, round, accuracy = evaluation.scores.accuracy, "scored");
                        if let Err(e) = report.record(event) {
                            tracing::warn!(error = %e, "score not recorded");
                        }
                    }
                    Ok(None) => {}
                    Err(e) => tracing::warn!(member = %name, round, error = %chain(&e), "not scored"),
                }
            }));
        }
    }

    /// Waits for the scoring in the background.
    async fn scores_done(&mut self) {
        for task in std::mem::take(&mut self.scoring) {
            let _ = task.await;
        }
    }

    /// Inserts or fetches blob `sha256` and returns its verified bytes; `holders` are asked
    /// first (nearest along the measured routes), then everyone else.
    async fn blob(
        &self,
        state: &FamilyState,
        round: u64,
        sha256: &str,
        holders: &[String],
    ) -> Result<(Vec<u8>, u64)> {
        let id = BlobId::parse(sha256)?;
        let store = self.transfers.store();
        let mut moved = 0;
        if !store.contains(&id) {
            if let Some(initial) = &self.initial {
                if bcfl_fed::digest::file_sha256(initial)?.sha256 == sha256 {
                    store.insert_file(initial).await?;
                }
            }
        }
        if !store.contains(&id) {
            let started = Instant::now();
            let peers = ledger_peers(state);
            let mut candidates: Vec<String> = holders
                .iter()
                .filter(|h| *h != &self.key && peers.url(h).is_some())
                .cloned()
                .collect();
            for key in peers.0.keys() {
                if key != &self.key && !candidates.contains(key) {
                    candidates.push(key.clone());
                }
            }
            let round_info = state.rounds.get(&round).cloned().unwrap_or_default();
            let graph = routing_graph(state, &round_info, &BTreeSet::new())?;
            // The on-chain size, where the chain has one (the initial model has none).
            let size = state
                .aggregates
                .values()
                .find(|a| a.model_sha256 == sha256)
                .map(|a| a.size_bytes);
            self.fetch(&graph, &peers, size, &id, &candidates)
                .await
                .map_err(|e| Error::Fetch {
                    blob: sha256.to_owned(),
                    source: Box::new(e),
                })?;
            moved = std::fs::metadata(store.path(&id)).map_or(0, |m| m.len());
            tracing::info!(member = %self.config.name, blob = %&sha256[..12], seconds = started.elapsed().as_secs_f64(), "fetched");
        }
        let bytes = std::fs::read(store.path(&id))?;
        let actual = sha256_hex(&bytes);
        if actual != sha256 {
            // Never used: removed so that the next tick fetches a good copy.
            let _ = store.remove(&id);
            return Err(Error::Integrity(format!(
                "blob {sha256} in the store hashes to {actual}: corrupt, removed"
            )));
        }
        Ok((bytes, moved))
    }

    /// Scores round 1's parent (the initial model) once, as round 0's.
    async fn score_initial(&mut self, state: &FamilyState) {
        if self.loaded.contains(&0) {
            return;
        }
        let Ok(initial) = schedule::parent_of(state, 1) else {
            return;
        };
        let outcome = match self.blob(state, 0, &initial, &[]).await {
            Ok((bytes, _)) => match Update::from_bytes(&bytes) {
                Ok(model) => {
                    self.unscored.push((0, initial.clone(), model));
                    Ok(())
                }
                Err(e) => Err(e.into()),
            },
            Err(e) => Err(e),
        };
        match outcome {
            Ok(()) => {
                self.loaded.insert(0);
            }
            Err(e) => {
                tracing::warn!(member = %self.config.name, error = %chain(&e), "initial model not held yet")
            }
        }
    }

    /// Fetches blob `id` of `size` bytes (on chain, when known: a holder declaring another
    /// size is refused) into this member's store from the nearest of `holders` along routes
    /// over `graph` (re-routed around failures), or, when no route is known, straight from
    /// each holder in turn.
    async fn fetch(
        &self,
        graph: &BandwidthGraph,
        peers: &Peers,
        size: Option<u64>,
        id: &BlobId,
        holders: &[String],
    ) -> Result<()> {
        let routed = fetch_routed(
            &self.transfers,
            graph,
            &policy(size)?,
            id,
            holders,
            &self.key,
        )
        .await;
        let Err(e) = routed else {
            return Ok(());
        };
        tracing::info!(member = %self.config.name, error = %e, "no routed fetch; asking holders directly");
        let mut last = e.to_string();
        for holder in holders.iter().filter(|h| peers.url(h).is_some()) {
            match self.transfers.fetch(id, vec![holder.clone()], size).await {
                Ok(_) => return Ok(()),
                Err(e) => last = e.to_string(),
            }
        }
        Err(Error::Unreachable(last))
    }

    /// Holds, checks and scores every global model on chain since this member started, in
    /// round order (see the module docs); one it cannot fetch yet is tried again next time.
    async fn follow_global(&mut self, state: &FamilyState) -> Result<()> {
        let from = *self.follow_from.get_or_insert_with(|| {
            state
                .aggregates
                .last_key_value()
                .map_or(1, |(&round, _)| round)
        });
        for round in schedule::globals_to_follow(&state.aggregates, &self.loaded, from) {
            let aggregate = &state.aggregates[&round];
            if aggregate.finality == pb::Finality::CONTESTED {
                tracing::warn!(member = %self.config.name, round, "the verifier committee contested round {round}'s aggregate: not loaded");
                self.loaded.insert(round);
                continue;
            }
            let started = Instant::now();
            // The aggregator and the contributors (the verdict's accepted members) hold it.
            let mut holders = vec![aggregate.submitted_by.clone()];
            if let Some(verdict) = state.verdicts.get(&round) {
                holders.extend(verdict.accepted.iter().cloned());
            }
            let (bytes, moved) = match self
                .blob(state, round, &aggregate.model_sha256, &holders)
                .await
            {
                Ok(found) => found,
                Err(e) => {
                    // Tried again at the next tick; a newer one is still loaded now.
                    tracing::warn!(member = %self.config.name, round, error = %chain(&e), "global model not held yet");
                    continue;
                }
            };
            let global = Update::from_bytes(&bytes)?;
            let mut event = self.event(round, "global", started, moved);
            event.sha256 = Some(aggregate.model_sha256.clone());
            tracing::info!(member = %self.config.name, round, "holds the global model, checked against the chain");
            self.report.record(event)?;
            self.loaded.insert(round);
            self.unscored
                .push((round, aggregate.model_sha256.clone(), global));
        }
        Ok(())
    }

    /// Probes every other active member once per `probe_every` rounds and reports the links.
    async fn probe(&mut self, state: &FamilyState, round: u64) {
        let every = self.config.probe_every;
        if every == 0 || (round - 1) % every != 0 || self.probed.contains(&round) {
            return;
        }
        self.probed.insert(round);
        let reported = state
            .links
            .values()
            .any(|l| l.from == self.key && l.samples.iter().any(|s| s.epoch == round));
        if reported {
            return;
        }
        let started = Instant::now();
        let peers = ledger_peers(state);
        let result = sweep(&self.http, &peers, &self.key, &self.config.probe).await;
        if result.links.is_empty() {
            return;
        }
        let bytes = result.links.iter().map(|l| l.probe_bytes).sum();
        let submitted = match report_payload(round, &result.links) {
            Ok(payload) => {
                self.ledger
                    .submit(&self.signer, payload, &format!("ReportBandwidth {round}"))
                    .await
            }
            Err(e) => {
                tracing::warn!(error = %e, "no bandwidth report");
                return;
            }
        };
        if let Err(e) = submitted {
            tracing::warn!(member = %self.config.name, error = %e, "bandwidth report not recorded");
        }
        let event = self.event(round, "probe", started, bytes);
        let _ = self.report.record(event);
    }

    /// The members a colluding attacker crafts from: those expected to train `round` that are
    /// neither itself nor its fellow attackers.
    fn honest_trainers(&self, state: &FamilyState, round: &pb::Round) -> BTreeSet<String> {
        let mut honest = schedule::trainers(state, round);
        honest.retain(|k| *k != self.key && !self.config.colluders.contains(k));
        honest
    }

    /// Whether this member may train and commit now: always, unless it colludes, in which case
    /// once every honest trainer of the round has committed, or, after half the commit
    /// timeout, once at least one has (a dead member must not keep the attackers out).
    fn colluders_may_commit(
        &mut self,
        state: &FamilyState,
        round: &pb::Round,
        current: u64,
    ) -> bool {
        if !self.config.attack.is_some_and(AttackKind::colludes) {
            return true;
        }
        if self.open_since.is_none_or(|(r, _)| r != current) {
            self.open_since = Some((current, Instant::now()));
        }
        let honest = self.honest_trainers(state, round);
        let committed = honest
            .iter()
            .filter(|k| state.commitments.contains_key(&(current, (*k).clone())))
            .count();
        let waited = self.open_since.is_some_and(|(r, since)| {
            r == current && since.elapsed() >= self.config.commit_timeout / 2
        });
        committed == honest.len() || (waited && committed > 0)
    }

    /// The honest updates committed to round `current` so far, fetched and checked against
    /// their commitments: what a colluding attacker crafts from.
    async fn honest_updates(&self, state: &FamilyState, current: u64) -> Result<Vec<Update>> {
        let Some(round) = state.rounds.get(&current) else {
            return Ok(Vec::new());
        };
        let mut updates = Vec::new();
        for key in self.honest_trainers(state, round) {
            let Some(commitment) = state.commitments.get(&(current, key.clone())) else {
                continue;
            };
            let (bytes, _) = self
                .blob(state, current, &commitment.update_sha256, &[key])
                .await?;
            updates.push(Update::from_bytes(&bytes)?);
        }
        Ok(updates)
    }

    async fn train_and_commit(&mut self, state: &FamilyState, round: u64) -> Result<()> {
        let parent_sha = state.rounds[&round].parent_model_sha256.clone();
        let (parent_bytes, _) = self.blob(state, round, &parent_sha, &[]).await?;
        let parent = Update::from_bytes(&parent_bytes)?;
        let started = Instant::now();
        // From the configured seed, the round and the member's name (not its key, which is
        // random): a consortium rerun with the same settings trains the same updates.
        let seed = self.config.seed
            ^ (round << 32)
            ^ u64::from_str_radix(&sha256_hex(self.config.name.as_bytes())[..12], 16)
                .unwrap_or_default();
        let model = self.model.clone();
        let base = parent.clone();
        let trained = blocking(move || model.train(&base, round, seed)).await?;
        if self.config.slowdown > 0.0 {
            tokio::time::sleep(started.elapsed().mul_f64(self.config.slowdown)).await;
        }
        let mut train_event = self.event(round, "train", started, 0);
        // A disguised attacker commits the statistics of what it trained, not of what it sends.
        let disguise = (self.config.attack == Some(AttackKind::DisguisedScale))
            .then(|| trained.update.minus(&parent))
            .transpose()?;
        let sent = match self.config.attack.filter(|k| k.replaces_update()) {
            Some(kind) if kind.colludes() => {
                let now = self.ledger.state().await?;
                let honest = self.honest_updates(&now, round).await?;
                // The attackers: its fellows and itself.
                let attackers = self.config.colluders.len()
                    + usize::from(!self.config.colluders.contains(&self.key));
                let members = honest.len() + attackers;
                tracing::info!(member = %self.config.name, round, honest = honest.len(), attackers, attack = %kind, "crafting a colluding update");
                let crafted =
                    crate::demo::attack::collude(kind, &parent, &honest, members, attackers)?;
                crate::demo::attack::perturbed(&parent, crafted, self.config.collusion_noise, seed)?
            }
            Some(kind) => {
                let previous = self.previous_parent(state, round).await?;
                let known = Known {
                    previous: previous.as_ref(),
                    seed,
                    shape: stats_shape(state),
                    round: if self.config.blind_projection {
                        round.wrapping_add(BLIND_PROJECTION_OFFSET)
                    } else {
                        round
                    },
                };
                kind.apply(&parent, &trained.update, &known)?
            }
            None => trained.update,
        };

        // Which round the update goes to: the ledger may have moved on while training.
        let now = self.ledger.state().await?;
        let target = now.consortium.as_ref().map_or(round, |c| c.current_round);
        let open = now.rounds.get(&target).filter(|r| {
            r.phase == pb::RoundPhase::OPEN
                && !now.commitments.contains_key(&(target, self.key.clone()))
        });
        let Some(open) = open else {
            train_event.detail = Some(format!("round {round} moved on; update dropped"));
            self.report.record(train_event)?;
            return Err(Error::State(format!(
                "round {round} is no longer open for this member's update"
            )));
        };
        if !schedule::drawn(open, &self.key) {
            train_event.detail = Some(format!("not drawn for round {target}; update dropped"));
            self.report.record(train_event)?;
            return Err(Error::State(format!(
                "the update trained for round {round} cannot go to round {target}: this member was not drawn for it"
            )));
        }
        let staleness = target - round;
        if staleness > 0
            && !(schedule::is_buffered(open) && staleness <= u64::from(open.max_staleness))
        {
            train_event.detail = Some(format!("too late for round {round}; dropped"));
            self.report.record(train_event)?;
            return Err(Error::State(format!(
                "the update trained for round {round} is too stale for round {target}"
            )));
        }
        self.report.record(train_event)?;
        let started = Instant::now();
        let bytes = sent.to_bytes(self.config.encoding);
        // The statistics are those of what the blob holds (int8 blobs decode to other values).
        let sent = match self.config.encoding {
            Encoding::F32 => sent,
            _ => Update::from_bytes(&bytes)?,
        };
        let change = match disguise {
            Some(honest) => honest,
            None => sent.minus(&parent)?,
        };
        // An attacker lying about its shard claims more than it trained on.
        let samples = self.config.attack.map_or(trained.samples, |kind| {
            kind.claimed_samples(trained.samples)
        });
        let shape = committed_shape(&now);
        shape.check(&change).map_err(Error::Config)?;
        let stats = UpdateStats::new(&change, samples, trained.loss, shape, target);
        let id = self.transfers.store().insert_bytes(&bytes).await?;
        let payload = commit_payload(target, round, &id, bytes.len() as u64, &stats)?;
        self.ledger
            .submit(&self.signer, payload, &format!("CommitUpdate {target}"))
            .await?;
        let mut event = self.event(target, "commit", started, 0);
        event.detail = (staleness > 0).then(|| format!("trained from round {round}"));
        tracing::info!(member = %self.config.name, round = target, base_round = round, loss = stats.loss, norm = stats.l2_norm, "committed");
        self.report.record(event)?;
        Ok(())
    }

    /// The parent model of the round before `round` (`None` for round 1): what a stale rider
    /// subtracts from this round's parent to resend the last change of the global model.
    async fn previous_parent(&self, state: &FamilyState, round: u64) -> Result<Option<Update>> {
        let Some(previous) = round.checked_sub(1).and_then(|r| state.rounds.get(&r)) else {
            return Ok(None);
        };
        let (bytes, _) = self
            .blob(state, round, &previous.parent_model_sha256, &[])
            .await?;
        Ok(Some(Update::from_bytes(&bytes)?))
    }

    async fn evaluate_when_due(&mut self, state: &FamilyState, round: u64) -> Result<()> {
        let Some(r) = state
            .rounds
            .get(&round)
            .filter(|r| r.phase == pb::RoundPhase::OPEN)
        else {
            return Ok(());
        };
        let since = first_seen(&mut self.open_since, round);
        let have = r.committers.len();
        let due = have >= schedule::commit_target(state, r)
            || (since.elapsed() >= self.config.commit_timeout
                && have >= schedule::evaluation_quorum(state, r));
        if !due {
            return Ok(());
        }
        if schedule::sketches_after_commit(state) {
            // The commitments close first; the sketches come, then the evaluation.
            let (payload, action) = schedule::close_commits(state, round);
            match self.ledger.submit(&self.signer, payload, &action).await {
                Ok(()) => {
                    tracing::info!(member = %self.config.name, round, commitments = have, "sealed")
                }
                Err(e) if e.is_rejection() => tracing::warn!(round, error = %e, "sealing refused"),
                Err(e) => return Err(e.into()),
            }
            return Ok(());
        }
        self.evaluate(state, round).await
    }

    /// As aggregator of a SEALED round: evaluates it once every committer has revealed its
    /// sketch, or, after the commit timeout, with whoever has (the others are excluded
    /// unscored).
    async fn evaluate_sealed_when_due(&mut self, state: &FamilyState, round: u64) -> Result<()> {
        let Some(r) = state
            .rounds
            .get(&round)
            .filter(|r| r.phase == pb::RoundPhase::SEALED)
        else {
            return Ok(());
        };
        let since = first_seen(&mut self.sealed_since, round);
        let revealed = r
            .committers
            .iter()
            .filter(|k| {
                state
                    .commitments
                    .get(&(round, (*k).clone()))
                    .is_some_and(|c| !c.sketch.is_empty())
            })
            .count();
        if revealed < r.committers.len() && since.elapsed() < self.config.commit_timeout {
            return Ok(());
        }
        self.evaluate(state, round).await
    }

    /// Checks every committed update (once a round) and submits `EvaluateRound`.
    async fn evaluate(&mut self, state: &FamilyState, round: u64) -> Result<()> {
        let have = state.rounds.get(&round).map_or(0, |r| r.committers.len());
        if self.checked.insert(round) {
            self.check_commitments(state, round).await?;
        }
        let started = Instant::now();
        let payload = schedule::evaluate_payload(round);
        match self
            .ledger
            .submit(&self.signer, payload, &format!("EvaluateRound {round}"))
            .await
        {
            Ok(()) => {
                tracing::info!(member = %self.config.name, round, commitments = have, "evaluated");
                self.report
                    .record(self.event(round, "evaluate", started, 0))?;
            }
            Err(e) if e.is_rejection() => tracing::warn!(round, error = %e, "evaluation refused"),
            Err(e) => return Err(e.into()),
        }
        Ok(())
    }

    /// When sketches come after the commitments: reveals the sketch of this member's committed
    /// change to a SEALED round, made with the seed the round drew, once.
    async fn reveal_sketch(&mut self, state: &FamilyState, round: u64) -> Result<()> {
        let Some(r) = state.rounds.get(&round) else {
            return Ok(());
        };
        let Some(c) = state.commitments.get(&(round, self.key.clone())) else {
            return Ok(());
        };
        let Some(seed) = schedule::sketch_seed(state, r) else {
            return Ok(());
        };
        if !c.sketch.is_empty() || self.revealed == Some(round) {
            return Ok(());
        }
        let started = Instant::now();
        let (bytes, _) = self.committed_update(state, round, c).await?;
        let base = self
            .base_model(state, round, c, &mut BTreeMap::new())
            .await?;
        // What the aggregator recomputes from this blob, so the two agree by construction.
        let sketch = verify::recompute(&bytes, &base, stats_shape(state), seed)?.sketch;
        let mut payload = pb::BcflPayload::new();
        payload.set_reveal_sketch(pb::RevealSketch {
            round,
            sketch: bcfl_protos::signed_bytes::pack(&sketch)
                .ok_or_else(|| Error::State("a sketch value lies beyond 127".into()))?,
            ..Default::default()
        });
        match self
            .ledger
            .submit(&self.signer, payload, &format!("RevealSketch {round}"))
            .await
        {
            Ok(()) => {
                tracing::info!(member = %self.config.name, round, "sketch revealed");
                self.revealed = Some(round);
                self.report
                    .record(self.event(round, "reveal", started, 0))?;
            }
            Err(e) if e.is_rejection() => {
                // Not retried: the ledger's answer will not change.
                tracing::warn!(round, error = %e, "reveal refused");
                self.revealed = Some(round);
            }
            Err(e) => return Err(e.into()),
        }
        Ok(())
    }

    /// Fetches, checks and aggregates the accepted updates and commits the aggregate.
    async fn aggregate(&mut self, state: &FamilyState, round: u64) -> Result<()> {
        let verdict = state
            .verdicts
            .get(&round)
            .ok_or_else(|| Error::State(format!("round {round} is EVALUATED without a verdict")))?;
        let params = state
            .consortium
            .as_ref()
            .map(|c| c.get_params().clone())
            .unwrap_or_default();
        if verdict.accepted.is_empty() {
            // Nothing to aggregate: the coordinator abandons the round.
            return Ok(());
        }
        let plan = AggregatePlan::of(state, round)?;
        let started = Instant::now();
        let (paths, models, moved) = self.gather(state, round, &plan).await?;
        let mut fetch_event = self.event(round, "fetch", started, moved);
        fetch_event.detail = Some(format!("{} updates", plan.updates.len()));
        self.report.record(fetch_event)?;
        let started = Instant::now();
        let computed = self.compute(plan, paths, models, "rebased").await?;
        let bytes = computed.bytes;
        let id = self.transfers.store().insert_bytes(&bytes).await?;
        let mut payload = pb::BcflPayload::new();
        payload.set_commit_aggregate(pb::CommitAggregate {
            round,
            model_sha256: id.as_str().to_owned(),
            contributors: verdict.accepted.clone(),
            rule: params.aggregation_rule,
            excluded: verdict.excluded.clone(),
            size_bytes: bytes.len() as u64,
            ..Default::default()
        });
        self.ledger
            .submit(&self.signer, payload, &format!("CommitAggregate {round}"))
            .await?;
        tracing::info!(member = %self.config.name, round, model = %&id.as_str()[..12], "aggregate committed");
        self.report
            .record(self.event(round, "aggregate", started, 0))?;
        Ok(())
    }

    /// The accepted updates of `plan` (fetched from their members along routes without the
    /// excluded ones, when not held) as store paths, the models they were trained from, and the
    /// bytes moved.
    async fn gather(
        &self,
        state: &FamilyState,
        round: u64,
        plan: &AggregatePlan,
    ) -> Result<(BTreeMap<String, PathBuf>, BTreeMap<String, Vec<u8>>, u64)> {
        let r = &state.rounds[&round];
        let mut removed: BTreeSet<String> = state
            .verdicts
            .get(&round)
            .map(|v| v.excluded.iter().cloned().collect())
            .unwrap_or_default();
        removed.remove(&self.key);
        let graph = routing_graph(state, r, &removed)?;
        let peers = ledger_peers(state);
        let peers = Peers(
            peers
                .0
                .into_iter()
                .filter(|(k, _)| !removed.contains(k))
                .collect(),
        );
        let mut moved = 0u64;
        let mut paths = BTreeMap::new();
        for planned in &plan.updates {
            let id = BlobId::parse(&planned.sha256)?;
            if !self.transfers.store().contains(&id) {
                self.fetch(
                    &graph,
                    &peers,
                    Some(planned.size_bytes),
                    &id,
                    std::slice::from_ref(&planned.member),
                )
                .await
                .map_err(|e| Error::FetchUpdate {
                    member: planned.member.clone(),
                    source: Box::new(e),
                })?;
                moved += planned.size_bytes;
            }
            paths.insert(planned.member.clone(), self.transfers.store().path(&id));
        }
        // Withdrawn updates of the round before: its aggregator holds them, and their members.
        let aggregator_before = state
            .aggregates
            .get(&round.saturating_sub(1))
            .map(|a| a.submitted_by.clone());
        for planned in &plan.withdrawn {
            let holders: Vec<String> = aggregator_before
                .iter()
                .cloned()
                .chain([planned.member.clone()])
                .collect();
            let (_, fetched) = self
                .blob(state, round, &planned.sha256, &holders)
                .await
                .map_err(|e| Error::FetchUpdate {
                    member: planned.member.clone(),
                    source: Box::new(e),
                })?;
            moved += fetched;
            let id = BlobId::parse(&planned.sha256)?;
            paths.insert(planned.member.clone(), self.transfers.store().path(&id));
        }
        let mut models = BTreeMap::new();
        for sha in plan.models_needed() {
            let (bytes, fetched) = self.blob(state, round, &sha, &[]).await?;
            moved += fetched;
            models.insert(sha, bytes);
        }
        Ok((paths, models, moved))
    }

    /// `plan`'s aggregate of the gathered updates and models, on the blocking pool; rebased
    /// updates are kept in the store's `scratch` folder while the rule runs.
    async fn compute(
        &self,
        plan: AggregatePlan,
        paths: BTreeMap<String, PathBuf>,
        models: BTreeMap<String, Vec<u8>>,
        scratch: &str,
    ) -> Result<super::replay::Computed> {
        let scratch = self.transfers.store().dir().join(scratch);
        blocking(move || {
            plan.compute(
                |u| Ok(paths[&u.member].clone()),
                |sha| Ok(models[sha].clone()),
                &scratch,
            )
        })
        .await
    }

    /// The model commitment `c` of `round` was trained from, parsed (cached in `bases`).
    async fn base_model(
        &self,
        state: &FamilyState,
        round: u64,
        c: &pb::Commitment,
        bases: &mut BTreeMap<String, Update>,
    ) -> Result<Update> {
        let sha = state
            .base_model_of(c)
            .ok_or_else(|| {
                Error::State(format!(
                    "round {round}: {}'s base round {} is not on the ledger",
                    c.member, c.base_round
                ))
            })?
            .to_owned();
        if let Some(model) = bases.get(&sha) {
            return Ok(model.clone());
        }
        let (bytes, _) = self.blob(state, round, &sha, &[]).await?;
        let model = Update::from_bytes(&bytes)?;
        bases.insert(sha, model.clone());
        Ok(model)
    }

    /// `member`'s update committed to `round`, verified against its hash (fetched from the
    /// member first when not held; its size is not assumed, so a false one can be disputed),
    /// and the bytes moved.
    async fn committed_update(
        &self,
        state: &FamilyState,
        round: u64,
        c: &pb::Commitment,
    ) -> Result<(Vec<u8>, u64)> {
        self.blob(
            state,
            round,
            &c.update_sha256,
            std::slice::from_ref(&c.member),
        )
        .await
        .map_err(|e| Error::FetchUpdate {
            member: c.member.clone(),
            source: Box::new(e),
        })
    }

    /// As aggregator, before evaluating: recomputes every other committer's statistics from
    /// its blob and disputes the commitments they contradict. An update that cannot be fetched
    /// is left to the aggregation (which fails on it if the verdict accepts it).
    async fn check_commitments(&mut self, state: &FamilyState, round: u64) -> Result<()> {
        let Some(r) = state.rounds.get(&round) else {
            return Ok(());
        };
        let shape = stats_shape(state);
        let seed = schedule::checked_seed(state, round);
        let started = Instant::now();
        let (mut moved, mut checked, mut disputed) = (0u64, 0usize, 0usize);
        let mut bases = BTreeMap::new();
        for member in &r.committers {
            if *member == self.key || r.disputes.iter().any(|d| &d.member == member) {
                continue;
            }
            let Some(c) = state.commitments.get(&(round, member.clone())) else {
                continue;
            };
            let bytes = match self.committed_update(state, round, c).await {
                Ok((bytes, fetched)) => {
                    moved += fetched;
                    bytes
                }
                Err(e) => {
                    tracing::warn!(member = %self.config.name, round, of = %member, error = %chain(&e), "update not checked");
                    continue;
                }
            };
            let base = self.base_model(state, round, c, &mut bases).await?;
            checked += 1;
            let Some(dispute) = verify::check(c, &bytes, &base, shape, seed) else {
                continue;
            };
            tracing::warn!(
                member = %self.config.name, round, of = %member, mismatch = ?dispute.mismatch,
                committed_norm_micro = c.norm_micro, recomputed_norm_micro = dispute.norm_micro,
                committed_size = c.size_bytes, recomputed_size = dispute.size_bytes,
                "committed statistics contradict the blob: disputing"
            );
            let mut payload = pb::BcflPayload::new();
            payload.set_dispute_commitment(dispute);
            match self
                .ledger
                .submit(&self.signer, payload, &format!("DisputeCommitment {round}"))
                .await
            {
                Ok(()) => disputed += 1,
                Err(e) if e.is_rejection() => tracing::warn!(round, error = %e, "dispute refused"),
                Err(e) => return Err(e.into()),
            }
        }
        let mut event = self.event(round, "verify", started, moved);
        event.detail = Some(format!("{checked} updates checked, {disputed} disputed"));
        self.report.record(event)?;
        Ok(())
    }

    /// Attests every aggregate whose verifier committee names this member and that it has not
    /// attested yet. Failures are logged and retried on the next tick.
    async fn attest_due(&mut self, state: &FamilyState) {
        let due: Vec<u64> = state
            .aggregates
            .iter()
            .filter(|(round, a)| {
                !self.attested.contains(round)
                    && a.committee.iter().any(|k| *k == self.key)
                    && !a.attestations.iter().any(|at| at.member == self.key)
            })
            .map(|(round, _)| *round)
            .collect();
        for round in due {
            if let Err(e) = self.attest(state, round).await {
                tracing::warn!(member = %self.config.name, round, error = %chain(&e), "not attested yet");
            }
        }
    }

    /// Recomputes round `round`'s aggregate, rechecks the statistics of every accepted and
    /// disputed update, and attests the result.
    async fn attest(&mut self, state: &FamilyState, round: u64) -> Result<()> {
        let started = Instant::now();
        let plan = AggregatePlan::of(state, round)?;
        let (paths, models, mut moved) = self.gather(state, round, &plan).await?;
        let shape = stats_shape(state);
        let seed = schedule::checked_seed(state, round);
        let mut bases = BTreeMap::new();
        // Accepted updates whose statistics the aggregator should have disputed.
        let mut missed = Vec::new();
        for planned in &plan.updates {
            let Some(c) = state.commitments.get(&(round, planned.member.clone())) else {
                continue;
            };
            let bytes = std::fs::read(&paths[&planned.member])?;
            let base = self.base_model(state, round, c, &mut bases).await?;
            if verify::check(c, &bytes, &base, shape, seed).is_some() {
                missed.push(planned.member.clone());
            }
        }
        let computed = self.compute(plan, paths, models, "rebased-attest").await?;
        let mut false_disputes = Vec::new();
        for d in state.rounds[&round].get_disputes() {
            let Some(c) = state.commitments.get(&(round, d.member.clone())) else {
                continue;
            };
            // A disputed member that does not serve its update cannot clear itself.
            let Ok((bytes, fetched)) = self.committed_update(state, round, c).await else {
                continue;
            };
            moved += fetched;
            let base = self.base_model(state, round, c, &mut bases).await?;
            if !verify::dispute_holds(c, &bytes, &base, shape, seed) {
                false_disputes.push(d.member.clone());
            }
        }
        let aggregate = &state.aggregates[&round];
        let matches = computed.sha256 == aggregate.model_sha256;
        let contested = !matches || !false_disputes.is_empty() || !missed.is_empty();
        if contested {
            tracing::warn!(member = %self.config.name, round, recomputed = %computed.sha256, committed = %aggregate.model_sha256, false_disputes = ?false_disputes, missed = ?missed, "contesting the aggregate");
        }
        let mut payload = pb::BcflPayload::new();
        payload.set_attest_aggregate(pb::AttestAggregate {
            round,
            model_sha256: computed.sha256.clone(),
            false_disputes: false_disputes.into(),
            missed: missed.into(),
            ..Default::default()
        });
        match self
            .ledger
            .submit(&self.signer, payload, &format!("AttestAggregate {round}"))
            .await
        {
            Ok(()) => {
                tracing::info!(member = %self.config.name, round, contested, "attested");
                let mut event = self.event(round, "attest", started, moved);
                event.detail = Some(if contested {
                    "contested".into()
                } else {
                    "matches".into()
                });
                self.report.record(event)?;
            }
            Err(e) if e.is_rejection() => {
                tracing::warn!(round, error = %e, "attestation refused")
            }
            Err(e) => return Err(e.into()),
        }
        self.attested.insert(round);
        Ok(())
    }

    /// Pushes the global model along the shortest-path tree to the accepted members, then
    /// straight to the excluded ones, then closes the round (members that miss it fetch it
    /// themselves).
    async fn distribute(&mut self, state: &FamilyState, round: u64) -> Result<()> {
        let r = &state.rounds[&round];
        let aggregate = state.aggregates.get(&round).ok_or_else(|| {
            Error::State(format!("round {round} is AGGREGATED without an aggregate"))
        })?;
        if self.distributed.contains(&round) {
            return self.close_when_verified(aggregate, round).await;
        }
        let started = Instant::now();
        let excluded: BTreeSet<String> = state
            .verdicts
            .get(&round)
            .map(|v| {
                v.excluded
                    .iter()
                    .filter(|k| **k != self.key)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        let graph = routing_graph(state, r, &excluded)?;
        let peers = Peers(
            ledger_peers(state)
                .0
                .into_iter()
                .filter(|(k, _)| !excluded.contains(k))
                .collect(),
        );
        let id = BlobId::parse(&aggregate.model_sha256)?;
        let mut delivered = 0u64;
        if graph.contains(&self.key) {
            match distribute(
                &self.http,
                &graph,
                &peers,
                &policy(Some(aggregate.size_bytes))?,
                &id,
                &self.key,
                |_| {},
            )
            .await
            {
                Ok(d) => {
                    for delivery in &d.deliveries {
                        match &delivery.error {
                            None => delivered += aggregate.size_bytes,
                            Some(e) => {
                                tracing::warn!(to = %delivery.node, error = %e, "not delivered; it will fetch the model itself")
                            }
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "no distribution; members fetch the model themselves")
                }
            }
        }
        // The excluded members get it too, straight from the aggregator (they relay nothing):
        // every member checks it against the chain and trains from it next round.
        for key in &excluded {
            let Some(url) = ledger_peers(state).url(key).map(str::to_owned) else {
                continue;
            };
            let own = vec![self.key.clone()];
            match pull(&self.http, key, &url, &id, own, Some(aggregate.size_bytes)).await {
                Ok(_) => delivered += aggregate.size_bytes,
                Err(e) => {
                    tracing::warn!(to = %key, error = %e.error, "not delivered; it will fetch the model itself")
                }
            }
        }
        self.report
            .record(self.event(round, "distribute", started, delivered))?;
        self.distributed.insert(round);
        self.close_when_verified(aggregate, round).await
    }

    /// Closes `round` unless its aggregate still waits for the verifier committee (the next
    /// ticks try again; the coordinator closes it unverified at its deadline).
    async fn close_when_verified(&mut self, aggregate: &pb::Aggregate, round: u64) -> Result<()> {
        if aggregate.finality == pb::Finality::PENDING {
            return Ok(());
        }
        let mut payload = pb::BcflPayload::new();
        payload.set_close_round(pb::CloseRound {
            round,
            ..Default::default()
        });
        match self
            .ledger
            .submit(&self.signer, payload, &format!("CloseRound {round}"))
            .await
        {
            Ok(()) => tracing::info!(member = %self.config.name, round, "round closed"),
            Err(e) if e.is_rejection() => tracing::warn!(round, error = %e, "close refused"),
            Err(e) => return Err(e.into()),
        }
        Ok(())
    }
}
