//! `bcfl anomaly`: the consortium's anomaly methods on data from files, without a ledger.
//!
//! Inputs: `--bandwidth FILE`, the edge list `bcfl net plan` reads (`from,to,bytes_per_sec`), and
//! `--features FILE`, a CSV with the header `member,<feature>,...` (feature names as
//! [`feature_name`] writes them: `update_norm`, `sketch_cosine_distance`,
//! `cumulative_sketch_cosine_distance`, `training_loss`, `sample_count`, `bandwidth_in`,
//! `bandwidth_out`, `pagerank_score`) and one row per member.
//! `bandwidth_in` / `bandwidth_out` missing from the features file are computed from the edge
//! list (median of each member's incoming / outgoing links), `pagerank_score` from PageRank.
//!
//! The methods are the processor's own ([`bcfl_processor::anomaly`]), run on the same fixed-point
//! configuration the chain stores, so the output equals what `EvaluateRound` would record for
//! the same features.
//!
//! `bcfl anomaly bench` and `bcfl anomaly paper-table` measure the methods on real federated
//! training under attack: they need libtorch and run in `bcfl-train` ([`super::forward`]).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context as _};
use bcfl_client::fixed::{self, format_micro};
use bcfl_net::edges::parse_edge_list;
use bcfl_processor::anomaly::features::bandwidth_feature;
use bcfl_processor::anomaly::{
    evaluate, feature_name, member_scores, method_name, parse_feature, Evaluation, MemberData,
    MemberScore,
};
use bcfl_processor::limits::{MAX_PAGERANK_ITERATIONS, MAX_THRESHOLD_PPM, PPM};
use bcfl_protos::bcfl as pb;
use clap::{Args, Subcommand, ValueEnum};
use serde_json::{json, Value};

use super::forward::Forwarded;
use super::table::Table;
use super::Context;

/// A method `--method` selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Method {
    /// PageRank over the bandwidth graph.
    Pagerank,
    /// DBSCAN over standardized features.
    Dbscan,
    /// Modified z-score of each feature.
    Zscore,
}

/// Edge weight of PageRank.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Weight {
    /// Latency 1/B_ij (the seed paper).
    Latency,
    /// Bandwidth B_ij.
    Bandwidth,
}

/// Subcommands of `bcfl anomaly` (without one, it scores members from files), run in
/// `bcfl-train`.
#[derive(Debug, Subcommand)]
pub(crate) enum AnomalyCommand {
    /// Detection quality and final accuracy per defence under attack, over seeds.
    Bench(Forwarded),
    /// The seed paper's table: method, anomalous nodes, asynchronous time, IID/non-IID accuracy.
    PaperTable(Forwarded),
    /// Draws a bench report's figures again from its JSON (`anomaly bench --out`).
    Plot(Forwarded),
    /// Scores bench reports against the grid's goal: F1 >= 0.95 up to 20 % attackers, >= 0.90
    /// above, exclusion's accuracy within 1 point of the clean run.
    Scorecard(Forwarded),
}

/// Arguments of `bcfl anomaly`.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub(crate) struct AnomalyArgs {
    /// Experiments on real training (in `bcfl-train`).
    #[command(subcommand)]
    command: Option<AnomalyCommand>,
    /// Methods to run (repeat or comma-separate).
    #[arg(long, value_enum, value_delimiter = ',', required = true)]
    method: Vec<Method>,
    /// Edge list CSV `from,to,bytes_per_sec` (as `bcfl net plan`).
    #[arg(long, value_name = "FILE", required_unless_present = "features")]
    bandwidth: Option<PathBuf>,
    /// Features CSV: header `member,<feature>,...`, one row per member.
    #[arg(long, value_name = "FILE")]
    features: Option<PathBuf>,
    /// Features DBSCAN and the z-score use (comma-separated names) [default: every column of
    /// the features file].
    #[arg(long = "use", value_name = "FEATURES", value_delimiter = ',')]
    use_features: Vec<String>,
    /// PageRank damping factor.
    #[arg(long, default_value_t = 0.85)]
    damping: f64,
    /// PageRank flags ranks outside mean +/- k standard deviations.
    #[arg(long, default_value_t = 1.0)]
    k: f64,
    /// PageRank edge weight.
    #[arg(long, value_enum, default_value_t = Weight::Latency)]
    weight: Weight,
    /// PageRank iteration cap.
    #[arg(long, default_value_t = 100)]
    max_iterations: u32,
    /// PageRank L1 convergence tolerance.
    #[arg(long, default_value_t = 1e-9)]
    tolerance: f64,
    /// DBSCAN neighbourhood radius over standardized features (as `consortium init`).
    #[arg(long, default_value_t = 1.5)]
    eps: f64,
    /// DBSCAN points (itself included) that make a core point (as `consortium init`).
    #[arg(long, default_value_t = 2)]
    min_points: u32,
    /// DBSCAN standardizes each feature by its median and robust scale instead of its mean and
    /// standard deviation (as `consortium init --dbscan-robust`).
    #[arg(long)]
    robust: bool,
    /// Modified z-score threshold.
    #[arg(long, default_value_t = 3.5)]
    threshold: f64,
    /// Exclude a member flagged by at least this many methods (0 or 1: any).
    #[arg(long, default_value_t = 1)]
    min_votes: u32,
}

/// `--name value` as fixed point (`convert`, e.g. [`fixed::f64_to_ppm`]) within `low..=high`;
/// `to_f64` writes the bounds in the error.
fn fixed_in(
    name: &str,
    value: f64,
    convert: fn(f64) -> Result<u32, fixed::FixedError>,
    to_f64: fn(u32) -> f64,
    (low, high): (u32, u32),
) -> anyhow::Result<u32> {
    match convert(value) {
        Ok(v) if (low..=high).contains(&v) => Ok(v),
        _ => bail!(
            "--{name} {value} is out of range ({} ..= {})",
            to_f64(low),
            to_f64(high)
        ),
    }
}

/// `--name value` in parts per million within `low..=high`.
fn ppm_in(name: &str, value: f64, low: u32, high: u32) -> anyhow::Result<u32> {
    fixed_in(
        name,
        value,
        fixed::f64_to_ppm,
        fixed::ppm_to_f64,
        (low, high),
    )
}

impl AnomalyArgs {
    /// Whether this is `anomaly bench`, `paper-table` or `plot`, which run in `bcfl-train`.
    pub(crate) fn is_forwarded(&self) -> bool {
        self.command.is_some()
    }

    /// The on-chain configuration these options describe.
    fn config(&self, features: &[pb::Feature]) -> anyhow::Result<pb::AnomalyConfig> {
        let mut config = pb::AnomalyConfig {
            ensemble_min_votes: self.min_votes,
            ..Default::default()
        };
        let mut distinct = self.method.clone();
        distinct.sort_by_key(|m| *m as u8);
        distinct.dedup();
        if self.min_votes as usize > distinct.len() {
            bail!(
                "--min-votes {} is more than the {} method(s) chosen",
                self.min_votes,
                distinct.len()
            );
        }
        if self.method.contains(&Method::Pagerank) {
            if !(1..=MAX_PAGERANK_ITERATIONS).contains(&self.max_iterations) {
                bail!(
                    "--max-iterations {} is out of range (1 ..= {MAX_PAGERANK_ITERATIONS})",
                    self.max_iterations
                );
            }
            *config.mut_pagerank() = pb::PageRankConfig {
                damping_ppm: ppm_in("damping", self.damping, 1, PPM - 1)?,
                k_ppm: ppm_in("k", self.k, 1, MAX_THRESHOLD_PPM)?,
                weight: match self.weight {
                    Weight::Latency => pb::PageRankWeight::LATENCY,
                    Weight::Bandwidth => pb::PageRankWeight::BANDWIDTH,
                },
                max_iterations: self.max_iterations,
                tolerance_ppb: fixed_in(
                    "tolerance",
                    self.tolerance,
                    fixed::f64_to_ppb,
                    fixed::ppb_to_f64,
                    (1, 1_000_000_000),
                )?,
                ..Default::default()
            };
        }
        let needs_features =
            self.method.contains(&Method::Dbscan) || self.method.contains(&Method::Zscore);
        if needs_features && features.is_empty() {
            bail!("dbscan and zscore need features: give --features FILE or --use NAMES");
        }
        if self.method.contains(&Method::Dbscan) {
            *config.mut_dbscan() = pb::DbscanConfig {
                eps_ppm: ppm_in("eps", self.eps, 1, MAX_THRESHOLD_PPM)?,
                min_points: self.min_points.max(1),
                features: features.to_vec(),
                robust: self.robust,
                ..Default::default()
            };
        }
        if self.method.contains(&Method::Zscore) {
            *config.mut_zscore() = pb::ZScoreConfig {
                threshold_ppm: ppm_in("threshold", self.threshold, 1, MAX_THRESHOLD_PPM)?,
                features: features.to_vec(),
                ..Default::default()
            };
        }
        Ok(config)
    }
}

/// A parsed features file: sorted members and one column per feature.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct FeatureTable {
    pub(crate) members: Vec<String>,
    pub(crate) columns: Vec<(pb::Feature, Vec<f64>)>,
}

/// Parses a features CSV (see the module docs); rows come out sorted by member.
pub(crate) fn parse_features(text: &str) -> anyhow::Result<FeatureTable> {
    let mut lines = text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim()))
        .filter(|(_, l)| !l.is_empty() && !l.starts_with('#'));
    let (_, header) = lines.next().context("the features file is empty")?;
    let names: Vec<&str> = header.split(',').map(str::trim).collect();
    if names.first() != Some(&"member") || names.len() < 2 {
        bail!("line 1: the header must be member,<feature>,... (found {header:?})");
    }
    let mut features = Vec::new();
    for name in &names[1..] {
        let f = parse_feature(name).with_context(|| format!("unknown feature {name:?}"))?;
        if features.contains(&f) {
            bail!("feature {name} appears twice in the header");
        }
        features.push(f);
    }
    let mut rows: Vec<(String, Vec<f64>)> = Vec::new();
    for (line, text) in lines {
        let fields: Vec<&str> = text.split(',').map(str::trim).collect();
        if fields.len() != names.len() {
            bail!(
                "line {line}: {} fields, the header has {}",
                fields.len(),
                names.len()
            );
        }
        if fields[0].is_empty() {
            bail!("line {line}: empty member id");
        }
        let values = fields[1..]
            .iter()
            .map(|v| match v.parse::<f64>() {
                Ok(x) if x.is_finite() => Ok(x),
                _ => bail!("line {line}: {v:?} is not a finite number"),
            })
            .collect::<anyhow::Result<Vec<f64>>>()?;
        rows.push((fields[0].to_owned(), values));
    }
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    if let Some(w) = rows.windows(2).find(|w| w[0].0 == w[1].0) {
        bail!("member {} has two rows", w[0].0);
    }
    let columns = features
        .iter()
        .enumerate()
        .map(|(i, f)| (*f, rows.iter().map(|r| r.1[i]).collect()))
        .collect();
    Ok(FeatureTable {
        members: rows.into_iter().map(|r| r.0).collect(),
        columns,
    })
}

fn read(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
}

/// Member data from the two files (either may be absent, not both), and the features the
/// features file lists.
pub(crate) fn member_data(
    bandwidth: Option<&str>,
    features: Option<&str>,
) -> anyhow::Result<(MemberData, Vec<pb::Feature>)> {
    let rows = bandwidth
        .map(parse_edge_list)
        .transpose()?
        .unwrap_or_default();
    let table = features.map(parse_features).transpose()?;
    let members: Vec<String> = match &table {
        Some(t) => t.members.clone(),
        None => rows
            .iter()
            .flat_map(|r| [r.from.clone(), r.to.clone()])
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect(),
    };
    let index = |id: &str, line: usize| {
        members
            .binary_search_by(|m| m.as_str().cmp(id))
            .map_err(|_| {
                anyhow::anyhow!("bandwidth line {line}: {id} has no row in the features file")
            })
    };
    let edges = rows
        .iter()
        .map(|r| {
            Ok((
                index(&r.from, r.line)?,
                index(&r.to, r.line)?,
                r.bytes_per_sec,
            ))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut columns = table.map(|t| t.columns).unwrap_or_default();
    let listed: Vec<pb::Feature> = columns.iter().map(|(f, _)| *f).collect();
    if bandwidth.is_some() {
        for (feature, incoming) in [
            (pb::Feature::BANDWIDTH_IN, true),
            (pb::Feature::BANDWIDTH_OUT, false),
        ] {
            if !columns.iter().any(|(f, _)| *f == feature) {
                columns.push((feature, bandwidth_feature(members.len(), &edges, incoming)));
            }
        }
    }
    Ok((MemberData::new(members, columns, edges)?, listed))
}

/// The evaluation as JSON: per method the members' scores and flags, and the exclusions.
pub(crate) fn evaluation_json(evaluation: &Evaluation) -> Value {
    json!({
        "methods": evaluation.methods.iter().map(|m| json!({
            "method": method_name(m.method),
            "scores": member_scores(&evaluation.scored, m).map(|s| json!({
                "member": s.member,
                "score": format_micro(s.score_micro),
                "score_micro": s.score_micro,
                "flagged": s.flagged,
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "excluded": evaluation.excluded,
        "accepted": evaluation.accepted,
    })
}

/// The evaluation as a table: one row per member, a score column per method (`*` flagged).
pub(crate) fn evaluation_table(evaluation: &Evaluation) -> String {
    let mut header = vec!["MEMBER"];
    header.extend(evaluation.methods.iter().map(|m| method_name(m.method)));
    header.push("EXCLUDED");
    let mut table = Table::new(&header);
    let columns: Vec<Vec<MemberScore<'_>>> = evaluation
        .methods
        .iter()
        .map(|m| member_scores(&evaluation.scored, m).collect())
        .collect();
    for (i, member) in evaluation.scored.iter().enumerate() {
        let mut row = vec![member.clone()];
        for column in &columns {
            let s = column[i];
            let mark = if s.flagged { " *" } else { "" };
            row.push(format!("{}{mark}", format_micro(s.score_micro)));
        }
        row.push(
            if evaluation.excluded.contains(member) {
                "yes"
            } else {
                ""
            }
            .to_owned(),
        );
        table.row(row);
    }
    table.render()
}

/// Runs `bcfl anomaly`.
pub(crate) fn anomaly(ctx: &Context, args: AnomalyArgs) -> anyhow::Result<ExitCode> {
    assert!(
        args.command.is_none(),
        "main hands `anomaly bench|paper-table|plot` over to bcfl-train"
    );
    let bandwidth = args.bandwidth.as_deref().map(read).transpose()?;
    let features = args.features.as_deref().map(read).transpose()?;
    let (data, listed) = member_data(bandwidth.as_deref(), features.as_deref())?;
    let chosen: Vec<pb::Feature> = if args.use_features.is_empty() {
        listed
    } else {
        args.use_features
            .iter()
            .map(|n| parse_feature(n).with_context(|| format!("unknown feature {n:?}")))
            .collect::<anyhow::Result<_>>()?
    };
    let config = args.config(&chosen)?;
    let evaluation = evaluate(&config, &data)?;
    if ctx.json() {
        let mut out = evaluation_json(&evaluation);
        out["features"] = json!(chosen.iter().map(|f| feature_name(*f)).collect::<Vec<_>>());
        ctx.print_json(&out);
    } else {
        print!("{}", evaluation_table(&evaluation));
        println!(
            "excluded ({}): {}",
            evaluation.excluded.len(),
            if evaluation.excluded.is_empty() {
                "none".to_owned()
            } else {
                evaluation.excluded.join(",")
            }
        );
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FEATURES: &str = "\
member,update_norm,sketch_cosine_distance
# six honest members, one scaled x10, one sign-flipped
m0,1.00,0.02
m1,1.05,0.01
m2,0.97,0.03
m3,1.02,0.02
m4,0.99,0.01
m5,1.01,0.02
scaled,10.1,0.02
flipped,1.00,1.98
";

    #[test]
    fn features_file_parses_sorted() {
        let t = parse_features(FEATURES).unwrap();
        assert_eq!(t.members[0], "flipped");
        assert_eq!(t.members[7], "scaled");
        assert_eq!(t.columns[0].0, pb::Feature::UPDATE_NORM);
        assert_eq!(t.columns[1].1[0], 1.98);
        for (bad, msg) in [
            ("", "empty"),
            ("name,update_norm\na,1", "header"),
            ("member,speed\na,1", "unknown feature"),
            ("member,update_norm,update_norm\na,1,1", "twice"),
            ("member,update_norm\na,1,2", "3 fields"),
            ("member,update_norm\na,x", "not a finite"),
            ("member,update_norm\na,1\na,2", "two rows"),
        ] {
            let err = parse_features(bad).unwrap_err().to_string();
            assert!(err.contains(msg), "{bad:?}: {err}");
        }
    }

    fn args(method: &[Method]) -> AnomalyArgs {
        AnomalyArgs {
            command: None,
            method: method.to_vec(),
            bandwidth: None,
            features: None,
            use_features: vec![],
            damping: 0.85,
            k: 1.0,
            weight: Weight::Bandwidth,
            max_iterations: 100,
            tolerance: 1e-9,
            eps: 1.0,
            min_points: 3,
            robust: false,
            threshold: 3.5,
            min_votes: 1,
        }
    }

    #[test]
    fn zscore_and_dbscan_flag_scaled_and_flipped() {
        let (data, listed) = member_data(None, Some(FEATURES)).unwrap();
        for method in [Method::Zscore, Method::Dbscan] {
            let config = args(&[method]).config(&listed).unwrap();
            let e = evaluate(&config, &data).unwrap();
            assert_eq!(e.excluded, vec!["flipped", "scaled"], "{method:?}");
            assert_eq!(e.accepted.len(), 6);
        }
        let json = evaluation_json(
            &evaluate(&args(&[Method::Zscore]).config(&listed).unwrap(), &data).unwrap(),
        );
        assert_eq!(json["methods"][0]["method"], "zscore");
        assert_eq!(json["methods"][0]["scores"][0]["member"], "flipped");
        assert_eq!(json["methods"][0]["scores"][0]["flagged"], true);
    }

    #[test]
    fn pagerank_from_the_edge_list_and_bandwidth_features() {
        // a, b, c exchange at 100 MB/s; d only receives at 1 MB/s (and sends at 100).
        let mut csv = String::from("from,to,bytes_per_sec\n");
        for (f, t) in [
            ("a", "b"),
            ("b", "a"),
            ("a", "c"),
            ("c", "a"),
            ("b", "c"),
            ("c", "b"),
        ] {
            csv.push_str(&format!("{f},{t},1e8\n"));
        }
        for f in ["a", "b", "c"] {
            csv.push_str(&format!("{f},d,1e6\nd,{f},1e8\n"));
        }
        let (data, listed) = member_data(Some(&csv), None).unwrap();
        assert!(listed.is_empty());
        assert_eq!(data.members(), ["a", "b", "c", "d"]);
        assert_eq!(data.column(pb::Feature::BANDWIDTH_IN).unwrap()[3], 1e6);
        let e = evaluate(&args(&[Method::Pagerank]).config(&listed).unwrap(), &data).unwrap();
        assert_eq!(e.excluded, vec!["d"]);
        let table = evaluation_table(&e);
        assert!(table.contains("pagerank") && table.contains('*'), "{table}");
        // Feature methods without features are refused, and so are edges to unknown members.
        assert!(args(&[Method::Zscore]).config(&[]).is_err());
        let err = member_data(Some("from,to,bytes_per_sec\nx,y,5\n"), Some(FEATURES)).unwrap_err();
        assert!(
            err.to_string().contains("no row in the features file"),
            "{err}"
        );
    }

    #[test]
    fn out_of_range_options_are_refused() {
        let mut a = args(&[Method::Pagerank]);
        a.damping = 1.0;
        assert!(a.config(&[]).unwrap_err().to_string().contains("--damping"));
        let mut a = args(&[Method::Pagerank]);
        a.tolerance = 0.0;
        assert!(a
            .config(&[])
            .unwrap_err()
            .to_string()
            .contains("--tolerance"));
    }
}
