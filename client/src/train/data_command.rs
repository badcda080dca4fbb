//! `bcfl data split`: each consortium member's private training shard, cut from one labelled
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
//! overwritten unless `--force`, which removes them all first (so no shard of an earlier,
//! larger consortium lingers). Shards cut from the Medical Abstracts corpus are adaptations of
//! it and stay under its licence, CC BY-SA 3.0 (`data/README.md`).

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::{Args, Subcommand, ValueEnum};
use serde::{Deserialize, Serialize};

use super::command::{DataArgs, TEST_FILE};
use super::data::{Dataset, LabelNames, MEDICAL_ABSTRACTS, MEDICAL_ABSTRACTS_FILE};
use super::split::{split, DataPlan, Partition, SplitConfig};
use bcfl_fed::update::sha256_hex;

/// The labels file `bcfl data split` writes.
pub const LABELS_FILE: &str = "labels.csv";
/// The description `bcfl data split` writes.
pub const MANIFEST_FILE: &str = "split.json";

/// File name of member `member`'s shard (members count from 1): `member-1.csv`.
pub fn member_file(member: usize) -> String {
    format!("member-{member}.csv")
}

/// `bcfl data ...`: labelled data for a consortium.
#[derive(Clone, Debug, Subcommand)]
pub enum DataCommand {
    /// Write each member's private training shard (DIR/member-K.csv), the held-out test set
    /// (DIR/test.csv), the classes (DIR/labels.csv) and the split's description
    /// (DIR/split.json).
    Split(Box<SplitArgs>),
}

/// Partitions of `--partition`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum PartitionArg {
    /// Stratified: each member gets about the same class mix.
    Iid,
    /// Each class's member shares drawn from Dirichlet(--alpha): skewed shards.
    Dirichlet,
    /// Each member specialises in two classes: a --share of each class goes to its
    /// specialists, the rest to any member.
    Specialty,
}

/// `bcfl data split` options.
#[derive(Clone, Debug, Args)]
pub struct SplitArgs {
    /// The corpus.
    #[command(flatten)]
    pub data: DataArgs,
    /// Members (shards).
    #[arg(long, default_value_t = 4)]
    pub members: usize,
    /// How training examples spread over members.
    #[arg(long, value_enum, default_value = "iid")]
    pub partition: PartitionArg,
    /// Dirichlet concentration (--partition dirichlet): small, skewed shards.
    #[arg(long, default_value_t = 0.5)]
    pub alpha: f64,
    /// Fraction of each class that goes to its specialists (--partition specialty).
    #[arg(long, default_value_t = 0.8)]
    pub share: f64,
    /// Training examples used in all, drawn at random from the training split (0: all).
    #[arg(long, default_value_t = 0)]
    pub max_train: usize,
    /// Test examples used, drawn at random from the held-out split (0: all).
    #[arg(long, default_value_t = 0)]
    pub max_test: usize,
    /// Fraction of the corpus held out for testing (stratified; copies of a text stay together).
    #[arg(long, default_value_t = 0.2)]
    pub test_fraction: f64,
    /// Smallest shard (Dirichlet draws are repeated until every shard has it).
    #[arg(long, default_value_t = 1)]
    pub min_shard: usize,
    /// Seed of the split, the subsets and the partition.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Directory to write the files in (created when missing).
    #[arg(long)]
    pub out: PathBuf,
    /// Replace the output files of an earlier split in --out.
    #[arg(long)]
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

impl SplitArgs {
    /// The split's settings.
    pub fn config(&self) -> anyhow::Result<SplitConfig> {
        anyhow::ensure!(self.members >= 1, "--members must be at least 1");
        let partition = match self.partition {
            PartitionArg::Iid => Partition::Iid,
            PartitionArg::Dirichlet => {
                anyhow::ensure!(
                    self.alpha > 0.0 && self.alpha.is_finite(),
                    "--alpha must be positive"
                );
                Partition::Dirichlet { alpha: self.alpha }
            }
            PartitionArg::Specialty => {
                anyhow::ensure!(
                    (0.0..=1.0).contains(&self.share),
                    "--share must be in [0, 1]"
                );
                Partition::Specialty { share: self.share }
            }
        };
        anyhow::ensure!(
            self.test_fraction > 0.0 && self.test_fraction < 1.0,
            "--test-fraction must be in (0, 1)"
        );
        Ok(SplitConfig {
            members: self.members,
            test_fraction: self.test_fraction,
            max_train: (self.max_train > 0).then_some(self.max_train),
            max_test: (self.max_test > 0).then_some(self.max_test),
            partition,
            min_shard: self.min_shard,
            seed: self.seed,
        })
    }

    /// The corpus file the data comes from, for the manifest.
    fn source(&self) -> PathBuf {
        match (&self.data.data, &self.data.data_dir) {
            (Some(file), _) => file.clone(),
            (None, Some(dir)) => dir.join(MEDICAL_ABSTRACTS).join(MEDICAL_ABSTRACTS_FILE),
            (None, None) => PathBuf::new(),
        }
    }
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
fn earlier_outputs(out: &Path) -> anyhow::Result<Vec<PathBuf>> {
    if !out.exists() {
        return Ok(Vec::new());
    }
    let mut found = Vec::new();
    for entry in fs::read_dir(out).with_context(|| format!("reading {}", out.display()))? {
        let entry = entry.with_context(|| format!("reading {}", out.display()))?;
        if entry.file_name().to_str().is_some_and(is_output) {
            found.push(entry.path());
        }
    }
    found.sort();
    Ok(found)
}

/// Writes `data` as `out/name` and describes it.
fn write_shard(out: &Path, name: String, data: &Dataset) -> anyhow::Result<ShardFile> {
    let path = out.join(&name);
    data.write_csv(&path)?;
    let bytes = fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    Ok(ShardFile {
        file: name,
        examples: data.len(),
        label_counts: data.label_counts(),
        sha256: sha256_hex(&bytes),
    })
}

/// Runs `bcfl data split` without printing: loads the corpus, splits it, writes the files and
/// returns what `split.json` holds.
pub fn run_split(args: &SplitArgs) -> anyhow::Result<SplitManifest> {
    let config = args.config()?;
    let earlier = earlier_outputs(&args.out)?;
    if !earlier.is_empty() && !args.force {
        let names: Vec<String> = earlier
            .iter()
            .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .collect();
        anyhow::bail!(
            "{} already holds the files of a split ({}): pass --force to replace them",
            args.out.display(),
            names.join(", ")
        );
    }
    let data = args.data.load(None)?;
    let result = split(&data, &config)?;
    for path in &earlier {
        fs::remove_file(path).with_context(|| format!("removing {}", path.display()))?;
    }
    fs::create_dir_all(&args.out).with_context(|| format!("creating {}", args.out.display()))?;
    let shards = result
        .shards
        .iter()
        .enumerate()
        .map(|(i, shard)| write_shard(&args.out, member_file(i + 1), shard))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let test = write_shard(&args.out, TEST_FILE.to_string(), &result.test)?;
    LabelNames::write_names(&args.out.join(LABELS_FILE), &data.label_names)?;
    let manifest = SplitManifest {
        plan: result.plan,
        source: args.source(),
        limit: args.data.limit,
        config,
        shard_sizes: shards.iter().map(|s| s.examples).collect(),
        shards,
        test,
        labels_file: LABELS_FILE.to_string(),
    };
    let path = args.out.join(MANIFEST_FILE);
    fs::write(&path, serde_json::to_string_pretty(&manifest)? + "\n")
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(manifest)
}

/// The partition as on the command line: `iid`, `dirichlet (alpha 0.5)`, `specialty (share 0.8)`.
fn describe(partition: &Partition) -> String {
    match partition {
        Partition::Iid => "iid".into(),
        Partition::Dirichlet { alpha } => format!("dirichlet (alpha {alpha})"),
        Partition::Specialty { share } => format!("specialty (share {share})"),
    }
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
            describe(&manifest.config.partition),
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

impl DataCommand {
    /// Runs the command, printing a table or, with `json`, the manifest.
    pub fn run(&self, json: bool) -> anyhow::Result<()> {
        match self {
            Self::Split(args) => {
                let manifest = run_split(args)?;
                if json {
                    println!("{}", serde_json::to_string(&manifest)?);
                } else {
                    println!("{}", render(&manifest, &args.out));
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use clap::Parser;

    use super::*;
    use crate::train::data::Columns;
    use crate::train::split::normalize;

    #[derive(Parser)]
    struct Cli {
        #[command(subcommand)]
        data: DataCommand,
    }

    fn parse(args: &[&str]) -> SplitArgs {
        let mut line = vec!["bcfl", "split"];
        line.extend_from_slice(args);
        match Cli::try_parse_from(line).unwrap().data {
            DataCommand::Split(args) => *args,
        }
    }

    /// A corpus of three classes (with two copies of one text) as a text,label CSV.
    fn corpus(dir: &Path) -> PathBuf {
        let mut text = String::from("text,label\n");
        for (label, n) in [("cardiology", 40), ("neurology", 25), ("oncology", 15)] {
            for i in 0..n {
                text.push_str(&format!("\"{label} case {i}, notes\",{label}\n"));
            }
        }
        text.push_str("\"Same  text\",oncology\n\"same text\",oncology\n");
        let path = dir.join("corpus.csv");
        fs::write(&path, text).unwrap();
        path
    }

    fn plain() -> Columns {
        Columns {
            text: "text".into(),
            label: "label".into(),
        }
    }

    fn texts(data: &Dataset) -> HashSet<String> {
        data.examples.iter().map(|e| normalize(&e.text)).collect()
    }

    #[test]
    fn defaults_are_the_documented_ones() {
        let args = parse(&["--out", "x"]);
        assert_eq!(args.members, 4);
        assert_eq!(args.partition, PartitionArg::Iid);
        assert_eq!((args.alpha, args.test_fraction, args.seed), (0.5, 0.2, 42));
        assert_eq!((args.max_train, args.max_test, args.force), (0, 0, false));
        let config = args.config().unwrap();
        assert_eq!((config.max_train, config.max_test), (None, None));
        assert!(parse(&["--out", "x", "--members", "0"]).config().is_err());
        assert!(parse(&["--out", "x", "--test-fraction", "1"])
            .config()
            .is_err());
        assert!(
            parse(&["--out", "x", "--partition", "dirichlet", "--alpha", "0"])
                .config()
                .is_err()
        );
    }

    #[test]
    fn shards_load_back_disjoint_from_the_test_set_and_add_up() {
        let dir = tempfile::tempdir().unwrap();
        let data = corpus(dir.path());
        let out = dir.path().join("shards");
        let data_arg = data.to_str().unwrap();
        let out_arg = out.to_str().unwrap();
        let args = parse(&[
            "--data",
            data_arg,
            "--members",
            "3",
            "--partition",
            "dirichlet",
            "--alpha",
            "1.0",
            "--out",
            out_arg,
        ]);
        let manifest = run_split(&args).unwrap();
        let plan = &manifest.plan;
        assert_eq!(plan.examples, 82);
        assert_eq!(plan.leaked, 0);
        assert_eq!(plan.labels, ["cardiology", "neurology", "oncology"]);
        assert_eq!(manifest.shard_sizes.len(), 3);
        assert_eq!(manifest.shard_sizes.iter().sum::<usize>(), plan.train_used);
        assert_eq!(plan.train_used + plan.test_used, plan.examples);

        let labels = out.join(LABELS_FILE);
        let test = Dataset::load(&out.join(TEST_FILE), &plain(), Some(&labels), None).unwrap();
        assert_eq!(test.label_names, plan.labels);
        assert_eq!(test.len(), manifest.test.examples);
        assert_eq!(test.label_counts(), manifest.test.label_counts);
        let test_texts = texts(&test);
        let mut seen = HashSet::new();
        let mut total = 0;
        for (k, file) in manifest.shards.iter().enumerate() {
            assert_eq!(file.file, member_file(k + 1));
            let path = out.join(&file.file);
            // Any loader reads a shard back: with the labels file (all classes, in order)...
            let shard = Dataset::load(&path, &plain(), Some(&labels), None).unwrap();
            assert_eq!(shard.label_names, plan.labels);
            assert_eq!(shard.label_counts(), file.label_counts);
            // ... or bare, with the classes it holds.
            let bare = Dataset::load(&path, &plain(), None, None).unwrap();
            assert_eq!(bare.len(), file.examples);
            assert_eq!(sha256_hex(&fs::read(&path).unwrap()), file.sha256);
            let shard_texts = texts(&shard);
            assert!(shard_texts.is_disjoint(&test_texts), "{} leaks", file.file);
            // Shards share no text, but for the copies of one (the partition deals examples,
            // not texts; copies on two members leak nothing into the test set).
            let shared: Vec<&String> = shard_texts.intersection(&seen).collect();
            assert!(shared.iter().all(|t| *t == "same text"), "{shared:?}");
            total += shard.len();
            seen.extend(shard_texts);
        }
        assert_eq!(total, plan.train_used);
        // The copies of one text are on one side only.
        assert!(seen.contains("same text") != test_texts.contains("same text"));

        // split.json is the manifest.
        let written: SplitManifest =
            serde_json::from_str(&fs::read_to_string(out.join(MANIFEST_FILE)).unwrap()).unwrap();
        assert_eq!(written, manifest);
    }

    #[test]
    fn the_same_seed_writes_the_same_files_and_existing_files_need_force() {
        let dir = tempfile::tempdir().unwrap();
        let data = corpus(dir.path());
        let run = |out: &str, extra: &[&str]| {
            let mut line = vec![
                "--data",
                data.to_str().unwrap(),
                "--max-train",
                "40",
                "--max-test",
                "10",
                "--out",
                out,
            ];
            if !extra.contains(&"--seed") {
                line.extend(["--seed", "7"]);
            }
            line.extend_from_slice(extra);
            run_split(&parse(&line))
        };
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        let first = run(a.to_str().unwrap(), &[]).unwrap();
        let second = run(b.to_str().unwrap(), &[]).unwrap();
        assert_eq!(first.shards, second.shards);
        assert_eq!(first.shard_sizes.iter().sum::<usize>(), 40);
        assert_eq!(first.test.examples, 10);
        assert!(first.plan.subset);
        for name in ["member-1.csv", "member-4.csv", "test.csv", "labels.csv"] {
            assert_eq!(
                fs::read(a.join(name)).unwrap(),
                fs::read(b.join(name)).unwrap(),
                "{name}"
            );
        }
        // Another seed, other shards.
        let c = dir.path().join("c");
        let other = run(c.to_str().unwrap(), &["--seed", "8"]).unwrap();
        assert_ne!(other.shards, first.shards);

        // A second split into the same directory is refused and leaves the files alone ...
        let err = run(a.to_str().unwrap(), &["--members", "2"]).unwrap_err();
        assert!(err.to_string().contains("--force"), "{err}");
        assert!(a.join("member-4.csv").exists());
        // ... unless --force, which also removes the shards of the larger consortium.
        let forced = run(a.to_str().unwrap(), &["--members", "2", "--force"]).unwrap();
        assert_eq!(forced.shards.len(), 2);
        assert!(a.join("member-2.csv").exists());
        assert!(!a.join("member-3.csv").exists() && !a.join("member-4.csv").exists());
    }

    #[test]
    fn the_shipped_corpus_splits_into_member_files() {
        let dir = tempfile::tempdir().unwrap();
        let file = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../data")
            .join(MEDICAL_ABSTRACTS)
            .join(MEDICAL_ABSTRACTS_FILE);
        let out = dir.path().join("out");
        let args = parse(&[
            "--data",
            file.to_str().unwrap(),
            "--members",
            "5",
            "--partition",
            "specialty",
            "--out",
            out.to_str().unwrap(),
        ]);
        let manifest = run_split(&args).unwrap();
        assert_eq!(manifest.plan.examples, 2_287);
        assert_eq!(manifest.plan.labels.len(), 5);
        assert_eq!(manifest.plan.labels[0], "neoplasms");
        assert_eq!(manifest.plan.leaked, 0);
        assert_eq!(
            manifest.shard_sizes.iter().sum::<usize>() + manifest.test.examples,
            2_287
        );
        let labels = out.join(LABELS_FILE);
        let names = LabelNames::read(&labels).unwrap();
        assert_eq!(names.names, manifest.plan.labels);
        assert_eq!(names.codes, ["1", "2", "3", "4", "5"]);
        let shard = Dataset::load(&out.join("member-3.csv"), &plain(), Some(&labels), None);
        assert_eq!(shard.unwrap().len(), manifest.shard_sizes[2]);
        let table = render(&manifest, &out);
        assert!(table.contains("member-5.csv") && table.contains("specialty (share 0.8)"));
    }
}
