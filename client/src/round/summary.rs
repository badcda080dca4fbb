//! What a federated run reports (`bcfl demo`, `bcfl fl simulate`), built from the ledger
//! (commitments, verdicts, aggregates, links) and the nodes' report files (times, bytes, peak
//! memory, test scores): a table per round as it closes, and at the end `report.json`,
//! `report.md` and the figures in the work folder (`DemoReport`, feature `train`). The rounds,
//! their series and a round's bandwidth graph need no libtorch: `bcfl audit serve` draws its
//! charts and graphs with them.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
#[cfg(feature = "train")]
use std::path::{Path, PathBuf};

use bcfl_processor::anomaly::{member_scores, method_name};
use bcfl_processor::graph::{BandwidthGraph, Routing, TransferModel};
use bcfl_processor::limits::LINK_SAMPLES_KEPT;
use bcfl_protos::bcfl as pb;
use serde::Serialize;

#[cfg(feature = "train")]
use crate::figures;
use crate::figures::{GraphEdge, GraphFigure, GraphNode, RoundSeries};
use crate::fixed;
use crate::round::report::NodeEvent;
#[cfg(feature = "train")]
use crate::train::split::DataPlan;
use bcfl_ledger::state::FamilyState;

/// A member as the report names it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MemberInfo {
    /// Display name (also its key name in `WORK/keys`).
    pub name: String,
    /// Public key.
    pub key: String,
    /// Its blob server.
    pub endpoint: String,
    /// Training examples in its shard.
    pub shard: usize,
    /// The attack it runs, if any.
    pub attack: Option<String>,
    /// Its process's peak resident memory, bytes.
    pub peak_rss_bytes: u64,
}

/// One member in one round.
#[derive(Clone, Debug, Serialize)]
pub struct MemberRound {
    /// Name.
    pub member: String,
    /// The attack it ran.
    pub attack: Option<String>,
    /// Whether the ledger drew it to train the round (always, unless the consortium samples).
    pub drawn: bool,
    /// Whether it committed to the round.
    pub committed: bool,
    /// Training examples.
    pub samples: u64,
    /// Mean training loss of its last local epoch (committed).
    pub loss: f64,
    /// L2 norm of the change it proposed (committed).
    pub norm: f64,
    /// The round whose global model it trained from (buffered rounds: maybe an earlier one).
    pub base_round: u64,
    /// Seconds of local training.
    pub train_s: f64,
    /// The on-chain verdict: accepted.
    pub accepted: bool,
    /// The methods that flagged it.
    pub flagged_by: Vec<String>,
    /// Each method's score for it (`mislabelled`: its reference margin), where the verdict
    /// scored it.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub scores: BTreeMap<String, f64>,
    /// Whether it holds the round's global model, checked against the chain.
    pub holds_global: bool,
}

/// Seconds spent in each phase of a round (the slowest node's, where several nodes work).
#[derive(Clone, Debug, Default, Serialize)]
pub struct Timings {
    /// Local training (members in parallel: the slowest).
    pub train_s: f64,
    /// Bandwidth probes and their reports (the slowest member).
    pub probe_s: f64,
    /// Commits (the slowest member).
    pub commit_s: f64,
    /// EvaluateRound.
    pub evaluate_s: f64,
    /// Fetching the accepted updates.
    pub fetch_s: f64,
    /// Aggregation and CommitAggregate.
    pub aggregate_s: f64,
    /// Distribution and CloseRound.
    pub distribute_s: f64,
    /// From the first node's first step of the round to the last member holding its global
    /// model (scoring excluded).
    pub round_s: f64,
    /// Scoring the global model on the held-out set (not part of the round).
    pub score_s: f64,
    /// `round_s - train_s`: what the protocol costs beyond local training.
    pub overhead_s: f64,
}

/// One round.
#[derive(Clone, Debug, Serialize)]
pub struct RoundReport {
    /// Round number.
    pub round: u64,
    /// `serverless` or `server`, `synchronous` or `buffered-async`.
    pub mode: String,
    /// The aggregator's name.
    pub aggregator: String,
    /// SHA-256 of the parent model.
    pub parent_sha256: String,
    /// Every member's part, in member order.
    pub members: Vec<MemberRound>,
    /// Names of the members the verdict excluded.
    pub excluded: Vec<String>,
    /// Names of the members whose update to the round before ([`Self::withdrawn_round`]) the
    /// verdict withdrew (`Verdict.withdrawn`, with `--withdraw`): this round's aggregate takes
    /// it back out.
    pub withdrawn: Vec<String>,
    /// SHA-256 of the global model (None: the round was abandoned).
    pub aggregate_sha256: Option<String>,
    /// Size of the global model, bytes.
    pub aggregate_bytes: u64,
    /// Test accuracy of the global model (the parent's again after an abandoned round).
    pub accuracy: Option<f64>,
    /// Test macro-F1.
    pub macro_f1: Option<f64>,
    /// Seconds per phase.
    pub timings: Timings,
    /// When the round's first protocol step began, milliseconds since the Unix epoch (0: no
    /// step recorded).
    pub started_unix_ms: u64,
    /// When its last protocol step ended (the global model distributed or fetched), same
    /// clock: runs compare their time to an accuracy with it.
    pub ended_unix_ms: u64,
    /// Bytes moved between members (probes, updates, the global model).
    pub bytes_moved: u64,
}

/// A whole run (`bcfl demo`).
#[cfg(feature = "train")]
#[derive(Clone, Debug, Serialize)]
pub struct DemoReport {
    /// The ledger's REST API.
    pub ledger: String,
    /// The work folder (keys, shards, model package, node configs, stores, logs, reports).
    pub work_dir: String,
    /// The model members fine-tune.
    pub model: String,
    /// SHA-256 of the base weights.
    pub base_model_sha256: String,
    /// SHA-256 of the initial adapters and head (round 1's parent).
    pub initial_sha256: String,
    /// Aggregation rule.
    pub rule: String,
    /// Anomaly methods.
    pub anomaly: Vec<String>,
    /// Topology and synchrony.
    pub mode: String,
    /// The data used.
    pub data: DataPlan,
    /// The members.
    pub members: Vec<MemberInfo>,
    /// The initial model's test accuracy.
    pub initial_accuracy: Option<f64>,
    /// The rounds.
    pub rounds: Vec<RoundReport>,
    /// Each round's `round_s` summed.
    pub rounds_total_s: f64,
    /// Each round's `train_s` summed.
    pub train_total_s: f64,
    /// `1 - train / round`, summed over rounds: the protocol's share of round time.
    pub overhead_fraction: f64,
    /// Wall-clock seconds of the whole run, set-up included.
    pub seconds: f64,
    /// Seconds from the start of the member processes to the last round's end (process
    /// start-up and model loading included).
    pub rounds_seconds: f64,
    /// The files the report was written to (`report.json`, `report.md`, the figures).
    pub files: Vec<PathBuf>,
}

fn short(hash: &str) -> &str {
    &hash[..hash.len().min(12)]
}

/// The methods that flagged each member.
pub fn flags(verdict: &pb::Verdict) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let scored = verdict.scored();
    for method in &verdict.methods {
        for score in member_scores(&scored, method).filter(|s| s.flagged) {
            out.entry(score.member.to_owned())
                .or_default()
                .push(method_name(method.method).to_owned());
        }
    }
    out
}

/// Each scored member's score by each method of `verdict`, by member key, then method name.
pub fn scores(verdict: &pb::Verdict) -> BTreeMap<String, BTreeMap<String, f64>> {
    let mut out: BTreeMap<String, BTreeMap<String, f64>> = BTreeMap::new();
    let scored = verdict.scored();
    for method in &verdict.methods {
        for score in member_scores(&scored, method) {
            out.entry(score.member.to_owned()).or_default().insert(
                method_name(method.method).to_owned(),
                fixed::micro_to_f64(score.score_micro),
            );
        }
    }
    out
}

/// Round `round` is over for a report: CLOSED, its global model (if any) held (by their `global`
/// events) by every member that committed to it and every member of `followers` (members that
/// sat the round out but follow the consortium: the demo's own member processes, so that a
/// member the ledger did not draw is reported holding the model it fetches after the round) and,
/// when `scorer` (a member's key) scores global models, scored by it.
pub fn round_done(
    state: &FamilyState,
    round: u64,
    events: &[NodeEvent],
    followers: &[String],
    scorer: Option<&str>,
) -> bool {
    let Some(r) = state.rounds.get(&round) else {
        return false;
    };
    if r.phase != pb::RoundPhase::CLOSED {
        return false;
    }
    if !state.aggregates.contains_key(&round) {
        return true;
    }
    let held = r.committers.iter().chain(followers).all(|key| {
        events
            .iter()
            .any(|e| &e.key == key && e.round == round && e.phase == "global")
    });
    let scored = scorer.is_none_or(|key| {
        events
            .iter()
            .any(|e| e.key == key && e.round == round && e.phase == "score")
    });
    held && scored
}

/// Round `round` from the ledger state and every node's events.
pub fn round_report(
    state: &FamilyState,
    round: u64,
    members: &[MemberInfo],
    events: &[NodeEvent],
) -> Option<RoundReport> {
    let r = state.rounds.get(&round)?;
    let name_of = |key: &str| {
        members
            .iter()
            .find(|m| m.key == key)
            .map_or_else(|| short(key).to_owned(), |m| m.name.clone())
    };
    let verdict = state.verdicts.get(&round);
    let flagged = verdict.map(flags).unwrap_or_default();
    let mut scored = verdict.map(scores).unwrap_or_default();
    let aggregate = state.aggregates.get(&round);
    let in_round: Vec<&NodeEvent> = events.iter().filter(|e| e.round == round).collect();
    let phase_max = |phase: &str| {
        in_round
            .iter()
            .filter(|e| e.phase == phase)
            .map(|e| e.seconds)
            .fold(0.0, f64::max)
    };
    let rows = members
        .iter()
        .map(|m| {
            let commitment = state.commitments.get(&(round, m.key.clone()));
            MemberRound {
                member: m.name.clone(),
                attack: m.attack.clone(),
                drawn: super::schedule::drawn(r, &m.key),
                committed: commitment.is_some(),
                samples: commitment.map_or(0, |c| c.num_samples),
                loss: commitment.map_or(0.0, |c| fixed::micro_to_f64(c.loss_micro)),
                norm: commitment.map_or(0.0, |c| fixed::micro_unsigned_to_f64(c.norm_micro)),
                base_round: commitment.map_or(round, pb::Commitment::trained_from_round),
                train_s: in_round
                    .iter()
                    .filter(|e| e.key == m.key && e.phase == "train")
                    .map(|e| e.seconds)
                    .fold(0.0, |a, b| a + b),
                accepted: verdict.is_some_and(|v| v.accepted.contains(&m.key)),
                flagged_by: flagged.get(&m.key).cloned().unwrap_or_default(),
                scores: scored.remove(&m.key).unwrap_or_default(),
                holds_global: in_round
                    .iter()
                    .any(|e| e.key == m.key && e.phase == "global"),
            }
        })
        .collect();
    let scored = in_round
        .iter()
        .find(|e| e.phase == "score" && e.accuracy.is_some());
    // Scoring on the held-out set is the report's measurement, not part of the round.
    let protocol = || in_round.iter().filter(|e| e.phase != "score");
    let start = protocol()
        .map(|e| e.unix_ms as f64 - e.seconds * 1e3)
        .fold(f64::INFINITY, f64::min);
    let end = protocol()
        .map(|e| e.unix_ms as f64)
        .fold(f64::NEG_INFINITY, f64::max);
    let round_s = if end > start {
        (end - start) / 1e3
    } else {
        0.0
    };
    let train_s = phase_max("train");
    let mode = format!(
        "{}/{}",
        if r.mode == pb::RoundMode::SERVER {
            "server"
        } else {
            "serverless"
        },
        if r.sync == pb::RoundSync::BUFFERED_ASYNC {
            "buffered-async"
        } else {
            "synchronous"
        }
    );
    Some(RoundReport {
        round,
        mode,
        aggregator: name_of(&r.aggregator),
        parent_sha256: r.parent_model_sha256.clone(),
        members: rows,
        excluded: verdict
            .map(|v| v.excluded.iter().map(|k| name_of(k)).collect())
            .unwrap_or_default(),
        withdrawn: verdict
            .map(|v| v.withdrawn_members().iter().map(|k| name_of(k)).collect())
            .unwrap_or_default(),
        aggregate_sha256: aggregate.map(|a| a.model_sha256.clone()),
        aggregate_bytes: aggregate.map_or(0, |a| a.size_bytes),
        accuracy: scored.and_then(|e| e.accuracy),
        macro_f1: scored.and_then(|e| e.macro_f1),
        timings: Timings {
            train_s,
            probe_s: phase_max("probe"),
            commit_s: phase_max("commit"),
            evaluate_s: phase_max("evaluate"),
            fetch_s: phase_max("fetch"),
            aggregate_s: phase_max("aggregate"),
            distribute_s: phase_max("distribute"),
            round_s,
            score_s: phase_max("score"),
            overhead_s: (round_s - train_s).max(0.0),
        },
        started_unix_ms: if start.is_finite() { start as u64 } else { 0 },
        ended_unix_ms: if end.is_finite() { end as u64 } else { 0 },
        bytes_moved: in_round.iter().map(|e| e.bytes).sum(),
    })
}

impl RoundReport {
    /// The round whose updates [`Self::withdrawn`] names: the one before.
    pub fn withdrawn_round(&self) -> u64 {
        self.round.saturating_sub(1)
    }

    /// The round as the figures need it: accuracy, seconds per phase (`other`: the rest of
    /// the round) and bytes moved.
    pub fn series(&self) -> RoundSeries {
        let t = &self.timings;
        let phases = [
            ("train", t.train_s),
            ("probe", t.probe_s),
            ("commit", t.commit_s),
            ("evaluate", t.evaluate_s),
            ("fetch", t.fetch_s),
            ("aggregate", t.aggregate_s),
            ("distribute", t.distribute_s),
        ];
        let named: f64 = phases.iter().map(|p| p.1).sum();
        RoundSeries {
            round: self.round,
            accuracy: self.accuracy,
            phases: phases
                .iter()
                .map(|&(name, s)| (name.to_owned(), s))
                .chain([("other".to_owned(), (t.round_s - named).max(0.0))])
                .collect(),
            bytes_moved: self.bytes_moved,
        }
    }

    /// The round as text: a member table, then the aggregate, times and accuracy.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "round {} ({}): aggregator {}, parent model {}",
            self.round,
            self.mode,
            self.aggregator,
            short(&self.parent_sha256)
        );
        let _ = writeln!(
            out,
            "  {:<24} {:>7} {:>8} {:>9} {:>5} {:>8} {:<26} {:<6}",
            "member", "samples", "loss", "norm", "base", "train s", "verdict", "global"
        );
        for m in &self.members {
            let name = match &m.attack {
                Some(kind) => format!("{} [{kind}]", m.member),
                None => m.member.clone(),
            };
            let verdict = if !m.drawn {
                "not drawn".to_owned()
            } else if !m.committed {
                "no commitment".to_owned()
            } else if m.accepted {
                "accepted".to_owned()
            } else if m.flagged_by.is_empty() {
                "not evaluated".to_owned()
            } else {
                format!("EXCLUDED ({})", m.flagged_by.join(","))
            };
            let _ = writeln!(
                out,
                "  {:<24} {:>7} {:>8.4} {:>9.4} {:>5} {:>8.2} {:<26} {:<6}",
                name,
                m.samples,
                m.loss,
                m.norm,
                m.base_round,
                m.train_s,
                verdict,
                if m.holds_global { "held" } else { "-" }
            );
        }
        if !self.withdrawn.is_empty() {
            let _ = writeln!(
                out,
                "  withdrawn from round {}: {}",
                self.withdrawn_round(),
                self.withdrawn.join(", ")
            );
        }
        match &self.aggregate_sha256 {
            Some(sha) => {
                let _ = writeln!(
                    out,
                    "  global model {} ({} bytes), checked by {} of {} members",
                    short(sha),
                    self.aggregate_bytes,
                    self.members.iter().filter(|m| m.holds_global).count(),
                    self.members.len()
                );
            }
            None => {
                let _ = writeln!(out, "  ABANDONED: no global model this round");
            }
        }
        let t = &self.timings;
        let _ = writeln!(
            out,
            "  seconds: round {:.2} = train {:.2} + overhead {:.2} (probe {:.2}, commit {:.2}, evaluate {:.2}, fetch {:.2}, aggregate {:.2}, distribute {:.2}); scoring {:.2} (not counted); {:.2} MB moved",
            t.round_s, t.train_s, t.overhead_s, t.probe_s, t.commit_s, t.evaluate_s, t.fetch_s, t.aggregate_s, t.distribute_s, t.score_s,
            self.bytes_moved as f64 / 1e6
        );
        if let Some(accuracy) = self.accuracy {
            let _ = writeln!(
                out,
                "  test accuracy {:.4}, macro-F1 {:.4}",
                accuracy,
                self.macro_f1.unwrap_or(f64::NAN)
            );
        }
        out
    }
}

#[cfg(feature = "train")]
impl DemoReport {
    /// The set-up as text.
    pub fn render_heading(&self) -> String {
        let mut out = String::new();
        let d = &self.data;
        let _ = writeln!(out, "bcfl demo: ledger {}, {}", self.ledger, self.mode);
        let _ = writeln!(
            out,
            "  model {} (base {}, initial {})",
            self.model,
            short(&self.base_model_sha256),
            short(&self.initial_sha256)
        );
        let _ = writeln!(
            out,
            "  data: {} of {} training and {} of {} test examples{} ({} classes, {} test texts in training)",
            d.train_used,
            d.train_available,
            d.test_used,
            d.test_available,
            if d.subset { ", a SUBSET of the data" } else { "" },
            d.labels.len(),
            d.leaked
        );
        let _ = writeln!(
            out,
            "  rule {}, anomaly methods {}",
            self.rule,
            self.anomaly.join(",")
        );
        for m in &self.members {
            let _ = writeln!(
                out,
                "  {:<10} {} {} shard {:>4}{}",
                m.name,
                short(&m.key),
                m.endpoint,
                m.shard,
                m.attack
                    .as_ref()
                    .map(|a| format!("  ATTACKER: {a}"))
                    .unwrap_or_default()
            );
        }
        out
    }

    /// One line: accuracy per round and the time.
    pub fn render_summary(&self) -> String {
        let mut out = String::from("summary: test accuracy");
        if let Some(a) = self.initial_accuracy {
            let _ = write!(out, " start {a:.4}");
        }
        for r in &self.rounds {
            match r.accuracy {
                Some(a) => {
                    let _ = write!(out, ", round {} {a:.4}", r.round);
                }
                None => {
                    let _ = write!(out, ", round {} -", r.round);
                }
            }
            if !r.excluded.is_empty() {
                let _ = write!(out, " (excluded {})", r.excluded.join(","));
            }
            if !r.withdrawn.is_empty() {
                let _ = write!(
                    out,
                    " (withdrew round {} of {})",
                    r.withdrawn_round(),
                    r.withdrawn.join(",")
                );
            }
        }
        let _ = write!(
            out,
            "; rounds {:.1} s (training {:.1} s, overhead {:.1} %); {:.1} s in all; report in {}",
            self.rounds_total_s,
            self.train_total_s,
            100.0 * self.overhead_fraction,
            self.seconds,
            self.work_dir
        );
        out
    }

    /// `report.md`: the set-up, each round's table, per-node memory and the figures.
    pub fn render_markdown(&self) -> String {
        let mut out = String::from("# bcfl demo report\n\n```text\n");
        out.push_str(&self.render_heading());
        out.push_str("```\n\n## Rounds\n\n```text\n");
        for r in &self.rounds {
            out.push_str(&r.render());
            out.push('\n');
        }
        out.push_str("```\n\n");
        out.push_str("| round | mode | aggregator | excluded | accuracy | round s | train s | overhead s | MB moved |\n");
        out.push_str("| --- | --- | --- | --- | --- | --- | --- | --- | --- |\n");
        for r in &self.rounds {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {:.2} | {:.2} | {:.2} | {:.2} |",
                r.round,
                r.mode,
                r.aggregator,
                if r.excluded.is_empty() {
                    "-".to_owned()
                } else {
                    r.excluded.join(", ")
                },
                r.accuracy.map_or("-".to_owned(), |a| format!("{a:.4}")),
                r.timings.round_s,
                r.timings.train_s,
                r.timings.overhead_s,
                r.bytes_moved as f64 / 1e6
            );
        }
        out.push_str("\n## Nodes\n\n| node | shard | peak memory (MB) |\n| --- | --- | --- |\n");
        for m in &self.members {
            let _ = writeln!(
                out,
                "| {} | {} | {:.1} |",
                m.name,
                m.shard,
                m.peak_rss_bytes as f64 / 1e6
            );
        }
        out.push_str("\n## Figures\n\n");
        for file in &self.files {
            if let Some(name) = file.file_name().and_then(|n| n.to_str()) {
                if name.ends_with(".svg") {
                    let _ = writeln!(out, "![{name}]({name})\n");
                }
            }
        }
        let _ = writeln!(out, "{}", self.render_summary());
        out
    }

    /// The figures' data: one series per round.
    pub fn series(&self) -> Vec<RoundSeries> {
        self.rounds.iter().map(RoundReport::series).collect()
    }

    /// Fills the totals from the rounds.
    pub fn total(&mut self) {
        self.rounds_total_s = self.rounds.iter().map(|r| r.timings.round_s).sum();
        self.train_total_s = self.rounds.iter().map(|r| r.timings.train_s).sum();
        self.overhead_fraction = if self.rounds_total_s > 0.0 {
            (1.0 - self.train_total_s / self.rounds_total_s).max(0.0)
        } else {
            0.0
        };
    }

    /// Writes `report.json`, `report.md` and the figures into `dir`.
    pub fn write(&mut self, dir: &Path, state: &FamilyState) -> super::Result<()> {
        self.total();
        let graph = graph_figure(state, &self.members);
        self.files =
            figures::write_all(dir, &self.series(), self.initial_accuracy, graph.as_ref())?;
        self.files.push(dir.join("report.json"));
        self.files.push(dir.join("report.md"));
        std::fs::write(
            dir.join("report.json"),
            serde_json::to_string_pretty(self)? + "\n",
        )?;
        std::fs::write(dir.join("report.md"), self.render_markdown())?;
        Ok(())
    }
}

/// Longest node label drawn in full in the graph; longer names are cut with an ellipsis.
const GRAPH_LABEL_CHARS: usize = 24;

/// `name` as the graph labels it: at most [`GRAPH_LABEL_CHARS`] characters.
fn graph_label(name: &str) -> String {
    if name.chars().count() <= GRAPH_LABEL_CHARS {
        return name.to_owned();
    }
    let mut label: String = name.chars().take(GRAPH_LABEL_CHARS - 1).collect();
    label.push('…');
    label
}

/// The measured bandwidth graph with the last round's routing tree (from its aggregator, the
/// excluded members removed) and the excluded members marked.
pub fn graph_figure(state: &FamilyState, members: &[MemberInfo]) -> Option<GraphFigure> {
    let (&round, _) = state.rounds.last_key_value()?;
    round_graph_figure(state, round, members)
}

/// Round `round`'s bandwidth graph: the links as measured up to that round (the samples of
/// epochs up to `round` the ledger still keeps), with the round's routing tree from its
/// aggregator on the graph its members route on ([`super::schedule::routing_graph`]: the
/// excluded members removed, only the server's links in a SERVER round) and the excluded
/// members marked; None when the round does not exist or no link of it is measured.
pub fn round_graph_figure(
    state: &FamilyState,
    round: u64,
    members: &[MemberInfo],
) -> Option<GraphFigure> {
    let r = state.rounds.get(&round)?;
    let excluded: BTreeSet<String> = state
        .verdicts
        .get(&round)
        .map(|v| v.excluded.iter().cloned().collect())
        .unwrap_or_default();
    let as_of: Vec<pb::Link> = state
        .links
        .values()
        .filter_map(|l| {
            let samples: Vec<pb::LinkSample> = l
                .get_samples()
                .iter()
                .filter(|s| s.epoch <= round)
                .cloned()
                .collect();
            (!samples.is_empty()).then(|| pb::Link {
                samples: samples.into(),
                ..l.clone()
            })
        })
        .collect();
    let measured = BandwidthGraph::from_ledger_links(&as_of, LINK_SAMPLES_KEPT).ok()?;
    let removed: BTreeSet<String> = excluded
        .iter()
        .filter(|k| **k != r.aggregator)
        .cloned()
        .collect();
    let mut tree_edges: BTreeSet<(String, String)> = BTreeSet::new();
    let routing = super::schedule::routing_graph(&as_of, r, &removed).ok();
    if let Some(routing) = routing.filter(|g| g.contains(&r.aggregator)) {
        let model = TransferModel::new(1_048_576.0, 65_536.0).ok()?;
        if let Ok(tree) = routing.route(&r.aggregator, Routing::Shortest, &model) {
            for m in members {
                if let Some(path) = tree.path(&m.key) {
                    for pair in path.windows(2) {
                        tree_edges
                            .insert((pair[0].as_str().to_owned(), pair[1].as_str().to_owned()));
                    }
                }
            }
        }
    }
    let nodes = members
        .iter()
        .map(|m| GraphNode {
            id: m.key.clone(),
            label: graph_label(&m.name),
            aggregator: m.key == r.aggregator,
            excluded: excluded.contains(&m.key),
        })
        .collect();
    let edges = as_of
        .iter()
        .filter_map(|l| {
            let bps = measured.bandwidth(&l.from, &l.to)?;
            Some(GraphEdge {
                from: l.from.clone(),
                to: l.to.clone(),
                bytes_per_sec: bps,
                in_tree: tree_edges.contains(&(l.from.clone(), l.to.clone())),
            })
        })
        .collect();
    Some(GraphFigure {
        title: format!("measured links; round {round}'s routing tree from its aggregator"),
        nodes,
        edges,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A round's graph shows the links as measured up to it, and its tree is routed on the
    /// round's own graph: in a SERVER round over the server's links only.
    #[test]
    fn a_rounds_graph_is_the_one_measured_up_to_it() {
        let keys = ["02aa", "02bb", "02cc"].map(str::to_owned);
        let members: Vec<MemberInfo> = keys
            .iter()
            .map(|k| MemberInfo {
                name: format!("m-{k}"),
                key: k.clone(),
                endpoint: String::new(),
                shard: 0,
                attack: None,
                peak_rss_bytes: 0,
            })
            .collect();
        let mut state = FamilyState::default();
        for number in [1, 2] {
            state.rounds.insert(
                number,
                pb::Round {
                    number,
                    aggregator: keys[0].clone(),
                    mode: if number == 2 {
                        pb::RoundMode::SERVER
                    } else {
                        pb::RoundMode::SERVERLESS
                    },
                    ..Default::default()
                },
            );
        }
        let mut link = |from: usize, to: usize, epochs: &[u64], bps: u64| {
            let samples: Vec<pb::LinkSample> = epochs
                .iter()
                .map(|&epoch| pb::LinkSample {
                    epoch,
                    bytes_per_sec: bps,
                    rtt_us: 100,
                    ..Default::default()
                })
                .collect();
            state.links.insert(
                (keys[from].clone(), keys[to].clone()),
                pb::Link {
                    from: keys[from].clone(),
                    to: keys[to].clone(),
                    samples: samples.into(),
                    ..Default::default()
                },
            );
        };
        // a -> b fast, b -> c fast, a -> c slow; c -> a measured in round 2 only.
        link(0, 1, &[1, 2], 100_000_000);
        link(1, 2, &[1, 2], 100_000_000);
        link(0, 2, &[1, 2], 10_000);
        link(2, 0, &[2], 50_000_000);
        let edges = |round| {
            let figure = round_graph_figure(&state, round, &members).unwrap();
            figure
                .edges
                .iter()
                .map(|e| (e.from.clone(), e.to.clone(), e.in_tree))
                .collect::<Vec<_>>()
        };
        let k = |i: usize| keys[i].clone();
        // Round 1 (serverless): c -> a not yet measured; a reaches c through b.
        assert_eq!(
            edges(1),
            vec![(k(0), k(1), true), (k(0), k(2), false), (k(1), k(2), true)]
        );
        // Round 2 (server a): the tree uses only the server's links, so a -> c directly.
        assert_eq!(
            edges(2),
            vec![
                (k(0), k(1), true),
                (k(0), k(2), true),
                (k(1), k(2), false),
                (k(2), k(0), false)
            ]
        );
        assert!(round_graph_figure(&state, 3, &members).is_none());
    }

    #[test]
    fn long_names_are_cut_in_the_graph() {
        assert_eq!(graph_label("member-1"), "member-1");
        let long = "<img src=x onerror=\"window.pwned=1\">";
        let label = graph_label(long);
        assert_eq!(label.chars().count(), GRAPH_LABEL_CHARS);
        assert!(label.ends_with('…') && long.starts_with(label.trim_end_matches('…')));
        assert_eq!(graph_label(&"é".repeat(24)), "é".repeat(24));
    }

    fn event(
        key: &str,
        round: u64,
        phase: &str,
        end_ms: u64,
        seconds: f64,
        bytes: u64,
    ) -> NodeEvent {
        NodeEvent {
            node: key.to_owned(),
            key: key.to_owned(),
            round,
            phase: phase.to_owned(),
            seconds,
            bytes,
            peak_rss_bytes: 0,
            unix_ms: end_ms,
            sha256: None,
            accuracy: (phase == "score").then_some(0.5),
            macro_f1: None,
            detail: None,
        }
    }

    /// Members keyed `keys`, each named `m-KEY`.
    fn members_named(keys: &[&str]) -> Vec<MemberInfo> {
        keys.iter()
            .map(|k| MemberInfo {
                name: format!("m-{k}"),
                key: (*k).into(),
                endpoint: String::new(),
                shard: 1,
                attack: None,
                peak_rss_bytes: 0,
            })
            .collect()
    }

    #[test]
    fn a_round_is_timed_from_the_ledger_and_the_events_with_scoring_left_out() {
        let mut state = FamilyState::default();
        state.rounds.insert(
            1,
            pb::Round {
                number: 1,
                aggregator: "a".into(),
                phase: pb::RoundPhase::CLOSED,
                committers: vec!["a".into(), "b".into()].into(),
                ..Default::default()
            },
        );
        state.aggregates.insert(
            1,
            pb::Aggregate {
                round: 1,
                model_sha256: "g".into(),
                size_bytes: 10,
                ..Default::default()
            },
        );
        let members = members_named(&["a", "b"]);
        let mut events = vec![
            event("a", 1, "train", 10_000, 8.0, 0),
            event("b", 1, "train", 11_000, 10.0, 0),
            event("a", 1, "aggregate", 11_500, 0.2, 0),
            event("a", 1, "global", 12_000, 0.1, 0),
        ];
        // b does not hold the global model yet: the round is not over for the report.
        assert!(!round_done(&state, 1, &events, &[], None));
        events.push(event("b", 1, "global", 12_500, 0.3, 10));
        assert!(round_done(&state, 1, &events, &[], None));
        // A follower that sat the round out must hold it too (regression: the demo reported an
        // undrawn member without the model it fetched a moment later).
        assert!(!round_done(&state, 1, &events, &["c".to_owned()], None));
        let mut followed = events.clone();
        followed.push(event("c", 1, "global", 12_700, 0.1, 0));
        assert!(round_done(&state, 1, &followed, &["c".to_owned()], None));
        // With a scorer, the round waits for its score.
        assert!(!round_done(&state, 1, &events, &[], Some("a")));
        events.push(event("a", 1, "score", 20_000, 7.5, 0));
        assert!(round_done(&state, 1, &events, &[], Some("a")));
        let r = round_report(&state, 1, &members, &events).unwrap();
        assert!(r.excluded.is_empty() && r.withdrawn.is_empty());
        // From b's training start (1 000 ms) to the last protocol step (12 500 ms).
        assert!((r.timings.round_s - 11.5).abs() < 1e-9, "{:?}", r.timings);
        assert_eq!((r.started_unix_ms, r.ended_unix_ms), (1_000, 12_500));
        assert_eq!(r.timings.train_s, 10.0);
        assert!((r.timings.overhead_s - 1.5).abs() < 1e-9);
        assert_eq!(r.timings.score_s, 7.5);
        assert_eq!(r.accuracy, Some(0.5));
        assert_eq!(r.bytes_moved, 10);
        assert_eq!(r.aggregator, "m-a");
        assert!(r.members.iter().all(|m| m.holds_global));
    }

    /// A verdict that withdrew updates to the round before names their members in the round's
    /// report, its text and its summary line; excluded members are named apart.
    #[test]
    fn the_report_names_the_updates_a_verdict_withdrew() {
        let mut state = FamilyState::default();
        state.rounds.insert(
            2,
            pb::Round {
                number: 2,
                aggregator: "a".into(),
                committers: vec!["a".into(), "b".into(), "c".into()].into(),
                ..Default::default()
            },
        );
        state.verdicts.insert(
            2,
            pb::Verdict {
                round: 2,
                accepted: vec!["a".into(), "c".into()].into(),
                excluded: vec!["b".into()].into(),
                // Positions among the scored members a, b, c.
                withdrawn: vec![1],
                ..Default::default()
            },
        );
        let members = members_named(&["a", "b", "c"]);
        let r = round_report(&state, 2, &members, &[]).unwrap();
        assert_eq!(r.excluded, ["m-b"]);
        assert_eq!(r.withdrawn, ["m-b"]);
        assert!(
            r.render().contains("withdrawn from round 1: m-b"),
            "{}",
            r.render()
        );
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["withdrawn"], serde_json::json!(["m-b"]));
    }

    /// Known answer: every scored member's score by each method, flagged or not; disputed
    /// members are not scored, so have none.
    #[test]
    fn scores_and_flags_follow_the_scored_members() {
        let verdict = pb::Verdict {
            round: 3,
            accepted: vec!["a".into(), "c".into()].into(),
            excluded: vec!["b".into(), "d".into()].into(),
            disputed: vec!["d".into()].into(),
            methods: vec![
                pb::MethodVerdict {
                    method: pb::AnomalyMethod::MISLABELLED,
                    scores_micro: vec![120_000, -88_000, 46_000],
                    flagged: vec![1],
                    ..Default::default()
                },
                pb::MethodVerdict {
                    method: pb::AnomalyMethod::MODIFIED_ZSCORE,
                    scores_micro: vec![500_000, 1_500_000, -250_000],
                    ..Default::default()
                },
            ]
            .into(),
            ..Default::default()
        };
        let scores = scores(&verdict);
        assert_eq!(scores.len(), 3);
        assert_eq!(scores["b"]["mislabelled"], -0.088);
        assert_eq!(scores["c"]["zscore"], -0.25);
        assert!(!scores.contains_key("d"));
        assert_eq!(flags(&verdict)["b"], ["mislabelled"]);
        assert_eq!(flags(&verdict).len(), 1);
    }
}
