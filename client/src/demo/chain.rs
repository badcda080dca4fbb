//! The demo's ledger side: each transaction of the `bcfl` family a round needs, signed by the
//! member whose role it is and submitted until it commits, and the reads the members make.
//!
//! Payloads go through [`BcflTransaction`], which runs the processor's own payload checks
//! before signing, and [`RestClient::submit`], which turns a rejected batch into an error
//! carrying the processor's message.

use std::time::Duration;

use anyhow::{anyhow, bail, Context as _};
use bcfl_protos::bcfl as pb;

use crate::fixed;
use crate::ledger::family::BcflTransaction;
use crate::ledger::keys::Signer;
use crate::ledger::rest::{BatchStatusKind, RestClient};
use crate::ledger::state::{BcflReader, FamilyState};
use crate::train::aggregate::Rule;
use crate::train::sketch::UpdateStats;

/// A ledger the demo writes to and reads from.
#[derive(Debug, Clone)]
pub struct Chain {
    reader: BcflReader,
    wait: Duration,
}

impl Chain {
    /// The ledger behind `client`; submissions wait up to `wait` to commit.
    pub fn new(client: RestClient, wait: Duration) -> Self {
        Self {
            reader: BcflReader::new(client),
            wait,
        }
    }

    /// The REST client.
    pub fn client(&self) -> &RestClient {
        self.reader.client()
    }

    /// The state reader.
    pub fn reader(&self) -> &BcflReader {
        &self.reader
    }

    /// The whole family state at the chain head.
    pub async fn state(&self) -> anyhow::Result<FamilyState> {
        self.reader
            .family_state(None)
            .await
            .context("reading the family state")
    }

    /// The time a submission waits to commit.
    pub fn wait(&self) -> Duration {
        self.wait
    }

    /// Signs `payload` with `signer`, submits it and waits until it commits; `what` names the
    /// action in errors.
    pub async fn submit(
        &self,
        signer: &Signer,
        payload: pb::BcflPayload,
        what: &str,
    ) -> anyhow::Result<()> {
        let batches = BcflTransaction::new(payload)
            .into_batch_list(signer)
            .with_context(|| format!("building {what}"))?;
        let statuses = self
            .client()
            .submit(&batches, Some(self.wait))
            .await
            .with_context(|| format!("{what} was not accepted"))?;
        if let Some(open) = statuses
            .iter()
            .find(|s| s.status != BatchStatusKind::Committed)
        {
            bail!(
                "{what}: batch {} is still {} after {} s (is bcfl-tp connected to the ledger?)",
                open.id,
                open.status,
                self.wait.as_secs()
            );
        }
        tracing::debug!(%what, signer = signer.public_key().as_hex(), "committed");
        Ok(())
    }

    /// `InitConsortium` with `admin` as the only admin.
    pub async fn init_consortium(
        &self,
        admin: &Signer,
        params: pb::ConsortiumParams,
    ) -> anyhow::Result<()> {
        if self.reader.consortium(None).await?.is_some() {
            bail!(
                "the ledger at {} already holds a consortium: the demo needs a fresh ledger \
                 (scripts/demo.sh starts one)",
                self.client().base_url()
            );
        }
        let mut payload = pb::BcflPayload::new();
        payload.set_init_consortium(pb::InitConsortium {
            admin_keys: vec![admin.public_key().as_hex().to_owned()].into(),
            params: Some(params).into(),
            ..Default::default()
        });
        self.submit(admin, payload, "InitConsortium").await
    }

    /// `RegisterMember`, signed by the admin.
    pub async fn register(
        &self,
        admin: &Signer,
        key: &str,
        name: &str,
        endpoint: &str,
    ) -> anyhow::Result<()> {
        let mut payload = pb::BcflPayload::new();
        payload.set_register_member(pb::RegisterMember {
            public_key: key.to_owned(),
            name: name.to_owned(),
            endpoint: endpoint.to_owned(),
            ..Default::default()
        });
        self.submit(admin, payload, &format!("RegisterMember {name}"))
            .await
    }

    /// `OpenRound` of the next round from `parent`, signed by the admin.
    pub async fn open_round(
        &self,
        admin: &Signer,
        round: u64,
        parent: &str,
        aggregator: &str,
    ) -> anyhow::Result<()> {
        let mut payload = pb::BcflPayload::new();
        payload.set_open_round(pb::OpenRound {
            round,
            parent_model_sha256: parent.to_owned(),
            aggregator: aggregator.to_owned(),
            mode: pb::RoundMode::SERVERLESS,
            ..Default::default()
        });
        self.submit(admin, payload, &format!("OpenRound {round}"))
            .await
    }

    /// `CommitUpdate` of a member's blob and its statistics.
    pub async fn commit_update(
        &self,
        member: &Signer,
        round: u64,
        sha256: &str,
        size: u64,
        stats: &UpdateStats,
    ) -> anyhow::Result<()> {
        let mut payload = pb::BcflPayload::new();
        payload.set_commit_update(pb::CommitUpdate {
            round,
            update_sha256: sha256.to_owned(),
            size_bytes: size,
            num_samples: stats.samples,
            loss_micro: fixed::f64_to_micro(stats.loss).context("the training loss")?,
            norm_micro: fixed::f64_to_micro_unsigned(stats.l2_norm).context("the update norm")?,
            sketch: stats.sketch.clone(),
            // Empty: fetched by hash from the member's registered endpoint.
            blob_uri: String::new(),
            ..Default::default()
        });
        self.submit(member, payload, &format!("CommitUpdate {round}"))
            .await
    }

    /// `EvaluateRound`: the processor computes and stores the verdict.
    pub async fn evaluate(&self, signer: &Signer, round: u64) -> anyhow::Result<pb::Verdict> {
        let mut payload = pb::BcflPayload::new();
        payload.set_evaluate_round(pb::EvaluateRound {
            round,
            ..Default::default()
        });
        self.submit(signer, payload, &format!("EvaluateRound {round}"))
            .await?;
        self.reader
            .verdict(round, None)
            .await?
            .ok_or_else(|| anyhow!("round {round} was evaluated but holds no verdict"))
    }

    /// `CommitAggregate` of the global model, contributors and exclusions from the verdict.
    pub async fn commit_aggregate(
        &self,
        aggregator: &Signer,
        verdict: &pb::Verdict,
        rule: pb::AggregationRule,
        sha256: &str,
        size: u64,
    ) -> anyhow::Result<()> {
        let mut payload = pb::BcflPayload::new();
        payload.set_commit_aggregate(pb::CommitAggregate {
            round: verdict.round,
            model_sha256: sha256.to_owned(),
            contributors: verdict.accepted.clone(),
            rule,
            excluded: verdict.excluded.clone(),
            size_bytes: size,
            blob_uri: String::new(),
            ..Default::default()
        });
        self.submit(
            aggregator,
            payload,
            &format!("CommitAggregate {}", verdict.round),
        )
        .await
    }

    /// `CloseRound` (by the aggregator after the aggregate, or by the admin to abandon).
    pub async fn close_round(&self, signer: &Signer, round: u64) -> anyhow::Result<()> {
        let mut payload = pb::BcflPayload::new();
        payload.set_close_round(pb::CloseRound {
            round,
            ..Default::default()
        });
        self.submit(signer, payload, &format!("CloseRound {round}"))
            .await
    }
}

/// The aggregation rule of the consortium's parameters, as the training engine runs it.
pub fn engine_rule(params: &pb::ConsortiumParams) -> anyhow::Result<Rule> {
    Ok(match params.aggregation_rule {
        pb::AggregationRule::FEDAVG => Rule::FedAvg,
        pb::AggregationRule::MEDIAN => Rule::Median,
        pb::AggregationRule::TRIMMED_MEAN => Rule::TrimmedMean {
            trim: f64::from(params.trim_ppm) / 1e6,
        },
        pb::AggregationRule::KRUM => Rule::Krum {
            f: params.krum_byzantine as usize,
        },
        pb::AggregationRule::MULTI_KRUM => Rule::MultiKrum {
            f: params.krum_byzantine as usize,
            k: params.krum_select as usize,
        },
        pb::AggregationRule::AGGREGATION_RULE_UNSET => {
            bail!("the consortium has no aggregation rule")
        }
    })
}
