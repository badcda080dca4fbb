//! The seed paper's comparison table, reproduced on real training and measured-style links.
//!
//! One row per detection method (and a row without detection): the anomalous nodes it found,
//! the asynchronous distribution time of the global model after removing them, and the final
//! accuracy with IID and non-IID (Dirichlet) shards. For each seed, the members, attackers and
//! links are those of [`experiment::prepare`](super::experiment::prepare), each method a consortium run on the round
//! library ([`experiment::run_all`](super::experiment::run_all)); a row's nodes are the members
//! the last round's on-chain verdict excluded (mean count over seeds, and how many of them
//! were attackers); its time is the seed
//! paper's `D_G + max` over store-and-forward shortest paths (Bellman-Ford over latency
//! `M / B_ij`) from the graph centre of the remaining members
//! ([`bcfl_processor::graph::BandwidthGraph::centre`]), `M` the update size.

use serde::Serialize;

use bcfl_processor::graph::{BandwidthGraph, CentreCriterion, DistributionTotals, TransferModel};
use bcfl_protos::bcfl as pb;

use super::super::data::Dataset;
use super::super::split::Partition;
use super::super::{Error, Result};
use super::bench::{Stat, SETUP};
use super::detect::Detector;
use super::embed::Embeddings;
use super::experiment::{prepare, run_all, Defence, Scenario};
use super::head::LocalConfig;
use crate::demo::attack::CollusionNoise;
use bcfl_processor::anomaly::attack::AttackKind;

/// The table's set-up.
#[derive(Clone, Debug, PartialEq)]
pub struct PaperConfig {
    /// Members.
    pub members: usize,
    /// Attackers; attacker `j` uses `attacks[j mod len]`.
    pub attackers: usize,
    /// The attacks.
    pub attacks: Vec<AttackKind>,
    /// Seeds.
    pub seeds: Vec<u64>,
    /// Federated rounds.
    pub rounds: usize,
    /// Local training.
    pub local: LocalConfig,
    /// Dirichlet concentration of the non-IID shards.
    pub alpha: f64,
    /// Sketch length.
    pub sketch_length: usize,
    /// Coordinates each commitment samples (0: none).
    pub coordinate_samples: usize,
    /// The detectors' features, DBSCAN radius and neighbourhood size, z-score threshold.
    pub tuning: super::detect::Tuning,
    /// Held-out fraction.
    pub test_fraction: f64,
    /// Transfer size in bytes; `None`: the experiment's update file size.
    pub size_bytes: Option<f64>,
    /// Fixed delay `D_G` in seconds.
    pub delay_s: f64,
}

/// One row.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PaperRow {
    /// `none` or the detector's name.
    pub method: String,
    /// Members excluded in the last round (IID run), over seeds.
    pub anomalous_nodes: Stat,
    /// Of those, attackers.
    pub attackers_found: Stat,
    /// Asynchronous distribution time in seconds, over seeds.
    pub asynchronous_s: Stat,
    /// Final accuracy with IID shards.
    pub iid_accuracy: Stat,
    /// Final accuracy with Dirichlet shards.
    pub non_iid_accuracy: Stat,
}

/// The table.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PaperTable {
    /// What was trained.
    pub setup: String,
    /// Members, attackers and their attacks.
    pub members: usize,
    /// Attackers.
    pub attackers: usize,
    /// Attack names.
    pub attacks: Vec<String>,
    /// Transfer size used for the times.
    pub size_bytes: f64,
    /// Seeds.
    pub seeds: Vec<u64>,
    /// The rows.
    pub rows: Vec<PaperRow>,
}

fn asynchronous_time(links: &[pb::Link], removed: &[String], size: f64, delay: f64) -> Result<f64> {
    let graph_error = |e: bcfl_processor::graph::GraphError| Error::Config(format!("graph: {e}"));
    let edges = links.iter().filter_map(|l| {
        let b = l.samples.last()?.bytes_per_sec as f64;
        (b > 0.0).then(|| (l.from.clone(), l.to.clone(), b))
    });
    let graph = BandwidthGraph::from_links(edges)
        .and_then(|g| g.without_nodes(removed))
        .map_err(graph_error)?;
    let model = TransferModel::new(size, size).map_err(graph_error)?;
    let centre = graph
        .centre(&model, CentreCriterion::MinMax)
        .map_err(graph_error)?;
    let tree = graph
        .shortest_paths(centre.node.as_str(), &model)
        .map_err(graph_error)?;
    let totals =
        DistributionTotals::store_and_forward(&tree.routes(), delay).map_err(graph_error)?;
    Ok(totals.asynchronous_s)
}

/// Builds the table (see the module docs); `progress` hears about each finished seed and
/// partition: the seed, the partition, and how many of the runs are done of how many.
pub async fn paper_table(
    dataset: &Dataset,
    embeddings: &Embeddings,
    config: &PaperConfig,
    mut progress: impl FnMut(u64, Partition, usize, usize),
) -> Result<PaperTable> {
    let total = config.seeds.len() * 2;
    let mut done = 0;
    let work = tempfile::tempdir().map_err(|e| Error::io(std::env::temp_dir(), e))?;
    let methods: Vec<Option<Detector>> = std::iter::once(None)
        .chain(Detector::ALL.into_iter().map(Some))
        .collect();
    let mut columns: Vec<[Vec<f64>; 5]> = vec![Default::default(); methods.len()];
    let mut size_used = config.size_bytes.unwrap_or(0.0);
    for &seed in &config.seeds {
        for (p, partition) in [
            Partition::Iid,
            Partition::Dirichlet {
                alpha: config.alpha,
            },
        ]
        .into_iter()
        .enumerate()
        {
            let scenario = Scenario {
                members: config.members,
                attackers: config.attackers,
                attacks: config.attacks.clone(),
                rounds: config.rounds,
                partition,
                local: config.local,
                sketch_length: config.sketch_length,
                coordinate_samples: config.coordinate_samples,
                sketch_after_commit: false,
                tuning: config.tuning.clone(),
                test_fraction: config.test_fraction,
                seed,
                collusion_noise: CollusionNoise::NONE,
                blind_projection: false,
            };
            let prepared = prepare(embeddings, dataset, &scenario)?;
            let attackers = prepared.attackers();
            let defences: Vec<Defence> = methods
                .iter()
                .map(|m| m.map_or(Defence::None, Defence::Exclusion))
                .collect();
            let outcomes = run_all(&prepared, &scenario, &defences, work.path()).await?;
            for (m, outcome) in outcomes.into_iter().enumerate() {
                if p == 1 {
                    columns[m][4].push(outcome.accuracy);
                    continue;
                }
                columns[m][3].push(outcome.accuracy);
                let removed = outcome.excluded.last().cloned().unwrap_or_default();
                let found = removed.iter().filter(|r| attackers.contains(r)).count();
                columns[m][0].push(removed.len() as f64);
                columns[m][1].push(found as f64);
                let size = config.size_bytes.unwrap_or(outcome.update_bytes as f64);
                size_used = size;
                columns[m][2].push(asynchronous_time(
                    &prepared.links,
                    &removed,
                    size,
                    config.delay_s,
                )?);
            }
            done += 1;
            progress(seed, partition, done, total);
        }
    }
    let rows = methods
        .iter()
        .zip(&columns)
        .map(|(method, c)| PaperRow {
            method: method.map_or("none", Detector::name).into(),
            anomalous_nodes: Stat::of(&c[0]),
            attackers_found: Stat::of(&c[1]),
            asynchronous_s: Stat::of(&c[2]),
            iid_accuracy: Stat::of(&c[3]),
            non_iid_accuracy: Stat::of(&c[4]),
        })
        .collect();
    Ok(PaperTable {
        setup: SETUP.into(),
        members: config.members,
        attackers: config.attackers,
        attacks: config.attacks.iter().map(|a| a.name().to_owned()).collect(),
        size_bytes: size_used,
        seeds: config.seeds.clone(),
        rows,
    })
}

impl PaperTable {
    /// The table in markdown.
    pub fn markdown(&self) -> String {
        let mut out = format!(
            "Setup: {}; {} members, {} attackers ({}), transfer size {} bytes, seeds {:?}.\n\n",
            self.setup,
            self.members,
            self.attackers,
            self.attacks.join(", "),
            self.size_bytes,
            self.seeds
        );
        out.push_str(
            "| method | anomalous nodes (attackers) | asynchronous time (s) | IID accuracy | non-IID accuracy |\n",
        );
        out.push_str("| --- | ---: | ---: | ---: | ---: |\n");
        for r in &self.rows {
            out.push_str(&format!(
                "| {} | {:.1} ({:.1}) | {:.6} | {:.3} | {:.3} |\n",
                r.method,
                r.anomalous_nodes.mean,
                r.attackers_found.mean,
                r.asynchronous_s.mean,
                r.iid_accuracy.mean,
                r.non_iid_accuracy.mean
            ));
        }
        out
    }
}
