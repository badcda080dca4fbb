//! What `bcfl data split` writes: each consortium member's private training shard, cut from one labelled
//! corpus, and the held-out test set, written as files.
//!
//! The split is [`super::split::split`], the one `bcfl demo` makes: with the same data,
//! `--members`, `--partition`, `--alpha`, `--test-fraction`, `--seed` and limits
//! (`--max-train` / `--max-test` here, `--max-train-examples` / `--max-test-examples` there) the
//! shards are the demo's. `--out DIR` receives:
//!
//! - `member-1.csv` .. `member-N.csv` and `test.csv`: CSV files with the header `label,text`
//!   and one example a row, the label by class name ([`Dataset::write_csv`]), examples in
//!   corpus order; `bcfl train --data DIR/member-1.csv` and every other loader read them back;
//! - `labels.csv`: the classes in order (header `label,name`, rows `1,NAME`, ...), for
//!   `--labels-file DIR/labels.csv`, so that a member whose shard lacks a class still gets
//!   every class in the consortium's order;
//! - `split.json`: a [`SplitManifest`]: the [`DataPlan`] (counts, leakage, class names), the
//!   settings, and each file's examples, examples per class and SHA-256.
//!
//! Existing output files (`member-*.csv`, `test.csv`, `labels.csv`, `split.json`) are not
//! overwritten unless [`ShardRequest::force`] (`--force`), which removes them all first (so no shard of an earlier,
//! larger consortium lingers). Shards cut from the Medical Abstracts corpus are adaptations of
//! it and stay under its licence, CC BY-SA 3.0 (`data/README.md`).

use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::data::{Dataset, LabelNames};
use super::saved::TEST_FILE;
use super::source::{DataOrigin, DataSource};
use super::split::{split, DataPlan, SplitConfig};
use super::{Error, Result};
use crate::train::data::{MEDICAL_ABSTRACTS, MEDICAL_ABSTRACTS_FILE};
use bcfl_fed::update::sha256_hex;

/// The labels file `bcfl data split` writes.
pub const LABELS_FILE: &str = "labels.csv";
/// The description `bcfl data split` writes.
pub const MANIFEST_FILE: &str = "split.json";

/// File name of member `member`'s shard (members count from 1): `member-1.csv`.
pub fn member_file(member: usize) -> String {
    format!("member-{member}.csv")
}

/// What [`write_shards`] cuts and where it writes.
#[derive(Clone, Debug, PartialEq)]
pub struct ShardRequest {
    /// The corpus.
    pub data: DataSource,
    /// The split's settings.
    pub config: SplitConfig,
    /// Directory to write the files in (created when missing).
    pub out: PathBuf,
    /// Replace the output files of an earlier split in `out`.
    pub force: bool,
}

/// One written file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardFile {
    /// File name, in the output directory.
    pub file: String,
    /// Examples in it.
    pub examples: usize,
    /// Examples per class, in [`DataPlan::labels`] order.
    pub label_counts: Vec<usize>,
    /// SHA-256 of the file, hex.
    pub sha256: String,
}

/// `split.json`: what `bcfl data split` wrote and from what.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SplitManifest {
    /// The examples used: counts, leakage (0), class names.
    #[serde(flatten)]
    pub plan: DataPlan,
    /// The corpus file, as given.
    pub source: PathBuf,
    /// `--limit`: only the corpus's first examples were split.
    pub limit: Option<usize>,
    /// The split's settings.
    pub config: SplitConfig,
    /// Examples per member, in member order (the sizes of `shards`).
    pub shard_sizes: Vec<usize>,
    /// The members' shard files, in member order.
    pub shards: Vec<ShardFile>,
    /// The held-out test file.
    pub test: ShardFile,
    /// The labels file.
    pub labels_file: String,
}

/// Whether `name` is a file `bcfl data split` writes.
fn is_output(name: &str) -> bool {
    let member = name
        .strip_prefix("member-")
        .and_then(|rest| rest.strip_suffix(".csv"))
        .is_some_and(|k| !k.is_empty() && k.bytes().all(|b| b.is_ascii_digit()));
    member || [TEST_FILE, LABELS_FILE, MANIFEST_FILE].contains(&name)
}

/// The output files of an earlier split in `out`, sorted.
fn earlier_outputs(out: &Path) -> Result<Vec<PathBuf>> {
    if !out.exists() {
        return Ok(Vec::new());
    }
    let mut found = Vec::new();
    for entry in fs::read_dir(out).map_err(|e| Error::io(out, e))? {
        let entry = entry.map_err(|e| Error::io(out, e))?;
        if entry.file_name().to_str().is_some_and(is_output) {
            found.push(entry.path());
        }
    }
    found.sort();
    Ok(found)
}

/// Writes `data` as `out/name` and describes it.
fn write_shard(out: &Path, name: String, data: &Dataset) -> Result<ShardFile> {
    let path = out.join(&name);
    data.write_csv(&path)?;
    let bytes = fs::read(&path).map_err(|e| Error::io(&path, e))?;
    Ok(ShardFile {
        file: name,
        examples: data.len(),
        label_counts: data.label_counts(),
        sha256: sha256_hex(&bytes),
    })
}

/// The corpus file the data comes from, for the manifest.
fn source_file(source: &DataSource) -> PathBuf {
    match &source.origin {
        DataOrigin::File { path, .. } => path.clone(),
        DataOrigin::Corpus { dir, .. } => dir.join(MEDICAL_ABSTRACTS).join(MEDICAL_ABSTRACTS_FILE),
    }
}

/// `bcfl data split` without printing: loads the corpus, splits it, writes the files and
/// returns what `split.json` holds.
pub fn write_shards(request: &ShardRequest) -> Result<SplitManifest> {
    let config = request.config;
    let out = &request.out;
    let earlier = earlier_outputs(out)?;
    if !earlier.is_empty() && !request.force {
        let files: Vec<String> = earlier
            .iter()
            .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .collect();
        return Err(Error::SplitExists {
            dir: out.clone(),
            files,
        });
    }
    let data = request.data.load(None)?;
    let result = split(&data, &config)?;
    for path in &earlier {
        fs::remove_file(path).map_err(|e| Error::io(path, e))?;
    }
    fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    let shards = result
        .shards
        .iter()
        .enumerate()
        .map(|(i, shard)| write_shard(out, member_file(i + 1), shard))
        .collect::<Result<Vec<_>>>()?;
    let test = write_shard(out, TEST_FILE.to_string(), &result.test)?;
    LabelNames::write_names(&out.join(LABELS_FILE), &data.label_names)?;
    let manifest = SplitManifest {
        plan: result.plan,
        source: source_file(&request.data),
        limit: request.data.limit,
        config,
        shard_sizes: shards.iter().map(|s| s.examples).collect(),
        shards,
        test,
        labels_file: LABELS_FILE.to_string(),
    };
    let path = out.join(MANIFEST_FILE);
    let text =
        serde_json::to_string_pretty(&manifest).map_err(|e| Error::json(MANIFEST_FILE, e))?;
    fs::write(&path, text + "\n").map_err(|e| Error::io(&path, e))?;
    Ok(manifest)
}

/// The table `bcfl data split` prints without `--json`.
pub fn render(manifest: &SplitManifest, out: &Path) -> String {
    let plan = &manifest.plan;
    let mut lines = vec![
        format!(
            "{}: {} member shards and a test set from {} examples of {} ({}, seed {})",
            out.display(),
            manifest.shards.len(),
            plan.examples,
            manifest.source.display(),
            manifest.config.partition,
            manifest.config.seed
        ),
        format!("classes: {}", plan.labels.join(", ")),
        format!("{:<16} {:>8}  per class", "file", "examples"),
    ];
    for file in manifest.shards.iter().chain([&manifest.test]) {
        let counts: Vec<String> = file.label_counts.iter().map(usize::to_string).collect();
        lines.push(format!(
            "{:<16} {:>8}  {}",
            file.file,
            file.examples,
            counts.join(" ")
        ));
    }
    lines.push(format!(
        "training: {} of {} examples used; test: {} of {}; leakage: {} test texts in training",
        plan.train_used, plan.train_available, plan.test_used, plan.test_available, plan.leaked
    ));
    lines.push(format!(
        "wrote {MANIFEST_FILE} and {LABELS_FILE} (train with --labels-file {})",
        out.join(LABELS_FILE).display()
    ));
    lines.join("\n")
}
