//! `bcfl fl plot`: the curves of several `bcfl --json fl simulate` runs on one chart
//! ([`bcfl_client::figures::curves_svg`]), e.g. the accuracy per round of an IID and a non-IID
//! run, with reference lines (a majority baseline, a base model, a goal).

use std::path::PathBuf;

use anyhow::{bail, Context as _};
use bcfl_client::figures::{curves_svg, Curve};
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

/// `bcfl fl plot` options.
#[derive(Clone, Debug, Args)]
pub(crate) struct PlotArgs {
    /// A run: LABEL=FILE, FILE the output of `bcfl --json fl simulate` (repeatable; one line
    /// each, in order).
    #[arg(long = "run", value_name = "LABEL=FILE", required = true)]
    runs: Vec<String>,
    /// A dashed reference line: LABEL=VALUE (repeatable).
    #[arg(long = "reference", value_name = "LABEL=VALUE")]
    references: Vec<String>,
    /// The value per round.
    #[arg(long, value_enum, default_value_t = Metric::Accuracy)]
    metric: Metric,
    /// The chart's title.
    #[arg(long, default_value = "Global model per round")]
    title: String,
    /// The SVG file to write.
    #[arg(long, value_name = "FILE.svg")]
    out: PathBuf,
}

/// The part of `fl simulate --json`'s output the plot reads.
#[derive(Deserialize)]
struct Run {
    scored_on: String,
    rounds: Vec<Round>,
}

#[derive(Deserialize)]
struct Round {
    round: u64,
    accuracy: Option<f64>,
    macro_f1: Option<f64>,
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
    for spec in &args.runs {
        let (label, file) = split_pair("run", spec)?;
        let text = std::fs::read_to_string(file).with_context(|| format!("reading {file}"))?;
        let run: Run = serde_json::from_str(&text)
            .with_context(|| format!("{file} is not the output of `bcfl --json fl simulate`"))?;
        scored.push(run.scored_on);
        curves.push(Curve {
            label: label.to_owned(),
            points: run
                .rounds
                .iter()
                .filter_map(|r| {
                    let value = match args.metric {
                        Metric::Accuracy => r.accuracy,
                        Metric::MacroF1 => r.macro_f1,
                    };
                    value.map(|v| (r.round, v))
                })
                .collect(),
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
        .collect::<anyhow::Result<Vec<_>>>()?;
    let metric = match args.metric {
        Metric::Accuracy => "accuracy",
        Metric::MacroF1 => "macro-F1",
    };
    let y_label = match scored.as_slice() {
        [one] => format!("{one} {metric}"),
        _ => metric.to_owned(),
    };
    let svg = curves_svg(&args.title, "round", &y_label, &curves, &references)?;
    std::fs::write(&args.out, svg).with_context(|| format!("writing {}", args.out.display()))?;
    if json {
        println!(
            "{}",
            serde_json::json!({"out": args.out, "curves": curves, "references": references})
        );
    } else {
        println!("{}", args.out.display());
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
    }

    fn run_ok(args: &PlotArgs) {
        super::run(args, true).unwrap();
    }
}
