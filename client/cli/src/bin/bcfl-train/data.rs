//! `bcfl data split`: each consortium member's private training shard, cut from one labelled
//! corpus, and the held-out test set, written as files ([`bcfl_client::train::shards`], which
//! describes the files), or, with `--task pubmedqa`, PubMedQA questions as JSON files
//! ([`bcfl_client::llm::pubmedqa::write_shards`]).

use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};

use crate::llm::finetune::Task;
use crate::train::DataArgs;
use bcfl_client::llm::pubmedqa;
use bcfl_client::train::shards::{render, write_shards, ShardRequest, SplitManifest};
use bcfl_client::train::split::{Partition, SplitConfig};

/// `bcfl data ...`: labelled data for a consortium.
#[derive(Clone, Debug, Subcommand)]
pub(crate) enum DataCommand {
    /// Write each member's private training shard (DIR/member-K.csv), the held-out test set
    /// (DIR/test.csv), the classes (DIR/labels.csv) and the split's description
    /// (DIR/split.json); with --task pubmedqa, DIR/member-K.json and DIR/test.json.
    Split(Box<SplitArgs>),
}

/// Partitions of `--partition`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum PartitionArg {
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
pub(crate) struct SplitArgs {
    /// The corpus.
    #[command(flatten)]
    pub(crate) data: DataArgs,
    /// The task: labelled texts (CSV shards) or PubMedQA (pubmedqa/ in --data-dir: the
    /// official training split spread over the members, the official test split held out,
    /// as JSON files in ori_pqal.json's format).
    #[arg(long, value_enum, default_value_t = Task::Abstracts)]
    pub(crate) task: Task,
    /// Members (shards).
    #[arg(long, default_value_t = 4)]
    pub(crate) members: usize,
    /// How training examples spread over members.
    #[arg(long, value_enum, default_value = "iid")]
    pub(crate) partition: PartitionArg,
    /// Dirichlet concentration (--partition dirichlet): small, skewed shards.
    #[arg(long, default_value_t = 0.5)]
    pub(crate) alpha: f64,
    /// Fraction of each class that goes to its specialists (--partition specialty).
    #[arg(long, default_value_t = 0.8)]
    pub(crate) share: f64,
    /// Training examples used in all, drawn at random from the training split (0: all).
    #[arg(long, default_value_t = 0)]
    pub(crate) max_train: usize,
    /// Test examples used, drawn at random from the held-out split (0: all).
    #[arg(long, default_value_t = 0)]
    pub(crate) max_test: usize,
    /// Fraction of the corpus held out for testing (stratified; copies of a text stay together).
    #[arg(long, default_value_t = 0.2)]
    pub(crate) test_fraction: f64,
    /// Smallest shard (Dirichlet draws are repeated until every shard has it).
    #[arg(long, default_value_t = 1)]
    pub(crate) min_shard: usize,
    /// Seed of the split, the subsets and the partition.
    #[arg(long, default_value_t = 42)]
    pub(crate) seed: u64,
    /// Directory to write the files in (created when missing).
    #[arg(long)]
    pub(crate) out: PathBuf,
    /// Replace the output files of an earlier split in --out.
    #[arg(long)]
    pub(crate) force: bool,
}

impl PartitionArg {
    /// The partition, with its parameter (`--alpha`, `--share`) checked.
    pub(crate) fn partition(self, alpha: f64, share: f64) -> anyhow::Result<Partition> {
        Ok(match self {
            Self::Iid => Partition::Iid,
            Self::Dirichlet => {
                anyhow::ensure!(alpha > 0.0 && alpha.is_finite(), "--alpha must be positive");
                Partition::Dirichlet { alpha }
            }
            Self::Specialty => {
                anyhow::ensure!((0.0..=1.0).contains(&share), "--share must be in [0, 1]");
                Partition::Specialty { share }
            }
        })
    }
}

impl SplitArgs {
    /// The split's settings.
    pub(crate) fn config(&self) -> anyhow::Result<SplitConfig> {
        anyhow::ensure!(self.members >= 1, "--members must be at least 1");
        let partition = self.partition.partition(self.alpha, self.share)?;
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
}

/// Runs `bcfl data split` without printing: the arguments' request, written.
pub(crate) fn run_split(args: &SplitArgs) -> anyhow::Result<SplitManifest> {
    let request = ShardRequest {
        config: args.config()?,
        data: args.data.source()?,
        out: args.out.clone(),
        force: args.force,
    };
    Ok(write_shards(&request)?)
}

/// `bcfl data split --task pubmedqa`.
fn split_pubmedqa(args: &SplitArgs) -> anyhow::Result<pubmedqa::ShardManifest> {
    let partition = match args.partition {
        PartitionArg::Specialty => anyhow::bail!("PubMedQA is split iid or dirichlet (by answer)"),
        other => other.partition(args.alpha, args.share)?,
    };
    anyhow::ensure!(args.members >= 1, "--members must be at least 1");
    let files = [pubmedqa::SPLIT_FILE, pubmedqa::TEST_SHARD_FILE];
    if !args.force {
        if let Some(f) = files.iter().find(|f| args.out.join(f).exists()) {
            anyhow::bail!(
                "{} exists: pass --force to replace an earlier split",
                args.out.join(f).display()
            );
        }
    }
    let data = crate::llm::load_pubmedqa(args.data.data_dir.as_deref())?;
    let max = |n: usize| (n > 0).then_some(n);
    Ok(pubmedqa::write_shards(
        &data,
        &args.out,
        args.members,
        partition,
        max(args.max_train),
        max(args.max_test),
        args.seed,
    )?)
}

impl DataCommand {
    /// Runs the command, printing a table or, with `json`, the manifest.
    pub(crate) fn run(&self, json: bool) -> anyhow::Result<()> {
        match self {
            Self::Split(args) if args.task == Task::Pubmedqa => {
                let manifest = split_pubmedqa(args)?;
                if json {
                    println!("{}", serde_json::to_string(&manifest)?);
                } else {
                    println!("file                 questions    yes    no  maybe");
                    for file in manifest.members.iter().chain([&manifest.test]) {
                        let [yes, no, maybe] = file.answers;
                        println!(
                            "{:<20} {:>9} {yes:>6} {no:>5} {maybe:>6}",
                            file.path.file_name().unwrap_or_default().to_string_lossy(),
                            file.questions
                        );
                    }
                }
                Ok(())
            }
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

    use std::fs;
    use std::path::Path;

    use super::*;
    use bcfl_client::train::data::{
        Columns, Dataset, LabelNames, MEDICAL_ABSTRACTS, MEDICAL_ABSTRACTS_FILE,
    };
    use bcfl_client::train::saved::TEST_FILE;
    use bcfl_client::train::shards::{member_file, LABELS_FILE, MANIFEST_FILE};
    use bcfl_client::train::split::normalize;
    use bcfl_fed::update::sha256_hex;

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
            .join("../../data")
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
