//! The PQA-L questions and the official split: [`PubMedQa::load`] reads `ori_pqal.json` and
//! `test_ground_truth.json`; [`random_subset`] and [`partition`] draw from a split with a seed.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::str::FromStr;

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};

use super::{Error, Result, QUESTIONS_FILE, TEST_FILE};
use crate::train::data::{Dataset, Example};
use crate::train::split::Partition;

/// A PubMedQA decision.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum Answer {
    /// Yes.
    Yes,
    /// No.
    No,
    /// Maybe.
    Maybe,
}

impl Answer {
    /// The answers in class order (the index of each is [`Answer::index`]).
    pub const ALL: [Answer; 3] = [Answer::Yes, Answer::No, Answer::Maybe];

    /// Its class index: yes 0, no 1, maybe 2.
    pub fn index(self) -> usize {
        self as usize
    }

    /// The answer of class `index`.
    pub fn from_index(index: usize) -> Option<Self> {
        Self::ALL.get(index).copied()
    }

    /// What a label-flip attacker answers instead
    /// ([`flipped_label`](bcfl_processor::anomaly::attack::flipped_label)): yes → no → maybe
    /// → yes.
    pub fn flipped(self) -> Self {
        let next = bcfl_processor::anomaly::attack::flipped_label(self.index(), Self::ALL.len());
        Self::ALL[next]
    }

    /// `yes`, `no` or `maybe`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Yes => "yes",
            Self::No => "no",
            Self::Maybe => "maybe",
        }
    }
}

impl fmt::Display for Answer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Answer {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| format!("{s:?} is not yes, no or maybe"))
    }
}

/// One PQA-L question.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Question {
    /// Its PubMed id (the key in the files).
    pub pmid: String,
    /// The research question (`QUESTION`).
    pub question: String,
    /// The abstract's passages without its conclusion (`CONTEXTS`).
    pub contexts: Vec<String>,
    /// The experts' decision (`final_decision`).
    pub answer: Answer,
}

impl Question {
    /// The passages joined by one space, as the prompt shows them.
    pub fn context(&self) -> String {
        self.contexts.join(" ")
    }
}

/// The fields of an `ori_pqal.json` entry that the task uses.
#[derive(Serialize, Deserialize)]
struct RawQuestion {
    #[serde(rename = "QUESTION")]
    question: String,
    #[serde(rename = "CONTEXTS")]
    contexts: Vec<String>,
    final_decision: String,
}

/// Which side of the official split.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum Split {
    /// The 500 questions not in the test file.
    Train,
    /// The 500 questions of `test_ground_truth.json`.
    Test,
}

/// The PQA-L questions, in PubMed-id order, and the official test split.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PubMedQa {
    questions: Vec<Question>,
    in_test: Vec<bool>,
}

impl PubMedQa {
    /// Reads [`QUESTIONS_FILE`] and [`TEST_FILE`] in `dir` (the data directory's
    /// [`DIR`](super::DIR)).
    pub fn load(dir: &Path) -> Result<Self> {
        let questions = dir.join(QUESTIONS_FILE);
        let test = dir.join(TEST_FILE);
        let read = |path: &Path| {
            std::fs::read_to_string(path).map_err(|source| Error::Io {
                path: path.to_owned(),
                source,
            })
        };
        Self::parse(&read(&questions)?, &questions, &read(&test)?, &test)
    }

    /// Parses the contents of the questions file and of the test-split file (`*_path` name them
    /// in errors).
    pub fn parse(
        questions_json: &str,
        questions_path: &Path,
        test_json: &str,
        test_path: &Path,
    ) -> Result<Self> {
        let malformed = |path: &Path, problem: String| Error::Malformed {
            path: path.to_owned(),
            problem,
        };
        let questions = parse_questions(questions_json, questions_path)?;
        let gold: BTreeMap<String, String> = serde_json::from_str(test_json).map_err(|e| {
            malformed(
                test_path,
                format!("not a JSON object PubMed id -> answer: {e}"),
            )
        })?;
        let mut in_test = vec![false; questions.len()];
        for (pmid, answer) in gold {
            let answer: Answer = answer
                .parse()
                .map_err(|e| malformed(test_path, format!("question {pmid}: {e}")))?;
            let inconsistent = |problem: String| Error::Inconsistent {
                path: test_path.to_owned(),
                problem,
            };
            let i = questions
                .iter()
                .position(|q| q.pmid == pmid)
                .ok_or_else(|| inconsistent(format!("question {pmid} is not in PQA-L")))?;
            if questions[i].answer != answer {
                return Err(inconsistent(format!(
                    "question {pmid}: gold answer {answer}, PQA-L says {}",
                    questions[i].answer
                )));
            }
            in_test[i] = true;
        }
        Ok(Self { questions, in_test })
    }

    /// All questions, in PubMed-id order.
    pub fn questions(&self) -> &[Question] {
        &self.questions
    }

    /// The question of `pmid`.
    pub fn question(&self, pmid: &str) -> Option<&Question> {
        self.questions.iter().find(|q| q.pmid == pmid)
    }

    /// The questions of one side of the split, in PubMed-id order.
    pub fn split(&self, split: Split) -> Vec<&Question> {
        let want = split == Split::Test;
        self.questions
            .iter()
            .zip(&self.in_test)
            .filter(|(_, &t)| t == want)
            .map(|(q, _)| q)
            .collect()
    }

    /// The official test questions.
    pub fn test(&self) -> Vec<&Question> {
        self.split(Split::Test)
    }

    /// The questions outside the test split.
    pub fn train(&self) -> Vec<&Question> {
        self.split(Split::Train)
    }
}

/// Parses questions in `ori_pqal.json`'s format (an object keyed by PubMed id; `path` names the
/// file in errors), in PubMed-id order.
pub fn parse_questions(json: &str, path: &Path) -> Result<Vec<Question>> {
    let malformed = |path: &Path, problem: String| Error::Malformed {
        path: path.to_owned(),
        problem,
    };
    let entries: BTreeMap<String, serde_json::Value> = serde_json::from_str(json).map_err(|e| {
        malformed(
            path,
            format!("not a JSON object of questions keyed by PubMed id: {e}"),
        )
    })?;
    let mut questions = Vec::with_capacity(entries.len());
    for (pmid, entry) in entries {
        let problem = |p: String| malformed(path, format!("question {pmid}: {p}"));
        if pmid.is_empty() || !pmid.bytes().all(|b| b.is_ascii_digit()) {
            return Err(problem("the key is not a PubMed id".into()));
        }
        let raw: RawQuestion = serde_json::from_value(entry).map_err(|e| problem(e.to_string()))?;
        let answer = raw
            .final_decision
            .parse()
            .map_err(|e| problem(format!("final_decision {e}")))?;
        if raw.question.trim().is_empty() {
            return Err(problem("empty QUESTION".into()));
        }
        if raw.contexts.is_empty() {
            return Err(problem("no CONTEXTS".into()));
        }
        questions.push(Question {
            pmid,
            question: raw.question,
            contexts: raw.contexts,
            answer,
        });
    }
    // Numeric order of the ids (all digits: by length, then lexically).
    questions.sort_by(|a, b| (a.pmid.len(), &a.pmid).cmp(&(b.pmid.len(), &b.pmid)));
    Ok(questions)
}

/// Reads a file of questions in `ori_pqal.json`'s format (a member's shard, [`write_questions`]).
pub fn read_questions(path: &Path) -> Result<Vec<Question>> {
    let json = std::fs::read_to_string(path).map_err(|source| Error::Io {
        path: path.to_owned(),
        source,
    })?;
    parse_questions(&json, path)
}

/// Writes `questions` in `ori_pqal.json`'s format (the fields the task reads), so that a
/// member's shard is a file of the public dataset's kind.
pub fn write_questions(path: &Path, questions: &[&Question]) -> Result<()> {
    let entries: BTreeMap<&str, RawQuestion> = questions
        .iter()
        .map(|q| {
            (
                q.pmid.as_str(),
                RawQuestion {
                    question: q.question.clone(),
                    contexts: q.contexts.clone(),
                    final_decision: q.answer.to_string(),
                },
            )
        })
        .collect();
    let json = serde_json::to_string_pretty(&entries).map_err(|e| Error::Malformed {
        path: path.to_owned(),
        problem: e.to_string(),
    })?;
    std::fs::write(path, json).map_err(|source| Error::Io {
        path: path.to_owned(),
        source,
    })
}

/// A file [`write_shards`] wrote.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardFile {
    /// Where.
    pub path: std::path::PathBuf,
    /// Questions in it.
    pub questions: usize,
    /// Its answers `[yes, no, maybe]`.
    pub answers: [usize; 3],
}

impl ShardFile {
    fn write(path: std::path::PathBuf, questions: &[&Question]) -> Result<Self> {
        write_questions(&path, questions)?;
        Ok(Self {
            path,
            questions: questions.len(),
            answers: answer_counts(questions),
        })
    }
}

/// What [`write_shards`] wrote (also in [`SPLIT_FILE`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ShardManifest {
    /// How the training questions were spread.
    pub partition: Partition,
    /// The seed of the draws and the partition.
    pub seed: u64,
    /// One file per member, in member order (`member-1.json`, ...).
    pub members: Vec<ShardFile>,
    /// The held-out questions (`test.json`), drawn from the official test split.
    pub test: ShardFile,
}

/// The manifest's file name in a shard folder.
pub const SPLIT_FILE: &str = "split.json";

/// Member `i`'s (from 1) question file in a shard folder.
pub fn member_file(i: usize) -> String {
    format!("member-{i}.json")
}

/// The held-out questions' file in a shard folder.
pub const TEST_SHARD_FILE: &str = "test.json";

/// Writes each of `members` members' training questions (`out/member-K.json`, the official
/// training split, or `max_train` of it drawn with `seed`, spread by `partition`) and the
/// held-out questions (`out/test.json`: the official test split, or `max_test` of it drawn
/// with `seed`), in `ori_pqal.json`'s format, and [`SPLIT_FILE`].
pub fn write_shards(
    data: &PubMedQa,
    out: &Path,
    members: usize,
    partition: Partition,
    max_train: Option<usize>,
    max_test: Option<usize>,
    seed: u64,
) -> Result<ShardManifest> {
    fn draw(questions: Vec<&Question>, max: Option<usize>, seed: u64) -> Result<Vec<&Question>> {
        match max {
            Some(n) if n < questions.len() => random_subset(&questions, n, seed),
            _ => Ok(questions),
        }
    }
    let train = draw(data.train(), max_train, seed)?;
    let test = draw(data.test(), max_test, seed)?;
    let shards = self::partition(&train, members, partition, seed)?;
    std::fs::create_dir_all(out).map_err(|source| Error::Io {
        path: out.to_owned(),
        source,
    })?;
    let manifest = ShardManifest {
        partition,
        seed,
        members: shards
            .iter()
            .enumerate()
            .map(|(i, shard)| ShardFile::write(out.join(member_file(i + 1)), shard))
            .collect::<Result<_>>()?,
        test: ShardFile::write(out.join(TEST_SHARD_FILE), &test)?,
    };
    let path = out.join(SPLIT_FILE);
    let json = serde_json::to_string_pretty(&manifest).expect("a manifest serializes");
    std::fs::write(&path, json).map_err(|source| Error::Io { path, source })?;
    Ok(manifest)
}

/// Answer counts `[yes, no, maybe]` of `questions`.
pub fn answer_counts(questions: &[&Question]) -> [usize; 3] {
    let mut counts = [0; 3];
    for q in questions {
        counts[q.answer.index()] += 1;
    }
    counts
}

/// `n` of `questions` drawn at random with `seed`, kept in their given order.
pub fn random_subset<'a>(
    questions: &[&'a Question],
    n: usize,
    seed: u64,
) -> Result<Vec<&'a Question>> {
    Ok(hold_out(questions, n, seed)?.1)
}

/// `questions` split in two with `seed`: `(the rest, n drawn at random)`, each kept in the given
/// order; the drawn `n` are [`random_subset`]'s. A validation split of the training questions,
/// for choosing settings without looking at the test split.
pub fn hold_out<'a>(
    questions: &[&'a Question],
    n: usize,
    seed: u64,
) -> Result<(Vec<&'a Question>, Vec<&'a Question>)> {
    if n > questions.len() {
        return Err(Error::Split(format!(
            "{n} questions asked of {}",
            questions.len()
        )));
    }
    let mut indices: Vec<usize> = (0..questions.len()).collect();
    indices.shuffle(&mut StdRng::seed_from_u64(seed));
    let mut held = vec![false; questions.len()];
    for &i in &indices[..n] {
        held[i] = true;
    }
    let (mut rest, mut drawn) = (Vec::new(), Vec::with_capacity(n));
    for (question, held) in questions.iter().zip(held) {
        if held {
            drawn.push(*question);
        } else {
            rest.push(*question);
        }
    }
    Ok((rest, drawn))
}

/// `questions` spread over `members` with `scheme` and `seed` (at least one each):
/// [`Partition::Iid`] deals each answer evenly, [`Partition::Dirichlet`] skews the answers
/// (small alpha, strong skew). Each member's questions stay in their given order.
pub fn partition<'a>(
    questions: &[&'a Question],
    members: usize,
    scheme: Partition,
    seed: u64,
) -> Result<Vec<Vec<&'a Question>>> {
    let data = Dataset {
        examples: questions
            .iter()
            .map(|q| Example {
                text: q.pmid.clone(),
                label: q.answer.index(),
            })
            .collect(),
        label_names: Answer::ALL.iter().map(|a| a.to_string()).collect(),
    };
    let shards = crate::train::split::partition(&data, members, scheme, 1, seed)
        .map_err(|e| Error::Split(e.to_string()))?;
    Ok(shards
        .into_iter()
        .map(|shard| shard.into_iter().map(|i| questions[i]).collect())
        .collect())
}
