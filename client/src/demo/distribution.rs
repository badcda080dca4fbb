//! The end of a round: the global model goes from the aggregator to every member along routed
//! paths, and each member checks its copy against the aggregate on chain before loading it.

use std::collections::BTreeSet;
use std::time::Instant;

use anyhow::anyhow;
use bcfl_processor::graph::{BandwidthGraph, Routing, TransferModel};

use super::member::CHUNK_SIZE;
use super::report::{AggregateReport, DeliveryRow, MemberRound};
use super::round::{graph_without, FETCH_ATTEMPTS};
use super::Demo;
use crate::net::manifest::BlobId;
use crate::net::route::{distribute, fetch_routed, RoutePolicy};

impl Demo {
    /// Distributes the global model from the aggregator along the shortest-path tree of the
    /// routing graph to the accepted members, then to each excluded member as a leaf; every
    /// member then checks its copy against the aggregate on chain and loads it.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn distribute_and_verify(
        &mut self,
        round: u64,
        aggregator: usize,
        id: &BlobId,
        size: u64,
        measured: &BandwidthGraph,
        removed: &BTreeSet<String>,
        excluded: &BTreeSet<String>,
        rows: &mut [MemberRound],
    ) -> anyhow::Result<AggregateReport> {
        let agg_key = self.members[aggregator].key().to_owned();
        let policy = RoutePolicy {
            routing: Routing::Shortest,
            model: TransferModel::new(size.max(1) as f64, CHUNK_SIZE as f64)?,
            max_attempts: FETCH_ATTEMPTS,
        };
        let routing = graph_without(measured, removed)?;
        let trusted = self.peers(|m| !removed.contains(m.key()));
        let started = Instant::now();
        let distribution = distribute(
            &self.http,
            &routing,
            &trusted,
            &policy,
            id,
            &agg_key,
            |_| {},
        )
        .await?;
        let mut deliveries: Vec<DeliveryRow> = distribution
            .deliveries
            .iter()
            .map(|d| DeliveryRow {
                member: self.name_of(&d.node),
                path: self.names(&d.path),
                seconds: d.seconds,
                error: d.error.clone(),
            })
            .collect();
        let holders: Vec<String> = distribution
            .deliveries
            .iter()
            .filter(|d| d.error.is_none())
            .map(|d| d.node.clone())
            .chain([agg_key.clone()])
            .collect();
        let all = self.peers(|_| true);
        for key in removed {
            let others: BTreeSet<String> = excluded.iter().filter(|k| *k != key).cloned().collect();
            let graph = graph_without(measured, &others)?;
            let member = &self.members[self.index_of(key)?];
            let outcome =
                fetch_routed(member.transfers(), &graph, &all, &policy, id, &holders, key).await;
            deliveries.push(DeliveryRow {
                member: member.name().to_owned(),
                path: outcome
                    .as_ref()
                    .ok()
                    .and_then(|d| d.attempts.last())
                    .map(|a| self.names(&a.path))
                    .unwrap_or_default(),
                seconds: outcome
                    .as_ref()
                    .ok()
                    .map(|_| started.elapsed().as_secs_f64()),
                error: outcome.err().map(|e| e.to_string()),
            });
        }
        let distribution_s = started.elapsed().as_secs_f64();

        let on_chain = self
            .chain
            .reader()
            .aggregate(round, None)
            .await?
            .ok_or_else(|| anyhow!("round {round} has no aggregate on chain"))?;
        for (i, row) in rows.iter_mut().enumerate() {
            let member = &mut self.members[i];
            match member.load_verified_global(&on_chain.model_sha256) {
                Ok(()) => row.holds_global = true,
                Err(e) => {
                    tracing::error!(member = member.name(), error = %format!("{e:#}"), "global model not loaded");
                    if let Some(d) = deliveries.iter_mut().find(|d| d.member == member.name()) {
                        d.error.get_or_insert_with(|| format!("{e:#}"));
                    }
                }
            }
        }
        Ok(AggregateReport {
            sha256: on_chain.model_sha256,
            bytes: size,
            contributors: Vec::new(),
            selected: Vec::new(),
            deliveries,
            distribution_s,
        })
    }
}
