//! The attack grid scored against its goal: `bcfl anomaly scorecard`.
//!
//! The goal the benchmark is measured against ([`Goal::ISSUE`]): detection F1 of at least 0.95
//! with up to 20 % attackers and at least 0.90 above, and final accuracy within 1 point of the
//! clean run. [`score`] reads one [`BenchReport`] (as `anomaly bench --out` wrote it) and scores
//! every cell of one detector against it: whether its F1 meets the threshold of its attackers'
//! share, and, where the report ran the references (not `--detection-only`), whether exclusion
//! by that detector ended within a point of the clean run and of the honest members alone (the
//! attackers-absent run: what a perfect exclusion reaches). [`markdown`] turns the scores of
//! several reports into one summary table and a list of the cells that miss, so that what the
//! README claims about the grid is computed from the committed results files, not typed in.

use std::collections::BTreeSet;

use bcfl_processor::anomaly::{feature_name, SKEWED_SHARDS_FEATURES};
use serde::{Deserialize, Serialize};

use super::bench::{BenchReport, Cell, DetectionRow, UnknownDetector, ATTACKERS_ABSENT};
use super::head::ReferenceDirections;

/// Slack for comparing shares, F1 and accuracies, which are ratios and means of small counts.
const TOLERANCE: f64 = 1e-9;

/// The thresholds a grid is scored against.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Goal {
    /// Attackers' share (attackers / members) up to which [`Goal::f1_low_share`] applies.
    pub low_share: f64,
    /// F1 required up to `low_share`.
    pub f1_low_share: f64,
    /// F1 required above `low_share`.
    pub f1_high_share: f64,
    /// How far below the clean run the exclusion's accuracy may end (0.01: one point).
    pub accuracy_drop: f64,
}

impl Goal {
    /// The attack grid's goal: F1 >= 0.95 with up to 20 % attackers, >= 0.90 above, accuracy
    /// within 1 point of clean.
    pub const ISSUE: Goal = Goal {
        low_share: 0.2,
        f1_low_share: 0.95,
        f1_high_share: 0.90,
        accuracy_drop: 0.01,
    };

    /// The F1 required with `attackers` of `members`.
    pub fn required_f1(&self, members: usize, attackers: usize) -> f64 {
        // The tolerance keeps 2 of 10 at "up to 20 %".
        if (attackers as f64) <= self.low_share * members as f64 + TOLERANCE {
            self.f1_low_share
        } else {
            self.f1_high_share
        }
    }
}

/// One cell scored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CellScore {
    /// Members.
    pub members: usize,
    /// Attackers.
    pub attackers: usize,
    /// Attack name.
    pub attack: String,
    /// The detector's counts and F1 (its false positives count in every cell; a cell without
    /// attackers has no F1 to meet).
    pub detection: Option<DetectionRow>,
    /// The F1 the goal asks for at this share.
    pub required_f1: f64,
    /// Whether the F1 meets it (absent without attackers).
    pub f1_met: Option<bool>,
    /// Final accuracy of exclusion by the detector (mean over seeds), where measured.
    pub exclusion_accuracy: Option<f64>,
    /// The clean run's final accuracy, where the report ran it.
    pub clean_accuracy: Option<f64>,
    /// The honest members alone (attackers absent), where the report ran it.
    pub honest_alone_accuracy: Option<f64>,
    /// Exclusion within the goal's drop of the clean run (absent without the clean run).
    pub accuracy_met: Option<bool>,
    /// Exclusion within the goal's drop of the honest members alone (absent without that run).
    pub within_honest_alone: Option<bool>,
}

/// One report scored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReportScore {
    /// What the report is called in the tables (its file name).
    pub name: String,
    /// Its shards (`iid`, `dirichlet (alpha 0.1)`).
    pub partition: String,
    /// Its seeds.
    pub seeds: Vec<u64>,
    /// The detector scored.
    pub detector: String,
    /// What sets the run apart: the methods that exclude on their own, `copies once`, `dbscan
    /// without excluded` (DBSCAN clustering only the members no excluding method flagged), `skewed
    /// shards` (the voting methods over the norm and the balance alone), `sealed` (sketches
    /// after the commitments), `blind` (adaptive attackers hiding from another projection),
    /// `noise R` (colluders' copies made different).
    pub configuration: Vec<String>,
    /// Per cell, in report order.
    pub cells: Vec<CellScore>,
}

/// A count of cells meeting a goal out of those it applies to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tally {
    /// Cells meeting it.
    pub met: usize,
    /// Cells it applies to.
    pub of: usize,
}

impl Tally {
    fn of(flags: impl Iterator<Item = Option<bool>>) -> Self {
        flags.flatten().fold(Tally::default(), |t, met| Tally {
            met: t.met + usize::from(met),
            of: t.of + 1,
        })
    }
}

impl std::fmt::Display for Tally {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.of == 0 {
            f.write_str("not run")
        } else {
            write!(f, "{} / {}", self.met, self.of)
        }
    }
}

impl ReportScore {
    /// Cells whose F1 meets the goal, of those with attackers.
    pub fn f1(&self) -> Tally {
        Tally::of(self.cells.iter().map(|c| c.f1_met))
    }

    /// Cells whose exclusion ends within the goal's drop of the clean run.
    pub fn accuracy(&self) -> Tally {
        Tally::of(self.cells.iter().map(|c| c.accuracy_met))
    }

    /// Cells whose exclusion ends within the goal's drop of the honest members alone.
    pub fn honest_alone(&self) -> Tally {
        Tally::of(self.cells.iter().map(|c| c.within_honest_alone))
    }

    /// The cell with the lowest F1 and its row (the first of equals), if any cell has attackers.
    pub fn lowest_f1(&self) -> Option<(&CellScore, &DetectionRow)> {
        self.cells
            .iter()
            .filter(|c| c.f1_met.is_some())
            .filter_map(|c| Some((c, c.detection.as_ref()?)))
            .min_by(|a, b| a.1.f1.total_cmp(&b.1.f1))
    }

    /// Honest member-rounds excluded over the whole grid.
    pub fn false_positives(&self) -> usize {
        self.cells
            .iter()
            .filter_map(|c| c.detection.as_ref())
            .map(|d| d.fp)
            .sum()
    }
}

/// The accuracy row `defence` of `cell`, if the report has it.
fn accuracy_of(cell: &Cell, defence: &str) -> Option<f64> {
    cell.accuracy
        .iter()
        .find(|a| a.defence == defence)
        .map(|a| a.accuracy.mean)
        .filter(|a| a.is_finite())
}

/// Scores `report`'s cells for `detector` ([`BenchReport::detector`]'s default when `None`)
/// against `goal`; `name` labels it in the tables.
pub fn score(
    name: &str,
    report: &BenchReport,
    detector: Option<&str>,
    goal: &Goal,
) -> Result<ReportScore, UnknownDetector> {
    let detector = report.detector(detector)?;
    let exclusion = format!("exclude_{detector}");
    let cells = report
        .cells
        .iter()
        .map(|cell| {
            let detection = cell
                .detection
                .iter()
                .find(|d| d.detector == detector)
                .cloned();
            let required_f1 = goal.required_f1(cell.members, cell.attackers);
            let exclusion_accuracy = accuracy_of(cell, &exclusion);
            let clean = accuracy_of(cell, "clean");
            let honest_alone = accuracy_of(cell, ATTACKERS_ABSENT);
            let within = |reference: Option<f64>| {
                Some(exclusion_accuracy? >= reference? - goal.accuracy_drop - TOLERANCE)
                    .filter(|_| cell.attackers > 0)
            };
            CellScore {
                members: cell.members,
                attackers: cell.attackers,
                attack: cell.attack.clone(),
                f1_met: detection
                    .as_ref()
                    .filter(|_| cell.attackers > 0)
                    .map(|d| d.f1 >= required_f1 - TOLERANCE),
                detection,
                required_f1,
                accuracy_met: within(clean),
                within_honest_alone: within(honest_alone),
                exclusion_accuracy,
                clean_accuracy: clean,
                honest_alone_accuracy: honest_alone,
            }
        })
        .collect();
    Ok(ReportScore {
        name: name.to_owned(),
        partition: report.partition.to_string(),
        seeds: report.seeds.clone(),
        detector,
        configuration: configuration(report),
        cells,
    })
}

/// [`ReportScore::configuration`] of `report`.
fn configuration(report: &BenchReport) -> Vec<String> {
    let d = &report.detection;
    let methods = [
        ("duplicate", d.duplicate_distance.is_some()),
        ("unchanged", d.unchanged_ratio.is_some()),
        ("resent", d.resent_distance.is_some()),
        ("inconsistent", d.inconsistent_cosine.is_some()),
        ("opposed", d.opposed_distance.is_some()),
        ("ascent", d.ascent_response.is_some()),
        ("leave one out", d.ascent_leave_one_out),
        // Reports written before the choice existed took the class means.
        (
            "mislabelled (class means)",
            d.mislabelled_margin.is_some()
                && d.mislabelled_reference != Some(ReferenceDirections::Classifier),
        ),
        (
            "mislabelled (classifier)",
            d.mislabelled_reference == Some(ReferenceDirections::Classifier),
        ),
        ("oversized", d.oversized_residual.is_some()),
        ("mean copy", d.mean_copy_cosine.is_some()),
        ("withdraw", d.withdraw),
        ("copies once", d.count_copies_once),
        ("dbscan without excluded", d.dbscan_without_excluded),
        ("sealed", report.sketch_after_commit),
        ("blind", report.blind_projection),
    ];
    let mut out: Vec<String> = methods
        .into_iter()
        .filter(|&(_, on)| on)
        .map(|(name, _)| name.to_owned())
        .collect();
    let skewed: Vec<&str> = SKEWED_SHARDS_FEATURES
        .iter()
        .map(|f| feature_name(*f))
        .collect();
    if d.features == skewed {
        out.push("skewed shards".to_owned());
    }
    if let Some(r) = report.collusion_noise {
        out.push(format!("noise {r}"));
    }
    out
}

/// Seeds as `0-2` when consecutive, else comma-separated.
fn seed_range(seeds: &[u64]) -> String {
    match (seeds.first(), seeds.last()) {
        (Some(first), Some(last))
            if seeds.len() > 1 && seeds.windows(2).all(|w| w[1] == w[0] + 1) =>
        {
            format!("{first}-{last}")
        }
        _ => seeds
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(", "),
    }
}

/// `attackers of members`, as the README's tables write a cell.
fn share(cell: &CellScore) -> String {
    format!("{} of {}", cell.attackers, cell.members)
}

/// The scores as markdown: a summary table, a row per report (F1 goal met, lowest F1, accuracy
/// within a point of the clean run and of the honest members alone, honest member-rounds
/// excluded), then each report's cells that miss the F1 goal.
pub fn markdown(scores: &[ReportScore]) -> String {
    let mut out = String::from(
        "| results file | shards | members | seeds | detector | with | F1 goal met | lowest F1 | \
         accuracy within 1 point of clean | of the honest members alone | honest member-rounds \
         excluded |\n| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n",
    );
    for s in scores {
        let members: BTreeSet<usize> = s.cells.iter().map(|c| c.members).collect();
        let members: Vec<String> = members.iter().map(usize::to_string).collect();
        let lowest = s.lowest_f1().map_or_else(
            || "-".to_owned(),
            |(c, d)| format!("{:.3} ({}, {})", d.f1, c.attack, share(c)),
        );
        out.push_str(&format!(
            "| `{}` | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            s.name,
            s.partition,
            members.join(", "),
            seed_range(&s.seeds),
            s.detector,
            if s.configuration.is_empty() {
                "-".to_owned()
            } else {
                s.configuration.join(", ")
            },
            s.f1(),
            lowest,
            s.accuracy(),
            s.honest_alone(),
            s.false_positives(),
        ));
    }
    let misses: Vec<String> = scores
        .iter()
        .filter_map(|s| {
            let cells: Vec<String> = s
                .cells
                .iter()
                .filter(|c| c.f1_met == Some(false))
                .filter_map(|c| {
                    let d = c.detection.as_ref()?;
                    Some(format!(
                        "{} {} {:.3} (TP {}, FP {}, FN {})",
                        c.attack,
                        share(c),
                        d.f1,
                        d.tp,
                        d.fp,
                        d.r#fn
                    ))
                })
                .collect();
            (!cells.is_empty()).then(|| format!("- `{}`: {}", s.name, cells.join("; ")))
        })
        .collect();
    if !misses.is_empty() {
        out.push_str("\nCells below the F1 goal (member-rounds over all seeds):\n\n");
        for line in misses {
            out.push_str(&line);
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::attack::bench::{AccuracyRow, Stat};
    use bcfl_processor::anomaly::simulate::Counts;

    /// The repository's root (the client crate's parent).
    fn root() -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("the client crate has a parent")
            .to_owned()
    }

    fn read(path: &std::path::Path) -> BenchReport {
        let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path:?}: {e}"))
    }

    fn detection(detector: &str, tp: usize, fp: usize, r#fn: usize) -> DetectionRow {
        let counts = Counts {
            true_positives: tp,
            false_positives: fp,
            false_negatives: r#fn,
        };
        DetectionRow::new(detector.into(), &counts, 0)
    }

    fn accuracy(defence: &str, mean: f64) -> AccuracyRow {
        AccuracyRow {
            defence: defence.into(),
            accuracy: Stat { mean, std: 0.0 },
        }
    }

    fn cell(attackers: usize, both: DetectionRow, exclusion: f64) -> Cell {
        Cell {
            members: 10,
            attackers,
            attack: "sign-flip".into(),
            detection: vec![both, detection("ensemble", 0, 0, 18 * attackers)],
            accuracy: vec![
                accuracy("clean", 0.60),
                accuracy(ATTACKERS_ABSENT, 0.58),
                accuracy("exclude_both", exclusion),
                accuracy("exclude_ensemble", 0.1),
            ],
        }
    }

    /// A report with the cells below, from a committed report's settings.
    fn report(cells: Vec<Cell>) -> BenchReport {
        let mut report = read(&root().join("docs/figures/attacks-iid-every-attack.json"));
        report.cells = cells;
        report
    }

    #[test]
    fn the_goal_depends_on_the_attackers_share() {
        let goal = Goal::ISSUE;
        assert_eq!(goal.required_f1(10, 1), 0.95);
        assert_eq!(goal.required_f1(10, 2), 0.95);
        assert_eq!(goal.required_f1(20, 4), 0.95);
        assert_eq!(goal.required_f1(10, 3), 0.90);
        assert_eq!(goal.required_f1(20, 5), 0.90);
        assert_eq!(goal.required_f1(5, 1), 0.95);
    }

    #[test]
    fn cells_are_scored_against_the_goal_of_their_share() {
        let report = report(vec![
            // 18 of 18 caught, one honest member-round: F1 18/18.5 = 0.973 >= 0.95.
            cell(1, detection("both", 18, 1, 0), 0.590),
            // F1 0.947 with 2 of 10: below 0.95.
            cell(2, detection("both", 36, 4, 0), 0.595),
            // F1 0.92 with 3 of 10: above 0.90; accuracy 0.589 is 1.1 points below clean.
            cell(3, detection("both", 46, 0, 8), 0.589),
            // No attackers: no F1, honest member-rounds still counted.
            cell(0, detection("both", 0, 2, 0), 0.60),
        ]);
        let s = score("r.json", &report, None, &Goal::ISSUE).unwrap();
        assert_eq!(s.detector, "both");
        let met: Vec<Option<bool>> = s.cells.iter().map(|c| c.f1_met).collect();
        assert_eq!(met, [Some(true), Some(false), Some(true), None]);
        let accuracy: Vec<Option<bool>> = s.cells.iter().map(|c| c.accuracy_met).collect();
        assert_eq!(accuracy, [Some(true), Some(true), Some(false), None]);
        let honest: Vec<Option<bool>> = s.cells.iter().map(|c| c.within_honest_alone).collect();
        assert_eq!(honest, [Some(true), Some(true), Some(true), None]);
        assert_eq!(s.f1(), Tally { met: 2, of: 3 });
        assert_eq!(s.accuracy(), Tally { met: 2, of: 3 });
        assert_eq!(s.false_positives(), 1 + 4 + 2);
        let (lowest, row) = s.lowest_f1().unwrap();
        assert_eq!((lowest.attackers, row.tp), (3, 46));
        let md = markdown(&[s]);
        assert!(
            md.contains("| 2 / 3 | 0.920 (sign-flip, 3 of 10) | 2 / 3 | 3 / 3 | 7 |"),
            "{md}"
        );
        assert!(
            md.contains("- `r.json`: sign-flip 2 of 10 0.947 (TP 36, FP 4, FN 0)"),
            "{md}"
        );
        // Another detector: exclusion by it is scored instead.
        let e = score("r.json", &report, Some("ensemble"), &Goal::ISSUE).unwrap();
        assert_eq!(e.accuracy(), Tally { met: 0, of: 3 });
        assert_eq!(e.f1(), Tally { met: 0, of: 3 });
        let err = score("r.json", &report, Some("krum"), &Goal::ISSUE).unwrap_err();
        assert_eq!(err.available, "both, ensemble");
    }

    /// A report whose voting methods read the norm and the balance alone says so.
    #[test]
    fn skewed_shards_are_named_in_the_configuration() {
        let mut report = report(vec![cell(1, detection("both", 18, 0, 0), 0.6)]);
        let plain = score("r.json", &report, None, &Goal::ISSUE).unwrap();
        assert!(!plain.configuration.contains(&"skewed shards".to_owned()));
        report.detection.features = vec!["update_norm".into(), "coordinate_sign_balance".into()];
        let skewed = score("r.json", &report, None, &Goal::ISSUE).unwrap();
        assert_eq!(
            skewed.configuration.last().map(String::as_str),
            Some("skewed shards")
        );
    }

    #[test]
    fn a_detection_only_report_has_no_accuracy_goal() {
        let mut report = report(vec![cell(1, detection("both", 18, 0, 0), 0.6)]);
        report.cells[0].accuracy = vec![accuracy("exclude_both", 0.6)];
        let s = score("r.json", &report, None, &Goal::ISSUE).unwrap();
        assert_eq!(s.accuracy(), Tally::default());
        assert_eq!(s.accuracy().to_string(), "not run");
        assert_eq!(s.f1().to_string(), "1 / 1");
    }

    /// Each of the README's scorecards is what `bcfl anomaly scorecard` prints for the results
    /// files its command names: rerunning a grid and committing its file without the table
    /// fails here.
    #[test]
    fn the_readme_scorecards_are_computed_from_the_committed_results() {
        let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
        let blocks: Vec<&str> = readme
            .split("<!-- scorecard -->")
            .skip(1)
            .map(|rest| rest.split_once("<!-- /scorecard -->").unwrap().0)
            .collect();
        assert!(blocks.len() >= 2, "the README has its scorecards");
        for block in blocks {
            // "```sh", the command, "```", the table.
            let (command, table) = block
                .split_once("```")
                .and_then(|(_, after)| after.split_once('\n'))
                .and_then(|(_, after)| after.split_once("```\n"))
                .expect("the scorecard's command in a code block, then its table");
            assert!(command.contains("bcfl anomaly scorecard"), "{command}");
            let scores: Vec<ReportScore> = command
                .split_whitespace()
                .filter(|word| word.ends_with(".json"))
                .map(|file| {
                    let path = root().join(file);
                    let name = path.file_name().unwrap().to_string_lossy().into_owned();
                    score(&name, &read(&path), None, &Goal::ISSUE).unwrap()
                })
                .collect();
            assert!(scores.len() > 3, "{command}");
            assert_eq!(
                table.trim(),
                markdown(&scores).trim(),
                "regenerate the README's scorecard with the command above it"
            );
        }
    }
}
