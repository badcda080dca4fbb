//! The figures of a federated run's report, as SVG documents.
//!
//! Five figures, each a self-contained SVG string (or file):
//!
//! - [`accuracy_svg`]: test accuracy of the global model per round, a line chart; the accuracy
//!   before training (the baseline) is drawn at round 0 and as a dashed reference line.
//! - [`phases_svg`]: seconds per phase per round, stacked bars with a legend.
//! - [`bytes_svg`]: bytes moved between members per round, bars in MB (10^6 bytes).
//! - [`curves_svg`]: several runs' values per round on one chart (an IID and a non-IID run's
//!   accuracy, say), with dashed reference lines (a majority baseline, a goal).
//! - [`graph_svg`]: the measured bandwidth graph: members on a circle, directed links labelled
//!   in MB/s, the routing tree highlighted.
//!
//! [`write_all`] writes them into a folder. The charts are drawn with `plotters`' SVG backend
//! only, without its font features: text is written as SVG `<text>` elements (family
//! `sans-serif`) that the viewer lays out, so drawing needs no font files and no network. The
//! graph is hand-written SVG. Every text is escaped for XML, and characters that XML 1.0 does
//! not allow (control characters) are replaced.
//!
//! Values that are not finite (NaN, infinities; also absurd ones beyond ±1e290) are skipped, as
//! are edges that name unknown members; no input makes these functions panic.
//!
//! ```
//! use bcfl_client::figures::{self, GraphEdge, GraphFigure, GraphNode, RoundSeries};
//!
//! let rounds = vec![RoundSeries {
//!     round: 1,
//!     accuracy: Some(0.81),
//!     phases: vec![("train".into(), 12.0), ("aggregate".into(), 0.2)],
//!     bytes_moved: 3_500_000,
//! }];
//! let svg = figures::accuracy_svg("Test accuracy", &rounds, Some(0.52))?;
//! assert!(svg.contains("Test accuracy"));
//!
//! let graph = GraphFigure {
//!     title: "Measured bandwidth".into(),
//!     nodes: vec![
//!         GraphNode { id: "a".into(), label: "member a".into(), aggregator: true, excluded: false },
//!         GraphNode { id: "b".into(), label: "member b".into(), aggregator: false, excluded: false },
//!     ],
//!     edges: vec![GraphEdge { from: "b".into(), to: "a".into(), bytes_per_sec: 12.5e6, in_tree: true }],
//! };
//! let dir = std::env::temp_dir().join(format!("bcfl-figures-doc-{}", std::process::id()));
//! let written = figures::write_all(&dir, &rounds, Some(0.52), Some(&graph))?;
//! assert_eq!(written.len(), 4);
//! # std::fs::remove_dir_all(&dir).ok();
//! # Ok::<(), figures::FigureError>(())
//! ```

use std::cmp::Ordering;
use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::ops::Range;
use std::path::{Path, PathBuf};

use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::element::DashedPathElement;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use serde::{Deserialize, Serialize};

/// One round of a run, as the figures need it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoundSeries {
    /// The round's number (1 for the first round; 0 is the baseline's place on the x axis).
    pub round: u64,
    /// Test accuracy of the global model after the round (None: not scored). A fraction in
    /// `[0, 1]` is shown in percent; other values are shown as they are.
    pub accuracy: Option<f64>,
    /// Seconds per phase in the round's order, e.g. `[("train", 12.0), ("commit", 0.4),
    /// ("probe", 1.0), ("evaluate", 0.1), ("fetch", 0.5), ("aggregate", 0.2),
    /// ("distribute", 0.4)]`. A phase named twice is stacked twice, in the same colour.
    pub phases: Vec<(String, f64)>,
    /// Bytes moved between members in the round (updates fetched + global model distributed +
    /// probes).
    pub bytes_moved: u64,
}

/// A member in [`GraphFigure`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GraphNode {
    /// The member's id, which [`GraphEdge::from`] and [`GraphEdge::to`] name; nodes are placed
    /// on the circle in id order (runs of digits compare as numbers, so `m2` comes before
    /// `m10`). A later node with an id already seen is skipped.
    pub id: String,
    /// The text drawn next to the node.
    pub label: String,
    /// The round's aggregator (drawn filled).
    pub aggregator: bool,
    /// Excluded from the round (drawn in red with a dashed outline).
    pub excluded: bool,
}

/// A measured directed link in [`GraphFigure`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GraphEdge {
    /// The sending member's id.
    pub from: String,
    /// The receiving member's id.
    pub to: String,
    /// Measured bandwidth from `from` to `to`, in bytes per second (drawn in MB/s, 10^6 bytes
    /// per second). An edge whose bandwidth is not finite or negative is skipped.
    pub bytes_per_sec: f64,
    /// The edge is part of the routing tree (drawn thick and coloured).
    pub in_tree: bool,
}

/// The measured bandwidth graph of a run, for [`graph_svg`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GraphFigure {
    /// The figure's title.
    pub title: String,
    /// The members.
    pub nodes: Vec<GraphNode>,
    /// The measured links. Edges naming a member not in `nodes`, and self-loops, are skipped.
    pub edges: Vec<GraphEdge>,
}

/// Why a figure could not be drawn or written.
#[derive(Debug, thiserror::Error)]
pub enum FigureError {
    /// The plotting library failed to draw a chart.
    #[error("drawing the {figure} figure: {message}")]
    Plot {
        /// Which figure (`accuracy`, `phases`, `bytes`).
        figure: &'static str,
        /// The plotting library's error.
        message: String,
    },
    /// The data has nothing under the name a figure was asked to draw.
    #[error("the {figure} figure: the data has no {name:?} (it has {available})")]
    MissingSeries {
        /// Which figure.
        figure: &'static str,
        /// The name asked for.
        name: String,
        /// The names the data has, comma-separated.
        available: String,
    },
    /// Creating the folder or writing a file failed.
    #[error("writing {}: {source}", path.display())]
    Io {
        /// The folder or file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// Width and height of the three charts, in SVG user units (pixels).
const CHART_SIZE: (u32, u32) = (900, 500);
/// Width of the legend column on the right of a chart.
const LEGEND_WIDTH: u32 = 190;
/// At most this many labelled ticks on a chart's round axis.
const MAX_X_TICKS: usize = 16;
/// At most this many bars or points carry their value as a text label.
const MAX_VALUE_LABELS: usize = 24;
/// Colours of the phases (Tableau 10), reused in order past ten phases.
const PALETTE: [(u8, u8, u8); 10] = [
    (0x4E, 0x79, 0xA7),
    (0xF2, 0x8E, 0x2B),
    (0xE1, 0x57, 0x59),
    (0x76, 0xB7, 0xB2),
    (0x59, 0xA1, 0x4F),
    (0xED, 0xC9, 0x48),
    (0xB0, 0x7A, 0xA1),
    (0xFF, 0x9D, 0xA7),
    (0x9C, 0x75, 0x5F),
    (0xBA, 0xB0, 0xAC),
];
const FONT: &str = "sans-serif";
const ACCURACY_COLOR: RGBColor = RGBColor(0x1F, 0x5F, 0xA8);
const BASELINE_COLOR: RGBColor = RGBColor(0x80, 0x80, 0x80);
const BYTES_COLOR: RGBColor = RGBColor(0x4E, 0x79, 0xA7);
const TEXT_COLOR: RGBColor = RGBColor(0x22, 0x22, 0x22);

type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;
type Chart<'a, 'b> = ChartContext<'a, SVGBackend<'b>, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// The accuracy of the global model per round, a line chart with a point per scored round.
///
/// Rounds whose accuracy is `None` or not finite are left out; the line joins the scored rounds
/// in round order. With `baseline` (the accuracy before training, if finite), the line starts
/// at round 0 with the baseline, which is also drawn as a dashed reference line. Values are
/// printed next to the points when there are at most 24 of them.
pub fn accuracy_svg(
    title: &str,
    rounds: &[RoundSeries],
    baseline: Option<f64>,
) -> Result<String, FigureError> {
    const FIGURE: &str = "accuracy";
    let baseline = baseline.filter(|b| drawable(*b));
    let mut points: Vec<(f64, f64)> = rounds
        .iter()
        .filter_map(|r| {
            r.accuracy
                .filter(|a| drawable(*a))
                .map(|a| (r.round as f64, a))
        })
        .collect();
    points.sort_by(|a, b| a.0.total_cmp(&b.0));

    let mut xs: Vec<u64> = rounds.iter().map(|r| r.round).collect();
    if baseline.is_some() {
        xs.push(0);
    }
    let (x_lo, x_hi) = match (xs.iter().min(), xs.iter().max()) {
        (Some(&lo), Some(&hi)) => (lo, hi),
        _ => (1, 1),
    };
    let x_range = finite_range(x_lo as f64 - 0.5, x_hi as f64 + 0.5);
    let x_ticks = tick_count(x_hi - x_lo);

    let values: Vec<f64> = points.iter().map(|p| p.1).chain(baseline).collect();
    let fraction = values.iter().all(|v| (0.0..=1.0).contains(v));
    let y_range = accuracy_range(&values, fraction);

    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, CHART_SIZE).into_drawing_area();
        let (plot, legend) = chart_frame(&root, title).map_err(plot_err(FIGURE))?;
        let mut chart = ChartBuilder::on(&plot)
            .margin(12)
            .x_label_area_size(48)
            .y_label_area_size(72)
            .build_cartesian_2d(x_range.clone(), y_range.clone())
            .map_err(plot_err(FIGURE))?;
        let y_format = |v: &f64| {
            if fraction {
                percent_tick(*v)
            } else {
                tick(*v)
            }
        };
        let x_format = |x: &f64| format!("{}", x.round() as i64);
        configure_mesh(
            &mut chart,
            ("round", x_ticks, &x_format),
            ("test accuracy", &y_format),
        )
        .map_err(plot_err(FIGURE))?;

        if let Some(b) = baseline {
            chart
                .draw_series(std::iter::once(DashedPathElement::new(
                    vec![(x_range.start, b), (x_range.end, b)],
                    8,
                    5,
                    BASELINE_COLOR.stroke_width(1),
                )))
                .map_err(plot_err(FIGURE))?;
        }
        let line: Vec<(f64, f64)> = baseline
            .map(|b| (0.0, b))
            .into_iter()
            .chain(points.iter().copied())
            .collect();
        if line.len() > 1 {
            chart
                .draw_series(std::iter::once(PathElement::new(
                    line.clone(),
                    ACCURACY_COLOR.stroke_width(2),
                )))
                .map_err(plot_err(FIGURE))?;
        }
        chart
            .draw_series(
                points
                    .iter()
                    .map(|&p| Circle::new(p, 5, ACCURACY_COLOR.filled())),
            )
            .map_err(plot_err(FIGURE))?;
        if let Some(b) = baseline {
            chart
                .draw_series(std::iter::once(Circle::new(
                    (0.0, b),
                    5,
                    BASELINE_COLOR.filled(),
                )))
                .map_err(plot_err(FIGURE))?;
        }
        if line.len() <= MAX_VALUE_LABELS {
            chart
                .draw_series(line.iter().map(|&(x, y)| {
                    let text = if fraction {
                        format!("{:.1}%", y * 100.0)
                    } else {
                        format_value(y)
                    };
                    EmptyElement::at((x, y)) + Text::new(text, (0, -10), value_style())
                }))
                .map_err(plot_err(FIGURE))?;
        }
        if line.is_empty() {
            no_data(&plot, "no accuracy scored").map_err(plot_err(FIGURE))?;
        }

        let mut items = vec![LegendItem::Line {
            color: ACCURACY_COLOR,
            dashed: false,
            label: "global model".into(),
        }];
        if baseline.is_some() {
            items.push(LegendItem::Line {
                color: BASELINE_COLOR,
                dashed: true,
                label: "baseline (round 0)".into(),
            });
        }
        draw_legend(&legend, &items).map_err(plot_err(FIGURE))?;
        root.present().map_err(plot_err(FIGURE))?;
    }
    Ok(svg)
}

/// One named line of [`curves_svg`]: a value per round (or per another integer `x`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Curve {
    /// The legend's text.
    pub label: String,
    /// `(round, value)`; values that are not finite are left out, and the line joins the
    /// others in round order.
    pub points: Vec<(u64, f64)>,
}

/// The y axis of [`curves_svg`]: its label, and what its values are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum YAxis<'a> {
    /// Fractions (accuracy, F1): shown in percent while every value lies in `[0, 1]`.
    Fraction(&'a str),
    /// Any other quantity (seconds, bytes): shown as numbers, however small.
    Number(&'a str),
}

/// Several runs' values per round on one chart (e.g. accuracy per round of an IID and a
/// non-IID run): one coloured line with points per [`Curve`] (the palette's colours in order),
/// and a dashed horizontal line per `references` entry (label, value: a majority baseline, a
/// base model, a goal), in grey shades. The x axis is labelled `x_label` ("round" for runs;
/// the attack grid plots against the attackers' share), the y axis as `y` says.
pub fn curves_svg(
    title: &str,
    x_label: &str,
    y: YAxis<'_>,
    curves: &[Curve],
    references: &[(String, f64)],
) -> Result<String, FigureError> {
    const FIGURE: &str = "curves";
    let lines: Vec<Vec<(f64, f64)>> = curves
        .iter()
        .map(|c| {
            let mut points: Vec<(f64, f64)> = c
                .points
                .iter()
                .filter(|(_, v)| drawable(*v))
                .map(|&(r, v)| (r as f64, v))
                .collect();
            points.sort_by(|a, b| a.0.total_cmp(&b.0));
            points
        })
        .collect();
    let references: Vec<&(String, f64)> = references.iter().filter(|r| drawable(r.1)).collect();
    let xs: Vec<f64> = lines.iter().flatten().map(|p| p.0).collect();
    let (x_lo, x_hi) = match (
        xs.iter().copied().reduce(f64::min),
        xs.iter().copied().reduce(f64::max),
    ) {
        (Some(lo), Some(hi)) => (lo, hi),
        _ => (1.0, 1.0),
    };
    let x_range = finite_range(x_lo - 0.5, x_hi + 0.5);
    let x_ticks = tick_count((x_hi - x_lo).max(0.0) as u64);
    let values: Vec<f64> = lines
        .iter()
        .flatten()
        .map(|p| p.1)
        .chain(references.iter().map(|r| r.1))
        .collect();
    let (y_label, fraction) = match y {
        YAxis::Fraction(label) => (label, values.iter().all(|v| (0.0..=1.0).contains(v))),
        YAxis::Number(label) => (label, false),
    };
    let y_range = accuracy_range(&values, fraction);
    let color = |i: usize| {
        let (r, g, b) = PALETTE[i % PALETTE.len()];
        RGBColor(r, g, b)
    };
    let grey = |i: usize| {
        let shade = [0x60, 0x90, 0xB0][i % 3];
        RGBColor(shade, shade, shade)
    };

    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, CHART_SIZE).into_drawing_area();
        let (plot, legend) = chart_frame(&root, title).map_err(plot_err(FIGURE))?;
        let mut chart = ChartBuilder::on(&plot)
            .margin(12)
            .x_label_area_size(48)
            .y_label_area_size(72)
            .build_cartesian_2d(x_range.clone(), y_range)
            .map_err(plot_err(FIGURE))?;
        let y_format = |v: &f64| {
            if fraction {
                percent_tick(*v)
            } else {
                tick(*v)
            }
        };
        let x_format = |x: &f64| format!("{}", x.round() as i64);
        configure_mesh(
            &mut chart,
            (x_label, x_ticks, &x_format),
            (y_label, &y_format),
        )
        .map_err(plot_err(FIGURE))?;
        let mut items = Vec::new();
        for (i, (label, value)) in references.iter().enumerate() {
            chart
                .draw_series(std::iter::once(DashedPathElement::new(
                    vec![(x_range.start, *value), (x_range.end, *value)],
                    8,
                    5,
                    grey(i).stroke_width(1),
                )))
                .map_err(plot_err(FIGURE))?;
            items.push(LegendItem::Line {
                color: grey(i),
                dashed: true,
                label: label.clone(),
            });
        }
        for (i, (curve, line)) in curves.iter().zip(&lines).enumerate() {
            if line.len() > 1 {
                chart
                    .draw_series(std::iter::once(PathElement::new(
                        line.clone(),
                        color(i).stroke_width(2),
                    )))
                    .map_err(plot_err(FIGURE))?;
            }
            chart
                .draw_series(line.iter().map(|&p| Circle::new(p, 4, color(i).filled())))
                .map_err(plot_err(FIGURE))?;
            items.push(LegendItem::Line {
                color: color(i),
                dashed: false,
                label: curve.label.clone(),
            });
        }
        if lines.iter().all(Vec::is_empty) {
            no_data(&plot, "no values").map_err(plot_err(FIGURE))?;
        }
        draw_legend(&legend, &items).map_err(plot_err(FIGURE))?;
        root.present().map_err(plot_err(FIGURE))?;
    }
    Ok(svg)
}

/// Seconds per phase per round, one stacked bar per round (in the order of `rounds`).
///
/// Each bar stacks the round's phases in the round's order; phases get their colour by the order
/// in which they first appear in `rounds`, and the legend lists them in that order. Phases whose
/// seconds are not finite or not positive are left out. The total is printed above each bar
/// when there are at most 24 bars.
pub fn phases_svg(title: &str, rounds: &[RoundSeries]) -> Result<String, FigureError> {
    const FIGURE: &str = "phases";
    let mut names: Vec<String> = Vec::new();
    for r in rounds {
        for (name, secs) in &r.phases {
            if valid_secs(*secs) && !names.contains(name) {
                names.push(name.clone());
            }
        }
    }
    let totals: Vec<f64> = rounds
        .iter()
        .map(|r| {
            r.phases
                .iter()
                .map(|p| p.1)
                .filter(|s| valid_secs(*s))
                .sum()
        })
        .collect();
    let top = totals.iter().copied().fold(0.0_f64, f64::max);
    let y_range = finite_range(0.0, if top > 0.0 { top * 1.12 } else { 1.0 });
    let color_of = |name: &str| {
        let i = names.iter().position(|n| n == name).unwrap_or(0);
        palette(i)
    };

    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, CHART_SIZE).into_drawing_area();
        let (plot, legend) = chart_frame(&root, title).map_err(plot_err(FIGURE))?;
        let labels: Vec<String> = rounds.iter().map(|r| r.round.to_string()).collect();
        let mut chart = bar_chart(&plot, labels.len(), y_range).map_err(plot_err(FIGURE))?;
        let x_format = slot_label(&labels);
        let y_format = |v: &f64| tick(*v);
        let x_ticks = tick_count(labels.len().saturating_sub(1) as u64);
        configure_mesh(
            &mut chart,
            ("round", x_ticks, &x_format),
            ("seconds", &y_format),
        )
        .map_err(plot_err(FIGURE))?;

        let mut bars = Vec::new();
        for (i, r) in rounds.iter().enumerate() {
            let mut base = 0.0;
            for (name, secs) in &r.phases {
                if !valid_secs(*secs) {
                    continue;
                }
                bars.push(bar(i, base, base + secs, color_of(name)));
                base += secs;
            }
        }
        chart.draw_series(bars).map_err(plot_err(FIGURE))?;
        if rounds.len() <= MAX_VALUE_LABELS {
            let totals = totals.iter().enumerate().filter(|(_, t)| **t > 0.0);
            chart
                .draw_series(totals.map(|(i, t)| {
                    let text = format!("{} s", format_value(*t));
                    EmptyElement::at((i as f64, *t)) + Text::new(text, (0, -6), value_style())
                }))
                .map_err(plot_err(FIGURE))?;
        }
        if names.is_empty() {
            no_data(&plot, "no phase timings").map_err(plot_err(FIGURE))?;
        }
        let items: Vec<LegendItem> = names
            .iter()
            .map(|n| LegendItem::Swatch {
                color: color_of(n),
                label: n.clone(),
            })
            .collect();
        draw_legend(&legend, &items).map_err(plot_err(FIGURE))?;
        root.present().map_err(plot_err(FIGURE))?;
    }
    Ok(svg)
}

/// Bytes moved between members per round, one bar per round (in the order of `rounds`), in MB
/// (10^6 bytes). The value is printed above each bar when there are at most 24 bars.
pub fn bytes_svg(title: &str, rounds: &[RoundSeries]) -> Result<String, FigureError> {
    const FIGURE: &str = "bytes";
    let mb: Vec<f64> = rounds.iter().map(|r| r.bytes_moved as f64 / 1e6).collect();
    let top = mb.iter().copied().fold(0.0_f64, f64::max);
    let y_range = finite_range(0.0, if top > 0.0 { top * 1.12 } else { 1.0 });

    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, CHART_SIZE).into_drawing_area();
        let (plot, legend) = chart_frame(&root, title).map_err(plot_err(FIGURE))?;
        let labels: Vec<String> = rounds.iter().map(|r| r.round.to_string()).collect();
        let mut chart = bar_chart(&plot, labels.len(), y_range).map_err(plot_err(FIGURE))?;
        let x_format = slot_label(&labels);
        let y_format = |v: &f64| tick(*v);
        let x_ticks = tick_count(labels.len().saturating_sub(1) as u64);
        configure_mesh(
            &mut chart,
            ("round", x_ticks, &x_format),
            ("MB moved (10^6 bytes)", &y_format),
        )
        .map_err(plot_err(FIGURE))?;
        chart
            .draw_series(
                mb.iter()
                    .enumerate()
                    .filter(|(_, v)| **v > 0.0)
                    .map(|(i, v)| bar(i, 0.0, *v, BYTES_COLOR)),
            )
            .map_err(plot_err(FIGURE))?;
        if rounds.len() <= MAX_VALUE_LABELS {
            chart
                .draw_series(mb.iter().enumerate().map(|(i, v)| {
                    let text = format!("{} MB", format_value(*v));
                    EmptyElement::at((i as f64, *v)) + Text::new(text, (0, -6), value_style())
                }))
                .map_err(plot_err(FIGURE))?;
        }
        if rounds.is_empty() {
            no_data(&plot, "no rounds").map_err(plot_err(FIGURE))?;
        }
        let items = [LegendItem::Swatch {
            color: BYTES_COLOR,
            label: "updates, model, probes".into(),
        }];
        draw_legend(&legend, &items).map_err(plot_err(FIGURE))?;
        root.present().map_err(plot_err(FIGURE))?;
    }
    Ok(svg)
}

/// Writes `accuracy.svg`, `phases.svg`, `bytes.svg` and, when `graph` is given, `graph.svg`
/// into `dir` (created if missing), and returns the paths written, in that order.
pub fn write_all(
    dir: &Path,
    rounds: &[RoundSeries],
    baseline: Option<f64>,
    graph: Option<&GraphFigure>,
) -> Result<Vec<PathBuf>, FigureError> {
    std::fs::create_dir_all(dir).map_err(|source| FigureError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut files = vec![
        (
            "accuracy.svg",
            accuracy_svg("Test accuracy of the global model", rounds, baseline)?,
        ),
        (
            "phases.svg",
            phases_svg("Time per phase per round", rounds)?,
        ),
        ("bytes.svg", bytes_svg("Bytes moved per round", rounds)?),
    ];
    if let Some(graph) = graph {
        files.push(("graph.svg", graph_svg(graph)));
    }
    let mut written = Vec::with_capacity(files.len());
    for (name, svg) in files {
        let path = dir.join(name);
        std::fs::write(&path, svg).map_err(|source| FigureError::Io {
            path: path.clone(),
            source,
        })?;
        written.push(path);
    }
    Ok(written)
}

// ---------------------------------------------------------------------------------------------
// Chart helpers.

fn plot_err<E: std::fmt::Display>(figure: &'static str) -> impl Fn(E) -> FigureError {
    move |e| FigureError::Plot {
        figure,
        message: e.to_string(),
    }
}

type DrawResult<T> = Result<T, DrawingAreaErrorKind<std::io::Error>>;

/// Fills the background, draws the title and splits the rest into the plot and the legend.
fn chart_frame<'a>(root: &Area<'a>, title: &str) -> DrawResult<(Area<'a>, Area<'a>)> {
    root.fill(&WHITE)?;
    let body = root.titled(&clean(title), (FONT, 26).into_font().color(&TEXT_COLOR))?;
    let (w, _) = body.dim_in_pixel();
    Ok(body.split_horizontally(w.saturating_sub(LEGEND_WIDTH)))
}

/// A chart with a slot per bar: bar `i` is centred on x = `i`.
fn bar_chart<'a, 'b>(
    plot: &'a Area<'b>,
    bars: usize,
    y_range: Range<f64>,
) -> DrawResult<Chart<'a, 'b>> {
    let n = bars.max(1);
    ChartBuilder::on(plot)
        .margin(12)
        .x_label_area_size(48)
        .y_label_area_size(72)
        .build_cartesian_2d(-0.5..n as f64 - 0.5, y_range)
}

/// Formats an axis tick.
type TickFormat<'a> = &'a dyn Fn(&f64) -> String;

fn configure_mesh(
    chart: &mut Chart<'_, '_>,
    (x_desc, x_ticks, x_format): (&str, usize, TickFormat<'_>),
    (y_desc, y_format): (&str, TickFormat<'_>),
) -> DrawResult<()> {
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc(y_desc)
        .axis_desc_style((FONT, 18).into_font().color(&TEXT_COLOR))
        .label_style((FONT, 16).into_font().color(&TEXT_COLOR))
        .x_labels(x_ticks)
        .x_label_formatter(x_format)
        .y_label_formatter(y_format)
        .y_labels(8)
        .bold_line_style(RGBColor(0xDD, 0xDD, 0xDD).stroke_width(1))
        .light_line_style(TRANSPARENT)
        .disable_x_mesh()
        .draw()
}

/// The x-axis label of bar slot `x`: the round number of the bar.
fn slot_label(labels: &[String]) -> impl Fn(&f64) -> String + '_ {
    |x| {
        let i = x.round();
        if i >= 0.0 && (x - i).abs() < 1e-6 {
            labels.get(i as usize).cloned().unwrap_or_default()
        } else {
            String::new()
        }
    }
}

fn bar(slot: usize, from: f64, to: f64, color: RGBColor) -> Rectangle<(f64, f64)> {
    let x = slot as f64;
    Rectangle::new([(x - 0.34, from), (x + 0.34, to)], color.filled())
}

/// The style of a value printed above its bar or point.
fn value_style() -> TextStyle<'static> {
    TextStyle::from((FONT, 15).into_font())
        .color(&TEXT_COLOR)
        .pos(Pos::new(HPos::Center, VPos::Bottom))
}

fn no_data(plot: &Area<'_>, text: &str) -> DrawResult<()> {
    let (w, h) = plot.dim_in_pixel();
    let style = TextStyle::from((FONT, 20).into_font())
        .color(&BASELINE_COLOR)
        .pos(Pos::new(HPos::Center, VPos::Center));
    plot.draw(&Text::new(text, (w as i32 / 2, h as i32 / 2), style))
}

enum LegendItem {
    Line {
        color: RGBColor,
        dashed: bool,
        label: String,
    },
    Swatch {
        color: RGBColor,
        label: String,
    },
}

fn draw_legend(area: &Area<'_>, items: &[LegendItem]) -> DrawResult<()> {
    let style = TextStyle::from((FONT, 16).into_font())
        .color(&TEXT_COLOR)
        .pos(Pos::new(HPos::Left, VPos::Center));
    for (i, item) in items.iter().enumerate() {
        let y = 40 + 26 * i as i32;
        let label = match item {
            LegendItem::Line {
                color,
                dashed,
                label,
            } => {
                if *dashed {
                    for x in [8, 19] {
                        area.draw(&PathElement::new(
                            vec![(x, y), (x + 7, y)],
                            color.stroke_width(2),
                        ))?;
                    }
                } else {
                    area.draw(&PathElement::new(
                        vec![(8, y), (34, y)],
                        color.stroke_width(2),
                    ))?;
                }
                label
            }
            LegendItem::Swatch { color, label } => {
                area.draw(&Rectangle::new([(12, y - 8), (28, y + 8)], color.filled()))?;
                label
            }
        };
        area.draw(&Text::new(clean(label), (42, y), style.clone()))?;
    }
    Ok(())
}

/// The y range of the accuracy chart: in tenths around the data for fractions (within
/// `[0, 1]`), padded by a tenth of the spread otherwise.
fn accuracy_range(values: &[f64], fraction: bool) -> Range<f64> {
    let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if values.is_empty() {
        return 0.0..1.0;
    }
    if fraction {
        let lo = (((lo - 0.05) * 10.0).floor() / 10.0).max(0.0);
        let hi = (((hi + 0.05) * 10.0).ceil() / 10.0).min(1.0);
        return if hi > lo { lo..hi } else { 0.0..1.0 };
    }
    let pad = if hi > lo {
        (hi - lo) * 0.1
    } else {
        lo.abs().max(1.0) * 0.1
    };
    finite_range(lo - pad, hi + pad)
}

/// `lo..hi` made drawable: ends within ±1e300 (plotters does not finish laying out an axis over
/// an infinite range) and a non-empty span.
fn finite_range(lo: f64, hi: f64) -> Range<f64> {
    const LIMIT: f64 = 1e300;
    let clamp = |v: f64| {
        if v.is_nan() {
            0.0
        } else {
            v.clamp(-LIMIT, LIMIT)
        }
    };
    let (lo, hi) = (clamp(lo), clamp(hi));
    if hi > lo {
        lo..hi
    } else {
        let pad = lo.abs().max(1.0) * 0.1;
        (lo - pad)..(lo + pad)
    }
}

/// How many ticks to ask of an axis over `span + 1` whole numbers: at most one per number (so
/// that the axis steps by whole numbers) and at most [`MAX_X_TICKS`].
fn tick_count(span: u64) -> usize {
    usize::try_from(span.saturating_add(1))
        .unwrap_or(MAX_X_TICKS)
        .min(MAX_X_TICKS)
}

fn valid_secs(secs: f64) -> bool {
    drawable(secs) && secs > 0.0
}

/// Whether a value can be drawn: finite, and not so large (beyond ±1e290) that plotters
/// overflows mapping it to pixels.
fn drawable(v: f64) -> bool {
    v.is_finite() && v.abs() <= 1e290
}

fn palette(i: usize) -> RGBColor {
    let (r, g, b) = PALETTE[i % PALETTE.len()];
    RGBColor(r, g, b)
}

fn percent_tick(v: f64) -> String {
    let p = v * 100.0;
    if (p - p.round()).abs() < 1e-6 {
        format!("{p:.0}%")
    } else {
        format!("{p:.1}%")
    }
}

/// An axis tick: [`format_value`] without trailing zeros.
fn tick(v: f64) -> String {
    let s = format_value(v);
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// A value with three significant digits at most (at least no decimals).
fn format_value(v: f64) -> String {
    let a = v.abs();
    if a >= 100.0 || a == 0.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else if a >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

/// `text` with the characters XML 1.0 does not allow (control characters other than tab, and
/// line breaks, which would not show) replaced: line breaks by a space, the others by U+FFFD.
fn clean(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '\n' | '\r' | '\t' => ' ',
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => '\u{FFFD}',
            c => c,
        })
        .collect()
}

/// `text` cleaned ([`clean`]) and escaped for XML text and attribute values.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in clean(text).chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// The bandwidth graph.

const TREE_COLOR: &str = "#D95F02";
const LINK_COLOR: &str = "#A0A0A0";
const AGGREGATOR_FILL: &str = "#1F4E9A";
const EXCLUDED_COLOR: &str = "#C62828";
const NODE_STROKE: &str = "#333333";
/// Above this many drawn edges, only the routing tree's edges carry a bandwidth label (all of
/// them still carry it as a tooltip).
const MAX_LABELLED_EDGES: usize = 40;

/// The measured bandwidth graph as an SVG document.
///
/// Members sit on a circle in id order (see [`GraphNode::id`]), the first at the top, going
/// clockwise, each labelled with its [`GraphNode::label`]. Each measured link is an arrow from
/// sender to receiver, labelled with its bandwidth in MB/s along the arrow; the two directions
/// of a pair are drawn side by side, each label on its own arrow's side. Routing-tree edges are
/// thick and orange, the others thin and grey. With more than 40 links, only the tree's edges
/// carry a label (every edge has its bandwidth as a tooltip). The aggregator is filled; an
/// excluded member is drawn in red with a dashed outline. A legend explains the marks.
pub fn graph_svg(figure: &GraphFigure) -> String {
    // Members, deduplicated by id, in natural id order.
    let mut seen = HashSet::new();
    let mut nodes: Vec<&GraphNode> = figure
        .nodes
        .iter()
        .filter(|n| seen.insert(n.id.as_str()))
        .collect();
    nodes.sort_by(|a, b| natural_cmp(&a.id, &b.id));
    let n = nodes.len();
    let index: HashMap<&str, usize> = nodes
        .iter()
        .enumerate()
        .map(|(i, n)| (n.id.as_str(), i))
        .collect();

    // Drawable edges, deduplicated by (from, to) (the first one wins).
    let mut pairs = HashSet::new();
    let edges: Vec<(usize, usize, &GraphEdge)> = figure
        .edges
        .iter()
        .filter(|e| e.bytes_per_sec.is_finite() && e.bytes_per_sec >= 0.0)
        .filter_map(|e| {
            let (&a, &b) = (index.get(e.from.as_str())?, index.get(e.to.as_str())?);
            (a != b && pairs.insert((a, b))).then_some((a, b, e))
        })
        .collect();
    let label_all = edges.len() <= MAX_LABELLED_EDGES;

    // Geometry.
    let node_r: f64 = match n {
        0..=8 => 20.0,
        9..=14 => 16.0,
        _ => 13.0,
    };
    let ring = (n as f64 * 17.0).clamp(170.0, 340.0);
    let side = 200.0; // room for node labels left and right of the ring
    let top = 90.0; // title and subtitle
    let legend_h = 90.0;
    let width = 2.0 * ring + 2.0 * side;
    let height = top + 2.0 * ring + 2.0 * 50.0 + legend_h;
    let (cx, cy) = (width / 2.0, top + 50.0 + ring);
    let pos: Vec<(f64, f64)> = (0..n)
        .map(|i| {
            let a = -std::f64::consts::FRAC_PI_2 + std::f64::consts::TAU * i as f64 / n as f64;
            (cx + ring * a.cos(), cy + ring * a.sin())
        })
        .collect();

    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w:.0}" height="{h:.0}" viewBox="0 0 {w:.0} {h:.0}" font-family="{FONT}">"#,
        w = width,
        h = height
    );
    let _ = writeln!(
        s,
        r##"<defs>
<marker id="arrow-tree" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="13" markerHeight="13" markerUnits="userSpaceOnUse" orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="{TREE_COLOR}"/></marker>
<marker id="arrow-link" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="8" markerHeight="8" markerUnits="userSpaceOnUse" orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="{LINK_COLOR}"/></marker>
</defs>
<rect x="0" y="0" width="{width:.0}" height="{height:.0}" fill="#FFFFFF"/>"##
    );
    let _ = writeln!(
        s,
        r##"<text x="{x:.1}" y="34" text-anchor="middle" font-size="22" font-weight="bold" fill="#222222">{t}</text>"##,
        x = cx,
        t = escape(&figure.title)
    );
    let tree_edges = edges.iter().filter(|e| e.2.in_tree).count();
    let mut subtitle = format!(
        "{n} member{}, {} measured link{} ({tree_edges} in the routing tree); bandwidth in MB/s (10^6 bytes/s)",
        if n == 1 { "" } else { "s" },
        edges.len(),
        if edges.len() == 1 { "" } else { "s" },
    );
    if !label_all {
        subtitle.push_str("; labels on tree links only");
    }
    let _ = writeln!(
        s,
        r##"<text x="{cx:.1}" y="58" text-anchor="middle" font-size="13" fill="#555555">{}</text>"##,
        escape(&subtitle)
    );

    if n == 0 {
        let _ = writeln!(
            s,
            r##"<text x="{cx:.1}" y="{cy:.1}" text-anchor="middle" font-size="18" fill="#808080">no members</text>"##
        );
    }

    // Edges: grey ones first, the tree on top; labels after all lines.
    let mut order: Vec<&(usize, usize, &GraphEdge)> = edges.iter().collect();
    order.sort_by_key(|e| e.2.in_tree);
    let mut labels = String::new();
    s.push_str("<g id=\"edges\">\n");
    for &&(a, b, e) in &order {
        let (p, q) = (pos[a], pos[b]);
        let (dx, dy) = (q.0 - p.0, q.1 - p.1);
        let len = (dx * dx + dy * dy).sqrt().max(1e-9);
        let (ux, uy) = (dx / len, dy / len);
        let (nx, ny) = (-uy, ux);
        let offset = if pairs.contains(&(b, a)) {
            if e.in_tree {
                4.5
            } else {
                3.5
            }
        } else {
            0.0
        };
        let gap = node_r + 3.0;
        let (x1, y1) = (p.0 + ux * gap + nx * offset, p.1 + uy * gap + ny * offset);
        let (x2, y2) = (q.0 - ux * gap + nx * offset, q.1 - uy * gap + ny * offset);
        let (color, width, marker) = if e.in_tree {
            (TREE_COLOR, 3.5, "arrow-tree")
        } else {
            (LINK_COLOR, 1.2, "arrow-link")
        };
        // Many grey links fade a little so that the tree stands out.
        let opacity = if e.in_tree || label_all { 1.0 } else { 0.6 };
        let mbps = format_value(e.bytes_per_sec / 1e6);
        let tip = escape(&format!(
            "{} → {}: {mbps} MB/s",
            nodes[a].label, nodes[b].label
        ));
        let _ = writeln!(
            s,
            r#"<line class="edge{tree}" x1="{x1:.1}" y1="{y1:.1}" x2="{x2:.1}" y2="{y2:.1}" stroke="{color}" stroke-width="{width}" stroke-opacity="{opacity}" marker-end="url(#{marker})"><title>{tip}</title></line>"#,
            tree = if e.in_tree { " tree" } else { "" },
        );
        if label_all || e.in_tree {
            // Along the arrow, 40% of the way from the sender (so the two directions of a pair
            // do not meet), rotated with the arrow but kept upright, on the arrow's own side
            // (+normal) of the pair.
            let (fill, size, weight) = if e.in_tree {
                (TREE_COLOR, 12.0, "bold")
            } else {
                ("#555555", 11.0, "normal")
            };
            let mut angle = uy.atan2(ux).to_degrees();
            let upright = (-90.0..=90.0).contains(&angle);
            if !upright {
                angle += 180.0;
            }
            // The glyphs stand on the baseline towards the text's "up": -normal when the text
            // runs along the arrow, +normal when it was turned round. Put the baseline so that
            // the glyphs lie beside the line on the +normal side.
            let off = offset + 3.0 + if upright { size * 0.75 } else { 0.0 };
            let t = 0.4;
            let (lx, ly) = (p.0 + dx * t + nx * off, p.1 + dy * t + ny * off);
            let _ = writeln!(
                labels,
                r##"<text class="edge-label" x="{lx:.1}" y="{ly:.1}" transform="rotate({angle:.1} {lx:.1} {ly:.1})" text-anchor="middle" font-size="{size}" font-weight="{weight}" fill="{fill}" stroke="#FFFFFF" stroke-width="3" stroke-linejoin="round" paint-order="stroke">{mbps}</text>"##,
            );
        }
    }
    s.push_str("</g>\n<g id=\"edge-labels\">\n");
    s.push_str(&labels);
    s.push_str("</g>\n<g id=\"nodes\">\n");
    for (i, node) in nodes.iter().enumerate() {
        let (x, y) = pos[i];
        let fill = if node.aggregator {
            AGGREGATOR_FILL
        } else {
            "#FFFFFF"
        };
        let (stroke, dash) = if node.excluded {
            (EXCLUDED_COLOR, r#" stroke-dasharray="5 3""#)
        } else {
            (NODE_STROKE, "")
        };
        let class = match (node.aggregator, node.excluded) {
            (true, true) => "node aggregator excluded",
            (true, false) => "node aggregator",
            (false, true) => "node excluded",
            (false, false) => "node",
        };
        let _ = writeln!(
            s,
            r#"<circle class="{class}" cx="{x:.1}" cy="{y:.1}" r="{node_r}" fill="{fill}" stroke="{stroke}" stroke-width="2.5"{dash}><title>{}</title></circle>"#,
            escape(&node.id)
        );
        // The label outside the ring, anchored away from the centre.
        let (ax, ay) = ((x - cx) / ring, (y - cy) / ring);
        let (lx, ly) = (x + ax * (node_r + 8.0), y + ay * (node_r + 8.0));
        let anchor = if ax > 0.3 {
            "start"
        } else if ax < -0.3 {
            "end"
        } else {
            "middle"
        };
        // The baseline: under the text above the ring, under its first line below it.
        let ly = ly
            + if ay < -0.3 {
                0.0
            } else if ay > 0.3 {
                11.0
            } else {
                5.0
            };
        let color = if node.excluded {
            EXCLUDED_COLOR
        } else {
            "#222222"
        };
        let weight = if node.aggregator { "bold" } else { "normal" };
        let _ = writeln!(
            s,
            r#"<text class="node-label" x="{lx:.1}" y="{ly:.1}" text-anchor="{anchor}" font-size="14" font-weight="{weight}" fill="{color}">{}</text>"#,
            escape(&node.label)
        );
    }
    s.push_str("</g>\n");

    // Legend: links on the first row, members on the second.
    let ly = height - legend_h + 20.0;
    let x0 = 30.0;
    let _ = writeln!(
        s,
        r##"<g id="legend" font-size="13" fill="#222222">
<rect x="{bx:.1}" y="{by:.1}" width="{bw:.1}" height="{bh:.1}" fill="none" stroke="#CCCCCC"/>
<line x1="{x0:.1}" y1="{ly:.1}" x2="{x1:.1}" y2="{ly:.1}" stroke="{TREE_COLOR}" stroke-width="3.5" marker-end="url(#arrow-tree)"/>
<text x="{t1:.1}" y="{ty:.1}">routing tree link (MB/s)</text>
<line x1="{x2:.1}" y1="{ly:.1}" x2="{x3:.1}" y2="{ly:.1}" stroke="{LINK_COLOR}" stroke-width="1.2" marker-end="url(#arrow-link)"/>
<text x="{t2:.1}" y="{ty:.1}">other measured link (MB/s)</text>
<circle cx="{c1:.1}" cy="{ly2:.1}" r="9" fill="{AGGREGATOR_FILL}" stroke="{NODE_STROKE}" stroke-width="2"/>
<text x="{t3:.1}" y="{ty2:.1}">aggregator</text>
<circle cx="{c2:.1}" cy="{ly2:.1}" r="9" fill="#FFFFFF" stroke="{NODE_STROKE}" stroke-width="2"/>
<text x="{t4:.1}" y="{ty2:.1}">member</text>
<circle cx="{c3:.1}" cy="{ly2:.1}" r="9" fill="#FFFFFF" stroke="{EXCLUDED_COLOR}" stroke-width="2" stroke-dasharray="4 2"/>
<text x="{t5:.1}" y="{ty2:.1}" fill="{EXCLUDED_COLOR}">excluded member</text>
</g>"##,
        bx = x0 - 14.0,
        by = ly - 18.0,
        bw = width - 2.0 * (x0 - 14.0),
        bh = legend_h - 16.0,
        x1 = x0 + 40.0,
        t1 = x0 + 50.0,
        x2 = x0 + 260.0,
        x3 = x0 + 300.0,
        t2 = x0 + 310.0,
        ly2 = ly + 32.0,
        ty = ly + 4.5,
        ty2 = ly + 36.5,
        c1 = x0 + 20.0,
        t3 = x0 + 36.0,
        c2 = x0 + 150.0,
        t4 = x0 + 166.0,
        c3 = x0 + 260.0,
        t5 = x0 + 276.0,
    );
    s.push_str("</svg>\n");
    s
}

/// Compares ids so that runs of ASCII digits compare as numbers (`m2` < `m10`); a total order
/// that falls back on plain string order between ids it finds equal.
pub fn natural_cmp(a: &str, b: &str) -> Ordering {
    fn chunks(s: &str) -> Vec<(bool, &str)> {
        let mut out = Vec::new();
        let mut start = 0;
        let bytes = s.as_bytes();
        for i in 1..=bytes.len() {
            if i == bytes.len() || bytes[i].is_ascii_digit() != bytes[start].is_ascii_digit() {
                out.push((bytes[start].is_ascii_digit(), &s[start..i]));
                start = i;
            }
        }
        out
    }
    let (ca, cb) = (chunks(a), chunks(b));
    for (x, y) in ca.iter().zip(cb.iter()) {
        let ord = match (x, y) {
            ((true, x), (true, y)) => {
                let (x, y) = (x.trim_start_matches('0'), y.trim_start_matches('0'));
                x.len().cmp(&y.len()).then_with(|| x.cmp(y))
            }
            ((_, x), (_, y)) => x.cmp(y),
        };
        if ord != Ordering::Equal {
            return ord;
        }
    }
    ca.len().cmp(&cb.len()).then_with(|| a.cmp(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Checks that `s` is a well-formed XML document (one root element, balanced tags, quoted
    /// unique attributes, known entities, no characters XML forbids); returns the element names
    /// in document order.
    fn check_xml(s: &str) -> Result<Vec<String>, String> {
        fn check_text(t: &str) -> Result<(), String> {
            if let Some(c) = t
                .chars()
                .find(|&c| (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r'))
            {
                return Err(format!("control character {:?}", c));
            }
            let mut rest = t;
            while let Some(i) = rest.find('&') {
                let tail = &rest[i + 1..];
                let end = tail.find(';').ok_or("unterminated entity")?;
                let name = &tail[..end];
                let ok = matches!(name, "lt" | "gt" | "amp" | "quot" | "apos")
                    || name
                        .strip_prefix("#x")
                        .is_some_and(|h| !h.is_empty() && h.chars().all(|c| c.is_ascii_hexdigit()))
                    || name
                        .strip_prefix('#')
                        .is_some_and(|d| !d.is_empty() && d.chars().all(|c| c.is_ascii_digit()));
                if !ok {
                    return Err(format!("unknown entity &{name};"));
                }
                rest = &tail[end + 1..];
            }
            Ok(())
        }
        let is_name = |c: char| c.is_alphanumeric() || matches!(c, '-' | '_' | ':' | '.');
        let mut stack: Vec<String> = Vec::new();
        let mut names = Vec::new();
        let mut roots = 0;
        let mut rest = s;
        if let Some(r) = rest.strip_prefix("<?xml") {
            rest = &r[r.find("?>").ok_or("unterminated declaration")? + 2..];
        }
        while !rest.is_empty() {
            let lt = rest.find('<').unwrap_or(rest.len());
            let text = &rest[..lt];
            check_text(text)?;
            if stack.is_empty() && !text.trim().is_empty() {
                return Err(format!("text outside the root: {text:?}"));
            }
            rest = &rest[lt..];
            if rest.is_empty() {
                break;
            }
            if let Some(r) = rest.strip_prefix("<!--") {
                rest = &r[r.find("-->").ok_or("unterminated comment")? + 3..];
                continue;
            }
            if let Some(r) = rest.strip_prefix("</") {
                let end = r.find('>').ok_or("unterminated end tag")?;
                let name = r[..end].trim_end();
                match stack.pop() {
                    Some(open) if open == name => {}
                    other => return Err(format!("</{name}> closes {other:?}")),
                }
                rest = &r[end + 1..];
                continue;
            }
            let r = &rest[1..];
            let name_len = r.find(|c: char| !is_name(c)).unwrap_or(r.len());
            if name_len == 0 {
                return Err(format!("bad tag at {:?}", &rest[..rest.len().min(30)]));
            }
            let name = r[..name_len].to_string();
            let mut r = &r[name_len..];
            let mut attrs = HashSet::new();
            let self_closing = loop {
                r = r.trim_start();
                if let Some(t) = r.strip_prefix("/>") {
                    r = t;
                    break true;
                }
                if let Some(t) = r.strip_prefix('>') {
                    r = t;
                    break false;
                }
                let attr_len = r.find(|c: char| !is_name(c)).unwrap_or(r.len());
                if attr_len == 0 {
                    return Err(format!(
                        "bad attribute in <{name}>: {:?}",
                        &r[..r.len().min(30)]
                    ));
                }
                let attr = &r[..attr_len];
                if !attrs.insert(attr.to_string()) {
                    return Err(format!("duplicate attribute {attr} in <{name}>"));
                }
                r = r[attr_len..].trim_start();
                r = r
                    .strip_prefix('=')
                    .ok_or(format!("{attr} without ="))?
                    .trim_start();
                let quote = r.chars().next().ok_or("end in attribute")?;
                if quote != '"' && quote != '\'' {
                    return Err(format!("unquoted {attr}"));
                }
                let end = r[1..].find(quote).ok_or("unterminated attribute")?;
                let value = &r[1..1 + end];
                if value.contains('<') {
                    return Err(format!("< in attribute {attr}"));
                }
                check_text(value)?;
                r = &r[end + 2..];
            };
            if stack.is_empty() {
                roots += 1;
            }
            names.push(name.clone());
            if !self_closing {
                stack.push(name);
            }
            rest = r;
        }
        if !stack.is_empty() {
            return Err(format!("unclosed {stack:?}"));
        }
        if roots != 1 {
            return Err(format!("{roots} root elements"));
        }
        Ok(names)
    }

    fn well_formed(svg: &str) -> Vec<String> {
        match check_xml(svg) {
            Ok(names) => {
                assert_eq!(names.first().map(String::as_str), Some("svg"));
                names
            }
            Err(e) => panic!("not well-formed XML: {e}"),
        }
    }

    fn count(svg: &str, pat: &str) -> usize {
        svg.matches(pat).count()
    }

    fn fill(c: RGBColor) -> String {
        format!("fill=\"#{:02X}{:02X}{:02X}\"", c.0, c.1, c.2)
    }

    fn round(round: u64, accuracy: Option<f64>, bytes_moved: u64) -> RoundSeries {
        RoundSeries {
            round,
            accuracy,
            phases: [
                ("train", 12.0 + round as f64),
                ("commit", 0.4),
                ("probe", 1.0),
                ("evaluate", 0.1),
                ("fetch", 0.5),
                ("aggregate", 0.2),
                ("distribute", 0.4),
            ]
            .iter()
            .map(|(n, s)| (n.to_string(), *s))
            .collect(),
            bytes_moved,
        }
    }

    fn example_rounds() -> Vec<RoundSeries> {
        vec![
            round(1, Some(0.713), 9_437_184),
            round(2, Some(0.786), 9_437_184),
            round(3, Some(0.8125), 9_961_472),
        ]
    }

    fn node(id: &str, label: &str, aggregator: bool, excluded: bool) -> GraphNode {
        GraphNode {
            id: id.into(),
            label: label.into(),
            aggregator,
            excluded,
        }
    }

    fn edge(from: &str, to: &str, mbps: f64, in_tree: bool) -> GraphEdge {
        GraphEdge {
            from: from.into(),
            to: to.into(),
            bytes_per_sec: mbps * 1e6,
            in_tree,
        }
    }

    /// 4 members, all 12 directed links measured, m0 aggregates over a tree, m3 excluded.
    fn example_graph() -> GraphFigure {
        let ids = ["m0", "m1", "m2", "m3"];
        let mut edges = Vec::new();
        for (i, a) in ids.iter().enumerate() {
            for (j, b) in ids.iter().enumerate() {
                if i != j {
                    let tree = matches!((i, j), (1, 0) | (2, 1));
                    edges.push(edge(a, b, 5.0 + (i * 7 + j * 3) as f64 * 1.37, tree));
                }
            }
        }
        GraphFigure {
            title: "Measured bandwidth, round 3".into(),
            nodes: vec![
                node("m2", "member 2", false, false),
                node("m0", "member 0 (aggregator)", true, false),
                node("m1", "member 1", false, false),
                node("m3", "member 3", false, true),
            ],
            edges,
        }
    }

    #[test]
    fn accuracy_points_labels_and_baseline() {
        let svg = accuracy_svg("Test accuracy", &example_rounds(), Some(0.52)).unwrap();
        let names = well_formed(&svg);
        assert!(svg.contains(">\nTest accuracy\n<"));
        assert!(svg.contains(">\nglobal model\n<"));
        assert!(svg.contains(">\nbaseline (round 0)\n<"));
        assert!(svg.contains(">\nround\n<") && svg.contains(">\ntest accuracy\n<"));
        // 3 rounds and the baseline, one marker each; no circle elsewhere.
        assert_eq!(names.iter().filter(|n| *n == "circle").count(), 4);
        assert_eq!(count(&svg, &fill(ACCURACY_COLOR)), 3);
        assert_eq!(count(&svg, &fill(BASELINE_COLOR)), 1);
        for label in ["52.0%", "71.3%", "78.6%", "81.2%"] {
            assert!(svg.contains(&format!(">\n{label}\n<")), "{label}");
        }
    }

    #[test]
    fn curves_draw_one_coloured_line_per_run_and_dashed_references() {
        let curves = vec![
            Curve {
                label: "IID".into(),
                points: vec![(1, 0.50), (2, 0.55), (3, f64::NAN), (4, 0.58)],
            },
            Curve {
                label: "Dirichlet 0.5".into(),
                points: vec![(2, 0.52), (1, 0.49)],
            },
        ];
        let references = vec![
            ("majority (yes)".to_string(), 0.552),
            ("bad".into(), f64::NAN),
        ];
        let svg = curves_svg(
            "PubMedQA",
            "round",
            YAxis::Fraction("test accuracy"),
            &curves,
            &references,
        )
        .unwrap();
        let names = well_formed(&svg);
        // One marker per finite point.
        assert_eq!(names.iter().filter(|n| *n == "circle").count(), 5);
        let color = |i: usize| {
            let (r, g, b) = PALETTE[i];
            RGBColor(r, g, b)
        };
        assert_eq!(count(&svg, &fill(color(0))), 3);
        assert_eq!(count(&svg, &fill(color(1))), 2);
        for text in [
            "IID",
            "Dirichlet 0.5",
            "majority (yes)",
            "PubMedQA",
            "test accuracy",
        ] {
            assert!(svg.contains(&format!(">\n{text}\n<")), "{text}");
        }
        assert!(!svg.contains(">\nbad\n<") && !svg.contains("NaN"));
        assert!(svg.contains("stroke-dasharray") || svg.matches("<polyline").count() >= 3);

        // The same values as numbers (seconds, say) carry no percent sign.
        let seconds = curves_svg("t", "round", YAxis::Number("s"), &curves, &[]).unwrap();
        assert!(svg.contains('%') && !seconds.contains('%'));

        let empty = curves_svg("t", "round", YAxis::Number("y"), &[], &[]).unwrap();
        well_formed(&empty);
        assert!(empty.contains(">\nno values\n<"));
    }

    #[test]
    fn accuracy_skips_missing_and_non_finite_values() {
        let mut rounds = example_rounds();
        rounds[0].accuracy = None;
        rounds[1].accuracy = Some(f64::NAN);
        rounds.push(round(4, Some(f64::INFINITY), 0));
        let svg = accuracy_svg("acc", &rounds, Some(f64::NAN)).unwrap();
        let names = well_formed(&svg);
        assert_eq!(names.iter().filter(|n| *n == "circle").count(), 1);
        assert!(!svg.contains("baseline"));
        assert!(!svg.contains("NaN") && !svg.contains("inf"));

        // Values outside [0, 1] are shown as they are.
        let rounds = [round(1, Some(71.3), 0), round(2, Some(80.0), 0)];
        let svg = accuracy_svg("acc", &rounds, None).unwrap();
        well_formed(&svg);
        assert!(svg.contains(">\n71.3\n<") && !svg.contains("%"));
    }

    #[test]
    fn accuracy_without_data() {
        for (rounds, baseline) in [
            (vec![], None),
            (vec![round(1, None, 0)], None),
            (vec![round(7, None, 0), round(7, None, 0)], None),
        ] {
            let svg = accuracy_svg("acc", &rounds, baseline).unwrap();
            well_formed(&svg);
            assert!(svg.contains(">\nno accuracy scored\n<"));
        }
        // Only a baseline, and a single round.
        let svg = accuracy_svg("acc", &[], Some(0.5)).unwrap();
        assert_eq!(
            well_formed(&svg).iter().filter(|n| *n == "circle").count(),
            1
        );
        let svg = accuracy_svg("acc", &[round(1, Some(1.0), 0)], None).unwrap();
        assert_eq!(
            well_formed(&svg).iter().filter(|n| *n == "circle").count(),
            1
        );
        assert!(svg.contains(">\n100.0%\n<"));
        // Extreme rounds and values.
        for (rounds, baseline) in [
            (vec![round(u64::MAX, Some(0.5), 0)], Some(0.4)),
            (
                vec![round(u64::MAX - 1, Some(0.5), 0), round(u64::MAX, None, 0)],
                None,
            ),
            (
                vec![round(1, Some(f64::MAX), 0), round(2, Some(-f64::MAX), 0)],
                None,
            ),
            (
                vec![round(1, Some(1e-300), 0), round(2, Some(-1e-300), 0)],
                None,
            ),
        ] {
            well_formed(&accuracy_svg("acc", &rounds, baseline).unwrap());
        }
    }

    #[test]
    fn extreme_values_do_not_panic() {
        let mut rounds = vec![round(1, Some(f64::MAX), u64::MAX), round(u64::MAX, None, 1)];
        rounds[0].phases = vec![
            ("a".into(), f64::MAX),
            ("b".into(), 1e290),
            ("c".into(), 1e-300),
        ];
        rounds[1].phases = vec![("a".into(), 1e290), ("b".into(), 1e290)];
        well_formed(&accuracy_svg("a", &rounds, Some(-f64::MAX)).unwrap());
        let svg = phases_svg("p", &rounds).unwrap();
        well_formed(&svg);
        // Names in order of first valid use: b, c, a; `a` once (f64::MAX is skipped) + legend.
        assert_eq!(count(&svg, &fill(palette(2))), 1 + 1);
        well_formed(&bytes_svg("b", &rounds).unwrap());
    }

    #[test]
    fn phases_stacks_bars_with_a_legend() {
        let rounds = example_rounds();
        let svg = phases_svg("Time per phase", &rounds).unwrap();
        well_formed(&svg);
        assert!(svg.contains(">\nTime per phase\n<"));
        let names = [
            "train",
            "commit",
            "probe",
            "evaluate",
            "fetch",
            "aggregate",
            "distribute",
        ];
        for (i, name) in names.iter().enumerate() {
            assert!(svg.contains(&format!(">\n{name}\n<")), "{name}");
            // One segment per round and the legend's swatch.
            assert_eq!(count(&svg, &fill(palette(i))), rounds.len() + 1, "{name}");
        }
        // Totals above the bars: 12 + round + 2.6 seconds.
        for total in ["15.6 s", "16.6 s", "17.6 s"] {
            assert!(svg.contains(&format!(">\n{total}\n<")), "{total}");
        }
    }

    #[test]
    fn phases_skips_bad_values_and_handles_empty_input() {
        let mut rounds = example_rounds();
        rounds[0].phases[1].1 = f64::NAN; // commit
        rounds[1].phases[1].1 = -1.0;
        rounds[2].phases[1].1 = f64::INFINITY;
        rounds[2].phases.push(("late <&> phase".into(), 2.0));
        let svg = phases_svg("p", &rounds).unwrap();
        well_formed(&svg);
        assert!(!svg.contains(">\ncommit\n<"));
        assert!(svg.contains(">\nlate &lt;&amp;&gt; phase\n<"));
        assert_eq!(count(&svg, &fill(palette(0))), 4); // train
        assert_eq!(count(&svg, &fill(palette(6))), 2); // the late phase: 1 bar + legend

        for rounds in [
            vec![],
            vec![RoundSeries {
                phases: vec![],
                ..round(1, None, 0)
            }],
        ] {
            let svg = phases_svg("p", &rounds).unwrap();
            well_formed(&svg);
            assert!(svg.contains(">\nno phase timings\n<"));
        }
        let svg = phases_svg("p", &[round(9, None, 0)]).unwrap();
        well_formed(&svg);
        assert_eq!(count(&svg, &fill(palette(0))), 2);
    }

    #[test]
    fn bytes_draws_one_bar_per_round_in_mb() {
        let mut rounds = example_rounds();
        rounds.push(round(4, None, 0));
        let svg = bytes_svg("Bytes moved", &rounds).unwrap();
        well_formed(&svg);
        assert!(svg.contains(">\nBytes moved\n<"));
        assert!(svg.contains(">\nMB moved (10^6 bytes)\n<"));
        // Three bars (round 4 moved nothing) and the legend's swatch.
        assert_eq!(count(&svg, &fill(BYTES_COLOR)), 4);
        for label in ["9.44 MB", "9.96 MB", "0 MB"] {
            assert!(svg.contains(&format!(">\n{label}\n<")), "{label}");
        }
        // Round numbers on the x axis.
        for r in 1..=4 {
            assert!(svg.contains(&format!(">\n{r}\n<")));
        }

        for rounds in [
            vec![],
            vec![round(1, None, 0)],
            vec![round(1, None, u64::MAX)],
        ] {
            let svg = bytes_svg("b", &rounds).unwrap();
            well_formed(&svg);
        }
        assert!(bytes_svg("b", &[]).unwrap().contains(">\nno rounds\n<"));
    }

    #[test]
    fn many_rounds_thin_the_labels() {
        let rounds: Vec<RoundSeries> = (1..=100)
            .map(|r| round(r, Some(0.5 + r as f64 / 250.0), 1_000_000 * r))
            .collect();
        for svg in [
            accuracy_svg("a", &rounds, Some(0.4)).unwrap(),
            phases_svg("p", &rounds).unwrap(),
            bytes_svg("b", &rounds).unwrap(),
        ] {
            well_formed(&svg);
            assert!(!svg.contains(" MB\n<") && !svg.contains(" s\n<") && !svg.contains("%\n<t"));
        }
        let svg = bytes_svg("b", &rounds).unwrap();
        assert_eq!(count(&svg, &fill(BYTES_COLOR)), 101);
    }

    #[test]
    fn chart_titles_are_escaped() {
        let title = "a <b> & \"c\" 'd'\u{7}";
        for svg in [
            accuracy_svg(title, &example_rounds(), None).unwrap(),
            phases_svg(title, &example_rounds()).unwrap(),
            bytes_svg(title, &example_rounds()).unwrap(),
        ] {
            well_formed(&svg);
            assert!(svg.contains("a &lt;b&gt; &amp; &quot;c&quot; &apos;d&apos;\u{FFFD}"));
        }
    }

    #[test]
    fn graph_draws_nodes_edges_tree_and_legend() {
        let svg = graph_svg(&example_graph());
        let names = well_formed(&svg);
        assert!(svg.contains(">Measured bandwidth, round 3</text>"));
        assert_eq!(count(&svg, "<circle class=\"node"), 4);
        assert_eq!(count(&svg, "class=\"node aggregator\""), 1);
        assert_eq!(count(&svg, "class=\"node excluded\""), 1);
        assert_eq!(count(&svg, "class=\"edge\""), 10);
        assert_eq!(count(&svg, "class=\"edge tree\""), 2);
        assert_eq!(count(&svg, "class=\"edge-label\""), 12);
        assert_eq!(names.iter().filter(|n| *n == "line").count(), 12 + 2);
        for legend in [
            "routing tree link (MB/s)",
            "other measured link (MB/s)",
            ">aggregator<",
            ">member<",
            "excluded member",
        ] {
            assert!(svg.contains(legend), "{legend}");
        }
        assert!(svg.contains(">member 0 (aggregator)</text>"));
        // m1 -> m0 at 5 + 7 * 1.37 MB/s, with the direction in the tooltip.
        assert!(svg.contains(">14.6</text>"));
        assert!(svg.contains("<title>member 1 → member 0 (aggregator): 14.6 MB/s</title>"));
        assert!(svg.contains("4 members, 12 measured links (2 in the routing tree)"));
        // Nodes in id order: m0 at the top (the smallest y of the node circles).
        let m0 = svg.find("<title>m0</title>").unwrap();
        let m1 = svg.find("<title>m1</title>").unwrap();
        let m2 = svg.find("<title>m2</title>").unwrap();
        assert!(m0 < m1 && m1 < m2);
    }

    #[test]
    fn graph_offsets_the_two_directions_of_a_pair() {
        let figure = GraphFigure {
            title: "pair".into(),
            nodes: vec![node("a", "A", true, false), node("b", "B", false, false)],
            edges: vec![edge("a", "b", 1.0, false), edge("b", "a", 2.0, true)],
        };
        let svg = graph_svg(&figure);
        well_formed(&svg);
        let x1: Vec<f64> = svg
            .match_indices("<line class=\"edge")
            .map(|(i, _)| {
                let rest = &svg[i..];
                let v = &rest[rest.find(" x1=\"").unwrap() + 5..];
                v[..v.find('"').unwrap()].parse().unwrap()
            })
            .collect();
        // Nodes at the top and bottom of the ring: the vertical lines are side by side.
        assert_eq!(x1.len(), 2);
        assert!((x1[0] - x1[1]).abs() >= 7.0, "{x1:?}");
        assert!(svg.contains(">1.00</text>") && svg.contains(">2.00</text>"));
    }

    #[test]
    fn graph_skips_bad_edges_and_escapes_text() {
        let figure = GraphFigure {
            title: "t <&> \"q\"".into(),
            nodes: vec![
                node("x", "x <&> y", false, false),
                node("y", "y\u{1}", false, false),
                node("x", "duplicate", true, true),
            ],
            edges: vec![
                edge("x", "y", 3.0, true),
                edge("x", "nobody", 3.0, false),
                edge("nobody", "y", 3.0, false),
                edge("x", "x", 3.0, false),
                edge("y", "x", f64::NAN, false),
                edge("y", "x", f64::INFINITY, false),
                edge("y", "x", -1.0, false),
                edge("x", "y", 4.0, false),
            ],
        };
        let svg = graph_svg(&figure);
        well_formed(&svg);
        assert!(svg.contains(">t &lt;&amp;&gt; &quot;q&quot;</text>"));
        assert!(svg.contains(">x &lt;&amp;&gt; y</text>"));
        assert!(svg.contains(">y\u{FFFD}</text>"));
        assert!(!svg.contains("duplicate"));
        assert_eq!(count(&svg, "<circle class=\"node"), 2);
        assert_eq!(count(&svg, "<line class=\"edge"), 1);
        assert!(svg.contains(">3.00</text>"));
    }

    #[test]
    fn graph_without_members_or_edges() {
        let empty = GraphFigure {
            title: String::new(),
            nodes: vec![],
            edges: vec![edge("a", "b", 1.0, true)],
        };
        let svg = graph_svg(&empty);
        well_formed(&svg);
        assert!(svg.contains(">no members</text>"));
        assert!(svg.contains("0 members, 0 measured links"));
        let single = GraphFigure {
            title: "one".into(),
            nodes: vec![node("a", "A", true, false)],
            edges: vec![],
        };
        let svg = graph_svg(&single);
        well_formed(&svg);
        assert_eq!(count(&svg, "<circle class=\"node"), 1);
        assert!(svg.contains("1 member, 0 measured links"));
    }

    #[test]
    fn graph_of_twenty_members_labels_the_tree_only() {
        let ids: Vec<String> = (0..20).map(|i| format!("member-{i}")).collect();
        let nodes = ids
            .iter()
            .map(|id| node(id, id, id == "member-0", id == "member-7"))
            .collect();
        let mut edges = Vec::new();
        for (i, a) in ids.iter().enumerate() {
            for (j, b) in ids.iter().enumerate() {
                if i != j {
                    // A binary tree towards member-0.
                    let tree = i > 0 && j == (i - 1) / 2;
                    edges.push(edge(a, b, 1.0 + (i + j) as f64, tree));
                }
            }
        }
        let svg = graph_svg(&GraphFigure {
            title: "twenty".into(),
            nodes,
            edges,
        });
        well_formed(&svg);
        assert_eq!(count(&svg, "<line class=\"edge"), 380);
        assert_eq!(count(&svg, "class=\"edge-label\""), 19);
        assert!(svg.contains("labels on tree links only"));
        // Natural id order: member-2 before member-10.
        assert!(
            svg.find("<title>member-2</title>").unwrap()
                < svg.find("<title>member-10</title>").unwrap()
        );
    }

    #[test]
    fn natural_order_of_ids() {
        let mut ids = vec!["m10", "m2", "m1", "a", "", "m02", "m2b", "b7", "é3", "m"];
        ids.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(
            ids,
            vec!["", "a", "b7", "m", "m1", "m02", "m2", "m2b", "m10", "é3"]
        );
        assert_eq!(natural_cmp("x", "x"), Ordering::Equal);
    }

    #[test]
    fn write_all_writes_the_four_files() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("figures");
        let graph = example_graph();
        let written = write_all(&out, &example_rounds(), Some(0.52), Some(&graph)).unwrap();
        let names: Vec<_> = written
            .iter()
            .map(|p| p.file_name().unwrap().to_str().unwrap())
            .collect();
        assert_eq!(
            names,
            ["accuracy.svg", "phases.svg", "bytes.svg", "graph.svg"]
        );
        for path in &written {
            assert_eq!(path.parent(), Some(out.as_path()));
            well_formed(&std::fs::read_to_string(path).unwrap());
        }
        // Without a graph, no graph.svg.
        let out2 = dir.path().join("nograph");
        assert_eq!(write_all(&out2, &[], None, None).unwrap().len(), 3);
        assert!(!out2.join("graph.svg").exists());
        // A file where the folder should be.
        let file = dir.path().join("file");
        std::fs::write(&file, "x").unwrap();
        match write_all(&file, &[], None, None) {
            Err(FigureError::Io { path, .. }) => assert_eq!(path, file),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn data_types_round_trip_through_json() {
        let rounds = example_rounds();
        let json = serde_json::to_string(&rounds).unwrap();
        assert_eq!(
            serde_json::from_str::<Vec<RoundSeries>>(&json).unwrap(),
            rounds
        );
        let graph = example_graph();
        let json = serde_json::to_string(&graph).unwrap();
        assert_eq!(serde_json::from_str::<GraphFigure>(&json).unwrap(), graph);
    }

    /// The figures of a realistic run (4 members, 3 rounds); also written to
    /// `$BCFL_FIGURES_OUT` when set, to look at them.
    #[test]
    fn realistic_example() {
        let rounds = example_rounds();
        let graph = example_graph();
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            write_all(dir.path(), &rounds, Some(0.52), Some(&graph))
                .unwrap()
                .len(),
            4
        );
        if let Some(out) = std::env::var_os("BCFL_FIGURES_OUT") {
            let out = PathBuf::from(out);
            write_all(&out, &rounds, Some(0.52), Some(&graph)).unwrap();
            let ids: Vec<String> = (0..20).map(|i| format!("member-{i}")).collect();
            let mut edges = Vec::new();
            for (i, a) in ids.iter().enumerate() {
                for (j, b) in ids.iter().enumerate() {
                    if i != j && (i + 1 == j || j + 1 == i || (i + j) % 5 == 0 || j == 0) {
                        let tree = i > 0 && j == (i - 1) / 2;
                        edges.push(edge(a, b, 3.0 + ((i * 13 + j * 7) % 40) as f64 * 0.9, tree));
                    }
                }
            }
            let big = GraphFigure {
                title: "20 members".into(),
                nodes: ids
                    .iter()
                    .map(|id| node(id, id, id == "member-0", id == "member-7"))
                    .collect(),
                edges,
            };
            std::fs::write(out.join("graph20.svg"), graph_svg(&big)).unwrap();
        }
    }
}
