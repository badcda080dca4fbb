//! One round of the demo, phase by phase (the protocol is in the `demo` module docs).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{anyhow, Context as _};
use bcfl_processor::graph::{BandwidthGraph, CentreCriterion, Routing, TransferModel};
use bcfl_processor::limits::LINK_SAMPLES_KEPT;
use bcfl_protos::bcfl as pb;

use super::attack::delta;
use super::chain::engine_rule;
use super::member::{Member, CHUNK_SIZE};
use super::report::{AggregateReport, FetchRow, MemberRound, RoundReport, Timings};
use super::Demo;
use crate::ledger::state::FamilyState;
use crate::net::manifest::BlobId;
use crate::net::probe::{submit_sweep, sweep, ProbeConfig};
use crate::net::route::{fetch_routed, Peers, RoutePolicy};
use crate::train::aggregate::{aggregate, Contribution};
use crate::train::sketch::UpdateStats;
use crate::train::trainer::{evaluate, train, Evaluation, TrainConfig};
use crate::train::update::{Encoding, Update};

/// Re-routes a failed fetch this many times before giving up on the update.
pub(super) const FETCH_ATTEMPTS: usize = 3;

/// Runs `job` on the blocking pool (training, aggregation and scoring keep the async runtime,
/// and so the members' blob servers, free).
async fn blocking<T: Send + 'static>(
    job: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
) -> anyhow::Result<T> {
    tokio::task::spawn_blocking(job)
        .await
        .map_err(|e| anyhow!("a blocking task failed: {e}"))?
}

fn method_name(method: pb::AnomalyMethod) -> &'static str {
    match method {
        pb::AnomalyMethod::PAGERANK => "pagerank",
        pb::AnomalyMethod::DBSCAN => "dbscan",
        pb::AnomalyMethod::MODIFIED_ZSCORE => "zscore",
        pb::AnomalyMethod::ANOMALY_METHOD_UNSET => "unset",
    }
}

/// The methods that flagged each member.
fn flags(verdict: &pb::Verdict) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for method in &verdict.methods {
        for score in method.scores.iter().filter(|s| s.flagged) {
            out.entry(score.member.clone())
                .or_default()
                .push(method_name(method.method).to_owned());
        }
    }
    out
}

/// The measured graph of the ledger's links without `removed` (nodes not in it are ignored).
pub(super) fn graph_without(
    graph: &BandwidthGraph,
    removed: &BTreeSet<String>,
) -> anyhow::Result<BandwidthGraph> {
    let present: Vec<&String> = removed.iter().filter(|n| graph.contains(n)).collect();
    Ok(graph.without_nodes(&present)?)
}

impl Demo {
    pub(super) fn name_of(&self, key: &str) -> String {
        self.members.iter().find(|m| m.key() == key).map_or_else(
            || key[..12.min(key.len())].to_owned(),
            |m| m.name().to_owned(),
        )
    }

    pub(super) fn names(&self, path: &[String]) -> Vec<String> {
        path.iter().map(|k| self.name_of(k)).collect()
    }

    pub(super) fn index_of(&self, key: &str) -> anyhow::Result<usize> {
        self.members
            .iter()
            .position(|m| m.key() == key)
            .ok_or_else(|| anyhow!("{key} is not a member of this demo"))
    }

    pub(super) fn peers(&self, keep: impl Fn(&Member) -> bool) -> Peers {
        Peers(
            self.members
                .iter()
                .filter(|m| keep(m))
                .map(|m| (m.key().to_owned(), m.info().endpoint.clone()))
                .collect(),
        )
    }

    /// The parent model of `round` by the family's rule: the base model for round 1, else the
    /// previous aggregate, else (abandoned) the previous round's parent.
    async fn parent_of(&self, round: u64) -> anyhow::Result<String> {
        if round == 1 {
            return Ok(self.params.base_model_sha256.clone());
        }
        let reader = self.chain.reader();
        if let Some(aggregate) = reader.aggregate(round - 1, None).await? {
            return Ok(aggregate.model_sha256);
        }
        Ok(reader
            .round(round - 1, None)
            .await?
            .ok_or_else(|| anyhow!("round {} is not on chain", round - 1))?
            .parent_model_sha256)
    }

    /// Round 1: the first member. Later: the centre of the measured graph among the members
    /// the last verdict accepted (the first of them when no centre can be computed).
    fn choose_aggregator(&self, state: &FamilyState, round: u64) -> anyhow::Result<String> {
        let previous = state.verdicts.get(&(round.saturating_sub(1)));
        let candidates: BTreeSet<String> = self
            .members
            .iter()
            .map(|m| m.key().to_owned())
            .filter(|k| previous.is_none_or(|v| !v.excluded.contains(k)))
            .collect();
        let first = candidates
            .iter()
            .next()
            .cloned()
            .ok_or_else(|| anyhow!("no member is left to aggregate"))?;
        if round == 1 {
            return Ok(self.members[0].key().to_owned());
        }
        if candidates.len() == 1 {
            return Ok(first);
        }
        let links = state
            .links
            .values()
            .filter(|l| candidates.contains(&l.from) && candidates.contains(&l.to));
        let graph = BandwidthGraph::from_ledger_links(links, LINK_SAMPLES_KEPT)?;
        let model = TransferModel::new(CHUNK_SIZE as f64, CHUNK_SIZE as f64)?;
        match graph.centre(&model, CentreCriterion::MinMax) {
            Ok(centre) => Ok(centre.node.as_str().to_owned()),
            Err(e) => {
                tracing::warn!(error = %e, "no graph centre; the first accepted member aggregates");
                Ok(first)
            }
        }
    }

    /// Member `i` fine-tunes its verified global model, writes its (possibly attacked) update
    /// blob and commits it with its statistics.
    async fn train_and_commit(&self, round: u64, i: usize) -> anyhow::Result<MemberRound> {
        let member = &self.members[i];
        let (_, parent) = member
            .global()
            .cloned()
            .ok_or_else(|| anyhow!("{} holds no global model", member.name()))?;
        let config = TrainConfig {
            seed: self.args.seed ^ (round << 32 | i as u64),
            ..self.args.local_config()
        };
        let (engine, shard, attack) = (
            self.engine.clone(),
            Arc::new(member.shard().clone()),
            member.info().attack,
        );
        let started = Instant::now();
        let samples = shard.len() as u64;
        let sketch_length = self.params.sketch_length as usize;
        let (sent, stats) = blocking(move || {
            let engine = engine
                .lock()
                .map_err(|_| anyhow!("the engine lock is poisoned"))?;
            parent.apply_to(engine.model.trainable())?;
            let history = train(
                &engine.model,
                &engine.encoder,
                &shard,
                &config,
                false,
                |_| Ok(()),
            )?;
            let local = Update::from_store(engine.model.trainable())?;
            let sent = match attack {
                Some(kind) => kind.apply(&parent, &local, config.seed)?,
                None => local,
            };
            let loss = history.last().map_or(0.0, |h| h.loss);
            let change = delta(&sent, &parent)?;
            let stats = UpdateStats::new(&change, samples, loss, sketch_length, round);
            Ok((sent, stats))
        })
        .await?;
        let train_s = started.elapsed().as_secs_f64();
        let bytes = sent.to_bytes(Encoding::F32);
        let id = member.store().insert_bytes(&bytes).await?;
        self.chain
            .commit_update(
                member.signer(),
                round,
                id.as_str(),
                bytes.len() as u64,
                &stats,
            )
            .await
            .with_context(|| format!("{} committing its update", member.name()))?;
        Ok(MemberRound {
            member: member.name().to_owned(),
            attack,
            samples,
            loss: stats.loss,
            norm: stats.l2_norm,
            sha256: id.to_string(),
            bytes: bytes.len() as u64,
            train_s,
            accepted: false,
            flagged_by: Vec::new(),
            fetch: None,
            holds_global: false,
        })
    }

    /// Every member probes every other and reports the links of the round on chain.
    async fn probe(&self, round: u64) -> anyhow::Result<()> {
        let peers = self.peers(|_| true);
        let config = ProbeConfig {
            bytes: self.args.probe_bytes,
            rtt_samples: 3,
        };
        for m in &self.members {
            let result = sweep(&self.http, &peers, m.key(), &config).await;
            for (peer, error) in &result.failed {
                tracing::warn!(member = m.name(), peer = %self.name_of(peer), %error, "probe failed");
            }
            if result.links.is_empty() {
                continue;
            }
            submit_sweep(
                self.chain.client(),
                m.signer(),
                round,
                &result.links,
                Some(self.chain.wait()),
            )
            .await
            .with_context(|| format!("{} reporting its links", m.name()))?;
        }
        Ok(())
    }

    /// The aggregator fetches and verifies every accepted update; the first failure is the
    /// reason to abandon the round.
    async fn fetch_accepted(
        &self,
        aggregator: usize,
        state: &FamilyState,
        verdict: &pb::Verdict,
        routing: &BandwidthGraph,
        rows: &mut [MemberRound],
    ) -> anyhow::Result<(Vec<Contribution>, Option<String>)> {
        let agg = &self.members[aggregator];
        let peers = self.peers(|_| true);
        let mut contributions = Vec::new();
        let mut failure = None;
        for key in &verdict.accepted {
            let i = self.index_of(key)?;
            let commitment = state
                .commitments
                .get(&(verdict.round, key.clone()))
                .ok_or_else(|| anyhow!("no commitment of {} on chain", self.name_of(key)))?;
            let id = BlobId::parse(&commitment.update_sha256)?;
            let policy = RoutePolicy {
                routing: Routing::Shortest,
                model: TransferModel::new(commitment.size_bytes.max(1) as f64, CHUNK_SIZE as f64)?,
                max_attempts: FETCH_ATTEMPTS,
            };
            let mut row = if i == aggregator {
                FetchRow {
                    path: vec![agg.name().to_owned()],
                    seconds: 0.0,
                    attempts: 0,
                    error: None,
                }
            } else {
                match fetch_routed(
                    agg.transfers(),
                    routing,
                    &peers,
                    &policy,
                    &id,
                    std::slice::from_ref(key),
                    agg.key(),
                )
                .await
                {
                    Ok(done) => FetchRow {
                        path: self.names(
                            &done
                                .attempts
                                .last()
                                .map(|a| a.path.clone())
                                .unwrap_or_default(),
                        ),
                        seconds: done.report.seconds,
                        attempts: done.attempts.len(),
                        error: None,
                    },
                    Err(e) => FetchRow {
                        path: Vec::new(),
                        seconds: 0.0,
                        attempts: FETCH_ATTEMPTS,
                        error: Some(e.to_string()),
                    },
                }
            };
            if row.error.is_none() {
                // Checked again here, against the commitment: the store's name of a blob is
                // its hash, and this is the hash and size the member committed.
                match agg.read_verified(&id) {
                    Ok(bytes) if bytes.len() as u64 == commitment.size_bytes => {}
                    Ok(bytes) => {
                        row.error = Some(format!(
                            "{} bytes, the commitment says {}",
                            bytes.len(),
                            commitment.size_bytes
                        ))
                    }
                    Err(e) => row.error = Some(format!("{e:#}")),
                }
            }
            if let Some(error) = &row.error {
                tracing::error!(member = %self.name_of(key), %error, "update not usable");
                failure.get_or_insert_with(|| {
                    format!(
                        "the update of {} could not be fetched and verified: {error}",
                        self.name_of(key)
                    )
                });
            } else {
                contributions.push(Contribution {
                    member: key.clone(),
                    path: agg.store().path(&id),
                    samples: commitment.num_samples,
                });
            }
            rows[i].fetch = Some(row);
        }
        Ok((contributions, failure))
    }
}

impl Demo {
    /// Runs round `round` from opening to the verified global model on every member.
    pub async fn round(&mut self, round: u64) -> anyhow::Result<RoundReport> {
        let started = Instant::now();
        let mut timings = Timings::default();
        let parent = self.parent_of(round).await?;
        let aggregator_key = self.choose_aggregator(&self.chain.state().await?, round)?;
        let aggregator = self.index_of(&aggregator_key)?;
        self.chain
            .open_round(&self.admin, round, &parent, &aggregator_key)
            .await?;

        let mut rows = Vec::with_capacity(self.members.len());
        for i in 0..self.members.len() {
            rows.push(self.train_and_commit(round, i).await?);
        }
        timings.train_s = started.elapsed().as_secs_f64();

        let phase = Instant::now();
        self.probe(round).await?;
        timings.probe_s = phase.elapsed().as_secs_f64();

        let phase = Instant::now();
        let verdict = self
            .chain
            .evaluate(self.members[aggregator].signer(), round)
            .await?;
        timings.evaluate_s = phase.elapsed().as_secs_f64();
        let flagged = flags(&verdict);
        for (row, member) in rows.iter_mut().zip(&self.members) {
            row.accepted = verdict.accepted.iter().any(|k| k == member.key());
            row.flagged_by = flagged.get(member.key()).cloned().unwrap_or_default();
        }
        let excluded: BTreeSet<String> = verdict.excluded.iter().cloned().collect();

        // The routing graph: the ledger's links with the excluded members removed (the
        // aggregator stays: it is the destination even when flagged itself).
        let phase = Instant::now();
        let state = self.chain.state().await?;
        let measured = BandwidthGraph::from_ledger_links(state.links.values(), LINK_SAMPLES_KEPT)?;
        let mut removed = excluded.clone();
        removed.remove(&aggregator_key);
        let routing = graph_without(&measured, &removed)?;
        let (contributions, failure) = if verdict.accepted.is_empty() {
            (
                Vec::new(),
                Some("the verdict accepted no member".to_owned()),
            )
        } else {
            self.fetch_accepted(aggregator, &state, &verdict, &routing, &mut rows)
                .await?
        };
        timings.fetch_s = phase.elapsed().as_secs_f64();

        let (aggregate, abandoned) = match failure {
            Some(reason) => {
                self.chain.close_round(&self.admin, round).await?;
                (None, Some(reason))
            }
            None => {
                let phase = Instant::now();
                let (id, bytes, selected) = self
                    .aggregate_and_commit(aggregator, &verdict, contributions)
                    .await?;
                timings.aggregate_s = phase.elapsed().as_secs_f64();
                let phase = Instant::now();
                let report = self
                    .distribute_and_verify(
                        round, aggregator, &id, bytes, &measured, &removed, &excluded, &mut rows,
                    )
                    .await?;
                self.chain
                    .close_round(self.members[aggregator].signer(), round)
                    .await?;
                timings.distribute_s = phase.elapsed().as_secs_f64();
                (
                    Some(AggregateReport {
                        selected: self.names(&selected),
                        contributors: self.names(&verdict.accepted),
                        ..report
                    }),
                    None,
                )
            }
        };
        let test = self.score(aggregator).await?;
        timings.round_s = started.elapsed().as_secs_f64();
        Ok(RoundReport {
            round,
            aggregator: self.members[aggregator].name().to_owned(),
            parent_sha256: parent,
            members: rows,
            excluded: self.names(&verdict.excluded),
            aggregate,
            abandoned,
            test,
            timings,
        })
    }

    /// Aggregates the verified updates with the consortium's rule (in key order, bit-exact),
    /// stores the global model with the aggregator and commits it.
    async fn aggregate_and_commit(
        &self,
        aggregator: usize,
        verdict: &pb::Verdict,
        contributions: Vec<Contribution>,
    ) -> anyhow::Result<(BlobId, u64, Vec<String>)> {
        let rule = engine_rule(&self.params)?;
        let combined = blocking(move || Ok(aggregate(contributions, rule)?)).await?;
        let bytes = combined.update.to_bytes(Encoding::F32);
        let agg = &self.members[aggregator];
        let id = agg.store().insert_bytes(&bytes).await?;
        self.chain
            .commit_aggregate(
                agg.signer(),
                verdict,
                self.params.aggregation_rule,
                id.as_str(),
                bytes.len() as u64,
            )
            .await?;
        Ok((id, bytes.len() as u64, combined.selected))
    }

    /// The test score of the aggregator's global model (the parent again after an abandoned
    /// round).
    async fn score(&self, aggregator: usize) -> anyhow::Result<Evaluation> {
        let (_, global) = self.members[aggregator]
            .global()
            .cloned()
            .ok_or_else(|| anyhow!("the aggregator holds no global model"))?;
        let (engine, test) = (self.engine.clone(), self.test.clone());
        blocking(move || {
            let engine = engine
                .lock()
                .map_err(|_| anyhow!("the engine lock is poisoned"))?;
            global.apply_to(engine.model.trainable())?;
            Ok(evaluate(&engine.model, &engine.encoder, &test, 64)?)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_list_the_methods_per_member() {
        let score = |member: &str, flagged| pb::MemberScore {
            member: member.into(),
            flagged,
            ..Default::default()
        };
        let verdict = pb::Verdict {
            methods: vec![
                pb::MethodVerdict {
                    method: pb::AnomalyMethod::MODIFIED_ZSCORE,
                    scores: vec![score("a", false), score("b", true)].into(),
                    ..Default::default()
                },
                pb::MethodVerdict {
                    method: pb::AnomalyMethod::DBSCAN,
                    scores: vec![score("a", false), score("b", true)].into(),
                    ..Default::default()
                },
            ]
            .into(),
            ..Default::default()
        };
        let flagged = flags(&verdict);
        assert_eq!(flagged.len(), 1);
        assert_eq!(flagged["b"], vec!["zscore", "dbscan"]);
    }
}
