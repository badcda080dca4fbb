//! `bcfl fl plot`: the curves of several runs on one chart
//! ([`bcfl_client::figures::curves_svg`]), e.g. the accuracy per round of an IID and a non-IID
//! run, with reference lines (a majority baseline, a base model, a goal).
//!
//! A run is the output of `bcfl --json fl simulate` or a demo's report (`bcfl --json demo`, or
//! `report.json` in its work folder). Against `--x seconds` (member-process runs only: their
//! rounds carry wall-clock times), each point is drawn at the seconds from the start of the
//! run's first round to the end of the round that made the model; with `--target ACC`, the
//! output says when each run first reached it (round and seconds): the time-to-accuracy
//! comparison of synchronous and buffered asynchronous aggregation (`bench/buffered-async.sh`).

use std::path::PathBuf;

use anyhow::{bail, Context as _};
use bcfl_client::figures::{curves_svg, Curve, YAxis};
use clap::{Args, ValueEnum};
use serde::Deserialize;

/// What `fl plot` draws per round.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum Metric {
    /// Accuracy of the global model.
    Accuracy,
    /// Macro-F1 of the global model.
    MacroF1,
}

/// What `fl plot` draws along x.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum Axis {
    /// The round.
    Round,
    /// Seconds from the start of the first round to the end of this one.
    Seconds,
}

/// `bcfl fl plot` options.
#[derive(Clone, Debug, Args)]
pub(crate) struct PlotArgs {
    /// A run: LABEL=FILE, FILE the output of `bcfl --json fl simulate` or a demo's report
    /// (repeatable; one line each, in order).
    #[arg(long = "run", value_name = "LABEL=FILE", required = true)]
    runs: Vec<String>,
    /// A dashed reference line: LABEL=VALUE (repeatable).
    #[arg(long = "reference", value_name = "LABEL=VALUE")]
    references: Vec<String>,
    /// The value per round.
    #[arg(long, value_enum, default_value_t = Metric::Accuracy)]
    metric: Metric,
    /// The x axis: the round, or seconds since the run's first round began (demo reports).
    #[arg(long, value_enum, default_value_t = Axis::Round)]
    x: Axis,
    /// A target value: drawn as a dashed line, and when each run first reached it is reported.
    #[arg(long, value_name = "VALUE")]
    target: Option<f64>,
    /// The chart's title.
    #[arg(long, default_value = "Global model per round")]
    title: String,
    /// The SVG file to write.
    #[arg(long, value_name = "FILE.svg")]
    out: PathBuf,
}

/// The part of `fl simulate --json`'s output, or of a demo's report, the plot reads.
#[derive(Deserialize)]
struct Run {
    /// `fl simulate`: which examples scored the models (a demo scores its held-out file).
    #[serde(default)]
    scored_on: Option<String>,
    rounds: Vec<Round>,
}

#[derive(Deserialize)]
struct Round {
    round: u64,
    accuracy: Option<f64>,
    macro_f1: Option<f64>,
    /// Demo reports: wall-clock times of the round.
    #[serde(default)]
    started_unix_ms: Option<u64>,
    #[serde(default)]
    ended_unix_ms: Option<u64>,
}

/// When a run first reached the target.
#[derive(Debug, serde::Serialize)]
struct Reached {
    /// The run's label.
    run: String,
    /// The first round whose model reached the target (None: never).
    round: Option<u64>,
    /// Seconds from the start of the first round to the end of that round (demo reports).
    seconds: Option<f64>,
    /// The run's last round and the seconds it ended at.
    rounds: u64,
    /// Seconds to the end of the last round (demo reports).
    total_seconds: Option<f64>,
}

impl Run {
    /// Seconds from the start of the first round to the end of `round` (None without times).
    fn seconds(&self, round: &Round) -> Option<f64> {
        let start = self
            .rounds
            .iter()
            .filter_map(|r| r.started_unix_ms)
            .filter(|t| *t > 0)
            .min()?;
        let end = round.ended_unix_ms.filter(|t| *t >= start)?;
        Some((end - start) as f64 / 1e3)
    }
}

fn split_pair<'a>(flag: &str, text: &'a str) -> anyhow::Result<(&'a str, &'a str)> {
    match text.split_once('=') {
        Some((label, value)) if !label.is_empty() && !value.is_empty() => Ok((label, value)),
        _ => bail!("--{flag} {text:?}: expected LABEL=VALUE"),
    }
}

/// Runs `bcfl fl plot`; prints the file written (JSON with `json`: the file and each curve).
pub(crate) fn run(args: &PlotArgs, json: bool) -> anyhow::Result<()> {
    let mut curves = Vec::new();
    let mut scored = Vec::new();
    let mut reached = Vec::new();
    for spec in &args.runs {
        let (label, file) = split_pair("run", spec)?;
        let text = std::fs::read_to_string(file).with_context(|| format!("reading {file}"))?;
        let run: Run = serde_json::from_str(&text).with_context(|| {
            format!("{file} is not the output of `bcfl --json fl simulate` or a demo's report")
        })?;
        scored.push(run.scored_on.clone().unwrap_or_else(|| "test".into()));
        let value = |r: &Round| match args.metric {
            Metric::Accuracy => r.accuracy,
            Metric::MacroF1 => r.macro_f1,
        };
        let mut points = Vec::new();
        for r in &run.rounds {
            let Some(v) = value(r) else { continue };
            let x = match args.x {
                Axis::Round => r.round,
                Axis::Seconds => run.seconds(r).with_context(|| {
                    format!(
                        "{file}: round {} has no wall-clock times (--x seconds needs a demo's report)",
                        r.round
                    )
                })?
                .round() as u64,
            };
            points.push((x, v));
        }
        if let Some(target) = args.target {
            let first = run
                .rounds
                .iter()
                .find(|r| value(r).is_some_and(|v| v >= target));
            reached.push(Reached {
                run: label.to_owned(),
                round: first.map(|r| r.round),
                seconds: first.and_then(|r| run.seconds(r)),
                rounds: run.rounds.last().map_or(0, |r| r.round),
                total_seconds: run.rounds.last().and_then(|r| run.seconds(r)),
            });
        }
        curves.push(Curve {
            label: label.to_owned(),
            points,
        });
    }
    scored.dedup();
    let references = args
        .references
        .iter()
        .map(|spec| {
            let (label, value) = split_pair("reference", spec)?;
            let value: f64 = value
                .parse()
                .with_context(|| format!("--reference {spec:?}: {value:?} is not a number"))?;
            Ok((label.to_owned(), value))
        })
        .collect::<anyhow::Result<Vec<(String, f64)>>>()?;
    let mut references = references;
    if let Some(target) = args.target {
        references.push(("target".to_owned(), target));
    }
    let metric = match args.metric {
        Metric::Accuracy => "accuracy",
        Metric::MacroF1 => "macro-F1",
    };
    let y_label = match scored.as_slice() {
        [one] => format!("{one} {metric}"),
        _ => metric.to_owned(),
    };
    let x_label = match args.x {
        Axis::Round => "round",
        Axis::Seconds => "seconds",
    };
    let svg = curves_svg(
        &args.title,
        x_label,
        YAxis::Fraction(&y_label),
        &curves,
        &references,
    )?;
    std::fs::write(&args.out, svg).with_context(|| format!("writing {}", args.out.display()))?;
    if json {
        println!(
            "{}",
            serde_json::json!({"out": args.out, "curves": curves, "references": references, "reached": reached})
        );
    } else {
        println!("{}", args.out.display());
        for r in &reached {
            match (r.round, r.seconds) {
                (Some(round), Some(s)) => println!("{}: reached in round {round}, {s:.1} s", r.run),
                (Some(round), None) => println!("{}: reached in round {round}", r.run),
                _ => println!("{}: not reached in {} rounds", r.run, r.rounds),
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        plot: PlotArgs,
    }

    #[test]
    fn runs_are_drawn_from_simulation_outputs_and_bad_input_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let run = |name: &str, accuracies: &[f64]| {
            let rounds: Vec<_> = accuracies
                .iter()
                .enumerate()
                .map(|(i, a)| serde_json::json!({"round": i + 1, "accuracy": a, "macro_f1": a / 2.0, "members": []}))
                .collect();
            let path = dir.path().join(name);
            let out = serde_json::json!({"config": {}, "scored_on": "test", "rounds": rounds});
            std::fs::write(&path, out.to_string()).unwrap();
            path.display().to_string()
        };
        let iid = run("iid.json", &[0.5, 0.55, 0.6]);
        let dirichlet = run("dir.json", &[0.45, 0.5]);
        let out = dir.path().join("curve.svg");
        let args = |extra: &[&str]| {
            let mut line = vec!["x".to_string(), "--out".into(), out.display().to_string()];
            line.extend(extra.iter().map(|s| s.to_string()));
            Cli::parse_from(line).plot
        };
        let iid_arg = format!("IID={iid}");
        let dir_arg = format!("Dirichlet={dirichlet}");
        run_ok(&args(&[
            "--run",
            &iid_arg,
            "--run",
            &dir_arg,
            "--reference",
            "majority=0.552",
        ]));
        let svg = std::fs::read_to_string(&out).unwrap();
        assert_eq!(svg.matches("<circle").count(), 5);
        for text in ["IID", "Dirichlet", "majority", "test accuracy"] {
            assert!(svg.contains(text), "{text}");
        }
        run_ok(&args(&["--run", &iid_arg, "--metric", "macro-f1"]));
        assert!(std::fs::read_to_string(&out)
            .unwrap()
            .contains("test macro-F1"));

        let err = |extra: &[&str]| super::run(&args(extra), true).unwrap_err().to_string();
        assert!(err(&["--run", "no-equals"]).contains("LABEL=VALUE"));
        assert!(err(&["--run", "a=/absent.json"]).contains("reading /absent.json"));
        std::fs::write(dir.path().join("bad.json"), "{}").unwrap();
        let bad = format!("a={}", dir.path().join("bad.json").display());
        assert!(err(&["--run", &bad]).contains("not the output of"));
        assert!(err(&["--run", &iid_arg, "--reference", "goal=high"]).contains("not a number"));
        assert!(err(&["--run", &iid_arg, "--x", "seconds"]).contains("no wall-clock times"));
    }

    /// Demo reports against seconds: each point at the end of its round, from the start of the
    /// first; the target's first crossing is found.
    #[test]
    fn demo_reports_are_drawn_against_seconds_and_the_target_is_found() {
        let dir = tempfile::tempdir().unwrap();
        let report = |name: &str, rounds: &[(f64, u64, u64)]| {
            let rounds: Vec<_> = rounds
                .iter()
                .enumerate()
                .map(|(i, (a, start, end))| serde_json::json!({"round": i + 1, "accuracy": a, "macro_f1": null, "started_unix_ms": start, "ended_unix_ms": end, "members": []}))
                .collect();
            let path = dir.path().join(name);
            std::fs::write(
                &path,
                serde_json::json!({"ledger": "x", "rounds": rounds}).to_string(),
            )
            .unwrap();
            format!("{name}={}", path.display())
        };
        let sync = report("sync", &[(0.4, 1_000, 31_000), (0.6, 31_500, 61_000)]);
        let buffered = report(
            "buffered",
            &[
                (0.45, 2_000, 12_000),
                (0.5, 12_000, 22_000),
                (0.62, 22_000, 33_500),
            ],
        );
        let out = dir.path().join("t.svg");
        let args = Cli::parse_from([
            "x",
            "--out",
            &out.display().to_string(),
            "--run",
            &sync,
            "--run",
            &buffered,
            "--x",
            "seconds",
            "--target",
            "0.6",
        ])
        .plot;
        super::run(&args, true).unwrap();
        let svg = std::fs::read_to_string(&out).unwrap();
        assert!(svg.contains("seconds") && svg.contains("target"));
        assert_eq!(svg.matches("<circle").count(), 5);
        // The same computation the output prints.
        let run: Run =
            serde_json::from_str(&std::fs::read_to_string(dir.path().join("buffered")).unwrap())
                .unwrap();
        assert_eq!(run.seconds(&run.rounds[2]), Some(31.5));
        let sync_run: Run =
            serde_json::from_str(&std::fs::read_to_string(dir.path().join("sync")).unwrap())
                .unwrap();
        assert_eq!(sync_run.seconds(&sync_run.rounds[1]), Some(60.0));
    }

    fn run_ok(args: &PlotArgs) {
        super::run(args, true).unwrap();
    }
}
