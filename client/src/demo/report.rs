//! What a demo run reports: per round, every member's commitment and verdict, how the
//! aggregator fetched each accepted update, the global model and its distribution, and the
//! global model's test accuracy; printed as tables or, with `--json`, as one JSON document.

use std::fmt::Write as _;

use serde::Serialize;

use super::attack::AttackKind;
use super::engine::DataPlan;
use super::member::MemberInfo;
use crate::train::trainer::Evaluation;

/// A whole run.
#[derive(Clone, Debug, Serialize)]
pub struct DemoReport {
    /// The ledger's REST API.
    pub ledger: String,
    /// The work directory (keys, stores, base model of `--tiny`).
    pub work_dir: String,
    /// The model members fine-tune.
    pub model: String,
    /// SHA-256 of the base weights (the consortium's base model).
    pub base_model_sha256: String,
    /// SHA-256 of the starting adapters and head every member derives from the seed.
    pub initial_sha256: String,
    /// The aggregation rule.
    pub rule: String,
    /// Anomaly methods the consortium runs at evaluation.
    pub anomaly: Vec<String>,
    /// The data the run uses.
    pub data: DataPlan,
    /// The members.
    pub members: Vec<MemberInfo>,
    /// The starting model on the test set.
    pub initial_test: Evaluation,
    /// The rounds.
    pub rounds: Vec<RoundReport>,
    /// Wall-clock seconds of the whole run, set-up included.
    pub seconds: f64,
}

/// One round.
#[derive(Clone, Debug, Serialize)]
pub struct RoundReport {
    /// Round number.
    pub round: u64,
    /// The aggregator's name.
    pub aggregator: String,
    /// SHA-256 of the parent model.
    pub parent_sha256: String,
    /// Every member's part, in member order.
    pub members: Vec<MemberRound>,
    /// Names of the members the verdict excluded.
    pub excluded: Vec<String>,
    /// The global model, unless the round was abandoned.
    pub aggregate: Option<AggregateReport>,
    /// Why the round was abandoned (no aggregate), when it was.
    pub abandoned: Option<String>,
    /// The global model after the round (the parent again when abandoned) on the test set.
    pub test: Evaluation,
    /// Seconds per phase.
    pub timings: Timings,
}

/// Seconds spent in each phase of a round.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Timings {
    /// Local training of every member (one after another).
    pub train_s: f64,
    /// Bandwidth probes and their reports.
    pub probe_s: f64,
    /// EvaluateRound.
    pub evaluate_s: f64,
    /// Fetching the accepted updates.
    pub fetch_s: f64,
    /// Aggregation and CommitAggregate.
    pub aggregate_s: f64,
    /// Distribution and every member's verification.
    pub distribute_s: f64,
    /// The whole round, test evaluation included.
    pub round_s: f64,
}

/// One member in one round.
#[derive(Clone, Debug, Serialize)]
pub struct MemberRound {
    /// Name.
    pub member: String,
    /// The attack it ran.
    pub attack: Option<AttackKind>,
    /// Training examples.
    pub samples: u64,
    /// Mean training loss of its last local epoch.
    pub loss: f64,
    /// L2 norm of the change it proposed (its blob minus the parent).
    pub norm: f64,
    /// SHA-256 of its update blob (committed on chain).
    pub sha256: String,
    /// Blob size in bytes.
    pub bytes: u64,
    /// Seconds of local training.
    pub train_s: f64,
    /// The on-chain verdict: accepted or excluded.
    pub accepted: bool,
    /// The methods that flagged it.
    pub flagged_by: Vec<String>,
    /// How the aggregator got its update (accepted members only).
    pub fetch: Option<FetchRow>,
    /// Whether it holds the round's global model, verified against the chain.
    pub holds_global: bool,
}

/// The aggregator's fetch of one accepted update.
#[derive(Clone, Debug, Serialize)]
pub struct FetchRow {
    /// Node names, holder first, aggregator last (one name: the aggregator's own update).
    pub path: Vec<String>,
    /// Seconds to the verified, stored blob.
    pub seconds: f64,
    /// Attempts (re-routes after failures).
    pub attempts: usize,
    /// Why it failed, when it did: the update is then not used.
    pub error: Option<String>,
}

/// The round's global model.
#[derive(Clone, Debug, Serialize)]
pub struct AggregateReport {
    /// SHA-256 (committed on chain).
    pub sha256: String,
    /// Size in bytes.
    pub bytes: u64,
    /// Names of the contributors.
    pub contributors: Vec<String>,
    /// Names of the members whose values entered the result (Krum keeps fewer).
    pub selected: Vec<String>,
    /// Distribution from the aggregator.
    pub deliveries: Vec<DeliveryRow>,
    /// Seconds until the last member held it.
    pub distribution_s: f64,
}

/// One member's copy of the global model.
#[derive(Clone, Debug, Serialize)]
pub struct DeliveryRow {
    /// Name.
    pub member: String,
    /// The path it came along, aggregator first.
    pub path: Vec<String>,
    /// Seconds from the start of the distribution.
    pub seconds: Option<f64>,
    /// Why it never arrived, when it did not.
    pub error: Option<String>,
}

fn short(hash: &str) -> &str {
    &hash[..hash.len().min(12)]
}

fn path_text(path: &[String]) -> String {
    path.join(" -> ")
}

impl RoundReport {
    /// The round as text: a member table, then the aggregate, distribution and accuracy.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "round {}: aggregator {}, parent model {}",
            self.round,
            self.aggregator,
            short(&self.parent_sha256)
        );
        let _ = writeln!(
            out,
            "  {:<22} {:>7} {:>8} {:>9} {:<26} {:<34} {:>8}",
            "member", "samples", "loss", "norm", "verdict", "fetch path", "fetch s"
        );
        for m in &self.members {
            let name = match m.attack {
                Some(kind) => format!("{} [{kind}]", m.member),
                None => m.member.clone(),
            };
            let verdict = if m.accepted {
                "accepted".to_owned()
            } else {
                format!("EXCLUDED ({})", m.flagged_by.join(","))
            };
            let (path, seconds) = match &m.fetch {
                Some(f) if f.error.is_some() => (
                    format!("FAILED: {}", f.error.as_deref().unwrap_or_default()),
                    "-".to_owned(),
                ),
                Some(f) if f.path.len() == 1 => ("(aggregator's own)".to_owned(), "-".to_owned()),
                Some(f) => (path_text(&f.path), format!("{:.4}", f.seconds)),
                None => ("not fetched".to_owned(), "-".to_owned()),
            };
            let _ = writeln!(
                out,
                "  {:<22} {:>7} {:>8.4} {:>9.4} {:<26} {:<34} {:>8}",
                name, m.samples, m.loss, m.norm, verdict, path, seconds
            );
        }
        match (&self.aggregate, &self.abandoned) {
            (Some(a), _) => {
                let _ = writeln!(
                    out,
                    "  global model {} ({} bytes) from {} contributors; distributed in {:.4} s:",
                    short(&a.sha256),
                    a.bytes,
                    a.contributors.len(),
                    a.distribution_s
                );
                for d in &a.deliveries {
                    let how = match (&d.error, d.seconds) {
                        (Some(e), _) => format!("FAILED: {e}"),
                        (None, Some(s)) => format!("{} ({s:.4} s)", path_text(&d.path)),
                        (None, None) => "held already".to_owned(),
                    };
                    let _ = writeln!(out, "    {:<12} {how}", d.member);
                }
                let holders = self.members.iter().filter(|m| m.holds_global).count();
                let _ = writeln!(
                    out,
                    "  {holders} of {} members verified it against the chain and loaded it",
                    self.members.len()
                );
            }
            (None, reason) => {
                let _ = writeln!(
                    out,
                    "  ABANDONED: {}; the next round starts from the parent",
                    reason.as_deref().unwrap_or("no aggregate")
                );
            }
        }
        let t = &self.timings;
        let _ = writeln!(
            out,
            "  test accuracy {:.4}, macro-F1 {:.4} ({} examples); round {:.1} s (train {:.1}, \
             probe {:.2}, evaluate {:.2}, fetch {:.3}, aggregate {:.2}, distribute {:.3})",
            self.test.scores.accuracy,
            self.test.scores.macro_f1,
            self.test.scores.examples,
            t.round_s,
            t.train_s,
            t.probe_s,
            t.evaluate_s,
            t.fetch_s,
            t.aggregate_s,
            t.distribute_s
        );
        out
    }
}

impl DemoReport {
    /// The heading printed before the rounds.
    pub fn render_heading(&self) -> String {
        let mut out = String::new();
        let d = &self.data;
        let _ = writeln!(out, "bcfl demo: ledger {}", self.ledger);
        let _ = writeln!(
            out,
            "  model {} (base {})",
            self.model,
            short(&self.base_model_sha256)
        );
        let _ =
            writeln!(
            out,
            "  data: {} of {} training and {} of {} test examples{} ({} classes, {} test texts \
             in training)",
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
                    .map(|a| format!("  ATTACKER: {a}"))
                    .unwrap_or_default()
            );
        }
        let _ = writeln!(
            out,
            "  starting model {}: test accuracy {:.4}",
            short(&self.initial_sha256),
            self.initial_test.scores.accuracy
        );
        out
    }

    /// One line per round, then the total time.
    pub fn render_summary(&self) -> String {
        let mut out = String::from("summary: test accuracy");
        let _ = write!(out, " start {:.4}", self.initial_test.scores.accuracy);
        for r in &self.rounds {
            let _ = write!(out, ", round {} {:.4}", r.round, r.test.scores.accuracy);
            if !r.excluded.is_empty() {
                let _ = write!(out, " (excluded {})", r.excluded.join(","));
            }
        }
        let _ = write!(
            out,
            "; {:.1} s in all; keys and stores in {}",
            self.seconds, self.work_dir
        );
        out
    }
}
