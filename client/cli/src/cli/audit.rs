//! `bcfl audit ...`: read-only queries of the family's state.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{anyhow, bail};
use bcfl_client::fixed::format_micro;
use bcfl_ledger::json::{message_to_json, verdict_to_json};
use bcfl_ledger::state::FamilyState;
use bcfl_processor::anomaly::member_scores;
use bcfl_processor::rules::membership::member_cap;
use bcfl_protos::bcfl as pb;
use clap::{Args, Subcommand, ValueEnum};
use serde_json::{json, Value};

use super::submit::file_sha256;
use super::table::Table;
use super::Context;

/// `bcfl audit ...`
#[derive(Debug, Subcommand)]
pub(crate) enum AuditCommand {
    /// The consortium's admins and parameters.
    Consortium(HeadArg),
    /// Every member.
    Members(HeadArg),
    /// Every round.
    Rounds(HeadArg),
    /// One round: commitments, verdict and aggregate.
    Round {
        /// Round number.
        number: u64,
        #[command(flatten)]
        head: HeadArg,
    },
    /// One member: record, commitments and links.
    Member {
        /// Public key or key name.
        #[arg(value_name = "KEY")]
        member: String,
        #[command(flatten)]
        head: HeadArg,
    },
    /// Measured links (latest sample of each).
    Bandwidth {
        /// Output format (`--json` overrides it).
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
        #[command(flatten)]
        head: HeadArg,
    },
    /// Check a file against its on-chain SHA-256 and size (exit 0 match, 1 mismatch).
    Verify(VerifyArgs),
    /// The whole family state as JSON lines, one object per address.
    Export(HeadArg),
    /// The family's transactions, block by block, newest first.
    History(super::history::HistoryArgs),
    /// Recompute round N's anomaly verdict from on-chain state (exit 0 match, 1 mismatch).
    Verdict(super::verdict::VerdictArgs),
    /// Recompute round N's aggregate from the blobs its commitments name (exit 0 match, 1
    /// mismatch).
    Replay(super::replay::ReplayArgs),
    /// Serve the auditor's page: a read-only web view of the ledger, updated live.
    Serve(super::serve::ServeArgs),
}

/// Read at a given block.
#[derive(Debug, Args)]
pub(crate) struct HeadArg {
    /// Block id to read the state at [default: the chain head].
    #[arg(long, value_name = "BLOCK_ID")]
    head: Option<String>,
}

/// Formats of `audit bandwidth`.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum Format {
    /// Aligned columns.
    Table,
    /// Graphviz digraph, edges labelled with bytes/s and RTT.
    Dot,
}

/// Arguments of `audit verify`.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("target").required(true).args(["member", "aggregate"])))]
pub(crate) struct VerifyArgs {
    /// The file to check.
    file: PathBuf,
    /// The round.
    #[arg(long)]
    round: u64,
    /// Compare with this member's commitment (key or key name).
    #[arg(long)]
    member: Option<String>,
    /// Compare with the round's aggregate.
    #[arg(long)]
    aggregate: bool,
    #[command(flatten)]
    head: HeadArg,
}

async fn state(ctx: &Context, head: &HeadArg) -> anyhow::Result<FamilyState> {
    Ok(ctx.reader()?.family_state(head.head.as_deref()).await?)
}

fn json_list<'a, M: protobuf::Message>(items: impl IntoIterator<Item = &'a M>) -> Value {
    Value::Array(items.into_iter().map(|m| message_to_json(m)).collect())
}

fn json_opt<M: protobuf::Message>(item: Option<&M>) -> Value {
    item.map_or(Value::Null, |m| message_to_json(m))
}

pub(crate) async fn audit(ctx: &Context, cmd: AuditCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        AuditCommand::Consortium(head) => {
            let state = state(ctx, &head).await?;
            let consortium = state
                .consortium
                .as_ref()
                .ok_or_else(|| anyhow!("the ledger has no consortium yet"))?;
            if ctx.json() {
                ctx.print_json(&message_to_json(consortium));
            } else {
                print_consortium(consortium);
            }
        }
        AuditCommand::Members(head) => {
            let state = state(ctx, &head).await?;
            if ctx.json() {
                ctx.print_json(&json_list(state.members.values()));
            } else {
                let mut t = Table::new(&[
                    "KEY",
                    "NAME",
                    "STATUS",
                    "SINCE ROUND",
                    "MAX SAMPLES",
                    "ENDPOINT",
                ]);
                for m in state.members.values() {
                    t.row(vec![
                        m.public_key.clone(),
                        m.name.clone(),
                        format!("{:?}", m.status),
                        m.registered_at_round.to_string(),
                        member_cap(m),
                        m.endpoint.clone(),
                    ]);
                }
                t.print();
            }
        }
        AuditCommand::Rounds(head) => {
            let state = state(ctx, &head).await?;
            if ctx.json() {
                ctx.print_json(&json_list(state.rounds.values()));
            } else {
                let mut t = Table::new(&[
                    "ROUND",
                    "PHASE",
                    "MODE",
                    "SYNC",
                    "COMMITS",
                    "AGGREGATOR",
                    "PARENT MODEL",
                ]);
                for r in state.rounds.values() {
                    t.row(vec![
                        r.number.to_string(),
                        format!("{:?}", r.phase),
                        format!("{:?}", r.mode),
                        sync_text(r),
                        r.committers.len().to_string(),
                        r.aggregator.clone(),
                        r.parent_model_sha256.clone(),
                    ]);
                }
                t.print();
            }
        }
        AuditCommand::Round { number, head } => {
            let state = state(ctx, &head).await?;
            let round = state
                .rounds
                .get(&number)
                .ok_or_else(|| anyhow!("round {number} does not exist"))?;
            let commitments: Vec<&pb::Commitment> = state.round_commitments(number).collect();
            let verdict = state.verdicts.get(&number);
            let aggregate = state.aggregates.get(&number);
            if ctx.json() {
                ctx.print_json(&json!({
                    "round": message_to_json(round),
                    "commitments": json_list(commitments.iter().copied()),
                    "sketch_agreement": sketch_agreement(&commitments),
                    "verdict": verdict.map_or(Value::Null, verdict_to_json),
                    "aggregate": json_opt(aggregate),
                }));
            } else {
                print_round(&state, round, &commitments, verdict, aggregate);
            }
        }
        AuditCommand::Member { member, head } => {
            let key = ctx.public_key(&member)?;
            let state = state(ctx, &head).await?;
            let member = state
                .members
                .get(&key)
                .ok_or_else(|| anyhow!("{key} is not a member"))?;
            let commitments: Vec<_> = state
                .commitments
                .values()
                .filter(|c| c.member == key)
                .collect();
            let out: Vec<_> = state.links.values().filter(|l| l.from == key).collect();
            let into: Vec<_> = state.links.values().filter(|l| l.to == key).collect();
            if ctx.json() {
                ctx.print_json(&json!({
                    "member": message_to_json(member),
                    "commitments": json_list(commitments.iter().copied()),
                    "links_out": json_list(out.iter().copied()),
                    "links_in": json_list(into.iter().copied()),
                }));
            } else {
                println!("key:       {}", member.public_key);
                println!("name:      {}", member.name);
                println!("status:    {:?}", member.status);
                if !member.suspend_reason.is_empty() {
                    println!("suspended: {}", member.suspend_reason);
                }
                println!("endpoint:  {}", member.endpoint);
                println!("since:     round {}", member.registered_at_round);
                println!("samples:   at most {} a commitment", member_cap(member));
                println!();
                print_commitments(&state, &commitments);
                println!();
                print_links(out.iter().chain(&into).copied());
            }
        }
        AuditCommand::Bandwidth { format, head } => {
            let state = state(ctx, &head).await?;
            if ctx.json() {
                ctx.print_json(&json_list(state.links.values()));
            } else {
                match format {
                    Format::Table => print_links(state.links.values()),
                    Format::Dot => print!("{}", links_dot(&state)),
                }
            }
        }
        AuditCommand::Verify(args) => return verify(ctx, args).await,
        AuditCommand::Verdict(args) => return super::verdict::verdict(ctx, args).await,
        AuditCommand::Replay(args) => return super::replay::replay(ctx, args).await,
        AuditCommand::Serve(args) => super::serve::serve(ctx, args).await?,
        AuditCommand::History(args) => super::history::history(ctx, args).await?,
        AuditCommand::Export(head) => {
            let state = state(ctx, &head).await?;
            for (address, object) in &state.objects {
                ctx.print_json(&json!({
                    "address": address,
                    "type": object.type_name(),
                    "head": state.head,
                    "value": message_to_json(object.message()),
                }));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn verify(ctx: &Context, args: VerifyArgs) -> anyhow::Result<ExitCode> {
    let reader = ctx.reader()?;
    let head = args.head.head.as_deref();
    let (what, expected_sha, expected_size) = if args.aggregate {
        let a = reader
            .aggregate(args.round, head)
            .await?
            .ok_or_else(|| anyhow!("round {} has no aggregate", args.round))?;
        ("aggregate".to_owned(), a.model_sha256, a.size_bytes)
    } else {
        let Some(member) = &args.member else {
            bail!("pass --member KEY or --aggregate");
        };
        let key = ctx.public_key(member)?;
        let c = reader
            .commitment(args.round, &key, head)
            .await?
            .ok_or_else(|| anyhow!("{key} has no commitment in round {}", args.round))?;
        (
            format!("commitment of {key}"),
            c.update_sha256,
            c.size_bytes,
        )
    };
    let (sha256, size) = file_sha256(&args.file)?;
    let matches = sha256 == expected_sha && size == expected_size;
    if ctx.json() {
        ctx.print_json(&json!({
            "file": args.file,
            "round": args.round,
            "target": what,
            "sha256": sha256,
            "size_bytes": size,
            "expected_sha256": expected_sha,
            "expected_size_bytes": expected_size,
            "match": matches,
        }));
    } else if matches {
        println!(
            "OK: {} matches the {what} of round {} ({sha256}, {size} bytes)",
            args.file.display(),
            args.round
        );
    } else {
        println!(
            "MISMATCH: {} has sha256 {sha256} ({size} bytes); the {what} of round {} records {expected_sha} ({expected_size} bytes)",
            args.file.display(),
            args.round
        );
    }
    Ok(if matches {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn print_consortium(c: &pb::Consortium) {
    let p = c.get_params();
    println!("admins:            {}", c.admin_keys.join(", "));
    println!("current round:     {}", c.current_round);
    println!(
        "model:             {} ({})",
        p.model_id, p.base_model_sha256
    );
    if !p.initial_model_sha256.is_empty() {
        println!("initial model:     {}", p.initial_model_sha256);
    }
    println!("min participants:  {}", p.min_participants);
    println!("commit quorum:     {}", p.commit_quorum);
    println!("aggregation rule:  {:?}", p.aggregation_rule);
    println!("sketch length:     {}", p.sketch_length);
    if p.sketch_after_commit {
        println!("sketches:          after the commitments (sealed rounds, revealed)");
    }
    if p.coordinate_samples > 0 {
        println!("sampled coords:    {}", p.coordinate_samples);
    }
    println!("committee size:    {}", p.committee_size);
    let agreement = match p.link_agreement_ppm {
        0 => bcfl_processor::limits::DEFAULT_LINK_AGREEMENT_PPM,
        ppm => ppm,
    };
    println!("link agreement:    x{}", format_micro(i64::from(agreement)));
    if p.sample_ppm > 0 {
        println!(
            "sampled a round:   {} of the members",
            format_micro(i64::from(p.sample_ppm))
        );
    }
    if p.trim_ppm > 0 {
        println!("trim:              {}", format_micro(i64::from(p.trim_ppm)));
    }
    if p.krum_byzantine > 0 || p.krum_select > 0 {
        println!(
            "krum:              f={} select={}",
            p.krum_byzantine, p.krum_select
        );
    }
    if !p.has_anomaly() {
        println!("anomaly methods:   none");
        return;
    }
    let a = p.get_anomaly();
    if a.has_pagerank() {
        let g = a.get_pagerank();
        println!(
            "pagerank:          damping {} k {} weight {:?} max_iterations {} tolerance {} ppb",
            format_micro(i64::from(g.damping_ppm)),
            format_micro(i64::from(g.k_ppm)),
            g.weight,
            g.max_iterations,
            g.tolerance_ppb
        );
    }
    if a.has_zscore() {
        let z = a.get_zscore();
        println!(
            "modified z-score:  threshold {} features {:?}",
            format_micro(i64::from(z.threshold_ppm)),
            z.features
        );
    }
    if a.has_dbscan() {
        let d = a.get_dbscan();
        println!(
            "dbscan:            eps {} min_points {} features {:?}{}",
            format_micro(i64::from(d.eps_ppm)),
            d.min_points,
            d.features,
            if d.robust { " robust" } else { "" }
        );
    }
    if a.has_duplicate() {
        println!(
            "duplicate:         max distance {} (excludes on its own)",
            format_micro(i64::from(a.get_duplicate().max_distance_ppm))
        );
    }
    if a.has_unchanged() {
        println!(
            "unchanged:         max norm ratio {} (excludes on its own)",
            format_micro(i64::from(a.get_unchanged().max_norm_ratio_ppm))
        );
    }
    if a.has_resent() {
        println!(
            "resent:            max distance {} (excludes on its own)",
            format_micro(i64::from(a.get_resent().max_distance_ppm))
        );
    }
    if a.has_inconsistent() {
        println!(
            "inconsistent:      min cosine {} (excludes on its own)",
            format_micro(i64::from(a.get_inconsistent().min_cosine_ppm))
        );
    }
    if a.has_opposed() {
        println!(
            "opposed:           min cumulative distance {} (excludes on its own)",
            format_micro(i64::from(a.get_opposed().min_distance_ppm))
        );
    }
    if a.has_oversized() {
        println!(
            "oversized:         min sample-norm residual {} (excludes on its own)",
            format_micro(i64::from(a.get_oversized().min_residual_ppm))
        );
    }
    if a.has_mean_copy() {
        println!(
            "mean copy:         min cosine with the others' sum {} (excludes on its own)",
            format_micro(i64::from(a.get_mean_copy().min_cosine_ppm))
        );
    }
    if a.has_ascent() {
        println!(
            "ascent:            max move response {}{} (excludes on its own)",
            format_micro(i64::from(a.get_ascent().max_response_ppm)),
            if a.get_ascent().leave_one_out {
                ", against the others' move"
            } else {
                ""
            }
        );
    }
    if a.has_mislabelled() {
        let m = a.get_mislabelled();
        let outside = bcfl_processor::anomaly::features::OUTSIDE_REFERENCE;
        let inside = m.reference_steps.iter().filter(|&&b| b != outside).count();
        println!(
            "mislabelled:       min reference margin {} over {inside} of {} sampled coordinates, \
             the rest outside the reference (excludes on its own)",
            format_micro(i64::from(m.min_margin_ppm)),
            m.reference_steps.len()
        );
    }
    println!("ensemble votes:    {}", a.ensemble_min_votes.max(1));
    if a.count_copies_once {
        println!("copies:            count once towards the voting methods' scales");
    }
    if a.dbscan_without_excluded {
        println!("dbscan:            clusters only the members no excluding method flagged");
    }
}

/// A round's synchronization in one cell: `SYNCHRONOUS`, or
/// `BUFFERED_ASYNC buffer K staleness <= S`.
fn sync_text(round: &pb::Round) -> String {
    match bcfl_processor::rules::rounds::round_sync(round) {
        pb::RoundSync::BUFFERED_ASYNC => format!(
            "BUFFERED_ASYNC buffer {} staleness <= {}",
            round.buffer_size, round.max_staleness
        ),
        sync => format!("{sync:?}"),
    }
}

/// The base round of a commitment (`-` for commitments stored before the field existed).
fn base_text(c: &pb::Commitment) -> String {
    if c.base_round == 0 {
        "-".to_owned()
    } else {
        c.base_round.to_string()
    }
}

/// The commitments with the model each was trained from (its base round's parent in `state`).
fn commitments_table(state: &FamilyState, commitments: &[&pb::Commitment]) -> Table {
    let mut t = Table::new(&[
        "ROUND",
        "MEMBER",
        "BASE ROUND",
        "STALENESS",
        "SAMPLES",
        "LOSS",
        "NORM",
        "SIZE",
        "UPDATE SHA-256",
        "BASE MODEL SHA-256",
    ]);
    for c in commitments {
        t.row(vec![
            c.round.to_string(),
            c.member.clone(),
            base_text(c),
            c.staleness.to_string(),
            c.num_samples.to_string(),
            format_micro(c.loss_micro),
            bcfl_client::fixed::format_micro_unsigned(c.norm_micro),
            c.size_bytes.to_string(),
            c.update_sha256.clone(),
            state.base_model_of(c).unwrap_or("-").to_owned(),
        ]);
    }
    t
}

fn print_commitments(state: &FamilyState, commitments: &[&pb::Commitment]) {
    commitments_table(state, commitments).print();
}

/// The round's [`bcfl_processor::anomaly::features::sketch_agreement`], over the commitments
/// that carry a sketch (rounded to 3 decimals); `None` with fewer than two. What `audit round`
/// and the auditor's page show.
pub(crate) fn sketch_agreement(commitments: &[&pb::Commitment]) -> Option<f64> {
    let sketches: Vec<Vec<i32>> = commitments.iter().map(|c| c.sketch_values()).collect();
    let refs: Vec<&[i32]> = sketches.iter().map(Vec::as_slice).collect();
    bcfl_processor::anomaly::features::sketch_agreement(&refs).map(|a| (a * 1e3).round() / 1e3)
}

fn print_round(
    state: &FamilyState,
    round: &pb::Round,
    commitments: &[&pb::Commitment],
    verdict: Option<&pb::Verdict>,
    aggregate: Option<&pb::Aggregate>,
) {
    println!("round:        {}", round.number);
    println!("phase:        {:?}", round.phase);
    println!("mode:         {:?}", round.mode);
    println!("sync:         {}", sync_text(round));
    if !round.privacy.is_empty() {
        println!("privacy:      {:?}", round.privacy);
    }
    println!("aggregator:   {}", round.aggregator);
    if !round.participants.is_empty() {
        println!("drawn:        {}", round.participants.join(", "));
    }
    println!("opened by:    {}", round.opened_by);
    println!("parent model: {}", round.parent_model_sha256);
    println!();
    print_commitments(state, commitments);
    if let Some(agreement) = sketch_agreement(commitments) {
        println!(
            "sketch agreement: {agreement:.3} (median over the members of each one's median \
             cosine with the others' sketches)"
        );
    }
    if let Some(v) = verdict {
        println!();
        println!("verdict (evaluated by {}):", v.evaluated_by);
        let mut t = Table::new(&["METHOD", "MEMBER", "SCORE", "FLAGGED"]);
        let scored = v.scored();
        for m in v.get_methods() {
            for s in member_scores(&scored, m) {
                t.row(vec![
                    format!("{:?}", m.method),
                    s.member.to_owned(),
                    format_micro(s.score_micro),
                    if s.flagged { "yes".into() } else { "no".into() },
                ]);
            }
        }
        t.print();
        println!("accepted: {}", v.accepted.join(", "));
        println!("excluded: {}", v.excluded.join(", "));
        if !v.disputed.is_empty() {
            println!("disputed: {}", v.disputed.join(", "));
        }
        if !v.unrevealed.is_empty() {
            println!(
                "unrevealed (no sketch after the seal): {}",
                v.unrevealed.join(", ")
            );
        }
        if !v.withdrawn.is_empty() {
            println!(
                "withdrawn (round {}'s update taken back out): {}",
                v.round.saturating_sub(1),
                v.withdrawn_members().join(", ")
            );
        }
    }
    if !round.disputes.is_empty() {
        println!();
        let mut t = Table::new(&["DISPUTED", "MISMATCH", "SIZE", "NORM", "REPORTED BY"]);
        for d in round.get_disputes() {
            t.row(vec![
                d.member.clone(),
                format!("{:?}", d.mismatch),
                d.size_bytes.to_string(),
                format_micro(i64::try_from(d.norm_micro).unwrap_or(i64::MAX)),
                d.reported_by.clone(),
            ]);
        }
        t.print();
    }
    if let Some(a) = aggregate {
        println!();
        println!(
            "aggregate:    {} ({} bytes, {:?})",
            a.model_sha256, a.size_bytes, a.rule
        );
        println!("submitted by: {}", a.submitted_by);
        if let Some(v) = verdict {
            // The rules hold the aggregate to the verdict's lists; it does not repeat them.
            println!("contributors: {}", v.accepted.join(", "));
            println!("excluded:     {}", v.excluded.join(", "));
        }
        if !a.blob_uri.is_empty() {
            println!("blob:         {}", a.blob_uri);
        }
        println!("finality:     {:?}", finality(a));
        if !a.committee.is_empty() {
            println!("committee:    {}", a.committee.join(", "));
            for at in a.get_attestations() {
                let verdict = if at.model_sha256 == a.model_sha256 {
                    "matches".to_owned()
                } else {
                    format!("recomputed {}", at.model_sha256)
                };
                let disputes = if at.false_disputes.is_empty() {
                    String::new()
                } else {
                    format!("; false disputes: {}", at.false_disputes.join(", "))
                };
                println!("  attested by {}: {verdict}{disputes}", at.member);
            }
        }
        if round.closed_unverified {
            println!("closed unverified by an admin");
        }
    }
}

/// An aggregate's finality (aggregates recorded before the field existed are FINAL).
pub(super) fn finality(a: &pb::Aggregate) -> pb::Finality {
    match a.finality {
        pb::Finality::FINALITY_UNSET => pb::Finality::FINAL,
        f => f,
    }
}

fn print_links<'a>(links: impl IntoIterator<Item = &'a pb::Link>) {
    let mut t = Table::new(&["FROM", "TO", "BYTES/S", "RTT US", "EPOCH", "SAMPLES"]);
    for l in links {
        let Some(last) = l.get_samples().last() else {
            continue;
        };
        t.row(vec![
            l.from.clone(),
            l.to.clone(),
            last.bytes_per_sec.to_string(),
            last.rtt_us.to_string(),
            last.epoch.to_string(),
            l.samples.len().to_string(),
        ]);
    }
    t.print();
}

/// The bandwidth graph in Graphviz form, nodes named by member name (or short key).
fn links_dot(state: &FamilyState) -> String {
    let label = |key: &str| match state.members.get(key) {
        Some(m) if !m.name.is_empty() => m.name.clone(),
        _ => key.chars().take(12).collect(),
    };
    let mut out = String::from("digraph bandwidth {\n  rankdir=LR;\n");
    for m in state.members.values() {
        out.push_str(&format!(
            "  \"{}\" [label={:?}];\n",
            m.public_key,
            label(&m.public_key)
        ));
    }
    for l in state.links.values() {
        if let Some(s) = l.get_samples().last() {
            out.push_str(&format!(
                "  \"{}\" -> \"{}\" [label=\"{} B/s\\n{} us\"];\n",
                l.from, l.to, s.bytes_per_sec, s.rtt_us
            ));
        }
    }
    out.push_str("}\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_lists_members_and_latest_samples() {
        let a = format!("02{}", "aa".repeat(32));
        let b = format!("03{}", "bb".repeat(32));
        let mut state = FamilyState::default();
        state.members.insert(
            a.clone(),
            pb::Member {
                public_key: a.clone(),
                name: "alpha".into(),
                ..Default::default()
            },
        );
        let sample = |epoch, bps| pb::LinkSample {
            epoch,
            bytes_per_sec: bps,
            rtt_us: 7,
            ..Default::default()
        };
        state.links.insert(
            (a.clone(), b.clone()),
            pb::Link {
                from: a.clone(),
                to: b.clone(),
                samples: vec![sample(1, 10), sample(2, 20)].into(),
                ..Default::default()
            },
        );
        let dot = links_dot(&state);
        assert!(dot.starts_with("digraph bandwidth {"));
        assert!(dot.contains(&format!("\"{a}\" [label=\"alpha\"];")));
        assert!(dot.contains(&format!("\"{a}\" -> \"{b}\" [label=\"20 B/s\\n7 us\"];")));
        assert!(!dot.contains("10 B/s"));
    }

    #[test]
    fn a_rounds_sketch_agreement_reads_its_commitments_sketches() {
        let commitment = |sketch: &[i32]| pb::Commitment {
            sketch: bcfl_protos::signed_bytes::pack(sketch).unwrap(),
            ..Default::default()
        };
        let (a, b, c) = (
            commitment(&[3, 1]),
            commitment(&[3, 1]),
            commitment(&[1, -3]),
        );
        // a and b agree (1), both are orthogonal to c: the medians are 1, 1 and 0.
        assert_eq!(sketch_agreement(&[&a, &b, &c]), Some(1.0));
        let d = commitment(&[2, 1]);
        // cos(a, d) = 7 / sqrt(50) = 0.98995, shown to 3 decimals.
        assert_eq!(sketch_agreement(&[&a, &d]), Some(0.99));
        // Without sketches (a consortium whose sketches come after the seal, before the
        // reveals) there is nothing to compare.
        let empty = pb::Commitment::default();
        assert_eq!(sketch_agreement(&[&a, &empty]), None);
    }

    #[test]
    fn rounds_and_commitments_show_their_schedule_and_base() {
        let mut round = pb::Round::new();
        assert_eq!(sync_text(&round), "SYNCHRONOUS");
        round.sync = pb::RoundSync::BUFFERED_ASYNC;
        round.buffer_size = 3;
        round.max_staleness = 2;
        assert_eq!(sync_text(&round), "BUFFERED_ASYNC buffer 3 staleness <= 2");
        let stale = pb::Commitment {
            round: 4,
            member: "02aa".into(),
            base_round: 3,
            staleness: 1,
            ..Default::default()
        };
        let old = pb::Commitment {
            round: 1,
            member: "02bb".into(),
            ..Default::default()
        };
        let mut state = FamilyState::default();
        state.rounds.insert(
            3,
            pb::Round {
                number: 3,
                parent_model_sha256: "cd".repeat(32),
                ..Default::default()
            },
        );
        let text = commitments_table(&state, &[&stale, &old]).render();
        let lines: Vec<&str> = text.lines().collect();
        assert!(
            lines[0].starts_with("ROUND  MEMBER  BASE ROUND  STALENESS"),
            "{text}"
        );
        assert!(
            lines[1].starts_with("4      02aa    3           1"),
            "{text}"
        );
        assert!(lines[1].ends_with(&"cd".repeat(32)), "{text}");
        assert!(
            lines[2].starts_with("1      02bb    -           0"),
            "{text}"
        );
        // Round 1 is not in the state: its parent model is unknown.
        assert!(lines[2].ends_with(" -"), "{text}");
    }
}
