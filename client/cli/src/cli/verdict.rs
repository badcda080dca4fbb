//! `bcfl audit verdict N`: recompute a round's anomaly verdict from on-chain state and compare.
//!
//! A verdict is a pure function of the state its `EvaluateRound` transaction saw. The auditor
//! finds the block holding that transaction, reads the family's state as of the parent block,
//! replays the block's earlier `bcfl` transactions with the processor's own handler
//! ([`BcflHandler`]) over that state (a late commitment or bandwidth report in the same block is
//! part of the evidence), then recomputes the verdict with
//! [`bcfl_processor::rules::evaluation::verdict_excluding_disputed`] (the round's disputed and unrevealed
//! committers excluded unscored, as the processor does) and compares it field by field with the
//! stored one. The sketch history the cumulative feature reads is not taken on trust: it is
//! replayed from the commitments of the earlier evaluated rounds
//! ([`FamilyState::replayed_sketch_history`]) and compared with the stored history too. Exit
//! status 0 when everything matches, 1 when anything differs.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::process::ExitCode;

use anyhow::{anyhow, bail, Context as _};
use bcfl_ledger::json::verdict_to_json;
use bcfl_ledger::rest::{BlockTransaction, StateEntry, StateSnapshot};
use bcfl_ledger::state::FamilyState;
use bcfl_processor::access::declared_addresses;
use bcfl_processor::anomaly::features::configure;
use bcfl_processor::anomaly::{member_scores, reads_own_previous, withdraw};
use bcfl_processor::handler::TransactionRequest;
use bcfl_processor::rules::evaluation::{unscored, verdict_excluding_disputed, RoundEvidence};
use bcfl_processor::{BcflHandler, ContextError, StateContext, FAMILY_NAME, NAMESPACE};
use bcfl_protos::bcfl as pb;
use protobuf::Message as _;
use serde_json::json;

use super::Context;

/// Arguments of `audit verdict`.
#[derive(Debug, clap::Args)]
pub(crate) struct VerdictArgs {
    /// Round number.
    round: u64,
    /// Scan at most this many blocks back from the head for the EvaluateRound [default: all].
    #[arg(long)]
    blocks: Option<usize>,
}

/// Family state as a plain address map that transactions are replayed on.
#[derive(Debug, Default)]
struct ReplayState {
    entries: RefCell<BTreeMap<String, Vec<u8>>>,
}

impl StateContext for ReplayState {
    fn get_state_entries(
        &self,
        addresses: &[String],
    ) -> Result<Vec<(String, Vec<u8>)>, ContextError> {
        let entries = self.entries.borrow();
        Ok(addresses
            .iter()
            .filter_map(|a| entries.get(a).map(|d| (a.clone(), d.clone())))
            .collect())
    }

    fn set_state_entries(&self, entries: Vec<(String, Vec<u8>)>) -> Result<(), ContextError> {
        self.entries.borrow_mut().extend(entries);
        Ok(())
    }

    fn delete_state_entries(&self, addresses: &[String]) -> Result<Vec<String>, ContextError> {
        let mut entries = self.entries.borrow_mut();
        Ok(addresses
            .iter()
            .filter(|a| entries.remove(*a).is_some())
            .cloned()
            .collect())
    }

    fn add_receipt_data(&self, _data: &[u8]) -> Result<(), ContextError> {
        Ok(())
    }

    fn add_event(
        &self,
        _event_type: String,
        _attributes: Vec<(String, String)>,
        _data: &[u8],
    ) -> Result<(), ContextError> {
        Ok(())
    }
}

impl ReplayState {
    fn new(snapshot: &StateSnapshot) -> Self {
        let entries = snapshot
            .entries
            .iter()
            .map(|e| (e.address.clone(), e.data.clone()))
            .collect();
        Self {
            entries: RefCell::new(entries),
        }
    }

    /// Applies one committed `bcfl` transaction with the processor's handler.
    fn apply(&self, txn: &BlockTransaction) -> anyhow::Result<()> {
        let payload = pb::BcflPayload::parse_from_bytes(&txn.payload)
            .with_context(|| format!("transaction {} does not decode", txn.id))?;
        // The addresses the family declares: the processor reads and writes nothing else, and a
        // payload that declares none cannot have been committed.
        declared_addresses(&payload, &txn.signer_public_key)
            .map_err(|e| anyhow!("transaction {}: {e}", txn.id))?;
        let request = TransactionRequest {
            family_name: &txn.family_name,
            family_version: &txn.family_version,
            signer_public_key: &txn.signer_public_key,
            payload: &txn.payload,
            id: &txn.id,
        };
        BcflHandler::new().process(&request, self).map_err(|e| {
            anyhow!(
                "replaying committed transaction {} failed: {e} (the chain and the processor disagree)",
                txn.id
            )
        })
    }

    fn family_state(&self, head: &str) -> anyhow::Result<FamilyState> {
        let entries = self
            .entries
            .borrow()
            .iter()
            .map(|(address, data)| StateEntry {
                address: address.clone(),
                data: data.clone(),
            })
            .collect();
        Ok(FamilyState::from_snapshot(StateSnapshot {
            head: head.to_owned(),
            entries,
        })?)
    }
}

/// Whether `txn` is the `EvaluateRound` of round `round`.
fn evaluates(txn: &BlockTransaction, round: u64) -> bool {
    txn.family_name == FAMILY_NAME
        && pb::BcflPayload::parse_from_bytes(&txn.payload)
            .map(|p| p.has_evaluate_round() && p.get_evaluate_round().round == round)
            .unwrap_or(false)
}

/// A recomputed verdict, and whether the stored sketch history equalled its replay.
#[derive(Debug)]
struct Recomputed {
    verdict: pb::Verdict,
    history_matches: bool,
}

/// Recomputes the verdict of `round` from the state before its block (`parent`) and the block's
/// transactions up to and including the `EvaluateRound` (`block`, in block order).
fn recompute(
    parent: &StateSnapshot,
    block: &[BlockTransaction],
    round: u64,
) -> anyhow::Result<Recomputed> {
    let position = block
        .iter()
        .position(|t| evaluates(t, round))
        .ok_or_else(|| anyhow!("the block holds no EvaluateRound of round {round}"))?;
    let replay = ReplayState::new(parent);
    for txn in block[..position]
        .iter()
        .filter(|t| t.family_name == FAMILY_NAME)
    {
        replay.apply(txn)?;
    }
    let state = replay.family_state(&parent.head)?;
    let consortium = state
        .consortium
        .as_ref()
        .ok_or_else(|| anyhow!("no consortium before round {round} was evaluated"))?;
    let round_state = state
        .rounds
        .get(&round)
        .ok_or_else(|| anyhow!("round {round} did not exist when it was evaluated"))?;
    // Disputed and unrevealed committers are excluded unscored, as `EvaluateRound` does.
    let all: Vec<pb::Commitment> = state.round_commitments(round).cloned().collect();
    let (disputed, unrevealed) = unscored(consortium.get_params(), round_state, &all);
    let commitments: Vec<pb::Commitment> = all
        .into_iter()
        .filter(|c| !disputed.contains(&c.member) && !unrevealed.contains(&c.member))
        .collect();
    let scored: Vec<&String> = commitments.iter().map(|c| &c.member).collect();
    let links: Vec<pb::Link> = state
        .links
        .values()
        .filter(|l| scored.contains(&&l.from) && scored.contains(&&l.to))
        .cloned()
        .collect();
    let reads_previous = reads_own_previous(consortium.get_params().get_anomaly());
    let mut history = state.replayed_sketch_history(round, reads_previous);
    // Compared before the evidence gains what is never stored with the sums.
    let history_matches = history == state.sketch_history;
    configure(&mut history, consortium.get_params().get_anomaly());
    // The committers' own previous commitments, where a method compares with them, as
    // `EvaluateRound` reads them.
    if reads_previous {
        history.previous = state
            .previous_commitments(&history)
            .map_err(|(r, member)| {
                anyhow!("{member}'s commitment to round {r} is not in the state")
            })?
            .into();
    }
    let mut verdict = verdict_excluding_disputed(
        &RoundEvidence {
            params: consortium.get_params(),
            round: round_state,
            commitments: &commitments,
            links: &links,
            history: &history,
        },
        &disputed,
        &unrevealed,
    )
    .map_err(|e| anyhow!("the verdict cannot be recomputed: {e}"))?;
    verdict.evaluated_by = block[position].signer_public_key.clone();
    let params = consortium.get_params();
    let before = withdraw::RoundBefore::of(
        params,
        round_state,
        state.verdicts.get(&round.saturating_sub(1)),
        state.aggregates.get(&round.saturating_sub(1)),
    );
    verdict.withdrawn =
        withdraw::withdrawn(params.get_anomaly(), &verdict, &history.previous, before);
    Ok(Recomputed {
        verdict,
        history_matches,
    })
}

fn flagged(verdict: &pb::Verdict) -> Vec<(String, Vec<String>)> {
    let scored = verdict.scored();
    verdict
        .methods
        .iter()
        .map(|m| {
            let members = member_scores(&scored, m)
                .filter(|s| s.flagged)
                .map(|s| s.member.to_owned())
                .collect();
            (format!("{:?}", m.method), members)
        })
        .collect()
}

/// Runs `bcfl audit verdict N`.
pub(crate) async fn verdict(ctx: &Context, args: VerdictArgs) -> anyhow::Result<ExitCode> {
    let client = ctx.client()?;
    let n = args.round;
    let blocks = client.blocks(None, args.blocks).await?;
    let block = blocks
        .iter()
        .find(|b| b.transactions.iter().any(|t| evaluates(t, n)))
        .ok_or_else(|| anyhow!("no EvaluateRound of round {n} found on the chain"))?;
    let stored = ctx
        .reader()?
        .family_state(Some(&block.id))
        .await?
        .verdicts
        .remove(&n)
        .ok_or_else(|| {
            anyhow!(
                "block {} evaluated round {n} but stores no verdict",
                block.id
            )
        })?;
    if block.previous_block_id.is_empty() || block.block_num == 0 {
        bail!("round {n} was evaluated in the genesis block, which has no prior state");
    }
    let parent = client
        .state_list(NAMESPACE, Some(&block.previous_block_id))
        .await?;
    let Recomputed {
        verdict: recomputed,
        history_matches,
    } = recompute(&parent, &block.transactions, n)?;
    let matches = recomputed == stored && history_matches;
    if ctx.json() {
        ctx.print_json(&json!({
            "round": n,
            "block": block.id,
            "block_num": block.block_num,
            "matches": matches,
            "history_matches": history_matches,
            "stored": verdict_to_json(&stored),
            "recomputed": verdict_to_json(&recomputed),
        }));
    } else {
        println!(
            "round {n}: evaluated in block {} ({})",
            block.block_num, block.id
        );
        let (s, r) = (flagged(&stored), flagged(&recomputed));
        for i in 0..s.len().max(r.len()) {
            let show = |v: &[(String, Vec<String>)]| {
                v.get(i).map_or("-".to_owned(), |(m, f)| {
                    format!("{m} flags [{}]", f.join(","))
                })
            };
            println!("  stored:     {}", show(&s));
            println!("  recomputed: {}", show(&r));
        }
        println!("  excluded stored:     [{}]", stored.excluded.join(","));
        println!("  excluded recomputed: [{}]", recomputed.excluded.join(","));
        println!(
            "  sketch history: {}",
            if history_matches {
                "the stored history equals its replay from earlier rounds"
            } else {
                "the stored history DIFFERS from its replay from earlier rounds"
            }
        );
        println!(
            "{}",
            if matches {
                "MATCH: the stored verdict is what the rules compute"
            } else {
                "MISMATCH: the stored verdict differs from the recomputation"
            }
        );
    }
    Ok(if matches {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use bcfl_processor::address::sha512_hex;
    use bcfl_processor::FAMILY_VERSION;

    fn key(name: &str) -> String {
        format!("02{}", &sha512_hex(name.as_bytes())[..64])
    }

    fn hash(tag: &str) -> String {
        sha512_hex(tag.as_bytes())[..64].to_owned()
    }

    fn txn(signer: &str, build: impl FnOnce(&mut pb::BcflPayload)) -> BlockTransaction {
        let mut payload = pb::BcflPayload::new();
        build(&mut payload);
        BlockTransaction {
            id: hash(&format!("{payload:?}")),
            batch_id: String::new(),
            family_name: FAMILY_NAME.into(),
            family_version: FAMILY_VERSION.into(),
            signer_public_key: signer.into(),
            payload: payload.write_to_bytes().unwrap(),
        }
    }

    /// A chain whose last block holds a late commitment, a bandwidth report and the evaluation.
    fn chain() -> (Vec<BlockTransaction>, Vec<BlockTransaction>, Vec<String>) {
        let admin = key("admin");
        let members: Vec<String> = (0..5).map(|i| key(&format!("m{i}"))).collect();
        let mut anomaly = pb::AnomalyConfig::default();
        *anomaly.mut_zscore() = pb::ZScoreConfig {
            threshold_ppm: 3_500_000,
            features: vec![pb::Feature::UPDATE_NORM],
            ..Default::default()
        };
        *anomaly.mut_pagerank() = pb::PageRankConfig {
            damping_ppm: 850_000,
            k_ppm: 1_000_000,
            weight: pb::PageRankWeight::LATENCY,
            max_iterations: 100,
            tolerance_ppb: 1,
            ..Default::default()
        };
        let params = pb::ConsortiumParams {
            min_participants: 5,
            commit_quorum: 5,
            aggregation_rule: pb::AggregationRule::FEDAVG,
            model_id: "m".into(),
            base_model_sha256: hash("base"),
            sketch_length: 2,
            anomaly: protobuf::SingularPtrField::some(anomaly),
            ..Default::default()
        };
        let mut before = vec![txn(&admin, |p| {
            p.set_init_consortium(pb::InitConsortium {
                admin_keys: vec![admin.clone()].into(),
                params: protobuf::SingularPtrField::some(params),
                ..Default::default()
            })
        })];
        for (i, m) in members.iter().enumerate() {
            before.push(txn(&admin, |p| {
                p.set_register_member(pb::RegisterMember {
                    public_key: m.clone(),
                    name: format!("m{i}"),
                    endpoint: format!("http://127.0.0.1:{}", 7000 + i),
                    ..Default::default()
                })
            }));
        }
        before.push(txn(&admin, |p| {
            p.set_open_round(pb::OpenRound {
                round: 1,
                parent_model_sha256: hash("base"),
                aggregator: members[0].clone(),
                mode: pb::RoundMode::SERVERLESS,
                ..Default::default()
            })
        }));
        let commit = |i: usize, norm: u64| {
            txn(&members[i], |p| {
                p.set_commit_update(pb::CommitUpdate {
                    round: 1,
                    update_sha256: hash(&format!("u{i}")),
                    size_bytes: 10,
                    num_samples: 10,
                    loss_micro: 1,
                    norm_micro: norm,
                    sketch: vec![1, 2],
                    ..Default::default()
                })
            })
        };
        for i in 0..4 {
            before.push(commit(i, 1_000_000 + 10_000 * i as u64));
        }
        let link = |from: usize, to: usize| {
            txn(&members[from], |p| {
                p.set_report_bandwidth(pb::ReportBandwidth {
                    epoch: 1,
                    measurements: vec![pb::LinkMeasurement {
                        to: members[to].clone(),
                        bytes_per_sec: 1_000,
                        rtt_us: 100,
                        probe_bytes: 1 << 20,
                        ..Default::default()
                    }]
                    .into(),
                    ..Default::default()
                })
            })
        };
        // m2 reported its link to m1 earlier; m1's report of the same link, in the evaluating
        // block, confirms it (the graph evidence uses links both ends report).
        before.push(link(2, 1));
        let report = link(1, 2);
        let evaluate = txn(&admin, |p| {
            p.set_evaluate_round(pb::EvaluateRound {
                round: 1,
                ..Default::default()
            })
        });
        // The scaled member commits late, in the evaluating block.
        let block = vec![commit(4, 10_000_000), report, evaluate];
        (before, block, members)
    }

    fn snapshot(txns: &[BlockTransaction]) -> StateSnapshot {
        let replay = ReplayState::default();
        for t in txns {
            replay.apply(t).unwrap();
        }
        let entries = replay
            .entries
            .borrow()
            .iter()
            .map(|(a, d)| StateEntry {
                address: a.clone(),
                data: d.clone(),
            })
            .collect();
        StateSnapshot {
            head: "parent".into(),
            entries,
        }
    }

    #[test]
    fn recomputation_equals_the_verdict_the_processor_stored() {
        let (before, block, members) = chain();
        let parent = snapshot(&before);
        let mut all = before.clone();
        all.extend(block.iter().cloned());
        let stored = snapshot(&all)
            .entries
            .iter()
            .find(|e| e.address == bcfl_processor::address::verdict_address(1))
            .map(|e| pb::Verdict::parse_from_bytes(&e.data).unwrap())
            .unwrap();
        let Recomputed {
            verdict: recomputed,
            history_matches,
        } = recompute(&parent, &block, 1).unwrap();
        // The ledger stores it without the accepted members (the round's other committers),
        // the excluded as positions among the committers.
        use bcfl_protos::compact::Compact;
        let restored = FamilyState::from_snapshot(snapshot(&all)).unwrap();
        let committers = restored.rounds[&1].committers.to_vec();
        assert_eq!(recomputed.stored(&committers).compacted(), stored);
        assert_eq!(restored.verdicts[&1], recomputed);
        assert!(history_matches);
        // PageRank flags both ends of the only confirmed link, the z-score the scaled update.
        let mut excluded = vec![members[1].clone(), members[2].clone(), members[4].clone()];
        excluded.sort();
        assert_eq!(recomputed.excluded.to_vec(), excluded);
        // Both methods scored all five committers, the late one and the measured link included.
        assert_eq!(recomputed.methods.len(), 2);
        assert_eq!(recomputed.scored().len(), 5);
        assert!(recomputed.methods.iter().all(|m| m.scores_micro.len() == 5));
        let flags = flagged(&recomputed);
        let mut ends = vec![members[1].clone(), members[2].clone()];
        ends.sort();
        assert_eq!(flags[0], ("PAGERANK".to_owned(), ends));
        assert_eq!(
            flags[1],
            ("MODIFIED_ZSCORE".to_owned(), vec![members[4].clone()])
        );

        // Without the preceding transactions of the block the evidence differs.
        let evaluate_only = [block[2].clone()];
        let partial = recompute(&parent, &evaluate_only, 1).unwrap().verdict;
        assert_ne!(partial, stored);
        assert_eq!(partial.accepted.len() + partial.excluded.len(), 4);
        assert!(recompute(&parent, &block, 2)
            .unwrap_err()
            .to_string()
            .contains("no EvaluateRound of round 2"));
    }

    #[test]
    fn a_sketch_history_that_no_evaluated_round_explains_is_reported() {
        let (before, block, members) = chain();
        let mut parent = snapshot(&before);
        // No round was evaluated before round 1, yet the state claims a history.
        let forged = pb::SketchSumList {
            entries: vec![pb::SketchSum {
                member: members[4].clone(),
                rounds: 3,
                sum: vec![-100, -200],
                last_round: 0,
                ..Default::default()
            }]
            .into(),
            ..Default::default()
        };
        parent.entries.push(StateEntry {
            address: bcfl_processor::address::sketch_sum_address(&members[4]),
            data: forged.write_to_bytes().unwrap(),
        });
        parent.entries.sort_by(|a, b| a.address.cmp(&b.address));
        let recomputed = recompute(&parent, &block, 1).unwrap();
        assert!(!recomputed.history_matches);
    }
}
