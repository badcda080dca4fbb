//! `bcfl audit replay N`: recompute round N's aggregate from the blobs its commitments name and
//! compare it with the model hash on chain.
//!
//! The auditor reads the family state, builds the round's [`AggregatePlan`] (the accepted
//! commitments, their weights, the rule: the aggregator's own function), gathers the blobs it
//! needs (files under `--blobs` first, then each update from the member that committed it and
//! each model from any active member, every blob checked against its hash as it arrives), and
//! recomputes the aggregate. It also rechecks every `DisputeCommitment` of the round as the
//! verifier committee does: the disputed member's blob and the model it was trained from,
//! statistics recomputed ([`bcfl_fed::verify`]); a disputed blob nobody serves leaves that
//! dispute unverified (reported, not a failure: the disputed member can clear itself by serving
//! it). Exit status 0 when the recomputed hash and size match what `CommitAggregate` recorded
//! (the contributors are the verdict's accepted members, which the rules hold the aggregate to)
//! and every verifiable dispute holds; 1 when anything differs; an
//! error (exit 2) when a blob of the aggregate cannot be had or does not match its commitment.
//! No libtorch is loaded.
//!
//! Blob servers answer only members and admins: fetches are signed with `--key` when one can
//! be read (without one, only `--blobs` can supply the blobs).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context as _};
use bcfl_client::round::replay::AggregatePlan;
use bcfl_client::round::Error as RoundError;
use bcfl_fed::digest::file_sha256;
use bcfl_ledger::state::FamilyState;
use bcfl_net::auth::PeerClient;
use bcfl_net::blob::BlobStore;
use bcfl_net::manifest::BlobId;
use bcfl_net::registry::Registry;
use bcfl_net::transfer::{http_client, Transfers};
use bcfl_protos::bcfl as pb;
use serde_json::json;

use super::Context;

/// Chunk size of the auditor's blob store (as a member's).
const CHUNK_SIZE: u64 = 1 << 20;

/// Arguments of `audit replay`.
#[derive(Debug, clap::Args)]
pub(crate) struct ReplayArgs {
    /// Round number.
    round: u64,
    /// A folder of blobs the auditor already holds (any file names; repeatable): each file
    /// whose SHA-256 the round needs is used instead of fetching it.
    #[arg(long, value_name = "DIR")]
    blobs: Vec<PathBuf>,
    /// Keep the blobs in this blob store folder [default: a temporary folder, removed after].
    #[arg(long, value_name = "DIR")]
    store: Option<PathBuf>,
}

pub(crate) async fn replay(ctx: &Context, args: ReplayArgs) -> anyhow::Result<ExitCode> {
    let n = args.round;
    let state = ctx.reader()?.family_state(None).await?;
    let stored = state
        .aggregates
        .get(&n)
        .cloned()
        .ok_or_else(|| anyhow!("round {n} has no aggregate on chain yet"))?;
    let plan = AggregatePlan::of(&state, n)?;
    let temporary = match &args.store {
        Some(_) => None,
        None => Some(tempfile::tempdir().context("creating a temporary blob store")?),
    };
    let dir = args
        .store
        .clone()
        .or_else(|| temporary.as_ref().map(|t| t.path().to_owned()))
        .expect("a store folder");
    let store = Arc::new(
        BlobStore::open(&dir, CHUNK_SIZE).with_context(|| format!("opening {}", dir.display()))?,
    );
    // Only registered members are contacted, at their endpoints on chain.
    let registry = Registry::new(None);
    registry.update_from_state(&state);
    let http = http_client(Duration::from_secs(3));
    let http = match ctx.signer() {
        Ok(signer) => PeerClient::new(http, Arc::new(signer)),
        Err(_) => PeerClient::unsigned(http),
    };
    let transfers = Arc::new(Transfers::new(store.clone(), http).with_registry(registry));

    let mut fetched = Vec::new();
    // Each blob with its size when the chain records it, and who may hold it.
    let mut needed: Vec<(String, Option<u64>, Vec<String>)> = plan
        .updates
        .iter()
        .map(|u| (u.sha256.clone(), Some(u.size_bytes), vec![u.member.clone()]))
        .collect();
    // Withdrawn updates of the round before: its aggregator holds them, and their members.
    let aggregator_before = state
        .aggregates
        .get(&n.saturating_sub(1))
        .map(|a| a.submitted_by.clone());
    needed.extend(plan.withdrawn.iter().map(|u| {
        let holders = aggregator_before
            .iter()
            .cloned()
            .chain([u.member.clone()])
            .collect();
        (u.sha256.clone(), Some(u.size_bytes), holders)
    }));
    let everyone = active_members(&state);
    needed.extend(plan.models_needed().into_iter().map(|sha| {
        let size = state
            .aggregates
            .values()
            .find(|a| a.model_sha256 == sha)
            .map(|a| a.size_bytes);
        (sha, size, everyone.clone())
    }));
    // Disputed updates and the models they were trained from: fetched when someone serves them.
    let round = state
        .rounds
        .get(&n)
        .ok_or_else(|| anyhow!("round {n} does not exist"))?;
    let disputed: Vec<pb::Commitment> = round
        .disputes
        .iter()
        .filter_map(|d| state.commitments.get(&(n, d.member.clone())).cloned())
        .collect();
    let base_of = |c: &pb::Commitment| {
        state
            .base_model_of(c)
            .unwrap_or(&round.parent_model_sha256)
            .to_owned()
    };
    let accepted: Vec<pb::Commitment> = plan
        .updates
        .iter()
        .filter_map(|u| state.commitments.get(&(n, u.member.clone())).cloned())
        .collect();
    let mut optional: Vec<(String, Option<u64>, Vec<String>)> = Vec::new();
    for c in disputed.iter().chain(&accepted) {
        if disputed.contains(c) {
            optional.push((c.update_sha256.clone(), None, vec![c.member.clone()]));
        }
        let base = base_of(c);
        if !needed
            .iter()
            .chain(&optional)
            .any(|(sha, _, _)| *sha == base)
        {
            optional.push((base, None, everyone.clone()));
        }
    }
    for folder in &args.blobs {
        take_local(&store, folder, &needed).await?;
        take_local(&store, folder, &optional).await?;
    }
    for (sha, size, holders) in &optional {
        let id = BlobId::parse(sha)?;
        for holder in holders {
            if store.contains(&id) {
                break;
            }
            if let Ok(report) = transfers.fetch(&id, vec![holder.clone()], *size).await {
                fetched.push(json!({"sha256": sha, "from": holder, "bytes": report.size}));
            }
        }
    }
    let shape = bcfl_client::round::replay::stats_shape(&state);
    let seed = bcfl_client::round::schedule::checked_seed(&state, n);
    let (mut false_disputes, mut unverified_disputes) = (Vec::new(), Vec::new());
    for c in &disputed {
        let read = |sha: &str| -> anyhow::Result<Option<Vec<u8>>> {
            let id = BlobId::parse(sha)?;
            if !store.contains(&id) {
                return Ok(None);
            }
            Ok(Some(std::fs::read(store.path(&id))?))
        };
        let (Some(bytes), Some(base)) = (read(&c.update_sha256)?, read(&base_of(c))?) else {
            unverified_disputes.push(c.member.clone());
            continue;
        };
        let base = bcfl_fed::update::Update::from_bytes(&base)?;
        if !bcfl_fed::verify::dispute_holds(c, &bytes, &base, shape, seed) {
            false_disputes.push(c.member.clone());
        }
    }
    for (sha, size, holders) in &needed {
        let id = BlobId::parse(sha)?;
        if store.contains(&id) {
            continue;
        }
        let mut failures = Vec::new();
        for holder in holders {
            match transfers.fetch(&id, vec![holder.clone()], *size).await {
                Ok(report) => {
                    fetched.push(json!({"sha256": sha, "from": holder, "bytes": report.size}));
                    break;
                }
                Err(e) => failures.push(format!("{}: {e}", short(holder))),
            }
        }
        if !store.contains(&id) {
            bail!(
                "blob {sha} could not be fetched ({}); pass --blobs DIR with a copy",
                failures.join("; ")
            );
        }
    }
    // Accepted updates whose statistics contradict their blobs: the aggregator should have
    // disputed them (a committee member attests them as `missed`).
    let mut missed = Vec::new();
    for c in &accepted {
        let base_path = store.path(&BlobId::parse(&base_of(c))?);
        let Ok(base) = std::fs::read(&base_path) else {
            continue;
        };
        let bytes = std::fs::read(store.path(&BlobId::parse(&c.update_sha256)?))?;
        let base = bcfl_fed::update::Update::from_bytes(&base)?;
        if bcfl_fed::verify::check(c, &bytes, &base, shape, seed).is_some() {
            missed.push(c.member.clone());
        }
    }

    let scratch = dir.join("rebased");
    let paths_store = store.clone();
    let computed = tokio::task::spawn_blocking(move || {
        plan.compute(
            |u| Ok(paths_store.path(&BlobId::parse(&u.sha256)?)),
            |sha| {
                let path = paths_store.path(&BlobId::parse(sha)?);
                std::fs::read(&path).map_err(|e| RoundError::file("reading", &path, e))
            },
            &scratch,
        )
        .map(|c| (c, plan))
    })
    .await
    .map_err(|e| anyhow!("the replay task failed: {e}"))?;
    let (computed, plan) = computed?;

    // The contributors are the verdict's accepted members (the rules hold the aggregate to
    // them, and it does not store them again).
    let contributors: Vec<String> = plan.updates.iter().map(|u| u.member.clone()).collect();
    let checks = [
        ("model_sha256", computed.sha256 == stored.model_sha256),
        (
            "size_bytes",
            computed.bytes.len() as u64 == stored.size_bytes,
        ),
        ("disputes", false_disputes.is_empty()),
        ("statistics", missed.is_empty()),
    ];
    let matches = checks.iter().all(|(_, ok)| *ok);
    if ctx.json() {
        ctx.print_json(&json!({
            "round": n,
            "matches": matches,
            "checks": checks.iter().map(|(k, ok)| (k.to_string(), json!(ok))).collect::<serde_json::Map<_, _>>(),
            "stored_model_sha256": stored.model_sha256,
            "recomputed_model_sha256": computed.sha256,
            "rule": plan.rule.to_string(),
            "contributors": contributors,
            "false_disputes": false_disputes,
            "missed": missed,
            "unverified_disputes": unverified_disputes,
            "finality": format!("{:?}", stored.finality),
            "fetched": fetched,
        }));
    } else {
        println!(
            "round {n}: {} updates, rule {}",
            contributors.len(),
            plan.rule
        );
        println!("  on chain:   {}", stored.model_sha256);
        println!("  recomputed: {}", computed.sha256);
        for (name, ok) in checks {
            println!("  {name}: {}", if ok { "matches" } else { "DIFFERS" });
        }
        if !false_disputes.is_empty() {
            println!("  disputes that do not hold: {}", false_disputes.join(", "));
        }
        if !missed.is_empty() {
            println!(
                "  accepted updates whose statistics contradict their blobs: {}",
                missed.join(", ")
            );
        }
        if !unverified_disputes.is_empty() {
            println!(
                "  disputes not verified (blob not served): {}",
                unverified_disputes.join(", ")
            );
        }
        println!("  finality on chain: {:?}", stored.finality);
        println!(
            "{}",
            if matches {
                "the aggregate on chain is the rule's result over the accepted updates"
            } else {
                "MISMATCH: the aggregate on chain is not the rule's result over the accepted updates"
            }
        );
    }
    Ok(if matches {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Active members' keys, in key order.
fn active_members(state: &FamilyState) -> Vec<String> {
    state
        .members
        .iter()
        .filter(|(_, m)| m.status == pb::MemberStatus::ACTIVE)
        .map(|(k, _)| k.clone())
        .collect()
}

/// Puts every file of `folder` whose SHA-256 is needed into the store.
async fn take_local(
    store: &BlobStore,
    folder: &std::path::Path,
    needed: &[(String, Option<u64>, Vec<String>)],
) -> anyhow::Result<()> {
    let entries =
        std::fs::read_dir(folder).with_context(|| format!("reading {}", folder.display()))?;
    for entry in entries {
        let path = entry?.path();
        if !path.is_file() {
            continue;
        }
        let digest = file_sha256(&path).with_context(|| format!("hashing {}", path.display()))?;
        if needed.iter().any(|(sha, _, _)| *sha == digest.sha256) {
            store
                .insert_file(&path)
                .await
                .with_context(|| format!("storing {}", path.display()))?;
        }
    }
    Ok(())
}

fn short(key: &str) -> &str {
    &key[..key.len().min(12)]
}
