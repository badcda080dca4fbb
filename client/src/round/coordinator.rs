//! The coordinator role: runs the consortium's schedule with an admin key.
//!
//! Driven by the ledger state alone, one [`Coordinator::tick`] at a time:
//!
//! - when no round is open (none yet, or the current one CLOSED) and fewer than
//!   [`CoordinatorConfig::rounds`] have run, it opens the next one from the parent the
//!   processor expects, with the mode, synchronisation and aggregator the configuration says
//!   ([`schedule::choose_aggregator`]);
//! - it is the deadline keeper, so that a silent member or a dead aggregator never stalls the
//!   consortium (the processor has no clock: the deadlines are local timers that end in phase
//!   transactions): a round still OPEN after [`CoordinatorConfig::commit_timeout`] plus a grace
//!   of half of it (the aggregator's own deadline comes first) is evaluated by the coordinator
//!   when it has the quorum, abandoned otherwise; a round whose verdict accepted nobody is
//!   abandoned at once (there is nothing to aggregate); a round EVALUATED for longer than
//!   [`CoordinatorConfig::aggregate_timeout`] is abandoned; one AGGREGATED for that long is
//!   closed (its global model is on chain; members fetch it themselves).
//!
//! A restarted coordinator starts its timers again from when it first sees each phase.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bcfl_protos::bcfl as pb;
use serde::{Deserialize, Serialize};

use super::ledger::{Ledger, LedgerError};
use super::schedule::{self, AggregatorChoice, ScheduleError};
use bcfl_ledger::keys::Signer;
use bcfl_ledger::state::FamilyState;

/// Topology of the rounds a coordinator opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "kebab-case")]
pub enum Topology {
    /// Peer to peer: the centre of the measured graph aggregates, transfers follow routes.
    #[default]
    Serverless,
    /// A fixed central aggregator, star topology (the papers' baseline).
    Server,
}

impl Topology {
    /// `serverless` or `server`, as in the configuration file.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Serverless => "serverless",
            Self::Server => "server",
        }
    }
}

/// When an aggregator aggregates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "kebab-case")]
pub enum Synchrony {
    /// Waits for every active member (or the deadline and the quorum).
    #[default]
    Synchronous,
    /// Aggregates as soon as `buffer` updates are in; late updates count in later rounds,
    /// down-weighted by their age ([`schedule::staleness_weight_ppm`]).
    BufferedAsync,
}

impl Synchrony {
    /// `synchronous` or `buffered-async`, as in the configuration file.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Synchronous => "synchronous",
            Self::BufferedAsync => "buffered-async",
        }
    }
}

/// The schedule a coordinator runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CoordinatorConfig {
    /// Rounds to run in all (counting rounds already on chain); the coordinator finishes when
    /// this many are CLOSED.
    pub rounds: u64,
    /// Topology.
    #[serde(default)]
    pub topology: Topology,
    /// Server mode: the aggregator's public key.
    #[serde(default)]
    pub server: Option<String>,
    /// Synchronisation.
    #[serde(default)]
    pub synchrony: Synchrony,
    /// Buffered asynchronous: updates per aggregation (K).
    #[serde(default = "default_buffer")]
    pub buffer: u32,
    /// Buffered asynchronous: oldest accepted update, in rounds.
    #[serde(default = "default_max_staleness")]
    pub max_staleness: u32,
    /// Seconds the commit phase may last before the deadline rules apply.
    #[serde(default = "default_commit_timeout", with = "seconds")]
    pub commit_timeout: Duration,
    /// Seconds evaluation-to-close may last before the round is abandoned (or closed).
    #[serde(default = "default_aggregate_timeout", with = "seconds")]
    pub aggregate_timeout: Duration,
}

fn default_buffer() -> u32 {
    2
}
fn default_max_staleness() -> u32 {
    2
}
fn default_commit_timeout() -> Duration {
    Duration::from_secs(600)
}
fn default_aggregate_timeout() -> Duration {
    Duration::from_secs(600)
}

/// Durations as (fractional) seconds in configuration files.
pub(crate) mod seconds {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let secs = f64::deserialize(d)?;
        Duration::try_from_secs_f64(secs).map_err(serde::de::Error::custom)
    }
}

impl CoordinatorConfig {
    /// `rounds` synchronous serverless rounds with the default deadlines.
    pub fn new(rounds: u64) -> Self {
        Self {
            rounds,
            topology: Topology::Serverless,
            server: None,
            synchrony: Synchrony::Synchronous,
            buffer: default_buffer(),
            max_staleness: default_max_staleness(),
            commit_timeout: default_commit_timeout(),
            aggregate_timeout: default_aggregate_timeout(),
        }
    }

    /// Checks the combination (a server for server mode, K >= 1).
    pub fn validate(&self) -> Result<(), String> {
        if self.topology == Topology::Server && self.server.is_none() {
            return Err("server topology needs `server` (the aggregator's public key)".into());
        }
        if self.synchrony == Synchrony::BufferedAsync && self.buffer == 0 {
            return Err("buffered-async needs buffer >= 1".into());
        }
        Ok(())
    }

    fn choice(&self) -> AggregatorChoice {
        match (&self.topology, &self.server) {
            (Topology::Server, Some(key)) => AggregatorChoice::Fixed(key.clone()),
            _ => AggregatorChoice::Centre,
        }
    }

    /// The `OpenRound` action of round `round`.
    pub fn open_payload(&self, round: u64, parent: &str, aggregator: &str) -> pb::BcflPayload {
        let (sync, buffer_size, max_staleness) = match self.synchrony {
            Synchrony::Synchronous => (pb::RoundSync::SYNCHRONOUS, 0, 0),
            Synchrony::BufferedAsync => (
                pb::RoundSync::BUFFERED_ASYNC,
                self.buffer,
                self.max_staleness,
            ),
        };
        let mut payload = pb::BcflPayload::new();
        payload.set_open_round(pb::OpenRound {
            round,
            parent_model_sha256: parent.to_owned(),
            aggregator: aggregator.to_owned(),
            mode: match self.topology {
                Topology::Serverless => pb::RoundMode::SERVERLESS,
                Topology::Server => pb::RoundMode::SERVER,
            },
            sync,
            buffer_size,
            max_staleness,
            ..Default::default()
        });
        payload
    }
}

/// What a tick found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CoordinatorStatus {
    /// Rounds remain.
    Working,
    /// The configured number of rounds is CLOSED.
    Finished,
}

/// A failure of the coordinator that waiting cannot fix.
#[derive(Debug, thiserror::Error)]
pub enum CoordinatorError {
    /// A ledger operation failed for a reason other than a refused phase transition.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    /// The schedule cannot proceed.
    #[error(transparent)]
    Schedule(#[from] ScheduleError),
}

/// The coordinator role.
pub struct Coordinator<L> {
    ledger: Arc<L>,
    admin: Signer,
    config: CoordinatorConfig,
    seen: BTreeMap<(u64, i32), Instant>,
}

impl<L: Ledger> Coordinator<L> {
    /// A coordinator signing with `admin` (a consortium admin).
    pub fn new(ledger: Arc<L>, admin: Signer, config: CoordinatorConfig) -> Self {
        Self {
            ledger,
            admin,
            config,
            seen: BTreeMap::new(),
        }
    }

    /// The schedule.
    pub fn config(&self) -> &CoordinatorConfig {
        &self.config
    }

    fn since(&mut self, round: u64, phase: pb::RoundPhase) -> Duration {
        self.seen
            .entry((round, phase as i32))
            .or_insert_with(Instant::now)
            .elapsed()
    }

    /// Submits `payload`; a refused transition (someone else moved the round first) is
    /// logged, not an error: the next tick sees the new state.
    async fn act(&self, payload: pb::BcflPayload, action: &str) -> Result<(), CoordinatorError> {
        match self.ledger.submit(&self.admin, payload, action).await {
            Ok(()) => {
                tracing::info!(action, "coordinator");
                Ok(())
            }
            Err(e) if e.is_rejection() => {
                tracing::warn!(action, error = %e, "coordinator action refused");
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// One look at the ledger: opens, evaluates, abandons or closes what is due.
    pub async fn tick(
        &mut self,
        state: &FamilyState,
    ) -> Result<CoordinatorStatus, CoordinatorError> {
        let Some(consortium) = &state.consortium else {
            return Ok(CoordinatorStatus::Working);
        };
        let current = consortium.current_round;
        let round = state.rounds.get(&current);
        let phase = round.map_or(pb::RoundPhase::CLOSED, |r| r.phase);
        match phase {
            pb::RoundPhase::CLOSED => {
                if current >= self.config.rounds {
                    return Ok(CoordinatorStatus::Finished);
                }
                let next = current + 1;
                let parent = schedule::parent_of(state, next)?;
                let aggregator = schedule::choose_aggregator(state, next, &self.config.choice())?;
                let payload = self.config.open_payload(next, &parent, &aggregator);
                self.act(payload, &format!("OpenRound {next}")).await?;
            }
            pb::RoundPhase::OPEN => {
                let round = round.expect("an OPEN round is on chain");
                let deadline = self.config.commit_timeout.mul_f64(1.5);
                if self.since(current, phase) >= deadline {
                    let have = round.committers.len();
                    let quorum = schedule::evaluation_quorum(state, round);
                    if have >= quorum {
                        tracing::warn!(
                            round = current,
                            have,
                            "commit deadline passed: closing the commitments"
                        );
                        let (payload, action) = schedule::close_commits(state, current);
                        self.act(payload, &action).await?;
                    } else {
                        tracing::warn!(
                            round = current,
                            have,
                            quorum,
                            "commit deadline passed without a quorum: abandoning"
                        );
                        self.close(current).await?;
                    }
                }
            }
            pb::RoundPhase::SEALED => {
                // Sketches come after the commitments: whoever has not revealed its sketch by
                // the deadline is excluded unscored.
                if self.since(current, phase) >= self.config.commit_timeout.mul_f64(1.5) {
                    tracing::warn!(round = current, "reveal deadline passed: evaluating");
                    let payload = schedule::evaluate_payload(current);
                    self.act(payload, &format!("EvaluateRound {current}"))
                        .await?;
                }
            }
            pb::RoundPhase::EVALUATED
                if state
                    .verdicts
                    .get(&current)
                    .is_some_and(|v| v.accepted.is_empty()) =>
            {
                // Nothing to aggregate: the round ends now, and the next one starts from the
                // same parent.
                tracing::warn!(round = current, "the verdict accepted nobody: abandoning");
                self.close(current).await?;
            }
            pb::RoundPhase::EVALUATED | pb::RoundPhase::AGGREGATED => {
                if self.since(current, phase) >= self.config.aggregate_timeout {
                    tracing::warn!(
                        round = current,
                        ?phase,
                        "aggregation deadline passed: closing"
                    );
                    self.close(current).await?;
                }
            }
            pb::RoundPhase::ROUND_PHASE_UNSET => {}
        }
        Ok(CoordinatorStatus::Working)
    }

    async fn close(&self, round: u64) -> Result<(), CoordinatorError> {
        let mut payload = pb::BcflPayload::new();
        payload.set_close_round(pb::CloseRound {
            round,
            ..Default::default()
        });
        self.act(payload, &format!("CloseRound {round}")).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::round::memory::MemoryLedger;
    use bcfl_ledger::keys::PrivateKey;

    struct World {
        ledger: Arc<MemoryLedger>,
        admin: Signer,
        admin_hex: String,
        members: Vec<Signer>,
    }

    fn sha(c: char) -> String {
        c.to_string().repeat(64)
    }

    async fn world(members: usize, quorum: u32) -> World {
        world_with(members, quorum, false).await
    }

    /// A world whose sketches come after the commitments when `sealed`.
    async fn world_with(members: usize, quorum: u32, sealed: bool) -> World {
        let ledger = Arc::new(MemoryLedger::new());
        let admin_key = PrivateKey::random();
        let admin_hex = admin_key.to_hex();
        let admin = Signer::new(admin_key);
        let mut params = pb::ConsortiumParams {
            min_participants: quorum,
            commit_quorum: quorum,
            model_id: "test".into(),
            aggregation_rule: pb::AggregationRule::FEDAVG,
            base_model_sha256: sha('b'),
            sketch_length: 4,
            sketch_after_commit: sealed,
            ..Default::default()
        };
        params.initial_model_sha256 = sha('1');
        let mut init = pb::BcflPayload::new();
        init.set_init_consortium(pb::InitConsortium {
            admin_keys: vec![admin.public_key().as_hex().to_owned()].into(),
            params: Some(params).into(),
            ..Default::default()
        });
        ledger.submit(&admin, init, "init").await.unwrap();
        let mut signers = Vec::new();
        for i in 0..members {
            let signer = Signer::new(PrivateKey::random());
            let mut register = pb::BcflPayload::new();
            register.set_register_member(pb::RegisterMember {
                public_key: signer.public_key().as_hex().to_owned(),
                name: format!("m{i}"),
                endpoint: format!("http://127.0.0.1:{}", 7000 + i),
                ..Default::default()
            });
            ledger.submit(&admin, register, "register").await.unwrap();
            signers.push(signer);
        }
        World {
            ledger,
            admin,
            admin_hex,
            members: signers,
        }
    }

    async fn commit(w: &World, member: usize, round: u64) {
        commit_sketched(w, member, round, vec![1, 2, 3, 4]).await;
    }

    async fn commit_sketched(w: &World, member: usize, round: u64, sketch: Vec<u8>) {
        let mut payload = pb::BcflPayload::new();
        payload.set_commit_update(pb::CommitUpdate {
            round,
            update_sha256: sha('e'),
            size_bytes: 10,
            num_samples: 5,
            norm_micro: 1_000_000,
            sketch,
            ..Default::default()
        });
        w.ledger
            .submit(&w.members[member], payload, "commit")
            .await
            .unwrap();
    }

    fn immediate(rounds: u64) -> CoordinatorConfig {
        CoordinatorConfig {
            commit_timeout: Duration::ZERO,
            aggregate_timeout: Duration::ZERO,
            ..CoordinatorConfig::new(rounds)
        }
    }

    /// With sketches after the commitments, the commit deadline seals the round, and the
    /// reveal deadline evaluates it: a committer that never revealed is excluded unscored.
    #[tokio::test]
    async fn a_sealed_round_is_evaluated_at_the_reveal_deadline_without_the_silent() {
        let w = world_with(3, 2, true).await;
        let mut c = Coordinator::new(
            w.ledger.clone(),
            Signer::from_hex(&w.admin_hex).unwrap(),
            immediate(1),
        );
        c.tick(&w.ledger.state().await.unwrap()).await.unwrap();
        commit_sketched(&w, 0, 1, Vec::new()).await;
        commit_sketched(&w, 1, 1, Vec::new()).await;
        let phase = |s: &FamilyState| s.rounds[&1].phase;
        c.tick(&w.ledger.state().await.unwrap()).await.unwrap();
        let state = w.ledger.state().await.unwrap();
        assert_eq!(phase(&state), pb::RoundPhase::SEALED);
        assert_ne!(state.rounds[&1].sketch_seed, 0);
        let mut reveal = pb::BcflPayload::new();
        reveal.set_reveal_sketch(pb::RevealSketch {
            round: 1,
            sketch: vec![4, 3, 2, 1],
            ..Default::default()
        });
        w.ledger
            .submit(&w.members[0], reveal, "reveal")
            .await
            .unwrap();
        c.tick(&w.ledger.state().await.unwrap()).await.unwrap();
        let state = w.ledger.state().await.unwrap();
        assert_eq!(phase(&state), pb::RoundPhase::EVALUATED);
        let verdict = &state.verdicts[&1];
        let (first, second) = (
            w.members[0].public_key().as_hex().to_owned(),
            w.members[1].public_key().as_hex().to_owned(),
        );
        assert_eq!(verdict.accepted.to_vec(), vec![first]);
        assert_eq!(verdict.unrevealed.to_vec(), vec![second]);
    }

    #[tokio::test]
    async fn opens_from_the_initial_model_and_waits_while_members_commit() {
        let w = world(3, 2).await;
        let mut c = Coordinator::new(
            w.ledger.clone(),
            Signer::from_hex(&w.admin_hex).unwrap(),
            CoordinatorConfig::new(2),
        );
        let state = w.ledger.state().await.unwrap();
        assert_eq!(c.tick(&state).await.unwrap(), CoordinatorStatus::Working);
        let state = w.ledger.state().await.unwrap();
        let round = &state.rounds[&1];
        assert_eq!(round.parent_model_sha256, sha('1'));
        assert_eq!(round.phase, pb::RoundPhase::OPEN);
        assert_eq!(round.sync, pb::RoundSync::SYNCHRONOUS);
        // The first member by key aggregates while no link is measured.
        let first = state.members.keys().next().unwrap();
        assert_eq!(&round.aggregator, first);
        // Before the deadline, nothing more happens.
        commit(&w, 0, 1).await;
        c.tick(&w.ledger.state().await.unwrap()).await.unwrap();
        assert_eq!(
            w.ledger.state().await.unwrap().rounds[&1].phase,
            pb::RoundPhase::OPEN
        );
    }

    #[tokio::test]
    async fn a_silent_member_or_aggregator_does_not_stall_the_consortium() {
        let w = world(3, 2).await;
        let mut c = Coordinator::new(
            w.ledger.clone(),
            Signer::from_hex(&w.admin_hex).unwrap(),
            immediate(3),
        );
        c.tick(&w.ledger.state().await.unwrap()).await.unwrap();
        // Round 1: only one member commits, below the quorum: abandoned at the deadline.
        commit(&w, 0, 1).await;
        c.tick(&w.ledger.state().await.unwrap()).await.unwrap();
        let state = w.ledger.state().await.unwrap();
        assert_eq!(state.rounds[&1].phase, pb::RoundPhase::CLOSED);
        assert!(!state.verdicts.contains_key(&1));
        // Round 2 opens from round 1's parent; it becomes the next tick's work.
        c.tick(&state).await.unwrap();
        let state = w.ledger.state().await.unwrap();
        assert_eq!(state.rounds[&2].parent_model_sha256, sha('1'));
        // Round 2: two of three commit (the quorum); the aggregator never evaluates: the
        // coordinator does at the deadline, then abandons the round nobody aggregates.
        commit(&w, 0, 2).await;
        commit(&w, 1, 2).await;
        c.tick(&w.ledger.state().await.unwrap()).await.unwrap();
        let state = w.ledger.state().await.unwrap();
        assert_eq!(state.rounds[&2].phase, pb::RoundPhase::EVALUATED);
        assert_eq!(state.verdicts[&2].accepted.len(), 2);
        c.tick(&state).await.unwrap();
        let state = w.ledger.state().await.unwrap();
        assert_eq!(state.rounds[&2].phase, pb::RoundPhase::CLOSED);
        // Round 3's aggregator is one of round 2's committers (the silent one is passed over).
        c.tick(&state).await.unwrap();
        let state = w.ledger.state().await.unwrap();
        let aggregator = &state.rounds[&3].aggregator;
        assert!(state.rounds[&2].committers.contains(aggregator));
        // Closing round 3 finishes the schedule.
        let mut close = pb::BcflPayload::new();
        close.set_close_round(pb::CloseRound {
            round: 3,
            ..Default::default()
        });
        w.ledger.submit(&w.admin, close, "close").await.unwrap();
        let state = w.ledger.state().await.unwrap();
        assert_eq!(c.tick(&state).await.unwrap(), CoordinatorStatus::Finished);
    }

    #[tokio::test]
    async fn a_round_whose_verdict_accepted_nobody_is_abandoned_at_once() {
        let w = world(3, 2).await;
        let mut c = Coordinator::new(
            w.ledger.clone(),
            Signer::from_hex(&w.admin_hex).unwrap(),
            CoordinatorConfig::new(2),
        );
        c.tick(&w.ledger.state().await.unwrap()).await.unwrap();
        commit(&w, 0, 1).await;
        commit(&w, 1, 1).await;
        let mut evaluate = pb::BcflPayload::new();
        evaluate.set_evaluate_round(pb::EvaluateRound {
            round: 1,
            ..Default::default()
        });
        w.ledger
            .submit(&w.admin, evaluate, "evaluate")
            .await
            .unwrap();
        // A verdict that accepted someone waits for the aggregator (the deadline is far).
        let state = w.ledger.state().await.unwrap();
        c.tick(&state).await.unwrap();
        assert_eq!(
            w.ledger.state().await.unwrap().rounds[&1].phase,
            pb::RoundPhase::EVALUATED
        );
        // One that accepted nobody (every detector flagged everyone) ends the round now.
        let mut nobody = state.clone();
        nobody.verdicts.get_mut(&1).unwrap().accepted.clear();
        c.tick(&nobody).await.unwrap();
        let state = w.ledger.state().await.unwrap();
        assert_eq!(state.rounds[&1].phase, pb::RoundPhase::CLOSED);
        c.tick(&state).await.unwrap();
        let state = w.ledger.state().await.unwrap();
        assert_eq!(state.rounds[&2].parent_model_sha256, sha('1'));
    }

    #[tokio::test]
    async fn buffered_rounds_record_their_mode_and_evaluate_at_k() {
        let w = world(3, 3).await;
        let config = CoordinatorConfig {
            synchrony: Synchrony::BufferedAsync,
            buffer: 2,
            max_staleness: 1,
            ..immediate(2)
        };
        let mut c = Coordinator::new(
            w.ledger.clone(),
            Signer::from_hex(&w.admin_hex).unwrap(),
            config,
        );
        c.tick(&w.ledger.state().await.unwrap()).await.unwrap();
        let state = w.ledger.state().await.unwrap();
        let round = &state.rounds[&1];
        assert_eq!(round.sync, pb::RoundSync::BUFFERED_ASYNC);
        assert_eq!((round.buffer_size, round.max_staleness), (2, 1));
        // K = 2 commitments are enough, although the consortium's quorum is 3.
        commit(&w, 0, 1).await;
        commit(&w, 1, 1).await;
        assert_eq!(
            schedule::evaluation_quorum(&w.ledger.state().await.unwrap(), round),
            2
        );
        c.tick(&w.ledger.state().await.unwrap()).await.unwrap();
        assert_eq!(
            w.ledger.state().await.unwrap().rounds[&1].phase,
            pb::RoundPhase::EVALUATED
        );
    }

    #[test]
    fn server_mode_needs_a_server() {
        let mut config = CoordinatorConfig::new(1);
        config.topology = Topology::Server;
        assert!(config.validate().is_err());
        config.server = Some("02ab".into());
        assert!(config.validate().is_ok());
        let payload = config.open_payload(1, &sha('p'), "02ab");
        assert_eq!(payload.get_open_round().mode, pb::RoundMode::SERVER);
    }
}
